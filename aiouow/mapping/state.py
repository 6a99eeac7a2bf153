"""Per-instance state: where an object stands and what changed.

Design: every mapped object has one slot, ``_aiouow_state`` (declared by
:class:`StateSlot`, the base of ``Model``).  It holds either

* a full :class:`InstanceState`, or
* the compact form: the owning session's :class:`SessionToken` (one object
  per session, shared by all its instances), meaning "persistent in that
  session, nothing modified" while the token is active, and "detached" once
  the session has deactivated it (``close()``, ``expunge_all()``).

Rows loaded from the database take the compact form, so loading an object
allocates the object and its ``__dict__`` and nothing else, and no object
references its session strongly (the token holds a weak reference; no
reference cycles for the garbage collector to find).  The first write to an
attribute, ``inspect()``, or any state change promotes the slot to a full
:class:`InstanceState`.

Code that reads the slot uses the helpers at the end of this module:
``full_state(obj)`` (the full state, or None for the compact form),
``state_of(obj)`` (promoting), ``status_of(obj)`` and ``session_of(obj)``
(without promoting).  The few hot loops (building objects from rows, the
flush book-keeping, setting an attribute) read the slot through
``get_slot`` / ``set_slot`` and test ``st.__class__ is InstanceState``
inline, because a helper call per object there costs a Python call each.

Loaded values live in the instance ``__dict__``; an attribute absent from it
is unloaded (expired, or never loaded), and reading it reaches the class
descriptor, which asks this module what to do.  Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol
from uuid import UUID

from ..exc import DetachedInstanceError, NotLoadedError
from .slot import get_slot as get_slot  # the hot loops read them from here
from .slot import set_slot as set_slot

if TYPE_CHECKING:
    from .mapper import Mapper


class SessionHooks(Protocol):
    """What ``mapping/`` asks of the session an object belongs to (``AsyncSession``
    implements it; ``loading.protocol.SessionInternals`` extends it for ``loading/``)."""

    def _note_modified(self, obj: Any) -> None:
        """A persistent object got its first change since load/flush."""
        ...

    def _expire_reason_for(self, obj: Any) -> str | None:
        """Why the object's unloaded attributes are unloaded, for the error message."""
        ...

    def add(self, obj: Any) -> None:
        """Make ``obj`` pending (the save-update cascade)."""
        ...


class SessionToken:
    """The compact state: "persistent in this session, nothing modified".

    A session gets a new token at ``close()`` / ``expunge_all()``; the old one
    is deactivated, which detaches every clean object at once.
    """

    __slots__ = ("ref", "active", "__weakref__")

    def __init__(self, ref: Callable[[], Any]) -> None:
        self.ref = ref
        self.active = True

    def __call__(self) -> Any:
        """The session, while the token is active and the session alive."""
        return self.ref() if self.active else None

TRANSIENT = 0
PENDING = 1
PERSISTENT = 2
DELETED = 3
DETACHED = 4

_STATUS_NAMES = ("transient", "pending", "persistent", "deleted", "detached")


class _NoValue:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_VALUE"


NO_VALUE: Any = _NoValue()


class History(NamedTuple):
    """Changes to one attribute since it was loaded or last flushed."""

    added: tuple[Any, ...]
    """Values (or objects) set since the attribute was loaded or flushed."""
    unchanged: tuple[Any, ...]
    """Values (or objects) still there since it was loaded or flushed."""
    deleted: tuple[Any, ...]
    """Values (or objects) replaced or removed since it was loaded or flushed."""

    def has_changes(self) -> bool:
        """Whether anything was added or deleted."""
        return bool(self.added or self.deleted)


