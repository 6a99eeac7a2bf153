"""run_transaction(): retries of serialization failures and deadlocks, on the real servers.

Conflicts are interleaved with asyncio events: both transactions read before either writes,
so PostgreSQL's SERIALIZABLE must fail one (40001) and two opposite-order updates must
deadlock (40P01).  On SQLite the same interleaving cannot happen (the writer is taken in turn,
so the second transaction waits instead of conflicting): there the waits time out, the
transactions run one after the other and nothing is retried; the final state is the serial one
on both.  SQLite's own retryable error is a busy file, made here by a second engine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest

import aiouow
from aiouow import AsyncSession, create_engine, exc, func, run_transaction, scoped_session, select, sessionmaker, update
from aiouow.session.retry import retryable_reason

from .models import Account, User

FAST = {"backoff": 0.01, "max_backoff": 0.05}


async def _meet(mine: asyncio.Event, theirs: asyncio.Event, attempt: int) -> None:
    """Tell the other transaction this one got here, and wait for it to get there too (first
    attempt only; SQLite's writer makes the other wait for us instead: give up after a moment)."""
    mine.set()
    if attempt == 1:
        try:
            await asyncio.wait_for(theirs.wait(), 0.3)
        except TimeoutError:
            pass


def _retries(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "aiouow.session" and "run_transaction" in r.getMessage()]


@pytest.fixture
async def serializable(db: aiouow.Engine) -> aiouow.Engine:
    async with sessionmaker(db).begin() as session:
        session.add_all([Account(code="a", balance=1), Account(code="b", balance=1)])
    engine = create_engine(db.url.raw, isolation_level="SERIALIZABLE")
    yield engine  # type: ignore[misc]
    await engine.dispose()


async def test_write_skew_is_serialized_by_retrying(serializable: aiouow.Engine, caplog: pytest.LogCaptureFixture
                                                    ) -> None:
    """Two on-call accounts; each transaction goes off call if the other is still on: serially,
    exactly one of them does."""
    caplog.set_level(logging.WARNING, "aiouow.session")
    Session = sessionmaker(serializable)
    read = {"a": asyncio.Event(), "b": asyncio.Event()}
    attempts = {"a": 0, "b": 0}

    def off_call(me: str, other: str) -> Callable[[AsyncSession], Awaitable[int]]:
        async def fn(session: AsyncSession) -> int:
            attempts[me] += 1
            on_call = await session.scalar(select(func.sum(Account.balance)))
            await _meet(read[me], read[other], attempts[me])
            if on_call >= 2:
                (await session.get_one(Account, me)).balance = 0
            return on_call
        return fn

    seen = await asyncio.gather(run_transaction(Session, off_call("a", "b"), **FAST),
                                run_transaction(Session, off_call("b", "a"), **FAST))
    async with Session() as session:
        balances = dict((await session.execute(select(Account.code, Account.balance))).all())
    assert sum(balances.values()) == 1, balances  # the serial outcome: one stays on call
    records = _retries(caplog)
    if serializable.dialect.name == "postgresql":
        assert sorted(seen) == [1, 2]  # the retried one saw the other's commit
        assert sorted(attempts.values()) == [1, 2]
        assert len(records) == 1
        record = records[0]
        assert record.levelno == logging.WARNING
        assert record.sqlstate == "40001" and record.attempt == 1 and 0 < record.delay <= 0.05  # type: ignore[attr-defined]
        assert "attempt 1 of 6" in record.getMessage() and "40001" in record.getMessage()
    else:
        assert attempts == {"a": 1, "b": 1} and records == []  # the second waited for the writer


async def test_without_retries_the_serialization_failure_propagates(serializable: aiouow.Engine,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "aiouow.session")
    Session = sessionmaker(serializable)
    read = {"a": asyncio.Event(), "b": asyncio.Event()}

    def off_call(me: str, other: str) -> Callable[[AsyncSession], Awaitable[None]]:
        async def fn(session: AsyncSession) -> None:
            on_call = await session.scalar(select(func.sum(Account.balance)))
            await _meet(read[me], read[other], 1)
            if on_call >= 2:
                (await session.get_one(Account, me)).balance = 0
        return fn

    results = await asyncio.gather(run_transaction(Session, off_call("a", "b"), retries=0),
                                   run_transaction(Session, off_call("b", "a"), retries=0), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if serializable.dialect.name == "postgresql":
        assert len(errors) == 1 and isinstance(errors[0], exc.SerializationError), results
        assert errors[0].sqlstate == "40001" and isinstance(errors[0], exc.OperationalError)
    else:
        assert errors == []
    assert _retries(caplog) == []


async def test_a_deadlock_is_retried(db: aiouow.Engine, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "aiouow.session")
    async with sessionmaker(db).begin() as session:
        session.add_all([Account(code="a", balance=0), Account(code="b", balance=0)])
    Session = sessionmaker(db)
    locked = {"a": asyncio.Event(), "b": asyncio.Event()}
    attempts = {"a": 0, "b": 0}

    def both(first: str, second: str) -> Callable[[AsyncSession], Awaitable[None]]:
        async def fn(session: AsyncSession) -> None:
            attempts[first] += 1
            if db.dialect.name == "postgresql":
                await session.execute(aiouow.text("SET LOCAL deadlock_timeout = '50ms'"))
            bump = update(Account).values(balance=Account.balance + 1)
            await session.execute(bump.where(Account.code == first))
            await _meet(locked[first], locked[second], attempts[first])
            await session.execute(bump.where(Account.code == second))  # opposite orders: a deadlock
        return fn

    await asyncio.gather(run_transaction(Session, both("a", "b"), **FAST),
                         run_transaction(Session, both("b", "a"), **FAST))
    async with Session() as session:
        assert dict((await session.execute(select(Account.code, Account.balance))).all()) == {"a": 2, "b": 2}
    records = _retries(caplog)
    if db.dialect.name == "postgresql":
        assert [r.sqlstate for r in records] == ["40P01"]  # type: ignore[attr-defined]
        assert sorted(attempts.values()) == [1, 2]
    else:
        assert records == [] and attempts == {"a": 1, "b": 1}


async def test_other_errors_are_not_retried(db: aiouow.Engine, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "aiouow.session")
    Session = sessionmaker(db)
    async with Session.begin() as session:
        session.add(User(name="ann", email="ann@example.com"))
    calls = 0

    async def duplicate(session: AsyncSession) -> None:
        nonlocal calls
        calls += 1
        session.add(User(name="ann again", email="ann@example.com"))

    with pytest.raises(exc.IntegrityError) as raised:
        await run_transaction(Session, duplicate, **FAST)
    assert calls == 1 and _retries(caplog) == []
    if db.dialect.name == "postgresql":
        assert raised.value.sqlstate == "23505"
    else:
        assert raised.value.sqlstate is None  # SQLite has no SQLSTATE

    async def buggy(session: AsyncSession) -> None:
        nonlocal calls
        calls += 1
        raise KeyError("not a database error")

    with pytest.raises(KeyError):
        await run_transaction(Session, buggy, **FAST)
    assert calls == 2 and _retries(caplog) == []
    async with Session() as session:
        assert (await session.scalars(select(User.name))).all() == ["ann"]


async def test_returns_the_result_and_commits(db: aiouow.Engine) -> None:
    Session = sessionmaker(db)

    async def add(session: AsyncSession) -> int:
        user = User(name="bo")
        session.add(user)
        await session.flush()
        return user.id

    uid = await run_transaction(Session, add)
    async with Session() as session:
        assert (await session.get_one(User, uid)).name == "bo"
    assert db.pool.checked_out == 0


async def test_never_retried_once_the_function_committed(db: aiouow.Engine, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "aiouow.session")
    Session = sessionmaker(db)
    calls = 0

    async def commits_then_conflicts(session: AsyncSession) -> None:
        nonlocal calls
        calls += 1
        session.add(User(name=f"c{calls}"))
        await session.commit()
        raise exc.SerializationError("a serialization failure after a commit of its own")

    with pytest.raises(exc.SerializationError):
        await run_transaction(Session, commits_then_conflicts, **FAST)

    async def commits(session: AsyncSession) -> None:
        nonlocal calls
        calls += 1
        session.add(User(name=f"c{calls}"))
        await session.commit()

    with pytest.raises(exc.InvalidRequestError, match="ended the transaction itself"):
        await run_transaction(Session, commits, **FAST)
    assert calls == 2 and _retries(caplog) == []
    async with Session() as session:
        assert sorted((await session.scalars(select(User.name))).all()) == ["c1", "c2"]


@pytest.mark.parametrize("raised", [exc.DeadlockError, exc.OperationalError])
async def test_never_retried_when_an_after_commit_listener_fails(db: aiouow.Engine, caplog: pytest.LogCaptureFixture,
                                                                 raised: type[exc.DBAPIError]) -> None:
    """The commit succeeded; then an after_commit listener fails (here: as a statement it ran would,
    with a retryable deadlock or a lost connection).  The work is committed, so it is not run again,
    and the error is the listener's, not CommitOutcomeUnknownError: the outcome is known."""
    caplog.set_level(logging.WARNING, "aiouow.session")
    Session = sessionmaker(db)
    calls = 0

    def after_commit(session: AsyncSession) -> None:
        raise raised("the after_commit listener's statement failed")

    async def add(session: AsyncSession) -> None:
        nonlocal calls
        calls += 1
        session.add(User(name=f"once{calls}"))

    aiouow.events.listen(Session, "after_commit", after_commit)
    try:
        with pytest.raises(raised, match="after_commit listener") as caught:
            await run_transaction(Session, add, **FAST)
        assert type(caught.value) is raised
    finally:
        aiouow.events.remove(Session, "after_commit", after_commit)
    assert calls == 1 and _retries(caplog) == []
    async with sessionmaker(db)() as session:
        assert (await session.scalars(select(User.name))).all() == ["once1"]


def test_backoff_is_exponential_capped_and_jittered() -> None:
    """Equal jitter: attempt n waits between half and all of min(max_backoff, backoff * 2**(n-1)),
    and the waits of two transactions retrying together differ."""
    from aiouow.session.retry import _delay

    for attempt, step in ((1, 0.1), (2, 0.2), (3, 0.4), (4, 0.5), (9, 0.5)):
        delays = [_delay(attempt, 0.1, 0.5) for _ in range(200)]
        assert all(step / 2 <= d <= step for d in delays), (attempt, min(delays), max(delays))
        assert len(set(delays)) > 150  # random, not one fixed wait
        assert min(delays) < step * 0.6 and max(delays) > step * 0.9  # the whole jitter range is used
    assert _delay(1, 0.0, 2.0) == 0.0


async def test_each_retry_is_logged_with_a_growing_jittered_delay(db: aiouow.Engine,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """A function that fails with a (real, server-made on PostgreSQL) retryable error three times:
    three WARNINGs on aiouow.session, one per attempt, each delay within its step of the backoff."""
    caplog.set_level(logging.WARNING, "aiouow.session")
    Session = sessionmaker(db)
    calls = 0

    async def flaky(session: AsyncSession) -> str:
        nonlocal calls
        calls += 1
        if calls <= 3:
            if db.dialect.name == "postgresql":  # the server's own 40001
                await session.execute(aiouow.text(
                    "DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = 'serialization_failure'; END $$"))
            raise exc.SerializationError("a serialization failure")
        return "done"

    assert await run_transaction(Session, flaky, retries=5, backoff=0.01, max_backoff=1.0) == "done"
    records = _retries(caplog)
    assert calls == 4 and [r.attempt for r in records] == [1, 2, 3]  # type: ignore[attr-defined]
    for r in records:
        step = 0.01 * 2 ** (r.attempt - 1)  # type: ignore[attr-defined]
        assert step / 2 <= r.delay <= step, (r.attempt, r.delay)  # type: ignore[attr-defined]
        assert r.levelno == logging.WARNING and f"attempt {r.attempt} of 6" in r.getMessage()  # type: ignore[attr-defined]
    if db.dialect.name == "postgresql":
        assert {r.sqlstate for r in records} == {"40001"}  # type: ignore[attr-defined]


async def test_sqlite_busy_file_is_retried(db: aiouow.Engine, caplog: pytest.LogCaptureFixture) -> None:
    """A second engine on the file (another process, in effect) holds the write lock past the
    busy timeout: the attempt fails with SQLITE_BUSY, is logged, and the retry succeeds."""
    if db.dialect.name != "sqlite":
        pytest.skip("PostgreSQL has no busy database: its writers wait on row locks (see the deadlock test)")
    caplog.set_level(logging.WARNING, "aiouow.session")
    holder = create_engine(db.url.raw)
    impatient = create_engine(db.url.raw, pool_timeout=0.2)  # the writer's busy timeout too
    try:
        Holder = sessionmaker(holder)
        hold = Holder()
        hold.add(User(name="holder"))
        await hold.flush()  # BEGIN IMMEDIATE: the file's write lock, held until commit
        calls = 0

        async def write(session: AsyncSession) -> None:
            nonlocal calls
            calls += 1
            if calls == 2:
                await hold.commit()  # (the first attempt has failed and slept meanwhile)
            session.add(User(name="writer"))

        await run_transaction(sessionmaker(impatient), write, **FAST)
        await hold.close()
        assert calls == 2
        records = _retries(caplog)
        assert [r.sqlstate for r in records] == ["SQLITE_BUSY"]  # type: ignore[attr-defined]
        async with sessionmaker(db)() as session:
            assert sorted((await session.scalars(select(User.name))).all()) == ["holder", "writer"]
    finally:
        await holder.dispose()
        await impatient.dispose()


async def test_a_connection_lost_during_commit_is_not_retried(db: aiouow.Engine,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    if db.dialect.name != "postgresql":
        pytest.skip("SQLite has no connection to lose during COMMIT")
    caplog.set_level(logging.WARNING, "aiouow.session")
    calls = 0

    async def lose_connection(session: AsyncSession) -> None:
        nonlocal calls
        calls += 1
        session.add(User(name="maybe"))
        await session.flush()
        pid = await session.scalar(select(func.pg_backend_pid()))
        async with db.connect() as conn:  # our own backend, in our own database
            await conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid = $1", [pid])
            await conn.commit()
        await asyncio.sleep(0.2)

    with pytest.raises(exc.CommitOutcomeUnknownError, match="may or may not have been committed") as raised:
        await run_transaction(sessionmaker(db), lose_connection, **FAST)
    assert isinstance(raised.value, exc.OperationalError) and raised.value.statement == "COMMIT"
    assert calls == 1 and _retries(caplog) == []


async def test_arguments_are_checked(db: aiouow.Engine) -> None:
    Session = sessionmaker(db)

    async def noop(session: AsyncSession) -> None:
        return None

    async with Session() as session:
        with pytest.raises(exc.ArgumentError, match="not a session"):
            await run_transaction(session, noop)  # type: ignore[arg-type]
    with pytest.raises(exc.ArgumentError, match="session_factory"):
        await run_transaction(scoped_session(Session), noop)  # type: ignore[arg-type]
    for bad in (-1, 1.5, True):
        with pytest.raises(exc.ArgumentError, match="retries"):
            await run_transaction(Session, noop, retries=bad)  # type: ignore[arg-type]
    with pytest.raises(exc.ArgumentError, match="backoff"):
        await run_transaction(Session, noop, backoff=-1)
    with pytest.raises(exc.ArgumentError, match="isolation_level"):
        await run_transaction(Session, noop, isolation_level="SOMETIMES")


def test_retryable_reasons() -> None:
    """What is retried, by class (the driver errors behind them are made by the tests above)."""
    assert retryable_reason(exc.SerializationError("x")) == "SerializationError"
    assert retryable_reason(exc.DeadlockError("x")) == "DeadlockError"
    assert retryable_reason(exc.StaleSnapshotError("x")) == "SQLITE_BUSY_SNAPSHOT"
    assert retryable_reason(exc.PendingRollbackError("x", exc.DeadlockError("y"))) == "DeadlockError"
    for other in (exc.OperationalError("x"), exc.IntegrityError("x"), exc.CommitOutcomeUnknownError("x"),
                  ValueError("x")):
        assert retryable_reason(other) is None
