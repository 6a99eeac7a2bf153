"""Engine, URLs, connections, transactions, echo logging, the pool and streaming results."""

from __future__ import annotations

import asyncio
import datetime
import gc
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aiouow import Column, Engine, MetaData, Table, create_engine, exc, func, insert, select, text, update
from aiouow.engine import make_url

from .conftest import StatementLog
from .models import Tag, User

NOW = datetime.datetime(2024, 1, 2, 3, 4, 5)


def same_database(engine: Engine, scheme: str | None = None) -> str:
    """The URL of ``engine``'s database, optionally spelled with another scheme."""
    raw = engine.url.raw
    if scheme is None:
        return raw
    return scheme + "://" + raw.split("://", 1)[1]


@pytest.fixture
async def new_engine(engine: Engine) -> AsyncIterator[Any]:
    """``new_engine(**kw)``: another engine on the same database, disposed after the test."""
    made: list[Engine] = []

    def make(url: str | None = None, **kw: Any) -> Engine:
        eng = create_engine(url or same_database(engine), **kw)
        made.append(eng)
        return eng

    yield make
    for eng in made:
        await eng.dispose()


async def count_tags(engine: Engine) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(Tag))).scalar_one()


# -- URLs ----------------------------------------------------------------------------

@pytest.mark.parametrize(("url", "backend", "database"), [
    ("sqlite:///app.db", "sqlite", "app.db"),
    ("sqlite:////tmp/abs/app.db", "sqlite", "/tmp/abs/app.db"),
    ("sqlite:///:memory:", "sqlite", ":memory:"),
    ("sqlite://", "sqlite", ":memory:"),
    ("sqlite+aiosqlite:///app.db", "sqlite", "app.db"),
    ("postgresql://user@127.0.0.1/db", "postgresql", "db"),
    ("postgresql+asyncpg://user:pw@localhost:5433/other?sslmode=disable", "postgresql", "other"),
    ("postgres://user@host/db", "postgresql", "db"),
])
def test_url_forms(url: str, backend: str, database: str) -> None:
    u = make_url(url)
    assert (u.backend, u.database) == (backend, database)
    assert str(u) == url


def test_postgresql_url_reaches_asyncpg_unchanged() -> None:
    u = make_url("postgresql+asyncpg://user:pw@localhost:5433/other?sslmode=disable")
    assert u.driver_dsn == "postgresql://user:pw@localhost:5433/other?sslmode=disable"


@pytest.mark.parametrize("url", [
    "mysql://user@host/db", "nonsense", "", "sqlite://host/db", "postgresql+psycopg2://u@h/db", "sqlite:",
])
def test_bad_url_is_an_argument_error(url: str) -> None:
    with pytest.raises(exc.ArgumentError):
        create_engine(url)


def test_bad_arguments_are_argument_errors(tmp_path: Path) -> None:
    with pytest.raises(exc.ArgumentError):
        create_engine(42)  # type: ignore[arg-type]
    with pytest.raises(exc.ArgumentError):
        create_engine(f"sqlite:///{tmp_path}/x.db", pool_timeout=0)
    with pytest.raises(exc.ArgumentError):
        create_engine(f"sqlite:///{tmp_path}/missing-dir/x.db")


async def test_driver_aliases_connect(engine: Engine, new_engine: Any) -> None:
    scheme = "sqlite+aiosqlite" if engine.dialect.name == "sqlite" else "postgresql+asyncpg"
    eng = new_engine(same_database(engine, scheme))
    assert eng.dialect.name == engine.dialect.name
    async with eng.connect() as conn:
        assert (await conn.execute(text("SELECT 41 + 1 AS n"))).scalar_one() == 42


# -- connections and transactions -----------------------------------------------------

async def test_connect_execute_commit(db: Engine) -> None:
    async with db.connect() as conn:
        await conn.execute(insert(Tag).values(name="a"))
        await conn.commit()
    assert await count_tags(db) == 1


