"""add_columns(), with_only_columns(), WHERE / ORDER BY over select_from(subquery) and the
pagination idiom (a page plus the total count), each against the same query in raw SQL, on
SQLite and PostgreSQL."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest

from aiouow import AsyncSession, Engine, ForeignKey, Model, column, func, select
from aiouow import types as T

from .query_support import money, orm_rows, raw_sql

D = Decimal


class QcCustomer(Model):
    __tablename__ = "qc_customers"
    id: int = column(primary_key=True)
    name: str = column()
    country: str = column()


class QcOrder(Model):
    __tablename__ = "qc_orders"
    id: int = column(primary_key=True)
    customer_id: int = column(ForeignKey("qc_customers.id"))
    total: Decimal = column(type_=T.Numeric(10, 2))


def _seed() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    rnd = random.Random(1212)
    customers = [(i, f"cust{i:03}", rnd.choice(["DE", "FR", "US", "IT"])) for i in range(1, 121)]
    orders = [(i, rnd.randint(1, 110), D(rnd.randint(100, 90000)) / 100) for i in range(1, 1501)]
    return customers, orders


CUSTOMERS, ORDERS = _seed()


@pytest.fixture
async def shop(db: Engine) -> Engine:
    async with AsyncSession(db) as s:
        s.add_all([QcCustomer(id=i, name=n, country=c) for i, n, c in CUSTOMERS])
        await s.flush()
        s.add_all([QcOrder(id=i, customer_id=c, total=t) for i, c, t in ORDERS])
        await s.commit()
    return db


# -- add_columns ---------------------------------------------------------------------------------
async def test_add_columns_appends_expressions(shop: Engine) -> None:
    base = select(QcCustomer.country).group_by(QcCustomer.country).order_by(QcCustomer.country)
    stmt = base.add_columns(func.count(QcCustomer.id).label("n"))
    raw = await raw_sql(shop, "SELECT country, count(id) AS n FROM qc_customers GROUP BY country ORDER BY country")
    assert await orm_rows(shop, stmt) == raw and len(raw) == 4
    async with AsyncSession(shop) as s:
        assert [r.n for r in await s.execute(stmt)] == [r[1] for r in raw]
    assert await orm_rows(shop, base) == [(r[0],) for r in raw]  # the original statement is unchanged


async def test_add_columns_with_a_model_loads_identity_mapped_objects(shop: Engine) -> None:
    stmt = (select(QcOrder.id, QcOrder.total).where(QcOrder.total > 850).order_by(QcOrder.id)
            .add_columns(QcCustomer).join(QcCustomer, QcCustomer.id == QcOrder.customer_id))
    raw = await raw_sql(shop, "SELECT o.id, o.total, c.id, c.name FROM qc_orders o JOIN qc_customers c "
                           "ON c.id = o.customer_id WHERE o.total > 850 ORDER BY o.id")
    async with AsyncSession(shop) as s:
        rows = (await s.execute(stmt)).all()
        assert money([(oid, total, c.id, c.name) for oid, total, c in rows]) == money(raw) and raw
        first = rows[0][2]
        assert await s.get(QcCustomer, first.id) is first
        same = [c for _, _, c in rows if c.id == first.id]
        assert all(c is first for c in same)


async def test_add_columns_of_a_second_table_joins_it_by_the_on_clause(shop: Engine) -> None:
    stmt = (select(QcCustomer).where(QcCustomer.country == "IT")
            .join(QcOrder, QcOrder.customer_id == QcCustomer.id)
            .add_columns(func.sum(QcOrder.total).label("spent"))
            .group_by(QcCustomer.id, QcCustomer.name, QcCustomer.country).order_by(QcCustomer.id))
    raw = await raw_sql(shop, "SELECT c.id, sum(o.total) FROM qc_customers c JOIN qc_orders o ON o.customer_id = c.id "
                           "WHERE c.country = 'IT' GROUP BY c.id, c.name, c.country ORDER BY c.id")
    async with AsyncSession(shop) as s:
        got = [(c.id, spent) for c, spent in await s.execute(stmt)]
    assert money(got) == money(raw) and raw


# -- with_only_columns ----------------------------------------------------------------------------
async def test_with_only_columns_keeps_where_order_and_limit(shop: Engine) -> None:
    base = select(QcOrder).where(QcOrder.total > 500).order_by(QcOrder.total.desc(), QcOrder.id).limit(7)
    stmt = base.with_only_columns(QcOrder.id, QcOrder.customer_id)
    raw = await raw_sql(shop, "SELECT id, customer_id FROM qc_orders WHERE total > 500 "
                           "ORDER BY total DESC, id LIMIT 7")
    assert await orm_rows(shop, stmt) == raw and len(raw) == 7
    as_list = base.with_only_columns([QcOrder.id, QcOrder.customer_id])
    assert await orm_rows(shop, as_list) == raw


async def test_with_only_columns_derives_the_from_list_from_the_new_columns(shop: Engine) -> None:
    # the old column's table leaves the FROM list (no cross join), as in SQLAlchemy 2.x
    stmt = select(QcOrder.id).with_only_columns(func.count(QcCustomer.id))
    assert await orm_rows(shop, stmt) == [(len(CUSTOMERS),)]
    # maintain_column_froms keeps it: a cross join of both tables
    kept = select(QcOrder.id).with_only_columns(func.count(QcCustomer.id), maintain_column_froms=True)
    assert await orm_rows(shop, kept) == [(len(CUSTOMERS) * len(ORDERS),)]
    # select_from() and the joins stay
    joined = (select(QcCustomer.name).join(QcOrder, QcOrder.customer_id == QcCustomer.id)
              .where(QcCustomer.country == "FR").with_only_columns(func.count()))
    raw = await raw_sql(shop, "SELECT count(*) FROM qc_customers c JOIN qc_orders o ON o.customer_id = c.id "
                           "WHERE c.country = 'FR'")
    assert await orm_rows(shop, joined) == raw


async def test_with_only_columns_to_a_model_loads_objects(shop: Engine) -> None:
    stmt = select(QcCustomer.id).where(QcCustomer.country == "DE").order_by(QcCustomer.id).with_only_columns(QcCustomer)
    raw = await raw_sql(shop, "SELECT id, name FROM qc_customers WHERE country = 'DE' ORDER BY id")
    async with AsyncSession(shop) as s:
        objs = (await s.scalars(stmt)).all()
        assert [(c.id, c.name) for c in objs] == raw and raw
        assert await s.get(QcCustomer, objs[0].id) is objs[0]


# -- WHERE / ORDER BY over select_from(subquery) --------------------------------------------------
async def test_where_and_order_by_on_a_subquery_in_from(shop: Engine) -> None:
    sq = (select(QcOrder.customer_id, func.sum(QcOrder.total).label("spent"), func.count().label("n"))
          .group_by(QcOrder.customer_id).subquery("per_customer"))
    stmt = (select(sq.c.customer_id, sq.c.n).select_from(sq)
            .where(sq.c.spent > 6000, sq.c.n >= 12).order_by(sq.c.spent.desc(), sq.c.customer_id))
    raw = await raw_sql(shop, "SELECT customer_id, n FROM (SELECT customer_id, sum(total) AS spent, count(*) AS n "
                           "FROM qc_orders GROUP BY customer_id) AS per_customer "
                           "WHERE spent > 6000 AND n >= 12 ORDER BY spent DESC, customer_id")
    assert await orm_rows(shop, stmt) == raw and raw
    # the same with the subquery's columns implied by select(sq.c.x) alone
    implied = select(sq.c.customer_id, sq.c.n).where(sq.c.spent > 6000, sq.c.n >= 12) \
        .order_by(sq.c.spent.desc(), sq.c.customer_id)
    assert await orm_rows(shop, implied) == raw
    assert await orm_rows(shop, stmt.limit(3)) == raw[:3]


# -- pagination: one page plus the total ---------------------------------------------------------
@pytest.mark.parametrize("page", [0, 3, 11])
async def test_page_and_total_count(shop: Engine, page: int) -> None:
    size = 25
    query = (select(QcOrder.id, QcCustomer.name, QcOrder.total)
             .join(QcCustomer, QcCustomer.id == QcOrder.customer_id)
             .where(QcCustomer.country.in_(["DE", "US"]), QcOrder.total > 100)
             .order_by(QcOrder.total.desc(), QcOrder.id))
    where = ("FROM qc_orders o JOIN qc_customers c ON c.id = o.customer_id "
             "WHERE c.country IN ('DE', 'US') AND o.total > 100")
    raw_page = await raw_sql(shop, f"SELECT o.id, c.name, o.total {where} "
                                f"ORDER BY o.total DESC, o.id LIMIT {size} OFFSET {page * size}")
    raw_total = await raw_sql(shop, f"SELECT count(*) {where}")
    async with AsyncSession(shop) as s:
        got = [tuple(r) for r in await s.execute(query.limit(size).offset(page * size))]
        total = await s.scalar(select(func.count()).select_from(query.subquery()))
    assert money(got) == money(raw_page)
    assert total == raw_total[0][0] and isinstance(total, int)
    assert (len(got) == size) == (page * size + size <= total)


async def test_total_count_of_a_model_query_beyond_the_last_page(shop: Engine) -> None:
    query = select(QcOrder).where(QcOrder.total < 50).order_by(QcOrder.id)
    raw_total = (await raw_sql(shop, "SELECT count(*) FROM qc_orders WHERE total < 50"))[0][0]
    async with AsyncSession(shop) as s:
        total = await s.scalar(select(func.count()).select_from(query.subquery()))
        past = (await s.scalars(query.limit(10).offset(raw_total))).all()
        last = (await s.scalars(query.limit(10).offset(max(raw_total - 3, 0)))).all()
    assert total == raw_total and total > 3
    assert past == [] and len(last) == 3


async def test_removing_order_limit_and_group_from_a_query(shop: Engine, sql: Any) -> None:
    """order_by(None), group_by(None), limit(None), offset(None) undo them (as in SQLAlchemy), so
    a page query can be counted without its ORDER BY."""
    page = (select(QcOrder.id).where(QcOrder.total > 100).order_by(QcOrder.total.desc())
            .limit(5).offset(10))
    bare = page.order_by(None).limit(None).offset(None)
    raw = await raw_sql(shop, "SELECT count(*) FROM qc_orders WHERE total > 100")
    with sql(shop) as log:
        assert await orm_rows(shop, select(func.count()).select_from(bare.subquery())) == raw
    assert "ORDER BY" not in log.statements[0] and "LIMIT" not in log.statements[0]
    grouped = select(QcOrder.customer_id).group_by(QcOrder.customer_id)
    assert len(await orm_rows(shop, grouped.group_by(None))) == len(ORDERS)
    union_all = select(QcOrder.id).where(QcOrder.id < 3).union_all(select(QcOrder.id).where(QcOrder.id < 2))
    assert sorted(await orm_rows(shop, union_all.order_by(QcOrder.id).order_by(None))) == [(1,), (1,), (2,)]


@pytest.mark.parametrize("bad", ["10", 2.5, True, -1])
def test_limit_and_offset_take_a_row_count(bad: Any) -> None:
    from aiouow.exc import ArgumentError

    with pytest.raises(ArgumentError, match=r"limit\(\)"):
        select(QcOrder.id).limit(bad)
    with pytest.raises(ArgumentError, match=r"offset\(\)"):
        select(QcOrder.id).union(select(QcOrder.id)).offset(bad)
