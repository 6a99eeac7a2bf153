"""``AsyncSession``: identity map, unit of work and transaction, with SQLAlchemy's semantics.

Book-keeping, in a few dicts keyed by ``id(obj)`` (objects need not be
hashable): ``_new`` (pending), ``_modified`` (persistent with attribute
changes), ``_deleted`` (marked by ``delete()``, not flushed yet), plus the
identity map ``_imap`` (``{mapper: {pk: obj}}``) and the transaction levels
(see ``transaction.py``).  Nothing touches the database until an operation
needs it; the connection is checked out then and returned at the end of the
transaction.

Every public operation records the task running it; another task using the
session meanwhile gets ``ConcurrentSessionUseError`` (one attribute test on
the hot path).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import repeat
from types import TracebackType
from typing import Any, TypeVar, overload

import anyio

from .. import exc
from .._gc import GC_PAUSE_MIN, gc_paused
from ..engine.base import Connection, Engine, Transaction, _interrupted, _process
from ..engine.result import AsyncResult, Result, Row, ScalarResult, make_row_class
from ..loading.rows import instances
from ..mapping import state as _state
from ..mapping.mapper import Mapper
from ..mapping.relationships import MANYTOONE, Relationship
from ..mapping.state import (
    DELETED,
    DETACHED,
    NO_VALUE,
    PENDING,
    PERSISTENT,
    TRANSIENT,
    InstanceState,
    _same,
    state_of,
    status_of,
)
from ..sql.dml import Delete, DMLStatement, Update
from ..sql.elements import BindParameter, ClauseElement, and_, or_
from ..sql.selectable import Select
from .dependency import compute_sync
from .identity import IdentityMapView, IdentitySet, SessionToken
from .persistence import execute_plan
from .transaction import ALL_ROWS, ANY_TABLE, NEW_ROWS, TxLevel, TxState, check_transition
from .unitofwork import AssocBatch, DeleteBatch, FlushPlan, InsertBatch, ParentGone, UpdateBatch, plan_flush

T = TypeVar("T")
_TP = TypeVar("_TP", bound=tuple[Any, ...])

_set_slot = _state._set_slot


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


def _mapper_of_instance(obj: Any, op: str) -> Mapper:
    mapper = getattr(type(obj), "__aiouow_mapper__", None)
    if not isinstance(mapper, Mapper):
        raise exc.ArgumentError(f"session.{op}() takes a mapped object (a Model instance), not {obj!r}")
    return mapper


def _mapper_of_class(entity: Any, op: str) -> Mapper:
    mapper = getattr(entity, "__aiouow_mapper__", None) if isinstance(entity, type) else None
    if not isinstance(mapper, Mapper):
        raise exc.ArgumentError(f"session.{op}() takes a mapped model class, not {entity!r}")
    return mapper


def _cascading(mapper: Mapper, word: str) -> tuple[Any, ...]:
    """The mapper's relationships that cascade ``word`` (cached)."""
    key = ("cascading", word)
    rels = mapper.cache.get(key)
    if rels is None:
        rels = mapper.cache[key] = tuple(r for r in mapper.relationships.values() if word in r.cascade)
    return rels  # type: ignore[no-any-return]


def _related(obj: Any, mapper: Mapper, word: str) -> Iterator[Any]:
    """Loaded related objects reached through relationships cascading ``word``."""
    d = obj.__dict__
    for rel in _cascading(mapper, word):
        if rel.key in d:
            value = d[rel.key]
            if value is None:
                continue
            if isinstance(value, list):
                yield from list(value)
            else:
                yield value


def _fill_unset_relationships(obj: Any, d: dict[str, Any], rels: dict[str, Any]) -> None:
    """A row just inserted: relationships never set stay loaded, empty (API.md section 9); a
    many-to-one whose foreign key was set by hand stays unloaded, for an explicit load."""
    for key, rel in rels.items():
        if key in d:
            continue
        if rel.uselist:
            d[key] = rel.empty_value(obj)
        elif rel.direction != MANYTOONE or all(d.get(local.key) is None for local, _ in rel.pairs):
            d[key] = None


def _describe(obj: Any) -> str:
    mapper = type(obj).__aiouow_mapper__
    d = obj.__dict__
    return f"{type(obj).__name__}({', '.join(f'{k}={d.get(k)!r}' for k in mapper.pk_keys)})"


def _with_cascades(tables: set[Any]) -> set[Any]:
    """``tables`` plus those the database changes along with them (ON DELETE / ON UPDATE actions)."""
    out = set(tables)
    todo = [t for t in tables if t is not ANY_TABLE]
    while todo:
        target = todo.pop()
        for table in target.metadata.tables.values():
            if table not in out and any((fk.ondelete or fk.onupdate) and fk.column.table is target
                                        for fk in table.foreign_keys):
                out.add(table)
                todo.append(table)
    return out


