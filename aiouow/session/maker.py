"""``sessionmaker``: a configured factory of sessions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ..engine.base import Connection, Engine
from .session import AsyncSession


class sessionmaker:  # noqa: N801 - SQLAlchemy's name, kept on purpose
    """``Session = sessionmaker(engine, expire_on_commit=True, autoflush=True, autobegin=True)``.

    ``Session()`` makes a session (keywords override the defaults);
    ``async with Session.begin() as session:`` commits on success, rolls back
    on error, and closes.
    """

    def __init__(self, bind: Engine | Connection | None = None, *, class_: type[AsyncSession] = AsyncSession,
                 expire_on_commit: bool = True, autoflush: bool = True, autobegin: bool = True,
                 info: dict[str, Any] | None = None, **kw: Any) -> None:
        self.class_ = class_
        self.kw: dict[str, Any] = {"bind": bind, "expire_on_commit": expire_on_commit, "autoflush": autoflush,
                                   "autobegin": autobegin, "info": info, **kw}

    def __call__(self, **local_kw: Any) -> AsyncSession:
        kw = {**self.kw, **local_kw}
        if kw.get("info") is not None:
            kw["info"] = dict(kw["info"])
        return self.class_(**kw)

    def configure(self, **kw: Any) -> None:
        """Change the defaults for sessions made from now on."""
        self.kw.update(kw)

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncSession]:
        """A new session in a transaction: committed on success, rolled back on error, closed."""
        session = self()
        async with session:
            async with session.begin():
                yield session

    def __repr__(self) -> str:
        return f"sessionmaker(bind={self.kw.get('bind')!r})"
