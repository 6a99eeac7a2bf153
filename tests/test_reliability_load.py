"""Load (issue 13): many tasks, short transactions, a bounded pool, on both backends.

200 tasks each run 50 short transactions through ``scoped_session`` (one session per task,
API.md section 6) over a pool of 10: every transaction commits, the final rows are exactly the
expected ones, no connection is left checked out and the pool never grows past its size.
Throughput is recorded as a figure, never asserted.  With a tiny pool and a short
``pool_timeout``, a checkout that cannot be served fails with a clear ``PoolTimeoutError`` and
the pool is healthy afterwards.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aiouow import AsyncSession, Engine, Model, column, create_engine, exc, func, scoped_session, select, sessionmaker
from aiouow import update as update_

from .reliability import ReliabilityLog

pytestmark = pytest.mark.reliability

SECTION = "Load"

TASKS = 200
TRANSACTIONS = 50


class LoadRow(Model):
    __tablename__ = "rel_load_rows"
    id: int = column(primary_key=True)
    task: int = column(index=True)
    n: int = column()


class LoadCounter(Model):
    __tablename__ = "rel_load_counters"
    id: int = column(primary_key=True)
    value: int = column(default=0)


async def own_engine(db: Engine, tmp_path: Path, **kw: object) -> Engine:
    """A new engine on the test database (its own pool); SQLite: a file of its own."""
    if db.dialect.name == "postgresql":
        return create_engine(db.url.raw, **kw)  # type: ignore[arg-type]
    engine = create_engine(f"sqlite:///{tmp_path}/load.db", **kw)  # type: ignore[arg-type]
    await Model.metadata.create_all(engine)
    return engine


class PoolWatch:
    """Samples the pool while a load runs: the most connections it ever had open."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.max_opened = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> PoolWatch:
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        while True:
            self.max_opened = max(self.max_opened, self.engine.pool.opened)
            await asyncio.sleep(0.002)

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self.max_opened = max(self.max_opened, self.engine.pool.opened)


@pytest.fixture
async def load_engine(db: Engine, tmp_path: Path) -> AsyncIterator[Engine]:
    engine = await own_engine(db, tmp_path, pool_size=10, pool_timeout=30)
    yield engine
    await engine.dispose()