class AsyncSession:
    """A unit of work against one engine: ``async with AsyncSession(engine) as session:``.

    ``expire_on_commit``, ``autoflush`` and ``autobegin`` mean what they mean in
    SQLAlchemy.  Loading is always explicit: reading an unloaded attribute raises
    ``NotLoadedError`` and never does I/O.
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
    ) -> None:
        if bind is not None and not isinstance(bind, (Engine, Connection)):
            raise exc.ArgumentError(f"AsyncSession() takes an Engine (or a Connection), not {bind!r}")
        self.bind = bind
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
        self._owner: asyncio.Task[Any] | None = None
        self._depth = 0

    # -- one task at a time ------------------------------------------------------
    def _enter(self) -> None:
        task = _current_task()
        owner = self._owner
        if owner is None:
            self._owner = task
            self._depth = 1
        elif owner is task:
            self._depth += 1
        else:
            raise self._concurrent(owner, task)

    def _leave(self) -> None:
        self._depth -= 1
        if self._depth <= 0:
            self._owner = None
            self._depth = 0

    def _check_sync(self) -> None:
        owner = self._owner
        if owner is not None:
            task = _current_task()
            if owner is not task:
                raise self._concurrent(owner, task)

    def _concurrent(self, owner: Any, task: Any) -> exc.ConcurrentSessionUseError:
        def name(t: Any) -> str:
            return t.get_name() if t is not None else "<no task>"

        return exc.ConcurrentSessionUseError(
            f"this AsyncSession is in use by task {name(owner)!r} while task {name(task)!r} tried to use it; "
            "a session belongs to one task at a time: give each task its own session "
            "(scoped_session / sessionmaker), or await the first operation before starting the next"
        )

    # -- transaction state ---------------------------------------------------------
    def _transition(self, new: TxState) -> None:
        check_transition(self._state, new)
        self._state = new

    def _autobegin(self) -> None:
        if self._state is TxState.IDLE:
            if not self.autobegin:
                raise exc.InvalidRequestError(
                    "this session has autobegin=False and no transaction; call session.begin() first"
                )
            self._transition(TxState.ACTIVE)
            self._levels.append(TxLevel(None))

    def _require_usable(self) -> None:
        conn = self._conn
        if conn is not None and conn._lost is not None and self._state is not TxState.FAILED:
            # an operation was cancelled mid-statement: the connection rolled back and went back
            # to the pool; the rest of this unit of work must not run in a fresh transaction
            self._failure = conn._lost
            self._state = TxState.FAILED
            if not isinstance(self.bind, Connection):
                self._conn = None
        if self._state is TxState.FAILED:
            raise exc.PendingRollbackError(
                "this session's transaction was rolled back because of an error during flush "
                "(or an operation cancelled before it finished) "
                f"({type(self._failure).__name__}: {self._failure}); call `await session.rollback()` "
                "(or leave the begin_nested() block) before using the database again",
                self._failure,
            )
        if self._state is TxState.COMMITTING:
            raise exc.InvalidRequestError("the session is committing; wait for commit() to finish")

    async def _connection(self) -> Connection:
        conn = self._conn
        if conn is None:
            # whatever needs the database runs in the session's transaction
            self._autobegin()
            bind = self.bind
            if bind is None:
                raise exc.InvalidRequestError(
                    "this session has no engine: AsyncSession(engine) or sessionmaker(engine)"
                )
            if isinstance(bind, Connection):
                conn = bind
                if self.join_transaction_mode == "create_savepoint":
                    self._outer_tx = conn.begin_nested()
                    await self._outer_tx._start()
            else:
                conn = Connection(bind)
            self._conn = conn
        return conn

    async def _ready(self) -> Connection:
        """Before an operation that needs the database: usable, in a transaction, flushed."""
        self._require_usable()
        self._autobegin()
        await self._autoflush()
        return await self._connection()

    async def connection(self) -> Connection:
        """The connection of the current transaction (checked out if needed)."""
        self._enter()
        try:
            self._require_usable()
            self._autobegin()
            return await self._connection()
        finally:
            self._leave()

    async def _end_db_transaction(self, commit: bool) -> None:
        """Commit or roll back the database transaction and give the connection back."""
        conn = self._conn
        if conn is None:
            return
        outer = self._outer_tx
        try:
            if isinstance(self.bind, Connection):
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
            self._outer_tx = None
            if not isinstance(self.bind, Connection):
                self._conn = None
                await conn._release()
            else:
                self._conn = None

    async def _fail(self, err: BaseException) -> None:
        """A flush failed (or was cancelled): roll the database back (shielded) and require rollback().

        A cancellation arriving meanwhile propagates once the rollback is done."""
        level = self._levels[-1] if self._levels else None
        self._failure = err
        self._state = TxState.FAILED
        with anyio.CancelScope(shield=True):
            # a cancelled statement took the whole transaction with it, not just the SAVEPOINT
            if level is not None and level.nested and self._conn is not None and not _interrupted(err):
                try:
                    await self._conn._rollback_to_savepoint(level.savepoint.savepoint)
                    level.failed = err
                    return
                except Exception:
                    pass
            try:
                await self._rollback_db()
            except Exception:
                pass

    async def _rollback_db(self) -> None:
        if self._conn is None:
            return
        with anyio.CancelScope(shield=True):
            conn = self._conn
            if conn is None:
                return
            try:
                if isinstance(self.bind, Connection):
                    await self._end_db_transaction(commit=False)
                else:
                    self._conn = None
                    await conn._release()
            except Exception:
                self._conn = None
            except BaseException:  # a cancellation, raised after the rollback ran to its end
                self._conn = None
                raise

    # -- identity map -----------------------------------------------------------------
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
            self._autobegin()

    def _forget_modified(self, obj: Any) -> None:
        self._modified.pop(id(obj), None)

    def _expire_reason_for(self, obj: Any) -> str | None:
        return self._expire_reasons.get(id(obj), self._expire_all_reason)

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
            st = _state.raw_state(obj)
        except (AttributeError, TypeError):
            return False
        if st.__class__ is InstanceState:
            return st.session_ref is self._token and st.status in (PENDING, PERSISTENT)
        return st is self._token

    def __iter__(self) -> Iterator[Any]:
        yield from list(self._new.values())
        for m in list(self._imap.values()):
            yield from list(m.values())

    @property
    def is_active(self) -> bool:
        """False only while a failed flush awaits ``rollback()``."""
        return self._state is not TxState.FAILED

    def in_transaction(self) -> bool:
        return self._state is not TxState.IDLE

    def in_nested_transaction(self) -> bool:
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
        self._check_sync()
        self._add(obj)

    def add_all(self, objs: Iterable[Any]) -> None:
        """``add()`` each object."""
        self._check_sync()
        add = self._add
        for obj in objs:
            add(obj)

    def _add(self, obj: Any) -> None:
        mapper = _mapper_of_instance(obj, "add")
        st = state_of(obj)
        status = st.status
        other = st.session
        if other is not None and other is not self:
            raise self._foreign(obj)
        if status == PERSISTENT or status == PENDING:
            self._deleted.pop(id(obj), None)  # as in SQLAlchemy: add() cancels a delete() not yet flushed
            return
        if status == TRANSIENT:
            self._autobegin()
            pk = mapper.pk_of(obj.__dict__)
            if pk is not None and not (isinstance(pk, tuple) and None in pk):
                existing = self._identity_for(mapper).get(pk)
                if existing is not None and existing is not obj:
                    raise exc.InvalidRequestError(
                        f"cannot add {_describe(obj)}: this session already holds {_describe(existing)} with "
                        "the same primary key; modify that object, or use `await session.merge(obj)`"
                    )
            st.status = PENDING
            st.session_ref = self._token
            oid = id(obj)
            self._new[oid] = obj
            self._levels[-1].added[oid] = obj
        elif status == DETACHED:
            self._autobegin()
            self._attach(obj, st, mapper)
        else:
            raise exc.InvalidRequestError(
                f"{_describe(obj)} was deleted in this transaction; it cannot be added back until the "
                "transaction ends (after rollback() it is persistent again)"
            )
        for rel in _cascading(mapper, "save-update"):
            value = obj.__dict__.get(rel.key)
            if value is None:
                continue
            for item in (list(value) if isinstance(value, list) else (value,)):
                if status_of(item) in (TRANSIENT, DETACHED):
                    self._add(item)

    def _foreign(self, obj: Any) -> exc.InvalidRequestError:
        return exc.InvalidRequestError(
            f"{_describe(obj)} is already attached to another session; expunge it from that session "
            "first, or copy it into this one with `await session.merge(obj)`"
        )

    def _attach(self, obj: Any, st: InstanceState, mapper: Mapper) -> None:
        key = st.key if st.key is not None else mapper.pk_of(obj.__dict__)
        imap = self._identity_for(mapper)
        existing = imap.get(key)
        if existing is not None and existing is not obj:
            raise exc.InvalidRequestError(
                f"cannot attach {_describe(obj)}: this session already holds another object with that "
                "primary key; use `obj = await session.merge(obj)` instead"
            )
        st.key = key
        imap[key] = obj
        st.status = PERSISTENT
        st.session_ref = self._token
        if st.committed is not None or st.rel_committed is not None:
            self._modified[id(obj)] = obj

    async def delete(self, obj: Any) -> None:
        """Mark a persistent object for deletion at the next flush."""
        self._check_sync()
        mapper = _mapper_of_instance(obj, "delete")
        if _state.raw_state(obj) is self._token and not _cascading(mapper, "delete"):
            # clean, persistent in this session, no relationship to walk: the common case; it
            # never awaits, so like add() it checks the task without holding the session
            self._autobegin()
            self._deleted[id(obj)] = obj
            return
        self._enter()
        try:
            self._check_deletable(obj)
            targets = await self._delete_cascade([obj])
            for item in targets.values():
                if item is not obj:
                    self._check_deletable(item)
                self._deleted[id(item)] = item
        finally:
            self._leave()

    async def _delete_cascade(self, roots: list[Any]) -> dict[int, Any]:
        """The roots and what the delete cascade reaches from them, loading what it needs in one
        query per relationship and level."""
        targets = {id(o): o for o in roots}
        frontier = list(roots)
        while frontier:
            await self._load_for_cascade(frontier, "delete")
            nxt = []
            for o in frontier:
                for item in _related(o, type(o).__aiouow_mapper__, "delete"):
                    if id(item) not in targets and status_of(item) in (PERSISTENT, DETACHED):
                        targets[id(item)] = item
                        nxt.append(item)
            frontier = nxt
        return targets

    async def _load_for_cascade(self, objs: list[Any], word: str) -> None:
        """Load, in one query per relationship, what a cascade needs and is not loaded."""
        by_mapper: dict[Mapper, list[Any]] = {}
        for o in objs:
            by_mapper.setdefault(type(o).__aiouow_mapper__, []).append(o)
        for mapper, group in by_mapper.items():
            for rel in mapper.relationships.values():
                if word not in rel.cascade or rel.viewonly or rel.passive_deletes:
                    continue
                missing = [o for o in group if rel.key not in o.__dict__ and status_of(o) == PERSISTENT]
                if missing:
                    await self._load_relationship(missing, rel)

    def _check_deletable(self, obj: Any) -> None:
        mapper = _mapper_of_instance(obj, "delete")
        st = state_of(obj)
        if st.status == TRANSIENT or st.status == PENDING:
            raise exc.InvalidRequestError(
                f"{_describe(obj)} is not persisted ({st.status_name}); to discard a pending object use "
                "session.expunge(obj)"
            )
        other = st.session
        if other is not None and other is not self:
            raise exc.InvalidRequestError(f"{_describe(obj)} belongs to another session")
        self._autobegin()
        if st.status == DETACHED:
            self._attach(obj, st, mapper)

    def expunge(self, obj: Any) -> None:
        """Remove an object from the session (pending -> transient, persistent -> detached)."""
        self._check_sync()
        mapper = _mapper_of_instance(obj, "expunge")
        if obj not in self:
            raise exc.InvalidRequestError(f"{_describe(obj)} is not present in this session")
        st = state_of(obj)
        oid = id(obj)
        self._new.pop(oid, None)
        self._modified.pop(oid, None)
        self._deleted.pop(oid, None)
        self._expire_reasons.pop(oid, None)
        for level in self._levels:
            level.added.pop(oid, None)
        cascade = list(_related(obj, mapper, "expunge"))
        if st.status == PENDING:
            st.status = TRANSIENT
        else:
            imap = self._imap.get(mapper)
            key = st.key if st.key is not None else mapper.pk_of(obj.__dict__)
            if imap is not None and imap.get(key) is obj:
                del imap[key]
            st.status = DETACHED
        st.session_ref = None
        for item in cascade:
            if item in self:
                self.expunge(item)

    def expunge_all(self) -> None:
        """Remove every object from the session."""
        self._check_sync()
        self._detach_all()

    def _detach_all(self) -> None:
        for obj in self._new.values():
            st = state_of(obj)
            st.status = TRANSIENT
            st.session_ref = None
        # clean objects hold the token, deactivated below; only full states need updating
        for m in self._imap.values():
            for st in map(_state._get_slot, m.values()):
                if st.__class__ is InstanceState:
                    st.status = DETACHED
                    st.session_ref = None
        for level in self._levels:
            for obj in level.removed.values():
                st = state_of(obj)
                st.status = DETACHED
                st.session_ref = None
        self._token.active = False
        self._token = SessionToken(self._ref)
        self._imap = {}
        self._new = {}
        self._modified = {}
        self._deleted = {}
        self._expire_reasons = {}
        self._expire_all_reason = None
        for level in self._levels:
            level.added.clear()
            level.inserted.clear()
            level.updated.clear()
            level.removed.clear()
            level.key_switches.clear()
            level.loaded_new.clear()
            level.loaded.clear()

    # -- expire / refresh -----------------------------------------------------------
    def _expire_obj(self, obj: Any, mapper: Mapper, names: Iterable[str] | None) -> None:
        d = obj.__dict__
        pk = mapper.pk_keys
        keys = mapper.attrs if names is None else names
        for k in keys:
            if k not in pk:
                d.pop(k, None)
        st = _state.raw_state(obj)
        if st.__class__ is InstanceState:
            if names is None:
                st.committed = None
                st.rel_committed = None
            else:
                for k in names:
                    if st.committed:
                        st.committed.pop(k, None)
                    if st.rel_committed:
                        st.rel_committed.pop(k, None)
                if not st.committed:
                    st.committed = None
                if not st.rel_committed:
                    st.rel_committed = None
            if st.committed is None and st.rel_committed is None:
                self._modified.pop(id(obj), None)

    def _check_persistent(self, obj: Any, op: str) -> tuple[Mapper, InstanceState]:
        mapper = _mapper_of_instance(obj, op)
        st = state_of(obj)
        if st.status != PERSISTENT or st.session is not self:
            raise exc.InvalidRequestError(
                f"session.{op}() needs an object persistent in this session; {_describe(obj)} is "
                f"{st.status_name}{'' if st.session in (None, self) else ' in another session'}"
            )
        return mapper, st

    def _check_names(self, mapper: Mapper, names: Iterable[str], op: str) -> list[str]:
        out = []
        for n in names:
            if n not in mapper.attrs:
                raise exc.ArgumentError(
                    f"session.{op}(): {mapper.class_.__name__} has no mapped attribute {n!r}; "
                    f"attributes: {', '.join(mapper.attrs)}"
                )
            out.append(n)
        return out

    def expire(self, obj: Any, attribute_names: Iterable[str] | None = None) -> None:
        """Forget loaded values (all, or the named ones); reading them then raises NotLoadedError."""
        self._check_sync()
        mapper, st = self._check_persistent(obj, "expire")
        names = None if attribute_names is None else self._check_names(mapper, attribute_names, "expire")
        related = list(_related(obj, mapper, "refresh-expire")) if names is None else []
        self._expire_obj(obj, mapper, names)
        self._expire_reasons[id(obj)] = "session.expire()"
        for item in related:
            if item in self and status_of(item) == PERSISTENT:
                self._expire_obj(item, type(item).__aiouow_mapper__, None)
                self._expire_reasons[id(item)] = "session.expire() (refresh-expire cascade)"

    def expire_all(self) -> None:
        """Expire every persistent object in the session."""
        self._check_sync()
        self._expire_everything("session.expire_all()")

    def _expire_everything(self, reason: str) -> None:
        for mapper, objs in self._imap.items():
            keys = mapper.expire_keys
            for obj in objs.values():
                pop = obj.__dict__.pop
                for k in keys:
                    pop(k, None)
                st = _state.raw_state(obj)
                if st.__class__ is InstanceState:
                    st.committed = None
                    st.rel_committed = None
        self._modified = {k: o for k, o in self._modified.items() if status_of(o) != PERSISTENT}
        self._expire_reasons = {}
        self._expire_all_reason = reason

    async def refresh(self, obj: Any, attribute_names: Iterable[str] | None = None,
                      with_for_update: bool = False) -> None:
        """Reload attributes (all, or the named ones, relationships included) from the database."""
        self._enter()
        try:
            mapper, st = self._check_persistent(obj, "refresh")
            names = None if attribute_names is None else self._check_names(mapper, attribute_names, "refresh")
            self._require_usable()
            if names is None:
                # SQLAlchemy: the whole object expires first, relationships included, and the expiry
                # cascades along refresh-expire (those objects are expired, not reloaded)
                for item in list(_related(obj, mapper, "refresh-expire")):
                    if item in self and status_of(item) == PERSISTENT:
                        self._expire_obj(item, type(item).__aiouow_mapper__, None)
                        self._expire_reasons[id(item)] = "session.refresh() (refresh-expire cascade)"
                if mapper.relationships:
                    self._expire_obj(obj, mapper, list(mapper.relationships))
                    self._expire_reasons[id(obj)] = "session.refresh()"
            # no autoflush: refreshing discards the object's unflushed changes (SQLAlchemy)
            col_names = [n for n in (names or mapper.column_keys) if n in mapper.columns]
            rel_names = [n for n in (names or ()) if n in mapper.relationships]
            if col_names or names is None:
                row = await self._select_by_pk(mapper, st.key if st.key is not None else mapper.pk_of(obj.__dict__),
                                               with_for_update)
                if row is None:
                    raise exc.ObjectDeletedError(
                        f"cannot refresh {_describe(obj)}: its row no longer exists in the database"
                    )
                d = obj.__dict__
                for k, v in zip(mapper.column_keys, row):
                    if names is None or k in col_names:
                        d[k] = v
                self._expire_obj_history(obj, col_names if names is not None else None)
                self._note_loaded((obj,))
            for rel in rel_names:
                await self._load_relationship([obj], mapper.relationships[rel], refresh=True)
        finally:
            self._leave()

    def _expire_obj_history(self, obj: Any, names: list[str] | None) -> None:
        st = _state.raw_state(obj)
        if st.__class__ is InstanceState and st.committed is not None:
            if names is None:
                st.committed = None
            else:
                for n in names:
                    st.committed.pop(n, None)
                if not st.committed:
                    st.committed = None
            if st.committed is None and st.rel_committed is None:
                self._modified.pop(id(obj), None)

    async def _load_relationship(self, objs: list[Any], rel: Any, refresh: bool = False) -> None:
        from ..loading.explicit import load_relationship

        await load_relationship(self, objs, rel, refresh=refresh)

    # -- flush ----------------------------------------------------------------------
    async def flush(self) -> None:
        """Write pending changes to the database (in the current transaction)."""
        self._enter()
        try:
            await self._flush()
        finally:
            self._leave()

    async def _autoflush(self) -> None:
        if self.autoflush and not self._no_autoflush and (self._new or self._modified or self._deleted):
            await self._flush()

    def _has_changes(self) -> bool:
        return bool(self._new or self._modified or self._deleted)

    async def _flush(self) -> None:
        if not (self._new or self._modified or self._deleted):
            return
        self._require_usable()
        self._autobegin()
        deleted = self._deleted
        modified = [o for k, o in self._modified.items() if k not in deleted]
        new = list(self._new.values())
        dels = list(deleted.values())
        # The collector stays paused across the statements too: a large flush allocates its
        # parameters in bursts between awaits, and a collection there rescanned every object
        # being flushed.  The plan and its rows die with _write's frame, before the collector
        # runs again, so its first collection afterwards does not scan them either.  A large
        # flush takes its connection first, so that a wait for the pool is not spent paused.
        size = len(new) + len(modified) + len(dels)
        if size >= GC_PAUSE_MIN:
            await (await self._connection()).acquire()
        with gc_paused(size):
            await self._write(new, modified, dels)

    async def _write(self, new: list[Any], modified: list[Any], dels: list[Any]) -> None:
        deleted = self._deleted
        sync = compute_sync(new, modified, dels)
        if sync.orphans:
            # an orphan is deleted as by delete(): the delete cascade goes on from it (SQLAlchemy)
            try:
                deleted.update(await self._delete_cascade(list(sync.orphans.values())))
            except BaseException as err:
                await self._fail(err)
                raise
            modified = [o for k, o in self._modified.items() if k not in deleted]
            dels = list(deleted.values())
            sync = compute_sync(new, modified, dels)
        plan = plan_flush(new, modified, dels, sync)
        for obj in sync.drop_pending.values():
            self._to_transient(obj)
        if not plan.steps:
            self._apply(plan, {})
            return
        conn = await self._connection()
        try:
            outcome = await execute_plan(conn, plan)
        except BaseException as err:
            await self._fail(err)
            raise
        self._apply(plan, outcome.generated)

    def _apply(self, plan: FlushPlan, generated: dict[int, list[Any]]) -> None:
        """Bring objects and book-keeping in line with a successful flush."""
        level = self._levels[-1]
        token = self._token
        set_slot = _state._set_slot
        # a SAVEPOINT notes the tables it wrote: what it loads afterwards may show its own rows
        written = level.written if level.parent is not None else None
        for i, step in enumerate(plan.steps):
            if isinstance(step, ParentGone):
                if written is not None:
                    table = step.rel.secondary if step.purge else step.rel.mapper.table
                    written.add(table)
                    if not step.purge:  # a bulk SET NULL, on rows not all held: any may be loaded later
                        level.rewritten.setdefault(table, set()).add(ALL_ROWS)
                if not step.purge:
                    self._unparent_children(step, level)
                continue
            if isinstance(step, AssocBatch):
                if written is not None:
                    written.add(step.table)
                continue
            mapper = step.mapper
            if written is not None:
                written.add(mapper.table)
            imap = self._identity_for(mapper)
            if isinstance(step, InsertBatch):
                ids = generated.get(i)
                auto = mapper.autoincrement_key
                keys = step.keys
                rels = mapper.relationships
                rel_keys = rels.keys()
                new = self._new
                inserted = level.inserted
                for obj, row, ident in zip(step.objs, step.rows, ids if ids is not None else repeat(None)):
                    d = obj.__dict__
                    if ident is not None:
                        # the generated key is the identity (a table with one has a one-column key)
                        d[auto] = ident  # type: ignore[index]
                        d.update(zip(keys, row))
                    else:
                        d.update(zip(keys, row))
                        ident = mapper.pk_of(d)
                    if rels and not d.keys() >= rel_keys:
                        _fill_unset_relationships(obj, d, rels)
                    oid = id(obj)
                    imap[ident] = obj
                    del new[oid]
                    inserted[oid] = obj
                    set_slot(obj, token)
            elif isinstance(step, UpdateBatch):
                vk = mapper.version_key
                keys, mode = step.keys, step.version_mode
                # the identity changes only when the UPDATE writes a primary-key column
                moves = any(k in mapper.pk_keys for k in keys)
                modified, updated = self._modified, level.updated
                get_slot = _state._get_slot
                for j, (obj, row) in enumerate(zip(step.objs, step.rows)):
                    d = obj.__dict__
                    d.update(zip(keys, row))
                    st = get_slot(obj)
                    if mode == "check":
                        d[vk] = step.old_versions[j] + 1
                    elif mode == "bump":
                        d.pop(vk, None)  # the database incremented a value we never loaded
                    full = st.__class__ is InstanceState
                    if moves or not full or st.key is None:
                        new_pk = mapper.pk_of(d)
                        old_pk = st.key if full and st.key is not None else new_pk
                        if new_pk != old_pk:
                            if imap.get(old_pk) is obj:
                                del imap[old_pk]
                            imap[new_pk] = obj
                            level.key_switches.setdefault(id(obj), (obj, old_pk))  # for a rollback
                    else:
                        new_pk = st.key
                    oid = id(obj)
                    modified.pop(oid, None)
                    updated[oid] = obj
                    if full:
                        st.committed = None
                        st.rel_committed = None
                        st.key = new_pk
                        if st.expired_by is None:
                            set_slot(obj, token)
            else:
                assert isinstance(step, DeleteBatch)
                single = len(mapper.pk_keys) == 1
                deleted, modified, removed = self._deleted, self._modified, level.removed
                get_slot = _state._get_slot  # raw_state() without a Python call per object
                for obj, pk in zip(step.objs, step.pks):
                    key = pk[0] if single else pk  # the identity the plan deleted by
                    st = get_slot(obj)
                    if st is token:  # the compact state (clean, persistent here): promote it directly
                        set_slot(obj, InstanceState(mapper, DELETED, key, token))
                    else:
                        st = state_of(obj)
                        st.status = DELETED
                        st.key = key
                    if imap.get(key) is obj:
                        del imap[key]
                    oid = id(obj)
                    deleted.pop(oid, None)
                    modified.pop(oid, None)
                    removed[oid] = obj
        updated = level.updated
        for obj in plan.unchanged:
            st = _state.raw_state(obj)
            if st.__class__ is InstanceState:
                st.committed = None
                st.rel_committed = None
            oid = id(obj)
            self._modified.pop(oid, None)
            # no UPDATE, but its relationship changes were flushed (association rows, the other
            # side's foreign keys): a SAVEPOINT rollback must expire it as well
            updated[oid] = obj

    def _unparent_children(self, step: ParentGone, level: TxLevel) -> None:
        """Mirror a bulk ``SET fk = NULL`` on the children this session holds."""
        rel = step.rel
        parent_col, child_col = rel.pairs[0]
        gone = {p.__dict__.get(parent_col.key) for p in step.parents}
        objs = self._imap.get(rel.mapper)
        if not objs:
            return
        back = rel.back
        for child in objs.values():
            d = child.__dict__
            if d.get(child_col.key) in gone:
                d[child_col.key] = None
                if back is not None and back.key in d and not back.uselist:
                    d[back.key] = None
                level.updated[id(child)] = child  # changed by the flush: a SAVEPOINT rollback expires it

    # -- commit / rollback / close -----------------------------------------------------
    def begin(self) -> SessionTransaction:
        """Begin a transaction explicitly: ``async with session.begin():`` commits on success,
        rolls back on error."""
        self._check_sync()
        if self._state is not TxState.IDLE:
            raise exc.InvalidRequestError(
                "a transaction is already begun on this session (autobegin starts one at the first "
                "operation); end it with commit() or rollback(), or use begin_nested() for a SAVEPOINT"
            )
        self._transition(TxState.ACTIVE)
        level = TxLevel(None)
        self._levels.append(level)
        return SessionTransaction(self, level)

    def begin_nested(self) -> NestedTransaction:
        """A SAVEPOINT: ``async with session.begin_nested():`` releases it on success and rolls
        back to it (only the work since, in the database and in the identity map) on error."""
        self._check_sync()
        return NestedTransaction(self)

    async def commit(self) -> None:
        """Flush, commit, and (with expire_on_commit) expire every object."""
        self._enter()
        try:
            if self._state is TxState.IDLE:
                if not self._has_changes():
                    return
                self._autobegin()  # changes made since the last commit still need one
            self._require_usable()
            await self._flush()
            self._transition(TxState.COMMITTING)
            try:
                await self._end_db_transaction(commit=True)
            except BaseException as err:
                self._state = TxState.ACTIVE
                await self._fail(err)
                raise
            self._after_commit()
            self._transition(TxState.IDLE)
        finally:
            self._leave()

    def _after_commit(self) -> None:
        for level in self._levels:
            level.closed = True
            for obj in level.removed.values():
                st = _state._get_slot(obj)  # a full state (promoted when deleted), read without a call
                if st.__class__ is not InstanceState:
                    st = state_of(obj)
                st.status = DETACHED
                st.session_ref = None
        self._levels = []
        self._failure = None
        if self.expire_on_commit:
            self._expire_everything("commit()")

    async def rollback(self) -> None:
        """Roll back the whole transaction: pending objects are expunged, deleted ones restored,
        persistent ones expired."""
        self._enter()
        try:
            if self._state is TxState.IDLE:
                return
            try:
                await self._rollback_db()
            finally:  # also when cancelled meanwhile: the database side is rolled back by then
                self._restore(self._levels, whole=True)
                self._end_levels()
        finally:
            self._leave()

    def _end_levels(self) -> None:
        """The transaction and its SAVEPOINTs are over (rolled back or closed)."""
        for level in self._levels:
            level.closed = True
        self._levels = []
        self._failure = None
        self._state = TxState.IDLE

    def _restore(self, levels: Sequence[TxLevel], whole: bool) -> None:
        """Undo the in-memory effects of the given transaction levels."""
        gone = {id(o): o for level in levels for o in (*level.inserted.values(), *level.added.values())}
        switches: dict[int, tuple[Any, Any]] = {}
        for level in levels:  # outermost first: the key from before all the work undone
            for oid, switch in level.key_switches.items():
                switches.setdefault(oid, switch)
        for oid, (obj, old_key) in switches.items():
            if oid not in gone:
                self._restore_key(obj, old_key)
        for obj in gone.values():
            self._to_transient(obj)
        for level in levels:
            for oid, obj in level.removed.items():
                if oid in gone:
                    continue  # inserted and deleted within the work undone: transient, not restored
                mapper = type(obj).__aiouow_mapper__
                st = state_of(obj)
                st.status = PERSISTENT
                st.session_ref = self._token
                self._identity_for(mapper)[st.key] = obj
                if st.committed is not None or st.rel_committed is not None:  # changed before its delete
                    self._expire_obj(obj, mapper, None)
                    self._expire_reasons[oid] = "rollback()" if whole else "rollback of a SAVEPOINT"
        if whole:
            for obj in list(self._new.values()):
                self._to_transient(obj)
            self._deleted = {}
            self._expire_everything("rollback()")
        else:
            # begin_nested() flushed first, so every delete() not yet flushed came after the
            # SAVEPOINT, and every change held in memory was made inside it; as in SQLAlchemy,
            # what it changed is expired, not restored (both sides of a relationship were noted
            # as changed by the back_populates sync, flushed or not)
            self._deleted = {}
            reason = "rollback of a SAVEPOINT"
            for level in levels:
                for obj in level.updated.values():
                    self._expire_held(obj, None, reason)
            for obj in list(self._modified.values()):
                self._expire_held(obj, None, reason)
            for level in levels:
                self._expire_loaded(level, reason)

    def _restore_key(self, obj: Any, old_key: Any) -> None:
        """Undo a flushed primary-key change in memory: the rolled-back row has its old key again
        (an expired object's key stays readable, so it must be the database's)."""
        st = state_of(obj)
        if st.session_ref is not self._token or st.status not in (PERSISTENT, DELETED):
            return
        mapper = type(obj).__aiouow_mapper__
        imap = self._identity_for(mapper)
        current = st.key if st.key is not None else mapper.pk_of(obj.__dict__)
        if imap.get(current) is obj:
            del imap[current]
            imap[old_key] = obj
        st.key = old_key
        obj.__dict__.update(zip(mapper.pk_keys, old_key if len(mapper.pk_keys) > 1 else (old_key,)))
        if st.committed:
            for k in mapper.pk_keys:
                st.committed.pop(k, None)

    def _held_persistent(self, obj: Any) -> bool:
        """Persistent in this session (not expunged meanwhile, nor attached elsewhere)."""
        st = _state.raw_state(obj)
        if st.__class__ is InstanceState:
            return st.session_ref is self._token and st.status == PERSISTENT
        return st is self._token

    def _expire_held(self, obj: Any, names: list[str] | None, reason: str) -> None:
        if self._held_persistent(obj):
            self._expire_obj(obj, type(obj).__aiouow_mapper__, names)
            self._expire_reasons[id(obj)] = reason

    def _expire_loaded(self, level: TxLevel, reason: str) -> None:
        """A SAVEPOINT is rolled back: expire what it loaded that its own writes may show.

        Loaded after its writes, a value may show what the rollback took away: a collection
        or reference loaded from a table it wrote (holding a row it inserted, missing one it
        deleted), columns of a row a statement updated, an object for a row a statement
        inserted.  What it changed through its objects is expired already (``updated``).
        Other loads are still true; they pass to the enclosing SAVEPOINT, whose rollback may
        undo what they show."""
        written = _with_cascades(level.written)
        rewritten = level.rewritten
        everything = ANY_TABLE in written
        for table in written - level.written:  # ON DELETE / ON UPDATE actions change columns
            rewritten.setdefault(table, set()).add(ALL_ROWS)
        parent = level.parent
        for new, loaded in ((True, level.loaded_new), (False, level.loaded)):
            keep = None
            if parent is not None and parent.parent is not None:
                keep = parent.loaded_new if new else parent.loaded
            for oid, obj in loaded.items():
                if written and self._held_persistent(obj):
                    mapper = obj.__aiouow_mapper__
                    rows = rewritten.get(mapper.table)
                    if everything or rows is not None and (
                            ALL_ROWS in rows or (new and NEW_ROWS in rows) or mapper.pk_of(obj.__dict__) in rows):
                        self._expire_held(obj, None, reason)
                    else:
                        d = obj.__dict__
                        stale = [k for k, rel in mapper.relationships.items()
                                 if k in d and (rel.mapper.table in written or rel.secondary in written)]
                        if stale:
                            self._expire_held(obj, stale, reason)
                if keep is not None:
                    # expired or not: an object first known here is still new to the enclosing
                    # level, where it may be loaded again
                    keep[oid] = obj

    async def _forget_vanished_rows(self, level: TxLevel) -> None:
        """After a SAVEPOINT rollback: objects it first loaded from a table that a statement
        (a core INSERT, text()) inserted into may stand for rows the rollback removed; those
        whose row is gone leave the identity map (detached), as the objects a flush inserted
        there do, so that a new row with the same key is not mistaken for them."""
        if not level.written:
            return
        everything = ANY_TABLE in level.written
        by_mapper: dict[Mapper, list[Any]] = {}
        for obj in level.loaded_new.values():
            mapper = obj.__aiouow_mapper__
            rows = level.rewritten.get(mapper.table)
            if (everything or (rows is not None and NEW_ROWS in rows)) and self._held_persistent(obj):
                by_mapper.setdefault(mapper, []).append(obj)
        if not by_mapper:
            return
        conn = self._conn
        assert conn is not None
        for mapper, objs in by_mapper.items():
            cols = list(mapper.primary_key)
            single = len(cols) == 1
            keys = {mapper.pk_of(o.__dict__): o for o in objs}
            found: set[Any] = set()
            pks = list(keys)
            size = max(1, (conn.dialect.max_params - 10) // len(cols))
            for i in range(0, len(pks), size):
                chunk = pks[i:i + size]
                where = cols[0].in_(chunk) if single else or_(*[and_(*[c == v for c, v in zip(cols, k)])
                                                               for k in chunk])
                result = await conn.execute(Select(*cols).where(where))
                found.update(r[0] if single else tuple(r) for r in result.all())
            for key, obj in keys.items():
                if key not in found:
                    self._detach_vanished(obj, mapper, key)

    def _detach_vanished(self, obj: Any, mapper: Mapper, key: Any) -> None:
        imap = self._imap.get(mapper)
        if imap is not None and imap.get(key) is obj:
            del imap[key]
        oid = id(obj)
        self._modified.pop(oid, None)
        self._deleted.pop(oid, None)
        st = state_of(obj)
        st.status = DETACHED
        st.session_ref = None
        st.key = key

    def _loads_tracker(self) -> TxLevel | None:
        """Inside a SAVEPOINT, the level where objects given values from the database are noted."""
        levels = self._levels
        return levels[-1] if len(levels) > 1 else None

    def _note_loaded(self, objs: Iterable[Any]) -> None:
        """Objects the session already held were given values from the database."""
        level = self._loads_tracker()
        if level is not None:
            track = level.loaded
            for obj in objs:
                track[id(obj)] = obj

    def _note_statement(self, statement: Any, keys: Iterable[Any] | None = None) -> None:
        """A statement other than a flush wrote rows inside a SAVEPOINT; ``keys``: the primary
        keys of the rows an UPDATE changed, where known."""
        level = self._loads_tracker()
        if level is None:
            return
        if not isinstance(statement, DMLStatement):
            level.written.add(ANY_TABLE)
            return
        table = statement.table
        level.written.add(table)
        if isinstance(statement, Update):
            level.rewritten.setdefault(table, set()).update((ALL_ROWS,) if keys is None else keys)
        elif not isinstance(statement, Delete):
            level.rewritten.setdefault(table, set()).add(NEW_ROWS)

    def _to_transient(self, obj: Any) -> None:
        mapper = type(obj).__aiouow_mapper__
        st = state_of(obj)
        oid = id(obj)
        self._new.pop(oid, None)
        self._modified.pop(oid, None)
        self._deleted.pop(oid, None)
        imap = self._imap.get(mapper)
        if imap is not None:
            key = st.key if st.key is not None else mapper.pk_of(obj.__dict__)
            if imap.get(key) is obj:
                del imap[key]
        d = obj.__dict__
        if mapper.autoincrement_key is not None and st.status != PENDING:
            d.pop(mapper.autoincrement_key, None)  # the key was the database's, and is gone
        if mapper.version_key is not None:
            d.pop(mapper.version_key, None)
        st.status = TRANSIENT
        st.session_ref = None
        st.key = None
        st.committed = None

    async def close(self) -> None:
        """Roll back what is not committed, expunge every object, return the connection.
        The session can be used again afterwards."""
        self._enter()
        try:
            await self._rollback_db()
        finally:  # also when cancelled meanwhile: the database side is rolled back by then
            try:
                self._detach_all()
                self._end_levels()
            finally:
                self._leave()

    async def __aenter__(self) -> AsyncSession:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # -- queries ------------------------------------------------------------------
    @overload
    async def execute(self, statement: Select[_TP],
                      params: dict[str, Any] | Sequence[dict[str, Any]] | None = None) -> Result[_TP]: ...
    @overload
    async def execute(self, statement: ClauseElement,
                      params: dict[str, Any] | Sequence[dict[str, Any]] | None = None) -> Result[Any]: ...
    async def execute(self, statement: ClauseElement, params: dict[str, Any] | Sequence[dict[str, Any]] | None = None
                      ) -> Result[Any]:
        """Execute a statement.  Mapped classes in a SELECT come back as identity-mapped objects."""
        self._enter()
        try:
            conn = await self._ready()
            if isinstance(statement, Select) and any(
                    getattr(c, "visit_name", "") == "entity" for c in statement._columns):
                return await self._orm_select(conn, statement, params)
            if isinstance(statement, DMLStatement) and statement.entity is not None and \
                    isinstance(statement, (Update, Delete)) and not isinstance(params, (list, tuple)):
                return await self._orm_dml(conn, statement, params)
            if not isinstance(statement, Select):
                self._note_statement(statement)
            return await conn.execute(statement, params)
        except BaseException:
            raise
        finally:
            self._leave()

    async def _orm_select(self, conn: Connection, stmt: Select, params: Any) -> Result:
        if stmt._options and len(stmt._columns) == 1:
            from ..loading.joined import split_options

            mapper = stmt._columns[0].entity  # type: ignore[attr-defined]
            joined, rest = split_options(stmt, mapper)
            if joined:
                return await self._orm_select_joined(conn, stmt, params, mapper, joined, rest)
        compiled, args = conn.compile(stmt, params)
        rows = await conn.fetch_sql(compiled.sql, args)
        populate = bool(stmt._execution_options.get("populate_existing"))
        row_class = _orm_row_class(compiled)
        items = compiled.items
        if len(items) == 1:
            # one entity: its values are converted as its objects are built
            mapper = items[0][1]
            objs = instances(self, mapper, rows, 0, populate, compiled.result_procs)
            if stmt._options:
                await self._apply_options(stmt._options, [mapper], [objs], populate)
            return Result(objs, row_class, scalar_rows=True)
        if compiled.result_procs:
            rows = _process(rows, compiled.result_procs)
        columns: list[list[Any]] = []
        entity_cols: list[tuple[Mapper, list[Any]]] = []
        for kind, ent, start, _stop in items:
            if kind == "entity":
                objs = instances(self, ent, rows, start, populate)
                columns.append(objs)
                entity_cols.append((ent, objs))
            else:
                columns.append([r[start] for r in rows])
        if stmt._options and entity_cols:
            await self._apply_options(stmt._options, [m for m, _ in entity_cols], [o for _, o in entity_cols],
                                      populate)
        return Result(list(zip(*columns)) if rows else [], row_class)

    async def _orm_select_joined(self, conn: Connection, stmt: Select, params: Any, mapper: Mapper,
                                 joined: list[Any], rest: list[Any]) -> Result:
        """A single-entity SELECT with joined eager loads in the same query."""
        from ..loading.joined import joined_statement, populate_joined
        from ..loading.options import LoaderOption

        compiled, args = conn.compile(joined_statement(stmt, joined), params)
        rows = await conn.fetch_sql(compiled.sql, args)
        if compiled.result_procs:
            rows = _process(rows, compiled.result_procs)
        populate = bool(stmt._execution_options.get("populate_existing"))
        parents, children = populate_joined(self, mapper, rows, compiled.items, joined, populate)
        for opt, objs in children:
            if len(opt.path) > 1:
                await self._apply_options([LoaderOption(opt.path[1:])], [opt.path[0][1].mapper], [objs], populate)
        if rest:
            await self._apply_options(rest, [mapper], [parents], populate)
        base, _ = conn.compile(stmt, params)
        return Result(parents, _orm_row_class(base), scalar_rows=True)

    async def _apply_options(self, options: Sequence[Any], mappers: list[Mapper], objs: list[list[Any]],
                             populate: bool) -> None:
        from ..loading.options import apply_options

        await apply_options(self, options, mappers, objs, populate)

    async def _orm_dml(self, conn: Connection, stmt: Update | Delete, params: Any) -> Result:
        """ORM update()/delete(): keep identity-mapped objects in step (synchronize_session="auto")."""
        mapper = stmt.table.mapper
        if mapper is None or stmt._returning:
            self._note_statement(stmt)
            result = await conn.execute(stmt, params)
            if mapper is not None and isinstance(stmt, Update):
                names = [c.key for c, _ in stmt._values]
                for obj in list(self._identity_for(mapper).values()):
                    self._expire_obj(obj, mapper, names)
            return result
        # values given as SQL expressions come back through RETURNING (synchronize_session="fetch")
        fetched = [c for c, v in stmt._values if not isinstance(v, BindParameter)] if isinstance(stmt, Update) else []
        npk = len(mapper.pk_keys)
        fetched_at = {c.key: npk + i for i, c in enumerate(fetched)}
        returning = stmt.returning(*mapper.primary_key, *fetched)
        compiled, args = conn.compile(returning, params)
        rows = await conn.fetch_sql(compiled.sql, args)
        if compiled.result_procs:
            rows = _process(rows, compiled.result_procs)
        imap = self._identity_for(mapper)
        single = len(mapper.pk_keys) == 1
        level = self._levels[-1]
        self._note_statement(stmt, [r[0] if single else tuple(r[:npk]) for r in rows])
        for r in rows:
            obj = imap.get(r[0] if single else tuple(r[:npk]))
            if obj is None:
                continue
            if isinstance(stmt, Update):
                d = obj.__dict__
                st = _state.raw_state(obj)
                level.updated[id(obj)] = obj  # a SAVEPOINT rollback must expire it
                for col, value in stmt._values:
                    if isinstance(value, BindParameter):
                        d[col.key] = value.value
                        if st.__class__ is InstanceState and st.committed:
                            st.committed.pop(col.key, None)
                    else:
                        d[col.key] = r[fetched_at[col.key]]
                        if st.__class__ is InstanceState and st.committed:
                            st.committed.pop(col.key, None)
            else:
                st = state_of(obj)
                del imap[st.key if st.key is not None else mapper.pk_of(obj.__dict__)]
                st.status = DELETED
                oid = id(obj)
                self._deleted.pop(oid, None)
                self._modified.pop(oid, None)
                level.removed[oid] = obj
        return Result([], None, rowcount=len(rows))

    @overload
    async def scalars(self, statement: Select[tuple[T]], params: dict[str, Any] | None = None) -> ScalarResult[T]: ...
    @overload
    async def scalars(self, statement: ClauseElement, params: dict[str, Any] | None = None) -> ScalarResult[Any]: ...
    async def scalars(self, statement: ClauseElement, params: dict[str, Any] | None = None) -> ScalarResult[Any]:
        """``(await execute(statement)).scalars()``."""
        return (await self.execute(statement, params)).scalars()

    @overload
    async def scalar(self, statement: Select[tuple[T]], params: dict[str, Any] | None = None) -> T | None: ...
    @overload
    async def scalar(self, statement: ClauseElement, params: dict[str, Any] | None = None) -> Any: ...
    async def scalar(self, statement: ClauseElement, params: dict[str, Any] | None = None) -> Any:
        """The first column of the first row, or None."""
        return (await self.execute(statement, params)).scalar()

    @overload
    async def stream(self, statement: Select[_TP], params: dict[str, Any] | None = None,
                     chunk_size: int = 1000) -> AsyncResult[Row[_TP]]: ...
    @overload
    async def stream(self, statement: ClauseElement, params: dict[str, Any] | None = None,
                     chunk_size: int = 1000) -> AsyncResult[Row[Any]]: ...
    async def stream(self, statement: ClauseElement, params: dict[str, Any] | None = None,
                     chunk_size: int = 1000) -> AsyncResult[Row[Any]]:
        """Rows fetched in chunks (a server-side cursor on PostgreSQL) as you iterate."""
        self._enter()
        try:
            conn = await self._ready()
        finally:
            self._leave()
        compiled, args = conn.compile(statement, params)
        procs = compiled.result_procs
        items = compiled.items
        entities = any(kind == "entity" for kind, *_ in items)
        populate = isinstance(statement, Select) and bool(statement._execution_options.get("populate_existing"))

        def convert(rows: list[Any]) -> list[Any]:
            if procs:
                rows = _process(rows, procs)
            if not entities:
                return rows
            if len(items) == 1:
                return instances(self, items[0][1], rows, 0, populate)
            cols = [instances(self, ent, rows, start, populate) if kind == "entity" else [r[start] for r in rows]
                    for kind, ent, start, _ in items]
            return list(zip(*cols))

        single = entities and len(items) == 1
        if compiled.text_names is not None:
            return AsyncResult(self._guarded_stream(conn, compiled.sql, args, chunk_size), convert, None,
                               names_from=conn._column_names)
        return AsyncResult(self._guarded_stream(conn, compiled.sql, args, chunk_size), convert,
                           _orm_row_class(compiled) if entities else compiled.row_class(), scalar_rows=single)

    async def _guarded_stream(self, conn: Connection, sql: str, args: list[Any], chunk: int
                              ) -> AsyncIterator[list[Any]]:
        agen = conn.stream_sql(sql, args, chunk)
        try:
            while True:
                self._enter()
                try:
                    rows = await agen.__anext__()
                except StopAsyncIteration:
                    return
                finally:
                    self._leave()
                yield rows
        finally:
            await agen.aclose()

    @overload
    async def stream_scalars(self, statement: Select[tuple[T]], params: dict[str, Any] | None = None,
                             chunk_size: int = 1000) -> AsyncResult[T]: ...
    @overload
    async def stream_scalars(self, statement: ClauseElement, params: dict[str, Any] | None = None,
                             chunk_size: int = 1000) -> AsyncResult[Any]: ...
    async def stream_scalars(self, statement: ClauseElement, params: dict[str, Any] | None = None,
                             chunk_size: int = 1000) -> AsyncResult[Any]:
        """``(await stream(statement)).scalars()``."""
        return (await self.stream(statement, params, chunk_size)).scalars()

    # -- get ------------------------------------------------------------------------
    def _is_expired(self, obj: Any, mapper: Mapper) -> bool:
        d = obj.__dict__
        for k in mapper.column_keys:
            if k not in d:
                return True
        return False

    async def get(self, entity: type[T], ident: Any, *, populate_existing: bool = False,
                  with_for_update: bool = False, options: Sequence[Any] = ()) -> T | None:
        """The object with this primary key: from the identity map without SQL when it is there
        (and not expired), else loaded.  None if there is no such row."""
        mapper = _mapper_of_class(entity, "get")
        pk = mapper.identity_from_pk(ident)
        self._enter()
        try:
            if not populate_existing and not with_for_update:
                objs = self._imap.get(mapper)
                obj = objs.get(pk) if objs is not None else None
                if obj is not None and not self._is_expired(obj, mapper):  # marked deleted too, as in SQLAlchemy
                    if options:
                        await self._apply_options(options, [mapper], [[obj]], False)
                    return obj  # type: ignore[no-any-return]
            await self._ready()
            row = await self._select_by_pk(mapper, pk, with_for_update, raw=True)
            if row is None:
                return None
            obj = instances(self, mapper, [row], 0, populate_existing or with_for_update)[0]
            if options:
                await self._apply_options(options, [mapper], [[obj]], populate_existing)
            return obj  # type: ignore[no-any-return]
        finally:
            self._leave()

    async def get_one(self, entity: type[T], ident: Any, **kw: Any) -> T:
        """Like ``get()``, but raise ``NoResultFound`` when there is no such row."""
        obj = await self.get(entity, ident, **kw)
        if obj is None:
            raise exc.NoResultFound(f"no {entity.__name__} with primary key {ident!r}")
        return obj

    async def _select_by_pk(self, mapper: Mapper, pk: Any, for_update: bool, raw: bool = False) -> Any:
        conn = await self._connection()
        dialect = conn.dialect
        key = (dialect.name, "get", for_update)
        cached = mapper.cache.get(key)
        if cached is None:
            cols = mapper.primary_key
            stmt = Select(mapper.class_).where(and_(*[c == BindParameter(None, c.type) for c in cols]))
            if for_update:
                stmt = stmt.with_for_update()
            compiled, binds = dialect.compile(stmt)
            procs = [dialect.bind_processor(c.type) for c in cols]
            cached = mapper.cache[key] = (compiled, procs)
        compiled, procs = cached
        values = pk if len(mapper.pk_keys) > 1 else (pk,)
        args = [v if p is None else p(v) for v, p in zip(values, procs)]
        rows = await conn.fetch_sql(compiled.sql, args)
        if not rows:
            return None
        if compiled.result_procs:
            rows = _process(rows, compiled.result_procs)
        return rows[0]

    # -- merge / is_modified ------------------------------------------------------------
    async def merge(self, obj: T, load: bool = True) -> T:
        """Copy the state of ``obj`` onto the object this session holds for its primary key
        (loading it if needed, or creating it) and return that object.  Relationships with
        ``merge`` cascade are merged too."""
        self._enter()
        try:
            return await self._merge(obj, load, {})  # type: ignore[no-any-return]
        finally:
            self._leave()

    async def _merge(self, obj: Any, load: bool, memo: dict[int, Any]) -> Any:
        mapper = _mapper_of_instance(obj, "merge")
        if id(obj) in memo:
            return memo[id(obj)]
        if obj in self:
            memo[id(obj)] = obj
            return obj
        d = obj.__dict__
        pk = mapper.pk_of(d)
        has_pk = pk is not None and not (isinstance(pk, tuple) and None in pk)
        target = None
        if has_pk:
            target = self._identity_for(mapper).get(pk)
            if target is None and load:
                await self._ready()
                row = await self._select_by_pk(mapper, pk, False, raw=True)
                if row is not None:
                    target = instances(self, mapper, [row], 0, False)[0]
        cls = mapper.class_
        values = {k: d[k] for k in mapper.column_keys if k in d}
        if target is None:
            if not load and has_pk:
                st_src = _state.raw_state(obj)
                if st_src.__class__ is InstanceState and (st_src.committed or st_src.status == TRANSIENT):
                    raise exc.InvalidRequestError(
                        f"merge(load=False) needs a clean object loaded from the database; "
                        f"{_describe(obj)} is new or has pending changes"
                    )
                self._autobegin()
                target = object.__new__(cls)
                target.__dict__.update(values)
                _set_slot(target, self._token)
                self._identity_for(mapper)[pk] = target
            else:
                target = cls.__new__(cls)
                for k, v in values.items():
                    setattr(target, k, v)
                self.add(target)
        elif load:
            for k, v in values.items():
                if k in target.__dict__ and _same(target.__dict__[k], v):
                    continue
                setattr(target, k, v)
        else:
            target.__dict__.update(values)
        memo[id(obj)] = target
        for rel in mapper.relationships.values():
            if "merge" not in rel.cascade or rel.key not in d:
                continue
            value = d[rel.key]
            if isinstance(value, list):
                merged = [await self._merge(item, load, memo) for item in value]
            else:
                merged = None if value is None else await self._merge(value, load, memo)
            if load:
                if rel.key not in target.__dict__ and status_of(target) == PERSISTENT:
                    await self._load_relationship([target], rel)  # the history needs the current value
                setattr(target, rel.key, merged)
            else:
                from ..mapping.collections import make_collection

                target.__dict__[rel.key] = make_collection(rel, target, merged) if isinstance(merged, list) \
                    else merged
        return target

    def is_modified(self, obj: Any) -> bool:
        """Whether the object has net attribute changes not yet flushed."""
        mapper = _mapper_of_instance(obj, "is_modified")
        st = _state.raw_state(obj)
        if st.__class__ is not InstanceState:
            return False
        if st.rel_committed:
            return True
        if not st.committed:
            return False
        d = obj.__dict__
        for k, old in st.committed.items():
            new = d.get(k, NO_VALUE)
            if new is NO_VALUE:
                continue
            if old is NO_VALUE or not _same(old, new):
                return True
        del mapper
        return False

    # -- explicit loading (relationships) ----------------------------------------------
    @overload
    async def load(self, obj: object, attribute: Relationship[T]) -> T: ...
    @overload
    async def load(self, obj: object, attribute: str) -> Any: ...
    async def load(self, obj: object, attribute: Relationship[Any] | str) -> Any:
        """Load a relationship of ``obj`` (``"posts"`` or ``User.posts``) and return its value."""
        from ..loading.explicit import session_load

        return await session_load(self, obj, attribute)

    async def load_all(self, objs: Sequence[object], attribute: Relationship[Any] | str) -> None:
        """Load one relationship for many objects in one query per chunk."""
        from ..loading.explicit import session_load_all

        await session_load_all(self, objs, attribute)

    def __repr__(self) -> str:
        return f"<AsyncSession {self._state.value} new={len(self._new)} held={len(self.identity_map)}>"


def _orm_row_class(compiled: Any) -> Any:
    rc = getattr(compiled, "_orm_row_class", None)
    if rc is None:
        names = []
        for kind, ent, start, _ in compiled.items:
            names.append(ent.class_.__name__ if kind == "entity" else compiled.names[start])
        rc = make_row_class(names)
        try:
            compiled._orm_row_class = rc
        except AttributeError:
            pass
    return rc


class SessionTransaction:
    """What ``session.begin()`` returns: ``async with`` commits on success, rolls back on error."""

    def __init__(self, session: AsyncSession, level: TxLevel) -> None:
        self.session = session
        self._level = level

    @property
    def is_active(self) -> bool:
        return not self._level.closed

    def _check_open(self, op: str) -> None:
        if self._level.closed:
            raise exc.InvalidRequestError(
                f"cannot {op}(): this transaction is already closed (it was committed or rolled back); "
                "start a new one with session.begin()"
            )

    async def commit(self) -> None:
        self._check_open("commit")
        await self.session.commit()

    async def rollback(self) -> None:
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
    """

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._level: TxLevel | None = None

    async def _start(self) -> NestedTransaction:
        s = self.session
        if self._level is not None:
            return self
        s._enter()
        try:
            s._require_usable()
            s._autobegin()
            await s._flush()
            conn = await s._connection()
            sp = conn.begin_nested()
            await sp._start()
            self._level = TxLevel(s._levels[-1], sp)
            s._levels.append(self._level)
        finally:
            s._leave()
        return self

    def __await__(self) -> Any:
        return self._start().__await__()

    async def __aenter__(self) -> NestedTransaction:
        return await self._start()

    @property
    def is_active(self) -> bool:
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
        s._enter()
        try:
            level = self._check("commit")
            s._require_usable()
            await s._flush()
            await level.savepoint.commit()
            level.merge_into_parent()
            level.closed = True
            s._levels.pop()
        finally:
            s._leave()

    async def rollback(self) -> None:
        """Roll back to the SAVEPOINT: the database and the identity map forget the work since."""
        s = self.session
        s._enter()
        try:
            level = self._check("rollback")
            if level.failed is None and s._conn is not None:
                await level.savepoint.rollback()
            elif s._conn is not None:
                s._conn._pop_savepoint(level.savepoint.savepoint)
            # pending objects added inside the block are part of its work too
            s._restore([level], whole=False)
            level.closed = True
            s._levels.pop()
            if s._state is TxState.FAILED and level.failed is not None:
                s._state = TxState.ACTIVE
                s._failure = None
            if s._conn is not None and s._state is TxState.ACTIVE:
                await s._forget_vanished_rows(level)
        finally:
            s._leave()

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
