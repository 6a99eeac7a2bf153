"""``scoped_session``: one session per asyncio task.

The registry is a ``ContextVar`` whose value is a small slot holding the
session *and the task that owns it*.  Context variables are copied into every
child task (``create_task``, ``gather``, ``TaskGroup``, anyio task groups), so
a plain context variable would hand a parent's session, with its connection
and its transaction, to every child; checking the owner task closes that trap:
a child sees its parent's slot, finds it is not the owner, and gets a session
of its own.

A session that ``db()`` creates implicitly is closed when its task finishes
(a done-callback schedules a shielded ``close()``, which rolls back whatever
was not committed and returns the connection), with a ``ResourceWarning`` if
it still had work in progress: call ``await db.remove()`` (or use
``async with db.scope():``) to end it deliberately.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from .. import exc
from .session import AsyncSession

if TYPE_CHECKING:
    from ..engine.connection import Connection
    from ..engine.engine import Engine

if TYPE_CHECKING:
    # db.execute(...), db.get(...), db.new, ...: the proxied session attributes (see _PROXIED),
    # typed as the session's own, overloads included
    _SessionAttributes = AsyncSession
else:
    _SessionAttributes = object

# closes of sessions whose task ended; referenced until done
_closing: set[asyncio.Task[Any]] = set()


def _task() -> asyncio.Task[Any]:
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    if task is None:
        raise exc.InvalidRequestError(
            "scoped_session needs a running asyncio task: call db() from async code (a coroutine run by "
            "asyncio.run(), a task, or a request handler)"
        )
    return task


class _Slot:
    """The current session of one task (or of one ``scope()`` block in it)."""

    __slots__ = ("task", "session", "implicit", "__weakref__")

    def __init__(self, task: asyncio.Task[Any], session: AsyncSession | None, implicit: bool) -> None:
        self.task = task
        self.session = session
        self.implicit = implicit  # created by db(): closed when the task ends


def _has_work(session: AsyncSession) -> bool:
    return (session.in_transaction() or session._conn is not None or session._routed is not None
            or bool(session._new or session._deleted))


async def _close_quietly(session: AsyncSession) -> None:
    try:
        await session.close()  # close() is cancellation-safe itself: the rollback always runs to its end
    except Exception:  # noqa: BLE001 - a broken connection is discarded by close(); nothing to report to
        pass


class scoped_session(_SessionAttributes):  # noqa: N801 - SQLAlchemy's name, kept on purpose
    """A registry of one session per task: ``db = scoped_session(Session)``.

    - ``db()``: the current task's session, created (``Session()``) on first use.
      A child task never sees its parent's session; it gets its own.
    - ``async with db.scope() as session:``: a new session for the block (even if
      the task has one), closed on exit; the task's previous session is current
      again afterwards.
    - ``await db.remove()``: close the current task's session and forget it.

    ``db.add(obj)``, ``await db.execute(stmt)`` and the other session methods
    act on ``db()``.

    Attributes:
        session_factory: What makes each task's session (a ``sessionmaker``).
    """

    def __init__(self, session_factory: Callable[..., AsyncSession]) -> None:
        self.session_factory = session_factory
        self._var: ContextVar[_Slot | None] = ContextVar(f"aiouow.scoped_session@{id(self):x}", default=None)

    # -- the registry ---------------------------------------------------------------
    def __call__(self, **kw: Any) -> AsyncSession:
        """The current task's session (created on first use; keywords go to the factory then)."""
        task = _task()
        slot = self._var.get()
        if slot is not None and slot.task is task:
            session = slot.session
            if session is None:  # after remove() inside a scope() block
                session = slot.session = self.session_factory(**kw)
            elif kw:
                raise exc.InvalidRequestError(
                    "this task already has a session; keyword arguments are only accepted when db() creates "
                    "one (call `await db.remove()` first, or use `async with db.scope():`)"
                )
            return session
        # no slot, or the parent's (copied into this task with the context): a session of its own
        session = self.session_factory(**kw)
        slot = _Slot(task, session, implicit=True)
        self._var.set(slot)
        def done(_: asyncio.Task[Any], slot: _Slot = slot) -> None:
            self._task_done(slot)

        task.add_done_callback(done)
        return session

    def has(self) -> bool:
        """Whether the current task has a session already."""
        try:
            task = _task()
        except exc.InvalidRequestError:
            return False
        slot = self._var.get()
        return slot is not None and slot.task is task and slot.session is not None

    async def remove(self) -> None:
        """Close the current task's session (rolling back what was not committed) and forget it.

        The next ``db()`` creates a new one.
        """
        task = _task()
        slot = self._var.get()
        if slot is None or slot.task is not task or slot.session is None:
            return
        session, slot.session = slot.session, None
        await session.close()

    @asynccontextmanager
    async def scope(self, **kw: Any) -> AsyncIterator[AsyncSession]:
        """A new session for the block: ``async with db.scope() as session:``.

        It is closed on exit (never committed implicitly); the task's previous session is current
        again afterwards.
        """
        task = _task()
        session = self.session_factory(**kw)
        previous = self._var.get()
        slot = _Slot(task, session, implicit=False)
        token = self._var.set(slot)
        try:
            yield session
        finally:
            try:
                current = slot.session
                slot.session = None
                if current is not None:
                    await current.close()
            finally:
                try:
                    self._var.reset(token)
                except ValueError:  # left in another context than it was entered in
                    self._var.set(previous)

    def _task_done(self, slot: _Slot) -> None:
        session = slot.session
        slot.session = None
        if session is None:
            return
        if _has_work(session):
            warnings.warn(
                f"task {slot.task.get_name()!r} ended without `await db.remove()`; its scoped session was "
                "closed for it and its uncommitted work rolled back. End a task's session explicitly "
                "(remove(), or `async with db.scope():`)",
                ResourceWarning,
                stacklevel=1,
            )
        try:
            loop = slot.task.get_loop()
            if loop.is_closed():
                return
            closer = loop.create_task(_close_quietly(session))
        except RuntimeError:
            return
        _closing.add(closer)
        closer.add_done_callback(_closing.discard)

    # -- session methods and settings, acting on db() ----------------------------------------
    if TYPE_CHECKING:
        # the registry is no session of its own to enter: `async with db.scope() as session:`
        __aenter__: None  # type: ignore[assignment]
        __aexit__: None  # type: ignore[assignment]

        # read through the registry, set only on a session (db().bind ...) or its factory
        @property
        def bind(self) -> Engine | Connection | None: ...  # type: ignore[override]
        @property
        def autobegin(self) -> bool: ...  # type: ignore[override]
        @property
        def join_transaction_mode(self) -> str: ...  # type: ignore[override]
    else:
        def __getattr__(self, name: str) -> Any:
            if name.startswith("_") or name not in _PROXIED:
                raise AttributeError(f"{type(self).__name__!r} has no attribute {name!r}")
            return getattr(self(), name)

        def __setattr__(self, name: str, value: Any) -> None:
            # db.autoflush = False sets it on the task's session, as SQLAlchemy's proxy does;
            # any other session attribute written here would be silently lost, so it is refused
            if name in _SETTINGS:
                setattr(self(), name, value)
            elif name in _PROXIED:
                raise AttributeError(f"scoped_session: {name!r} cannot be set through the registry; "
                                     f"it belongs to the task's session, db()")
            else:
                object.__setattr__(self, name, value)

    def __contains__(self, obj: object) -> bool:
        return obj in self()

    def __iter__(self) -> Iterator[Any]:
        return iter(self())

    def __repr__(self) -> str:
        return f"scoped_session({self.session_factory!r})"


_PROXIED = frozenset({
    "add", "add_all", "begin", "begin_nested", "close", "commit", "connection", "delete", "deleted", "dirty",
    "execute", "expire", "expire_all", "expunge", "expunge_all", "flush", "get", "get_one", "identity_map",
    "in_nested_transaction", "in_transaction", "info", "is_active", "is_modified", "load", "load_all", "merge",
    "merge_all", "new", "no_autoflush", "refresh", "rollback", "scalar", "scalars", "stream", "stream_scalars",
    "bind", "autoflush", "expire_on_commit", "autobegin", "join_transaction_mode", "n_plus_one",
    "n_plus_one_threshold",
})
#: the proxied names that may also be set through the registry (on the task's session)
_SETTINGS = frozenset({"autoflush", "expire_on_commit", "n_plus_one", "n_plus_one_threshold"})
