"""One SQLite connection: statements on aiosqlite's worker thread, and cancellation there.

Each statement costs one hop to aiosqlite's worker thread: the statement,
its fetch and (after ``begin()``) the deferred ``BEGIN`` run in one function.
A cancelled call is skipped if it has not started, or stopped at SQLite's next progress
check if it has.  Separate from the routing (``sqlite_pool.py``), which decides which of these
connections a statement runs on; this module is also the only one that touches aiosqlite's
private attributes (the section at the end).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Any

import aiosqlite

from .base import DriverConnection, RoundTrips


def _setup(raw: sqlite3.Connection, memory: bool, reader: bool) -> str:
    """The PRAGMAs of a new connection; the journal mode it got."""
    raw.execute("PRAGMA foreign_keys=ON")
    if memory:
        return "memory"
    mode = str(raw.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
    raw.execute("PRAGMA synchronous=NORMAL")
    if reader:
        raw.execute("PRAGMA query_only=ON")
    return mode


# SQLite calls the progress handler every this many virtual-machine steps (a few microseconds)
_PROGRESS_STEPS = 1000


class _Job:
    """One call queued to aiosqlite's worker thread; ``cancelled`` is set by the event loop."""

    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False


class _JobCancelled(Exception):
    pass


class SQLiteConnection(DriverConnection):
    __slots__ = ("_aio", "_on_thread", "_raw", "_begin", "_names", "_job", "_cursors", "_reader", "_trips")

    def __init__(self, aio: aiosqlite.Connection, raw: sqlite3.Connection, trips: RoundTrips,
                 reader: bool = False) -> None:
        self._aio = aio
        #: the engine's round-trip count: one per hop to the worker thread (``_call``)
        self._trips = trips
        self._on_thread: Callable[..., Awaitable[Any]] = _worker_call(aio)
        self._raw = raw
        #: the BEGIN the next statement sends first, if any
        self._begin: str | None = None
        #: a reader runs every statement alone; a cursor left from an earlier checkout would
        #: keep its read transaction, and so an old snapshot, open under the next statements
        self._reader = reader
        self._names: list[str] = []
        self._job: _Job | None = None  # the job running on the worker thread
        #: cursors of streams not yet finished; closed when the transaction ends, so a stream
        #: abandoned mid-way cannot keep tables locked for the next user of the connection
        self._cursors: list[sqlite3.Cursor] = []

    async def _call(self, fn: Any, *args: Any) -> Any:
        self._trips.count += 1
        job = _Job()
        try:
            return await self._on_thread(self._run_job, job, fn, args)
        except asyncio.CancelledError:
            # aiosqlite's thread would still run (or finish) the call: a job not started yet is
            # skipped, a running statement stops at its next progress check (interrupt() alone
            # is lost when it lands before the statement starts)
            job.cancelled = True
            if self._job is job:
                self._raw.interrupt()
            raise

    def _run_job(self, job: _Job, fn: Any, args: tuple[Any, ...]) -> Any:
        if job.cancelled:
            raise _JobCancelled()
        self._job = job
        try:
            return fn(*args)
        finally:
            self._job = None

    def _progress(self) -> int:
        job = self._job
        return 1 if job is not None and job.cancelled else 0

    def _start(self) -> None:
        begin = self._begin
        if begin is not None:
            self._begin = None
            self._raw.execute(begin)
        elif self._reader and self._cursors:
            while self._cursors:
                self._cursors.pop().close()

    def _fetch(self, sql: str, params: Sequence[Any]) -> list[Any]:
        self._start()
        cur = self._raw.execute(sql, params)
        rows = cur.fetchall()
        self._names = [d[0] for d in cur.description] if cur.description else []
        return rows

    def _execute(self, sql: str, params: Sequence[Any]) -> int:
        self._start()
        return self._raw.execute(sql, params).rowcount

    def _executemany(self, sql: str, seq: Sequence[Sequence[Any]]) -> int:
        self._start()
        return self._raw.executemany(sql, seq).rowcount

    async def fetch(self, sql: str, params: Sequence[Any]) -> list[Any]:
        rows: list[Any] = await self._call(self._fetch, sql, params)
        return rows

    async def execute(self, sql: str, params: Sequence[Any]) -> int:
        count: int = await self._call(self._execute, sql, params)
        return count

    async def executemany(self, sql: str, seq: Sequence[Sequence[Any]]) -> int:
        count: int = await self._call(self._executemany, sql, seq)
        return count

    async def stream(self, sql: str, params: Sequence[Any], chunk: int) -> AsyncGenerator[list[Any], None]:
        cursor = await self._call(self._open_cursor, sql, params)
        try:
            while True:
                rows = await self._call(cursor.fetchmany, chunk)
                if not rows:
                    return
                yield rows
        finally:
            if cursor in self._cursors:
                await self._call(self._close_cursor, cursor)

    def _open_cursor(self, sql: str, params: Sequence[Any]) -> sqlite3.Cursor:
        self._start()
        cursor = self._raw.execute(sql, params)
        self._names = [d[0] for d in cursor.description] if cursor.description else []
        self._cursors.append(cursor)
        return cursor

    def _close_cursor(self, cursor: sqlite3.Cursor) -> None:
        if cursor in self._cursors:
            self._cursors.remove(cursor)
        cursor.close()

    def column_names(self, rows: list[Any]) -> list[str]:
        """Names of the columns of the last fetch."""
        return self._names

    def defer_begin_sql(self, sql: str) -> None:
        """The next statement starts a transaction with ``sql`` (in the same thread hop); the
        router picks ``BEGIN`` or ``BEGIN IMMEDIATE``."""
        self._begin = sql

    def cancel_deferred_begin(self) -> bool:
        """Forget a BEGIN no statement needed; True if one was pending."""
        pending = self._begin is not None
        self._begin = None
        return pending

    async def script(self, sql: str) -> None:
        await self._call(self._script, sql)

    def _script(self, sql: str) -> None:
        if sql in ("ROLLBACK", "COMMIT"):
            while self._cursors:
                self._cursors.pop().close()
        if sql == "ROLLBACK":
            # a deferred BEGIN no statement needed, or a transaction SQLite already ended
            # (an interrupted write rolls the whole transaction back): nothing to roll back
            self._begin = None
            if not self._raw.in_transaction:
                return
        self._start()
        self._raw.execute(sql)

    def interrupt(self) -> None:
        try:
            self._raw.interrupt()
        except Exception:
            pass

    @property
    def in_transaction(self) -> bool:
        return self._raw.in_transaction

    # aiosqlite makes a future on the awaiting loop for every call, so a connection serves
    # any event loop (``loop`` stays None); it is dead once its worker thread is gone
    @property
    def is_closed(self) -> bool:
        return not _worker_alive(self._aio)

    async def ping(self) -> None:
        await self._call(_select_one, self._raw)

    def terminate(self) -> None:
        # stop the worker thread; it closes the sqlite3 connection (rolling back what was not
        # committed) once the queued calls are done.  aiosqlite's stop() makes its reply future
        # on whatever loop it sees; if that loop closed before the reply, the worker thread
        # would die with "Event loop is closed".  Called from a thread that sees no loop, stop()
        # asks for no reply.
        if not self.is_closed:
            _refuse_calls(self._aio)  # closed for new calls now (stop() would say so later)
            threading.Thread(target=_stop_quietly, args=(self._aio,), daemon=True).start()

    async def close(self) -> None:
        await self._aio.close()


