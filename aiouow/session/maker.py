"""``sessionmaker``: a configured factory of sessions."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from ..engine.connection import Connection
from ..engine.engine import Engine
from ..events import Registry
from .binds import replica_set
from .session import AsyncSession, SessionTransaction


class sessionmaker:  # noqa: N801 - SQLAlchemy's name, kept on purpose
    """``Session = sessionmaker(engine, expire_on_commit=True, autoflush=True, autobegin=True)``.

    ``replicas=[engine, ...]`` (reads go to them, round robin across the sessions made here),
    ``binds={Model: engine}`` and ``get_bind=`` are passed to every session (``AsyncSession``).

    ``Session()`` makes a session (keywords override the defaults);
    ``async with Session.begin() as session:`` commits on success, rolls back
    on error, and closes.

    Attributes:
        class_: The session class it makes (``AsyncSession`` or a subclass).
        kw: The keywords every session is made with; :meth:`configure` changes them.
    """

    def __init__(self, bind: Engine | Connection | None = None, *, class_: type[AsyncSession] = AsyncSession,
                 expire_on_commit: bool = True, autoflush: bool = True, autobegin: bool = True,
                 info: dict[str, Any] | None = None, **kw: Any) -> None:
        self.class_ = class_
        self.kw: dict[str, Any] = {"bind": bind, "expire_on_commit": expire_on_commit, "autoflush": autoflush,
                                   "autobegin": autobegin, "info": info}
        #: listeners (``aiouow.events``) of every session made here, shared with them by reference
        self._events: Registry | None = Registry()
        self.configure(**kw)

    def __call__(self, **local_kw: Any) -> AsyncSession:
        kw = {**self.kw, **local_kw}
        if kw.get("info") is not None:
            kw["info"] = dict(kw["info"])
        session = self.class_(**kw)
        session._maker_events = self._events
        return session

    def configure(self, **kw: Any) -> None:
        """Change the defaults for sessions made from now on."""
        if kw.get("replicas") not in (None, False):
            # one set for every session made here: round robin spans them
            kw["replicas"] = replica_set(kw["replicas"])
        self.kw.update(kw)

    def begin(self) -> _BeginSession:
        """A new session in a transaction: ``async with Session.begin() as session:``.

        The transaction is committed on success and rolled back on error; the session is closed.
        """
        return _BeginSession(self())

    def __repr__(self) -> str:
        return f"sessionmaker(bind={self.kw.get('bind')!r})"


class _BeginSession:
    """What ``sessionmaker.begin()`` returns."""

    __slots__ = ("session", "_tx")

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._tx: SessionTransaction | None = None

    async def __aenter__(self) -> AsyncSession:
        self._tx = self.session.begin()
        return self.session

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            if self._tx is not None:
                await self._tx.__aexit__(et, e, tb)
        finally:
            await self.session.close()
