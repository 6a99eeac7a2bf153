"""Compiled SQL of the expression layer, checked as text and by running it.

Every case asserts the SQL a dialect produces (identifiers quoted, values as
placeholders) and the rows the database returns for it, on both backends.
"""

from __future__ import annotations

import datetime
import itertools
import re
from collections.abc import Callable
from typing import Any

import pytest

from aiouow import (
    Column,
    Engine,
    MetaData,
    Table,
    and_,
    delete,
    exc,
    exists,
    func,
    insert,
    not_,
    or_,
    select,
    text,
    update,
)

from .models import AllTypes, Post, Tag, User, post_tags

NOW = datetime.datetime(2024, 1, 2, 3, 4, 5)
_labels = itertools.count()


def compile_(engine: Engine, stmt: Any, params: dict[str, Any] | None = None) -> tuple[str, list[Any]]:
    """The SQL and driver parameters the engine's dialect produces for ``stmt``."""
    compiled, binds = engine.dialect.compile(stmt)
    extra = {**stmt.binds, **(params or {})} if hasattr(stmt, "binds") else params
    return compiled.sql, engine.dialect.params_for(compiled, binds, extra)


def expect(engine: Engine, sql: str, pg: str | None = None) -> str:
    """``sql`` written with ``?`` placeholders, as ``engine``'s dialect spells it.

    PostgreSQL numbers its placeholders (``$1``); ``pg`` gives its text where it
    differs in more than that.
    """
    if engine.dialect.name != "postgresql":
        return sql
    if pg is not None:
        return pg
    counter = itertools.count(1)
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)


def unique_label() -> str:
    """A label no other statement uses, so the statement's shape is new to the cache."""
    return f"tsc_label_{next(_labels)}"


async def seed(engine: Engine) -> None:
    """alice (2 posts), Bob (1 post), carol and dave (none); tags on alice's first post."""
    async with engine.begin() as conn:
        await conn.execute(insert(User).values([
            {"id": 1, "name": "alice", "email": "alice@x.org", "created_at": NOW},
            {"id": 2, "name": "Bob", "email": None, "created_at": NOW},
            {"id": 3, "name": "carol", "email": "carol@y.org", "created_at": NOW},
            {"id": 4, "name": "dave", "email": "dave@x.org", "created_at": NOW},
        ]))
        await conn.execute(insert(Post).values([
            {"id": 10, "author_id": 1, "title": "a1", "version": 1},
            {"id": 11, "author_id": 1, "title": "a2", "version": 1},
            {"id": 12, "author_id": 2, "title": "b1", "version": 1},
        ]))
        await conn.execute(insert(Tag).values([{"id": 100, "name": "x"}, {"id": 101, "name": "y"}]))
        await conn.execute(insert(post_tags).values([{"post_id": 10, "tag_id": 100}, {"post_id": 10, "tag_id": 101}]))
        if engine.dialect.name == "postgresql":
            # explicit ids do not advance PostgreSQL's sequences; later generated ids must not collide
            for table in ("users", "posts", "tags"):
                await conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 1000)")


async def run(engine: Engine, stmt: Any, params: dict[str, Any] | None = None) -> list[Any]:
    async with engine.connect() as conn:
        return (await conn.execute(stmt, params)).all()


# -- operators -------------------------------------------------------------------

