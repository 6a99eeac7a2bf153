"""Concurrent sessions read at once; writing transactions are serialized (issue 10, item 8).

On SQLite (WAL) reads before a transaction's first write run on pooled reader connections
and see the latest committed data, as PostgreSQL's READ COMMITTED does; the first write
takes the single writer with BEGIN IMMEDIATE.  Where the behaviour is the same on both
backends the test runs on both.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aiouow import AsyncSession, Engine, create_engine, exc, func, insert, select, text
from aiouow.dialects.sqlite_pool import FOR_UPDATE_MARK, _writes

from .models import Tag, User
from .session_support import count, seed_users
from .test_concurrency import slow_statement


@pytest.fixture
async def other(db: Engine) -> AsyncIterator[Any]:
    """``other(**kw)``: a second engine on the same database, disposed after the test."""
    made: list[Engine] = []

    def make(**kw: Any) -> Engine:
        kw.setdefault("pool_size", 2)
        eng = create_engine(db.url.raw, **kw)
        made.append(eng)
        return eng

    yield make
    for eng in made:
        assert eng.pool.checked_out == 0
        await eng.dispose()


def sqlite_only(db: Engine) -> None:
    if db.dialect.name != "sqlite":
        pytest.skip("SQLite's reader/writer connections")


# -- both backends -------------------------------------------------------------------------------

async def test_two_sessions_open_at_once_in_one_task_each_read(db: Engine, other: Any) -> None:
    await seed_users(db, "ann")
    eng = other(pool_timeout=0.5)  # a wait for a connection would fail, not just be slow
    started = time.monotonic()
    async with AsyncSession(eng) as a, AsyncSession(eng) as b:
        assert await a.scalar(select(func.count()).select_from(User)) == 1
        assert await b.scalar(select(func.count()).select_from(User)) == 1
        assert await a.scalar(select(User.name)) == "ann"
    assert time.monotonic() - started < 0.4


async def test_ten_tasks_read_then_write_and_commit_all_succeed(db: Engine) -> None:
    await seed_users(db, "seed")

    async def work(i: int) -> None:
        async with AsyncSession(db) as s:
            seen = await s.scalar(select(func.count()).select_from(User))
            await asyncio.sleep(0.01)  # the others read meanwhile
            s.add(User(name=f"w{i}-saw-{seen}"))
            await s.commit()

    await asyncio.gather(*(work(i) for i in range(10)))
    assert await count(db, User) == 11


async def test_locking_read_serializes_read_modify_write(db: Engine) -> None:
    (uid,) = await seed_users(db, "0")

    async def bump() -> None:
        async with AsyncSession(db) as s:
            u = await s.get(User, uid, with_for_update=True)
            await asyncio.sleep(0.005)
            u.name = str(int(u.name) + 1)
            await s.commit()

    await asyncio.gather(*(bump() for _ in range(10)))
    async with AsyncSession(db) as s:
        assert await s.scalar(select(User.name).where(User.id == uid)) == "10"


async def test_read_sees_data_committed_after_the_transaction_began(db: Engine) -> None:
    await seed_users(db, "ann")
    async with AsyncSession(db) as reader:
        assert await reader.scalar(select(func.count()).select_from(User)) == 1
        assert reader.in_transaction()
        async with AsyncSession(db) as writer:
            writer.add(User(name="bob"))
            await writer.commit()
        # same transaction, nothing written yet: the latest committed data (READ COMMITTED)
        assert await reader.scalar(select(func.count()).select_from(User)) == 2


async def test_rows_deleted_by_a_second_engine_are_seen_and_the_first_write_works(db: Engine,
                                                                                   other: Any) -> None:
    uids = await seed_users(db, "ann", "bob")
    eng2 = other()
    async with AsyncSession(db) as s:
        assert await s.scalar(select(func.count()).select_from(User)) == 2
        async with eng2.begin() as conn:
            await conn.execute(text("DELETE FROM users WHERE id = :id"), {"id": uids[0]})
        assert (await s.scalars(select(User.name).order_by(User.id))).all() == ["bob"]
        # its first write: not "database is locked" (a stale snapshot) on SQLite
        s.add(User(name="cy"))
        await s.commit()
    async with AsyncSession(db) as s:
        assert (await s.scalars(select(User.name).order_by(User.id))).all() == ["bob", "cy"]


async def test_a_transaction_reads_its_own_writes_others_do_not(db: Engine) -> None:
    async with AsyncSession(db) as s:
        assert await s.scalar(select(func.count()).select_from(User)) == 0
        s.add(User(name="ann"))
        await s.flush()
        assert await s.scalar(select(func.count()).select_from(User)) == 1
        async with AsyncSession(db) as peer:
            assert await peer.scalar(select(func.count()).select_from(User)) == 0
        await s.rollback()
    assert await count(db, User) == 0


async def test_long_stream_open_while_another_session_writes_and_commits(db: Engine, other: Any) -> None:
    await seed_users(db, *[f"u{i}" for i in range(10)])
    eng = other(pool_timeout=2)
    async with AsyncSession(eng) as reading:
        result = await reading.stream_scalars(select(User.name).order_by(User.id), chunk_size=2)
        rows = aiter(result)
        got = [await anext(rows)]

        async def write() -> None:
            async with AsyncSession(eng) as s:
                s.add(User(name="new"))
                await s.commit()

        await asyncio.wait_for(write(), 1)  # the stream does not hold the writer up
        got += [name async for name in rows]
        assert got == [f"u{i}" for i in range(10)]  # the stream's own snapshot
        await reading.commit()
    assert await count(db, User) == 11


async def test_core_connection_read_then_write_then_commit(db: Engine) -> None:
    async with db.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(Tag))).scalar_one() == 0
        await conn.execute(insert(Tag).values(name="a"))
        assert (await conn.execute(select(func.count()).select_from(Tag))).scalar_one() == 1
        await conn.commit()
        await conn.execute(insert(Tag).values(name="b"))
        await conn.rollback()
        assert (await conn.execute(select(Tag.name))).scalars().all() == ["a"]
    assert db.pool.checked_out == 0


async def test_savepoint_before_any_write(db: Engine) -> None:
    async with AsyncSession(db) as s:
        assert await s.scalar(select(func.count()).select_from(User)) == 0
        async with s.begin_nested():
            s.add(User(name="kept"))
        try:
            async with s.begin_nested():
                s.add(User(name="dropped"))
                await s.flush()
                raise RuntimeError
        except RuntimeError:
            pass
        await s.commit()
    async with AsyncSession(db) as s:
        assert (await s.scalars(select(User.name))).all() == ["kept"]


async def test_a_foreign_writer_is_waited_for(db: Engine, other: Any) -> None:
    eng2 = other()
    async with eng2.connect() as foreign:
        await foreign.execute(insert(Tag).values(name="foreign"))  # holds the write lock (SQLite)

        async def mine() -> None:
            async with AsyncSession(db) as s:
                s.add(Tag(name="mine"))
                await s.commit()

        task = asyncio.create_task(mine())
        await asyncio.sleep(0.3)
        await foreign.commit()
        await asyncio.wait_for(task, 5)
    async with AsyncSession(db) as s:
        assert sorted((await s.scalars(select(Tag.name))).all()) == ["foreign", "mine"]


async def test_a_cancelled_read_gives_its_connection_back_at_once(db: Engine, other: Any) -> None:
    eng = other(pool_size=1, pool_timeout=2)
    async with AsyncSession(eng) as s:
        task = asyncio.create_task(s.execute(slow_statement(eng, 2)))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await s.rollback()
    assert eng.pool.checked_out == 0
    started = time.monotonic()
    async with AsyncSession(eng) as s:  # the pool's only connection, not left interrupted
        assert await s.scalar(select(func.count()).select_from(User)) == 0
        result = await s.stream_scalars(select(func.count()).select_from(User))
        assert [n async for n in result] == [0]
    assert time.monotonic() - started < 1.5
    assert eng.pool.checked_out == 0


# -- SQLite --------------------------------------------------------------------------------------

async def test_sqlite_a_reading_session_holds_no_connection(db: Engine, other: Any) -> None:
    sqlite_only(db)
    eng = other(pool_size=1, pool_timeout=0.3)
    sessions = [AsyncSession(eng) for _ in range(5)]
    try:
        for s in sessions:  # five open transactions on a pool of one reader
            assert await s.scalar(select(func.count()).select_from(User)) == 0
        assert eng.pool._readers.checked_out == 0 and eng.pool._writer.checked_out == 0  # type: ignore[attr-defined]
        sessions[0].add(User(name="w"))
        await sessions[0].commit()  # the writer is free although four more transactions are open
        assert await sessions[1].scalar(select(func.count()).select_from(User)) == 1
    finally:
        for s in sessions:
            await s.close()


async def test_sqlite_pool_size_bounds_concurrent_streams(db: Engine, other: Any) -> None:
    sqlite_only(db)
    await seed_users(db, "ann", "bob", "cy")
    eng = other(pool_size=1, pool_timeout=0.2)
    async with AsyncSession(eng) as a, AsyncSession(eng) as b:
        result = await a.stream_scalars(select(User.name).order_by(User.id), chunk_size=1)
        assert await anext(aiter(result)) == "ann"
        with pytest.raises(exc.PoolTimeoutError, match="reader.*pool_size"):
            await b.scalar(select(func.count()).select_from(User))
        await result.close()
        assert await b.scalar(select(func.count()).select_from(User)) == 3


async def test_sqlite_writing_transactions_are_serialized_with_a_clear_timeout(db: Engine, other: Any) -> None:
    sqlite_only(db)
    eng = other(pool_timeout=0.2)
    async with AsyncSession(eng) as a, AsyncSession(eng) as b:
        a.add(User(name="a"))
        await a.flush()
        b.add(User(name="b"))
        with pytest.raises(exc.PoolTimeoutError, match="writer"):
            await b.flush()
        await b.rollback()
        await a.commit()
    assert await count(db, User) == 1


async def test_sqlite_a_foreign_writer_held_too_long_is_a_clear_error(db: Engine, other: Any) -> None:
    sqlite_only(db)
    foreign_engine, eng = other(), other(pool_timeout=0.3)
    async with foreign_engine.connect() as foreign:
        await foreign.execute(insert(Tag).values(name="foreign"))  # holds the file's write lock
        started = time.monotonic()
        async with eng.connect() as conn:
            with pytest.raises(exc.OperationalError, match="busy timeout") as raised:
                await conn.execute(insert(Tag).values(name="mine"))
        assert 0.25 <= time.monotonic() - started < 2
        assert not isinstance(raised.value, exc.StaleSnapshotError)
        await foreign.rollback()
    async with eng.begin() as conn:  # usable again
        await conn.execute(insert(Tag).values(name="mine"))
    assert await count(db, Tag) == 1


async def test_sqlite_statements_going_to_the_writer() -> None:
    reads = ["SELECT 1", "  select * from t", "(SELECT 1) UNION SELECT 2", "VALUES (1)",
             "-- note\nSELECT 1", "/* x */ SELECT 1", "WITH a AS (SELECT 1) SELECT * FROM a",
             "EXPLAIN QUERY PLAN SELECT 1"]
    writes = ["INSERT INTO t VALUES (1) RETURNING id", "UPDATE t SET x = 1 RETURNING x",
              "DELETE FROM t RETURNING x", "REPLACE INTO t VALUES (1)",
              "WITH a AS (SELECT 1) INSERT INTO t SELECT * FROM a RETURNING x",
              "PRAGMA foreign_keys=OFF", "PRAGMA table_info(t)", "SAVEPOINT x", "BEGIN",
              "SELECT x FROM t" + FOR_UPDATE_MARK, "frobnicate", "-- select\nINSERT INTO t VALUES (1) RETURNING x",
              "/* select */ DELETE FROM t RETURNING x", " " * 5000 + ";"]
    assert [s for s in reads if _writes(s)] == []
    assert [s for s in writes if not _writes(s)] == []


async def test_sqlite_with_dml_returning_runs_in_the_transaction(db: Engine) -> None:
    sqlite_only(db)
    async with db.connect() as conn:
        got = await conn.execute(text("WITH n(v) AS (SELECT 'x') INSERT INTO tags (name) SELECT v FROM n "
                                      "RETURNING name"))
        assert got.scalars().all() == ["x"]
        await conn.rollback()
    assert await count(db, Tag) == 0


async def test_sqlite_a_write_mistaken_for_a_read_is_rerun_on_the_writer(db: Engine) -> None:
    sqlite_only(db)
    from aiouow.dialects import sqlite_pool

    sql = "INSERT INTO tags (name) VALUES ('sneaky') RETURNING name"
    sqlite_pool._writes_cache[sql] = False  # as if the classifier got it wrong
    try:
        async with db.connect() as conn:
            # sent as a plain read would be (before BEGIN, to a reader): query_only refuses it
            # there, and it runs on the writer, in a transaction begun for it
            assert [r[0] for r in await conn.fetch_sql(sql, [], read=True)] == ["sneaky"]
            await conn.rollback()  # it ran in the transaction, not beside it on a reader
        assert await count(db, Tag) == 0
        assert sqlite_pool._writes_cache[sql] is True
    finally:
        sqlite_pool._writes_cache.pop(sql, None)


async def test_sqlite_stale_snapshot_is_a_clear_error(db: Engine, tmp_path: Any) -> None:
    sqlite_only(db)
    path = str(tmp_path / "stale.db")
    a = sqlite3.connect(path, isolation_level=None)
    b = sqlite3.connect(path, isolation_level=None, timeout=0.1)
    try:
        a.execute("PRAGMA journal_mode=WAL")
        a.execute("CREATE TABLE t (x)")
        b.execute("BEGIN")
        b.execute("SELECT * FROM t").fetchall()  # b's snapshot
        a.execute("INSERT INTO t VALUES (1)")  # committed after it
        with pytest.raises(sqlite3.OperationalError) as raised:
            b.execute("INSERT INTO t VALUES (2)")
    finally:
        a.close()
        b.close()
    err = db.dialect.translate_error(raised.value, "INSERT INTO t VALUES (2)", ())
    assert isinstance(err, exc.StaleSnapshotError) and isinstance(err, exc.OperationalError)
    assert "stale" in str(err) and "rollback()" in str(err) and "retry" in str(err)
    assert err.orig is raised.value


async def test_sqlite_memory_keeps_one_shared_database() -> None:
    eng = create_engine("sqlite:///:memory:", pool_timeout=5)
    try:
        async with eng.begin() as conn:
            await conn.exec_driver_sql("CREATE TABLE m (x INTEGER)")
            await conn.exec_driver_sql("INSERT INTO m VALUES (1)")
        async with eng.connect() as conn:
            assert (await conn.exec_driver_sql("SELECT x FROM m")).scalars().all() == [1]
        assert eng.pool.opened == 1

        async def work(i: int) -> None:
            async with eng.connect() as conn:
                seen = (await conn.exec_driver_sql("SELECT count(*) FROM m")).scalar_one()
                await asyncio.sleep(0.005)
                await conn.exec_driver_sql("INSERT INTO m VALUES (?)", (seen + 10 * i,))
                await conn.commit()

        await asyncio.gather(*(work(i) for i in range(10)))  # one at a time, none locked out
        async with eng.connect() as conn:
            assert (await conn.exec_driver_sql("SELECT count(*) FROM m")).scalar_one() == 11
        assert eng.pool.checked_out == 0 and eng.pool.opened == 1
    finally:
        await eng.dispose()
