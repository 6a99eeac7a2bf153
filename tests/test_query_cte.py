"""Common table expressions (plain and recursive) and a window function in a subquery, on a
seeded company (an employee hierarchy, a comment thread, customers and their orders), each
checked against the same query written in raw SQL, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest

from aiouow import AsyncSession, Engine, ForeignKey, Model, column, delete, func, literal, select
from aiouow import types as T
from aiouow.exc import ArgumentError
from aiouow.sql import CTE

from .query_support import money, orm_rows, raw_sql

D = Decimal


class CteEmployee(Model):
    __tablename__ = "cte_employees"
    id: int = column(primary_key=True)
    name: str = column()
    reports_to: int | None = column(ForeignKey("cte_employees.id"), nullable=True)
    salary: Decimal = column(type_=T.Numeric(10, 2))


class CteComment(Model):
    __tablename__ = "cte_comments"
    id: int = column(primary_key=True)
    parent_id: int | None = column(ForeignKey("cte_comments.id"), nullable=True)
    body: str = column()


class CteCustomer(Model):
    __tablename__ = "cte_customers"
    id: int = column(primary_key=True)
    name: str = column()
    country: str = column()


class CteOrder(Model):
    __tablename__ = "cte_orders"
    id: int = column(primary_key=True)
    customer_id: int = column(ForeignKey("cte_customers.id"))
    total: Decimal = column(type_=T.Numeric(10, 2))


def _seed() -> tuple[list[Any], ...]:
    rnd = random.Random(1212)
    # a CEO, then levels of managers: each new employee reports to someone hired before
    employees: list[tuple[int, str, int | None, Decimal]] = [(1, "ceo", None, D("250000.00"))]
    for i in range(2, 301):
        boss = rnd.randint(max(1, i // 3), i - 1) if i > 4 else 1
        employees.append((i, f"emp{i:03}", boss, D(rnd.randint(3000000, 12000000)) / 100))
    comments: list[tuple[int, int | None, str]] = []
    for i in range(1, 201):
        parent = None if i <= 10 or rnd.random() < 0.1 else rnd.randint(max(1, i - 30), i - 1)
        comments.append((i, parent, f"comment {i}"))
    customers = [(i, f"cust{i:03}", rnd.choice(["DE", "FR", "US", "JP"])) for i in range(1, 81)]
    orders = [(i, rnd.randint(1, 80), D(rnd.randint(500, 90000)) / 100) for i in range(1, 601)]
    return employees, comments, customers, orders


EMPLOYEES, COMMENTS, CUSTOMERS, ORDERS = _seed()


@pytest.fixture
async def company(db: Engine) -> Engine:
    async with AsyncSession(db) as s:
        for i, n, r, sal in EMPLOYEES:  # managers first: the foreign key points backwards
            s.add(CteEmployee(id=i, name=n, reports_to=r, salary=sal))
        for i, p, b in COMMENTS:
            s.add(CteComment(id=i, parent_id=p, body=b))
        s.add_all([CteCustomer(id=i, name=n, country=c) for i, n, c in CUSTOMERS])
        await s.flush()
        s.add_all([CteOrder(id=i, customer_id=c, total=t) for i, c, t in ORDERS])
        await s.commit()
    return db


E = CteEmployee

RAW_TREE = ("WITH RECURSIVE tree(id, reports_to, depth) AS ("
            "SELECT id, reports_to, 0 FROM cte_employees WHERE reports_to IS NULL "
            "UNION ALL SELECT e.id, e.reports_to, t.depth + 1 FROM cte_employees e "
            "JOIN tree t ON e.reports_to = t.id) ")


def _tree() -> CTE:
    tree = (select(E.id, E.reports_to, literal(0).label("depth"))
            .where(E.reports_to == None).cte("tree", recursive=True))  # noqa: E711
    return tree.union_all(
        select(E.id, E.reports_to, (tree.c.depth + 1).label("depth")).join(tree, E.reports_to == tree.c.id))


# -- plain CTEs ---------------------------------------------------------------------------------
async def test_cte_in_from_with_its_columns(company: Engine) -> None:
    spent = (select(CteOrder.customer_id, func.sum(CteOrder.total).label("spent"))
             .group_by(CteOrder.customer_id).cte("spent"))
    stmt = select(spent.c.customer_id, spent.c.spent).where(spent.c.spent > 2000).order_by(spent.c.customer_id)
    raw = await raw_sql(company, "WITH spent AS (SELECT customer_id, sum(total) AS spent FROM cte_orders "
                              "GROUP BY customer_id) SELECT customer_id, spent FROM spent "
                              "WHERE spent > 2000 ORDER BY customer_id")
    assert money(await orm_rows(company, stmt)) == money(raw) and 0 < len(raw) < 80


async def test_cte_joined_to_a_model_returns_objects(company: Engine) -> None:
    spent = (select(CteOrder.customer_id, func.sum(CteOrder.total).label("spent"))
             .group_by(CteOrder.customer_id).cte())  # anonymous
    stmt = (select(CteCustomer, spent.c.spent).join(spent, spent.c.customer_id == CteCustomer.id)
            .where(CteCustomer.country == "DE").order_by(spent.c.spent.desc(), CteCustomer.id).limit(5))
    raw = await raw_sql(company, "WITH s AS (SELECT customer_id, sum(total) AS spent FROM cte_orders "
                              "GROUP BY customer_id) SELECT c.id, s.spent FROM cte_customers c "
                              "JOIN s ON s.customer_id = c.id WHERE c.country = 'DE' "
                              "ORDER BY s.spent DESC, c.id LIMIT 5")
    async with AsyncSession(company) as s:
        rows = (await s.execute(stmt)).all()
        assert money([(c.id, v) for c, v in rows]) == money(raw) and len(raw) == 5
        assert await s.get(CteCustomer, raw[0][0]) is rows[0][0]


async def test_several_ctes_one_referring_to_another_and_bound_values_in_order(company: Engine) -> None:
    big = select(CteOrder.id, CteOrder.customer_id, CteOrder.total).where(CteOrder.total > 250).cte("big")
    per = (select(big.c.customer_id, func.count(big.c.id).label("n"))
           .where(big.c.total < 800).group_by(big.c.customer_id).cte("per"))
    stmt = (select(CteCustomer.id, per.c.n).join(per, per.c.customer_id == CteCustomer.id)
            .where(CteCustomer.country != "JP", per.c.n >= 2).order_by(CteCustomer.id))
    raw = await raw_sql(company, "WITH big AS (SELECT id, customer_id, total FROM cte_orders WHERE total > 250), "
                              "per AS (SELECT customer_id, count(id) AS n FROM big WHERE total < 800 "
                              "GROUP BY customer_id) SELECT c.id, per.n FROM cte_customers c "
                              "JOIN per ON per.customer_id = c.id WHERE c.country != 'JP' AND per.n >= 2 "
                              "ORDER BY c.id")
    assert await orm_rows(company, stmt) == raw and raw
    compiled, _ = company.dialect.compile(stmt)
    assert compiled.sql.count("WITH ") == 1 and compiled.sql.index('"big"(') < compiled.sql.index('"per"(')


async def test_a_cte_referenced_twice_renders_once(company: Engine) -> None:
    de = select(CteCustomer.id).where(CteCustomer.country == "DE").cte("de")
    stmt = (select(CteOrder.id).join(de, de.c.id == CteOrder.customer_id)
            .where(CteOrder.customer_id.in_(select(de.c.id))).order_by(CteOrder.id))
    compiled, _ = company.dialect.compile(stmt)
    assert compiled.sql.count('"de"("id") AS') == 1
    raw = await raw_sql(company, "SELECT o.id FROM cte_orders o JOIN cte_customers c ON c.id = o.customer_id "
                              "WHERE c.country = 'DE' ORDER BY o.id")
    assert await orm_rows(company, stmt) == raw and raw


async def test_cache_key_tells_ctes_apart(company: Engine) -> None:
    def stmt(country: str, name: str) -> Any:
        c = select(CteCustomer.id).where(CteCustomer.country == country).cte(name)
        return select(func.count()).select_from(c)

    counts = {k: sum(1 for c in CUSTOMERS if c[2] == k) for k in ("DE", "FR")}
    assert await orm_rows(company, stmt("DE", "x")) == [(counts["DE"],)]
    assert await orm_rows(company, stmt("FR", "x")) == [(counts["FR"],)]
    key_x = stmt("DE", "x")._ck([])
    assert key_x == stmt("FR", "x")._ck([]) and key_x != stmt("DE", "y")._ck([])
    assert _tree()._ck([]) != (select(E.id, E.reports_to, literal(0).label("depth")).cte("tree"))._ck([])


async def test_recursive_cte_compiles_once_per_shape_with_values_in_order(company: Engine) -> None:
    def under(boss: int, max_depth: int, min_id: int) -> Any:
        sub = select(E.id, literal(1).label("depth")).where(E.reports_to == boss).cte("sub", recursive=True)
        sub = sub.union_all(select(E.id, (sub.c.depth + 1).label("depth"))
                            .join(sub, E.reports_to == sub.c.id).where(sub.c.depth < max_depth))
        return select(sub.c.id).where(sub.c.id >= min_id).order_by(sub.c.id)

    def raw(boss: int, max_depth: int, min_id: int) -> str:
        return (f"WITH RECURSIVE sub(id, depth) AS (SELECT id, 1 FROM cte_employees WHERE reports_to = {boss} "
                "UNION ALL SELECT e.id, s.depth + 1 FROM cte_employees e JOIN sub s ON e.reports_to = s.id "
                f"WHERE s.depth < {max_depth}) SELECT id FROM sub WHERE id >= {min_id} ORDER BY id")

    cache = company.dialect.cache
    assert await orm_rows(company, under(1, 2, 0)) == await raw_sql(company, raw(1, 2, 0))
    before = cache.compilations
    for args in ((2, 3, 10), (5, 1, 0), (3, 9, 50)):
        got = await orm_rows(company, under(*args))
        assert got == await raw_sql(company, raw(*args)), args
    assert cache.compilations == before  # other values, one shape: compiled once
    assert len(await orm_rows(company, under(1, 1, 0))) < len(await orm_rows(company, under(1, 3, 0)))


async def test_cte_in_a_delete(company: Engine) -> None:
    sub = select(E.id).where(E.id == 100).cte("sub", recursive=True)
    sub = sub.union_all(select(E.id).join(sub, E.reports_to == sub.c.id))
    below = {r[0] for r in await raw_sql(company, "WITH RECURSIVE sub(id) AS ("
                                                  "SELECT id FROM cte_employees WHERE id = 100 "
                                                  "UNION ALL SELECT e.id "
                                                  "FROM cte_employees e JOIN sub ON e.reports_to = sub.id) "
                                                  "SELECT id FROM sub")}
    assert len(below) > 3  # employee 100 has reports, and they have theirs
    async with AsyncSession(company) as s:
        await s.execute(delete(E).where(E.id.in_(select(sub.c.id)), E.id != 100))
        await s.commit()
    left = {r[0] for r in await raw_sql(company, "SELECT id FROM cte_employees")}
    assert left == {e[0] for e in EMPLOYEES} - (below - {100})


def test_two_ctes_with_one_name_are_refused() -> None:
    a = select(E.id).where(E.id < 5).cte("x")
    b = select(E.id).where(E.id > 5).cte("x")
    from aiouow.dialects.sqlite import SQLiteDialect

    with pytest.raises(ArgumentError, match="named 'x'"):
        SQLiteDialect().compile(select(a.c.id).join(b, a.c.id == b.c.id))


# -- recursive CTEs -----------------------------------------------------------------------------
async def test_recursive_employee_hierarchy_with_depth(company: Engine) -> None:
    tree = _tree()
    stmt = select(tree.c.id, tree.c.depth).order_by(tree.c.depth, tree.c.id)
    raw = await raw_sql(company, RAW_TREE + "SELECT id, depth FROM tree ORDER BY depth, id")
    rows = await orm_rows(company, stmt)
    assert rows == raw and len(rows) == 300 and max(d for _, d in rows) >= 4


async def test_recursive_cte_returns_identity_mapped_objects(company: Engine) -> None:
    # everyone under employee 7, with how far below
    sub = select(E.id, literal(0).label("depth")).where(E.id == 7).cte("sub", recursive=True)
    sub = sub.union_all(select(E.id, (sub.c.depth + 1).label("depth")).join(sub, E.reports_to == sub.c.id))
    stmt = (select(E, sub.c.depth).join(sub, E.id == sub.c.id)
            .where(sub.c.depth > 0).order_by(sub.c.depth, E.id))
    raw = await raw_sql(company, "WITH RECURSIVE sub(id, depth) AS (SELECT id, 0 FROM cte_employees WHERE id = 7 "
                              "UNION ALL SELECT e.id, s.depth + 1 FROM cte_employees e JOIN sub s "
                              "ON e.reports_to = s.id) SELECT e.id, e.name, s.depth FROM cte_employees e "
                              "JOIN sub s ON e.id = s.id WHERE s.depth > 0 ORDER BY s.depth, e.id")
    async with AsyncSession(company) as s:
        boss = await s.get(E, 7)
        rows = (await s.execute(stmt)).all()
        assert [(e.id, e.name, d) for e, d in rows] == raw and len(raw) > 3
        direct = [e for e, d in rows if d == 1]
        assert direct and all(e.reports_to == 7 for e in direct)
        assert await s.get(E, rows[0][0].id) is rows[0][0]
        objs = (await s.scalars(select(E).join(sub, E.id == sub.c.id).where(E.id == 7))).all()
        assert objs == [boss] and objs[0] is boss


async def test_with_holds_the_completed_cte_when_the_anchor_is_named_first(company: Engine) -> None:
    anchor = select(E.id, literal(0).label("depth")).where(E.reports_to == None).cte("t", recursive=True)  # noqa: E711
    full = anchor.union_all(select(E.id, (anchor.c.depth + 1).label("depth")).join(anchor, E.reports_to == anchor.c.id))
    # the scalar subquery (compiled first) names the anchor, the outer FROM the completed CTE: both
    # are "t", and WITH must hold the whole walk
    deepest = select(func.max(anchor.c.depth)).scalar_subquery()
    stmt = select(func.count(full.c.id), deepest).select_from(full)
    raw = await raw_sql(company, RAW_TREE.replace("tree", "t") + "SELECT count(id), (SELECT max(depth) FROM t) FROM t")
    assert await orm_rows(company, stmt) == raw and raw[0][0] == 300 and raw[0][1] >= 4


async def test_recursive_comment_thread(company: Engine) -> None:
    C = CteComment
    root = next(c[0] for c in COMMENTS if c[1] is None and sum(1 for x in COMMENTS if x[1] == c[0]) >= 2)
    thread = (select(C.id, literal(1).label("level")).where(C.id == root).cte("thread", recursive=True))
    thread = thread.union_all(
        select(C.id, (thread.c.level + 1).label("level")).join(thread, C.parent_id == thread.c.id)
        .where(thread.c.level < 50))
    stmt = select(C, thread.c.level).join(thread, thread.c.id == C.id).order_by(C.id)
    raw = await raw_sql(company, "WITH RECURSIVE thread(id, level) AS ("
                                 f"SELECT id, 1 FROM cte_comments WHERE id = {root} "
                                 "UNION ALL SELECT c.id, t.level + 1 FROM cte_comments c JOIN thread t "
                                 "ON c.parent_id = t.id WHERE t.level < 50) SELECT c.id, c.body, t.level "
                                 "FROM cte_comments c JOIN thread t ON t.id = c.id ORDER BY c.id")
    async with AsyncSession(company) as s:
        rows = (await s.execute(stmt)).all()
    assert [(c.id, c.body, lv) for c, lv in rows] == raw and len(raw) >= 3


async def test_recursive_cte_aggregated_per_level(company: Engine) -> None:
    tree = _tree()
    stmt = (select(tree.c.depth, func.count().label("n")).group_by(tree.c.depth).order_by(tree.c.depth))
    raw = await raw_sql(company, RAW_TREE + "SELECT depth, count(*) AS n FROM tree GROUP BY depth ORDER BY depth")
    assert await orm_rows(company, stmt) == raw and sum(n for _, n in raw) == 300
    # the salary bill under each of the CEO's direct reports
    stmt = (select(E.name, func.sum(E.salary)).join(tree, tree.c.id == E.id)
            .where(tree.c.depth >= 1).group_by(E.name).order_by(E.name))
    raw = await raw_sql(company, RAW_TREE + "SELECT e.name, sum(e.salary) FROM cte_employees e "
                                         "JOIN tree ON tree.id = e.id WHERE tree.depth >= 1 "
                                         "GROUP BY e.name ORDER BY e.name")
    assert money(await orm_rows(company, stmt)) == money(raw) and len(raw) == 299


async def test_cte_of_a_set_operation(company: Engine) -> None:
    ends = select(E.id).where(E.id < 5).union(select(E.id).where(E.id > 296)).cte("ends")
    stmt = select(E.name).join(ends, ends.c.id == E.id).order_by(E.name)
    raw = await raw_sql(company, "SELECT name FROM cte_employees WHERE id < 5 OR id > 296 ORDER BY name")
    assert await orm_rows(company, stmt) == raw and len(raw) == 8


# -- a window function in a subquery ----------------------------------------------------------
async def test_best_customer_per_country(company: Engine) -> None:
    spent = func.sum(CteOrder.total)
    ranked = (select(CteCustomer.country, CteCustomer.id.label("customer_id"), spent.label("spent"),
                     func.row_number().over(partition_by=CteCustomer.country,
                                            order_by=(spent.desc(), CteCustomer.id)).label("rn"))
              .join(CteOrder, CteOrder.customer_id == CteCustomer.id)
              .group_by(CteCustomer.country, CteCustomer.id).subquery("ranked"))
    stmt = (select(ranked.c.country, ranked.c.customer_id, ranked.c.spent)
            .where(ranked.c.rn == 1).order_by(ranked.c.country))
    raw = await raw_sql(company, "SELECT country, customer_id, spent FROM (SELECT c.country, c.id AS customer_id, "
                              "sum(o.total) AS spent, row_number() OVER (PARTITION BY c.country "
                              "ORDER BY sum(o.total) DESC, c.id) AS rn FROM cte_customers c "
                              "JOIN cte_orders o ON o.customer_id = c.id GROUP BY c.country, c.id) r "
                              "WHERE rn = 1 ORDER BY country")
    rows = await orm_rows(company, stmt)
    assert money(rows) == money(raw) and len(rows) == 4
    assert all(isinstance(r[2], Decimal) for r in rows)
    # the same answer as objects: the customers joined to the ranking
    objs = (select(CteCustomer, ranked.c.spent).join(ranked, ranked.c.customer_id == CteCustomer.id)
            .where(ranked.c.rn == 1).order_by(CteCustomer.country))
    async with AsyncSession(company) as s:
        got = (await s.execute(objs)).all()
    assert [(c.country, c.id) for c, _ in got] == [(r[0], r[1]) for r in raw]