#: (id, condition, WHERE clause with ? placeholders, PostgreSQL spelling if different,
#:  expected parameters, expected user ids)
OPERATORS: list[tuple[str, Callable[[], Any], str, str | None, list[Any], list[int]]] = [
    ("eq", lambda: User.name == "alice", '"users"."name" = ?', None, ["alice"], [1]),
    ("ne", lambda: User.name != "alice", '"users"."name" != ?', None, ["alice"], [2, 3, 4]),
    ("lt", lambda: User.id < 3, '"users"."id" < ?', None, [3], [1, 2]),
    ("le", lambda: User.id <= 3, '"users"."id" <= ?', None, [3], [1, 2, 3]),
    ("gt", lambda: User.id > 3, '"users"."id" > ?', None, [3], [4]),
    ("ge", lambda: User.id >= 3, '"users"."id" >= ?', None, [3], [3, 4]),
    ("in", lambda: User.id.in_([1, 3]), '"users"."id" IN (?, ?)', '"users"."id" = ANY($1::BIGINT[])',
     [1, 3], [1, 3]),
    ("not_in", lambda: User.id.not_in([1, 3]), '"users"."id" NOT IN (?, ?)', '"users"."id" != ALL($1::BIGINT[])',
     [1, 3], [2, 4]),
    ("in_empty", lambda: User.id.in_([]), "1 != 1", '"users"."id" = ANY($1::BIGINT[])', [], []),
    ("like", lambda: User.name.like("%a%"), '"users"."name" LIKE ?', None, ["%a%"], [1, 3, 4]),
    ("ilike", lambda: User.name.ilike("b%"), 'lower("users"."name") LIKE lower(?)', '"users"."name" ILIKE $1',
     ["b%"], [2]),
    ("is_none", lambda: User.email.is_(None), '"users"."email" IS NULL', None, [], [2]),
    ("is_not_none", lambda: User.email.is_not(None), '"users"."email" IS NOT NULL', None, [], [1, 3, 4]),
    ("eq_none", lambda: User.email == None, '"users"."email" IS NULL', None, [], [2]),  # noqa: E711
    ("between", lambda: User.id.between(2, 3), '("users"."id" >= ? AND "users"."id" <= ?)', None, [2, 3], [2, 3]),
    ("contains", lambda: User.email.contains("x.o"), '"users"."email" LIKE ?', None, ["%x.o%"], [1, 4]),
    ("startswith", lambda: User.name.startswith("ca"), '"users"."name" LIKE ?', None, ["ca%"], [3]),
    ("and", lambda: and_(User.id > 1, User.name != "dave"), '("users"."id" > ? AND "users"."name" != ?)', None,
     [1, "dave"], [2, 3]),
    ("or", lambda: or_(User.id == 1, User.name == "dave"), '("users"."id" = ? OR "users"."name" = ?)', None,
     [1, "dave"], [1, 4]),
    ("not", lambda: not_(User.id == 1), 'NOT ("users"."id" = ?)', None, [1], [2, 3, 4]),
    # a nested OR keeps its parentheses: without them AND would bind tighter
    ("and_or", lambda: and_(User.id > 1, or_(User.name == "Bob", User.name == "alice")),
     '("users"."id" > ? AND ("users"."name" = ? OR "users"."name" = ?))', None, [1, "Bob", "alice"], [2]),
    ("or_and", lambda: or_(and_(User.id > 3, User.id < 5), User.id == 1),
     '(("users"."id" > ? AND "users"."id" < ?) OR "users"."id" = ?)', None, [3, 5, 1], [1, 4]),
    ("not_or", lambda: not_(or_(User.id == 1, User.id == 2)), 'NOT ("users"."id" = ? OR "users"."id" = ?)', None,
     [1, 2], [3, 4]),
    ("operators", lambda: (User.id > 1) & ~(User.id == 3), '("users"."id" > ? AND NOT ("users"."id" = ?))', None,
     [1, 3], [2, 4]),
    ("in_subquery", lambda: User.id.in_(select(Post.author_id)),
     '"users"."id" IN (SELECT "posts"."author_id" FROM "posts")', None, [], [1, 2]),
]


@pytest.mark.parametrize(("cond", "where", "pg_where", "params", "ids"),
                         [case[1:] for case in OPERATORS], ids=[case[0] for case in OPERATORS])
