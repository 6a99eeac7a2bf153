"""Regressions found by a review of the query language (issue 12's constructs), each checked
against the same query written in raw SQL, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from aiouow import AsyncSession, Engine, ForeignKey, Model, aliased, column, exists, func, literal, select
from aiouow import types as T
from aiouow.exc import ArgumentError, InvalidRequestError, NoSuchColumnError

from .query_support import orm_rows, raw_sql


class RqCustomer(Model):
    __tablename__ = "rq_customers"
    id: int = column(primary_key=True)
    name: str = column()
    country: str = column()


class RqOrder(Model):
    __tablename__ = "rq_orders"
    id: int = column(primary_key=True)
    customer_id: int = column(ForeignKey("rq_customers.id"))
    total: Decimal = column(type_=T.Numeric(10, 2))


@pytest.fixture
async def shop(db: Engine) -> Engine:
    rnd = random.Random(1212)
    async with AsyncSession(db) as s:
        s.add_all([RqCustomer(id=i, name=f"c{i:02}", country=rnd.choice(["DE", "FR", "IT"])) for i in range(1, 21)])
        await s.flush()
        # customers 16..20 never order
        s.add_all([RqOrder(id=i, customer_id=rnd.randint(1, 15), total=Decimal(rnd.randint(100, 99999)) / 100)
                   for i in range(1, 151)])
        await s.commit()
    return db


# -- correlation of a subquery that has select_from() ------------------------------------------
async def test_scalar_subquery_with_select_from_correlates(shop: Engine) -> None:
    # the count idiom inside a query: select_from() names the subquery's table, WHERE refers to the
    # enclosing row. Before the fix the customers table joined the subquery's FROM, and every
    # customer read the count of all orders
    for threshold in (300, 800):  # one statement shape, two values
        n = (select(func.count()).select_from(RqOrder)
             .where(RqOrder.customer_id == RqCustomer.id, RqOrder.total > threshold).scalar_subquery())
        stmt = select(RqCustomer.id, n.label("n")).order_by(RqCustomer.id)
        raw = await raw_sql(shop, f"SELECT c.id, (SELECT count(*) FROM rq_orders o WHERE o.customer_id = c.id "
                                  f"AND o.total > {threshold}) FROM rq_customers c ORDER BY c.id")
        rows = await orm_rows(shop, stmt)
        assert rows == raw
        assert len({r[1] for r in rows}) > 1 and rows[-1][1] == 0


async def test_exists_of_select_from_correlates(shop: Engine) -> None:
    has = exists(select(func.count()).select_from(RqOrder).where(RqOrder.customer_id == RqCustomer.id)
                 .having(func.count() > 10))
    stmt = select(RqCustomer.id).where(has).order_by(RqCustomer.id)
    raw = await raw_sql(shop, "SELECT c.id FROM rq_customers c WHERE EXISTS (SELECT count(*) FROM rq_orders o "
                              "WHERE o.customer_id = c.id HAVING count(*) > 10) ORDER BY c.id")
    assert await orm_rows(shop, stmt) == raw and 0 < len(raw) < 20


# -- exists() without a SELECT, built on with where() ------------------------------------------
async def test_exists_without_a_select_then_where(shop: Engine) -> None:
    sql = ("SELECT c.id FROM rq_customers c WHERE {} (SELECT 1 FROM rq_orders o "
           "WHERE o.customer_id = c.id AND o.total > {}) ORDER BY c.id")
    for threshold in (900, 990):
        cond = exists().where(RqOrder.customer_id == RqCustomer.id, RqOrder.total > threshold)
        raw = await raw_sql(shop, sql.format("EXISTS", threshold))
        assert await orm_rows(shop, select(RqCustomer.id).where(cond).order_by(RqCustomer.id)) == raw and raw
        raw_not = await raw_sql(shop, sql.format("NOT EXISTS", threshold))
        assert await orm_rows(shop, select(RqCustomer.id).where(~cond).order_by(RqCustomer.id)) == raw_not
        # exists(column).where(...) and exists().select_from(...).where(...) say the same
        by_column = exists(RqOrder.id).where(RqOrder.customer_id == RqCustomer.id).where(RqOrder.total > threshold)
        assert await orm_rows(shop, select(RqCustomer.id).where(by_column).order_by(RqCustomer.id)) == raw
        from_ = exists().select_from(RqOrder).where(RqOrder.customer_id == RqCustomer.id, RqOrder.total > threshold)
        assert await orm_rows(shop, select(RqCustomer.id).where(from_).order_by(RqCustomer.id)) == raw
    async with AsyncSession(shop) as s:
        flags = (await s.execute(select(RqCustomer.id, exists().where(RqOrder.customer_id == RqCustomer.id)
                                        .label("ordered")).order_by(RqCustomer.id))).all()
    assert [f.ordered for f in flags] == [i <= 15 for i in range(1, 21)]
    assert all(type(f.ordered) is bool for f in flags)


# -- a subquery whose every table is the enclosing row's --------------------------------------
async def test_subquery_left_without_a_from_by_correlation_is_refused(shop: Engine) -> None:
    # "each customer's biggest order", the subquery naming orders and customers like the enclosing
    # JOIN: both correlate and it has no FROM left. It ran as an uncorrelated cross join (the one
    # biggest order of all); SQLAlchemy refuses it, and so does aiouow now, naming the cure
    biggest = select(func.max(RqOrder.total)).where(RqOrder.customer_id == RqCustomer.id).scalar_subquery()
    stmt = (select(RqCustomer.id, RqOrder.id)
            .join(RqOrder, (RqOrder.customer_id == RqCustomer.id) & (RqOrder.total == biggest))
            .order_by(RqCustomer.id))
    with pytest.raises(InvalidRequestError, match="aliased"):
        await orm_rows(shop, stmt)
    # the cure the message names: the subquery's own orders under an alias
    o2 = aliased(RqOrder, name="o2")
    biggest = select(func.max(o2.total)).where(o2.customer_id == RqCustomer.id).scalar_subquery()
    stmt = (select(RqCustomer.id, RqOrder.id)
            .join(RqOrder, (RqOrder.customer_id == RqCustomer.id) & (RqOrder.total == biggest))
            .order_by(RqCustomer.id, RqOrder.id))
    raw = await raw_sql(shop, "SELECT c.id, o.id FROM rq_customers c JOIN rq_orders o ON o.customer_id = c.id "
                              "AND o.total = (SELECT max(o2.total) FROM rq_orders o2 WHERE o2.customer_id = c.id) "
                              "ORDER BY c.id, o.id")
    assert await orm_rows(shop, stmt) == raw and len(raw) >= 15
    # one table only stays uncorrelated, as in SQLAlchemy: the count of all customers
    everyone = select(func.count()).select_from(RqCustomer).scalar_subquery()
    assert await orm_rows(shop, select(RqCustomer.id, everyone).where(RqCustomer.id == 1)) == [(1, 20)]


# -- a column a subquery does not have ---------------------------------------------------------
def test_unknown_column_of_a_subquery_names_the_subquery() -> None:
    # an anonymous subquery's name is None until a statement compiles: "table None has no column"
    anon = select(RqOrder.customer_id).subquery()
    with pytest.raises(NoSuchColumnError,
                       match=r"^the anonymous subquery has no column 'nope'; its columns: customer_id"):
        anon.c.nope  # noqa: B018
    named = select(RqOrder.customer_id).subquery("spent")
    with pytest.raises(NoSuchColumnError, match=r"^subquery 'spent' has no column 'nope'"):
        named.c["nope"]
    with pytest.raises(NoSuchColumnError, match=r"^CTE 'big' has no column 'nope'"):
        select(RqOrder.id).cte("big").c.nope  # noqa: B018


# -- aliased(Model, subquery) -------------------------------------------------------------------
def test_aliased_over_a_subquery_says_it_is_not_supported() -> None:
    # SQLAlchemy users write aliased(Model, sq): it said "the name must be a non-empty string"
    sq = select(RqOrder).where(RqOrder.total > 100).subquery()
    with pytest.raises(ArgumentError, match=r"model over a subquery or CTE is not supported: join the model"):
        aliased(RqOrder, sq)  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match=r"not supported"):
        aliased(RqOrder, select(RqOrder).cte("big"))  # type: ignore[arg-type]


# -- a negated bound value ---------------------------------------------------------------------
async def test_negated_literal_runs_on_both_backends(shop: Engine) -> None:
    # PostgreSQL refused "SELECT - $1": operator is not unique: - unknown
    for n in (5, 7):
        assert await orm_rows(shop, select(-literal(n), -literal(Decimal("2.50")))) == [(-n, Decimal("-2.50"))]
        stmt = select(RqOrder.id).where(RqOrder.id - 150 > -literal(n)).order_by(RqOrder.id)
        assert await orm_rows(shop, stmt) == [(i,) for i in range(151 - n, 151)]
