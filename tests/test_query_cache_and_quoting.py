"""The statement-shape cache, bound parameters and result types of the query constructs
(subqueries, CTEs, set operations, aliases, expressions), on SQLite and PostgreSQL.

Each statement runs twice with different values, the second time served from the cache, and is
compared with the same query in raw SQL; statements that share a cache key must share their SQL
(checked against a compile that bypasses the cache).
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from aiouow import (
    AsyncSession,
    Engine,
    ForeignKey,
    Model,
    aliased,
    and_,
    case,
    cast,
    column,
    distinct,
    exc,
    exists,
    extract,
    func,
    literal,
    null,
    select,
    union_all,
)
from aiouow import types as T

from .query_support import orm_rows, raw_sql

D = Decimal


class QcColor(enum.Enum):
    red = 1
    green = 2


class QcEmp(Model):
    """Existing-schema style names: the attribute and the column name differ."""

    __tablename__ = "qk_emps"
    id: int = column("EmpId", primary_key=True)
    name: str = column("Name")
    boss_id: int | None = column("BossId", ForeignKey("qk_emps.EmpId"), nullable=True)
    salary: Decimal = column(type_=T.Numeric(10, 2))
    hired: dt.datetime = column()
    active: bool = column()
    color: QcColor = column()
    doc: Any = column(type_=T.JSON())
    uid: uuid.UUID = column()


class QcOrder(Model):
    __tablename__ = "qk_orders"
    id: int = column(primary_key=True)
    emp_id: int = column(ForeignKey("qk_emps.EmpId"))
    total: Decimal = column(type_=T.Numeric(10, 2))


EMPS = [(i, f"e'{i}", None if i == 1 else (i - 1) // 2 + 1, D(i * 100 + 25) / 100,
         dt.datetime(2020 + i % 5, 1 + i % 12, 3, 4, 5, 6), i % 2 == 0,
         QcColor.red if i % 3 else QcColor.green, {"k": i}, uuid.UUID(int=i)) for i in range(1, 21)]
ORDERS = [(i, 1 + i * 7 % 20, D(i * 37 % 500) + D("0.10")) for i in range(1, 81)]


@pytest.fixture
async def qc(db: Engine) -> Engine:
    async with AsyncSession(db) as s:
        for e in EMPS:
            s.add(QcEmp(id=e[0], name=e[1], boss_id=e[2], salary=e[3], hired=e[4], active=e[5],
                        color=e[6], doc=e[7], uid=e[8]))
            await s.flush()  # each boss before the employees reporting to it
        s.add_all([QcOrder(id=i, emp_id=e, total=t) for i, e, t in ORDERS])
        await s.commit()
    return db


def uncached(engine: Engine, stmt: Any) -> tuple[str, list[Any]]:
    """The statement's SQL and parameters compiled afresh, bypassing the cache."""
    d = engine.dialect
    compiled, binds = d.compile(stmt)
    fresh = d.compiler_class(d, binds).process(stmt)
    assert (compiled.sql, d.params_for(compiled, binds, None)) == (fresh.sql, d.params_for(fresh, binds, None)), \
        "the cache served another statement's SQL"
    return fresh.sql, d.params_for(fresh, binds, None)


async def twice(engine: Engine, build: Callable[[Any], Any], raw: Callable[[Any], str],
                values: tuple[Any, Any]) -> None:
    """``build(v)`` for two values: the second run is a cache hit; both match the raw SQL."""
    results = []
    for v in values:
        stmt = build(v)
        uncached(engine, stmt)
        got = sorted(await orm_rows(engine, stmt))
        assert got == sorted(await raw_sql(engine, raw(v))), (v, uncached(engine, stmt))
        results.append(got)
    assert results[0] != results[1], "the two values must give different rows, or the test cannot fail"


# -- bound values in text order -------------------------------------------------------------------
async def test_a_from_entry_outside_the_join_chain_takes_its_own_values(qc: Engine) -> None:
    # the subquery is listed before the JOIN chain: on SQLite its "?" came after the ON clause's
    def build(v: Any) -> Any:
        sq = select(QcOrder.emp_id.label("x")).where(QcOrder.total > v[0]).subquery("sq")
        return select(QcEmp.id, sq.c.x).join(QcOrder, and_(QcOrder.emp_id == QcEmp.id, QcOrder.total < v[1]))

    def raw(v: Any) -> str:
        return (f'SELECT e."EmpId", sq.x FROM (SELECT emp_id AS x FROM qk_orders WHERE total > {v[0]}) AS sq, '
                f'qk_emps e JOIN qk_orders o ON o.emp_id = e."EmpId" AND o.total < {v[1]}')

    await twice(qc, build, raw, ((480, 20), (470, 30)))


