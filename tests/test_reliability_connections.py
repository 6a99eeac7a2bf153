"""Connection loss (issue 13): the server ends a session's backend, or the network cuts it.

The session's backend is terminated with ``pg_terminate_backend`` from another connection
(filtered on this database and the session's own pid: other suites share the server) before,
during and after a flush and a commit.  What must hold every time: the error is
``OperationalError`` (``PendingRollbackError`` on later use until ``rollback()``), the dead
connection leaves the pool at once and is never handed out again, the next session works
without a restart, and the database holds exactly what was committed.  Terminating every
pooled connection at once must go unnoticed by the next users.  PostgreSQL only: SQLite has
no server to lose.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from aiouow import AsyncSession, Connection, Engine, Model, column, create_engine, exc, func, select, text

from .netproxy import TcpProxy
from .reliability import ReliabilityLog

pytestmark = pytest.mark.reliability

SECTION = "Connection loss (PostgreSQL)"


class LossRow(Model):
    __tablename__ = "rel_loss_rows"
    id: int = column(primary_key=True)
    name: str = column()


class SlowRow(Model):
    """Inserting one sleeps in a trigger (``slow_insert``) or at COMMIT (``slow_commit``)."""

    __tablename__ = "rel_slow_rows"
    id: int = column(primary_key=True)
    name: str = column()


@pytest.fixture
def pg(db: Engine) -> Engine:
    if db.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: pg_terminate_backend")
    return db


@pytest.fixture
async def eng(pg: Engine) -> AsyncIterator[Engine]:
    """An engine of its own, so its pool starts empty and its figures are its own."""
    engine = create_engine(pg.url.raw, pool_size=5, pool_timeout=5)
    yield engine
    assert engine.pool.checked_out == 0, "a connection was left checked out"
    await engine.dispose()


async def backend_pid(target: AsyncSession | Connection) -> int:
    pid: int = (await target.execute(text("SELECT pg_backend_pid() AS pid"))).scalar_one()
    return pid


async def terminate(admin: Engine, pid: int) -> None:
    """End one backend of this database, and wait until it has exited."""
    async with admin.connect() as conn:
        done = (await conn.execute(text(
            "SELECT pg_terminate_backend(pid, 5000) AS ok FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid = :pid"), {"pid": pid})).scalars().all()
    assert done == [True], f"backend {pid} was not terminated"


async def terminate_when(admin: Engine, pid: int, query_prefix: str, timeout: float = 10) -> float:
    """Terminate backend ``pid`` once it runs a statement starting with ``query_prefix``; the
    seconds it took to see it."""
    start = time.perf_counter()
    async with admin.connect() as conn:
        while time.perf_counter() - start < timeout:
            running = (await conn.execute(text(
                "SELECT query FROM pg_stat_activity WHERE datname = current_database() AND pid = :pid "
                "AND state = 'active'"), {"pid": pid})).scalars().all()
            if running and running[0].lstrip().upper().startswith(query_prefix.upper()):
                break
            await conn.rollback()
            await asyncio.sleep(0.005)
        else:
            raise AssertionError(f"backend {pid} never ran {query_prefix}")
        await conn.rollback()
    seen = time.perf_counter() - start
    await terminate(admin, pid)
    return seen


async def rows(admin: Engine, model: type[Model]) -> list[str]:
    async with AsyncSession(admin) as s:
        return list((await s.scalars(select(model.name).order_by(model.name))).all())  # type: ignore[attr-defined]


async def works(engine: Engine, name: str) -> int:
    """A session that writes and commits on its first try; its backend's pid."""
    async with AsyncSession(engine) as s:
        s.add(LossRow(name=name))
        pid = await backend_pid(s)
        await s.commit()
    return pid


def assert_dead_gone(engine: Engine, opened_before: int) -> None:
    assert engine.pool.checked_out == 0
    assert engine.pool.opened < opened_before, "the dead connection is still pooled"


# -- before / during / after a flush --------------------------------------------------------

async def test_terminated_before_a_flush(pg: Engine, eng: Engine, reliability: ReliabilityLog) -> None:
    s = AsyncSession(eng)
    s.add(LossRow(name="kept"))
    await s.commit()
    pid = await backend_pid(s)  # the session's new transaction holds a connection
    await terminate(pg, pid)
    s.add_all([LossRow(name=f"lost{i}") for i in range(3)])
    with pytest.raises(exc.OperationalError):
        await s.flush()
    assert eng.pool.checked_out == 0  # given up at once, not when the session ends
    with pytest.raises(exc.PendingRollbackError):
        await s.execute(select(LossRow))
    await s.rollback()
    assert await rows(pg, LossRow) == ["kept"]
    assert (await works(eng, "next")) != pid
    await s.close()
    assert await rows(pg, LossRow) == ["kept", "next"]
    reliability.record(SECTION, "backend terminated between two statements, then flush()", cases=1,
                       held="OperationalError; PendingRollbackError until rollback(); pool slot freed at once; "
                            "nothing partial; next session worked")