async def test_autobegin_and_rollback_discards(db: Engine, sql: Any) -> None:
    with sql(db) as log:
        async with db.connect() as conn:
            assert not conn.in_transaction()
            await conn.execute(insert(Tag).values(name="a"))
            assert conn.in_transaction()  # the statement began a transaction
            # visible inside the transaction ...
            assert (await conn.execute(select(func.count()).select_from(Tag))).scalar_one() == 1
            await conn.rollback()
            assert not conn.in_transaction()
            # ... and gone after the rollback, on this connection and on the next one
            assert (await conn.execute(select(func.count()).select_from(Tag))).scalar_one() == 0
    assert log.records[0].startswith("BEGIN")
    assert any(r.startswith("ROLLBACK") for r in log.records)
    assert await count_tags(db) == 0


async def test_close_without_commit_rolls_back(db: Engine) -> None:
    async with db.connect() as conn:
        await conn.execute(insert(Tag).values(name="a"))
    assert await count_tags(db) == 0
    conn = await db.connect()
    await conn.execute(insert(Tag).values(name="b"))
    await conn.close()
    assert conn.closed
    assert await count_tags(db) == 0
    with pytest.raises(exc.InvalidRequestError):
        await conn.execute(select(Tag.id))


async def test_commit_then_more_work_in_a_new_transaction(db: Engine) -> None:
    async with db.connect() as conn:
        await conn.execute(insert(Tag).values(name="kept"))
        await conn.commit()
        await conn.execute(insert(Tag).values(name="dropped"))
        await conn.rollback()
        await conn.execute(insert(Tag).values(name="kept too"))
        await conn.commit()
    async with db.connect() as conn:
        names = (await conn.execute(select(Tag.name).order_by(Tag.id))).scalars().all()
    assert names == ["kept", "kept too"]


async def test_connection_begin_commits_or_rolls_back(db: Engine) -> None:
    async with db.connect() as conn:
        async with conn.begin():
            await conn.execute(insert(Tag).values(name="a"))
        assert not conn.in_transaction()
        with pytest.raises(RuntimeError, match="boom"):
            async with conn.begin():
                await conn.execute(insert(Tag).values(name="b"))
                raise RuntimeError("boom")
        assert not conn.in_transaction()
        # a transaction already open (autobegun): begin() refuses, as in SQLAlchemy
        await conn.execute(select(Tag.id))
        with pytest.raises(exc.InvalidRequestError):
            conn.begin()
        await conn.rollback()
    async with db.connect() as conn:
        assert (await conn.execute(select(Tag.name))).scalars().all() == ["a"]


async def test_begin_nested_savepoints(db: Engine, sql: Any) -> None:
    with sql(db) as log:
        async with db.connect() as conn:
            await conn.execute(insert(Tag).values(name="outer"))
            async with conn.begin_nested():
                assert conn.in_nested_transaction()
                await conn.execute(insert(Tag).values(name="released"))
            assert not conn.in_nested_transaction()
            with pytest.raises(RuntimeError):
                async with conn.begin_nested():
                    await conn.execute(insert(Tag).values(name="rolled back"))
                    raise RuntimeError("undo the savepoint only")
            sp = await conn.begin_nested()
            await conn.execute(insert(Tag).values(name="explicit rollback"))
            await sp.rollback()
            # the outer transaction is still open and holds its work
            assert conn.in_transaction()
            names = (await conn.execute(select(Tag.name).order_by(Tag.id))).scalars().all()
            assert names == ["outer", "released"]
            await conn.commit()
    assert any(r.startswith("SAVEPOINT") for r in log.records)
    assert any(r.startswith("ROLLBACK TO SAVEPOINT") for r in log.records)
    async with db.connect() as conn:
        assert (await conn.execute(select(Tag.name).order_by(Tag.id))).scalars().all() == ["outer", "released"]


async def test_engine_begin(db: Engine) -> None:
    async with db.begin() as conn:
        assert conn.in_transaction()
        await conn.execute(insert(Tag).values(name="committed"))
    with pytest.raises(ValueError, match="abort"):
        async with db.begin() as conn:
            await conn.execute(insert(Tag).values(name="rolled back"))
            raise ValueError("abort")
    async with db.connect() as conn:
        assert (await conn.execute(select(Tag.name))).scalars().all() == ["committed"]


