"""Web frameworks: a session per request, as ASGI middleware or as a FastAPI dependency.

```python
from aiouow import scoped_session, sessionmaker
from aiouow.asgi import SessionMiddleware

db = scoped_session(sessionmaker(engine))
app = SessionMiddleware(app, db)        # or Starlette(middleware=[Middleware(SessionMiddleware, db=db)])

async def handler(request):
    session = db()                      # this request's session
    ...
    await session.commit()              # commit explicitly: nothing is committed for you
```

Each HTTP or WebSocket connection runs inside ``db.scope()``: ``db()`` in the
request's task returns a session of its own, closed (uncommitted work rolled
back, connection returned to the pool) once the application has sent its
response, or has failed.  The middleware never commits.  The session is also
put in the ASGI scope as ``scope["aiouow.session"]``, for code running in
other tasks on behalf of the request (a child task never sees its parent's
session through ``db()``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from .session.maker import sessionmaker
from .session.scoping import scoped_session
from .session.session import AsyncSession

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SCOPE_KEY = "aiouow.session"
"""The key of the request's session in the ASGI scope: ``request.scope["aiouow.session"]``."""

__all__ = ["SCOPE_KEY", "SessionMiddleware", "session_dependency"]


def session_dependency(factory: sessionmaker | scoped_session) -> Callable[[], AsyncIterator[AsyncSession]]:
    """A FastAPI dependency (``Depends(get_session)``) giving each request a session of its own.

    ``get_session = session_dependency(sessionmaker(engine))``; with a ``scoped_session`` the
    request's session is also what ``db()`` returns in the request's task. The session is closed
    after the response; if the endpoint (or a later dependency) raised, it is rolled back first
    and the exception goes on to FastAPI's handlers, as its rules for dependencies with ``yield``
    require. Nothing is committed for you: endpoints commit explicitly.
    """
    if isinstance(factory, scoped_session):
        db = factory

        async def get_scoped_session() -> AsyncIterator[AsyncSession]:
            async with db.scope() as session:
                try:
                    yield session
                except BaseException:
                    await session.rollback()
                    raise

        return get_scoped_session
    if not isinstance(factory, sessionmaker):
        raise TypeError(f"session_dependency() takes a sessionmaker or a scoped_session, not {factory!r}")
    maker = factory

    async def get_session() -> AsyncIterator[AsyncSession]:
        async with maker() as session:
            try:
                yield session
            except BaseException:
                await session.rollback()
                raise

    return get_session


class SessionMiddleware:
    """Wrap an ASGI application so every request gets its own session from ``db``.

    Attributes:
        app: The wrapped ASGI application.
        db: The registry each request's session comes from (``db.scope()`` around the request).
    """

    def __init__(self, app: ASGIApp, db: scoped_session) -> None:
        if not isinstance(db, scoped_session):
            raise TypeError(f"SessionMiddleware(app, db) takes a scoped_session, not {db!r}")
        self.app = app
        self.db = db

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)  # lifespan: no session
            return
        async with self.db.scope() as session:
            scope[SCOPE_KEY] = session
            try:
                await self.app(scope, receive, send)
            finally:
                scope.pop(SCOPE_KEY, None)
