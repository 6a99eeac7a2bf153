"""Driver errors become aiouow errors (API section 7), the same class on both drivers."""

from __future__ import annotations

import asyncio
import datetime
import inspect as pyinspect
import sqlite3
from pathlib import Path
from typing import Any

import asyncpg
import pytest

import aiouow
from aiouow import Engine, create_engine, exc, insert, select, text, update
from aiouow.engine import Connection

from .models import AllTypes, Membership, Post, Tag, User

NOW = datetime.datetime(2024, 1, 2, 3, 4, 5)


def driver_error_types(engine: Engine) -> tuple[type[BaseException], ...]:
    """The exception classes the engine's driver raises."""
    if engine.dialect.name == "postgresql":
        return (asyncpg.PostgresError, asyncpg.InterfaceError)
    return (sqlite3.Error, OverflowError)  # sqlite3 raises OverflowError for an int beyond 64 bits


async def fails(conn: Connection, stmt: Any, params: dict[str, Any] | None = None) -> exc.DBAPIError:
    """Run ``stmt`` expecting a DBAPIError; check what it wraps, roll back, return it."""
    with pytest.raises(exc.DBAPIError) as info:
        await conn.execute(stmt, params)
    err = info.value
    assert type(err).__module__ == "aiouow.exc"
    assert isinstance(err.orig, driver_error_types(conn.engine)), repr(err.orig)
    assert err.__cause__ is err.orig
    assert type(err.orig).__name__ in str(err)  # the message names the driver's error
    await conn.rollback()
    return err


async def test_unique_violation_is_integrity_error(db: Engine) -> None:
    async with db.connect() as conn:
        await conn.execute(insert(Tag).values(name="dup"))
        await conn.commit()
        err = await fails(conn, insert(Tag).values(name="dup"))
        assert isinstance(err, exc.IntegrityError)
        assert err.statement is not None and err.statement.startswith('INSERT INTO "tags"')
        assert err.params == ["dup"]
        if db.dialect.name == "postgresql":
            assert isinstance(err.orig, asyncpg.UniqueViolationError)
            assert err.orig.sqlstate == "23505"
        else:
            assert isinstance(err.orig, sqlite3.IntegrityError)
            assert "UNIQUE" in str(err.orig)
        # a unique index created by column(unique=True) on a nullable column, and a primary key
        await conn.execute(insert(User).values(id=1, name="a", email="a@x.org", created_at=NOW))
        await conn.commit()
        err = await fails(conn, insert(User).values(name="b", email="a@x.org", created_at=NOW))
        assert isinstance(err, exc.IntegrityError)
        err = await fails(conn, insert(User).values(id=1, name="c", created_at=NOW))
        assert isinstance(err, exc.IntegrityError)
        # the connection is usable after the rollback
        assert (await conn.execute(select(Tag.name))).scalars().all() == ["dup"]


async def test_composite_key_violation_is_integrity_error(db: Engine) -> None:
    async with db.connect() as conn:
        await conn.execute(insert(Membership).values(org="o", user_no=1, role="r"))
        await conn.execute(insert(Membership).values(org="o", user_no=2, role="r"))
        await conn.commit()
        err = await fails(conn, insert(Membership).values(org="o", user_no=1, role="other"))
        assert isinstance(err, exc.IntegrityError)


async def test_foreign_key_violation_is_integrity_error(db: Engine) -> None:
    async with db.connect() as conn:
        err = await fails(conn, insert(Post).values(author_id=12345, title="orphan", version=1))
        assert isinstance(err, exc.IntegrityError)
        if db.dialect.name == "postgresql":
            assert err.orig.sqlstate == "23503"
        else:
            assert "FOREIGN KEY" in str(err.orig)
        # and pointing an existing row at nothing
        await conn.execute(insert(User).values(id=1, name="a", created_at=NOW))
        await conn.execute(insert(Post).values(id=1, author_id=1, title="t", version=1))
        await conn.commit()
        err = await fails(conn, update(Post).where(Post.id == 1).values(author_id=999))
        assert isinstance(err, exc.IntegrityError)


async def test_not_null_violation_is_integrity_error(db: Engine) -> None:
    async with db.connect() as conn:
        err = await fails(conn, insert(User).values(name=None, created_at=NOW))
        assert isinstance(err, exc.IntegrityError)


async def test_bad_sql_is_programming_error(db: Engine) -> None:
    async with db.connect() as conn:
        for stmt in (text("SELEC 1"), text("SELECT * FROM no_such_table_anywhere"),
                     text('SELECT no_such_column FROM "users"')):
            err = await fails(conn, stmt)
            assert isinstance(err, exc.ProgrammingError), err
            if db.dialect.name == "postgresql":
                assert err.orig.sqlstate.startswith("42")


async def test_value_the_driver_cannot_encode_is_data_error(db: Engine) -> None:
    async with db.connect() as conn:
        # an object no driver knows how to send
        err = await fails(conn, text("SELECT :v AS v"), {"v": object()})
        assert isinstance(err, exc.DataError)
        # an integer beyond 64 bits
        err = await fails(conn, insert(AllTypes).values(i=2**64))
        assert isinstance(err, exc.DataError)
        # a str for a BIGINT column: refused by aiouow before anything is sent, on both backends
        # (asyncpg would refuse it too, but truncates a float; SQLite would store it)
        with pytest.raises(exc.DataError, match=r"AllTypes\.i \(column all_types\.i\) takes BigInteger") as info:
            await conn.execute(insert(AllTypes).values(i="not a number"))
        assert info.value.orig is None
        # the connection stays usable: a client-side refusal is not a broken connection
        assert (await conn.execute(text("SELECT 7 AS n"))).scalar_one() == 7