class InstanceState:
    """The state of one mapped object (see the module docstring)."""

    __slots__ = ("mapper", "status", "key", "session_ref", "committed", "rel_committed")

    def __init__(self, mapper: Mapper, status: int, key: Any = None,
                 session_ref: SessionToken | None = None) -> None:
        self.mapper = mapper
        self.status = status
        #: primary key value (scalar, or tuple for composite keys) once persistent
        self.key = key
        self.session_ref = session_ref
        #: attribute -> value before the first change since load/flush (None: no change)
        self.committed: dict[str, Any] | None = None
        #: relationship -> value as last loaded/flushed, for relationships changed since
        self.rel_committed: dict[str, Any] | None = None

    # -- inspection API (``aiouow.inspect(obj)``) ---------------------------
    @property
    def session(self) -> Any:
        """The session the object belongs to, or None."""
        ref = self.session_ref
        return ref() if ref is not None else None

    @property
    def transient(self) -> bool:
        return self.status == TRANSIENT

    @property
    def pending(self) -> bool:
        return self.status == PENDING

    @property
    def persistent(self) -> bool:
        return self.status == PERSISTENT

    @property
    def deleted(self) -> bool:
        return self.status == DELETED

    @property
    def detached(self) -> bool:
        return self.status == DETACHED

    @property
    def status_name(self) -> str:
        return _STATUS_NAMES[self.status]

    @property
    def modified(self) -> bool:
        return self.committed is not None or self.rel_committed is not None

    @property
    def identity(self) -> tuple[Any, ...] | None:
        """The primary key as a tuple, or None before the object has one."""
        if self.key is None:
            return None
        return self.key if isinstance(self.key, tuple) and len(self.mapper.pk_keys) > 1 else (self.key,)

    @property
    def identity_key(self) -> tuple[type, tuple[Any, ...]] | None:
        ident = self.identity
        return None if ident is None else (self.mapper.class_, ident)


class AttributeState:
    """``inspect(obj).attrs[name]``."""

    __slots__ = ("_obj", "_state", "key")

    def __init__(self, obj: Any, state: InstanceState, key: str) -> None:
        self._obj = obj
        self._state = state
        self.key = key

    @property
    def loaded_value(self) -> Any:
        return self._obj.__dict__.get(self.key, NO_VALUE)

    @property
    def value(self) -> Any:
        return getattr(self._obj, self.key)

    @property
    def history(self) -> History:
        return attribute_history(self._obj, self._state, self.key)


def attribute_history(obj: Any, state: InstanceState, key: str) -> History:
    d = obj.__dict__
    current = d.get(key, NO_VALUE)
    rel = state.mapper.relationships.get(key)
    if rel is not None:
        old = state.rel_committed.get(key, current) if state.rel_committed else current
        if state.status in (TRANSIENT, PENDING) and old is current:
            old = [] if rel.uselist else None
        return rel.history(old, current)
    if state.status in (TRANSIENT, PENDING):
        return History((current,), (), ()) if current is not NO_VALUE else History((), (), ())
    committed = state.committed
    if committed is not None and key in committed:
        old = committed[key]
        if old is NO_VALUE:
            return History((current,), (), ())
        if current is NO_VALUE:
            return History((), (), (old,))
        if _same(old, current):
            return History((), (current,), ())
        return History((current,), (), (old,))
    if current is NO_VALUE:
        return History((), (), ())
    return History((), (current,), ())


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    try:
        # the type matters (1 / True / 1.0 differ), but a driver's subclass (asyncpg's UUID) does not
        return bool(a == b) and (type(a) is type(b) or (isinstance(a, UUID) and isinstance(b, UUID)))
    except Exception:
        return False


class AttrsView(Mapping[str, AttributeState]):
    __slots__ = ("_obj", "_state")

    def __init__(self, obj: Any, state: InstanceState) -> None:
        self._obj = obj
        self._state = state

    def __getitem__(self, key: str) -> AttributeState:
        if key not in self._state.mapper.attrs:
            raise KeyError(key)
        return AttributeState(self._obj, self._state, key)

    def __iter__(self) -> Any:
        return iter(self._state.mapper.attrs)

    def __len__(self) -> int:
        return len(self._state.mapper.attrs)


class InstanceInspection:
    """What ``aiouow.inspect(obj)`` returns: the state plus the object."""

    __slots__ = ("obj", "state")

    def __init__(self, obj: Any, state: InstanceState) -> None:
        self.obj = obj
        self.state = state

    def __getattr__(self, name: str) -> Any:
        return getattr(self.state, name)

    @property
    def object(self) -> Any:
        return self.obj

    @property
    def mapper(self) -> Mapper:
        return self.state.mapper

    @property
    def attrs(self) -> AttrsView:
        return AttrsView(self.obj, self.state)

    @property
    def unloaded(self) -> set[str]:
        d = self.obj.__dict__
        mapper = self.state.mapper
        if self.state.status in (TRANSIENT, PENDING):
            # relationships of a new object count as loaded (empty) even if never read
            return {k for k in mapper.attrs if k not in d and k not in mapper.relationships}
        return {k for k in mapper.attrs if k not in d}

    @property
    def modified(self) -> bool:
        return self.state.modified

    @property
    def session(self) -> Any:
        return self.state.session


