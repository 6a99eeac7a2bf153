"""Transactions: begin, commit, rollback, close, and the objects ``begin()`` / ``begin_nested()`` return.

The state machine these functions drive is in ``levels.py``; the connection
they commit or roll back comes from ``connection.py``; ``restore.py`` undoes in
memory what a rollback undid in the database.  The callers (``AsyncSession``'s
public methods) hold the session's task guard.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any

from .. import events as _events
from .. import exc
from .connection import autobegin, connection, end_db_transaction, fail, require_usable, rollback_db
from .finalize import after_commit
from .flush import flush, flush_all, has_changes
from .levels import TxLevel, TxState, transition
from .lifecycle import detach_all
from .restore import forget_vanished_rows, restore

if TYPE_CHECKING:
    from .session import AsyncSession


def begin(session: AsyncSession) -> SessionTransaction:
    if session._state is not TxState.IDLE:
        raise exc.InvalidRequestError(
            "a transaction is already begun on this session (autobegin starts one at the first "
            "operation); end it with commit() or rollback(), or use begin_nested() for a SAVEPOINT"
        )
    transition(session, TxState.ACTIVE)
    level = TxLevel(None)
    session._levels.append(level)
    return SessionTransaction(session, level)


async def commit(session: AsyncSession) -> None:
    if session._state is TxState.IDLE:
        if not has_changes(session):
            return
        autobegin(session)  # changes made since the last commit still need one
    require_usable(session)
    session._commit_flush = True  # this flush may be the transaction's only statement (flush.py)
    try:
        await flush_all(session)
    finally:
        session._commit_flush = False
    transition(session, TxState.COMMITTING)
    try:
        await end_db_transaction(session, commit=True)
    except BaseException as err:
        await fail(session, err)  # COMMITTING -> FAILED: rollback() is required, as after a flush
        raise
    after_commit(session)
    transition(session, TxState.IDLE)
    if _events.active:
        # the commit is done: a listener's exception reaches the caller, and changes nothing
        await _events.call(_events.session_hooks(session, "after_commit"), session)


async def rollback(session: AsyncSession) -> None:
    state = session._state
    if state is TxState.IDLE:
        return
    # after a failed flush, after_rollback ran already (at the database's rollback)
    announce = state is not TxState.FAILED or not session._rollback_announced
    try:
        await rollback_db(session)
    finally:  # also when cancelled meanwhile: the database side is rolled back by then
        restore(session, session._levels, whole=True)
        end_levels(session)
    if announce and _events.active:
        await _events.call(_events.session_hooks(session, "after_rollback"), session)


async def close(session: AsyncSession) -> None:
    try:
        await rollback_db(session)
    finally:  # also when cancelled meanwhile: the database side is rolled back by then
        detach_all(session)
        end_levels(session)


def end_levels(session: AsyncSession) -> None:
    """The transaction and its SAVEPOINTs are over (rolled back or closed)."""
    for level in session._levels:
        level.closed = True
    session._levels = []
    session._failure = None
    session._rollback_announced = False
    transition(session, TxState.IDLE)


class SessionTransaction:
    """What ``session.begin()`` returns: ``async with`` commits on success, rolls back on error.

    Attributes:
        session: The session whose transaction this is.
    """

    def __init__(self, session: AsyncSession, level: TxLevel) -> None:
        self.session = session
        self._level = level

    @property
    def is_active(self) -> bool:
        """Whether the transaction is still open (not yet committed, rolled back or closed)."""
        return not self._level.closed

    def _check_open(self, op: str) -> None:
        if self._level.closed:
            raise exc.InvalidRequestError(
                f"cannot {op}(): this transaction is already closed (it was committed or rolled back); "
                "start a new one with session.begin()"
            )

    async def commit(self) -> None:
        """Commit the session's transaction: ``await session.commit()``.

        Raises:
            InvalidRequestError: The transaction is already committed or rolled back.
        """
        self._check_open("commit")
        await self.session.commit()

    async def rollback(self) -> None:
        """Roll back the session's transaction: ``await session.rollback()``.

        Raises:
            InvalidRequestError: The transaction is already committed or rolled back.
        """
        self._check_open("rollback")
        await self.session.rollback()

    async def __aenter__(self) -> SessionTransaction:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._level.closed:
            return
        if et is None:
            try:
                await self.session.commit()
            except BaseException:
                if not self._level.closed:
                    await self.session.rollback()
                raise
        else:
            await self.session.rollback()


class NestedTransaction:
    """What ``session.begin_nested()`` returns: a SAVEPOINT level.

    ``async with session.begin_nested():`` (or ``tx = await session.begin_nested()``,
    then ``await tx.commit()`` / ``await tx.rollback()``).

    Attributes:
        session: The session the SAVEPOINT belongs to.
    """

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._level: TxLevel | None = None

    async def _start(self) -> NestedTransaction:
        s = self.session
        if self._level is not None:
            return self
        with s._guard:
            require_usable(s)
            autobegin(s)
            await flush(s)
            if s._router is None:
                conn = await connection(s)
            else:
                from .routed import savepoint_connection

                conn = await savepoint_connection(s)
            sp = conn.begin_nested()
            await sp._start()
            self._level = TxLevel(s._levels[-1], sp)
            s._levels.append(self._level)
        return self

    def __await__(self) -> Any:
        return self._start().__await__()

    async def __aenter__(self) -> NestedTransaction:
        return await self._start()

    @property
    def is_active(self) -> bool:
        """Whether the SAVEPOINT has been started and is neither released nor rolled back."""
        return self._level is not None and not self._level.closed

    def _check(self, op: str) -> TxLevel:
        level = self._level
        if level is None:
            raise exc.InvalidRequestError(f"cannot {op}(): the SAVEPOINT was never started (await it first)")
        if level.closed:
            raise exc.InvalidRequestError(f"cannot {op}(): this SAVEPOINT is already released or rolled back")
        if self.session._levels[-1] is not level:
            raise exc.InvalidRequestError(f"cannot {op}(): a SAVEPOINT begun inside this one is still open")
        return level

    async def commit(self) -> None:
        """Flush and release the SAVEPOINT; its work joins the enclosing transaction."""
        s = self.session
        with s._guard:
            level = self._check("commit")
            require_usable(s)
            await flush_all(s)
            await level.savepoint.commit()
            level.merge_into_parent()
            level.closed = True
            s._levels.pop()
            if _events.active:  # SQLAlchemy: after_commit follows a SAVEPOINT's release too
                await _events.call(_events.session_hooks(s, "after_commit"), s)

    async def rollback(self) -> None:
        """Roll back to the SAVEPOINT: the database and the identity map forget the work since."""
        s = self.session
        with s._guard:
            level = self._check("rollback")
            # a failed flush in the SAVEPOINT rolled back to it, and ran after_rollback, already
            real = level.failed is None and s._conn is not None
            if real:
                await level.savepoint.rollback()
            elif s._conn is not None:
                s._conn._pop_savepoint(level.savepoint.savepoint)
            # pending objects added inside the block are part of its work too
            restore(s, [level], whole=False)
            level.closed = True
            s._levels.pop()
            if s._state is TxState.FAILED and level.failed is not None:
                # the failure went with the SAVEPOINT: the enclosing transaction is intact
                transition(s, TxState.ACTIVE)
                s._failure = None
                s._rollback_announced = False
            if s._conn is not None and s._state is TxState.ACTIVE:
                await forget_vanished_rows(s, level)
            if real and _events.active:
                await _events.call(_events.session_hooks(s, "after_rollback"), s)

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._level is None or self._level.closed:
            return
        if et is None:
            try:
                await self.commit()
            except BaseException:
                if self._level is not None and not self._level.closed and self.session._state is not TxState.IDLE:
                    await self.rollback()
                raise
        else:
            await self.rollback()
