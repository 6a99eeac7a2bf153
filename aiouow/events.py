"""Events: functions the session calls at points of its work (SQLAlchemy's event names).

``listen(target, name, fn)`` / ``@listens_for(target, name)`` / ``remove(target, name, fn)``.
A target is a ``sessionmaker`` (every session it makes, also those made already), one
``AsyncSession``, or a model class (that class and its subclasses: a listener on an abstract base,
or on ``Model`` itself, applies to every model deriving from it, as SQLAlchemy's
``propagate=True``).

Three kinds, with SQLAlchemy's names and (adapted) signatures:

* session events, on a sessionmaker or a session, plain or ``async def``:
  ``before_flush(session, flush_context)``, ``after_flush(session, flush_context)``,
  ``after_begin(session, connection)``, ``after_commit(session)``, ``after_rollback(session)``;
* model events, on a model class, plain functions only: ``before_insert``, ``after_insert``,
  ``before_update``, ``after_update``, ``before_delete``, ``after_delete``, each
  ``fn(mapper, connection, target)``;
* state events, on a sessionmaker or a session, plain functions only:
  ``transient_to_pending``, ``pending_to_persistent``, ``persistent_to_deleted``,
  ``persistent_to_detached``, each ``fn(session, instance)``.

Why model and state hooks are synchronous: they run once per object, in the middle of the
flush (between planning and execution, or while objects change state) and, for a flush of a
thousand objects or more, with the cyclic collector paused (``_gc.py``).  An await there would
cost a round trip per row and keep the collector paused for it; statements belong in
``before_flush`` / ``after_flush``, which run once per flush, outside the pause, and may await.

The cost when nobody listens: the session tests module-level flags (``active``,
``model_active``, ``state_active``) once per flush, commit, rollback or connection, and
``state_active`` once per ``add()``; listeners are looked up per flush and per table, never per
object, and only when a flag is set.
"""

from __future__ import annotations

import inspect as _inspect
import logging
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .exc import ArgumentError, InvalidRequestError

if TYPE_CHECKING:
    from .engine.connection import Connection
    from .mapping.mapper import Mapper
    from .session.session import AsyncSession
    from .session.unitofwork import FlushPlan

__all__ = ["FlushContext", "contains", "listen", "listens_for", "remove"]

log = logging.getLogger("aiouow.session")

SESSION_EVENTS = frozenset({"before_flush", "after_flush", "after_begin", "after_commit", "after_rollback"})
MODEL_EVENTS = frozenset({"before_insert", "after_insert", "before_update", "after_update",
                          "before_delete", "after_delete"})
STATE_EVENTS = frozenset({"transient_to_pending", "pending_to_persistent", "persistent_to_deleted",
                          "persistent_to_detached"})
ALL_EVENTS = SESSION_EVENTS | MODEL_EVENTS | STATE_EVENTS

#: any listener registered anywhere / any model listener / any state listener
active = False
model_active = False
state_active = False

Fn = Callable[..., Any]
F = TypeVar("F", bound=Callable[..., Any])
EMPTY: tuple[Fn, ...] = ()


class Registry:
    """The listeners of one target, by event name, in registration order.

    ``tally`` counts them (all, model, state) for the module's flags, which a registry
    collected with its target (a discarded sessionmaker, a closed session) gives back.
    """

    __slots__ = ("by_name", "tally", "_finalizer", "__weakref__")

    def __init__(self) -> None:
        self.by_name: dict[str, list[Fn]] = {}
        self.tally = [0, 0, 0]
        self._finalizer: weakref.finalize[Any, Any] | None = None


#: model class -> its registry (classes are not hashed by value, and live as long as the program)
_models: weakref.WeakKeyDictionary[type, Registry] = weakref.WeakKeyDictionary()
#: (class, name) -> the listeners of the class and its bases, bases first; cleared on each change
_model_cache: dict[tuple[type, str], tuple[Fn, ...]] = {}
_counts = [0, 0, 0]  # all, model, state: the listeners of every live registry