async def test_exec_driver_sql(db: Engine) -> None:
    mark = "$1" if db.dialect.name == "postgresql" else "?"
    async with db.begin() as conn:
        result = await conn.exec_driver_sql(f'INSERT INTO "tags" ("name") VALUES ({mark})', ["raw"])
        assert result.rowcount == 1
        row = (await conn.exec_driver_sql(f'SELECT "name" FROM "tags" WHERE "name" = {mark}', ["raw"])).one()
        assert row.name == "raw"


# -- results ---------------------------------------------------------------------

async def test_result_api(db: Engine) -> None:
    async with db.begin() as conn:
        await conn.execute(insert(Tag).values([{"id": i, "name": f"t{i}"} for i in (1, 2, 3)]))
    async with db.connect() as conn:
        stmt = select(Tag.id, Tag.name).order_by(Tag.id)
        rows = (await conn.execute(stmt)).all()
        assert [tuple(r) for r in rows] == [(1, "t1"), (2, "t2"), (3, "t3")]
        first = rows[0]
        tag_id, name = first
        assert (tag_id, name) == (first.id, first.name) == (first[0], first[1]) == (1, "t1")
        assert first._mapping == {"id": 1, "name": "t1"}
        assert [tuple(r) for r in await conn.execute(stmt)] == [(1, "t1"), (2, "t2"), (3, "t3")]
        assert (await conn.execute(stmt)).first().name == "t1"
        assert (await conn.execute(stmt)).scalars().all() == [1, 2, 3]
        assert (await conn.execute(stmt)).scalar() == 1
        assert (await conn.execute(stmt)).mappings()[2] == {"id": 3, "name": "t3"}
        assert (await conn.execute(stmt)).mappings().all()[2] == {"id": 3, "name": "t3"}
        assert (await conn.execute(stmt)).mappings().first() == {"id": 1, "name": "t1"}
        assert [m["name"] for m in (await conn.execute(stmt)).mappings()] == ["t1", "t2", "t3"]
        assert (await conn.execute(stmt)).keys() == ["id", "name"]
        one = select(Tag.name).where(Tag.id == 2)
        none = select(Tag.name).where(Tag.id == 99)
        assert (await conn.execute(one)).one().name == "t2"
        assert (await conn.execute(one)).scalar_one() == "t2"
        assert (await conn.execute(one)).scalar_one_or_none() == "t2"
        assert (await conn.execute(none)).one_or_none() is None
        assert (await conn.execute(none)).scalar_one_or_none() is None
        assert (await conn.execute(none)).first() is None
        assert (await conn.execute(none)).mappings().one_or_none() is None
        assert (await conn.execute(one)).mappings().one() == {"name": "t2"}
        assert (await conn.execute(none)).scalar() is None
        with pytest.raises(exc.NoResultFound):
            (await conn.execute(none)).one()
        with pytest.raises(exc.NoResultFound):
            (await conn.execute(none)).scalar_one()
        with pytest.raises(exc.MultipleResultsFound):
            (await conn.execute(stmt)).one()
        with pytest.raises(exc.MultipleResultsFound):
            (await conn.execute(stmt)).scalar_one_or_none()


async def test_stream_returns_chunks(db: Engine) -> None:
    async with db.begin() as conn:
        await conn.execute(insert(Tag).values([{"id": i, "name": f"t{i:02}"} for i in range(1, 26)]))
    async with db.connect() as conn:
        result = await conn.stream(select(Tag.id, Tag.name).order_by(Tag.id), chunk_size=10)
        chunks = [chunk async for chunk in result.partitions()]
        assert [len(c) for c in chunks] == [10, 10, 5]
        assert [r.id for c in chunks for r in c] == list(range(1, 26))
        assert chunks[2][-1].name == "t25"

        result = await conn.stream(select(Tag.name).where(Tag.id > 20).order_by(Tag.id), chunk_size=2)
        assert [name async for name in result.scalars()] == ["t21", "t22", "t23", "t24", "t25"]

        if db.dialect.name == "postgresql":
            # a server-side cursor: open on the server between chunks
            result = await conn.stream(select(Tag.id).order_by(Tag.id), chunk_size=5)
            parts = result.partitions()
            assert len(await parts.__anext__()) == 5
            cursors = (await conn.exec_driver_sql("SELECT count(*) AS n FROM pg_cursors")).one().n
            assert cursors >= 1
            await parts.aclose()
        await conn.rollback()