# -- one name, two subqueries ---------------------------------------------------------------------
async def test_two_subqueries_of_one_name_never_share_cached_sql(qc: Engine) -> None:
    def named() -> Any:  # no bound values inside: their repeats do not tell the two apart
        return select(QcOrder.emp_id, QcOrder.total).subquery("t")

    one = named()
    good = select(func.count()).select_from(one).where(one.c.emp_id > 5, one.c.total > 300)
    bad = select(func.count()).select_from(one).where(one.c.emp_id > 5, named().c.total > 300)
    n = sum(1 for o in ORDERS if o[2] > 300 and o[1] > 5)
    # either order: a cached good shape must not serve the bad statement, nor the reverse
    assert await orm_rows(qc, good) == [(n,)]
    with pytest.raises(exc.DBAPIError):
        await orm_rows(qc, bad)
    qc.dialect.cache.clear()
    with pytest.raises(exc.DBAPIError):
        await orm_rows(qc, bad)
    assert await orm_rows(qc, good) == [(n,)]


async def test_two_ctes_of_one_name_are_refused_even_after_a_cached_shape(qc: Engine) -> None:
    def named() -> Any:
        return select(QcOrder.emp_id, QcOrder.total).cte("t")

    one, other = named(), named()
    good = select(one.c.emp_id, one.c.total).where(one.c.emp_id > 5)
    bad = select(one.c.emp_id, other.c.total).where(one.c.emp_id > 5)
    assert len(await orm_rows(qc, good)) == sum(1 for o in ORDERS if o[1] > 5)
    with pytest.raises(exc.ArgumentError, match="two different CTEs are named 't'"):
        await orm_rows(qc, bad)


# -- column names of a subquery -------------------------------------------------------------------
async def test_columns_of_one_name_in_a_subquery_are_told_apart(qc: Engine) -> None:
    sq = select(QcOrder.emp_id, func.count(QcOrder.id), func.count(distinct(QcOrder.total))) \
        .group_by(QcOrder.emp_id).subquery()
    assert sq.c.keys() == ["emp_id", "count", "count_1"]
    got = await orm_rows(qc, select(sq.c.emp_id, sq.c.count, sq.c.count_1).order_by(sq.c.emp_id))
    raw = await raw_sql(qc, "SELECT emp_id, count(id), count(DISTINCT total) FROM qk_orders "
                            "GROUP BY emp_id ORDER BY emp_id")
    assert got == raw
    # two tables' "id" (one spelled "EmpId" in the database): sq.c.id and sq.c.id_1
    pairs = select(QcEmp.id, QcOrder.id, QcOrder.total).join(QcOrder, QcOrder.emp_id == QcEmp.id).subquery()
    assert pairs.c.keys() == ["id", "id_1", "total"]
    got = await orm_rows(qc, select(pairs.c.id, pairs.c.id_1).where(pairs.c.total > 400))
    raw = await raw_sql(qc, 'SELECT e."EmpId", o.id FROM qk_emps e JOIN qk_orders o ON o.emp_id = e."EmpId" '
                            "WHERE o.total > 400")
    assert sorted(got) == sorted(raw) and any(a != b for a, b in raw)
    # a CTE's column list is the subquery's: PostgreSQL refuses a name listed twice
    cte = select(QcEmp.id, QcOrder.id).join(QcOrder, QcOrder.emp_id == QcEmp.id).cte("pairs")
    got = await orm_rows(qc, select(cte.c.id, cte.c.id_1).where(cte.c.id_1 < 10))
    assert sorted(got) == sorted((e, i) for i, e, _ in ORDERS if i < 10)


