"""One AsyncSession, two tasks: ConcurrentSessionUseError instead of corrupted state (API.md 6).

While one task's operation on a session is in flight (a slow statement: ``pg_sleep`` on
PostgreSQL, a long recursive query on SQLite), any operation from another task raises
``ConcurrentSessionUseError`` naming both tasks, and the session stays usable: the first
operation completes, and the session commits afterwards.  Under plain asyncio and under
anyio's task groups.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from aiouow import AsyncSession, Engine, Model, column, func, select, text
from aiouow.exc import ConcurrentSessionUseError


class Counter(Model):
    __tablename__ = "t5_conc_counters"
    id: int = column(primary_key=True)
    name: str = column()
    value: int = column(default=0)


def slow_statement(engine: Engine, seconds: float) -> Any:
    """A statement that keeps the database busy for about ``seconds``."""
    if engine.dialect.name == "postgresql":
        return text(f"SELECT 1 FROM pg_sleep({seconds})")
    rows = max(1, int(seconds * 3_000_000))  # SQLite: a recursive CTE, a few million rows a second
    return text(f"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows}) "
                "SELECT count(*) FROM c")


async def in_flight(session: AsyncSession, engine: Engine, seconds: float = 0.3) -> asyncio.Task[Any]:
    """Start a slow execute on ``session`` in a task named 'owner'; return once it is in flight."""
    task = asyncio.create_task(session.execute(slow_statement(engine, seconds)), name="owner")
    for _ in range(100):
        await asyncio.sleep(0)
        if session._owner is task:
            break
    assert session._owner is task, "the slow statement did not start"
    return task


async def seed(session: AsyncSession) -> Counter:
    c = Counter(name="a", value=1)
    session.add(c)
    await session.commit()
    return c


# every operation of the session, run by the intruding task
OPERATIONS: dict[str, Callable[[AsyncSession, Counter], Any]] = {
    "execute": lambda s, c: s.execute(select(Counter)),
    "scalars": lambda s, c: s.scalars(select(Counter)),
    "scalar": lambda s, c: s.scalar(select(func.count(Counter.id))),
    "get": lambda s, c: s.get(Counter, 999),
    "flush": lambda s, c: s.flush(),
    "commit": lambda s, c: s.commit(),
    "rollback": lambda s, c: s.rollback(),
    "close": lambda s, c: s.close(),
    "refresh": lambda s, c: s.refresh(c),
    "delete": lambda s, c: s.delete(c),
    "merge": lambda s, c: s.merge(Counter(id=c.id, name="merged")),
    "stream": lambda s, c: s.stream(select(Counter)),
    "connection": lambda s, c: s.connection(),
    "begin_nested": lambda s, c: s.begin_nested(),
    "add": lambda s, c: s.add(Counter(name="intruder")),
    "add_all": lambda s, c: s.add_all([Counter(name="intruder")]),
    "expire": lambda s, c: s.expire(c),
    "expire_all": lambda s, c: s.expire_all(),
    "expunge": lambda s, c: s.expunge(c),
    "begin": lambda s, c: s.begin(),
}


async def test_any_operation_from_another_task_raises_and_leaves_the_session_usable(db: Engine) -> None:
    async with AsyncSession(db, expire_on_commit=False) as session:
        counter = await seed(session)
        counter.value = 2  # a change of the session's transaction (the owner's execute flushes it)
        session.add(Counter(name="b"))
        owner = await in_flight(session, db, seconds=1)

        async def intruder(operation: str) -> None:
            result = OPERATIONS[operation](session, counter)
            if isinstance(result, Awaitable):
                await result

        not_refused = []
        for operation in OPERATIONS:
            try:
                await asyncio.create_task(intruder(operation), name=f"intruder-{operation}")
            except ConcurrentSessionUseError as err:
                message = str(err)
                assert "'owner'" in message and f"'intruder-{operation}'" in message, message
            else:
                not_refused.append(operation)
            assert not owner.done(), "the slow statement finished too early for this test"
        assert not_refused == []

        # the owner's operation completes normally, and the session is intact and usable
        assert (await owner).scalar() is not None
        assert session._owner is None
        assert session.is_active and session.in_transaction()
        # the intruders changed nothing: no object of theirs, the counter still loaded and held
        assert all(getattr(o, "name", None) != "intruder" for o in session)
        assert counter in session and counter.value == 2
        await session.commit()
    async with AsyncSession(db) as check:
        rows = (await check.execute(select(Counter.name, Counter.value).order_by(Counter.id))).all()
    assert [tuple(r) for r in rows] == [("a", 2), ("b", 0)]


async def test_two_gathered_executes_on_one_session(db: Engine) -> None:
    """The classic mistake: gather() two queries on one session."""
    async with AsyncSession(db) as session:
        results = await asyncio.gather(
            session.execute(slow_statement(db, 0.2)),
            session.execute(select(func.count(Counter.id))),
            return_exceptions=True,
        )
        assert results[0].scalar() is not None  # type: ignore[union-attr]
        assert isinstance(results[1], ConcurrentSessionUseError)
        assert "Task-" in str(results[1])
        # usable afterwards, from any task once nothing is in flight
        assert await asyncio.create_task(session.scalar(select(func.count(Counter.id)))) == 0
        session.add(Counter(name="after"))
        await session.commit()
    async with AsyncSession(db) as check:
        assert await check.scalar(select(func.count(Counter.id))) == 1


async def test_anyio_task_group_concurrent_use_raises(db: Engine) -> None:
    async with AsyncSession(db) as session:
        errors: list[BaseException] = []
        done: list[str] = []

        async def slow() -> None:
            await session.execute(slow_statement(db, 0.2))
            done.append("slow")

        async def quick() -> None:
            await anyio.sleep(0.02)
            try:
                await session.execute(select(func.count(Counter.id)))
            except ConcurrentSessionUseError as err:
                errors.append(err)

        async with anyio.create_task_group() as tg:
            tg.start_soon(slow, name="slow-task")
            tg.start_soon(quick, name="quick-task")
        assert done == ["slow"]
        assert len(errors) == 1 and "slow-task" in str(errors[0]) and "quick-task" in str(errors[0])
        assert await session.scalar(select(func.count(Counter.id))) == 0


async def test_sequential_use_from_several_tasks_is_fine(db: Engine) -> None:
    """Only overlapping use is an error: handing a session from task to task is allowed."""
    async with AsyncSession(db) as session:
        for i in range(3):
            session.add(Counter(name=f"c{i}"))
            await asyncio.create_task(session.flush())
        await asyncio.create_task(session.commit())
        assert await asyncio.create_task(session.scalar(select(func.count(Counter.id)))) == 3


async def test_owner_cancelled_mid_statement_frees_the_session(db: Engine) -> None:
    """A cancelled owner leaves no claim on the session: another task may go on (after rollback)."""
    async with AsyncSession(db) as session:
        owner = await in_flight(session, db, seconds=5)
        owner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await owner
        assert session._owner is None
        assert db.pool.checked_out == 0  # the cancelled statement's connection went back
        await asyncio.create_task(session.rollback())
        assert await asyncio.create_task(session.scalar(select(func.count(Counter.id)))) == 0
