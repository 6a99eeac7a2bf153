"""Cancellation at any await point leaks nothing (API.md 6 and 9).

The walk: an operation (a unit of work and its commit, a rollback, a close, a pool
checkout) is run again and again, cancelled after 0, 1, 2, ... event-loop steps, until it
runs to its end uncancelled; so every await point inside it (statements, BEGIN/COMMIT,
SAVEPOINTs, the pool, cleanup itself) is hit in turn.  Cancellation comes as
``task.cancel()``, ``asyncio.timeout``, ``anyio.move_on_after``, an anyio task group's
cancel scope and an ``asyncio.TaskGroup`` whose sibling fails.  After every run: the pool
has every connection back, no PostgreSQL backend of the engine is left in a transaction
(``pg_stat_activity``, filtered by an application_name set through ``connect_args``), a
commit is all-or-nothing, the cancellation itself was not swallowed, and a fresh session
from the factory works.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import asyncpg
import pytest

from aiouow import AsyncSession, Engine, Model, column, create_engine, func, select, sessionmaker
from aiouow.exc import PendingRollbackError

from .conftest import PG_URL
from .test_concurrency import slow_statement

APP_NAME = f"aiouow_t5_cancel_{os.getpid()}"


class Job(Model):
    __tablename__ = "t5_cancel_jobs"
    id: int = column(primary_key=True)
    batch: int = column()
    name: str = column()


@pytest.fixture
async def ceng(db: Engine) -> AsyncIterator[Engine]:
    """An engine for the walks: on PostgreSQL its own, with an application_name to find its
    backends; on SQLite the test engine (readers and one serialized writer)."""
    if db.dialect.name != "postgresql":
        yield db
        return
    eng = create_engine(PG_URL, pool_size=2, connect_args={"server_settings": {"application_name": APP_NAME}})
    try:
        yield eng
    finally:
        await eng.dispose()


class Probe:
    """What the database says after a run, from outside the engine under test: on PostgreSQL
    through a separate asyncpg connection (one round trip per question)."""

    def __init__(self, engine: Engine, checker: asyncpg.Connection | None) -> None:
        self.engine = engine
        self.checker = checker

    async def busy(self) -> list[str]:
        """States of the walk engine's backends that are not idle (e.g. 'idle in transaction')."""
        if self.checker is None:
            return []
        rows = await self.checker.fetch(
            "SELECT state FROM pg_stat_activity WHERE application_name = $1 AND state <> 'idle'", APP_NAME)
        return [r["state"] for r in rows]

    async def count(self, batch: int) -> int:
        """Committed rows of the batch."""
        if self.checker is None:
            return await count(self.engine, batch)
        return await self.checker.fetchval(  # type: ignore[no-any-return]
            'SELECT count(*) FROM "t5_cancel_jobs" WHERE batch = $1', batch)


@pytest.fixture
async def probe(db: Engine) -> AsyncIterator[Probe]:
    checker = await asyncpg.connect(PG_URL) if db.dialect.name == "postgresql" else None
    yield Probe(db, checker)
    if checker is not None:
        await checker.close()


def stride(engine: Engine, how: str) -> int:
    """Loop steps between two cancellation points of a walk.  On SQLite each await takes about
    one step; a PostgreSQL round trip takes tens, so the walks other than task.cancel take
    every other step there (still several per await) to stay fast."""
    return 1 if engine.dialect.name == "sqlite" or how == "task.cancel" else 2