async def test_an_aliased_model_with_database_names_in_a_subquery(qc: Engine) -> None:
    m = aliased(QcEmp, name="boss")
    sq = select(QcEmp, m.id, m.salary).join(m, QcEmp.boss_id == m.id).subquery()
    assert sq.c.keys()[:2] == ["id", "name"] and sq.c.keys()[-2:] == ["id_1", "salary_1"]
    got = await orm_rows(qc, select(sq.c.id, sq.c.id_1, sq.c.salary_1, sq.c.hired).where(sq.c.id > 17))
    assert sorted(got) == [(e[0], e[2], EMPS[e[2] - 1][3], e[4]) for e in EMPS if e[0] > 17]


# -- result types through subqueries, CTEs and set operations ---------------------------------------
def _typed(e: QcEmp | tuple[Any, ...]) -> tuple[Any, ...]:
    return e[3], e[4], e[5], e[6], e[7], e[8]  # type: ignore[index]


async def test_types_read_back_through_a_subquery_a_cte_and_a_union_led_by_nulls(qc: Engine) -> None:
    cols = (QcEmp.salary, QcEmp.hired, QcEmp.active, QcEmp.color, QcEmp.doc, QcEmp.uid)
    want = sorted((_typed(e) for e in EMPS if e[0] > 15), key=lambda r: r[0])
    sq = select(*cols).where(QcEmp.id > 15).subquery()
    cte = select(*cols).where(QcEmp.id > 15).cte("typed")
    for stmt in (select(sq), select(cte)):
        assert sorted(await orm_rows(qc, stmt), key=lambda r: r[0]) == want
    # a set operation's first SELECT of null()s: the types come from the next one (SQLite read
    # floats, text, 0/1 and the enum's name; PostgreSQL the enum's name)
    nulls = select(*(null() for _ in cols))
    led = union_all(nulls, select(*cols).where(QcEmp.id > 15))
    got = await orm_rows(qc, led)
    assert (None,) * 6 in got
    assert sorted((r for r in got if r[0] is not None), key=lambda r: r[0]) == want
    assert all(isinstance(r[0], Decimal) and isinstance(r[1], dt.datetime) and isinstance(r[2], bool)
               and isinstance(r[3], QcColor) and isinstance(r[5], uuid.UUID) for r in got if r[0] is not None)
    # ... also as a subquery's columns
    led_sq = union_all(select(null().label("s"), null().label("h")),
                       select(QcEmp.salary.label("s"), QcEmp.hired.label("h"))).subquery()
    got = await orm_rows(qc, select(led_sq.c.s, led_sq.c.h).where(led_sq.c.s.is_not(None)))
    assert sorted(got) == sorted((e[3], e[4]) for e in EMPS)
    # an integer literal first and decimals after: decimals on both backends, as PostgreSQL types it
    got = await orm_rows(qc, union_all(select(literal(0)), select(QcEmp.salary).where(QcEmp.id == 3)))
    assert sorted(got) == [(D("0"),), (D("3.25"),)] and all(isinstance(r[0], Decimal) for r in got)


async def test_extract_of_a_bound_value(qc: Engine) -> None:
    # PostgreSQL refused EXTRACT(YEAR FROM $1): "function pg_catalog.extract(unknown, unknown) is
    # not unique"
    def build(v: Any) -> Any:
        return select(extract("year", literal(v)), extract("month", literal(v.date())), QcEmp.id).where(
            extract("year", QcEmp.hired) == extract("year", literal(v)))

    for v in (dt.datetime(2021, 5, 1, 12), dt.datetime(2023, 7, 2)):
        got = await orm_rows(qc, build(v))
        assert sorted(got) == sorted((v.year, v.month, e[0]) for e in EMPS if e[4].year == v.year) and got


async def test_in_of_a_subquery_says_to_pass_a_select(qc: Engine) -> None:
    sq = select(QcOrder.emp_id).subquery()
    with pytest.raises(exc.ArgumentError, match=r"pass a SELECT, not a subquery: select\(sq.c.<column>\)"):
        QcEmp.id.in_(sq)
    with pytest.raises(exc.ArgumentError, match="not_in"):
        QcEmp.id.not_in(sq)
    with pytest.raises(exc.ArgumentError, match="takes a list of values or a select"):
        QcEmp.id.in_(5)
    got = await orm_rows(qc, select(QcEmp.id).where(QcEmp.id.not_in(select(sq.c.emp_id))))
    assert sorted(got) == sorted((e[0],) for e in EMPS if e[0] not in {o[1] for o in ORDERS})