# -- echo ------------------------------------------------------------------------

@pytest.fixture
def engine_log() -> Any:
    logger = logging.getLogger("aiouow.engine")
    handler = StatementLog()
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old)


async def test_echo_logs_each_statement_with_parameters(db: Engine, new_engine: Any, engine_log: StatementLog
                                                        ) -> None:
    eng = new_engine(echo=True)
    stmt = select(Tag.id, Tag.name).where(Tag.name == "needle-123").order_by(Tag.id)
    compiled, _ = eng.dialect.compile(stmt)
    async with eng.connect() as conn:
        await conn.execute(stmt)
        await conn.execute(insert(Tag).values(name="logged-value"))
        await conn.rollback()
    statements = engine_log.statements
    assert len(statements) == 2, engine_log.records  # one record per statement
    sql_line, params_line = statements[0].split("\n", 1)
    assert sql_line == compiled.sql
    assert params_line.startswith("[") and "needle-123" in params_line
    assert statements[1].startswith('INSERT INTO "tags"')
    assert "logged-value" in statements[1].split("\n", 1)[1]
    assert [r for r in engine_log.records if r.startswith(("BEGIN", "ROLLBACK"))]


async def test_echo_off_logs_nothing(db: Engine, new_engine: Any, engine_log: StatementLog) -> None:
    eng = new_engine(echo=False)
    for i, e in enumerate((db, eng)):
        assert e.echo is False
        async with e.connect() as conn:
            await conn.execute(select(Tag.id).where(Tag.name == "x"))
            await conn.execute(insert(Tag).values(name=f"x{i}"))
            await conn.commit()
    assert await count_tags(db) == 2
    assert engine_log.records == []


async def test_echo_can_be_switched_on_and_off(db: Engine, engine_log: StatementLog) -> None:
    db.echo = True
    try:
        async with db.connect() as conn:
            await conn.execute(select(Tag.id))
    finally:
        db.echo = False
    assert len(engine_log.statements) == 1
    async with db.connect() as conn:
        await conn.execute(select(Tag.id))
    assert len(engine_log.statements) == 1


# -- pool ------------------------------------------------------------------------

async def test_pool_size_and_timeout_accepted(engine: Engine, new_engine: Any) -> None:
    eng = new_engine(pool_size=3, pool_timeout=5)
    assert (eng.pool_size, eng.pool_timeout) == (3, 5.0)
    async with eng.connect() as conn:
        assert (await conn.execute(text("SELECT 1 AS one"))).scalar_one() == 1
    assert create_engine(same_database(engine)).pool_size == 10  # the default


async def _write(conn: Any) -> Any:
    """A statement that needs the writing connection (it changes nothing)."""
    await conn.execute(text("DELETE FROM tags WHERE id = -1"))
    return conn


async def _connect_and_write(eng: Engine) -> Any:
    conn = await eng.connect()
    try:
        return await _write(conn)
    except BaseException:
        await conn.close()
        raise


async def test_exhausted_pool_times_out_and_recovers(engine: Engine, new_engine: Any) -> None:
    eng = new_engine(pool_size=2, pool_timeout=0.2)
    # SQLite has one writer (writing transactions are serialized); PostgreSQL opens pool_size
    capacity = 1 if engine.dialect.name == "sqlite" else 2
    held = [await _write(await eng.connect()) for _ in range(capacity)]
    started = time.monotonic()
    with pytest.raises(exc.PoolTimeoutError, match="pool_timeout"):
        async with eng.connect() as conn:
            await _write(conn)
    assert 0.15 <= time.monotonic() - started < 1.5
    assert eng.pool.checked_out == capacity
    if engine.dialect.name == "sqlite":
        # reads do not wait for the writer
        async with eng.connect() as conn:
            assert (await conn.execute(text("SELECT 1 AS one"))).scalar_one() == 1

    # a waiter gets the connection as soon as one is released
    waiter = asyncio.create_task(_connect_and_write(eng))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await held.pop().close()
    conn = await asyncio.wait_for(waiter, 1)
    assert (await conn.execute(text("SELECT 2 AS two"))).scalar_one() == 2
    await conn.close()
    for conn in held:
        await conn.close()
    assert eng.pool.checked_out == 0
    async with eng.connect() as conn:
        assert (await conn.execute(text("SELECT 3 AS three"))).scalar_one() == 3