def full_state(obj: Any) -> InstanceState | None:
    """The object's full state, or None while it has the compact form."""
    st = get_slot(obj)
    return st if st.__class__ is InstanceState else None


def state_of(obj: Any) -> InstanceState:
    """The object's full state, promoting the compact form."""
    st = get_slot(obj)
    if st.__class__ is InstanceState:
        return st
    return promote(obj, st)


def promote(obj: Any, st: SessionToken) -> InstanceState:
    """Replace the compact form ``st`` in the slot by a full state."""
    mapper = type(obj).__aiouow_mapper__
    key = mapper.pk_of(obj.__dict__)
    if st.active:
        full = InstanceState(mapper, PERSISTENT, key, st)
    else:
        full = InstanceState(mapper, DETACHED, key, None)
    set_slot(obj, full)
    return full


def status_of(obj: Any) -> int:
    """The status without promoting the compact form."""
    st = get_slot(obj)
    if st.__class__ is InstanceState:
        return st.status
    return PERSISTENT if st.active else DETACHED


def session_of(obj: Any) -> Any:
    """The session the object belongs to (pending, persistent or deleted in it), or None."""
    st = get_slot(obj)
    return st.session if st.__class__ is InstanceState else st()


# -- reading what is not loaded ------------------------------------------------
def describe(obj: Any) -> str:
    """``User(id=1)``: the object as error messages name it."""
    mapper = type(obj).__aiouow_mapper__
    d = obj.__dict__
    pk = ", ".join(f"{k}={d.get(k)!r}" for k in mapper.pk_keys)
    return f"{mapper.class_.__name__}({pk})"


def _expire_reason(obj: Any) -> str | None:
    session: SessionHooks | None = session_of(obj)
    return session._expire_reason_for(obj) if session is not None else None


def missing_column(obj: Any, key: str) -> Any:
    """Reading a column attribute absent from ``__dict__``: None, or a clear error."""
    status = status_of(obj)
    if status == TRANSIENT or status == PENDING:
        return None
    cls = type(obj).__name__
    what = describe(obj)
    if status == DETACHED:
        raise DetachedInstanceError(
            f"{cls}.{key} is not loaded and {what} is detached from any session, so it cannot be "
            f"loaded. Add it to a session (session.add(obj), or obj = await session.merge(obj)) and "
            f"then `await session.refresh(obj, [{key!r}])`, or load it before closing the session."
        )
    reason = _expire_reason(obj)
    why = f"{what} was expired by {reason}" if reason else f"the query that loaded {what} did not load it"
    raise NotLoadedError(
        f"{cls}.{key} is not loaded: {why}, and aiouow never loads implicitly. "
        f"Load it with `await session.refresh(obj, [{key!r}])` (or `await obj.awaitable_attrs.{key}`)"
        f", or keep it loaded with expire_on_commit=False."
    )


def missing_relationship(obj: Any, rel: Any) -> Any:
    """Reading a relationship absent from ``__dict__``: empty for new objects, else a clear error."""
    status = status_of(obj)
    key = rel.key
    if status == TRANSIENT or status == PENDING:
        value = rel.empty_value(obj)
        obj.__dict__[key] = value
        return value
    cls = type(obj).__name__
    what = describe(obj)
    if status == DETACHED:
        raise DetachedInstanceError(
            f"{cls}.{key} is not loaded and {what} is detached from any session, so it cannot be "
            f"loaded. Load it while the object is in a session (selectinload({cls}.{key}) in the "
            f"query, or `await session.load(obj, {key!r})`), or re-attach it with session.merge()."
        )
    reason = _expire_reason(obj)
    why = f"{what} was expired by {reason}" if reason else f"nothing has loaded it on {what} yet"
    raise NotLoadedError(
        f"{cls}.{key} is not loaded ({why}); aiouow never loads on attribute access. "
        f"Load it with `await session.load(obj, {key!r})`, `await obj.awaitable_attrs.{key}`, "
        f"or in the query: select({cls}).options(selectinload({cls}.{key})) "
        f"(for many objects: `await session.load_all(objs, {key!r})`)."
    )