@pytest.fixture
async def slow_rows(pg: Engine) -> AsyncIterator[None]:
    """Triggers on rel_slow_rows: a 'slow-insert' row sleeps while inserted, a 'slow-commit' row
    at COMMIT (a deferred constraint trigger)."""
    ddl = [
        "CREATE OR REPLACE FUNCTION rel_sleep() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN IF NEW.name LIKE TG_ARGV[0] || '%' THEN PERFORM pg_sleep(5); END IF; RETURN NEW; END $$",
        "DROP TRIGGER IF EXISTS rel_slow_insert ON rel_slow_rows",
        "CREATE TRIGGER rel_slow_insert BEFORE INSERT ON rel_slow_rows FOR EACH ROW "
        "EXECUTE FUNCTION rel_sleep('slow-insert')",
        "DROP TRIGGER IF EXISTS rel_slow_commit ON rel_slow_rows",
        "CREATE CONSTRAINT TRIGGER rel_slow_commit AFTER INSERT ON rel_slow_rows DEFERRABLE INITIALLY DEFERRED "
        "FOR EACH ROW EXECUTE FUNCTION rel_sleep('slow-commit')",
    ]
    async with pg.begin() as conn:
        for stmt in ddl:
            await conn.exec_driver_sql(stmt)
    yield
    async with pg.begin() as conn:
        await conn.exec_driver_sql("DROP TRIGGER IF EXISTS rel_slow_insert ON rel_slow_rows")
        await conn.exec_driver_sql("DROP TRIGGER IF EXISTS rel_slow_commit ON rel_slow_rows")


@pytest.mark.parametrize("during", ["flush", "commit"])
async def test_terminated_during_a_flush_or_commit(pg: Engine, eng: Engine, slow_rows: None, during: str,
                                                   reliability: ReliabilityLog) -> None:
    async with AsyncSession(eng) as s:
        s.add(SlowRow(name="committed"))
        await s.commit()
    opened = eng.pool.opened
    s = AsyncSession(eng)
    pid = await backend_pid(s)
    s.add_all([SlowRow(name="fast"), SlowRow(name=f"slow-{'insert' if during == 'flush' else 'commit'}")])
    op = asyncio.ensure_future(s.flush() if during == "flush" else s.commit())
    start = time.perf_counter()
    await terminate_when(pg, pid, "INSERT" if during == "flush" else "COMMIT")
    with pytest.raises(exc.OperationalError):
        await asyncio.wait_for(op, 10)
    took = time.perf_counter() - start
    assert took < 4, "the error should come with the termination, not after the statement's sleep"
    assert_dead_gone(eng, opened)
    if during == "flush":
        with pytest.raises(exc.PendingRollbackError):
            await s.commit()
        await s.rollback()
    await s.close()
    # a COMMIT cut short commits nothing: the server rolls back a transaction it never finished
    assert await rows(pg, SlowRow) == ["committed"]
    assert (await works(eng, "next")) != pid
    reliability.record(SECTION, f"backend terminated while the {during}'s statement runs (a trigger sleeps)",
                       cases=1, held="OperationalError at once; nothing of the transaction stored; "
                                     "dead connection out of the pool; next session worked",
                       figures={"error_after_s": round(took, 3)})


async def test_terminated_during_a_large_copy_flush(pg: Engine, eng: Engine, reliability: ReliabilityLog) -> None:
    # issue 13: this flush used to hang for good (asyncpg waits for the socket to drain, and
    # nothing wakes it when the server goes away meanwhile)
    s = AsyncSession(eng)
    pid = await backend_pid(s)
    s.add_all([LossRow(name=f"{i:06d}" + "x" * 200) for i in range(60_000)])
    start = time.perf_counter()
    flush = asyncio.ensure_future(s.flush())
    await terminate_when(pg, pid, "COPY")
    with pytest.raises(exc.OperationalError) as info:
        await asyncio.wait_for(flush, 15)
    took = time.perf_counter() - start
    assert "closed" in str(info.value)
    assert eng.pool.checked_out == 0
    await s.rollback()
    await s.close()
    assert await rows(pg, LossRow) == []
    assert (await works(eng, "after-copy")) != pid
    reliability.record(SECTION, "backend terminated during a COPY flush of 60 000 rows", cases=1,
                       held="OperationalError (used to hang); nothing stored; next session worked",
                       figures={"error_after_s": round(took, 3)})