async def test_operator(db: Engine, cond: Callable[[], Any], where: str, pg_where: str | None,
                        params: list[Any], ids: list[int]) -> None:
    await seed(db)
    stmt = select(User.id).where(cond()).order_by(User.id)
    sql, args = compile_(db, stmt)
    prefix = 'SELECT "users"."id" FROM "users" WHERE '
    suffix = ' ORDER BY "users"."id"'
    assert sql == expect(db, prefix + where + suffix, pg_where and prefix + pg_where + suffix)
    if pg_where is not None and ("ANY(" in pg_where or "ALL(" in pg_where) and db.dialect.name == "postgresql":
        params = [params]  # the whole list travels as one array parameter
    assert args == params
    assert [r.id for r in await run(db, stmt)] == ids


async def test_where_with_several_conditions_ands_them(db: Engine) -> None:
    await seed(db)
    stmt = select(User.name).where(User.id > 1, User.id < 4, User.email.is_not(None))
    sql, args = compile_(db, stmt)
    assert sql == expect(db, 'SELECT "users"."name" FROM "users" WHERE "users"."id" > ? AND "users"."id" < ? '
                             'AND "users"."email" IS NOT NULL')
    assert args == [1, 4]
    assert [r.name for r in await run(db, stmt)] == ["carol"]


async def test_values_are_bound_never_spliced(db: Engine) -> None:
    await seed(db)
    evil = "x'; DROP TABLE \"users\"; --"
    stmt = select(User.id).where(User.name == evil)
    sql, args = compile_(db, stmt)
    assert "DROP" not in sql and "x'" not in sql
    assert args == [evil]
    assert await run(db, stmt) == []
    # the same string stored and read back verbatim, and the table is still there
    async with db.begin() as conn:
        await conn.execute(update(User).where(User.id == 4).values(name=evil))
    assert [r.name for r in await run(db, select(User.name).where(User.id == 4))] == [evil]
    assert len(await run(db, select(User.id))) == 4


async def test_numbers_and_patterns_are_bound_too(db: Engine) -> None:
    stmt = select(User.id).where(User.id == 12345, User.name.contains("needle")).limit(678).offset(91)
    sql, args = compile_(db, stmt)
    for literal in ("12345", "needle", "678", "91"):
        assert literal not in sql
    assert args == [12345, "%needle%", 678, 91]


# -- identifiers -------------------------------------------------------------------

odd_metadata = MetaData()
odd = Table(
    'tsc "odd" order',
    Column("select", int, primary_key=True),
    Column('from "x"', str, nullable=True, index=True, unique=True),
    metadata=odd_metadata,
)


async def test_identifiers_are_always_quoted(db: Engine) -> None:
    sql, _ = compile_(db, select(User.id, User.name).where(User.email == "a"))
    assert sql == expect(db, 'SELECT "users"."id", "users"."name" FROM "users" WHERE "users"."email" = ?')
    # reserved words and embedded quotes survive DDL, DML and SELECT
    await odd_metadata.create_all(db)
    try:
        async with db.begin() as conn:
            await conn.execute(insert(odd).values({"select": 1, 'from "x"': "one"}))
            await conn.execute(insert(odd).values({"select": 2, 'from "x"': "two"}))
            await conn.execute(update(odd).where(odd.c["select"] == 2).values({'from "x"': "deux"}))
            await conn.execute(delete(odd).where(odd.c["select"] == 1))
        sql, _ = compile_(db, select(odd.c["select"], odd.c['from "x"']))
        assert sql == 'SELECT "tsc ""odd"" order"."select", "tsc ""odd"" order"."from ""x""" FROM "tsc ""odd"" order"'
        rows = await run(db, select(odd.c["select"], odd.c['from "x"']))
        assert [tuple(r) for r in rows] == [(2, "deux")]
    finally:
        await odd_metadata.drop_all(db)