async def test_dispose_closes_idle_connections(engine: Engine, new_engine: Any) -> None:
    name = f"aiouow_dispose_test_{os.getpid()}"
    args = {"server_settings": {"application_name": name}} if engine.dialect.name == "postgresql" else {}
    eng = new_engine(connect_args=args)
    async with eng.connect() as conn:
        await conn.execute(text("SELECT 1"))
    assert eng.pool.opened == 1

    async def server_side() -> int:
        async with engine.connect() as conn:
            return (await conn.execute(text("SELECT count(*) AS n FROM pg_stat_activity "
                                            "WHERE application_name = :name"), {"name": name})).scalar_one()

    if engine.dialect.name == "postgresql":
        assert await server_side() == 1
    await eng.dispose()
    assert eng.pool.opened == 0
    if engine.dialect.name == "postgresql":
        for _ in range(50):  # the server notices the closed socket shortly after
            if await server_side() == 0:
                break
            await asyncio.sleep(0.02)
        assert await server_side() == 0
    # the engine stays usable: a new connection is opened
    async with eng.connect() as conn:
        assert (await conn.execute(text("SELECT 5 AS n"))).scalar_one() == 5


# -- driver specifics ---------------------------------------------------------------

async def test_connect_args_reach_the_driver(engine: Engine, new_engine: Any) -> None:
    if engine.dialect.name == "postgresql":
        eng = new_engine(connect_args={"server_settings": {"application_name": "aiouow-x"}})
        query, expected = "SHOW application_name", "aiouow-x"
    else:
        eng = new_engine(connect_args={"timeout": 2.5})  # sqlite3's busy timeout, in seconds
        query, expected = "PRAGMA busy_timeout", 2500
    async with eng.connect() as conn:
        assert (await conn.execute(text(query))).scalar() == expected
    if engine.dialect.name == "postgresql":
        # query parameters of the URL reach asyncpg too (it sends unknown ones as server settings)
        sep = "&" if "?" in engine.url.raw else "?"
        eng = new_engine(engine.url.raw + sep + "application_name=aiouow-q")
        async with eng.connect() as conn:
            assert (await conn.execute(text("SHOW application_name"))).scalar() == "aiouow-q"


async def test_sqlite_pragmas(engine: Engine, tmp_path: Path, new_engine: Any) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite connection set-up")
    for eng in (engine, new_engine("sqlite:///:memory:"), new_engine(f"sqlite:///{tmp_path}/p.db")):
        async with eng.connect() as conn:
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
            mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar()
        assert mode == ("memory" if eng.url.database == ":memory:" else "wal")


async def test_sqlite_memory_is_one_database_per_engine() -> None:
    eng = create_engine("sqlite:///:memory:")
    other = create_engine("sqlite+aiosqlite://")
    md = MetaData()
    table = Table("teng_memory", Column("id", int, primary_key=True), Column("v", str), metadata=md)
    try:
        await md.create_all(eng)
        async with eng.begin() as conn:
            await conn.execute(insert(table).values(v="seen"))
        # every later connection of the engine sees the schema and the committed row
        for _ in range(3):
            async with eng.connect() as conn:
                assert (await conn.execute(select(table.c.v))).scalars().all() == ["seen"]

        # concurrent users of the engine take turns on the one database
        async def add(i: int) -> None:
            async with eng.begin() as conn:
                await conn.execute(insert(table).values(v=f"task{i}"))
                await asyncio.sleep(0)

        await asyncio.gather(*(add(i) for i in range(5)))
        async with eng.connect() as conn:
            assert (await conn.execute(select(func.count()).select_from(table))).scalar_one() == 6
        # another engine's :memory: database is a different one
        async with other.connect() as conn:
            with pytest.raises(exc.ProgrammingError):
                await conn.execute(select(table.c.v))
    finally:
        await eng.dispose()
        await other.dispose()


