"""SQLite connections: one writer and pooled readers, and the routing of each statement.

This module is where SQLite's isolation is decided, apart from the dialect (``sqlite.py``:
SQL and errors) and from the single aiosqlite connection (``sqlite_connection.py``).

Connections and isolation.  A file database in WAL mode gets one *writer*
connection and up to ``pool_size`` *reader* connections (``PRAGMA
query_only``).  What an engine ``Connection`` checks out is a small router
(:class:`RoutedConnection`), not a driver connection; per statement it picks:

- Until a transaction first writes, each read runs alone (autocommit) on a
  pooled reader, so every statement sees the latest committed data, as
  PostgreSQL's default READ COMMITTED does; any number of sessions read at
  once, beside one writer.  A stream holds its reader, and its snapshot,
  until it is exhausted or closed or the transaction ends.  That holds whether
  the engine has begun the transaction or not (it begins at its first statement
  that is not a plain read, ``engine/connection.py``, e.g. a ``text()`` SELECT,
  which still reads here): a deferred BEGIN only says what the first write starts.
  A write the session sends alone without BEGIN (a commit's single statement) runs
  on the writer in autocommit.
- The first write takes the writer and starts ``BEGIN IMMEDIATE`` (in the
  same thread hop as the statement); the transaction keeps the writer, and
  runs its reads there too (it reads its own writes), until COMMIT/ROLLBACK.
  Writing transactions are thus serialized, and none ever upgrades a read
  snapshot to a write, the classic "database is locked" trap.  Waiting for
  the writer is bounded by ``pool_timeout``; so is the busy timeout with which
  the writer waits for a foreign writer (a second engine or process on the
  file) unless ``connect_args`` sets ``timeout``.
- Writes are INSERT/UPDATE/DELETE/REPLACE, DDL, SAVEPOINTs, any statement
  sent through ``execute`` (no rows), a ``WITH`` naming a DML keyword,
  every ``PRAGMA`` (some set the connection's state; the introspection ones
  read a schema cached per connection, which may predate DDL), a
  ``with_for_update()`` SELECT (its "lock": the writer, so read-modify-write
  is serialized as a row lock would on PostgreSQL) and anything unknown.  A
  write mistaken for a read is refused by ``query_only`` and rerun on the
  writer, so it never escapes its transaction (one begins for it if the engine
  sent it as a plain read, before BEGIN).

In short: READ COMMITTED until the first write, then SERIALIZABLE (the sole
writer) to the end.  ``isolation_level="SERIALIZABLE"`` runs the whole
transaction on the writer, from its first statement.  Between a read and a later write of one transaction
another may commit; use ``with_for_update()`` on the read to exclude that.
If a snapshot turns out stale anyway (SQLITE_BUSY_SNAPSHOT, e.g. after
``BEGIN`` sent by hand), :class:`aiouow.exc.StaleSnapshotError` says to roll
back and retry.  ``sqlite:///:memory:`` (one database per connection) and a
file that cannot use WAL keep a single connection for everything, each
transaction owning it from its first statement to its end.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncGenerator, Sequence
from typing import Any, cast

import aiosqlite

from .. import exc
from ..sql.elements import leading_keyword
from .base import Dialect, DriverConnection, Pool, RoundTrips
from .pool import SlotPool
from .sqlite_connection import (
    _PROGRESS_STEPS,
    SQLiteConnection,
    _daemonize,
    _raw_connection,
    _setup,
    _worker_call,
)

#: what SQLiteCompiler appends to a ``with_for_update()`` SELECT
FOR_UPDATE_MARK = " /* with_for_update */"

_DML_WORD = re.compile(r"\b(?:insert|update|delete|replace)\b", re.I)
_writes_cache: dict[str, bool] = {}


def _writes(sql: str) -> bool:
    """Whether a statement that returns rows must run on the writer (unknown ones do)."""
    try:
        return _writes_cache[sql]
    except KeyError:
        pass
    word = leading_keyword(sql)
    if word in ("select", "values", "explain"):
        verdict = sql.endswith(FOR_UPDATE_MARK)
    elif word == "with":
        verdict = sql.endswith(FOR_UPDATE_MARK) or _DML_WORD.search(sql) is not None
    else:
        verdict = True
    if len(_writes_cache) >= 4096:
        _writes_cache.clear()
    _writes_cache[sql] = verdict
    return verdict


def _refused_as_read(err: BaseException) -> bool:
    """A reader's ``query_only`` refused the statement: it writes after all (and wrote nothing)."""
    return isinstance(err, sqlite3.Error) and getattr(err, "sqlite_errorcode", None) == sqlite3.SQLITE_READONLY