async def test_select_a_table(db: Engine) -> None:
    await seed(db)
    stmt = select(post_tags).order_by(post_tags.c.tag_id.desc())
    sql, _ = compile_(db, stmt)
    assert sql == ('SELECT "post_tags"."post_id", "post_tags"."tag_id" FROM "post_tags" '
                   'ORDER BY "post_tags"."tag_id" DESC')
    rows = await run(db, stmt)
    assert [tuple(r) for r in rows] == [(10, 101), (10, 100)]
    assert rows[0].tag_id == 101
    assert (await run(db, select(func.count()).select_from(post_tags)))[0][0] == 2


# -- ordering, limit, offset, distinct ------------------------------------------------

async def test_order_by_desc_and_several_keys(db: Engine) -> None:
    await seed(db)
    stmt = select(User.name).order_by(User.id.desc())
    sql, _ = compile_(db, stmt)
    assert sql == 'SELECT "users"."name" FROM "users" ORDER BY "users"."id" DESC'
    assert [r.name for r in await run(db, stmt)] == ["dave", "carol", "Bob", "alice"]

    stmt = select(Post.title).order_by(Post.author_id.desc(), Post.id.asc())
    sql, _ = compile_(db, stmt)
    assert sql.endswith(' ORDER BY "posts"."author_id" DESC, "posts"."id" ASC')
    assert [r.title for r in await run(db, stmt)] == ["b1", "a1", "a2"]


async def test_limit_and_offset(db: Engine) -> None:
    await seed(db)
    stmt = select(User.id).order_by(User.id).limit(2).offset(1)
    sql, args = compile_(db, stmt)
    assert sql == expect(db, 'SELECT "users"."id" FROM "users" ORDER BY "users"."id" LIMIT ? OFFSET ?')
    assert args == [2, 1]
    assert [r.id for r in await run(db, stmt)] == [2, 3]

    assert [r.id for r in await run(db, select(User.id).order_by(User.id).limit(3))] == [1, 2, 3]
    # an OFFSET alone (SQLite needs a LIMIT before it)
    assert [r.id for r in await run(db, select(User.id).order_by(User.id).offset(3))] == [4]


async def test_distinct(db: Engine) -> None:
    await seed(db)
    stmt = select(Post.author_id).distinct().order_by(Post.author_id)
    sql, _ = compile_(db, stmt)
    assert sql.startswith('SELECT DISTINCT "posts"."author_id" FROM "posts"')
    assert [r.author_id for r in await run(db, stmt)] == [1, 2]
    assert len(await run(db, select(Post.author_id))) == 3


# -- joins -------------------------------------------------------------------

async def test_join_through_relationship(db: Engine) -> None:
    await seed(db)
    stmt = select(User.name, Post.title).join(User.posts).order_by(Post.id)
    sql, _ = compile_(db, stmt)
    assert sql == ('SELECT "users"."name", "posts"."title" FROM "users" '
                   'JOIN "posts" ON "users"."id" = "posts"."author_id" ORDER BY "posts"."id"')
    assert [tuple(r) for r in await run(db, stmt)] == [("alice", "a1"), ("alice", "a2"), ("Bob", "b1")]

    # a whole model selected, filtered on the joined table
    stmt = select(User).join(User.posts).where(Post.title == "b1")
    sql, _ = compile_(db, stmt)
    assert sql.startswith('SELECT "users"."id", "users"."name", ')
    assert 'FROM "users" JOIN "posts" ON "users"."id" = "posts"."author_id" WHERE "posts"."title" = ' in sql
    rows = await run(db, stmt)
    assert [r.name for r in rows] == ["Bob"]


async def test_join_many_to_one_and_many_to_many_relationships(db: Engine) -> None:
    await seed(db)
    stmt = select(Post.title, User.name).join(Post.author).where(User.name == "Bob")
    sql, _ = compile_(db, stmt)
    assert 'FROM "posts" JOIN "users" ON "posts"."author_id" = "users"."id"' in sql
    assert [tuple(r) for r in await run(db, stmt)] == [("b1", "Bob")]

    stmt = select(Post.title, Tag.name).join(Post.tags).order_by(Tag.name)
    sql, _ = compile_(db, stmt)
    assert ('FROM "posts" JOIN "post_tags" ON "posts"."id" = "post_tags"."post_id" '
            'JOIN "tags" ON "tags"."id" = "post_tags"."tag_id"') in sql
    assert [tuple(r) for r in await run(db, stmt)] == [("a1", "x"), ("a1", "y")]


