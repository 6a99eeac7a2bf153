"""DDL: create_all / drop_all, dependency order, constraints and indexes, checked in the catalogs."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from aiouow import Column, Engine, ForeignKey, MetaData, Model, Table, delete, exc, func, insert, select, text
from aiouow.engine import Connection

from .models import AllTypes, Post, Tag, User, post_tags

NOW = datetime.datetime(2024, 1, 2, 3, 4, 5)


# -- catalog helpers: one answer shape for both backends ---------------------------------

async def rows(conn: Connection, sql: str, **params: Any) -> list[Any]:
    return (await conn.execute(text(sql), params)).all()


async def table_names(conn: Connection) -> set[str]:
    if conn.dialect.name == "postgresql":
        found = await rows(conn, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    else:
        found = await rows(conn, "SELECT name FROM sqlite_master WHERE type = 'table'")
    return {r[0] for r in found}


async def columns(conn: Connection, table: str) -> dict[str, tuple[str, bool]]:
    """Column name -> (type as the catalog spells it, NOT NULL)."""
    if conn.dialect.name == "postgresql":
        found = await rows(conn, "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                                 "WHERE table_name = :t AND table_schema = current_schema()", t=table)
        return {r[0]: (r[1], r[2] == "NO") for r in found}
    found = await rows(conn, f"PRAGMA table_info(\"{table}\")")
    return {r[1]: (r[2], bool(r[3]) or bool(r[5])) for r in found}


async def primary_key(conn: Connection, table: str) -> list[str]:
    if conn.dialect.name == "postgresql":
        found = await rows(conn, "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
                                 "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                                 "WHERE i.indrelid = CAST(:t AS regclass) AND i.indisprimary "
                                 "ORDER BY array_position(i.indkey, a.attnum)", t=f'"{table}"')
        return [r[0] for r in found]
    found = await rows(conn, f"PRAGMA table_info(\"{table}\")")
    return [r[1] for r in sorted((r for r in found if r[5]), key=lambda r: r[5])]


async def indexes(conn: Connection, table: str) -> dict[str, tuple[tuple[str, ...], bool]]:
    """Index name -> (columns, unique), primary key excluded."""
    out: dict[str, tuple[tuple[str, ...], bool]] = {}
    if conn.dialect.name == "postgresql":
        found = await rows(conn, "SELECT c.relname, i.indisunique, "
                                 "array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(n, o) "
                                 "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o) "
                                 "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                                 "WHERE i.indrelid = CAST(:t AS regclass) AND NOT i.indisprimary", t=f'"{table}"')
        for name, unique, cols in found:
            out[name] = (tuple(cols), unique)
        return out
    for r in await rows(conn, f"PRAGMA index_list(\"{table}\")"):
        if r[3] == "pk":
            continue
        cols = await rows(conn, f"PRAGMA index_info(\"{r[1]}\")")
        out[r[1]] = (tuple(c[2] for c in sorted(cols, key=lambda c: c[0])), bool(r[2]))
    return out


async def foreign_keys(conn: Connection, table: str) -> set[tuple[str, str, str, str]]:
    """(column, referenced table, referenced column, ON DELETE action)."""
    if conn.dialect.name == "postgresql":
        found = await rows(conn, "SELECT a.attname, cf.relname, af.attname, CAST(c.confdeltype AS text) "
                                 "FROM pg_constraint c "
                                 "JOIN pg_class cf ON cf.oid = c.confrelid "
                                 "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
                                 "JOIN pg_attribute af ON af.attrelid = c.confrelid AND af.attnum = c.confkey[1] "
                                 "WHERE c.contype = 'f' AND c.conrelid = CAST(:t AS regclass)", t=f'"{table}"')
        actions = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
        return {(r[0], r[1], r[2], actions[r[3]]) for r in found}
    found = await rows(conn, f"PRAGMA foreign_key_list(\"{table}\")")
    return {(r[3], r[2], r[4], r[6]) for r in found}


def private_tables() -> tuple[MetaData, Table, Table, Table]:
    """A metadata of its own (the shared schema stays untouched), children defined before parents."""
    md = MetaData()
    leaf = Table("tsch_leaf", Column("id", int, primary_key=True),
                 Column("child_id", int, ForeignKey("tsch_child.id"), nullable=False), metadata=md)
    child = Table("tsch_child", Column("id", int, primary_key=True),
                  Column("parent_id", int, ForeignKey("tsch_parent.id", ondelete="CASCADE"), nullable=False),
                  metadata=md)
    parent = Table("tsch_parent", Column("id", int, primary_key=True), Column("name", str, unique=True),
                   metadata=md)
    return md, parent, child, leaf


# -- tests ---------------------------------------------------------------------------

async def test_create_all_is_idempotent(db: Engine) -> None:
    async with db.begin() as conn:
        await conn.execute(insert(User).values(name="survivor", created_at=NOW))
    await Model.metadata.create_all(db)
    await Model.metadata.create_all(db)
    async with db.connect() as conn:
        assert (await conn.execute(select(User.name))).scalars().all() == ["survivor"]
        assert set(Model.metadata.tables) <= await table_names(conn)


async def test_dependency_order_create_and_drop(db: Engine) -> None:
    md, parent, child, leaf = private_tables()
    # children defined first: sorting puts every table after those it refers to
    assert md.sorted_tables() == [parent, child, leaf]
    assert md.sorted_tables([leaf, child, parent]) == [parent, child, leaf]
    try:
        # PostgreSQL refuses a REFERENCES to a table that does not exist yet
        await md.create_all(db)
        async with db.connect() as conn:
            assert {"tsch_parent", "tsch_child", "tsch_leaf"} <= await table_names(conn)
            assert await foreign_keys(conn, "tsch_child") == {("parent_id", "tsch_parent", "id", "CASCADE")}
            assert await foreign_keys(conn, "tsch_leaf") == {("child_id", "tsch_child", "id", "NO ACTION")}
        async with db.begin() as conn:
            await conn.execute(insert(parent).values(id=1, name="p"))
            await conn.execute(insert(child).values(id=1, parent_id=1))
            await conn.execute(insert(leaf).values(id=1, child_id=1))
        await md.create_all(db)  # idempotent here too
        # with rows in place, dropping a referenced table first fails on both backends
        # (SQLite's DROP TABLE deletes the rows first and checks the foreign keys)
        await md.drop_all(db)
        async with db.connect() as conn:
            assert not {"tsch_parent", "tsch_child", "tsch_leaf"} & await table_names(conn)
        await md.drop_all(db)  # idempotent: nothing left to drop
    finally:
        await md.drop_all(db)


async def test_dropping_in_the_wrong_order_would_fail(db: Engine) -> None:
    """The check above means something: the database does refuse the wrong order."""
    md, parent, child, leaf = private_tables()
    await md.create_all(db)
    try:
        async with db.begin() as conn:
            await conn.execute(insert(parent).values(id=1, name="p"))
            await conn.execute(insert(child).values(id=1, parent_id=1))
            await conn.execute(insert(leaf).values(id=1, child_id=1))
        with pytest.raises(exc.DBAPIError):
            async with db.begin() as conn:
                await conn.execute(text('DROP TABLE "tsch_child"'))
    finally:
        await md.drop_all(db)


def test_model_metadata_order() -> None:
    order = [t.name for t in Model.metadata.sorted_tables()]
    assert order.index("users") < order.index("posts") < order.index("post_tags")
    assert order.index("tags") < order.index("post_tags")
    assert "nodes" in order  # a self-reference does not stop the sort


async def test_unique_constraint_and_index_are_created(db: Engine) -> None:
    async with db.connect() as conn:
        found = await indexes(conn, "users")
        assert found["ix_users_email"] == (("email",), False)
        assert (("email",), True) in found.values()  # column(unique=True)
        assert (("name",), True) in (await indexes(conn, "tags")).values()
        assert not any(cols == ("name",) for cols, _ in found.values())  # users.name has neither
    # and they are enforced
    async with db.connect() as conn:
        await conn.execute(insert(Tag).values(name="t"))
        with pytest.raises(exc.IntegrityError):
            await conn.execute(insert(Tag).values(name="t"))
        await conn.rollback()
        # NULLs do not collide in a unique column
        await conn.execute(insert(User).values(name="a", email=None, created_at=NOW))
        await conn.execute(insert(User).values(name="b", email=None, created_at=NOW))
        await conn.commit()


async def test_not_null_follows_the_annotation(db: Engine) -> None:
    async with db.connect() as conn:
        users = await columns(conn, "users")
        assert {k: v[1] for k, v in users.items()} == {"id": True, "name": True, "email": False,
                                                       "created_at": True}
        posts = await columns(conn, "posts")
        assert posts["author_id"][1] and posts["title"][1] and posts["version"][1]
        all_types = await columns(conn, "all_types")
        assert [name for name, (_, not_null) in all_types.items() if not_null] == ["id"]
        assert not (await columns(conn, "nodes"))["parent_id"][1]  # parent_id: int | None
        assert (await columns(conn, "memberships"))["role"][1]


async def test_composite_primary_keys(db: Engine) -> None:
    async with db.connect() as conn:
        assert await primary_key(conn, "memberships") == ["org", "user_no"]
        assert await primary_key(conn, "post_tags") == ["post_id", "tag_id"]
        assert await primary_key(conn, "users") == ["id"]
    md = MetaData()
    pair = Table("tsch_pair", Column("a", int, primary_key=True), Column("b", str, primary_key=True),
                 Column("v", int), metadata=md)
    assert pair.primary_key == (pair.c.a, pair.c.b)
    assert pair.autoincrement_column is None  # a composite key is not generated
    await md.create_all(db)
    try:
        async with db.connect() as conn:
            assert await primary_key(conn, "tsch_pair") == ["a", "b"]
            await conn.execute(insert(pair).values([{"a": 1, "b": "x", "v": 1}, {"a": 1, "b": "y", "v": 2},
                                                    {"a": 2, "b": "x", "v": 3}]))
            with pytest.raises(exc.IntegrityError):
                await conn.execute(insert(pair).values(a=1, b="y", v=4))
            await conn.rollback()
    finally:
        await md.drop_all(db)


async def test_integer_primary_key_is_generated(db: Engine) -> None:
    async with db.begin() as conn:
        ids = [(await conn.execute(insert(Tag).values(name=n).returning(Tag.id))).scalar_one() for n in "abc"]
    assert ids == sorted(ids) and len(set(ids)) == 3


async def test_column_types_in_the_catalog(db: Engine) -> None:
    async with db.connect() as conn:
        types = {k: v[0].lower() for k, v in (await columns(conn, "all_types")).items()}
        users = {k: v[0].lower() for k, v in (await columns(conn, "users")).items()}
        members = {k: v[0].lower() for k, v in (await columns(conn, "memberships")).items()}
    if db.dialect.name == "postgresql":
        # int is 64 bits, primary keys included; Decimal is exact; dict/list are JSONB
        assert users["id"] == "bigint" and members["user_no"] == "bigint" and types["i"] == "bigint"
        assert types["dec"] == "numeric"
        assert types["doc"] == types["items"] == "jsonb"
        assert types["dt"] == "timestamp without time zone"
        assert types["dt_tz"] == "timestamp with time zone"
        assert types["u"] == "uuid" and types["raw"] == "bytea" and types["td"] == "interval"
        assert types["short"] == "character varying" and types["b"] == "boolean"
    else:
        assert users["id"] == "integer"  # exactly INTEGER: an alias of the rowid, generated
        assert types["raw"] == "blob"


async def test_foreign_key_on_delete_cascade(db: Engine) -> None:
    async with db.connect() as conn:
        assert await foreign_keys(conn, "posts") == {("author_id", "users", "id", "CASCADE")}
        assert await foreign_keys(conn, "post_tags") == {("post_id", "posts", "id", "CASCADE"),
                                                         ("tag_id", "tags", "id", "CASCADE")}
    async with db.begin() as conn:
        await conn.execute(insert(User).values(id=1, name="a", created_at=NOW))
        await conn.execute(insert(Post).values(id=1, author_id=1, title="t", version=1))
        await conn.execute(insert(Tag).values(id=1, name="x"))
        await conn.execute(insert(post_tags).values(post_id=1, tag_id=1))
        await conn.execute(delete(User).where(User.id == 1))
    async with db.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(Post))).scalar_one() == 0
        assert (await conn.execute(select(func.count()).select_from(post_tags))).scalar_one() == 0
        assert (await conn.execute(select(func.count()).select_from(Tag))).scalar_one() == 1


def test_metadata_holds_tables_and_models() -> None:
    tables = Model.metadata.tables
    assert tables["post_tags"] is post_tags
    assert tables["users"] is User.__table__
    assert tables["all_types"] is AllTypes.__table__
    assert all(isinstance(t, Table) for t in tables.values())
    md = MetaData()
    Table("tsch_once", Column("id", int, primary_key=True), metadata=md)
    with pytest.raises(exc.ArgumentError):
        Table("tsch_once", Column("id", int, primary_key=True), metadata=md)
    with pytest.raises(exc.ArgumentError):
        Table("users", Column("id", int, primary_key=True))  # already in Model.metadata
    assert Model.metadata.tables["users"] is User.__table__
