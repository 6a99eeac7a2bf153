"""The session's transaction state machine, and its transaction levels.

States and the only moves allowed between them (``transition()`` checks each
against ``ALLOWED``; every write of ``AsyncSession._state`` goes through it)::

         ┌────────────────── rollback() / close() ───────────────────┐
         v                                                           │
       IDLE ──begin()/autobegin──> ACTIVE ──commit()──> COMMITTING ──┴──> IDLE (committed)
                                   │    ^                  │
         flush failed, statement   │    │ the SAVEPOINT    │ COMMIT failed
         cancelled mid-way         v    │ rolled back      │ or cancelled
                                  FAILED <─────────────────┘
                                   │
                                   └──rollback() / close()──> IDLE

    IDLE       -> ACTIVE      begin(), or autobegin at the first operation that needs one
    IDLE       -> IDLE        close() of a session with nothing begun
    ACTIVE     -> COMMITTING  commit(), once its flush is done
    ACTIVE     -> FAILED      a flush failed, or a statement was cancelled mid-way
    ACTIVE     -> IDLE        rollback(), close()
    COMMITTING -> IDLE        the COMMIT succeeded
    COMMITTING -> FAILED      the COMMIT failed or was cancelled
    FAILED     -> ACTIVE      rollback of the SAVEPOINT whose flush failed
    FAILED     -> IDLE        rollback(), close()

``FAILED`` is SQLAlchemy's "inactive due to a rollback in a subtransaction":
the database transaction (or the innermost SAVEPOINT) has already been rolled
back, and every operation that needs the database raises
``PendingRollbackError`` until the user acknowledges with ``rollback()``, or
leaves the ``begin_nested()`` block whose flush failed (``FAILED -> ACTIVE``:
the SAVEPOINT took the failure with it, the enclosing transaction is intact).
The table costs one dict lookup and one set test per move (about three per
transaction).

Each level (the root transaction and every SAVEPOINT) records the objects
whose in-memory state it changed, so a rollback of that level can undo
exactly its own work in the identity map.  A SAVEPOINT also records what it
loaded and which tables it wrote: values loaded after its own writes may show
rows its rollback takes away again.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..exc import InvalidRequestError

if TYPE_CHECKING:
    from .session import AsyncSession


class TxState(enum.Enum):
    IDLE = "idle"
    ACTIVE = "active"
    COMMITTING = "committing"
    FAILED = "failed"

    # members are singletons compared by identity; Enum's own __hash__ is Python code, run
    # twice per transition (three transitions per transaction)
    __hash__ = object.__hash__


ALLOWED: dict[TxState, frozenset[TxState]] = {
    TxState.IDLE: frozenset({TxState.ACTIVE, TxState.IDLE}),
    TxState.ACTIVE: frozenset({TxState.COMMITTING, TxState.FAILED, TxState.IDLE}),
    TxState.COMMITTING: frozenset({TxState.IDLE, TxState.FAILED}),
    TxState.FAILED: frozenset({TxState.IDLE, TxState.ACTIVE}),
}

#: a test hook: called with (old, new) on every move (tests/test_session_state_machine.py)
observer: Callable[[TxState, TxState], None] | None = None


def transition(session: AsyncSession, new: TxState) -> None:
    """Move the session to ``new``; an illegal move raises ``InvalidRequestError``."""
    current = session._state
    if new not in ALLOWED[current]:
        raise InvalidRequestError(f"illegal session transaction transition {current.value} -> {new.value}")
    if observer is not None:
        observer(current, new)
    session._state = new


#: in ``TxLevel.written``: a statement wrote tables aiouow does not know (text(), raw SQL)
ANY_TABLE: Any = object()
#: in a set of ``TxLevel.rewritten``: every row of the table may have changed (a core UPDATE) /
#: rows were inserted that no object knew before (a core INSERT)
ALL_ROWS: Any = object()
NEW_ROWS: Any = object()


class TxLevel:
    """One transaction level: the root, or a SAVEPOINT.

    ``added``: objects made pending while this level was innermost;
    ``inserted`` / ``updated`` / ``removed``: objects flushed as INSERT /
    UPDATE (or with relationship changes only) / DELETE while it was innermost
    (all keyed by ``id(obj)``); ``key_switches``: the primary key an object had
    before an UPDATE of this level changed it.  Nested levels only: ``loaded_new``
    / ``loaded``, objects first loaded / given further values from the database
    while innermost; ``written``, the tables whose rows it inserted, updated or
    deleted (``ANY_TABLE`` for a statement aiouow cannot see into), which makes
    relationships loaded from them suspect; ``rewritten``, per table, the keys of
    rows whose columns changed other than through a flush of their objects
    (``ALL_ROWS`` / ``NEW_ROWS`` where unknown).
    """

    __slots__ = ("parent", "savepoint", "added", "inserted", "updated", "removed", "key_switches", "loaded_new",
                 "loaded", "written", "rewritten", "closed", "failed")

    def __init__(self, parent: TxLevel | None, savepoint: Any = None) -> None:
        self.parent = parent
        self.savepoint = savepoint  # the engine-level savepoint Transaction, for nested levels
        self.added: dict[int, Any] = {}
        self.inserted: dict[int, Any] = {}
        self.updated: dict[int, Any] = {}
        self.removed: dict[int, Any] = {}
        self.key_switches: dict[int, tuple[Any, Any]] = {}
        self.loaded_new: dict[int, Any] = {}
        self.loaded: dict[int, Any] = {}
        self.written: set[Any] = set()
        self.rewritten: dict[Any, set[Any]] = {}
        self.closed = False
        self.failed: BaseException | None = None

    @property
    def nested(self) -> bool:
        return self.parent is not None

    def merge_into_parent(self) -> None:
        p = self.parent
        assert p is not None
        p.added.update(self.added)
        p.inserted.update(self.inserted)
        p.updated.update(self.updated)
        p.removed.update(self.removed)
        for oid, switch in self.key_switches.items():
            p.key_switches.setdefault(oid, switch)  # the key before the enclosing level's work
        if p.parent is not None:  # the root level is undone whole: nothing to narrow down there
            p.loaded_new.update(self.loaded_new)
            p.loaded.update(self.loaded)
            p.written |= self.written
            for table, keys in self.rewritten.items():
                p.rewritten.setdefault(table, set()).update(keys)