async def test_join_with_explicit_onclause_and_inferred_onclause(db: Engine) -> None:
    await seed(db)
    stmt = select(User.name, Post.title).join(Post, Post.author_id == User.id).where(Post.title == "a2")
    sql, _ = compile_(db, stmt)
    assert sql == expect(db, 'SELECT "users"."name", "posts"."title" FROM "users" '
                             'JOIN "posts" ON "posts"."author_id" = "users"."id" WHERE "posts"."title" = ?')
    assert [tuple(r) for r in await run(db, stmt)] == [("alice", "a2")]

    # without an ON clause the foreign key gives it
    stmt = select(User.name).join(Post).where(Post.title == "b1")
    sql, _ = compile_(db, stmt)
    assert 'FROM "users" JOIN "posts" ON "posts"."author_id" = "users"."id"' in sql
    assert [r.name for r in await run(db, stmt)] == ["Bob"]

    with pytest.raises(exc.ArgumentError):
        select(User.name).join(Tag)  # no foreign key links users and tags


async def test_outerjoin_keeps_rows_without_match(db: Engine) -> None:
    await seed(db)
    stmt = (select(User.name, func.count(Post.id)).outerjoin(User.posts)
            .group_by(User.id, User.name).order_by(User.id))
    sql, _ = compile_(db, stmt)
    assert sql == ('SELECT "users"."name", count("posts"."id") FROM "users" '
                   'LEFT OUTER JOIN "posts" ON "users"."id" = "posts"."author_id" '
                   'GROUP BY "users"."id", "users"."name" ORDER BY "users"."id"')
    assert [tuple(r) for r in await run(db, stmt)] == [("alice", 2), ("Bob", 1), ("carol", 0), ("dave", 0)]

    stmt = select(User.name, Post.title).outerjoin(Post, Post.author_id == User.id).where(Post.id.is_(None))
    assert [r.name for r in await run(db, stmt.order_by(User.id))] == ["carol", "dave"]
    # an inner join drops them
    inner = select(User.name).join(Post, Post.author_id == User.id).distinct()
    assert sorted(r.name for r in await run(db, inner)) == ["Bob", "alice"]


# -- grouping and functions --------------------------------------------------------

async def test_group_by_having(db: Engine) -> None:
    await seed(db)
    stmt = (select(Post.author_id, func.count(Post.id).label("n"))
            .group_by(Post.author_id).having(func.count(Post.id) > 1))
    sql, args = compile_(db, stmt)
    assert sql == expect(db, 'SELECT "posts"."author_id", count("posts"."id") AS "n" FROM "posts" '
                             'GROUP BY "posts"."author_id" HAVING count("posts"."id") > ?')
    assert args == [1]
    rows = await run(db, stmt)
    assert [tuple(r) for r in rows] == [(1, 2)]
    assert rows[0].n == 2


async def test_func_count_and_others(db: Engine) -> None:
    await seed(db)
    stmt = select(func.count()).select_from(User)
    sql, _ = compile_(db, stmt)
    assert sql == 'SELECT count(*) FROM "users"'
    assert (await run(db, stmt))[0][0] == 4

    stmt = select(func.count(User.email))
    assert compile_(db, stmt)[0] == 'SELECT count("users"."email") FROM "users"'
    assert (await run(db, stmt))[0][0] == 3  # NULL emails are not counted

    stmt = select(func.max(User.id), func.min(User.name), func.sum(User.id)).where(User.id >= 2)
    sql, _ = compile_(db, stmt)
    assert sql.startswith('SELECT max("users"."id"), min("users"."name"), sum("users"."id") FROM "users"')
    assert tuple((await run(db, stmt))[0]) == (4, "Bob", 9)
    stmt = select(func.lower(User.name).label("low")).where(User.id == 2)
    assert compile_(db, stmt)[0].startswith('SELECT lower("users"."name") AS "low" FROM "users"')
    assert (await run(db, stmt))[0].low == "bob"

    stmt = select(func.coalesce(User.email, "none").label("mail")).order_by(User.id)
    assert [r.mail for r in await run(db, stmt)] == ["alice@x.org", "none", "carol@y.org", "dave@x.org"]