async def test_terminated_after_a_flush_before_commit(pg: Engine, eng: Engine, reliability: ReliabilityLog) -> None:
    s = AsyncSession(eng)
    s.add_all([LossRow(name=f"r{i}") for i in range(50)])
    await s.flush()
    pid = await backend_pid(s)
    await terminate(pg, pid)
    with pytest.raises(exc.OperationalError):
        await s.commit()
    assert eng.pool.checked_out == 0
    await s.rollback()
    await s.close()
    assert await rows(pg, LossRow) == []
    assert (await works(eng, "next")) != pid
    reliability.record(SECTION, "backend terminated after flush(), before commit()", cases=1,
                       held="commit() raised OperationalError; nothing stored; next session worked")


async def test_terminated_after_a_commit(pg: Engine, eng: Engine, reliability: ReliabilityLog) -> None:
    async with AsyncSession(eng) as s:
        s.add_all([LossRow(name=f"c{i}") for i in range(20)])
        pid = await backend_pid(s)
        await s.commit()
    assert eng.pool.opened == 1 and eng.pool.checked_out == 0
    await terminate(pg, pid)
    # the next user of that pooled connection never sees it was dead
    assert (await works(eng, "next")) != pid
    assert await rows(pg, LossRow) == sorted([f"c{i}" for i in range(20)] + ["next"])
    assert eng.pool.opened == 1
    reliability.record(SECTION, "backend of a pooled connection terminated after commit()", cases=1,
                       held="committed rows all there; next session on that pooled connection worked")


async def test_a_core_connection_recovers_after_rollback(pg: Engine, eng: Engine) -> None:
    async with eng.connect() as conn:
        pid = await backend_pid(conn)
        await terminate(pg, pid)
        with pytest.raises(exc.OperationalError):
            await conn.execute(text("SELECT 1"))
        assert eng.pool.checked_out == 0
        with pytest.raises(exc.PendingRollbackError, match="lost with its database connection"):
            await conn.execute(text("SELECT 1"))
        await conn.rollback()
        assert await backend_pid(conn) != pid  # a new database connection after rollback()


async def test_terminated_while_a_statement_sleeps(pg: Engine, eng: Engine) -> None:
    s = AsyncSession(eng)
    await s.execute(select(LossRow))
    pid = await backend_pid(s)
    sleeping = asyncio.ensure_future(s.execute(text("SELECT pg_sleep(5)")))
    await terminate_when(pg, pid, "SELECT pg_sleep")
    with pytest.raises(exc.OperationalError):
        await asyncio.wait_for(sleeping, 4)
    assert eng.pool.checked_out == 0
    with pytest.raises(exc.PendingRollbackError):
        await s.get(LossRow, 1)
    await s.rollback()
    assert (await s.execute(text("SELECT 1 AS one"))).scalar_one() == 1
    await s.close()


# -- every pooled connection at once ------------------------------------------------------

async def _fill(engine: Engine, n: int) -> list[int]:
    conns = [await engine.connect() for _ in range(n)]
    pids = [await backend_pid(c) for c in conns]
    for c in conns:
        await c.close()
    assert engine.pool.opened == n
    return pids


@pytest.mark.parametrize("noticed", [True, False], ids=["noticed", "unnoticed"])
@pytest.mark.parametrize("pre_ping", [False, True], ids=["default", "pre_ping"])
async def test_every_pooled_connection_terminated_at_once(pg: Engine, noticed: bool, pre_ping: bool,
                                                          reliability: ReliabilityLog) -> None:
    """``unnoticed``: asyncpg is kept from reading the news until the next checkout, as when the
    event loop was busy, or the network delivers it late."""
    engine = create_engine(pg.url.raw, pool_size=5, pool_pre_ping=pre_ping)
    try:
        pids = await _fill(engine, 5)
        idle = list(engine.pool._free)  # type: ignore[attr-defined]
        if not noticed:
            for c in idle:
                c._c._transport.pause_reading()
        for pid in pids:
            await terminate(pg, pid)
        if not noticed:
            for c in idle:
                c._c._transport.resume_reading()
        start = time.perf_counter()
        # ten users at once, each on its first try, none on a dead backend
        seen = await asyncio.gather(*(works(engine, f"u{i}") for i in range(10)))
        took = time.perf_counter() - start
        assert not set(seen) & set(pids)
        assert len(await rows(pg, LossRow)) == 10
        assert engine.pool.checked_out == 0 and engine.pool.opened <= 5
    finally:
        await engine.dispose()
    reliability.record(SECTION, f"all 5 pooled connections terminated at once ({'noticed' if noticed else 'unnoticed'} "
                                f"by the driver, pool_pre_ping={pre_ping}), then 10 concurrent sessions",
                       cases=10, held="every session succeeded on its first try; no dead backend reused",
                       figures={"recovery_s": round(took, 3)})


