"""A small connection pool shared by both dialects.

Why our own and not asyncpg's: a checkout that times out or is cancelled at
the very moment a connection is handed to it must give that connection back,
never drop it; releases must work from cleanup code that may itself be
cancelled; and SQLite needs the same discipline for its single serialized
connection.  Handing connections directly to waiting futures (FIFO) gives all
three with a few lines and no lock held across an await.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from .. import exc
from .base import DriverConnection, Pool, RoundTrips


class SlotPool(Pool):
    """Up to ``size`` connections made by ``connect()``, handed out FIFO."""

    def __init__(self, connect: Callable[[], Awaitable[DriverConnection]], size: int, what: str) -> None:
        if size < 1:
            raise exc.ArgumentError(f"pool_size must be at least 1, got {size}")
        self._connect = connect
        self.trips = RoundTrips()
        self.size = size
        self._what = what
        self._free: deque[DriverConnection] = deque()
        self._waiters: deque[asyncio.Future[DriverConnection | None]] = deque()
        #: connections open or being opened, counting a slot passed to a waiter that has not
        #: run yet: a checkout arriving meanwhile must not see that slot free (FIFO, and the cap)
        self._count = 0
        self._out = 0
        self._disposed = False

    @property
    def checked_out(self) -> int:
        return self._out

    @property
    def opened(self) -> int:
        """Connections open now (checked out or idle) or being opened, a slot handed to a
        waiter that has not run yet included.  One given back is counted until its
        ``close()`` has finished; one terminated without awaiting (``discard_nowait``) stops
        counting at once, though SQLite's worker thread closes it a moment later (a lock
        it still holds then is waited out by the next writer's busy timeout)."""
        return self._count

    async def acquire(self, timeout: float) -> DriverConnection:
        loop = asyncio.get_running_loop()
        if self._waiters:
            self._prune(loop)
        if self._free and not self._waiters:
            self._out += 1
            return await self._checkout(self._free.popleft(), loop)
        if self._count < self.size and not self._waiters:
            return await self._open()
        fut: asyncio.Future[DriverConnection | None] = loop.create_future()
        self._waiters.append(fut)
        handle = loop.call_later(timeout, _expire, fut)
        try:
            conn = await fut
        except BaseException:
            handle.cancel()
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                # handed a connection (or a right to open one) as we gave up
                got = fut.result()
                if got is not None:
                    self._out += 1
                    await self.release(got)
                else:
                    self._pass_slot()  # the slot it was handed (counted for it) goes on
            else:
                try:
                    self._waiters.remove(fut)
                except ValueError:
                    pass
            if fut.done() and not fut.cancelled() and isinstance(fut.exception(), _Expired):
                raise exc.PoolTimeoutError(
                    f"no {self._what} connection became free within pool_timeout={timeout}s: all "
                    f"pool_size={self.size} are in use; raise pool_size or pool_timeout, or end sessions "
                    "sooner (a session holds its connection until commit(), rollback() or close())"
                ) from None
            raise
        handle.cancel()
        if conn is None:  # handed a freed slot, already counted: open a connection in it
            return await self._open(counted=True)
        self._out += 1
        return await self._checkout(conn, loop)

    async def _checkout(self, conn: DriverConnection, loop: asyncio.AbstractEventLoop) -> DriverConnection:
        """An idle connection about to be handed out (counted in ``_out``): replaced by a new
        one if it belongs to another event loop, is known dead, or (pre_ping) fails a ping."""
        home = conn.loop
        if (home is not None and home is not loop) or conn.is_closed:
            # e.g. the previous asyncio.run() made it: awaiting it here would fail with
            # "attached to a different loop", so close it without I/O and open a fresh one
            self._forget(conn)
            return await self._open(counted=True)
        if self.pre_ping:
            try:
                await conn.ping()
            except Exception:
                # dead (server restarted, connection terminated): reconnect once; a failure
                # to connect is raised as the OperationalError it is
                self._forget(conn)
                return await self._open(counted=True)
            except BaseException:
                self._forget(conn)  # cancelled mid-ping: its state is unknown
                self._pass_slot()
                raise
        return conn

    def _forget(self, conn: DriverConnection) -> None:
        """A checked-out connection is terminated without awaiting; its slot stays counted,
        for the caller to open a connection in or to pass on (``_pass_slot``)."""
        self._out -= 1
        conn.terminate()

    def _prune(self, loop: asyncio.AbstractEventLoop) -> None:
        """Drop leading waiters of other event loops (a loop that ended while they waited):
        a new checkout must not queue behind them; any further back are skipped on hand-over."""
        waiters = self._waiters
        while waiters and (waiters[0].done() or waiters[0].get_loop() is not loop):
            waiters.popleft()

    async def _open(self, *, counted: bool = False) -> DriverConnection:
        """A new connection, checked out; ``counted``: in a slot already counted for it."""
        if not counted:
            self._count += 1
        self._out += 1
        try:
            return await self._connect()
        except BaseException:
            self._out -= 1
            self._pass_slot()
            raise

    def _next_waiter(self) -> asyncio.Future[DriverConnection | None] | None:
        """The first waiter still waiting on the running loop (a waiter of another loop
        could never use what it is handed); None without a running loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        while self._waiters:
            w = self._waiters.popleft()
            if not w.done() and w.get_loop() is loop:
                return w
        return None

    def _pass_slot(self) -> None:
        """A counted slot has no connection any more: the first waiter gets it, still
        counted, to open one in; with none waiting it is free."""
        w = self._next_waiter()
        if w is None:
            self._count -= 1
        else:
            w.set_result(None)

    def _hand_over(self, conn: DriverConnection) -> None:
        w = self._next_waiter()
        if w is not None:
            w.set_result(conn)
        else:
            self._free.append(conn)

    async def release(self, conn: DriverConnection, *, discard: bool = False) -> None:
        self._out -= 1
        if discard or self._disposed:
            try:
                await conn.close()
            except BaseException:
                pass
            # counted until closed, so pool_size caps the connections the server sees too
            if self._disposed:
                self._count -= 1
            else:
                self._pass_slot()
            return
        self._hand_over(conn)

    def release_nowait(self, conn: DriverConnection) -> None:
        self._out -= 1
        self._hand_over(conn)

    def discard_nowait(self, conn: DriverConnection) -> None:
        self._forget(conn)
        self._pass_slot()

    async def dispose(self) -> None:
        self._disposed = True
        free, self._free = list(self._free), deque()
        for conn in free:
            try:
                await conn.close()
            except BaseException:
                pass
            self._count -= 1
        self._disposed = False


class NullPool(Pool):
    """No idle connections (SQLAlchemy's NullPool idea): every checkout opens a connection,
    every release closes it.

    It wraps the dialect's own pool, whose size still caps how many are open at once (so
    SQLite keeps its single serialized writer) and whose FIFO waiting and ``pool_timeout``
    apply; that pool merely never keeps a released connection.
    """

    reuses_connections = False

    def __init__(self, inner: Pool) -> None:
        self.inner = inner
        self.trips = inner.trips
        # a pool that gives connections back by itself (SQLite's readers) closes them too
        inner.reuses_connections = False

    async def acquire(self, timeout: float) -> DriverConnection:
        return await self.inner.acquire(timeout)

    async def release(self, conn: DriverConnection, *, discard: bool = False) -> None:
        await self.inner.release(conn, discard=True)

    def release_nowait(self, conn: DriverConnection) -> None:
        self.inner.discard_nowait(conn)

    def discard_nowait(self, conn: DriverConnection) -> None:
        self.inner.discard_nowait(conn)

    async def dispose(self) -> None:
        await self.inner.dispose()

    @property
    def checked_out(self) -> int:
        return self.inner.checked_out

    @property
    def opened(self) -> int:
        return self.inner.opened


class _Expired(Exception):
    pass


def _expire(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_exception(_Expired())
