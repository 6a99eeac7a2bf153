"""Counting round trips, the same way for every system, without touching any of them.

A round trip is a request that has to wait for the database's answer before the program goes
on.  The count comes from a separate pass (untimed: the counting itself costs time):

* PostgreSQL: the systems connect through a loopback TCP proxy (:class:`RoundTripProxy`) that
  forwards bytes both ways and counts, per connection, the client's bursts: bytes the client
  sends after the server last spoke, or first on a connection.  A pipelined request (asyncpg's
  ``executemany``, a statement sent with its BEGIN) is one burst; a request that waits for the
  previous reply is a new one.  No message is parsed, so it also holds under TLS.
* SQLite: there is no socket; a statement costs a hop to aiosqlite's worker thread and back, so
  the count is the calls into that thread (``aiosqlite.Connection._execute``, through which every
  aiosqlite operation goes, and which aiouow uses too), wrapped for the duration of the pass.

Either way the connections of the counting pass are the systems' own, opened for the pass;
the harness's admin connection (seeding and checks) is not counted.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit


class RoundTripProxy:
    """``async with RoundTripProxy(dsn) as proxy:`` then connect to ``proxy.dsn``; ``proxy.count``."""

    def __init__(self, dsn: str) -> None:
        parts = urlsplit(dsn)
        self._parts = parts
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 5432
        self.count = 0
        self.dsn = dsn
        self._server: Any = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> RoundTripProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        user = self._parts.netloc.rpartition("@")[0]
        netloc = f"{user}@127.0.0.1:{port}" if user else f"127.0.0.1:{port}"
        self.dsn = urlunsplit(self._parts._replace(netloc=netloc))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            for t in list(self._tasks):
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        server_r, server_w = await asyncio.open_connection(self._host, self._port)
        waiting = [False]  # the client has spoken since the server last did

        async def upstream() -> None:
            while data := await client_r.read(65536):
                if not waiting[0]:
                    waiting[0] = True
                    self.count += 1
                server_w.write(data)
                await server_w.drain()
            server_w.close()

        async def downstream() -> None:
            while data := await server_r.read(65536):
                waiting[0] = False
                client_w.write(data)
                await client_w.drain()
            client_w.close()

        try:
            await asyncio.gather(upstream(), downstream())
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            for w in (server_w, client_w):
                w.close()
            self._tasks.discard(task)


class CallCounter:
    count = 0


@contextlib.contextmanager
def counting_sqlite_calls(excluded: list[Any]) -> Iterator[CallCounter]:
    """Count calls into aiosqlite's worker thread, except those of the ``excluded`` connections."""
    import aiosqlite

    counter = CallCounter()
    skip = {id(c) for c in excluded}
    original = aiosqlite.Connection._execute

    async def _execute(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if id(self) not in skip:
            counter.count += 1
        return await original(self, fn, *args, **kwargs)

    aiosqlite.Connection._execute = _execute  # type: ignore[method-assign]
    try:
        yield counter
    finally:
        aiosqlite.Connection._execute = original  # type: ignore[method-assign]