async def test_internal_client_error_after_termination_is_operational(pg: Engine, eng: Engine,
                                                                      reliability: ReliabilityLog) -> None:
    """asyncpg reads the server's FATAL message, then (one read later) the end of the stream; a
    statement started in between fails with ``InternalClientError: cannot switch to state 12;
    another operation (2) is in progress``, which leaked unwrapped and kept the connection."""
    origs: list[str] = []
    for delay in range(5):
        async with eng.connect() as conn:
            await conn.execute(select(LossRow.id).where(LossRow.id == 1))
            dc: Any = conn._dc
            pid = await backend_pid(conn)
            dc._c._transport.pause_reading()
            await terminate(pg, pid)
            dc._c._transport.resume_reading()
            for _ in range(delay):
                await asyncio.sleep(0)
            with pytest.raises(exc.OperationalError) as info:
                await conn.execute(select(LossRow.id).where(LossRow.id == 2))
            origs.append(type(info.value.orig).__name__)
            assert eng.pool.checked_out == 0
            await conn.rollback()
            assert await backend_pid(conn) != pid
    assert "InternalClientError" in origs, origs  # the race was reproduced, not only its neighbours
    reliability.record(SECTION, "a statement started between the server's FATAL message and the end of "
                                "the stream (5 read delays)", cases=len(origs),
                       held="OperationalError every time (" + ", ".join(sorted(set(origs))) + "); connection discarded")


async def test_network_reset_mid_statement(pg: Engine, reliability: ReliabilityLog) -> None:
    """An RST from the network (through a proxy) instead of a polite termination."""
    url = urlsplit(pg.url.raw)
    async with TcpProxy(url.hostname or "127.0.0.1", url.port or 5432) as proxy:
        netloc = f"{url.username}@127.0.0.1:{proxy.port}" if url.username else f"127.0.0.1:{proxy.port}"
        engine = create_engine(urlunsplit(url._replace(netloc=netloc)), pool_size=3)
        try:
            s = AsyncSession(engine)
            s.add(LossRow(name="before-reset"))
            await s.flush()
            pid = await backend_pid(s)
            sleeping = asyncio.ensure_future(s.execute(text("SELECT pg_sleep(2)")))
            await asyncio.sleep(0.2)
            assert proxy.reset_all() == 1
            await terminate(pg, pid)  # the server notices its client gone only after the sleep
            with pytest.raises(exc.OperationalError) as info:
                await asyncio.wait_for(sleeping, 5)
            cause = info.value.orig
            assert isinstance(cause, OSError) or isinstance(cause.__cause__, OSError), repr(cause)
            assert engine.pool.checked_out == 0 and engine.pool.opened == 0
            with pytest.raises(exc.PendingRollbackError):
                await s.execute(select(LossRow))
            await s.rollback()
            await s.close()
            # idle pooled connections cut too: the next users do not notice
            await _fill(engine, 3)
            proxy.reset_all()
            await asyncio.gather(*(works(engine, f"n{i}") for i in range(3)))
            assert engine.pool.checked_out == 0
        finally:
            await engine.dispose()
    assert await rows(pg, LossRow) == ["n0", "n1", "n2"]
    reliability.record(SECTION, "network reset (RST through a TCP proxy) mid-statement, then of every "
                                "idle pooled connection", cases=4,
                       held="OperationalError, PendingRollbackError until rollback(); nothing partial; "
                            "the next 3 sessions worked on their first try")


def test_driver_connection_errors_are_operational(engine: Engine) -> None:
    """Whatever the driver raises when the connection is gone is an OperationalError."""
    if engine.dialect.name != "postgresql":
        pytest.skip("the PostgreSQL driver's errors")
    import asyncpg

    dialect = engine.dialect
    for err in (asyncpg.ConnectionDoesNotExistError("gone"), ConnectionResetError(104, "reset"),
                BrokenPipeError(32, "pipe"), OSError("network unreachable"),
                asyncpg.InterfaceError("connection is closed"),
                asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in progress")):
        translated = dialect.translate_error(err, "SELECT 1", ())
        assert isinstance(translated, exc.OperationalError), err
        assert translated.orig is err
        assert dialect.is_disconnect(err, None), err
    assert not dialect.is_disconnect(asyncpg.exceptions.UniqueViolationError("dup"), None)


async def test_lost_connection_counts(pg: Engine, eng: Engine) -> None:
    """The pool's counts stay right over many losses: each dead connection frees its slot once."""
    for _ in range(5):
        async with AsyncSession(eng) as s:
            pid = await backend_pid(s)
            await terminate(pg, pid)
            with pytest.raises(exc.OperationalError):
                await s.execute(select(func.count(LossRow.id)))
            await s.rollback()
        assert eng.pool.checked_out == 0
    assert eng.pool.opened == 0
    await works(eng, "after")
    assert eng.pool.opened == 1
