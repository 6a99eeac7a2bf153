"""``run_transaction()``: run a unit of work again when the database rolled it back to keep
concurrent transactions apart.

Under SERIALIZABLE (and REPEATABLE READ) PostgreSQL does not wait for a conflicting
transaction: it fails one of them with SQLSTATE 40001, and breaks a deadlock with 40P01; the
work is correct once run again from the start, on fresh reads.  SQLite's equivalent is a file
whose write lock another engine or process held past the busy timeout, or a snapshot gone
stale (``StaleSnapshotError``).  Everything else (a constraint violated, bad SQL, a bug) fails
the same way every time, so it is never retried.

Why a function and not a decorator or a session flag: a retry must redo the reads as well as
the writes, so the unit of work has to be code that can run twice, given a fresh session each
time (objects of a rolled-back attempt are stale).  The commit is the boundary: an error raised
by COMMIT itself that is a serialization failure means PostgreSQL rolled the transaction back
(retry), a connection lost during COMMIT leaves the outcome unknown (never retried:
``CommitOutcomeUnknownError``), and nothing is retried once a commit succeeded.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .. import exc
from .scoping import scoped_session
from .session import AsyncSession

T = TypeVar("T")

log = logging.getLogger("aiouow.session")

__all__ = ["retryable_reason", "run_transaction"]

_SQLITE_CODES = {sqlite3.SQLITE_BUSY: "SQLITE_BUSY", sqlite3.SQLITE_LOCKED: "SQLITE_LOCKED"}


def retryable_reason(err: BaseException) -> str | None:
    """The code that makes ``err`` worth running the transaction again for (``"40001"``,
    ``"40P01"``, ``"SQLITE_BUSY"``, ...), or None if it is not such an error."""
    if isinstance(err, exc.PendingRollbackError) and isinstance(err.orig, exc.DBAPIError):
        err = err.orig  # the session refused to go on after the error that doomed the transaction
    if isinstance(err, exc.StaleSnapshotError):
        return "SQLITE_BUSY_SNAPSHOT"
    if isinstance(err, (exc.SerializationError, exc.DeadlockError)):
        return err.sqlstate or type(err).__name__
    if isinstance(err, exc.OperationalError):
        code = getattr(err.orig, "sqlite_errorcode", None) if isinstance(err.orig, sqlite3.Error) else None
        if isinstance(code, int):
            return _SQLITE_CODES.get(code & 0xFF)
    return None


def _check(session_factory: Any, retries: Any, backoff: Any, max_backoff: Any) -> None:
    if isinstance(session_factory, AsyncSession):
        raise exc.ArgumentError(
            "run_transaction() takes a session factory (a sessionmaker), not a session: each attempt "
            "needs a fresh session, because the objects of a rolled-back attempt are stale"
        )
    if isinstance(session_factory, scoped_session):
        raise exc.ArgumentError(
            "run_transaction() takes a session factory, not a scoped_session (whose db() is the task's one "
            "session, reused by every attempt); pass its factory: run_transaction(db.session_factory, fn)"
        )
    if not callable(session_factory):
        raise exc.ArgumentError(f"run_transaction() takes a session factory (a sessionmaker), not {session_factory!r}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise exc.ArgumentError(f"run_transaction(retries=...) must be an int of at least 0, got {retries!r}")
    for name, value in (("backoff", backoff), ("max_backoff", max_backoff)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise exc.ArgumentError(f"run_transaction({name}=...) must be a number of seconds >= 0, got {value!r}")


def _delay(attempt: int, backoff: float, max_backoff: float) -> float:
    """Exponential, with "equal jitter": half the step is fixed, half random, so the delays
    grow while conflicting transactions retrying together still spread apart."""
    step: float = min(max_backoff, backoff * 2.0 ** (attempt - 1))
    return step / 2 + random.uniform(0, step / 2)


async def run_transaction(
    session_factory: Callable[..., AsyncSession],
    fn: Callable[[AsyncSession], Awaitable[T]],
    *,
    retries: int = 5,
    backoff: float = 0.05,
    max_backoff: float = 2.0,
    isolation_level: str | None = None,
) -> T:
    """Run ``await fn(session)`` in a new session's transaction, commit, and return its result.

    The session comes from ``session_factory``. A serialization failure or deadlock (SQLSTATE
    40001 / 40P01; on SQLite a busy or locked database, or a stale snapshot) rolls the attempt
    back, logs a WARNING on the ``aiouow.session`` logger (attempt, code, delay), waits
    ``backoff * 2**(attempt-1)`` seconds (at most ``max_backoff``; half of it random) and runs
    ``fn`` again in a new session, up to ``retries`` more times; then the last error propagates.
    Any other error propagates at once.

    ``fn`` must not commit or roll back itself; it may run more than once, so it should do
    nothing outside the database it cannot do twice.  A connection lost during COMMIT raises
    ``CommitOutcomeUnknownError`` (the commit may have happened).  ``isolation_level`` is
    given to the factory (``Session(isolation_level=...)``); without it, the factory's applies.
    """
    _check(session_factory, retries, backoff, max_backoff)
    kw: dict[str, Any] = {} if isolation_level is None else {"isolation_level": isolation_level}
    attempt = 0
    while True:
        attempt += 1
        async with session_factory(**kw) as session:
            tx = session.begin()
            committing = False
            try:
                result = await fn(session)
                if not tx.is_active:
                    raise exc.InvalidRequestError(
                        "the function given to run_transaction() ended the transaction itself (commit() or "
                        "rollback()); leave that to run_transaction, which commits when the function returns"
                    )
                await session.flush()  # so that what fails below is COMMIT alone
                committing = True
                await session.commit()
                return result
            except Exception as err:
                if not tx.is_active:
                    # fn ended the transaction itself, or the commit succeeded and an after_commit
                    # listener raised: either way something committed, and is never run again
                    raise
                reason = retryable_reason(err)
                if reason is None:
                    if committing and isinstance(err, exc.OperationalError):
                        raise exc.CommitOutcomeUnknownError(
                            f"the connection failed during COMMIT ({type(err).__name__}: {exc.message_of(err)}); the "
                            "transaction may or may not have been committed, so run_transaction() does not "
                            "run it again: check the data, or make the work idempotent, before retrying",
                            err.orig, "COMMIT", None) from err
                    raise
                if attempt > retries:
                    raise
                delay = _delay(attempt, float(backoff), float(max_backoff))
                log.warning(
                    "run_transaction: attempt %d of %d failed with %s (%s%s); rolled back, retrying in %.3f s",
                    attempt, retries + 1, reason, type(err).__name__, " at COMMIT" if committing else "", delay,
                    extra={"attempt": attempt, "sqlstate": reason, "delay": delay},
                )
        await asyncio.sleep(delay)  # the session is closed: no connection (or lock) held meanwhile
