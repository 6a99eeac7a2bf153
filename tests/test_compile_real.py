"""Statements that must compile to SQL the databases accept, checked against real data on both
backends: Python-side defaults in core inserts, SELECT without FROM, labels reused in ORDER BY /
GROUP BY, self-referential joins, and joined eager loads that reach one table more than once."""

from __future__ import annotations

import datetime
import itertools
from typing import Any

import pytest

from aiouow import (
    AsyncSession,
    Column,
    Engine,
    ForeignKey,
    Model,
    Table,
    column,
    exc,
    func,
    insert,
    joinedload,
    literal,
    relationship,
    select,
)
from aiouow import types as T

from .conftest import capture_sql

_tokens = itertools.count(1)


def next_token() -> str:
    return f"tok{next(_tokens)}"


class CrUser(Model):
    __tablename__ = "cr_users"
    id: int = column(primary_key=True)
    name: str = column()
    status: str = column(default="new")
    token: str = column(default_factory=next_token)
    created_at: datetime.datetime = column(default_factory=datetime.datetime.now)
    note: str | None = column(default=None)


cr_favorites = Table(
    "cr_favorites",
    Column("article_id", int, ForeignKey("cr_articles.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", int, ForeignKey("cr_users.id", ondelete="CASCADE"), primary_key=True),
    # NOT NULL columns the flush of favorited_by fills from their Python-side defaults
    Column("weight", int, nullable=False, default=1),
    Column("added_at", T.DateTime(), nullable=False, default=datetime.datetime.now),
)


class CrArticle(Model):
    __tablename__ = "cr_articles"
    id: int = column(primary_key=True)
    title: str = column()
    author_id: int = column(ForeignKey("cr_users.id"))
    editor_id: int | None = column(ForeignKey("cr_users.id"), default=None)
    author: CrUser = relationship(foreign_keys="CrArticle.author_id")
    editor: CrUser | None = relationship(foreign_keys="CrArticle.editor_id")
    favorited_by: list[CrUser] = relationship(secondary="cr_favorites", order_by="CrUser.name")


class CrEmployee(Model):
    __tablename__ = "cr_employees"
    id: int = column(primary_key=True)
    name: str = column()
    manager_id: int | None = column(ForeignKey("cr_employees.id"), default=None)
    manager: CrEmployee | None = relationship(remote_side="CrEmployee.id", back_populates="reports")
    reports: list[CrEmployee] = relationship(back_populates="manager", order_by="CrEmployee.name")


cr_defaults = Table(
    "cr_defaults",
    Column("id", int, primary_key=True),
    Column("kind", str, default="plain"),
    Column("stamp", T.DateTime(), default=datetime.datetime.now),
)


async def raw(db: Engine, sql: str) -> list[tuple[Any, ...]]:
    async with db.connect() as conn:
        return [tuple(r) for r in (await conn.exec_driver_sql(sql)).all()]


# -- 4: Python-side defaults in core insert() ----------------------------------------------------


async def test_core_insert_applies_column_defaults(db: Engine) -> None:
    before = datetime.datetime.now()
    async with db.begin() as conn:
        await conn.execute(insert(CrUser).values(name="x"))
        await conn.execute(insert(CrUser).values(name="y", status="given", note="n"))
    rows = await raw(db, 'SELECT name, status, token, created_at, note FROM cr_users ORDER BY name')
    assert [r[:2] for r in rows] == [("x", "new"), ("y", "given")]
    assert rows[0][2] != rows[1][2] and all(r[2].startswith("tok") for r in rows)
    stamp = rows[0][3]
    if isinstance(stamp, str):  # SQLite hands back text
        stamp = datetime.datetime.fromisoformat(stamp)
    assert before <= stamp <= datetime.datetime.now()
    assert [r[4] for r in rows] == [None, "n"]  # default=None sends nothing: NULL


async def test_core_executemany_and_multirow_insert_call_the_factory_per_row(db: Engine) -> None:
    async with AsyncSession(db) as s:
        await s.execute(insert(CrUser), [{"name": "a"}, {"name": "b"}, {"name": "c"}])
        await s.execute(insert(CrUser).values([{"name": "d"}]))
        await s.execute(insert(CrUser).values([{"name": "f"}, {"name": "g"}]))
        await s.commit()
    rows = await raw(db, "SELECT name, status, token FROM cr_users ORDER BY name")
    assert [r[0] for r in rows] == list("abcdfg")
    assert {r[1] for r in rows} == {"new"}
    assert len({r[2] for r in rows}) == 6  # a fresh token for every row


async def test_core_insert_of_a_statement_executed_twice_takes_fresh_defaults(db: Engine) -> None:
    stmt = insert(CrUser).values(name="same")
    async with db.begin() as conn:
        await conn.execute(stmt)
        await conn.execute(stmt)
    rows = await raw(db, "SELECT token FROM cr_users")
    assert len({r[0] for r in rows}) == 2


async def test_core_insert_defaults_of_a_plain_table(db: Engine) -> None:
    async with db.begin() as conn:
        await conn.execute(insert(cr_defaults))  # no values at all: the defaults still apply
        await conn.execute(insert(cr_defaults).values(kind="given"))
        await conn.execute(insert(cr_defaults).values(id=10))
    rows = await raw(db, "SELECT id, kind, stamp IS NOT NULL FROM cr_defaults ORDER BY id")
    assert [(r[1], bool(r[2])) for r in rows] == [("plain", True), ("given", True), ("plain", True)]


async def test_orm_flush_still_uses_constructor_defaults(db: Engine) -> None:
    async with AsyncSession(db) as s:
        u = CrUser(name="o")
        token = u.token
        s.add(u)
        await s.commit()
    assert await raw(db, "SELECT status, token FROM cr_users") == [("new", token)]


async def test_flushed_association_rows_get_column_defaults(db: Engine) -> None:
    before = datetime.datetime.now().replace(microsecond=0)
    async with AsyncSession(db) as s:
        s.add(CrArticle(title="t", author=CrUser(name="a"), favorited_by=[CrUser(name="b"), CrUser(name="c")]))
        await s.commit()
    async with db.connect() as conn:
        rows = (await conn.execute(select(cr_favorites.c.weight, cr_favorites.c.added_at))).all()
    assert len(rows) == 2 and all(r[0] == 1 and r[1] >= before for r in rows)


# -- 5: SELECT without FROM ------------------------------------------------------------------------


async def test_select_without_from(db: Engine) -> None:
    async with db.connect() as conn:
        assert (await conn.execute(select(func.lower("ABC")))).scalar() == "abc"
        assert (await conn.execute(select(literal(1)))).scalar() == 1
        assert (await conn.execute(select(literal(2) + 3))).scalar() == 5
        assert (await conn.execute(select(literal("a").label("x"), literal(1.5)))).one() == ("a", 1.5)
        when = datetime.datetime(2024, 5, 6, 7, 8, 9)
        assert (await conn.execute(select(literal(when)))).scalar() == when
        assert (await conn.execute(select(literal(7, T.Integer())))).scalar() == 7
    async with AsyncSession(db) as s:
        assert await s.scalar(select(func.upper("b"))) == "B"


async def test_literal_round_trips_every_column_type(db: Engine) -> None:
    import decimal
    import uuid

    from .models import Mood

    values = [{"a": [1, 2]}, [1, "a"], decimal.Decimal("1.50"), uuid.uuid4(), datetime.date(2020, 1, 2),
              datetime.time(1, 2, 3), datetime.timedelta(seconds=5), Mood.sad, True, b"xy", None, "s", 2.5]
    async with db.connect() as conn:
        for v in values:
            assert (await conn.execute(select(literal(v).label("v")))).scalar() == v, v


def test_literal_rejects_expressions_and_bad_types() -> None:
    with pytest.raises(exc.ArgumentError, match="Python value"):
        literal(CrUser.name)
    with pytest.raises(exc.ArgumentError, match="not a column type"):
        literal(1, object)


# -- 6: labels in ORDER BY / GROUP BY ----------------------------------------------------------------


async def _articles(db: Engine) -> dict[str, int]:
    async with AsyncSession(db) as s:
        users = {n: CrUser(name=n) for n in ("ann", "bob", "cid")}
        s.add_all([CrArticle(title=f"{n}{i}", author=u) for n, u in users.items()
                   for i in range({"ann": 1, "bob": 3, "cid": 2}[n])])
        await s.commit()
        return {n: u.id for n, u in users.items()}


async def test_label_reused_in_order_by_and_group_by(db: Engine) -> None:
    await _articles(db)
    expected = await raw(db, "SELECT author_id, count(id) AS n FROM cr_articles GROUP BY author_id "
                             "ORDER BY n DESC")
    grouped = await raw(
        db, "SELECT lower(title), count(*) FROM cr_articles GROUP BY lower(title) ORDER BY lower(title)")
    n = func.count(CrArticle.id).label("n")
    async with AsyncSession(db) as s:
        base = select(CrArticle.author_id, n).group_by(CrArticle.author_id)
        assert [tuple(r) for r in (await s.execute(base.order_by(n.desc()))).all()] == expected
        assert [tuple(r) for r in (await s.execute(base.order_by(n))).all()] == expected[::-1]
        assert [tuple(r) for r in (await s.execute(base.order_by("n"))).all()] == expected[::-1]
        # a label of an expression grouped by itself (label object and label name)
        first = func.lower(CrArticle.title).label("t")
        got = (await s.execute(select(first, func.count()).group_by(first).order_by("t"))).all()
        assert [tuple(r) for r in got] == grouped
        got = (await s.execute(select(first, func.count()).group_by("t").order_by(first.desc()))).all()
        assert [r[0] for r in got] == sorted((r[0] for r in got), reverse=True)
        # a label named like a column groups by the label's expression, not the column
        upper = func.upper(CrArticle.title).label("title")
        got = (await s.execute(select(func.substr(upper, 1, 1).label("k"), func.count())
                               .group_by("k").order_by("k"))).all()
        assert [tuple(r) for r in got] == [("A", 1), ("B", 3), ("C", 2)]
        got = (await s.execute(select(upper, func.count()).group_by(upper).order_by(upper))).all()
        assert [r[0] for r in got] == ["ANN0", "BOB0", "BOB1", "BOB2", "CID0", "CID1"]
        # a selected column by its name
        names = (await s.execute(select(CrArticle.title).order_by("title"))).scalars().all()
        assert names == sorted(names)
        assert [a.title for a in (await s.scalars(select(CrArticle).order_by("title")))] == names


def test_label_sql_in_order_by_group_by_and_where() -> None:
    from aiouow.dialects.sqlite import SQLiteDialect

    n = func.count(CrArticle.id).label("n")
    t = func.lower(CrArticle.title).label("title")
    stmt = select(t, n).group_by(t).order_by(n.desc()).having(n > 1)
    sql = SQLiteDialect().compile(stmt)[0].sql
    assert 'AS "n"' in sql and sql.count(" AS ") == 2
    assert 'ORDER BY "n" DESC' in sql
    # GROUP BY repeats the expression: a name that is also a column's would group by the column
    assert 'GROUP BY lower("cr_articles"."title")' in sql
    assert 'HAVING count("cr_articles"."id") > ?' in sql  # outside ORDER BY: the expression


def test_order_by_unknown_name_is_an_error() -> None:
    with pytest.raises(exc.ArgumentError, match="'nope'.*text"):
        select(CrArticle.id).order_by("nope")
    with pytest.raises(exc.ArgumentError, match="group_by"):
        select(CrArticle.id).group_by("nope")


# -- 7: self-referential joins -------------------------------------------------------------------------


def test_self_referential_join_aliases_or_raises_clear_error() -> None:
    from aiouow.dialects.sqlite import SQLiteDialect

    d = SQLiteDialect()
    # along a relationship the target is aliased automatically (as SQLAlchemy does)
    sql = d.compile(select(CrEmployee).join(CrEmployee.manager))[0].sql
    assert 'JOIN "cr_employees" AS "cr_employees_1" ON "cr_employees"."manager_id" = "cr_employees_1"."id"' in sql
    sql = d.compile(select(CrArticle).join(CrArticle.author).join(CrArticle.favorited_by))[0].sql
    assert 'JOIN "cr_users" AS "cr_users_1" ON "cr_users_1"."id" = "cr_favorites"."user_id"' in sql
    # a model or table named again cannot be aliased behind the user's back
    with pytest.raises(exc.InvalidRequestError, match=r"cr_employees.*alias.*aliased\(Model\)"):
        select(CrEmployee).join(CrEmployee, CrEmployee.manager_id == CrEmployee.id)
    with pytest.raises(exc.InvalidRequestError, match="cr_employees.*alias"):
        select(CrEmployee).join(CrEmployee)


def test_joins_that_name_each_table_once_still_work() -> None:
    from aiouow.dialects.sqlite import SQLiteDialect

    d = SQLiteDialect()
    sql = d.compile(select(CrUser, CrArticle).join(CrArticle, CrArticle.author_id == CrUser.id))[0].sql
    assert sql.count('"cr_articles"') == 6 and " JOIN " in sql  # five columns + the JOIN
    assert d.compile(select(CrArticle).join(CrArticle.favorited_by))[0].sql.count("JOIN") == 2


# -- 9: joined eager loads reaching one table twice ------------------------------------------------


async def _seed_articles(db: Engine) -> None:
    async with AsyncSession(db) as s:
        ann, bob, cid, dee = (CrUser(name=n) for n in ("ann", "bob", "cid", "dee"))
        s.add_all([
            CrArticle(title="a1", author=ann, editor=bob, favorited_by=[bob, cid]),
            CrArticle(title="a2", author=ann, favorited_by=[ann]),
            CrArticle(title="a3", author=bob, editor=bob, favorited_by=[]),
            CrArticle(title="a4", author=dee, editor=ann, favorited_by=[dee, cid, ann]),
        ])
        await s.commit()


async def _truth(db: Engine) -> dict[str, dict[str, Any]]:
    """Per article title: author, editor and favorited_by names, by raw SQL."""
    out: dict[str, dict[str, Any]] = {}
    rows = await raw(db, "SELECT a.title, au.name, ed.name FROM cr_articles a JOIN cr_users au ON au.id = a.author_id "
                         "LEFT JOIN cr_users ed ON ed.id = a.editor_id")
    for title, author, editor in rows:
        out[title] = {"author": author, "editor": editor, "favorited_by": []}
    for title, name in await raw(db, "SELECT a.title, u.name FROM cr_articles a JOIN cr_favorites f ON "
                                     "f.article_id = a.id JOIN cr_users u ON u.id = f.user_id ORDER BY u.name"):
        out[title]["favorited_by"].append(name)
    return out


def _names(article: CrArticle, key: str) -> Any:
    value = article.__dict__[key]  # loaded by the query itself: no lazy access involved
    if isinstance(value, list) or hasattr(value, "__iter__"):
        return [u.name for u in value]
    return value.name if value is not None else None


PAIRS = [("author", "favorited_by"), ("author", "editor"), ("editor", "favorited_by")]


@pytest.mark.parametrize("pair", PAIRS, ids=["-".join(p) for p in PAIRS])
async def test_two_joinedloads_to_one_table(db: Engine, pair: tuple[str, str]) -> None:
    await _seed_articles(db)
    truth = await _truth(db)
    async with AsyncSession(db) as s:
        opts = [joinedload(getattr(CrArticle, k)) for k in pair]
        with capture_sql(db) as log:
            articles = (await s.scalars(select(CrArticle).order_by(CrArticle.title).options(*opts))).all()
        assert log.count("SELECT") == 1
        assert '"cr_users" AS "cr_users_1"' in log.statements[0]
        assert [a.title for a in articles] == sorted(truth)
        for a in articles:
            for key in pair:
                assert _names(a, key) == truth[a.title][key], (a.title, key)


async def test_all_three_joinedloads_and_a_where_on_the_same_table(db: Engine) -> None:
    await _seed_articles(db)
    truth = await _truth(db)
    async with AsyncSession(db) as s:
        stmt = (select(CrArticle).join(CrArticle.author).where(CrUser.name == "ann")
                .options(joinedload(CrArticle.author), joinedload(CrArticle.editor),
                         joinedload(CrArticle.favorited_by)).order_by(CrArticle.title))
        with capture_sql(db) as log:
            articles = (await s.scalars(stmt)).all()
        assert log.count("SELECT") == 1
        sql = log.statements[0]
        for name in ("cr_users_1", "cr_users_2", "cr_users_3", "cr_favorites_1"):
            assert f'AS "{name}"' in sql
        assert [a.title for a in articles] == ["a1", "a2"]  # the WHERE filters the base query only
        for a in articles:
            for key in ("author", "editor", "favorited_by"):
                assert _names(a, key) == truth[a.title][key]


async def _seed_employees(db: Engine) -> None:
    async with AsyncSession(db) as s:
        boss = CrEmployee(name="boss")
        mid = CrEmployee(name="mid", manager=boss)
        s.add_all([boss, mid, CrEmployee(name="w1", manager=mid), CrEmployee(name="w2", manager=mid),
                   CrEmployee(name="w3", manager=boss)])
        await s.commit()


async def test_joinedload_self_referential_many_to_one_and_collection(db: Engine) -> None:
    await _seed_employees(db)
    managers = dict(await raw(db, "SELECT e.name, m.name FROM cr_employees e LEFT JOIN cr_employees m "
                                  "ON m.id = e.manager_id"))
    reports: dict[str, list[str]] = {n: [] for n in managers}
    for m, e in await raw(db, "SELECT m.name, e.name FROM cr_employees e JOIN cr_employees m "
                              "ON m.id = e.manager_id ORDER BY e.name"):
        reports[m].append(e)
    async with AsyncSession(db) as s:
        with capture_sql(db) as log:
            emps = (await s.scalars(select(CrEmployee).order_by(CrEmployee.name)
                                    .options(joinedload(CrEmployee.manager)))).all()
        assert log.count("SELECT") == 1 and '"cr_employees" AS "cr_employees_1"' in log.statements[0]
        assert {e.name: _names(e, "manager") for e in emps} == managers
        by_name = {e.name: e for e in emps}
        assert by_name["mid"].__dict__["manager"] is by_name["boss"]  # one identity map
    async with AsyncSession(db) as s:
        with capture_sql(db) as log:
            emps = (await s.scalars(select(CrEmployee).where(CrEmployee.name != "w3")
                                    .options(joinedload(CrEmployee.manager), joinedload(CrEmployee.reports)))).all()
        assert log.count("SELECT") == 1
        assert sorted(e.name for e in emps) == ["boss", "mid", "w1", "w2"]
        for e in emps:
            assert _names(e, "manager") == managers[e.name]
            assert _names(e, "reports") == reports[e.name]  # w3 is still boss's report


async def test_joinedload_self_referential_with_where_naming_the_table(db: Engine) -> None:
    await _seed_employees(db)
    async with AsyncSession(db) as s:
        emps = (await s.scalars(select(CrEmployee).where(CrEmployee.manager_id.is_not(None),
                                                         CrEmployee.name.like("w%"))
                                .order_by(CrEmployee.name).options(joinedload(CrEmployee.manager)))).all()
        assert [(e.name, _names(e, "manager")) for e in emps] == [("w1", "mid"), ("w2", "mid"), ("w3", "boss")]


# -- text() fragments inside a statement (same class: SQL or parameters the database rejects) ------


async def test_text_fragments_inside_a_select(db: Engine) -> None:
    from aiouow import text

    await _articles(db)
    async with AsyncSession(db) as s:
        base = select(CrUser.name).where(CrUser.id > 0)  # a bound value of its own
        got = await s.execute(base.where(text("name = :n").bindparams(n="bob")))
        assert got.scalars().all() == ["bob"]
        got = await s.execute(base.where(text("name != :n")).order_by(text("name DESC")), {"n": "bob"})
        assert got.scalars().all() == ["cid", "ann"]
        # one name twice, a bound and an execute() value in one fragment
        got = await s.execute(base.where(text("(name = :a OR name = :b OR name = :a)").bindparams(a="ann")),
                              {"b": "cid"})
        assert sorted(got.scalars().all()) == ["ann", "cid"]
        with pytest.raises(exc.ArgumentError, match=":n has no value"):
            await s.execute(base.where(text("name = :n")))
        # a whole text() statement still takes its values by name
        assert (await s.execute(text("SELECT count(*) FROM cr_users WHERE name = :n"), {"n": "ann"})).scalar() == 1


async def test_table_alias_in_a_core_self_join(db: Engine) -> None:
    """The alias the eager joins use, by hand: the groundwork aliased() will build on."""
    await _seed_employees(db)
    boss = CrEmployee.__table__.alias("boss")
    stmt = (select(CrEmployee.name, boss.c.name.label("b")).join(boss, boss.c.id == CrEmployee.manager_id)
            .where(boss.c.name != "nobody").order_by("b", CrEmployee.name))
    async with db.connect() as conn:
        got = [tuple(r) for r in (await conn.execute(stmt)).all()]
    assert got == await raw(db, "SELECT e.name, m.name FROM cr_employees e JOIN cr_employees m "
                                "ON m.id = e.manager_id ORDER BY m.name, e.name")
    assert got == [("mid", "boss"), ("w3", "boss"), ("w1", "mid"), ("w2", "mid")]
