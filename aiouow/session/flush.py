"""Flushing: plan the pending changes, run the plan, then ``finalize.apply()`` the outcome.

The planning (``unitofwork.plan_flush``) and the execution
(``persistence.execute_plan``) are separate modules; this one drives them in
the session's transaction and, when a statement fails, takes the failure path
(``connection.fail``: the transaction or SAVEPOINT is rolled back and the
session waits for ``rollback()``).  Event listeners (``hooks.py``) are called only
when some exist: ``before_flush`` before anything is collected (its changes are part
of the flush) and ``after_flush`` after the collector pause, both awaited; the model
listeners inside ``write()``, with the pause.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import events as _events
from .. import exc
from .._gc import GC_PAUSE_MIN, gc_paused
from ..engine.connection import Connection
from .connection import autobegin, connection, fail, require_usable
from .dependency import compute_sync
from .finalize import apply
from .hooks import FlushHooks, after_rows, before_rows, flush_hooks
from .lifecycle import delete_cascade, to_transient
from .persistence import execute_plan
from .unitofwork import FlushPlan, plan_flush, single_statement

if TYPE_CHECKING:
    from .session import AsyncSession


async def flush(session: AsyncSession) -> None:
    if not (session._new or session._modified or session._deleted):
        return
    if session._flushing:
        raise exc.InvalidRequestError(
            "this session is already flushing: flush() or commit() was called from a flush event "
            "listener; a before_flush listener's changes are part of the flush under way, and an "
            "after_flush listener's are flushed by the next flush (commit() flushes them)"
        )
    require_usable(session)
    autobegin(session)
    if _events.active:
        hooks = flush_hooks(session)
        if hooks is not None:
            session._flushing = True  # as in SQLAlchemy: no autoflush from the listeners' queries
            try:
                await flush_with_hooks(session, hooks)
            finally:
                session._flushing = False
            return
    await flush_pending(session, None)


async def flush_with_hooks(session: AsyncSession, hooks: FlushHooks) -> None:
    ctx = hooks.ctx
    if hooks.before_flush:
        try:
            await _events.call(hooks.before_flush, session, ctx)
        except BaseException as err:
            await fail(session, err)  # it may have run statements: nothing of it stays half-done
            raise
        if not has_changes(session):
            return
    await flush_pending(session, hooks)
    try:
        if hooks.after_flush:
            await _events.call(hooks.after_flush, session, ctx)
        if hooks.to_persistent:
            _events.call_state(hooks.to_persistent, session, ctx.inserted)
        if hooks.to_deleted:
            _events.call_state(hooks.to_deleted, session, ctx.deleted)
    except BaseException as err:
        await fail(session, err)
        raise


async def flush_all(session: AsyncSession) -> None:
    """Flush until nothing is pending: a flush's listeners may add objects (commit() and a
    SAVEPOINT's release must not leave them behind)."""
    await flush(session)
    if _events.active and has_changes(session) and flush_hooks(session) is not None:
        for _ in range(100):
            await flush(session)
            if not has_changes(session):
                return
        raise exc.InvalidRequestError(
            "over 100 flushes in a row still left changes to flush: does an after_flush listener "
            "add or change objects every time it runs?"
        )


async def flush_pending(session: AsyncSession, hooks: FlushHooks | None) -> None:
    deleted = session._deleted
    modified = [o for k, o in session._modified.items() if k not in deleted]
    new = list(session._new.values())
    dels = list(deleted.values())
    # The collector stays paused across the statements too: a large flush allocates its
    # parameters in bursts between awaits, and a collection there rescanned every object
    # being flushed.  The plan and its rows die with _write's frame, before the collector
    # runs again, so its first collection afterwards does not scan them either.  A large
    # flush takes its connection first, so that a wait for the pool is not spent paused.
    size = len(new) + len(modified) + len(dels)
    if size >= GC_PAUSE_MIN:
        await (await connection(session)).acquire()
    with gc_paused(size):
        await write(session, new, modified, dels, hooks)


async def autoflush(session: AsyncSession) -> None:
    if session.autoflush and not session._no_autoflush and (
            session._new or session._modified or session._deleted) and not session._flushing:
        await flush(session)


def has_changes(session: AsyncSession) -> bool:
    return bool(session._new or session._modified or session._deleted)


async def write(session: AsyncSession, new: list[Any], modified: list[Any], dels: list[Any],
                hooks: FlushHooks | None = None) -> None:
    deleted = session._deleted
    sync = compute_sync(new, modified, dels)
    if sync.orphans:
        # an orphan is deleted as by delete(): the delete cascade goes on from it (SQLAlchemy)
        try:
            deleted.update(await delete_cascade(session, list(sync.orphans.values())))
        except BaseException as err:
            await fail(session, err)
            raise
        modified = [o for k, o in session._modified.items() if k not in deleted]
        dels = list(deleted.values())
        sync = compute_sync(new, modified, dels)
    model_hooks = hooks is not None and hooks.model
    checked: list[Any] = []  # the objects before_update was called for
    if model_hooks:
        # before the plan's rows are built, so that the values the listeners set are sent
        conn = await connection(session)
        try:
            checked = before_rows(conn, new, modified, dels, sync)
        except BaseException as err:
            await fail(session, err)
            raise
    plan = plan_flush(new, modified, dels, sync)
    if hooks is not None:
        hooks.ctx._plan = plan
    for obj in sync.drop_pending.values():
        to_transient(session, obj)
    if not plan.steps:
        apply(session, plan, {})
        if checked:  # changes that were no net change: after_update all the same (SQLAlchemy)
            try:
                after_rows(conn, plan, checked)
            except BaseException as err:
                await fail(session, err)
                raise
        return
    if session._router is None:
        conn = await connection(session)
        conns = None
    else:  # each engine's rows on its own connection (refused inside a SAVEPOINT: nothing ran yet)
        from .routed import plan_connections

        conns = await plan_connections(session, plan)
        conn = conns[0]
    if session._commit_flush and conns is None and _alone(session, plan, hooks):
        # the whole transaction is this one statement: the engine sends it without BEGIN (if
        # nothing has begun the transaction yet) and commit() then has nothing to COMMIT
        conn._alone = True
    try:
        outcome = await execute_plan(conn, plan, conns)
    except BaseException as err:
        await fail(session, err)
        raise
    finally:
        conn._alone = False
    apply(session, plan, outcome.generated)
    if model_hooks:
        try:
            after_rows(conn, plan, checked)
        except BaseException as err:
            await fail(session, err)
            raise


def _alone(session: AsyncSession, plan: FlushPlan, hooks: FlushHooks | None) -> bool:
    """Whether commit()'s flush may be its transaction's only statement, autocommitted: one
    statement, outside any SAVEPOINT, in a transaction of the session's own (not a Connection's
    it joined), with no after_flush listener (which may write more in the same transaction)."""
    return (len(session._levels) == 1 and not isinstance(session.bind, Connection)
            and (hooks is None or not hooks.after_flush) and single_statement(plan))


async def prepare(session: AsyncSession) -> None:
    """Before an operation that needs the database: usable, in a transaction, flushed."""
    require_usable(session)
    autobegin(session)
    await autoflush(session)


async def ready(session: AsyncSession) -> Connection:
    """Before an operation that needs the database: usable, in a transaction, flushed."""
    require_usable(session)
    autobegin(session)
    await autoflush(session)
    if session._router is not None:
        from .routed import default_connection

        return await default_connection(session)
    return await connection(session)