async def test_server_side_data_errors_are_data_errors(db: Engine) -> None:
    async with db.connect() as conn:
        # not an integer for an integer primary key: refused before it is sent (was SQLite's
        # SQLITE_MISMATCH, asyncpg's refusal), with the same class
        with pytest.raises(exc.DataError, match=r"Tag\.id .* not str 'abc'"):
            await conn.execute(insert(Tag).values(id="abc", name="t"))
        # ... and what the server itself refuses
        await conn.exec_driver_sql('CREATE TEMPORARY TABLE strict_ids (id INTEGER PRIMARY KEY)')
        err = await fails(conn, text("INSERT INTO strict_ids (id) VALUES (:v)"), {"v": "abc"})
        assert isinstance(err, exc.DataError)
        if db.dialect.name == "postgresql":
            for stmt in (text("SELECT 1 / 0 AS x"), text("SELECT CAST('abc' AS INTEGER) AS x"),
                         insert(AllTypes).values(short="x" * 21)):  # longer than VARCHAR(20)
                err = await fails(conn, stmt)
                assert isinstance(err, exc.DataError), err
                assert err.orig.sqlstate.startswith("22")


async def test_lost_connection_is_operational_error(db: Engine, tmp_path: Path) -> None:
    if db.dialect.name == "postgresql":
        eng = create_engine(db.url.raw, pool_size=2)
        try:
            async with eng.connect() as conn:
                pid = (await conn.execute(text("SELECT pg_backend_pid() AS pid"))).scalar_one()
                async with db.connect() as killer:
                    await killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                await asyncio.sleep(0.1)
                with pytest.raises(exc.OperationalError) as info:
                    await conn.execute(text("SELECT 1"))
                assert isinstance(info.value.orig, (asyncpg.PostgresError, asyncpg.InterfaceError, OSError))
            # the broken connection was not returned to the pool: the next one works
            assert eng.pool.checked_out == 0
            async with eng.connect() as conn:
                assert (await conn.execute(text("SELECT 1 AS one"))).scalar_one() == 1
        finally:
            await eng.dispose()
    else:
        eng = create_engine(f"sqlite:///{tmp_path}/ro.db")
        try:
            async with eng.begin() as conn:
                await conn.execute(text("CREATE TABLE t (x INTEGER)"))
                await conn.execute(text("PRAGMA query_only = ON"))
            async with eng.connect() as conn:
                with pytest.raises(exc.OperationalError) as info:
                    await conn.execute(text("INSERT INTO t VALUES (1)"))
                assert isinstance(info.value.orig, sqlite3.OperationalError)
        finally:
            await eng.dispose()


async def test_failing_to_connect_is_operational_error(engine: Engine, tmp_path: Path) -> None:
    if engine.dialect.name == "postgresql":
        base = engine.url.raw.rsplit("/", 1)[0]
        urls = [base + "/aiouow_no_such_database", "postgresql://postgres@127.0.0.1:1/test"]
    else:
        urls = [f"sqlite:///{tmp_path}"]  # a directory, not a database file
    for url in urls:
        eng = create_engine(url, pool_timeout=5)
        try:
            with pytest.raises(exc.OperationalError) as info:
                async with eng.connect() as conn:
                    await conn.execute(text("SELECT 1"))
            assert info.value.orig is not None
            assert eng.pool.checked_out == 0
        finally:
            await eng.dispose()


async def test_errors_inside_engine_begin_roll_back_and_propagate(db: Engine) -> None:
    with pytest.raises(exc.IntegrityError):
        async with db.begin() as conn:
            await conn.execute(insert(Tag).values(name="kept?"))
            await conn.execute(insert(Tag).values(name="kept?"))
    async with db.connect() as conn:
        assert (await conn.execute(select(Tag.id))).all() == []


def test_every_exception_derives_from_aiouow_error() -> None:
    classes = [obj for _, obj in pyinspect.getmembers(exc, pyinspect.isclass) if obj.__module__ == "aiouow.exc"]
    assert len(classes) >= 16
    for cls in classes:
        assert issubclass(cls, exc.AiouowError), cls
    for name in ("AiouowError", "InvalidRequestError", "PendingRollbackError", "NotLoadedError",
                 "DetachedInstanceError", "ObjectDeletedError", "NoResultFound", "MultipleResultsFound",
                 "StaleDataError", "ConcurrentSessionUseError", "ArgumentError", "DBAPIError", "IntegrityError",
                 "OperationalError", "ProgrammingError", "DataError"):
        assert issubclass(getattr(exc, name), exc.AiouowError), name
    for name in ("IntegrityError", "OperationalError", "ProgrammingError", "DataError"):
        assert issubclass(getattr(exc, name), exc.DBAPIError)
    assert issubclass(exc.DetachedInstanceError, exc.NotLoadedError)
    assert not issubclass(exc.NotLoadedError, AttributeError)
    assert aiouow.exc is exc