@pytest.mark.slow
async def test_200_tasks_of_50_transactions(load_engine: Engine, reliability: ReliabilityLog) -> None:
    engine = load_engine
    Session = sessionmaker(engine)
    async with Session.begin() as s:
        s.add(LoadCounter(id=1, value=0))
    db = scoped_session(Session)

    async def worker(t: int) -> int:
        done = 0
        for n in range(TRANSACTIONS):
            session = db()
            session.add(LoadRow(task=t, n=n))
            if n % 10 == 0:
                # a read-modify-write of one shared row, serialized by its row lock (the writer on SQLite)
                counter = (await session.scalars(
                    select(LoadCounter).where(LoadCounter.id == 1).with_for_update())).one()
                counter.value += 1
            await session.commit()
            done += 1
        await db.remove()
        return done

    start = time.perf_counter()
    async with PoolWatch(engine) as watch:
        done = await asyncio.gather(*(worker(t) for t in range(TASKS)))
    elapsed = time.perf_counter() - start
    assert done == [TRANSACTIONS] * TASKS
    assert engine.pool.checked_out == 0
    limit = 10 if engine.dialect.name == "postgresql" else 10 + 1  # SQLite: readers plus its writer
    assert watch.max_opened <= limit, watch.max_opened

    async with AsyncSession(engine) as s:
        assert await s.scalar(select(func.count(LoadRow.id))) == TASKS * TRANSACTIONS
        per_task = (await s.execute(select(LoadRow.task, func.count(LoadRow.id), func.count(func.distinct(LoadRow.n)))
                                    .group_by(LoadRow.task))).all()
        assert sorted(tuple(r) for r in per_task) == [(t, TRANSACTIONS, TRANSACTIONS) for t in range(TASKS)]
        assert await s.scalar(select(LoadCounter.value).where(LoadCounter.id == 1)) == TASKS * (TRANSACTIONS // 10)
    assert engine.pool.checked_out == 0
    total = TASKS * TRANSACTIONS
    reliability.record(SECTION, f"{TASKS} tasks x {TRANSACTIONS} short transactions through scoped_session, "
                                "pool_size=10 (every 10th a with_for_update() read-modify-write of one shared row)",
                       cases=total, held="all committed; exact row counts per task; shared counter exact; "
                                         "checked_out 0 after; pool never above its size",
                       figures={"transactions_per_s": round(total / elapsed, 1), "seconds": round(elapsed, 2),
                                "max_open_connections": watch.max_opened})


async def hold(engine: Engine, ready: asyncio.Event, release: asyncio.Event) -> None:
    """Keep the connection a checkout would need (the writer, on SQLite) until ``release``."""
    async with AsyncSession(engine) as s:
        s.add(LoadRow(task=-1, n=0))
        await s.flush()
        ready.set()
        await release.wait()
        await s.commit()


@pytest.mark.parametrize("pool_size", [1, 2])
async def test_tiny_pool_timeout_is_clear_and_the_pool_recovers(db: Engine, tmp_path: Path, pool_size: int,
                                                                reliability: ReliabilityLog) -> None:
    engine = await own_engine(db, tmp_path, pool_size=pool_size, pool_timeout=0.2)
    release = asyncio.Event()
    holders: list[asyncio.Task[None]] = []
    try:
        for _ in range(pool_size if db.dialect.name == "postgresql" else 1):
            ready = asyncio.Event()
            holders.append(asyncio.create_task(hold(engine, ready, release)))
            await ready.wait()
        start = time.perf_counter()
        with pytest.raises(exc.PoolTimeoutError) as info:
            async with AsyncSession(engine) as s:
                s.add(LoadRow(task=-2, n=0))
                await s.commit()
        waited = time.perf_counter() - start
        message = str(info.value)
        assert "pool_timeout=0.2" in message
        assert "pool_timeout" in message.split(";", 1)[1]  # the fix names it too
        if db.dialect.name == "postgresql":
            assert f"pool_size={pool_size}" in message and "raise pool_size" in message
        else:  # one writer whatever pool_size: the message says so instead of suggesting it
            assert "one writing transaction at a time" in message
        assert 0.15 < waited < 2
        release.set()
        await asyncio.gather(*holders)
        # healthy afterwards: nothing checked out, no waiter left, the next checkouts work
        assert engine.pool.checked_out == 0
        async with AsyncSession(engine) as s:
            s.add(LoadRow(task=-3, n=0))
            await s.commit()
            tasks = sorted((await s.scalars(select(LoadRow.task).where(LoadRow.task < 0))).all())
        assert tasks == [-3] + [-1] * len(holders)
        assert engine.pool.checked_out == 0
    finally:
        release.set()  # a failed assertion must not leave a holder's transaction open
        await asyncio.gather(*holders, return_exceptions=True)
        await engine.dispose()
    reliability.record(SECTION, f"pool_size={pool_size}, pool_timeout=0.2 s, every connection held", cases=1,
                       held=("PoolTimeoutError naming pool_size, pool_timeout and the fix" if db.dialect.name ==
                             "postgresql" else "PoolTimeoutError naming the writer, pool_timeout and the fix")
                       + "; next checkout worked",
                       figures={"waited_s": round(waited, 3)})


async def test_many_waiters_time_out_or_get_a_connection(db: Engine, tmp_path: Path,
                                                         reliability: ReliabilityLog) -> None:
    """60 tasks on a pool of 2 with a short timeout: each either commits or gets PoolTimeoutError
    (nothing else), the counts add up, and the pool is whole afterwards."""
    engine = await own_engine(db, tmp_path, pool_size=2, pool_timeout=0.15)
    try:
        async with AsyncSession(engine) as s:
            s.add(LoadCounter(id=2, value=0))
            await s.commit()

        async def bump(i: int) -> bool:
            try:
                async with AsyncSession(engine) as s:
                    await s.execute(update_(LoadCounter).where(LoadCounter.id == 2)
                                    .values(value=LoadCounter.value + 1))
                    await asyncio.sleep(0.02 * (i % 3))
                    await s.commit()
                return True
            except exc.PoolTimeoutError:
                return False

        outcomes = await asyncio.gather(*(bump(i) for i in range(60)))
        assert engine.pool.checked_out == 0
        async with AsyncSession(engine) as s:
            value = await s.scalar(select(LoadCounter.value).where(LoadCounter.id == 2))
        assert value == sum(outcomes)
        assert 0 < sum(outcomes) < 60  # both outcomes happened
        assert engine.pool.checked_out == 0
        assert engine.pool.opened <= 3
    finally:
        await engine.dispose()
    reliability.record(SECTION, "60 concurrent writers on pool_size=2, pool_timeout=0.15 s", cases=60,
                       held="each committed or got PoolTimeoutError; counter == commits; pool whole afterwards",
                       figures={"committed": sum(outcomes), "timed_out": 60 - sum(outcomes)})