async def test_exists_subquery(db: Engine) -> None:
    await seed(db)
    stmt = select(User.name).where(exists(select(Post.id).where(Post.author_id == User.id))).order_by(User.id)
    sql, _ = compile_(db, stmt)
    assert 'WHERE EXISTS (SELECT "posts"."id" FROM "posts" WHERE "posts"."author_id" = "users"."id")' in sql
    assert [r.name for r in await run(db, stmt)] == ["alice", "Bob"]

    # a subquery in the column list correlates as well
    n_posts = select(func.count(Post.id)).where(Post.author_id == User.id).scalar_subquery().label("n")
    stmt = select(User.name, n_posts).order_by(User.id)
    assert [tuple(r) for r in await run(db, stmt)] == [("alice", 2), ("Bob", 1), ("carol", 0), ("dave", 0)]

    # ... and in the WHERE clause of a DELETE
    async with db.begin() as conn:
        stmt = delete(User).where(~exists(select(Post.id).where(Post.author_id == User.id)))
        assert 'FROM "posts" WHERE "posts"."author_id" = "users"."id"' in compile_(db, stmt)[0]
        assert (await conn.execute(stmt)).rowcount == 2
    assert [r.name for r in await run(db, select(User.name).order_by(User.id))] == ["alice", "Bob"]

    # a subquery on the same table as its statement keeps its own FROM
    stmt = select(User.name).where(User.id.in_(select(func.max(User.id))))
    assert [r.name for r in await run(db, stmt)] == ["Bob"]


# -- DML -------------------------------------------------------------------------

async def test_insert_update_delete_sql(db: Engine) -> None:
    stmt = insert(User).values(name="eve", created_at=NOW)
    sql, args = compile_(db, stmt)
    assert sql == expect(db, 'INSERT INTO "users" ("name", "created_at") VALUES (?, ?)')
    assert args[0] == "eve"

    stmt = update(User).where(User.name == "eve").values(email="e@x.org")
    sql, args = compile_(db, stmt)
    assert sql == expect(db, 'UPDATE "users" SET "email" = ? WHERE "users"."name" = ?')
    assert args == ["e@x.org", "eve"]

    stmt = delete(User).where(User.id > 5)
    sql, args = compile_(db, stmt)
    assert sql == expect(db, 'DELETE FROM "users" WHERE "users"."id" > ?')
    assert args == [5]


async def test_dml_runs_and_reports_rowcount_and_returning(db: Engine) -> None:
    await seed(db)
    async with db.begin() as conn:
        result = await conn.execute(insert(User).values(name="eve", created_at=NOW).returning(User.id, User.name))
        row = result.one()
        assert row.name == "eve" and isinstance(row.id, int) and row.id > 0
        result = await conn.execute(update(User).where(User.id.in_([1, 2])).values(name="same"))
        assert result.rowcount == 2
        result = await conn.execute(update(User).where(User.id == 3).values(name="carol2").returning(User.name))
        assert result.scalar_one() == "carol2"
        result = await conn.execute(delete(Post).where(Post.author_id == 1))
        assert result.rowcount == 2
    rows = await run(db, select(User.id, User.name).where(User.id <= 3).order_by(User.id))
    assert [tuple(r) for r in rows] == [(1, "same"), (2, "same"), (3, "carol2")]
    assert [r.title for r in await run(db, select(Post.title))] == ["b1"]


