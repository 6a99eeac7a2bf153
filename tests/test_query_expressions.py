"""CASE, CAST, constants, DISTINCT in aggregates, window functions, EXTRACT and the result types
of aggregates, on a small seeded shop: every query is checked against the same query written
in raw SQL (and, where the answer is plain, against the seed data), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

import pytest

from aiouow import (
    AsyncSession,
    Engine,
    ForeignKey,
    Model,
    case,
    cast,
    column,
    distinct,
    extract,
    false,
    func,
    literal,
    null,
    select,
    text,
    true,
)
from aiouow import types as T
from aiouow.exc import ArgumentError

from .conftest import capture_sql
from .query_support import orm_rows, raw_sql

D = Decimal


class XCustomer(Model):
    __tablename__ = "xp_customers"
    id: int = column(primary_key=True)
    name: str = column()
    country: str = column()


class XOrder(Model):
    __tablename__ = "xp_orders"
    id: int = column(primary_key=True)
    customer_id: int = column(ForeignKey("xp_customers.id"))
    placed_at: dt.datetime = column()
    total: Decimal = column(type_=T.Numeric(10, 2))
    qty: int = column()
    status: str = column()
    discount: Decimal | None = column(type_=T.Numeric(10, 2), default=None)


COUNTRIES = ["DE", "FR", "US", "BR"]
BASE = dt.datetime(2021, 1, 1)


def _seed() -> tuple[list[tuple[int, str, str]], list[tuple[Any, ...]]]:
    rnd = random.Random(1207)
    customers = [(i, f"cust{i:02}", COUNTRIES[i % 4]) for i in range(1, 41)]
    orders = []
    for oid in range(1, 301):
        at = BASE + dt.timedelta(seconds=rnd.randint(0, 86400 * 700))
        if oid % 9 == 0:
            at = at.replace(microsecond=rnd.randint(1, 999999))
        # totals on both sides of 10 and 100, some integral (a cast to int is then exact)
        total = D(rnd.randint(50, 50000)) / 100 if oid % 5 else D(rnd.randint(1, 900))
        orders.append((oid, rnd.randint(1, 40), at, total.quantize(D("0.01")), rnd.randint(1, 6),
                       rnd.choice(["paid", "open", "void"]), D("1.50") if oid % 4 == 0 else None))
    return customers, orders


CUSTOMERS, ORDERS = _seed()


@pytest.fixture
async def shop(db: Engine) -> Engine:
    async with AsyncSession(db) as s:
        s.add_all([XCustomer(id=i, name=n, country=c) for i, n, c in CUSTOMERS])
        await s.flush()
        s.add_all([XOrder(id=o, customer_id=c, placed_at=a, total=t, qty=q, status=st, discount=d)
                   for o, c, a, t, q, st, d in ORDERS])
        await s.commit()
    return db


def _num(v: Any) -> Any:
    """A raw driver value as a comparable number (SQLite hands NUMERIC arithmetic back as float)."""
    if isinstance(v, float):
        return D(repr(v)).quantize(D("0.01"))
    if isinstance(v, D):
        return v.quantize(D("0.01"))
    return v


def _norm(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [tuple(_num(v) for v in r) for r in rows]


# -- CASE ------------------------------------------------------------------------------------------

async def test_case_buckets_match_raw_sql(shop: Engine) -> None:
    size = case((XOrder.total > 100, "big"), (XOrder.total > 10, "mid"), else_="small").label("size")
    got = await orm_rows(shop, select(XOrder.id, size).order_by(XOrder.id))
    raw = await orm_rows(shop, text(
        "SELECT id, CASE WHEN total > 100 THEN 'big' WHEN total > 10 THEN 'mid' ELSE 'small' END "
        "FROM xp_orders ORDER BY id"))
    assert got == raw
    assert got == [(o, "big" if t > 100 else "mid" if t > 10 else "small") for o, _, _, t, *_ in ORDERS]


async def test_case_inside_an_aggregate_reads_decimal(shop: Engine) -> None:
    paid = func.sum(case((XOrder.status == "paid", XOrder.total), else_=0))
    stmt = (select(XCustomer.country, paid.label("paid"))
            .join(XOrder, XOrder.customer_id == XCustomer.id)
            .group_by(XCustomer.country).order_by(XCustomer.country))
    got = await orm_rows(shop, stmt)
    raw = await orm_rows(shop, text(
        "SELECT c.country, sum(CASE WHEN o.status = 'paid' THEN o.total ELSE 0 END) FROM xp_customers c "
        "JOIN xp_orders o ON o.customer_id = c.id GROUP BY c.country ORDER BY c.country"))
    assert got == _norm(raw)
    assert all(isinstance(r[1], D) for r in got)
    country = {i: c for i, _, c in CUSTOMERS}
    truth: dict[str, Decimal] = {}
    for _, cid, _, total, _, status, _ in ORDERS:
        truth[country[cid]] = truth.get(country[cid], D(0)) + (total if status == "paid" else D(0))
    assert dict(got) == truth


async def test_case_without_else_is_null_and_values_are_bound(shop: Engine) -> None:
    odd = "O'Brien; DROP TABLE xp_orders"
    stmt = select(XOrder.id, case((XOrder.qty == 6, odd))).where(XOrder.id <= 20).order_by(XOrder.id)
    with capture_sql(shop) as log:
        got = await orm_rows(shop, stmt)
    sqls = [r.split("\n[")[0] for r in log.statements if r.startswith("SELECT")]
    assert sqls and not any("O'Brien" in sql for sql in sqls)
    assert got == [(o, odd if q == 6 else None) for o, _, _, _, q, *_ in ORDERS[:20]]
    with pytest.raises(ArgumentError):
        case()
    with pytest.raises(ArgumentError):
        case(XOrder.qty == 1)  # type: ignore[arg-type]


# -- CAST ------------------------------------------------------------------------------------------

async def test_cast_reads_back_as_the_target_type(shop: Engine) -> None:
    whole = [o for o in ORDERS if o[3] == o[3].to_integral_value()][:15]
    ids = [o[0] for o in whole]
    stmt = (select(XOrder.id, cast(XOrder.id, str), cast(XOrder.total, int), cast(XOrder.qty, Decimal),
                   cast(XOrder.qty, float), cast(XOrder.total, T.Numeric(12, 1)))
            .where(XOrder.id.in_(ids)).order_by(XOrder.id))
    got = await orm_rows(shop, stmt)
    assert got == [(o, str(o), int(t), D(q), float(q), t.quantize(D("0.1"))) for o, _, _, t, q, *_ in whole]
    assert [type(v) for v in got[0]] == [int, str, int, D, float, D]
    raw = await orm_rows(shop, text(
        f"SELECT id, CAST(total AS INTEGER) FROM xp_orders WHERE id IN ({', '.join(map(str, ids))}) ORDER BY id"))
    assert [(r[0], r[2]) for r in got] == raw
    # a bound value cast: sent as a parameter, converted by the database
    assert await orm_rows(shop, select(cast(literal("42"), int), cast(literal(7), str))) == [(42, "7")]


async def test_cast_type_is_part_of_the_statement_shape(shop: Engine) -> None:
    as_str = select(cast(XOrder.qty, str)).where(XOrder.id == 1)
    as_int = select(cast(XOrder.qty, int)).where(XOrder.id == 1)
    as_num = select(cast(XOrder.total, T.Numeric(10, 0))).where(XOrder.id == 5)
    as_num2 = select(cast(XOrder.total, T.Numeric(10, 2))).where(XOrder.id == 5)
    q = ORDERS[0][4]
    assert await orm_rows(shop, as_str) == [(str(q),)]
    assert await orm_rows(shop, as_int) == [(q,)]
    total5 = ORDERS[4][3]
    assert await orm_rows(shop, as_num2) == [(total5,)]
    assert await orm_rows(shop, as_num) == [(total5.quantize(D(1)),)]
    with pytest.raises(ArgumentError):
        cast(XOrder.qty, object)


# -- NULL, TRUE, FALSE -----------------------------------------------------------------------------

async def test_constants(shop: Engine) -> None:
    assert await orm_rows(shop, select(true(), false(), null())) == [(True, False, None)]
    n = len(ORDERS)
    assert await orm_rows(shop, select(func.count(XOrder.id)).where(true())) == [(n,)]
    assert await orm_rows(shop, select(func.count(XOrder.id)).where(false())) == [(0,)]
    assert await orm_rows(shop, select(func.count(XOrder.id)).where(~false())) == [(n,)]
    flagged = case((XOrder.discount.is_not(None), true()), else_=false())
    got = await orm_rows(shop, select(XOrder.id, flagged).order_by(XOrder.id))
    assert got == [(o[0], o[6] is not None) for o in ORDERS]
    got = await orm_rows(shop, select(XOrder.id, case((XOrder.qty > 3, XOrder.qty), else_=null()))
                      .order_by(XOrder.id))
    assert got == [(o[0], o[4] if o[4] > 3 else None) for o in ORDERS]


# -- DISTINCT inside aggregates --------------------------------------------------------------------

async def test_distinct_in_aggregates_matches_raw_sql(shop: Engine) -> None:
    stmt = select(func.count(distinct(XOrder.customer_id)), func.count(XOrder.status.distinct()),
                  func.sum(distinct(XOrder.qty)), func.count(XOrder.id))
    got = await orm_rows(shop, stmt)
    raw = await orm_rows(shop, text(
        "SELECT count(DISTINCT customer_id), count(DISTINCT status), sum(DISTINCT qty), count(id) FROM xp_orders"))
    assert got == raw
    assert got == [(len({o[1] for o in ORDERS}), 3, sum({o[4] for o in ORDERS}), len(ORDERS))]
    assert all(type(v) is int for v in got[0])
    # per group, through a join
    stmt2 = (select(XCustomer.country, func.count(distinct(XOrder.customer_id)))
             .join(XOrder, XOrder.customer_id == XCustomer.id).group_by(XCustomer.country)
             .order_by(XCustomer.country))
    raw2 = await orm_rows(shop, text(
        "SELECT c.country, count(DISTINCT o.customer_id) FROM xp_customers c JOIN xp_orders o "
        "ON o.customer_id = c.id GROUP BY c.country ORDER BY c.country"))
    assert await orm_rows(shop, stmt2) == raw2


# -- window functions ------------------------------------------------------------------------------

RANKS_SQL = (
    "SELECT o.id, row_number() OVER (PARTITION BY c.country ORDER BY o.total DESC, o.id), "
    "rank() OVER (PARTITION BY c.country ORDER BY o.qty DESC), "
    "dense_rank() OVER (PARTITION BY c.country ORDER BY o.qty DESC) "
    "FROM xp_orders o JOIN xp_customers c ON c.id = o.customer_id ORDER BY o.id")


async def test_ranking_window_functions_match_raw_sql(shop: Engine) -> None:
    stmt = (select(XOrder.id,
                   func.row_number().over(partition_by=XCustomer.country,
                                          order_by=[XOrder.total.desc(), XOrder.id]).label("rn"),
                   func.rank().over(partition_by=XCustomer.country, order_by=XOrder.qty.desc()),
                   func.dense_rank().over(partition_by=[XCustomer.country], order_by=XOrder.qty.desc()))
            .join(XCustomer, XCustomer.id == XOrder.customer_id).order_by(XOrder.id))
    got = await orm_rows(shop, stmt)
    assert got == await orm_rows(shop, text(RANKS_SQL))
    assert all(type(v) is int for r in got for v in r)
    # row_number is 1..n within each country, in total order
    country = {i: c for i, _, c in CUSTOMERS}
    rn = {r[0]: r[1] for r in got}
    for c in COUNTRIES:
        mine = sorted((o for o in ORDERS if country[o[1]] == c), key=lambda o: (-o[3], o[0]))
        assert [rn[o[0]] for o in mine] == list(range(1, len(mine) + 1))


async def test_running_sum_and_lag_lead_match_raw_sql(shop: Engine) -> None:
    stmt = (select(XOrder.id,
                   func.sum(XOrder.total).over(partition_by=XOrder.customer_id, order_by=XOrder.id).label("run"),
                   func.sum(XOrder.total).over(partition_by=XOrder.customer_id),
                   func.lag(XOrder.total).over(partition_by=XOrder.customer_id, order_by=XOrder.id),
                   func.lead(XOrder.qty, 2).over(order_by=XOrder.id),
                   func.count(XOrder.id).over())
            .order_by(XOrder.id))
    got = await orm_rows(shop, stmt)
    raw = await orm_rows(shop, text(
        "SELECT id, sum(total) OVER (PARTITION BY customer_id ORDER BY id), "
        "sum(total) OVER (PARTITION BY customer_id), "
        "lag(total) OVER (PARTITION BY customer_id ORDER BY id), lead(qty, 2) OVER (ORDER BY id), "
        "count(id) OVER () FROM xp_orders ORDER BY id"))
    assert got == _norm(raw)
    assert all(isinstance(r[1], D) and isinstance(r[2], D) for r in got)
    assert all(r[3] is None or isinstance(r[3], D) for r in got)
    assert all(r[4] is None or type(r[4]) is int for r in got)
    # the running sum, from the seed
    running: dict[int, Decimal] = {}
    for (oid, cid, _, total, *_), row in zip(ORDERS, got):
        running[cid] = running.get(cid, D(0)) + total
        assert row[1] == running[cid], oid


async def test_window_partition_and_order_are_part_of_the_statement_shape(shop: Engine) -> None:
    by_customer = select(XOrder.id, func.row_number().over(partition_by=XOrder.customer_id, order_by=XOrder.id))
    by_status = select(XOrder.id, func.row_number().over(partition_by=XOrder.status, order_by=XOrder.id))
    by_status_desc = select(XOrder.id, func.row_number().over(partition_by=XOrder.status,
                                                              order_by=XOrder.id.desc()))
    a = dict(await orm_rows(shop, by_customer.order_by(XOrder.id)))
    b = dict(await orm_rows(shop, by_status.order_by(XOrder.id)))
    c = dict(await orm_rows(shop, by_status_desc.order_by(XOrder.id)))
    first = ORDERS[0]
    assert a[1] == 1 and b[1] == 1
    n_status = sum(1 for o in ORDERS if o[5] == first[5])
    assert c[1] == n_status
    assert a != b


# -- EXTRACT ---------------------------------------------------------------------------------------

FIELDS = ["year", "month", "day", "hour", "minute", "second", "dow", "doy"]


def _field(at: dt.datetime, field: str) -> int:
    if field == "dow":
        return (at.weekday() + 1) % 7
    if field == "doy":
        return at.timetuple().tm_yday
    return int(getattr(at, field))


async def test_extract_on_both_backends(shop: Engine) -> None:
    stmt = select(XOrder.id, *[extract(f, XOrder.placed_at) for f in FIELDS]).order_by(XOrder.id)
    got = await orm_rows(shop, stmt)
    assert got == [(o[0], *[_field(o[2], f) for f in FIELDS]) for o in ORDERS]
    assert all(type(v) is int for r in got for v in r)
    if shop.dialect.name == "postgresql":
        raw_year = "CAST(EXTRACT(YEAR FROM placed_at) AS INTEGER)"
    else:
        raw_year = "CAST(strftime('%Y', placed_at) AS INTEGER)"
    by_year = (select(extract("year", XOrder.placed_at).label("y"), func.count(XOrder.id))
               .group_by(extract("year", XOrder.placed_at)).order_by("y"))
    raw = await orm_rows(shop, text(f"SELECT {raw_year} AS y, count(id) FROM xp_orders GROUP BY {raw_year} ORDER BY y"))
    assert await orm_rows(shop, by_year) == raw
    got_2022 = await orm_rows(shop, select(func.count(XOrder.id)).where(extract("YEAR", XOrder.placed_at) == 2022))
    assert got_2022 == [(sum(1 for o in ORDERS if o[2].year == 2022),)]
    with pytest.raises(ArgumentError):
        extract("fortnight", XOrder.placed_at)


# -- result types of aggregates --------------------------------------------------------------------

async def test_aggregate_result_types_are_the_same_on_both_backends(shop: Engine) -> None:
    stmt = select(func.sum(XOrder.total), func.count(XOrder.id), func.count(), func.avg(XOrder.total),
                  func.avg(XOrder.qty), func.sum(XOrder.qty), func.max(func.coalesce(XOrder.discount, XOrder.total)),
                  func.min(func.coalesce(None, XOrder.total)))
    (s, n, n2, avg_total, avg_qty, sum_qty, mx, mn), = await orm_rows(shop, stmt)
    totals = [o[3] for o in ORDERS]
    assert s == sum(totals) and type(s) is D
    assert n == n2 == len(ORDERS) and type(n) is int
    # avg of a Numeric column: a Decimal at the column's scale; of integers: a float
    assert type(avg_total) is D and abs(avg_total - sum(totals) / len(totals)) <= D("0.005")
    assert type(avg_qty) is float and avg_qty == pytest.approx(sum(o[4] for o in ORDERS) / len(ORDERS))
    assert sum_qty == sum(o[4] for o in ORDERS) and type(sum_qty) is int
    assert mx == max(o[6] if o[6] is not None else o[3] for o in ORDERS) and type(mx) is D
    assert mn == min(totals) and type(mn) is D
    raw = await orm_rows(shop, text("SELECT sum(total), count(id), avg(qty) FROM xp_orders"))
    assert (_num(raw[0][0]), raw[0][1]) == (s, n)
    assert float(raw[0][2]) == pytest.approx(avg_qty)


async def test_division_is_true_division_and_floor_division_is_explicit(shop: Engine) -> None:
    """``/`` of integers does not truncate (a Decimal, as in SQLAlchemy 2.x); ``//`` floors,
    ``%`` is the remainder; the same answers on both backends, matching Python."""
    stmt = (select(XOrder.id, XOrder.qty / 4, XOrder.qty // 4, XOrder.qty % 4, XOrder.total // 7,
                   (XOrder.qty + 1) / (XOrder.qty + 3), func.sum(XOrder.qty).over() / func.count().over())
            .order_by(XOrder.id))
    rows = await orm_rows(shop, stmt)
    mean = D(sum(o[4] for o in ORDERS)) / len(ORDERS)
    assert len(rows) == len(ORDERS)
    for (oid, quarter, floor4, rem, floor_total, ratio, avg), o in zip(rows, ORDERS):
        qty, total = o[4], o[3]
        assert oid == o[0]
        assert type(quarter) is D and quarter == D(qty) / 4
        assert type(floor4) is int and floor4 == qty // 4 and rem == qty % 4 and type(rem) is int
        assert floor_total == total // 7  # totals are positive: Python floors like FLOOR()
        assert type(ratio) is D and abs(ratio - D(qty + 1) / (qty + 3)) < D("1e-12")
        assert abs(avg - mean) < D("1e-12")
    # raw SQL truncates integer division: the ORM's answer is the one written with a cast
    raw = await raw_sql(shop, "SELECT qty / 4, qty / CAST(4 AS REAL) FROM xp_orders ORDER BY id")
    assert [r[0] for r in raw] == [o[4] // 4 for o in ORDERS]
    assert [D(repr(float(r[1]))) for r in raw] == [q for _, q, *_ in rows]


def test_constructs_move_onto_a_table_alias() -> None:
    """What joinedload does to a relationship's order_by: every column inside is the alias's."""
    from aiouow.sql.elements import adapt_columns
    from aiouow.sql.schema import TableAlias

    table = XOrder.__table__  # type: ignore[attr-defined]
    alias = TableAlias(table, "o2")
    exprs = [case((XOrder.qty > 1, XOrder.total), else_=XOrder.discount), cast(XOrder.qty, str),
             func.count(distinct(XOrder.qty)), extract("year", XOrder.placed_at),
             func.rank().over(partition_by=XOrder.status, order_by=XOrder.id.desc())]
    for e in exprs:
        moved = adapt_columns(e, alias.corresponding_column)
        assert moved._ck([]) != e._ck([]), e
        tables = set(moved._tables())
        assert tables == {alias}, (e, tables)