class SQLitePool(Pool):
    """The connections of one SQLite database: one writer, up to ``size`` readers (WAL).

    ``acquire`` hands out a :class:`RoutedConnection` at once; the waiting (up to the
    timeout) happens when it needs a reader (only while another ``size`` statements or
    streams run) or the writer (while another transaction writes).
    """

    def __init__(self, dialect: Dialect, path: str, memory: bool, size: int,
                 connect_args: dict[str, Any]) -> None:
        self._dialect = dialect
        self._path = path
        self._memory = memory
        self._args = connect_args
        #: one connection for everything: ``:memory:``, or a file that cannot use WAL
        self.serial = memory
        self._timeout = 30.0
        self.trips = RoundTrips()
        self._readers = SlotPool(lambda: self._connect(True), size, "sqlite reader")
        self._writer = SlotPool(lambda: self._connect(False), 1, "sqlite writer")
        self._routers = 0

    @property
    def checked_out(self) -> int:
        """Connections checked out by engine Connections; with none out, driver connections
        still lent (a leak), so 0 means everything came back."""
        if self._routers:
            return self._routers
        return self._readers.checked_out + self._writer.checked_out

    @property
    def opened(self) -> int:
        return self._readers.opened + self._writer.opened

    @property
    def _waiters(self) -> list[Any]:
        return [*self._readers._waiters, *self._writer._waiters]

    async def acquire(self, timeout: float) -> RoutedConnection:
        self._timeout = timeout
        self._routers += 1
        return RoutedConnection(self, timeout)

    @property
    def pre_ping(self) -> bool:
        return self._writer.pre_ping

    @pre_ping.setter
    def pre_ping(self, value: bool) -> None:  # pyright: ignore[reportIncompatibleVariableOverride]
        self._readers.pre_ping = self._writer.pre_ping = value

    def _give_reader(self, rd: SQLiteConnection) -> None:
        if self.reuses_connections:
            self._readers.release_nowait(rd)
        else:  # poolclass="null": no idle connection kept, readers included
            self._readers.discard_nowait(rd)

    def _give_writer(self, w: SQLiteConnection) -> None:
        if self.reuses_connections:
            self._writer.release_nowait(w)
        else:
            self._writer.discard_nowait(w)

    async def release(self, conn: DriverConnection, *, discard: bool = False) -> None:
        assert isinstance(conn, RoutedConnection)
        self._routers -= 1
        w = conn._end()
        if w is not None:
            if discard or not self.reuses_connections:
                await self._writer.release(w, discard=True)
            else:
                self._writer.release_nowait(w)

    def release_nowait(self, conn: DriverConnection) -> None:
        assert isinstance(conn, RoutedConnection)
        self._routers -= 1
        w = conn._end()
        if w is not None:
            self._give_writer(w)

    def discard_nowait(self, conn: DriverConnection) -> None:
        assert isinstance(conn, RoutedConnection)
        self._routers -= 1
        w = conn._end()
        if w is not None:
            self._writer.discard_nowait(w)

    async def dispose(self) -> None:
        await self._readers.dispose()
        await self._writer.dispose()

    async def _connect(self, reader: bool) -> SQLiteConnection:
        # the writer's busy timeout: how long BEGIN IMMEDIATE waits for a foreign writer
        args = {"timeout": self._timeout, **self._args}
        aio = aiosqlite.connect(self._path, isolation_level=None, check_same_thread=False, **args)
        _daemonize(aio)  # a forgotten engine.dispose() must not keep the interpreter from exiting
        try:
            await aio
            raw = _raw_connection(aio)  # used only on aiosqlite's thread
            on_thread = _worker_call(aio)
            mode: str = await on_thread(_setup, raw, self._memory, reader)
            conn = SQLiteConnection(aio, raw, self.trips, reader)
            await on_thread(raw.set_progress_handler, conn._progress, _PROGRESS_STEPS)
        except sqlite3.Error as err:
            await aio.close()
            # e.g. "unable to open database file": never a bare driver error
            raise self._dialect.wrap(exc.OperationalError, err, None, None) from err
        except BaseException:
            aio.stop()  # cancelled while connecting: the worker thread must not outlive us
            raise
        if mode != "wal" and not self._memory:
            # no WAL (e.g. a file system without shared memory): a reader would block the
            # writer's COMMIT, so everything runs on the writer, one transaction at a time
            self.serial = True
        return conn