async def test_dml_forms(db: Engine) -> None:
    await seed(db)
    async with db.begin() as conn:
        # no values at all: every column takes its default
        stmt = insert(AllTypes).returning(AllTypes.id)
        assert compile_(db, stmt)[0] == 'INSERT INTO "all_types" DEFAULT VALUES RETURNING "all_types"."id"'
        assert isinstance((await conn.execute(stmt)).scalar_one(), int)
        # several rows at once, with RETURNING
        stmt = insert(Tag).values([{"name": "m1"}, {"name": "m2"}, {"name": "m3"}]).returning(Tag.name)
        sql, args = compile_(db, stmt)
        assert sql == expect(db, 'INSERT INTO "tags" ("name") VALUES (?), (?), (?) RETURNING "tags"."name"')
        assert args == ["m1", "m2", "m3"]
        assert sorted((await conn.execute(stmt)).scalars().all()) == ["m1", "m2", "m3"]
        # an expression over the column's own value
        stmt = update(Post).where(Post.author_id == 1).values(version=Post.version + 1)
        sql, args = compile_(db, stmt)
        assert sql == expect(db, 'UPDATE "posts" SET "version" = "posts"."version" + ? WHERE "posts"."author_id" = ?')
        assert (await conn.execute(stmt)).rowcount == 2
        # a whole model in RETURNING
        stmt = delete(Tag).where(Tag.name == "m2").returning(Tag)
        row = (await conn.execute(stmt)).one()
        assert row.name == "m2" and isinstance(row.id, int)
    rows = await run(db, select(Post.id, Post.version).order_by(Post.id))
    assert [tuple(r) for r in rows] == [(10, 2), (11, 2), (12, 1)]


# -- text() ------------------------------------------------------------------------

async def test_text_named_parameters(db: Engine) -> None:
    await seed(db)
    stmt = text('SELECT "name" FROM "users" WHERE "id" = :id OR "name" = :name ORDER BY "id"')
    sql, args = compile_(db, stmt, {"id": 1, "name": "dave"})
    assert sql == expect(db, 'SELECT "name" FROM "users" WHERE "id" = ? OR "name" = ? ORDER BY "id"')
    assert args == [1, "dave"]
    assert [r.name for r in await run(db, stmt, {"id": 1, "name": "dave"})] == ["alice", "dave"]
    assert [r.name for r in await run(db, stmt.bindparams(id=2, name="carol"))] == ["Bob", "carol"]
    # execute() params override bindparams()
    assert [r.name for r in await run(db, stmt.bindparams(id=2, name="x"), {"name": "carol"})] == ["Bob", "carol"]

    with pytest.raises(exc.ArgumentError, match=":name"):
        await run(db, stmt.bindparams(id=1))


async def test_text_leaves_casts_and_time_literals_alone(db: Engine) -> None:
    cast = "CAST(:v AS TEXT) || '-12:30:00'"
    stmt = text(f"SELECT {cast} AS r")
    sql, args = compile_(db, stmt, {"v": "x"})
    assert sql == expect(db, "SELECT CAST(? AS TEXT) || '-12:30:00' AS r")
    assert (await run(db, stmt, {"v": "x"}))[0].r == "x-12:30:00"
    if db.dialect.name == "postgresql":
        # PostgreSQL's :: casts are not parameters (as in SQLAlchemy, ":v::int" is not one either)
        stmt = text("SELECT CAST(:v AS INTEGER) + '1'::int AS r")
        assert compile_(db, stmt, {"v": 41})[0] == "SELECT CAST($1 AS INTEGER) + '1'::int AS r"
        assert (await run(db, stmt, {"v": 41}))[0].r == 42


# -- the statement cache ------------------------------------------------------------

