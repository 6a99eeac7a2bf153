"""Where a flush calls its listeners (``aiouow.events``), kept out of the flush's own path.

``flush.py`` asks ``flush_hooks()`` once per flush, and only when some listener exists
anywhere (``events.active``); a session without listeners then flushes exactly as before.
The model hooks run per table: ``before_rows()`` between the unit of work's choice of rows and
the planning of their parameters (so a value a ``before_insert`` / ``before_update`` listener
sets is in the statement), ``after_rows()`` once the plan ran and its outcome was applied
(generated keys set).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import events
from ..engine.connection import Connection
from ..sql.schema import sort_tables
from .dependency import Sync
from .unitofwork import DeleteBatch, FlushPlan, InsertBatch, UpdateBatch, _by_mapper, flush_sets

if TYPE_CHECKING:
    from .session import AsyncSession


class FlushHooks:
    """The listeners one flush calls, looked up once for the flush."""

    __slots__ = ("before_flush", "after_flush", "to_persistent", "to_deleted", "model", "ctx")

    def __init__(self, session: AsyncSession) -> None:
        hooks = events.session_hooks
        self.before_flush = hooks(session, "before_flush")
        self.after_flush = hooks(session, "after_flush")
        self.to_persistent = hooks(session, "pending_to_persistent")
        self.to_deleted = hooks(session, "persistent_to_deleted")
        self.model = events.model_active
        self.ctx = events.FlushContext(session)


def flush_hooks(session: AsyncSession) -> FlushHooks | None:
    hooks = FlushHooks(session)
    if hooks.before_flush or hooks.after_flush or hooks.to_persistent or hooks.to_deleted or hooks.model:
        return hooks
    return None


def _call_per_table(conn: Connection, name: str, objs: list[Any]) -> None:
    """``name``'s listeners for ``objs``, per mapper in the plan's order (parent tables first,
    and last when deleting)."""
    groups = _by_mapper(objs)
    order = [t.mapper for t in sort_tables([m.table for m in groups])]
    for mapper in (reversed(order) if name == "before_delete" else order):
        assert mapper is not None
        fns = events.model_hooks(mapper.class_, name)
        if fns:
            events.call_model(fns, mapper, conn, groups[mapper])


def before_rows(conn: Connection, new: list[Any], modified: list[Any], dels: list[Any], sync: Sync
                ) -> list[Any]:
    """``before_insert`` / ``before_update`` / ``before_delete`` for the rows about to be planned
    (``before_update`` for every object with changes to check, as SQLAlchemy, even when they
    turn out to be no net change).  Returns the objects ``before_update`` was called for."""
    ins, upd, gone = flush_sets(new, modified, dels, sync)
    for name, objs in (("before_insert", ins), ("before_update", upd), ("before_delete", gone)):
        if objs:
            _call_per_table(conn, name, objs)
    return upd


def after_rows(conn: Connection, plan: FlushPlan, checked: list[Any]) -> None:
    """``after_insert`` / ``after_update`` / ``after_delete``, per batch, in the plan's order;
    then ``after_update`` for the objects of ``checked`` (those ``before_update`` was called for)
    that no UPDATE wrote, their changes being no net change (SQLAlchemy calls it for them too)."""
    updated: set[int] = set()
    for step in plan.steps:
        if isinstance(step, InsertBatch):
            name = "after_insert"
        elif isinstance(step, UpdateBatch):
            name = "after_update"
            updated.update(map(id, step.objs))
        elif isinstance(step, DeleteBatch):
            name = "after_delete"
        else:
            continue
        fns = events.model_hooks(step.mapper.class_, name)
        if fns:
            events.call_model(fns, step.mapper, conn, step.objs)
    unwritten = [obj for obj in checked if id(obj) not in updated]
    if unwritten:
        _call_per_table(conn, "after_update", unwritten)
