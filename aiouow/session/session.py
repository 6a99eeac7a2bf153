"""``AsyncSession``: identity map, unit of work and transaction, with SQLAlchemy's semantics.

This class is the public face; its methods check the calling task and
delegate to the module that holds the logic:

* ``guard.py``: one task at a time (``ConcurrentSessionUseError``);
* ``levels.py``: the transaction state machine and its levels (what each
  transaction and SAVEPOINT changed);
* ``connection.py``: the connection, checked out when first needed and given
  back at the end of the transaction;
* ``lifecycle.py``: add, delete, expunge, expire, refresh, merge;
* ``flush.py`` and ``finalize.py``: flushing, and the book-keeping after it;
* ``transaction.py``: begin, commit, rollback, close, ``begin()`` / ``begin_nested()``;
* ``restore.py``: undoing a rollback in memory;
* ``loading/execute.py``: ``execute()``, ``stream()``, ``get()`` for ORM statements.

Book-keeping, in a few dicts keyed by ``id(obj)`` (objects need not be
hashable): ``_new`` (pending), ``_modified`` (persistent with attribute
changes), ``_deleted`` (marked by ``delete()``, not flushed yet), plus the
identity map ``_imap`` (``{mapper: {pk: obj}}``) and the transaction levels.
Nothing touches the database until an operation needs it.  The private
members ``loading/`` and ``mapping/`` use are declared by
``loading.protocol.SessionInternals``.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Coroutine, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, overload

from .. import exc
from ..engine.connection import Connection
from ..engine.engine import Engine
from ..engine.result import AsyncResult, Result, Row, ScalarResult
from ..engine.transaction import Transaction
from ..events import Registry
from ..loading import execute as _execute
from ..loading.explicit import session_load, session_load_all
from ..mapping.mapper import Mapper
from ..mapping.relationships import Relationship
from ..mapping.state import PENDING, PERSISTENT, full_state, get_slot
from ..sql.dml import Delete, Update
from ..sql.elements import ClauseElement
from ..sql.selectable import Select
from ..sql.subquery import CompoundSelect
from . import binds as _binds
from . import connection as _connection
from . import flush as _flush
from . import lifecycle, restore, routed, transaction
from .binds import GetBind, ReplicaSet, Router, normalize_binds, replica_set
from .finalize import sync_dml
from .guard import TaskGuard
from .identity import IdentityMapView, IdentitySet, SessionToken
from .levels import TxLevel, TxState
from .routed import RoutedTx
from .transaction import NestedTransaction, SessionTransaction

if TYPE_CHECKING:
    from ..loading.options import RelationshipArg
    from ..mapping.model import Model

T = TypeVar("T")
_TP = TypeVar("_TP", bound=tuple[Any, ...])

__all__ = ["AsyncSession", "NestedTransaction", "SessionTransaction"]


def _check_isolation_level(bind: Engine | Connection | None, level: Any) -> str | None:
    if level is None:
        return None
    if not isinstance(bind, Engine):
        raise exc.ArgumentError(
            f"AsyncSession(isolation_level={level!r}) needs the session bound to an engine (it begins its "
            "own transactions); a session bound to a Connection runs in that connection's transaction: "
            "open it with engine.connect(isolation_level=...)"
        )
    return bind.dialect.check_isolation_level(level, "AsyncSession()")


class AsyncSession:
    """A unit of work against one engine: ``async with AsyncSession(engine) as session:``.

    ``expire_on_commit``, ``autoflush`` and ``autobegin`` mean what they mean in
    SQLAlchemy.  ``replicas=[engine, ...]`` sends reads to replicas until the transaction
    writes; ``binds={Model: engine}`` / ``get_bind=`` put models on other engines
    (``binds.py``, ``routed.py``; docs/engine.md, "Several engines").  Loading is always explicit:
    reading an unloaded attribute raises ``NotLoadedError`` and never does I/O.
    ``isolation_level`` overrides the engine's for this session's transactions
    (``create_engine(isolation_level=...)`` lists the levels).

    Attributes:
        bind: The engine (or connection) the session works on, unless ``binds``/``get_bind`` route elsewhere.
        isolation_level: The level its transactions begin at; ``None``: the engine's.
        expire_on_commit: Whether ``commit()`` expires every object.
        autoflush: Whether queries flush pending changes first.
        autobegin: Whether the first operation that needs the database begins a transaction.
        info: A dict for the application's own data, kept for the session's lifetime.
        join_transaction_mode: How a session bound to a connection already in a transaction joins it
            (``"create_savepoint"``: its commits and rollbacks stay inside a SAVEPOINT).
        n_plus_one_threshold: How many single-object loads of one relationship trip the N+1 guard.
        n_plus_one: What the guard does: ``"warn"`` (``NPlusOneWarning``, once), ``"raise"``
            (``NPlusOneError``) or ``None`` (nothing).
    """

    def __init__(
        self,
        bind: Engine | Connection | None = None,
        *,
        expire_on_commit: bool = True,
        autoflush: bool = True,
        autobegin: bool = True,
        info: dict[str, Any] | None = None,
        join_transaction_mode: str = "create_savepoint",
        n_plus_one_threshold: int = 10,
        n_plus_one: str | None = "warn",
        isolation_level: str | None = None,
        replicas: Sequence[Engine] | ReplicaSet | bool | None = None,
        binds: Mapping[Any, Engine] | None = None,
        get_bind: GetBind | None = None,
    ) -> None:
        if bind is not None and not isinstance(bind, (Engine, Connection)):
            raise exc.ArgumentError(f"AsyncSession() takes an Engine (or a Connection), not {bind!r}")
        self.bind = bind
        #: the level this session's transactions begin at; None: the engine's
        self.isolation_level = _check_isolation_level(bind, isolation_level)
        self._get_bind_fn = get_bind
        self._binds = normalize_binds(binds)
        rs = replica_set(replicas)
        if rs is not None and not isinstance(bind, Engine):
            raise exc.ArgumentError("replicas= needs the session's bind to be the primary's Engine")
        custom = get_bind is not None or type(self).get_bind is not AsyncSession.get_bind
        #: how a multi-engine session routes its work (binds.py); None, the fast path, for one engine
        self._router: Router | None = Router(self._binds, rs, custom) \
            if (custom or self._binds or rs is not None) else None
        #: this transaction's connections besides the primary's (routed.py)
        self._routed: RoutedTx | None = None
        self.expire_on_commit = expire_on_commit
        self.autoflush = autoflush
        self.autobegin = autobegin
        self.info: dict[str, Any] = dict(info or {})
        self.join_transaction_mode = join_transaction_mode
        self._ref = weakref.ref(self)
        self._token = SessionToken(self._ref)
        self._imap: dict[Mapper, dict[Any, Any]] = {}
        self._new: dict[int, Any] = {}
        self._modified: dict[int, Any] = {}
        self._deleted: dict[int, Any] = {}
        self._state = TxState.IDLE
        self._levels: list[TxLevel] = []
        self._conn: Connection | None = None
        self._outer_tx: Transaction | None = None
        self._failure: BaseException | None = None
        self._expire_reasons: dict[int, str] = {}
        self._expire_all_reason: str | None = None
        self._no_autoflush = 0
        if n_plus_one not in ("warn", "raise", None):
            raise exc.ArgumentError(f"n_plus_one must be 'warn', 'raise' or None, not {n_plus_one!r}")
        #: single-object loads of one relationship past which the N+1 guard trips
        self.n_plus_one_threshold = n_plus_one_threshold
        self.n_plus_one = n_plus_one
        self._single_loads: dict[Any, int] = {}
        self._n_plus_one_warned: set[Any] = set()
        self._load_batches: dict[Any, Any] = {}
        #: leaders of load batches for different relationships awaited together take turns
        self._load_lock = asyncio.Lock()
        self._guard = TaskGuard()
        #: listeners (``aiouow.events``): this session's own, and its sessionmaker's
        self._events: Registry | None = None
        self._maker_events: Registry | None = None
        #: a flush is under way: autoflush is off and flush() refuses (its hooks may run statements)
        self._flushing = False
        #: after_rollback already ran for the failed flush whose rollback() is awaited
        self._rollback_announced = False
        #: commit() is flushing: a single-statement flush may be autocommitted (flush.py)
        self._commit_flush = False

    @property
    def _owner(self) -> asyncio.Task[Any] | None:
        """The task holding the session, if one does."""
        return self._guard.owner

    # -- what loading/ and mapping/ use (loading.protocol.SessionInternals) ---------------
    def _identity_for(self, mapper: Mapper) -> dict[Any, Any]:
        m = self._imap.get(mapper)
        if m is None:
            m = self._imap[mapper] = {}
        return m

    def _note_modified(self, obj: Any) -> None:
        self._modified[id(obj)] = obj
        if self._state is TxState.IDLE and self.autobegin:
            # as in SQLAlchemy, changing a persistent object begins a transaction, so that
            # rollback() discards the change
            _connection.autobegin(self)

    def _forget_modified(self, obj: Any) -> None:
        self._modified.pop(id(obj), None)

    def _expire_reason_for(self, obj: Any) -> str | None:
        return self._expire_reasons.get(id(obj), self._expire_all_reason)

    # (plain functions returning the coroutine: no extra coroutine frame per statement)
    def _connection(self) -> Coroutine[Any, Any, Connection]:
        return _connection.connection(self)

    def _ready(self) -> Coroutine[Any, Any, Connection]:
        """Before an operation that needs the database: usable, in a transaction, flushed."""
        return _flush.ready(self)

    def _prepare(self) -> Coroutine[Any, Any, None]:
        """``_ready()`` without picking a connection (the caller picks it by what it loads)."""
        return _flush.prepare(self)

    def _ready_for(self, statement: Any) -> Coroutine[Any, Any, Connection]:
        """``_ready()``, then the connection ``statement`` runs on."""
        if self._router is None:
            return _flush.ready(self)
        return routed.ready_for(self, statement)

    def _connection_for(self, statement: Any) -> Coroutine[Any, Any, Connection]:
        """The connection ``statement`` runs on (a loader's SELECT)."""
        if self._router is None:
            return _connection.connection(self)
        return routed.connection_for_statement(self, statement)

    def _connection_for_mapper(self, mapper: Mapper, write: bool) -> Coroutine[Any, Any, Connection]:
        """The connection for rows of ``mapper`` (``write``: FOR UPDATE, on the primary)."""
        if self._router is None:
            return _connection.connection(self)
        return routed.connection_for_mapper(self, mapper, write)

    def get_bind(self, mapper: Mapper | None = None, clause: Any = None) -> Engine | Connection:
        """The engine for work on ``mapper`` (``clause``: the statement, when there is one).

        The ``get_bind=`` hook's answer if it gives one, else ``binds`` by class or table, else
        ``bind``.  Override it in a subclass to route by other rules (SQLAlchemy's hook).
        """
        fn = self._get_bind_fn
        if fn is not None:
            chosen = fn(mapper, clause)
            if chosen is not None:
                return chosen
        return _binds.default_bind(self, self._binds, mapper)

    def _loads_tracker(self) -> TxLevel | None:
        return restore.loads_tracker(self)

    def _note_loaded(self, objs: Iterable[Any]) -> None:
        restore.note_loaded(self, objs)

    def _note_statement(self, statement: Any, keys: Iterable[Any] | None = None) -> None:
        restore.note_statement(self, statement, keys)

    def _sync_dml(self, stmt: Update | Delete, rows: Sequence[Any] | None, fetched_at: dict[str, int]) -> None:
        sync_dml(self, stmt, rows, fetched_at)

    async def connection(self) -> Connection:
        """The connection of the current transaction (checked out if needed).

        With replicas, the primary's (the rest of the transaction then runs there).
        """
        with self._guard:
            _connection.require_usable(self)
            _connection.autobegin(self)
            if self._router is not None:
                conn = await routed.primary_connection(self)
            else:
                conn = await _connection.connection(self)
            if conn is not self.bind:
                conn._lazy = False  # user code: everything it runs is in the transaction (BEGIN first)
            return conn

    @property
    def identity_map(self) -> IdentityMapView:
        """Read-only mapping of ``(cls, pk_tuple)`` to object."""
        return IdentityMapView(self._imap)

    @property
    def new(self) -> IdentitySet:
        """Pending objects (added, not yet flushed)."""
        return IdentitySet(self._new)

    @property
    def dirty(self) -> IdentitySet:
        """Persistent objects with attributes set since they were loaded or flushed."""
        return IdentitySet({k: o for k, o in self._modified.items() if k not in self._deleted})

    @property
    def deleted(self) -> IdentitySet:
        """Objects marked by ``delete()`` and not yet flushed."""
        return IdentitySet(self._deleted)

    def __contains__(self, obj: object) -> bool:
        try:
            st = full_state(obj)
        except (AttributeError, TypeError):
            return False
        if st is None:
            return get_slot(obj) is self._token
        return st.session_ref is self._token and st.status in (PENDING, PERSISTENT)

    def __iter__(self) -> Iterator[Any]:
        yield from list(self._new.values())
        for m in list(self._imap.values()):
            yield from list(m.values())

    @property
    def is_active(self) -> bool:
        """False while the transaction awaits ``rollback()``.

        That is after a flush or commit failed, or an operation was cancelled mid-statement (which
        took the transaction with it).
        """
        if self._state is TxState.FAILED:
            return False
        conn = self._conn
        return conn is None or conn._lost is None

    def in_transaction(self) -> bool:
        """Whether a transaction is open (begun explicitly or by autobegin, and not yet committed or rolled back)."""
        return self._state is not TxState.IDLE

    def in_nested_transaction(self) -> bool:
        """Whether a SAVEPOINT of :meth:`begin_nested` is open."""
        return len(self._levels) > 1

    @property
    @contextmanager
    def no_autoflush(self) -> Iterator[AsyncSession]:
        """``with session.no_autoflush:`` queries in the block do not flush first."""
        self._no_autoflush += 1
        try:
            yield self
        finally:
            self._no_autoflush -= 1

    # -- add / delete / expunge ------------------------------------------------------
    def add(self, obj: Any) -> None:
        """Make a transient object pending, or attach a detached one."""
        guard = self._guard
        if guard.owner is not None:
            guard.check()
        lifecycle.add(self, obj)

    def add_all(self, objs: Iterable[Any]) -> None:
        """``add()`` each object."""
        guard = self._guard
        if guard.owner is not None:
            guard.check()
        add = lifecycle.add
        for obj in objs:
            add(self, obj)

    async def delete(self, obj: Any) -> None:
        """Mark a persistent object for deletion at the next flush."""
        self._guard.check()
        if not lifecycle.delete_at_once(self, obj):
            with self._guard:
                await lifecycle.delete(self, obj)

    def expunge(self, obj: Any) -> None:
        """Remove an object from the session (pending -> transient, persistent -> detached)."""
        self._guard.check()
        lifecycle.expunge(self, obj)

    def expunge_all(self) -> None:
        """Remove every object from the session."""
        self._guard.check()
        lifecycle.detach_all(self)

    # -- expire / refresh -----------------------------------------------------------
    def expire(self, obj: Any, attribute_names: Iterable[str] | None = None) -> None:
        """Forget loaded values (all, or the named ones); reading them then raises NotLoadedError."""
        self._guard.check()
        lifecycle.expire(self, obj, attribute_names)

    def expire_all(self) -> None:
        """Expire every persistent object in the session."""
        self._guard.check()
        lifecycle.expire_everything(self, "session.expire_all()")

    async def refresh(self, obj: Any, attribute_names: Iterable[str] | None = None,
                      with_for_update: bool = False) -> None:
        """Reload attributes (all, or the named ones, relationships included) from the database."""
        with self._guard:
            await lifecycle.refresh(self, obj, attribute_names, with_for_update)

    # -- flush ----------------------------------------------------------------------
    async def flush(self) -> None:
        """Write pending changes to the database (in the current transaction)."""
        with self._guard:
            await _flush.flush(self)

    # -- commit / rollback / close -----------------------------------------------------
    def begin(self) -> SessionTransaction:
        """Begin a transaction explicitly.

        ``async with session.begin():`` commits on success and rolls back on error.
        """
        self._guard.check()
        return transaction.begin(self)

    def begin_nested(self) -> NestedTransaction:
        """Begin a SAVEPOINT: ``async with session.begin_nested():``.

        It is released on success; on error the session rolls back to it, forgetting only the work
        done since, in the database and in the identity map.
        """
        self._guard.check()
        return NestedTransaction(self)

    async def commit(self) -> None:
        """Flush, commit, and (with expire_on_commit) expire every object."""
        with self._guard:
            await transaction.commit(self)

    async def rollback(self) -> None:
        """Roll back the whole transaction.

        Pending objects are expunged, deleted ones restored, persistent ones expired.
        """
        with self._guard:
            await transaction.rollback(self)

    async def close(self) -> None:
        """Roll back what is not committed, expunge every object, return the connection.

        The session can be used again afterwards.
        """
        with self._guard:
            await transaction.close(self)

    async def __aenter__(self) -> AsyncSession:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # -- queries ------------------------------------------------------------------
    @overload
    async def execute(self, statement: Select[_TP] | CompoundSelect[_TP],
                      params: dict[str, Any] | Sequence[dict[str, Any]] | None = None) -> Result[_TP]: ...
    @overload
    async def execute(self, statement: ClauseElement,
                      params: dict[str, Any] | Sequence[dict[str, Any]] | None = None) -> Result[Any]: ...
    async def execute(self, statement: ClauseElement, params: dict[str, Any] | Sequence[dict[str, Any]] | None = None
                      ) -> Result[Any]:
        """Execute a statement.  Mapped classes in a SELECT come back as identity-mapped objects."""
        with self._guard:
            return await _execute.execute(self, statement, params)

    @overload
    async def scalars(self, statement: Select[tuple[T]] | CompoundSelect[tuple[T]],
                      params: dict[str, Any] | None = None) -> ScalarResult[T]: ...
    @overload
    async def scalars(self, statement: ClauseElement, params: dict[str, Any] | None = None) -> ScalarResult[Any]: ...
    async def scalars(self, statement: ClauseElement, params: dict[str, Any] | None = None) -> ScalarResult[Any]:
        """``(await execute(statement)).scalars()``."""
        return (await self.execute(statement, params)).scalars()

    @overload
    async def scalar(self, statement: Select[tuple[T]] | CompoundSelect[tuple[T]],
                     params: dict[str, Any] | None = None) -> T | None: ...
    @overload
    async def scalar(self, statement: ClauseElement, params: dict[str, Any] | None = None) -> Any: ...
    async def scalar(self, statement: ClauseElement, params: dict[str, Any] | None = None) -> Any:
        """The first column of the first row, or None."""
        return (await self.execute(statement, params)).scalar()

    @overload
    async def stream(self, statement: Select[_TP] | CompoundSelect[_TP], params: dict[str, Any] | None = None,
                     chunk_size: int = 1000) -> AsyncResult[Row[_TP]]: ...
    @overload
    async def stream(self, statement: ClauseElement, params: dict[str, Any] | None = None,
                     chunk_size: int = 1000) -> AsyncResult[Row[Any]]: ...
    async def stream(self, statement: ClauseElement, params: dict[str, Any] | None = None,
                     chunk_size: int = 1000) -> AsyncResult[Row[Any]]:
        """Rows fetched in chunks (a server-side cursor on PostgreSQL) as you iterate."""
        return await _execute.stream(self, statement, params, chunk_size)

    @overload
    async def stream_scalars(self, statement: Select[tuple[T]] | CompoundSelect[tuple[T]],
                             params: dict[str, Any] | None = None, chunk_size: int = 1000) -> AsyncResult[T]: ...
    @overload
    async def stream_scalars(self, statement: ClauseElement, params: dict[str, Any] | None = None,
                             chunk_size: int = 1000) -> AsyncResult[Any]: ...
    async def stream_scalars(self, statement: ClauseElement, params: dict[str, Any] | None = None,
                             chunk_size: int = 1000) -> AsyncResult[Any]:
        """``(await stream(statement)).scalars()``."""
        return (await self.stream(statement, params, chunk_size)).scalars()

    # -- get ------------------------------------------------------------------------
    async def get(self, entity: type[T], ident: Any, *, populate_existing: bool = False,
                  with_for_update: bool = False, options: Sequence[Any] = ()) -> T | None:
        """The object with this primary key, or None if there is no such row.

        It comes from the identity map without SQL when it is there (and not expired); else it is
        loaded.
        """
        mapper = lifecycle.mapper_of_class(entity, "get")
        pk = mapper.identity_from_pk(ident)
        with self._guard:
            obj: T | None = await _execute.get(self, mapper, pk, populate_existing, with_for_update, options)
        return obj

    async def get_one(self, entity: type[T], ident: Any, **kw: Any) -> T:
        """Like ``get()``, but raise ``NoResultFound`` when there is no such row."""
        obj = await self.get(entity, ident, **kw)
        if obj is None:
            raise exc.NoResultFound(f"no {entity.__name__} with primary key {ident!r}")
        return obj

    # -- merge / is_modified ------------------------------------------------------------
    async def merge(self, obj: T, load: bool = True) -> T:
        """Copy the state of ``obj`` onto the object this session holds for its primary key.

        That object is loaded if the identity map does not hold it, or created, and returned.
        Relationships with the ``merge`` cascade are merged too.  An identity the map holds is
        never queried for; ``merge_all()`` merges many objects with their misses loaded together.
        """
        with self._guard:
            merged: T = await lifecycle.merge(self, obj, load, {})
        return merged

    async def merge_all(self, objs: Iterable[T], load: bool = True) -> list[T]:
        """``merge()`` each object, in order, with the database work batched.

        Returns the merged objects in input order.  The primary keys the identity map does not hold (among the
        inputs and what their ``merge`` cascade reaches) are loaded in one SELECT per model and
        chunk of keys, and the collections the merge replaces in one query per relationship,
        where a loop of ``merge()`` sends one SELECT per missing object.  Duplicates, objects
        without a key (they become pending), ``load=False`` and errors behave as in that loop;
        an input that is not a mapped object raises ``ArgumentError`` before anything is merged."""
        with self._guard:
            merged: list[T] = await lifecycle.merge_all(self, objs, load)
        return merged

    def is_modified(self, obj: Any) -> bool:
        """Whether the object has net attribute changes not yet flushed."""
        return lifecycle.is_modified(obj)

    # -- explicit loading (relationships) ----------------------------------------------
    @overload
    async def load(self, obj: object, attribute: Relationship[T]) -> T: ...
    @overload
    async def load(self, obj: object, attribute: str) -> Any: ...
    # plain annotations (`posts: list[Post]`, `author: User`): the checker sees User.posts as the
    # annotated type itself
    @overload
    async def load(self, obj: object, attribute: list[T]) -> list[T]: ...
    @overload
    async def load(self, obj: object, attribute: Model | None) -> Any: ...
    async def load(self, obj: object, attribute: RelationshipArg | str) -> Any:
        """Load a relationship of ``obj`` (``"posts"`` or ``User.posts``) and return its value."""
        return await session_load(self, obj, attribute)

    async def load_all(self, objs: Sequence[object], attribute: RelationshipArg | str) -> None:
        """Load one relationship for many objects in one query per chunk."""
        await session_load_all(self, objs, attribute)

    def __repr__(self) -> str:
        return f"<AsyncSession {self._state.value} new={len(self._new)} held={len(self.identity_map)}>"
