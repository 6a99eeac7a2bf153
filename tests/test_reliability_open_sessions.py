"""A second session opened while one is open (issue 13): it reads at once, never after pool_timeout.

The first session holds an open transaction that has read, or has written; the second one,
on the same task or on another, reads.  Only a second *writer* may wait (API.md section 9):
reads before a transaction's first write run beside any writer, and see committed data only.
``sqlite:///:memory:`` has one connection for everything: a session that only read used to keep
it until its transaction ended, so every other session waited ``pool_timeout`` and failed; its
reads now take the connection per statement.  A read behind an open *write* transaction on
``:memory:`` still waits (one connection cannot show two snapshots): that one is refused after
``pool_timeout`` with a message naming the cause and the way out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from aiouow import AsyncSession, Engine, Model, column, create_engine, exc, func, select

from .reliability import ReliabilityLog

pytestmark = pytest.mark.reliability


class OpenRow(Model):
    __tablename__ = "rel_open_rows"
    id: int = column(primary_key=True)
    name: str = column()


@pytest.fixture(params=["db", "memory"])
async def target(request: pytest.FixtureRequest, db: Engine) -> AsyncIterator[Engine]:
    """The backend's test engine with a short pool_timeout; and, for SQLite, ``:memory:``."""
    if request.param == "memory":
        if db.dialect.name != "sqlite":
            pytest.skip("sqlite:///:memory: only")
        engine = create_engine("sqlite:///:memory:", pool_timeout=1)
        await Model.metadata.create_all(engine)
    else:
        engine = create_engine(db.url.raw, pool_timeout=1, pool_size=3)
    async with AsyncSession(engine) as s:
        s.add(OpenRow(name="committed"))
        await s.commit()
    yield engine
    await engine.dispose()


async def count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count(OpenRow.id))) or 0)


async def open_first(engine: Engine, first: str) -> AsyncSession:
    s = AsyncSession(engine)
    if first == "read":
        assert await count(s) == 1
    else:
        s.add(OpenRow(name="uncommitted"))
        await s.flush()
    return s


def reader(engine: Engine) -> Callable[[], Awaitable[int]]:
    async def read() -> int:
        async with AsyncSession(engine) as s:
            n = await count(s)
            await s.get(OpenRow, 1)
            return n
    return read


@pytest.mark.parametrize("where", ["same task", "other task"])
@pytest.mark.parametrize("first", ["read", "write"])
async def test_a_second_session_reads_while_one_is_open(target: Engine, first: str, where: str,
                                                        reliability: ReliabilityLog) -> None:
    memory_write = target.url.raw.endswith(":memory:") and first == "write"
    s1 = await open_first(target, first)
    try:
        read = reader(target)
        start = time.perf_counter()
        op: Awaitable[int] = read() if where == "same task" else asyncio.create_task(read())
        if memory_write:
            with pytest.raises(exc.PoolTimeoutError, match="a database file"):
                await op
            held = "waits for the writing transaction, then PoolTimeoutError naming it (one connection)"
        else:
            assert await op == 1  # committed data only: never the first session's pending write
            held = "read at once, committed data only"
        took = time.perf_counter() - start
        if not memory_write:
            assert took < 0.5, f"the second session waited {took:.2f}s"
        # the first session is untouched and still finishes its transaction
        if first == "write":
            await s1.commit()
    finally:
        await s1.close()
    async with AsyncSession(target) as s:
        assert await count(s) == (2 if first == "write" else 1)
    assert target.pool.checked_out == 0
    kind = "memory" if target.url.raw.endswith(":memory:") else target.dialect.name
    reliability.record("Open sessions", f"{kind}: first session {first}s and stays open, a second reads "
                                        f"({where})", cases=1, held=held, figures={"second_read_s": round(took, 3)})


async def test_a_read_only_transaction_does_not_block_a_writer(target: Engine) -> None:
    s1 = await open_first(target, "read")
    try:
        async with AsyncSession(target) as s2:
            s2.add(OpenRow(name="second"))
            start = time.perf_counter()
            await s2.commit()
            assert time.perf_counter() - start < 0.5
        assert await count(s1) == 2  # READ COMMITTED: its next read sees the commit
    finally:
        await s1.close()


async def test_two_writers_still_take_turns(target: Engine) -> None:
    """The one wait that stays: a second writer waits for the first to commit, then goes on."""
    s1 = await open_first(target, "write")

    async def second() -> None:
        async with AsyncSession(target) as s2:
            s2.add(OpenRow(name="second"))
            await s2.commit()

    task = asyncio.create_task(second())
    await asyncio.sleep(0.1)
    if target.dialect.name == "sqlite":
        assert not task.done()  # waiting for the writer
    await s1.commit()
    await s1.close()
    await asyncio.wait_for(task, 2)
    async with AsyncSession(target) as s:
        names: Any = (await s.scalars(select(OpenRow.name).order_by(OpenRow.id))).all()
    assert names == ["committed", "uncommitted", "second"]