class FlushContext:
    """What a flush's ``before_flush`` and ``after_flush`` hooks receive as ``flush_context``.

    ``info`` is a dict shared by the hooks of one flush (collect in ``before_flush``, write in
    ``after_flush``).  ``inserted``, ``updated`` and ``deleted`` list the objects the flush wrote
    (empty in ``before_flush``, which runs before anything is planned): in ``after_flush`` the
    inserted ones have their generated keys and every one is in its new state already.

    Attributes:
        session: The session being flushed.
        info: A dict shared by the hooks of this one flush.
    """

    __slots__ = ("session", "info", "_plan")

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.info: dict[str, Any] = {}
        self._plan: FlushPlan | None = None

    def _objs(self, kind: type[Any]) -> list[Any]:
        plan = self._plan
        if plan is None:
            return []
        out: list[Any] = []
        for step in plan.steps:
            if isinstance(step, kind):
                out.extend(step.objs)
        return out

    @property
    def inserted(self) -> list[Any]:
        """The objects the flush inserted (empty in ``before_flush``)."""
        from .session.unitofwork import InsertBatch

        return self._objs(InsertBatch)

    @property
    def updated(self) -> list[Any]:
        """The objects the flush updated (empty in ``before_flush``)."""
        from .session.unitofwork import UpdateBatch

        return self._objs(UpdateBatch)

    @property
    def deleted(self) -> list[Any]:
        """The objects the flush deleted (empty in ``before_flush``)."""
        from .session.unitofwork import DeleteBatch

        return self._objs(DeleteBatch)


# -- registration ------------------------------------------------------------------------
def _registry_of(target: Any, name: str, create: bool) -> Registry | None:
    from .mapping.model import Model
    from .session.maker import sessionmaker
    from .session.session import AsyncSession

    if isinstance(target, type) and issubclass(target, Model):
        if name not in MODEL_EVENTS:
            raise ArgumentError(
                f"{name!r} is a session event: listen on a sessionmaker or an AsyncSession, not on the "
                f"model {target.__name__}" if name in ALL_EVENTS else _unknown(name)
            )
        reg = _models.get(target)
        if reg is None and create:
            reg = _models[target] = Registry()
        return reg
    if isinstance(target, (sessionmaker, AsyncSession)):
        if name not in SESSION_EVENTS and name not in STATE_EVENTS:
            raise ArgumentError(
                f"{name!r} is a model event: listen on a model class (e.g. listen(User, {name!r}, fn)), "
                f"not on {type(target).__name__}" if name in ALL_EVENTS else _unknown(name)
            )
        reg = target._events
        if reg is None and create:
            reg = target._events = Registry()
        return reg
    raise ArgumentError(
        f"events.listen() takes a sessionmaker, an AsyncSession or a model class as target, not {target!r}"
    )


def _unknown(name: str) -> str:
    return (f"no event named {name!r}; session events: {', '.join(sorted(SESSION_EVENTS))}; model events: "
            f"{', '.join(sorted(MODEL_EVENTS))}; state events: {', '.join(sorted(STATE_EVENTS))}")


def _is_async(fn: Fn) -> bool:
    # an object whose __call__ is an async def counts too
    return _inspect.iscoroutinefunction(fn) or _inspect.iscoroutinefunction(type(fn).__call__)


def listen(target: Any, name: str, fn: Fn) -> None:
    """Call ``fn`` at event ``name`` of ``target`` (a sessionmaker, an AsyncSession or a model class).

    Session events take plain functions or ``async def`` ones; model and state events take plain
    functions only (``ArgumentError`` otherwise).
    """
    if not callable(fn):
        raise ArgumentError(f"events.listen({name!r}) takes a callable, not {fn!r}")
    reg = _registry_of(target, name, create=True)
    assert reg is not None
    if name not in SESSION_EVENTS and _is_async(fn):
        raise ArgumentError(
            f"{name!r} listeners must be plain functions, and {getattr(fn, '__qualname__', fn)!r} is an "
            f"async def: {name} runs once per object inside the flush (or add()), where it cannot await; "
            "run statements from an async before_flush or after_flush listener instead"
        )
    reg.by_name.setdefault(name, []).append(fn)
    if reg._finalizer is None:
        reg._finalizer = weakref.finalize(reg, _forget, reg.tally)
    _count(reg, name, 1)


