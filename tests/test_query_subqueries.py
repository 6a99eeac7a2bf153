"""Subqueries (IN, EXISTS, scalar, in FROM / JOIN) and set operations on a small seeded shop,
each checked against the same query written in raw SQL, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest

from aiouow import (
    AsyncSession,
    Engine,
    ForeignKey,
    Model,
    column,
    except_,
    exists,
    func,
    intersect,
    select,
    union,
    union_all,
)
from aiouow import types as T

from .query_support import money, orm_rows, raw_sql

D = Decimal


class SqCustomer(Model):
    __tablename__ = "sq_customers"
    id: int = column(primary_key=True)
    name: str = column()
    country: str = column()


class SqProduct(Model):
    __tablename__ = "sq_products"
    id: int = column(primary_key=True)
    name: str = column()
    price: Decimal = column(type_=T.Numeric(10, 2))


class SqOrder(Model):
    __tablename__ = "sq_orders"
    id: int = column(primary_key=True)
    customer_id: int = column(ForeignKey("sq_customers.id"))
    total: Decimal = column(type_=T.Numeric(10, 2))


class SqOrderProduct(Model):
    """The many-to-many between orders and products."""

    __tablename__ = "sq_order_products"
    order_id: int = column(ForeignKey("sq_orders.id"), primary_key=True)
    product_id: int = column(ForeignKey("sq_products.id"), primary_key=True)
    qty: int = column()


def _seed() -> tuple[list[Any], ...]:
    rnd = random.Random(1207)
    customers = [(i, f"cust{i:03}", rnd.choice(["DE", "FR", "US"])) for i in range(1, 61)]
    products = [(i, f"prod{i:02}", D(rnd.randint(50, 20000)) / 100) for i in range(1, 41)]
    orders, links = [], []
    for oid in range(1, 201):
        # customers 51..60 never order: NOT EXISTS / NOT IN have rows to find
        cid = rnd.randint(1, 50)
        chosen = rnd.sample(range(1, 41), rnd.randint(1, 3))
        qtys = {p: rnd.randint(1, 4) for p in chosen}
        total = sum((products[p - 1][2] * q for p, q in qtys.items()), D(0))
        orders.append((oid, cid, total))
        links += [(oid, p, q) for p, q in qtys.items()]
    return customers, products, orders, links


CUSTOMERS, PRODUCTS, ORDERS, LINKS = _seed()
NEVER_ORDERED = sorted({c[0] for c in CUSTOMERS} - {o[1] for o in ORDERS})


@pytest.fixture
async def shop(db: Engine) -> Engine:
    async with AsyncSession(db) as s:
        s.add_all([SqCustomer(id=i, name=n, country=c) for i, n, c in CUSTOMERS])
        s.add_all([SqProduct(id=i, name=n, price=p) for i, n, p in PRODUCTS])
        await s.flush()
        s.add_all([SqOrder(id=i, customer_id=c, total=t) for i, c, t in ORDERS])
        await s.flush()
        s.add_all([SqOrderProduct(order_id=o, product_id=p, qty=q) for o, p, q in LINKS])
        await s.commit()
    return db


# -- IN / NOT IN --------------------------------------------------------------------------------
async def test_in_and_not_in_a_subquery(shop: Engine) -> None:
    big = select(SqOrder.customer_id).where(SqOrder.total > 300)
    stmt = select(SqCustomer.id).where(SqCustomer.id.in_(big)).order_by(SqCustomer.id)
    raw = await raw_sql(shop, "SELECT id FROM sq_customers WHERE id IN "
                           "(SELECT customer_id FROM sq_orders WHERE total > 300) ORDER BY id")
    assert await orm_rows(shop, stmt) == raw and raw
    stmt = select(SqCustomer.id).where(SqCustomer.id.not_in(select(SqOrder.customer_id))).order_by(SqCustomer.id)
    assert await orm_rows(shop, stmt) == [(i,) for i in NEVER_ORDERED]


async def test_in_subquery_returns_identity_mapped_objects(shop: Engine) -> None:
    bought = select(SqOrderProduct.order_id).where(SqOrderProduct.product_id == 7)
    async with AsyncSession(shop) as s:
        orders = (await s.scalars(select(SqOrder).where(SqOrder.id.in_(bought)).order_by(SqOrder.id))).all()
        again = await s.get(SqOrder, orders[0].id)
        assert again is orders[0]
    raw = await raw_sql(shop, "SELECT id FROM sq_orders WHERE id IN "
                           "(SELECT order_id FROM sq_order_products WHERE product_id = 7) ORDER BY id")
    assert [(o.id,) for o in orders] == raw and raw


async def test_parameters_bound_in_order_across_nesting(shop: Engine) -> None:
    inner = select(SqOrder.customer_id).where(SqOrder.total > 100, SqOrder.total < 600)
    stmt = (select(SqCustomer.id)
            .where(SqCustomer.country == "DE", SqCustomer.id.in_(inner), SqCustomer.id < 40)
            .order_by(SqCustomer.id).limit(5))
    raw = await raw_sql(shop, "SELECT id FROM sq_customers WHERE country = 'DE' AND id IN "
                           "(SELECT customer_id FROM sq_orders WHERE total > 100 AND total < 600) "
                           "AND id < 40 ORDER BY id LIMIT 5")
    assert await orm_rows(shop, stmt) == raw and raw


# -- EXISTS -------------------------------------------------------------------------------------
async def test_exists_correlates_to_the_enclosing_query(shop: Engine) -> None:
    has_big = exists(select(SqOrder.id).where(SqOrder.customer_id == SqCustomer.id, SqOrder.total > 400))
    stmt = select(SqCustomer.id).where(has_big).order_by(SqCustomer.id)
    raw = await raw_sql(shop, "SELECT c.id FROM sq_customers c WHERE EXISTS (SELECT o.id FROM sq_orders o "
                           "WHERE o.customer_id = c.id AND o.total > 400) ORDER BY c.id")
    assert await orm_rows(shop, stmt) == raw
    assert 0 < len(raw) < 50  # an uncorrelated EXISTS would return every customer
    method = select(SqCustomer.id).where(
        select(SqOrder.id).where(SqOrder.customer_id == SqCustomer.id, SqOrder.total > 400).exists()
    ).order_by(SqCustomer.id)
    assert await orm_rows(shop, method) == raw


async def test_not_exists(shop: Engine) -> None:
    stmt = select(SqCustomer).where(~exists(select(SqOrder.id).where(SqOrder.customer_id == SqCustomer.id)))
    async with AsyncSession(shop) as s:
        lonely = (await s.scalars(stmt.order_by(SqCustomer.id))).all()
    assert [c.id for c in lonely] == NEVER_ORDERED


# -- scalar subqueries --------------------------------------------------------------------------
async def test_scalar_subquery_in_the_column_list_and_order_by(shop: Engine) -> None:
    n_orders = (select(func.count(SqOrder.id)).where(SqOrder.customer_id == SqCustomer.id)
                .scalar_subquery())
    stmt = (select(SqCustomer.id, n_orders.label("n"))
            .order_by(n_orders.desc(), SqCustomer.id).limit(10))
    raw = await raw_sql(shop, "SELECT c.id, (SELECT count(o.id) FROM sq_orders o WHERE o.customer_id = c.id) AS n "
                           "FROM sq_customers c ORDER BY 2 DESC, c.id LIMIT 10")
    rows = await orm_rows(shop, stmt)
    assert rows == raw and rows[0][1] > rows[-1][1] >= 1
    async with AsyncSession(shop) as s:
        row = (await s.execute(stmt)).first()
    assert row is not None and row.n == raw[0][1]


async def test_scalar_subquery_in_where(shop: Engine) -> None:
    avg = select(func.avg(SqOrder.total)).scalar_subquery()
    stmt = select(SqOrder.id).where(SqOrder.total > avg).order_by(SqOrder.id)
    raw = await raw_sql(shop, "SELECT id FROM sq_orders WHERE total > (SELECT avg(total) FROM sq_orders) ORDER BY id")
    assert await orm_rows(shop, stmt) == raw and 0 < len(raw) < 200


async def test_explicit_correlate(shop: Engine) -> None:
    # correlate() names the enclosing table; correlate(None) keeps the subquery's own FROM
    spent = (select(func.sum(SqOrder.total)).where(SqOrder.customer_id == SqCustomer.id)
             .correlate(SqCustomer).scalar_subquery())
    stmt = select(SqCustomer.id, spent).where(SqCustomer.id <= 5).order_by(SqCustomer.id)
    raw = await raw_sql(shop, "SELECT c.id, (SELECT sum(o.total) FROM sq_orders o WHERE o.customer_id = c.id) "
                           "FROM sq_customers c WHERE c.id <= 5 ORDER BY c.id")
    assert money(await orm_rows(shop, stmt)) == money(raw)
    uncorrelated = (select(func.count()).select_from(SqCustomer).where(SqCustomer.country == "DE")
                    .correlate(None).scalar_subquery())
    n_de = sum(1 for c in CUSTOMERS if c[2] == "DE")
    assert await orm_rows(shop, select(SqCustomer.id, uncorrelated).where(SqCustomer.id == 1)) == [(1, n_de)]


# -- subqueries in FROM / JOIN ------------------------------------------------------------------
async def test_subquery_in_join_with_labelled_columns(shop: Engine) -> None:
    totals = (select(SqOrder.customer_id, func.sum(SqOrder.total).label("spent"),
                     func.count(SqOrder.id).label("n"))
              .group_by(SqOrder.customer_id).subquery("totals"))
    stmt = (select(SqCustomer.name, totals.c.spent, totals.c.n)
            .join(totals, totals.c.customer_id == SqCustomer.id)
            .where(totals.c.n >= 5).order_by(totals.c.spent.desc(), SqCustomer.name))
    raw = await raw_sql(shop, "SELECT c.name, t.spent, t.n FROM sq_customers c JOIN (SELECT customer_id, "
                           "sum(total) AS spent, count(id) AS n FROM sq_orders GROUP BY customer_id) t "
                           "ON t.customer_id = c.id WHERE t.n >= 5 ORDER BY t.spent DESC, c.name")
    assert money(await orm_rows(shop, stmt)) == money(raw) and raw
    async with AsyncSession(shop) as s:
        row = (await s.execute(stmt)).first()
    assert row is not None and row.name == raw[0][0] and row.n == raw[0][2]
    assert isinstance(row.spent, Decimal)


async def test_select_from_an_anonymous_subquery_and_objects_joined_to_it(shop: Engine) -> None:
    big = select(SqOrder.customer_id).where(SqOrder.total > 500).distinct().subquery()
    stmt = select(SqCustomer).join(big, big.c.customer_id == SqCustomer.id).order_by(SqCustomer.id)
    raw = await raw_sql(shop, "SELECT c.id FROM sq_customers c JOIN (SELECT DISTINCT customer_id FROM sq_orders "
                           "WHERE total > 500) b ON b.customer_id = c.id ORDER BY c.id")
    async with AsyncSession(shop) as s:
        objs = (await s.scalars(stmt)).all()
        assert objs and objs[0] is await s.get(SqCustomer, objs[0].id)
    assert [(c.id,) for c in objs] == raw
    assert await orm_rows(shop, select(big.c.customer_id).order_by(big.c.customer_id)) == raw
    assert await orm_rows(shop, select(big).order_by(big.c.customer_id)) == raw


async def test_count_idiom_for_pagination(shop: Engine) -> None:
    stmt = select(SqOrder).where(SqOrder.total > 200).order_by(SqOrder.id)
    async with AsyncSession(shop) as s:
        total = await s.scalar(select(func.count()).select_from(stmt.subquery()))
        page = (await s.scalars(stmt.limit(10).offset(20))).all()
    raw = await raw_sql(shop, "SELECT count(*) FROM sq_orders WHERE total > 200")
    assert total == raw[0][0] and total > 30
    assert [o.id for o in page] == [o[0] for o in ORDERS if o[2] > 200][20:30]


async def test_where_on_a_subquery_built_from_a_join(shop: Engine) -> None:
    lines = (select(SqOrder.customer_id, (SqOrderProduct.qty * SqProduct.price).label("amount"))
             .join(SqOrderProduct, SqOrderProduct.order_id == SqOrder.id)
             .join(SqProduct, SqProduct.id == SqOrderProduct.product_id)).subquery("lines")
    stmt = (select(lines.c.customer_id, func.sum(lines.c.amount).label("amount"))
            .where(lines.c.customer_id < 10).group_by(lines.c.customer_id).order_by(lines.c.customer_id))
    raw = await raw_sql(shop, "SELECT o.customer_id, sum(op.qty * p.price) FROM sq_orders o "
                           "JOIN sq_order_products op ON op.order_id = o.id JOIN sq_products p ON p.id = op.product_id "
                           "WHERE o.customer_id < 10 GROUP BY o.customer_id ORDER BY o.customer_id")
    assert money(await orm_rows(shop, stmt)) == money(raw) and raw


# -- set operations -----------------------------------------------------------------------------
async def test_union_orderable_and_limitable(shop: Engine) -> None:
    de = select(SqCustomer.id, SqCustomer.name).where(SqCustomer.country == "DE")
    rich = (select(SqCustomer.id, SqCustomer.name)
            .where(SqCustomer.id.in_(select(SqOrder.customer_id).where(SqOrder.total > 500))))
    stmt = union(de, rich).order_by(SqCustomer.name.desc()).limit(7)
    raw = await raw_sql(shop, "SELECT id, name FROM sq_customers WHERE country = 'DE' UNION SELECT id, name "
                           "FROM sq_customers WHERE id IN (SELECT customer_id FROM sq_orders WHERE total > 500) "
                           "ORDER BY name DESC LIMIT 7")
    assert await orm_rows(shop, stmt) == raw and len(raw) == 7
    assert await orm_rows(shop, de.union(rich).order_by("name").offset(2).limit(3)) == sorted(
        (await orm_rows(shop, union(de, rich))), key=lambda r: r[1])[2:5]


async def test_union_all_intersect_except(shop: Engine) -> None:
    a = select(SqOrder.customer_id).where(SqOrder.total > 300)
    b = select(SqOrder.customer_id).where(SqOrder.total < 100)
    for op, fn in (("UNION ALL", union_all), ("INTERSECT", intersect), ("EXCEPT", except_)):
        got = sorted(await orm_rows(shop, fn(a, b)))
        raw = sorted(await raw_sql(shop, f"SELECT customer_id FROM sq_orders WHERE total > 300 {op} "
                                      "SELECT customer_id FROM sq_orders WHERE total < 100"))
        assert got == raw and raw, op
    assert sorted(await orm_rows(shop, a.intersect(b))) == sorted(await orm_rows(shop, intersect(a, b)))
    assert sorted(await orm_rows(shop, a.except_(b))) == sorted(await orm_rows(shop, except_(a, b)))
    assert len(await orm_rows(shop, a.union_all(b))) == len(await orm_rows(shop, union_all(a, b)))


async def test_members_with_their_own_order_and_limit(shop: Engine) -> None:
    top = select(SqOrder.id).order_by(SqOrder.total.desc()).limit(3)
    bottom = select(SqOrder.id).order_by(SqOrder.total).limit(2)
    by_total = sorted(ORDERS, key=lambda o: o[2])
    expect = sorted([o[0] for o in by_total[-3:]] + [o[0] for o in by_total[:2]])
    assert sorted(r[0] for r in await orm_rows(shop, union(top, bottom))) == expect


async def test_union_of_objects_and_union_as_subquery(shop: Engine) -> None:
    fr = select(SqCustomer).where(SqCustomer.country == "FR")
    us = select(SqCustomer).where(SqCustomer.country == "US")
    async with AsyncSession(shop) as s:
        objs = (await s.scalars(union(fr, us).order_by(SqCustomer.id))).all()
        assert objs[0] is await s.get(SqCustomer, objs[0].id)
    assert [c.id for c in objs] == [c[0] for c in CUSTOMERS if c[2] in ("FR", "US")]
    both = union(select(SqOrder.customer_id.label("cid")).where(SqOrder.total > 500),
                 select(SqCustomer.id).where(SqCustomer.country == "DE")).subquery("both")
    count = select(func.count()).select_from(both)
    raw = await raw_sql(shop, "SELECT count(*) FROM (SELECT customer_id FROM sq_orders WHERE total > 500 UNION "
                           "SELECT id FROM sq_customers WHERE country = 'DE') b")
    assert await orm_rows(shop, count) == raw
    names = select(SqCustomer.name).where(SqCustomer.id.in_(select(both.c.cid))).order_by(SqCustomer.name)
    raw = await raw_sql(shop, "SELECT name FROM sq_customers WHERE id IN (SELECT customer_id FROM sq_orders "
                           "WHERE total > 500 UNION SELECT id FROM sq_customers WHERE country = 'DE') ORDER BY name")
    assert await orm_rows(shop, names) == raw and raw



async def test_set_operations_stream_like_selects(shop: Engine) -> None:
    fr = select(SqCustomer).where(SqCustomer.country == "FR")
    us = select(SqCustomer).where(SqCustomer.country == "US")
    async with AsyncSession(shop) as s:
        streamed = [c async for c in await s.stream_scalars(union(fr, us).order_by(SqCustomer.id), chunk_size=3)]
        assert [c.id for c in streamed] == [c[0] for c in CUSTOMERS if c[2] in ("FR", "US")]
        assert streamed[0] is await s.get(SqCustomer, streamed[0].id)
        ids = union_all(select(SqCustomer.id).where(SqCustomer.country == "DE"),
                        select(SqOrder.customer_id).where(SqOrder.total > 500))
        rows = [tuple(r) async for r in await s.stream(ids, chunk_size=5)]
    raw = await raw_sql(shop, "SELECT id FROM sq_customers WHERE country = 'DE' UNION ALL "
                           "SELECT customer_id FROM sq_orders WHERE total > 500")
    assert sorted(rows) == sorted(raw) and raw
async def test_cache_tells_subqueries_and_set_operations_apart(shop: Engine) -> None:
    def n_orders(where: Any) -> Any:
        return select(func.count(SqOrder.id)).where(SqOrder.customer_id == SqCustomer.id, where).scalar_subquery()

    one = select(SqCustomer.id, n_orders(SqOrder.total > 300)).where(SqCustomer.id == 1)
    two = select(SqCustomer.id, n_orders(SqOrder.total < 300)).where(SqCustomer.id == 1)
    mine = [o for o in ORDERS if o[1] == 1]
    assert await orm_rows(shop, one) == [(1, sum(1 for o in mine if o[2] > 300))]
    assert await orm_rows(shop, two) == [(1, sum(1 for o in mine if o[2] < 300))]
    a = select(SqOrder.customer_id).where(SqOrder.total > 300)
    b = select(SqOrder.customer_id).where(SqOrder.total < 100)
    assert len(await orm_rows(shop, union(a, b))) != len(await orm_rows(shop, intersect(a, b)))
    sq1 = select(SqOrder.id).where(SqOrder.total > 300).subquery()
    sq2 = select(SqOrder.id).where(SqOrder.total > 300, SqOrder.id < 50).subquery()
    c1 = await orm_rows(shop, select(func.count()).select_from(sq1))
    c2 = await orm_rows(shop, select(func.count()).select_from(sq2))
    assert c1 == [(sum(1 for o in ORDERS if o[2] > 300),)]
    assert c2 == [(sum(1 for o in ORDERS if o[2] > 300 and o[0] < 50),)]


async def test_cache_tells_one_anonymous_subquery_twice_from_two(shop: Engine) -> None:
    a = select(SqOrder.customer_id).subquery()
    b = select(SqOrder.customer_id).subquery()
    n = len(ORDERS)
    # the same subquery named twice is one FROM entry; two alike ones are a cross product
    assert await orm_rows(shop, select(func.count()).select_from(a).where(a.c.customer_id == a.c.customer_id)) == [(n,)]
    pairs = sum(1 for x in ORDERS for y in ORDERS if x[1] == y[1])
    assert await orm_rows(shop, select(func.count()).select_from(a, b).where(a.c.customer_id == b.c.customer_id)) == [
        (pairs,)]


async def test_in_a_set_operation_and_exists_of_a_join(shop: Engine) -> None:
    either = union(select(SqOrder.customer_id).where(SqOrder.total > 500),
                   select(SqCustomer.id).where(SqCustomer.country == "FR"))
    stmt = select(SqCustomer.id).where(SqCustomer.id.in_(either)).order_by(SqCustomer.id)
    raw = await raw_sql(shop, "SELECT id FROM sq_customers WHERE id IN (SELECT customer_id FROM sq_orders WHERE "
                           "total > 500 UNION SELECT id FROM sq_customers WHERE country = 'FR') ORDER BY id")
    assert await orm_rows(shop, stmt) == raw and raw
    # customers who bought a product over 150: the subquery joins two tables and correlates the third
    bought = (select(SqOrder.id).join(SqOrderProduct, SqOrderProduct.order_id == SqOrder.id)
              .join(SqProduct, SqProduct.id == SqOrderProduct.product_id)
              .where(SqOrder.customer_id == SqCustomer.id, SqProduct.price > 150))
    stmt = select(SqCustomer.id).where(bought.exists()).order_by(SqCustomer.id)
    raw = await raw_sql(shop, "SELECT c.id FROM sq_customers c WHERE EXISTS (SELECT o.id FROM sq_orders o "
                           "JOIN sq_order_products op ON op.order_id = o.id JOIN sq_products p ON p.id = op.product_id "
                           "WHERE o.customer_id = c.id AND p.price > 150) ORDER BY c.id")
    assert await orm_rows(shop, stmt) == raw and 0 < len(raw) < 50
