"""ASGI middleware: one scoped session per request.

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

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .session.scoping import scoped_session

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SCOPE_KEY = "aiouow.session"

__all__ = ["SCOPE_KEY", "SessionMiddleware"]


class SessionMiddleware:
    """Wrap an ASGI application so every request gets its own session from ``db``."""

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