async def run_cancelled(op: Callable[[], Awaitable[Any]], steps: int, how: str) -> bool:
    """Run ``op()``, cancelling it after ``steps`` event-loop steps in the way ``how``.

    True when the operation ran to its end.  Fails when a cancellation that reached the
    operation was swallowed (the caller must always learn it was cancelled)."""
    fired = asyncio.Event()

    async def after_steps(cancel: Callable[[], Any]) -> None:
        for _ in range(steps):
            await asyncio.sleep(0)
        fired.set()
        cancel()

    if how == "task.cancel":
        task = asyncio.ensure_future(op())
        requested: list[bool] = []
        stepper = asyncio.create_task(after_steps(lambda: requested.append(task.cancel())))
        try:
            await task
            finished = True
        except asyncio.CancelledError:
            finished = False
        stepper.cancel()
        assert not (requested and requested[0] and finished), "a task.cancel() was swallowed"
        return finished
    if how == "asyncio.timeout":
        loop = asyncio.get_running_loop()
        finished = False
        try:
            async with asyncio.timeout(None) as cm:
                stepper = asyncio.create_task(after_steps(lambda: cm.reschedule(loop.time())))
                try:
                    await op()
                    finished = True
                finally:
                    stepper.cancel()
            assert not cm.expired(), "asyncio.timeout expired but no TimeoutError came out"
        except TimeoutError:
            pass
        return finished
    if how == "anyio.move_on_after":
        finished = False
        async with anyio.create_task_group() as tg:
            with anyio.move_on_after(3600) as scope:
                tg.start_soon(after_steps, lambda: setattr(scope, "deadline", anyio.current_time()))
                await op()
                finished = True
            tg.cancel_scope.cancel()
        return finished
    if how == "anyio.task_group":
        state = {"finished": False}

        async def run() -> None:
            await op()
            state["finished"] = True

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            tg.start_soon(after_steps, tg.cancel_scope.cancel)
        return state["finished"]
    if how == "asyncio.TaskGroup":
        class SiblingFailed(Exception):
            pass

        def fail() -> None:
            raise SiblingFailed

        finished = False
        try:
            async with asyncio.TaskGroup() as atg:
                atg.create_task(after_steps(fail))
                await op()
                finished = True
        except* SiblingFailed:
            pass
        return finished
    raise AssertionError(how)


async def walk(op: Callable[[int], Awaitable[Any]], how: str, check: Callable[[int, bool], Awaitable[None]],
               step: int = 1, limit: int = 3000) -> int:
    """Cancel ``op(run)`` after 0, step, 2 * step, ... loop steps until it finishes;
    ``check(run, finished)`` after each run.  Returns how many cancelled runs there were."""
    for run, steps in enumerate(range(0, limit, step)):
        finished = await run_cancelled(lambda run=run: op(run), steps, how)  # type: ignore[misc]
        await check(run, finished)
        if finished:
            return run
    raise AssertionError(f"the operation never finished within {limit} steps")


def assert_pool_back(engine: Engine) -> None:
    assert engine.pool.checked_out == 0, f"{engine.pool.checked_out} connection(s) not returned"
    assert not engine.pool._waiters, "a cancelled checkout left a waiter behind"  # type: ignore[attr-defined]


async def count(engine: Engine, batch: int | None = None) -> int:
    async with AsyncSession(engine) as s:
        stmt = select(func.count(Job.id))
        if batch is not None:
            stmt = stmt.where(Job.batch == batch)
        return await s.scalar(stmt)  # type: ignore[no-any-return]


async def factory_still_works(engine: Engine) -> None:
    Session = sessionmaker(engine)
    async with Session.begin() as s:
        s.add(Job(batch=-1, name="after"))
    async with Session() as s:
        assert await s.scalar(select(func.count(Job.id)).where(Job.batch == -1)) == 1
    assert_pool_back(engine)


UNIT_OF_WORK_ROWS = 12


async def unit_of_work(engine: Engine, batch: int) -> None:
    """Insert rows (batched), query, a SAVEPOINT with more work, commit: one transaction."""
    async with AsyncSession(engine) as s:
        s.add_all([Job(batch=batch, name=f"j{i}") for i in range(UNIT_OF_WORK_ROWS - 1)])
        await s.flush()
        assert len((await s.scalars(select(Job).where(Job.batch == batch))).all()) == UNIT_OF_WORK_ROWS - 1
        async with s.begin_nested():
            s.add(Job(batch=batch, name="nested"))
        await s.commit()


@pytest.mark.parametrize("how", ["task.cancel", "asyncio.timeout", "anyio.move_on_after", "anyio.task_group",
                                 "asyncio.TaskGroup"])