async def test_sqlite_file_engines_share_the_file(engine: Engine, tmp_path: Path, new_engine: Any) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite files")
    url = f"sqlite:///{tmp_path}/shared.db"
    a, b = new_engine(url), new_engine(url)
    md = MetaData()
    table = Table("teng_file", Column("id", int, primary_key=True), Column("v", str), metadata=md)
    await md.create_all(a)
    async with a.begin() as conn:
        await conn.execute(insert(table).values(v="from a"))
    async with b.connect() as conn:
        assert (await conn.execute(select(table.c.v))).scalars().all() == ["from a"]


async def test_statements_of_concurrent_tasks_each_get_a_connection(db: Engine) -> None:
    async def work(i: int) -> int:
        async with db.begin() as conn:
            await conn.execute(insert(User).values(name=f"u{i}", created_at=NOW))
            return (await conn.execute(select(func.count()).select_from(User).where(User.name == f"u{i}"))
                    ).scalar_one()

    assert await asyncio.gather(*(work(i) for i in range(12))) == [1] * 12
    async with db.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(User))).scalar_one() == 12


async def test_cancelled_waiter_leaks_nothing(engine: Engine, new_engine: Any) -> None:
    eng = new_engine(pool_size=1, pool_timeout=5)
    capacity = 1  # pool_size=1 on both backends
    held = await _write(await eng.connect())  # SQLite: the writer; PostgreSQL: the connection

    # cancelled while waiting
    waiter = asyncio.create_task(_connect_and_write(eng))
    await asyncio.sleep(0.05)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert eng.pool.checked_out == capacity

    # cancelled just as the released connection was handed to it
    waiter = asyncio.create_task(_connect_and_write(eng))
    await asyncio.sleep(0.05)
    await held.close()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert eng.pool.checked_out == 0
    async with eng.connect() as conn:  # promptly: the connection (SQLite: the writer) went back
        await asyncio.wait_for(_write(conn), 1)
        assert (await asyncio.wait_for(conn.execute(text("SELECT 4 AS n")), 1)).scalar_one() == 4


async def test_garbage_collected_connection_is_rolled_back_and_returned(db: Engine) -> None:
    conn = await db.connect()
    await conn.execute(insert(Tag).values(name="never committed"))
    with pytest.warns(ResourceWarning):
        del conn
        gc.collect()
    for _ in range(50):
        if db.pool.checked_out == 0:
            break
        await asyncio.sleep(0.01)
    assert db.pool.checked_out == 0
    assert await count_tags(db) == 0


async def test_execute_with_a_list_of_parameter_sets(db: Engine) -> None:
    async with db.begin() as conn:
        result = await conn.execute(insert(Tag), [{"name": "a"}, {"name": "b"}, {"name": "c"}])
        assert result.rowcount in (3, -1)  # asyncpg's executemany does not report a count
    async with db.connect() as conn:
        assert (await conn.execute(select(Tag.name).order_by(Tag.name))).scalars().all() == ["a", "b", "c"]
    with pytest.raises(exc.ArgumentError):
        async with db.connect() as conn:
            await conn.execute(select(Tag.id), [{"name": "a"}])


async def test_read_then_write_transactions_all_succeed(db: Engine) -> None:
    """The classic SQLite trap: transactions that read and later write, concurrently."""
    async with db.begin() as conn:
        await conn.execute(insert(Tag).values(id=1, name="0"))

    async def bump() -> None:
        async with db.begin() as conn:
            current = (await conn.execute(select(Tag.name).where(Tag.id == 1))).scalar_one()
            await asyncio.sleep(0.01)
            # reads are READ COMMITTED on both backends: the row lock (on SQLite, taking the
            # writer) serializes the bump
            await conn.execute(select(Tag.id).where(Tag.id == 1).with_for_update())
            current = (await conn.execute(select(Tag.name).where(Tag.id == 1))).scalar_one()
            await conn.execute(update(Tag).where(Tag.id == 1).values(name=str(int(current) + 1)))

    await asyncio.gather(*(bump() for _ in range(10)))
    async with db.connect() as conn:
        assert (await conn.execute(select(Tag.name).where(Tag.id == 1))).scalar_one() == "10"