# -- quoting --------------------------------------------------------------------------------------
ODD = ['a "quoted" name', "select", "Mixed Case", "it's", "$1 ? :x %s"]


async def test_odd_names_are_quoted_and_odd_strings_bound(qc: Engine) -> None:
    for name in ODD:
        m = aliased(QcEmp, name=name)
        lbl = func.count(m.id).label(name)
        stmt = select(m.active, lbl).group_by(m.active).order_by(name)
        assert sorted(await orm_rows(qc, stmt)) == [(False, 10), (True, 10)]
        sq = select(m.id.label(name), literal(name).label(name + "2")).where(m.id < 3).subquery(name)
        assert sorted(await orm_rows(qc, select(sq.c[name], sq.c[name + "2"]))) == [(1, name), (2, name)]
        cte = select(m.id.label(name)).where(m.id < 3).cte(name)
        assert sorted(await orm_rows(qc, select(cte.c[name]))) == [(1,), (2,)]
        # values that look like placeholders or end a string literal are bound, never spliced
        got = await orm_rows(qc, select(case((QcEmp.id > 1, name), else_=name + "'"), literal(name + "--"),
                                        cast(literal(name), str)).where(QcEmp.id < 3))
        assert sorted(got) == [(name, name + "--", name), (name + "'", name + "--", name)]


# -- the cache stays one entry per shape -------------------------------------------------------------
async def test_a_statement_built_per_call_with_an_anonymous_alias_compiles_once(qc: Engine) -> None:
    def bosses_of(limit: int) -> Any:
        e, m = aliased(QcEmp), aliased(QcEmp)  # new anonymous aliases per call
        return select(e.id, m.name).join(m, e.boss_id == m.id).where(e.id > limit)

    want = {lim: sorted((e[0], EMPS[e[2] - 1][1]) for e in EMPS if e[2] is not None and e[0] > lim)
            for lim in range(10, 16)}
    await orm_rows(qc, bosses_of(9))
    before = qc.dialect.cache.compilations
    for lim in range(10, 16):
        assert sorted(await orm_rows(qc, bosses_of(lim))) == want[lim]
    assert qc.dialect.cache.compilations == before, "each call's new alias name was a new cache entry"
    # one anonymous alias named twice is one FROM entry; two are a cross product of their rows
    a, b = aliased(QcEmp), aliased(QcEmp)
    assert await orm_rows(qc, select(func.count()).select_from(a).where(a.id == a.id)) == [(20,)]
    assert await orm_rows(qc, select(func.count(a.id)).where(a.id == b.id)) == [(20,)]
    assert await orm_rows(qc, select(func.count(a.id), func.count(b.id))) == [(400, 400)]


async def test_order_by_a_label_of_the_same_name_but_other_values_orders_by_its_own(qc: Engine) -> None:
    # both labels are "k" with one shape: ORDER BY "k" sorted by the selected one's values
    shown = case((QcEmp.id > 10, "a"), else_="b").label("k")
    order = case((QcEmp.id > 10, "b"), else_="a").label("k")
    got = await orm_rows(qc, select(QcEmp.id, shown).order_by(order, QcEmp.id))
    assert [r[0] for r in got] == list(range(1, 21))
    got = await orm_rows(qc, select(QcEmp.id, shown).order_by("k", QcEmp.id))
    assert [r[0] for r in got] == [*range(11, 21), *range(1, 11)]


async def test_exists_in_the_column_list_reads_as_a_bool(qc: Engine) -> None:
    # typed as the SELECT's first column, SQLite read EXISTS as the integers 0 / 1
    has = select(QcOrder.id).where(QcOrder.emp_id == QcEmp.id, QcOrder.total > 400)
    stmt = select(QcEmp.id, exists(has).label("has"), ~exists(has), has.exists()).where(QcEmp.id < 6)
    got = await orm_rows(qc, stmt)
    want = {e[0]: any(o[1] == e[0] and o[2] > 400 for o in ORDERS) for e in EMPS if e[0] < 6}
    assert sorted(got) == sorted((k, v, not v, v) for k, v in want.items()) and len(set(want.values())) == 2
    assert all(type(v) is bool for r in got for v in r[1:])
    sq = select(QcEmp.id, exists(has).label("has")).subquery()
    assert all(type(r[0]) is bool for r in await orm_rows(qc, select(sq.c.has)))