def remove(target: Any, name: str, fn: Fn) -> None:
    """Undo ``listen(target, name, fn)``; ``InvalidRequestError`` if it is not registered."""
    reg = _registry_of(target, name, create=False)
    fns = reg.by_name.get(name) if reg is not None else None
    if not fns or fn not in fns:
        raise InvalidRequestError(f"{getattr(fn, '__qualname__', fn)!r} is not listening to {name!r} on {target!r}")
    assert reg is not None
    fns.remove(fn)
    if not fns:
        del reg.by_name[name]
    _count(reg, name, -1)


def contains(target: Any, name: str, fn: Fn) -> bool:
    """Whether ``fn`` listens to ``name`` on ``target`` (registered on it, not inherited)."""
    reg = _registry_of(target, name, create=False)
    return reg is not None and fn in reg.by_name.get(name, ())


def listens_for(target: Any, name: str) -> Callable[[F], F]:
    """``@listens_for(target, name)`` registers the decorated function and returns it unchanged."""
    def decorate(fn: F) -> F:
        listen(target, name, fn)
        return fn
    return decorate


def _count(reg: Registry, name: str, delta: int) -> None:
    kind = 1 if name in MODEL_EVENTS else 2 if name in STATE_EVENTS else None
    for tally in (reg.tally, _counts):
        tally[0] += delta
        if kind is not None:
            tally[kind] += delta
    _update_flags()


def _forget(tally: list[int]) -> None:
    """A registry was collected: its listeners no longer count."""
    for i, n in enumerate(tally):
        _counts[i] -= n
    _update_flags()


def _update_flags() -> None:
    global active, model_active, state_active
    _model_cache.clear()
    active, model_active, state_active = _counts[0] > 0, _counts[1] > 0, _counts[2] > 0


# -- lookup (by the session) ---------------------------------------------------------------
def session_hooks(session: AsyncSession, name: str) -> tuple[Fn, ...]:
    """The session's listeners for ``name``: its sessionmaker's first, then its own."""
    maker, own = session._maker_events, session._events
    a = maker.by_name.get(name) if maker is not None else None
    b = own.by_name.get(name) if own is not None else None
    if a and b:
        return (*a, *b)
    if a:
        return tuple(a)
    if b:
        return tuple(b)
    return EMPTY


def model_hooks(cls: type, name: str) -> tuple[Fn, ...]:
    """The listeners for ``name`` of a model class: its bases' first, then its own."""
    key = (cls, name)
    hooks = _model_cache.get(key)
    if hooks is None:
        found: list[Fn] = []
        for base in reversed(cls.__mro__):
            reg = _models.get(base)
            if reg is not None:
                found.extend(reg.by_name.get(name, ()))
        hooks = _model_cache[key] = tuple(found)
    return hooks


async def call(hooks: tuple[Fn, ...], *args: Any) -> None:
    """Call session hooks in order, awaiting those that return an awaitable."""
    for fn in hooks:
        result = fn(*args)
        if _inspect.isawaitable(result):
            await result


def call_model(hooks: tuple[Fn, ...], mapper: Mapper, conn: Connection, objs: list[Any]) -> None:
    for fn in hooks:
        for obj in objs:
            fn(mapper, conn, obj)


def call_state(hooks: tuple[Fn, ...], session: AsyncSession, objs: Any) -> None:
    for obj in objs:
        for fn in hooks:
            fn(session, obj)
