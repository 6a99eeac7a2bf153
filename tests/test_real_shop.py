"""A realistic shop schema, seeded with a few thousand rows, queried through aiouow and checked
against the truth computed in Python from the seed data and against raw SQL.

The point is the class of bug that only shows on real data: money compared as text, datetimes
stored in a form the database's own functions do not write, labels reused in ORDER BY, two eager
joins reaching one table.  Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from decimal import Decimal
from typing import Any

import pytest

from aiouow import AsyncSession, Engine, ForeignKey, Model, column, func, insert, relationship, select
from aiouow import types as T

D = Decimal


class ShopCategory(Model):
    __tablename__ = "shop_categories"
    id: int = column(primary_key=True)
    name: str = column()
    parent_id: int | None = column(ForeignKey("shop_categories.id"), default=None)
    parent: ShopCategory | None = relationship(remote_side="ShopCategory.id")


class ShopCustomer(Model):
    __tablename__ = "shop_customers"
    id: int = column(primary_key=True)
    name: str = column()
    country: str = column()
    joined_at: dt.datetime = column(default_factory=lambda: dt.datetime(2020, 1, 1, 12, 0, 0))


class ShopProduct(Model):
    __tablename__ = "shop_products"
    id: int = column(primary_key=True)
    name: str = column()
    price: Decimal = column(type_=T.Numeric(10, 2))
    category_id: int = column(ForeignKey("shop_categories.id"))
    category: ShopCategory = relationship()


class ShopOrder(Model):
    __tablename__ = "shop_orders"
    id: int = column(primary_key=True)
    customer_id: int = column(ForeignKey("shop_customers.id"))
    placed_at: dt.datetime = column()
    total: Decimal = column(type_=T.Numeric(10, 2))
    customer: ShopCustomer = relationship()


class ShopLine(Model):
    __tablename__ = "shop_lines"
    id: int = column(primary_key=True)
    order_id: int = column(ForeignKey("shop_orders.id"))
    product_id: int = column(ForeignKey("shop_products.id"))
    qty: int = column()
    unit_price: Decimal = column(type_=T.Numeric(10, 2))


BASE = dt.datetime(2021, 1, 1)


class Seed:
    """The seeded rows as plain Python values: the truth the queries are checked against."""

    def __init__(self) -> None:
        rnd = random.Random(20261207)
        self.categories = [(1, "all", None), (2, "music", 1), (3, "books", 1), (4, "jazz", 2)]
        self.customers = [(i, f"cust{i:03}", rnd.choice(["DE", "FR", "US", "BR"])) for i in range(1, 121)]
        # prices on both sides of 10 and of 100, where text order and number order disagree
        fixed = [D("9.00"), D("10.00"), D("10.01"), D("100.00"), D("99.99"), D("0.50"), D("1000.00")]
        self.products = []
        for i in range(1, 301):
            price = fixed[i - 1] if i <= len(fixed) else D(rnd.randint(1, 150000)) / 100
            self.products.append((i, f"prod{i:03}", price, rnd.choice([2, 3, 4])))
        self.orders: list[tuple[int, int, dt.datetime, Decimal]] = []
        self.lines: list[tuple[int, int, int, int, Decimal]] = []
        line_id = 0
        for oid in range(1, 801):
            # the first order is placed exactly at BASE: the boundary a format mismatch misses
            at = BASE if oid == 1 else BASE + dt.timedelta(minutes=rnd.randint(-60 * 24 * 30, 60 * 24 * 300))
            if oid % 7 == 0:
                at = at.replace(microsecond=rnd.randint(1, 999999))
            total = D(0)
            for _ in range(rnd.randint(1, 4)):
                line_id += 1
                pid = rnd.randint(1, 300)
                qty = rnd.randint(1, 5)
                unit = self.products[pid - 1][2]
                self.lines.append((line_id, oid, pid, qty, unit))
                total += unit * qty
            self.orders.append((oid, rnd.randint(1, 120), at, total))

    @property
    def prices(self) -> dict[int, Decimal]:
        return {p[0]: p[2] for p in self.products}


SEED = Seed()


@pytest.fixture
async def shop(db: Engine) -> Engine:
    async with AsyncSession(db) as s:
        s.add_all([ShopCategory(id=i, name=n, parent_id=p) for i, n, p in SEED.categories])
        await s.flush()
        s.add_all([ShopCustomer(id=i, name=n, country=c) for i, n, c in SEED.customers])
        s.add_all([ShopProduct(id=i, name=n, price=p, category_id=c) for i, n, p, c in SEED.products])
        await s.flush()
        s.add_all([ShopOrder(id=i, customer_id=c, placed_at=a, total=t) for i, c, a, t in SEED.orders])
        await s.flush()
        s.add_all([ShopLine(id=i, order_id=o, product_id=p, qty=q, unit_price=u) for i, o, p, q, u in SEED.lines])
        await s.commit()
    return db


async def _all(engine: Engine, stmt: Any) -> list[Any]:
    async with AsyncSession(engine) as s:
        return list((await s.execute(stmt)).all())


async def test_money_comparisons_are_numeric(shop: Engine) -> None:
    for bound in (D("10"), D("10.00"), 10, D("99.995"), D("0.5")):
        got = {r[0] for r in await _all(shop, select(ShopProduct.id).where(ShopProduct.price > bound))}
        assert got == {i for i, p in SEED.prices.items() if p > bound}, bound
    got = {r[0] for r in await _all(shop, select(ShopProduct.id).where(ShopProduct.price == D("10.01")))}
    assert got == {3}
    got = {r[0] for r in await _all(shop, select(ShopProduct.id).where(ShopProduct.price.between(D(9), D(10))))}
    assert got == {i for i, p in SEED.prices.items() if D(9) <= p <= D(10)}


async def test_money_order_by_and_aggregates(shop: Engine) -> None:
    rows = await _all(shop, select(ShopProduct.id, ShopProduct.price).order_by(ShopProduct.price, ShopProduct.id))
    assert [r[0] for r in rows] == [i for i, _ in sorted(SEED.prices.items(), key=lambda kv: (kv[1], kv[0]))]
    assert all(isinstance(r[1], Decimal) for r in rows)
    (mx, mn, sm, av), = await _all(shop, select(func.max(ShopProduct.price), func.min(ShopProduct.price),
                                                func.sum(ShopProduct.price), func.avg(ShopProduct.price)))
    prices = list(SEED.prices.values())
    assert (mx, mn) == (max(prices), min(prices))
    assert sm == sum(prices) and isinstance(sm, Decimal)
    assert str(sm) == str(sum(prices))  # the declared scale, not a float's tail of digits
    assert abs(Decimal(av) - sum(prices) / len(prices)) < D("0.01")


async def test_money_in_expressions_and_having(shop: Engine) -> None:
    # price * qty against a Decimal, abs(), and HAVING sum() against a Decimal
    got = {r[0] for r in await _all(
        shop, select(ShopLine.id).where(ShopLine.unit_price * ShopLine.qty > D("2000")))}
    assert got == {lid for lid, _, _, q, u in SEED.lines if u * q > 2000}
    got = {r[0] for r in await _all(shop, select(ShopProduct.id).where(func.abs(ShopProduct.price) > D("1400.5")))}
    assert got == {i for i, p in SEED.prices.items() if p > D("1400.5")}
    per_order: dict[int, Decimal] = defaultdict(Decimal)
    for _, oid, _, q, u in SEED.lines:
        per_order[oid] += u * q
    stmt = (select(ShopLine.order_id, func.sum(ShopLine.unit_price * ShopLine.qty))
            .group_by(ShopLine.order_id)
            .having(func.sum(ShopLine.unit_price * ShopLine.qty) > D("4500.45")))
    rows = await _all(shop, stmt)
    assert {r[0] for r in rows} == {o for o, t in per_order.items() if t > D("4500.45")}
    assert all(Decimal(r[1]) == per_order[r[0]] for r in rows)
    # the stored totals agree with the lines, compared in SQL
    got = {r[0] for r in await _all(shop, select(ShopOrder.id).where(ShopOrder.total > D("3000")))}
    assert got == {o for o, _, _, t in SEED.orders if t > 3000}


async def test_datetime_boundaries(shop: Engine) -> None:
    got = {r[0] for r in await _all(shop, select(ShopOrder.id).where(ShopOrder.placed_at >= BASE))}
    assert got == {o for o, _, at, _ in SEED.orders if at >= BASE}
    assert 1 in got
    got = {r[0] for r in await _all(shop, select(ShopOrder.id).where(ShopOrder.placed_at == BASE))}
    assert got == {1}
    rows = await _all(shop, select(ShopOrder.id, ShopOrder.placed_at).order_by(ShopOrder.placed_at, ShopOrder.id))
    assert [r[0] for r in rows] == [o for o, _, _, _ in sorted(SEED.orders, key=lambda o: (o[2], o[0]))]
    assert {r[0]: r[1] for r in rows} == {o: at for o, _, at, _ in SEED.orders}


async def test_datetime_stored_in_the_databases_own_format(shop: Engine) -> None:
    """Rows written by the database's own clock and by another tool compare with aiouow's."""
    async with shop.connect() as conn:
        if shop.dialect.name == "sqlite":
            await conn.exec_driver_sql(
                "INSERT INTO shop_orders (id, customer_id, placed_at, total) "
                "VALUES (9001, 1, '2021-01-01 00:00:00', 1)")
            await conn.exec_driver_sql(
                "INSERT INTO shop_orders (id, customer_id, placed_at, total) "
                "VALUES (9002, 1, datetime('2021-01-01 00:00:00', '+1 second'), 1)")
            rows = await conn.exec_driver_sql("SELECT placed_at FROM shop_orders WHERE id = 1")
            # aiouow writes what SQLite's own datetime() writes
            assert [tuple(r) for r in rows] == [("2021-01-01 00:00:00",)]
        else:
            await conn.exec_driver_sql(
                "INSERT INTO shop_orders (id, customer_id, placed_at, total) "
                "VALUES (9001, 1, '2021-01-01 00:00:00', 1)")
            await conn.exec_driver_sql(
                "INSERT INTO shop_orders (id, customer_id, placed_at, total) "
                "VALUES (9002, 1, timestamp '2021-01-01 00:00:00' + interval '1 second', 1)")
        await conn.commit()
    got = {r[0] for r in await _all(shop, select(ShopOrder.id).where(ShopOrder.placed_at == BASE))}
    assert got == {1, 9001}
    got = {r[0] for r in await _all(shop, select(ShopOrder.id).where(
        ShopOrder.placed_at > BASE, ShopOrder.placed_at <= BASE + dt.timedelta(seconds=1)))}
    assert 9002 in got and 9001 not in got and 1 not in got


async def test_label_reused_in_order_and_group_by(shop: Engine) -> None:
    n = func.count(ShopOrder.id).label("n")
    stmt = select(ShopOrder.customer_id, n).group_by(ShopOrder.customer_id).order_by(n.desc(), ShopOrder.customer_id)
    rows = await _all(shop, stmt)
    counts: dict[int, int] = defaultdict(int)
    for _, cid, _, _ in SEED.orders:
        counts[cid] += 1
    assert [(r[0], r[1]) for r in rows] == sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    assert rows[0].n == max(counts.values())
    by_name = await _all(shop, select(ShopOrder.customer_id, n).group_by(ShopOrder.customer_id).order_by("n"))
    assert [r[1] for r in by_name] == sorted(counts.values())


async def test_core_insert_applies_python_defaults(shop: Engine) -> None:
    async with shop.connect() as conn:
        await conn.execute(insert(ShopCustomer).values(id=999, name="new", country="DE"))
        await conn.execute(insert(ShopCustomer), [{"id": 1000, "name": "a", "country": "FR"},
                                                   {"id": 1001, "name": "b", "country": "US"}])
        await conn.commit()
    rows = await _all(shop, select(ShopCustomer.id, ShopCustomer.joined_at).where(ShopCustomer.id >= 999)
                      .order_by(ShopCustomer.id))
    assert [tuple(r) for r in rows] == [(i, dt.datetime(2020, 1, 1, 12)) for i in (999, 1000, 1001)]


async def test_select_without_from(shop: Engine) -> None:
    rows = await _all(shop, select(func.lower("ABC")))
    assert [tuple(r) for r in rows] == [("abc",)]


async def test_aggregates_match_raw_sql(shop: Engine) -> None:
    """Per-country revenue through the ORM equals the same query in raw SQL."""
    revenue = func.sum(ShopLine.unit_price * ShopLine.qty).label("revenue")
    stmt = (select(ShopCustomer.country, revenue)
            .join(ShopOrder, ShopOrder.customer_id == ShopCustomer.id)
            .join(ShopLine, ShopLine.order_id == ShopOrder.id)
            .group_by(ShopCustomer.country).order_by(ShopCustomer.country))
    orm = [(r[0], Decimal(r[1])) for r in await _all(shop, stmt)]
    async with shop.connect() as conn:
        raw = await conn.exec_driver_sql(
            "SELECT c.country, SUM(l.unit_price * l.qty) FROM shop_customers c "
            "JOIN shop_orders o ON o.customer_id = c.id JOIN shop_lines l ON l.order_id = o.id "
            "GROUP BY c.country ORDER BY c.country")
        raw_rows = [(r[0], Decimal(str(r[1])).quantize(D("0.01"))) for r in raw]
    truth: dict[str, Decimal] = defaultdict(Decimal)
    country = {c[0]: c[2] for c in SEED.customers}
    orders = {o[0]: o[1] for o in SEED.orders}
    for _, oid, _, q, u in SEED.lines:
        truth[country[orders[oid]]] += u * q
    assert orm == raw_rows == sorted(truth.items())