async def test_same_shape_compiles_once(db: Engine) -> None:
    await seed(db)
    cache = db.dialect.cache
    label = unique_label()

    def stmt(name: str, min_id: int) -> Any:
        return select(User.id.label(label)).where(User.name == name, User.id >= min_id).order_by(User.id)

    before = cache.compilations
    assert [r[0] for r in await run(db, stmt("alice", 0))] == [1]
    assert cache.compilations == before + 1  # a new shape: compiled
    assert [r[0] for r in await run(db, stmt("carol", 1))] == [3]
    assert [r[0] for r in await run(db, stmt("carol", 4))] == []
    assert [r[0] for r in await run(db, stmt("dave", 2))] == [4]
    assert cache.compilations == before + 1  # same shape, other values: not compiled again

    # a different shape compiles again
    await run(db, select(User.id.label(label)).where(User.name != "alice"))
    assert cache.compilations == before + 2


async def test_insert_and_update_shapes_compile_once(db: Engine) -> None:
    cache = db.dialect.cache
    async with db.begin() as conn:
        await conn.execute(insert(Tag).values(id=1, name="t1"))
        await conn.execute(update(Tag).where(Tag.id == 1).values(name="t1b"))
        before = cache.compilations
        for i in range(2, 6):
            await conn.execute(insert(Tag).values(id=i, name=f"t{i}"))
            await conn.execute(update(Tag).where(Tag.id == i).values(name=f"t{i}b"))
        assert cache.compilations == before
    names = [r.name for r in await run(db, select(Tag.name).order_by(Tag.id))]
    assert names == ["t1b", "t2b", "t3b", "t4b", "t5b"]


async def test_in_list_length_and_the_cache(db: Engine) -> None:
    await seed(db)
    cache = db.dialect.cache
    label = unique_label()

    def stmt(ids: list[int]) -> Any:
        return select(User.id.label(label)).where(User.id.in_(ids)).order_by(User.id)

    before = cache.compilations
    assert [r[0] for r in await run(db, stmt([1, 2]))] == [1, 2]
    assert [r[0] for r in await run(db, stmt([3, 4]))] == [3, 4]
    assert cache.compilations == before + 1
    # another length is another shape on SQLite (one placeholder per value)
    assert [r[0] for r in await run(db, stmt([1, 3, 4]))] == [1, 3, 4]
    assert [r[0] for r in await run(db, stmt([2, 3, 4]))] == [2, 3, 4]
    assert cache.compilations <= before + 2


async def test_a_reused_condition_does_not_poison_the_cache(db: Engine) -> None:
    """One condition object used twice binds one value; the same shape built from
    two conditions must still send both of its values (and the other way round)."""
    await seed(db)
    label = unique_label()
    cond = User.name == "alice"
    shared = select(User.id.label(label)).where(or_(cond, cond)).order_by(User.id)
    assert [r[0] for r in await run(db, shared)] == [1]
    separate = select(User.id.label(label)).where(or_(User.name == "Bob", User.name == "dave")).order_by(User.id)
    assert [r[0] for r in await run(db, separate)] == [2, 4]
    assert [r[0] for r in await run(db, shared)] == [1]

    label = unique_label()
    separate = select(User.id.label(label)).where(or_(User.name == "Bob", User.name == "dave")).order_by(User.id)
    assert [r[0] for r in await run(db, separate)] == [2, 4]
    cond = User.name == "carol"
    shared = select(User.id.label(label)).where(or_(cond, cond)).order_by(User.id)
    assert [r[0] for r in await run(db, shared)] == [3]


async def test_plus_on_string_columns_concatenates(db) -> None:
    from aiouow import AsyncSession, select, update

    from .models import User

    async with AsyncSession(db) as s:
        u = User(name="ann")
        s.add(u)
        await s.commit()
        await s.execute(update(User).where(User.id == u.id).values(name=User.name + "!"))
        assert await s.scalar(select(User.name).where(User.id == u.id)) == "ann!"
        assert await s.scalar(select(User.name + "?").where(User.id == u.id)) == "ann!?"
