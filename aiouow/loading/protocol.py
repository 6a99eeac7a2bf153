"""``SessionInternals``: what ``loading/`` may use of the session, declared.

The loaders build objects into the session's identity map, note what a
SAVEPOINT loaded, and hold the session for their task; they reach the session
only through the members listed here (``AsyncSession`` implements them), so
``loading/`` never imports ``session/`` and the members it relies on are
visible in one place.  ``mapping.state.SessionHooks`` is the smaller part
``mapping/`` needs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

from ..mapping.state import SessionHooks, SessionToken

if TYPE_CHECKING:
    from ..engine.connection import Connection
    from ..mapping.mapper import Mapper
    from ..sql.dml import Delete, Update


class LoadTracker(Protocol):
    """The innermost SAVEPOINT's records of what it loaded (``session.levels.TxLevel``)."""

    loaded_new: dict[int, Any]
    loaded: dict[int, Any]


class SessionInternals(SessionHooks, Protocol):
    #: the compact state of the objects clean and persistent in this session
    _token: SessionToken
    #: the connection of the current transaction, if one is checked out
    _conn: Connection | None
    #: ``session.load()`` calls awaited together join one batch per relationship
    _load_batches: dict[Any, Any]
    _load_lock: asyncio.Lock
    #: the N+1 guard's counts and settings
    _single_loads: dict[Any, int]
    _n_plus_one_warned: set[Any]
    n_plus_one: str | None
    n_plus_one_threshold: int

    @property
    def _guard(self) -> AbstractContextManager[None]:
        """Held (``with session._guard:``) by an operation that awaits (``session.guard``)."""
        ...

    def _identity_for(self, mapper: Mapper) -> dict[Any, Any]:
        """The identity map of one mapper (``{pk: obj}``), created if needed."""
        ...

    def _forget_modified(self, obj: Any) -> None:
        """``obj`` has no unflushed changes any more (``populate_existing`` overwrote them)."""
        ...

    def _loads_tracker(self) -> LoadTracker | None:
        """Inside a SAVEPOINT, where objects given values from the database are noted."""
        ...

    def _note_loaded(self, objs: Iterable[Any]) -> None:
        """Objects the session already held were given values from the database."""
        ...

    def _note_statement(self, statement: Any, keys: Iterable[Any] | None = None) -> None:
        """A statement other than a flush wrote rows (inside a SAVEPOINT, it is recorded)."""
        ...

    def _sync_dml(self, stmt: Update | Delete, rows: Sequence[Any] | None, fetched_at: dict[str, int]) -> None:
        """Keep held objects in step with an ORM UPDATE/DELETE that ran."""
        ...

    def _connection(self) -> Coroutine[Any, Any, Connection]:
        """The transaction's connection, checked out (and the transaction begun) if needed."""
        ...

    def _ready(self) -> Coroutine[Any, Any, Connection]:
        """Before an operation that needs the database: usable, in a transaction, flushed."""
        ...

    def _prepare(self) -> Coroutine[Any, Any, None]:
        """``_ready()`` without picking a connection (the caller picks one by what it loads)."""
        ...

    def _ready_for(self, statement: Any) -> Coroutine[Any, Any, Connection]:
        """``_ready()``, then the connection ``statement`` runs on (a session may have several
        engines, or read replicas)."""
        ...

    def _connection_for(self, statement: Any) -> Coroutine[Any, Any, Connection]:
        """The connection a loader's SELECT runs on."""
        ...

    def _connection_for_mapper(self, mapper: Mapper, write: bool) -> Coroutine[Any, Any, Connection]:
        """The connection for rows of ``mapper`` (``write``: FOR UPDATE, on the primary)."""
        ...

    async def refresh(self, obj: Any, attribute_names: Iterable[str] | None = None,
                      with_for_update: bool = False) -> None:
        """``AsyncSession.refresh``."""
        ...

    async def load(self, obj: Any, attribute: Any) -> Any:
        """``AsyncSession.load``."""
        ...