# -- aiosqlite internals ----------------------------------------------------------------------
# The only private aiosqlite attributes used (pyproject.toml pins aiosqlite below the next
# minor release for them): aiosqlite has no public way to run a function on its worker thread
# (``_execute``; statements run as sqlite3 calls there, in one hop with a deferred BEGIN and the
# cancellation check), to reach the sqlite3 connection (``_conn``: progress handler, interrupt,
# in_transaction), to tell whether the worker is alive (``_running``, ``_connection``,
# ``_thread``), or to refuse new calls before ``stop()`` returns (``_running``).

def _worker_call(aio: aiosqlite.Connection) -> Callable[..., Awaitable[Any]]:
    """``await call(fn, *args)``: ``fn(*args)`` on the worker thread."""
    call: Callable[..., Awaitable[Any]] = aio._execute
    return call


def _raw_connection(aio: aiosqlite.Connection) -> sqlite3.Connection:
    return aio._conn


def _worker_alive(aio: aiosqlite.Connection) -> bool:
    if not aio._running or aio._connection is None:
        return False
    thread: Any = getattr(aio, "_thread", aio)  # aiosqlite < 0.21: the connection is the thread
    return bool(thread.is_alive())


def _refuse_calls(aio: aiosqlite.Connection) -> None:
    aio._running = False


def _daemonize(aio: aiosqlite.Connection) -> None:
    thread = getattr(aio, "_thread", None)
    if thread is not None:
        thread.daemon = True


def _stop_quietly(aio: aiosqlite.Connection) -> None:
    try:
        aio.stop()
    except Exception:
        pass


def _select_one(raw: sqlite3.Connection) -> None:
    raw.execute("SELECT 1").fetchall()
