"""Flushing: plan the pending changes, run the plan, then ``finalize.apply()`` the outcome.

The planning (``unitofwork.plan_flush``) and the execution
(``persistence.execute_plan``) are separate modules; this one drives them in
the session's transaction and, when a statement fails, takes the failure path
(``connection.fail``: the transaction or SAVEPOINT is rolled back and the
session waits for ``rollback()``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._gc import GC_PAUSE_MIN, gc_paused
from ..engine.connection import Connection
from .connection import autobegin, connection, fail, require_usable
from .dependency import compute_sync
from .finalize import apply
from .lifecycle import delete_cascade, to_transient
from .persistence import execute_plan
from .unitofwork import plan_flush

if TYPE_CHECKING:
    from .session import AsyncSession


async def flush(session: AsyncSession) -> None:
    if not (session._new or session._modified or session._deleted):
        return
    require_usable(session)
    autobegin(session)
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
        await write(session, new, modified, dels)


async def autoflush(session: AsyncSession) -> None:
    if session.autoflush and not session._no_autoflush and (session._new or session._modified or session._deleted):
        await flush(session)


def has_changes(session: AsyncSession) -> bool:
    return bool(session._new or session._modified or session._deleted)


async def write(session: AsyncSession, new: list[Any], modified: list[Any], dels: list[Any]) -> None:
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
    plan = plan_flush(new, modified, dels, sync)
    for obj in sync.drop_pending.values():
        to_transient(session, obj)
    if not plan.steps:
        apply(session, plan, {})
        return
    if session._router is None:
        conn = await connection(session)
        conns = None
    else:  # each engine's rows on its own connection (refused inside a SAVEPOINT: nothing ran yet)
        from .routed import plan_connections

        conns = await plan_connections(session, plan)
        conn = conns[0]
    try:
        outcome = await execute_plan(conn, plan, conns)
    except BaseException as err:
        await fail(session, err)
        raise
    apply(session, plan, outcome.generated)


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