class RoutedConnection(DriverConnection):
    """What an engine ``Connection`` checks out on SQLite: reads on pooled readers until the
    transaction first writes, then everything on the writer (see the module docstring)."""

    __slots__ = ("_pool", "_timeout", "_w", "_tx", "_wtx", "_serializable", "_names", "_streams")

    def __init__(self, pool: SQLitePool, timeout: float) -> None:
        self._pool = pool
        self._timeout = timeout
        self._w: SQLiteConnection | None = None  # the writer, while held
        self._tx = False  # a transaction is open (BEGIN deferred to its first write)
        self._wtx = False  # ... and it runs on the writer (BEGIN sent, or due with the next statement)
        self._serializable = False  # ... and every statement of it runs there (isolation_level)
        self._names: list[str] = []
        #: readers held by open streams, each in a one-item list emptied when taken back
        self._streams: list[list[SQLiteConnection]] = []

    async def _take_writer(self) -> SQLiteConnection:
        try:
            return cast(SQLiteConnection, await self._pool._writer.acquire(self._timeout))
        except exc.PoolTimeoutError:
            what = ("the SQLite connection (one for every writing transaction: a :memory: database, or a "
                    "file without WAL)" if self._pool.serial else
                    "the SQLite writer (one writing transaction at a time)")
            raise exc.PoolTimeoutError(
                f"another transaction kept {what} for more than pool_timeout={self._timeout}s; "
                "commit transactions sooner, raise pool_timeout, or, if one task holds two such "
                "sessions, finish the first"
                + ("; a database file (WAL) lets reads run beside a writing transaction" if self._pool.serial
                   else "")
            ) from None

    async def _writer(self) -> SQLiteConnection:
        w = self._w
        if w is None:
            w = self._w = await self._take_writer()
        if self._tx and not self._wtx:
            self._wtx = True
            w.defer_begin_sql("BEGIN" if self._pool.serial else "BEGIN IMMEDIATE")
        return w

    def _on_writer(self, sql: str) -> bool:
        return self._w is not None or self._pool.serial or self._serializable or _writes(sql)

    async def reserve_writer(self) -> None:
        """Take the writer now, before a write that must not wait for it later."""
        await self._writer()

    async def fetch(self, sql: str, params: Sequence[Any]) -> list[Any]:
        if self._pool.serial and self._w is None and not _writes(sql):
            # one connection for everything: a read before the transaction's first write runs
            # alone on it and gives it back, as a reader would, so a transaction that only read
            # does not keep every other session waiting until it ends (issue 13)
            one = await self._take_writer()
            try:
                rows = await one.fetch(sql, params)
                self._names = one._names
                return rows
            finally:
                self._pool._give_writer(one)
        if not self._on_writer(sql):
            readers = self._pool._readers
            rd = cast(SQLiteConnection, await readers.acquire(self._timeout))
            try:
                rows = await rd.fetch(sql, params)
                self._names = rd._names
                return rows
            except Exception as err:
                if not _refused_as_read(err):
                    raise
                _writes_cache[sql] = True
                # a write sent as a plain read, which the engine ran before BEGIN: it must not
                # escape a transaction, so one begins for it (the engine sees ``in_transaction``)
                self._tx = True
            finally:
                self._pool._give_reader(rd)
        w = await self._writer()
        rows = await w.fetch(sql, params)
        self._names = w._names
        return rows

    def column_names(self, rows: list[Any]) -> list[str]:
        return self._names

    async def execute(self, sql: str, params: Sequence[Any]) -> int:
        return await (await self._writer()).execute(sql, params)

    async def executemany(self, sql: str, seq: Sequence[Sequence[Any]]) -> int:
        return await (await self._writer()).executemany(sql, seq)

    async def stream(self, sql: str, params: Sequence[Any], chunk: int) -> AsyncGenerator[list[Any], None]:
        if not self._on_writer(sql):
            readers = self._pool._readers
            rd = cast(SQLiteConnection, await readers.acquire(self._timeout))
            held = [rd]
            self._streams.append(held)
            cursor: sqlite3.Cursor | None = None
            try:
                try:
                    cursor = await rd._call(rd._open_cursor, sql, params)
                except Exception as err:
                    if not _refused_as_read(err):
                        raise
                    _writes_cache[sql] = True
                    self._tx = True  # as in fetch()
                if cursor is not None:
                    self._names = rd._names
                    while True:
                        if not held:
                            # the transaction ended: its streams ended with it, as on the writer
                            raise sqlite3.ProgrammingError("Cannot operate on a closed cursor.")
                        rows = await rd._call(cursor.fetchmany, chunk)
                        if not rows:
                            return
                        yield rows
            finally:
                if held:
                    held.clear()
                    self._streams.remove(held)
                    # back at once; closing the cursor is queued on the reader's thread
                    # before any statement of its next user
                    self._pool._give_reader(rd)
                    if cursor is not None and not rd.is_closed:  # a null pool closed it whole
                        await rd._call(rd._close_cursor, cursor)
            # refused by query_only: it writes after all
        w = await self._writer()
        async for rows in w.stream(sql, params, chunk):
            self._names = w._names
            yield rows

    def defer_begin(self, isolation_level: str | None = None) -> bool:
        self._tx = True
        # SERIALIZABLE: reads take the writer too, so the transaction sees one snapshot and no
        # other writer commits between its reads and its writes
        self._serializable = isolation_level == "SERIALIZABLE"
        return True

    def cancel_deferred_begin(self) -> bool:
        pending = self._tx
        self._tx = self._serializable = False
        w = self._w
        if w is not None and not w.in_transaction:
            # the transaction ends without having written: give a reserved writer back
            w.cancel_deferred_begin()
            self._wtx = False
            self._w = None
            self._pool._give_writer(w)
        return pending

    async def script(self, sql: str) -> None:
        if sql == "COMMIT" or sql == "ROLLBACK":
            self._tx = self._serializable = False
            self._drop_streams()
            w = self._w
            if w is None:
                return
            if not w.cancel_deferred_begin():
                await w.script(sql)  # a failed COMMIT keeps the writer (and the transaction)
            self._wtx = False
            self._w = None
            self._pool._give_writer(w)
            return
        # SAVEPOINT, RELEASE, ROLLBACK TO, and anything else: on the writer
        await (await self._writer()).script(sql)

    def _drop_streams(self) -> None:
        for held in self._streams:
            if held:
                # the reader closes the stream's cursor before its next statement (_start)
                self._pool._give_reader(held.pop())
        self._streams.clear()

    def _end(self) -> SQLiteConnection | None:
        """Give back the readers of open streams; the writer, if held, for the pool to take."""
        self._drop_streams()
        self._tx = self._wtx = self._serializable = False
        w, self._w = self._w, None
        if w is not None:
            w.cancel_deferred_begin()
        return w

    def interrupt(self) -> None:
        if self._w is not None:
            self._w.interrupt()

    @property
    def in_transaction(self) -> bool:
        w = self._w
        return w is not None and w.in_transaction

    async def close(self) -> None:
        raise NotImplementedError("a RoutedConnection goes back through its pool")