async def test_unit_of_work_cancelled_at_every_await_point(ceng: Engine, probe: Probe, how: str) -> None:
    async def check(run: int, finished: bool) -> None:
        assert_pool_back(ceng)
        assert await probe.busy() == []
        n = await probe.count(run)
        assert n in (0, UNIT_OF_WORK_ROWS), f"run {run}: the commit was not all-or-nothing ({n} rows)"
        assert n == UNIT_OF_WORK_ROWS or not finished, f"run {run}: finished but nothing committed"

    cancelled_runs = await walk(lambda run: unit_of_work(ceng, run), how, check, stride(ceng, how))
    assert cancelled_runs > 5  # the walk did cancel the operation at many points
    await factory_still_works(ceng)


async def test_increasing_timeouts_on_a_commit(ceng: Engine, probe: Probe) -> None:
    """The plain-timer version of the walk: asyncio.timeout(t) for t = 0, 0.1 ms, 0.2 ms, ..."""
    t, run, cancelled = 0.0, 0, 0
    while True:
        run += 1
        try:
            async with asyncio.timeout(t):
                await unit_of_work(ceng, run)
            break
        except TimeoutError:
            cancelled += 1
        assert_pool_back(ceng)
        assert await probe.busy() == []
        assert await probe.count(run) in (0, UNIT_OF_WORK_ROWS)
        t += 0.0001
    assert cancelled > 0
    assert await probe.count(run) == UNIT_OF_WORK_ROWS
    await factory_still_works(ceng)


@pytest.mark.parametrize("how", ["task.cancel", "asyncio.timeout", "anyio.move_on_after"])
async def test_rollback_and_close_cancelled_at_every_await_point(ceng: Engine, probe: Probe,
                                                                 how: str) -> None:
    """The cleanup itself cancelled: it still runs to its end (shielded), and the
    cancellation still reaches the caller."""
    sessions: dict[int, AsyncSession] = {}

    async def prepare(run: int) -> AsyncSession:
        s = AsyncSession(ceng)
        s.add_all([Job(batch=run, name="x") for _ in range(3)])
        await s.flush()
        sessions[run] = s
        return s

    async def rollback_then_close(run: int) -> None:
        s = sessions[run]
        await s.rollback()
        await s.execute(select(Job.id).limit(1))  # a new transaction, ended by close()
        await s.close()

    async def check(run: int, finished: bool) -> None:
        s = sessions.pop(run)
        if not finished:  # whatever the cancellation left, close() ends it
            await s.close()
        assert not s.in_transaction() and s._conn is None
        assert_pool_back(ceng)
        assert await probe.busy() == []
        assert await probe.count(run) == 0

    for run in range(3000):
        await prepare(run)
        finished = await run_cancelled(lambda run=run: rollback_then_close(run), run, how)  # type: ignore[misc]
        await check(run, finished)
        if finished:
            break
    assert run > 3
    await factory_still_works(ceng)


@pytest.mark.parametrize("how", ["task.cancel", "asyncio.timeout", "anyio.task_group"])
async def test_pool_checkout_cancelled_at_every_await_point(db: Engine, probe: Probe, how: str) -> None:
    """A session waiting for a connection (pool of one, held by another session that lets go
    after a few steps) is cancelled at every point of its wait and of its statement."""
    if db.dialect.name == "postgresql":
        eng = create_engine(PG_URL, pool_size=1, pool_timeout=5,
                            connect_args={"server_settings": {"application_name": APP_NAME}})
    else:
        eng = db
    try:
        holder = AsyncSession(eng)
        closers: list[asyncio.Task[None]] = []

        async def waiter(run: int) -> None:
            # the pool's only connection (PostgreSQL) / the writer (SQLite: a read alone runs on a
            # reader beside the waiter, which then never waits); rolled back when the holder closes
            holder.add(Job(batch=-1000 - run, name="holder"))
            await holder.flush()
            closers.append(asyncio.create_task(_close_after(holder, 3)))  # lets go a little later
            async with AsyncSession(eng) as s:
                s.add(Job(batch=run, name="w"))
                await s.commit()

        async def check(run: int, finished: bool) -> None:
            for closer in closers:
                await closer
            closers.clear()
            await holder.close()
            assert_pool_back(eng)
            assert await probe.busy() == []
            n = await probe.count(run)
            assert n == 1 if finished else n in (0, 1)

        assert await walk(waiter, how, check, stride(eng, how)) > 3
        await factory_still_works(eng)
    finally:
        if eng is not db:
            await eng.dispose()


