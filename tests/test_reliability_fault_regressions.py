"""Regression tests of the defects the fault state machine (test_reliability_faults_hypothesis.py)
found, each as a plain test on both backends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from aiouow import AsyncSession, Engine, MetaData, Model, column, exc, insert, select

from .fault_support import DRIVER_ERRORS, Fault, FaultInjector
from .query_support import raw_sql
from .test_concurrency import slow_statement

pytestmark = pytest.mark.reliability


class RegBase(Model):
    metadata = MetaData()


class RegItem(RegBase):
    __tablename__ = "rl_reg_items"
    key: str = column(primary_key=True)
    value: int = column()


@pytest.fixture
async def rdb(db: Engine) -> AsyncIterator[Engine]:
    await RegBase.metadata.drop_all(db)
    await RegBase.metadata.create_all(db)
    yield db
    await RegBase.metadata.drop_all(db)


async def committed_keys(engine: Engine) -> list[str]:
    return [r[0] for r in await raw_sql(engine, 'SELECT "key" FROM "rl_reg_items" ORDER BY "key"')]


async def test_a_cancelled_query_leaves_the_session_inactive_until_rollback(rdb: Engine) -> None:
    """It said is_active=True while every operation raised PendingRollbackError."""
    async with AsyncSession(rdb) as s:
        s.add(RegItem(key="a", value=1))
        await s.flush()
        task = asyncio.ensure_future(s.execute(slow_statement(rdb, 5)))
        for _ in range(500):
            if s._conn is not None and s._conn._dc is not None and s._owner is task:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not s.is_active and s.in_transaction()
        with pytest.raises(exc.PendingRollbackError):
            await s.execute(select(RegItem.key))
        assert rdb.pool.checked_out == 0  # the cancelled transaction's connection went back
        await s.rollback()
        assert s.is_active
        s.add(RegItem(key="b", value=2))
        await s.commit()
    assert await committed_keys(rdb) == ["b"]  # "a" went with the cancelled transaction


async def test_a_failed_begin_leaves_no_transaction_believed_open(rdb: Engine) -> None:
    """On PostgreSQL a BEGIN that failed left the connection BEGUN, so the statements after it ran
    outside any transaction, each committed at once, and rollback() undid none of them."""
    with FaultInjector.for_engine(rdb) as faults:
        async with AsyncSession(rdb) as s:
            # the first driver call of the transaction: BEGIN on PostgreSQL, the SELECT that carries
            # the deferred BEGIN on SQLite; raised before it reaches the driver
            task = asyncio.ensure_future(s.execute(select(RegItem.key)))
            faults.arm(Fault(task, 1, "error", DRIVER_ERRORS[rdb.dialect.name][0]))
            with pytest.raises(exc.OperationalError):
                await task
            assert faults.disarm()
            s.add(RegItem(key="a", value=1))
            await s.flush()
            await s.rollback()
        assert await committed_keys(rdb) == []
        async with rdb.connect() as conn:
            task = asyncio.ensure_future(conn.exec_driver_sql("SELECT 1"))
            faults.arm(Fault(task, 1, "error", DRIVER_ERRORS[rdb.dialect.name][0]))
            with pytest.raises(exc.OperationalError):
                await task
            if rdb.dialect.name == "postgresql":
                assert not conn.in_transaction()  # the BEGIN was never sent
            await conn.execute(insert(RegItem).values(key="b", value=2))
            await conn.rollback()
        assert await committed_keys(rdb) == []


async def test_a_failed_savepoint_is_not_left_open(rdb: Engine) -> None:
    """A SAVEPOINT statement that failed stayed on the connection's list, so commit() refused
    ("a SAVEPOINT is still open") although none was."""
    with FaultInjector.for_engine(rdb) as faults:
        async with rdb.connect() as conn:
            await conn.exec_driver_sql("INSERT INTO rl_reg_items (key, value) VALUES ('a', 1)")
            sp = conn.begin_nested()
            task = asyncio.ensure_future(sp._start())
            faults.arm(Fault(task, 1, "error", DRIVER_ERRORS[rdb.dialect.name][0]))
            with pytest.raises(exc.OperationalError):
                await task
            assert faults.disarm()
            assert not conn.in_nested_transaction()
            await conn.commit()
        assert await committed_keys(rdb) == ["a"]
        async with AsyncSession(rdb) as s:
            s.add(RegItem(key="b", value=2))
            task = asyncio.ensure_future(s.begin_nested()._start())
            # the flush (one INSERT) went through; the SAVEPOINT after it failed
            faults.arm(Fault(task, 3 if rdb.dialect.name == "postgresql" else 2, "error",
                             DRIVER_ERRORS[rdb.dialect.name][0]))
            with pytest.raises(exc.OperationalError):
                await task
            assert faults.disarm() and not s.in_nested_transaction()
            await s.commit()
        assert await committed_keys(rdb) == ["a", "b"]
