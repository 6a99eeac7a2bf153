"""The session's connection life cycle: begun lazily, given back at the end of the transaction.

Nothing touches the database until an operation needs it: ``connection()``
then autobegins the transaction and checks a connection out of the engine's
pool (or, for a session bound to a ``Connection``, joins that connection's
transaction through a SAVEPOINT).  ``end_db_transaction()`` commits or rolls
back and returns it; ``fail()`` is the failure path of a flush or commit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from .. import events as _events
from .. import exc
from ..engine.cancellation import _interrupted
from ..engine.connection import Connection
from .levels import TxLevel, TxState, transition

if TYPE_CHECKING:
    from .session import AsyncSession


def autobegin(session: AsyncSession) -> None:
    if session._state is TxState.IDLE:
        if not session.autobegin:
            raise exc.InvalidRequestError(
                "this session has autobegin=False and no transaction; call session.begin() first"
            )
        transition(session, TxState.ACTIVE)
        session._levels.append(TxLevel(None))


def require_usable(session: AsyncSession) -> None:
    if session._routed is not None and session._state is not TxState.FAILED:
        from .routed import lost

        reason = lost(session)
        if reason is not None:  # another engine's connection lost its transaction
            session._failure = reason
            transition(session, TxState.FAILED)
    conn = session._conn
    if conn is not None and conn._lost is not None and session._state is not TxState.FAILED:
        # an operation was cancelled mid-statement: the connection rolled back and went back
        # to the pool; the rest of this unit of work must not run in a fresh transaction
        session._failure = conn._lost
        transition(session, TxState.FAILED)
        if not isinstance(session.bind, Connection):
            session._conn = None
    if session._state is TxState.FAILED:
        raise exc.PendingRollbackError(
            "this session's transaction was rolled back because of an error during flush "
            "(or its database connection was lost, or an operation was cancelled before it finished) "
            f"({type(session._failure).__name__}: {exc.message_of(session._failure)}); call `await session.rollback()` "
            "(or leave the begin_nested() block) before using the database again",
            session._failure,
        )
    if session._state is TxState.COMMITTING:
        raise exc.InvalidRequestError("the session is committing; wait for commit() to finish")


async def connection(session: AsyncSession) -> Connection:
    conn = session._conn
    if conn is None:
        # whatever needs the database runs in the session's transaction
        autobegin(session)
        bind = session.bind
        if bind is None:
            raise exc.InvalidRequestError(
                "this session has no engine: AsyncSession(engine) or sessionmaker(engine)"
            )
        if isinstance(bind, Connection):
            conn = bind
            if session.join_transaction_mode == "create_savepoint":
                session._outer_tx = conn.begin_nested()
                await session._outer_tx._start()
        else:
            conn = Connection(bind, isolation_level=session.isolation_level)
        session._conn = conn
        if _events.active:
            hooks = _events.session_hooks(session, "after_begin")
            if hooks:
                if conn is not bind:
                    # the listeners get the connection: what they run, and everything after, is
                    # in the transaction they were told began (BEGIN first)
                    conn._lazy = False
                try:
                    await _events.call(hooks, session, conn)
                except BaseException as err:
                    await fail(session, err)  # what it ran is rolled back with the transaction
                    raise
    return conn


async def end_db_transaction(session: AsyncSession, commit: bool) -> None:
    """Commit or roll back the database transaction and give the connection back.

    Other engines' connections (``routed.py``) are committed first, then this one."""
    if session._routed is not None:
        from .routed import commit_others, release_others

        if commit:
            await commit_others(session)
        else:
            await release_others(session)
    conn = session._conn
    if conn is None:
        return
    outer = session._outer_tx
    try:
        if isinstance(session.bind, Connection):
            if conn._lost is not None and not commit:
                await conn.rollback()  # the whole transaction is gone already; accept that
            elif outer is not None:
                conn._savepoints[:] = conn._savepoints[: conn._savepoints.index(outer.savepoint) + 1] \
                    if outer.savepoint in conn._savepoints else conn._savepoints
                if commit:
                    await outer.commit()
                else:
                    await outer.rollback()
            elif commit:
                conn._savepoints.clear()
                await conn.commit()
            else:
                await conn.rollback()
        else:
            if commit:
                conn._savepoints.clear()
                await conn.commit()
    finally:
        session._outer_tx = None
        session._conn = None
        if not isinstance(session.bind, Connection):
            await conn._release()


async def fail(session: AsyncSession, err: BaseException) -> None:
    """A flush or commit failed (or was cancelled): roll the database back (shielded) and
    require rollback().

    A cancellation arriving meanwhile propagates once the rollback is done."""
    if session._state is TxState.FAILED:
        return  # an event listener's failure on top of the failure: rolled back already
    level = session._levels[-1] if session._levels else None
    session._failure = err
    transition(session, TxState.FAILED)
    await _roll_back_failed(session, level, err)
    # as in SQLAlchemy, after_rollback follows the database's rollback, here rather than at the
    # rollback() the session then waits for; not after a cancellation, which propagates at once
    # (rollback() runs the listeners then)
    if _events.active and isinstance(err, Exception):
        hooks = _events.session_hooks(session, "after_rollback")
        if hooks:
            session._rollback_announced = True
            try:
                await _events.call(hooks, session)
            except Exception as hook_err:  # the failure the caller sees stays the flush's
                _events.log.error("an after_rollback listener failed", exc_info=hook_err)
                err.add_note(f"an after_rollback listener raised {hook_err!r} as well "
                             "(logged on the aiouow.session logger)")


async def _roll_back_failed(session: AsyncSession, level: TxLevel | None, err: BaseException) -> None:
    with anyio.CancelScope(shield=True):
        # a cancelled statement took the whole transaction with it, not just the SAVEPOINT
        if level is not None and level.nested and session._conn is not None and not _interrupted(err):
            try:
                await session._conn._rollback_to_savepoint(level.savepoint.savepoint)
                level.failed = err
                return
            except Exception:
                pass
        try:
            await rollback_db(session)
        except Exception:
            pass


async def rollback_db(session: AsyncSession) -> None:
    """Roll the database transaction back and give the connection back (shielded)."""
    if session._routed is not None:
        from .routed import release_others

        await release_others(session)
    if session._conn is None:
        return
    with anyio.CancelScope(shield=True):
        conn = session._conn
        if conn is None:
            return
        try:
            if isinstance(session.bind, Connection):
                await end_db_transaction(session, commit=False)
            else:
                session._conn = None
                await conn._release()
        except Exception:
            session._conn = None
        except BaseException:  # a cancellation, raised after the rollback ran to its end
            session._conn = None
            raise