async def _close_after(session: AsyncSession, steps: int) -> None:
    for _ in range(steps):
        await asyncio.sleep(0)
    await session.close()


async def test_cancelled_statement_poisons_the_transaction_until_rollback(db: Engine) -> None:
    """After a cancelled statement the transaction is gone (rolled back, connection returned):
    commit() must not pretend otherwise, nor start a fresh transaction with the rest of the
    work (PostgreSQL would even turn COMMIT into ROLLBACK silently; SQLite would commit the
    first half).  PendingRollbackError, as in SQLAlchemy, until rollback()."""
    async with AsyncSession(db) as s:
        s.add(Job(batch=1, name="before"))
        await s.flush()
        with anyio.move_on_after(0.1) as scope:
            await s.execute(slow_statement(db, 30))
        assert scope.cancelled_caught
        assert db.pool.checked_out == 0  # rolled back and returned at once, not when s closes
        s.add(Job(batch=1, name="after"))
        with pytest.raises(PendingRollbackError) as info:
            await s.commit()
        assert isinstance(info.value.orig, asyncio.CancelledError)
        with pytest.raises(PendingRollbackError):
            await s.execute(select(Job))
        await s.rollback()
        s.add(Job(batch=2, name="fresh"))
        await s.commit()
    assert await count(db, 1) == 0
    assert await count(db, 2) == 1


@pytest.mark.parametrize("steps", [1, 2, 3, 5, 8])
async def test_cancelled_long_statement_is_stopped_and_rolled_back_within_a_second(
        ceng: Engine, probe: Probe, steps: int) -> None:
    """API.md 9: a cancelled statement is interrupted (or finished) and rolled back within one
    second; here one that would run ~30 s, cancelled after a few loop steps (on SQLite also
    before aiosqlite's thread has started it: such a job must not run at all) or later."""
    s = AsyncSession(ceng)
    s.add(Job(batch=7, name="uncommitted"))
    await s.flush()
    task = asyncio.create_task(s.execute(slow_statement(ceng, 30)))
    for _ in range(steps):
        await asyncio.sleep(0)
    if steps == 8:
        await asyncio.sleep(0.2)  # well inside the statement
    started = time.perf_counter()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert_pool_back(ceng)
    async with AsyncSession(ceng) as other:  # the database is free again, the row rolled back
        assert await other.scalar(select(func.count(Job.id)).where(Job.batch == 7)) == 0
    assert time.perf_counter() - started < 1.0
    assert await probe.busy() == []
    await s.close()


async def test_flush_cancelled_mid_way_leaves_nothing(ceng: Engine, probe: Probe) -> None:
    """A flush of several batches cancelled between them: nothing of it stays, the session
    requires rollback(), objects are pending again afterwards."""
    s = AsyncSession(ceng)
    jobs = [Job(batch=3, name=f"f{i}") for i in range(50)]
    s.add_all(jobs)
    for steps in range(0, 2000, stride(ceng, "flush")):
        task = asyncio.create_task(s.flush())
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        try:
            await task
            break  # ran to its end
        except asyncio.CancelledError:
            pass
        await s.rollback()
        assert all(j not in s for j in jobs)  # pending objects of a rolled-back transaction
        assert_pool_back(ceng)
        # nothing of the interrupted flush stayed (no statement after it ran outside a transaction)
        assert await probe.count(3) == 0
        s.add_all(jobs)
    await s.commit()
    assert await probe.count(3) == 50
    await s.close()
