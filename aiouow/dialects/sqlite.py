"""SQLite through aiosqlite.

Connections and isolation.  A file database in WAL mode gets one *writer*
connection and up to ``pool_size`` *reader* connections (``PRAGMA
query_only``).  What an engine ``Connection`` checks out is a small router
(:class:`RoutedConnection`), not a driver connection; per statement it picks:

- Until a transaction first writes, each read runs alone (autocommit) on a
  pooled reader, so every statement sees the latest committed data, as
  PostgreSQL's default READ COMMITTED does; any number of sessions read at
  once, beside one writer.  A stream holds its reader, and its snapshot,
  until it is exhausted or closed or the transaction ends.
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
  writer, so it never escapes its transaction.

In short: READ COMMITTED until the first write, then SERIALIZABLE (the sole
writer) to the end.  Between a read and a later write of one transaction
another may commit; use ``with_for_update()`` on the read to exclude that.
If a snapshot turns out stale anyway (SQLITE_BUSY_SNAPSHOT, e.g. after
``BEGIN`` sent by hand), :class:`aiouow.exc.StaleSnapshotError` says to roll
back and retry.  ``sqlite:///:memory:`` (one database per connection) and a
file that cannot use WAL keep a single connection for everything, each
transaction owning it from its first statement to its end.

Each statement costs one hop to aiosqlite's worker thread: the statement,
its fetch and (after ``begin()``) the deferred ``BEGIN`` run in one function.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import os
import re
import sqlite3
import threading
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Any, cast

import aiosqlite

from .. import exc
from .. import types as sqltypes
from ..sql.compiler import Compiler
from ..sql.elements import leading_keyword
from .base import Dialect, DriverConnection, Pool, Processor, decimal_reader, json_dumps, json_loads, none_safe
from .pool import SlotPool


class SQLiteCompiler(Compiler):
    def placeholder(self, position: int) -> str:
        return "?"

    def limit_clause(self, limit: str | None, offset: str | None) -> str:
        if limit is None:
            limit = "-1"
        return super().limit_clause(limit, offset)

    def for_update_clause(self) -> str:
        # no row locks in SQLite: the comment tells the router to run this read on the writer
        return FOR_UPDATE_MARK


def _interval_to_db(v: dt.timedelta) -> int:
    return v // dt.timedelta(microseconds=1)


def _iso(v: dt.time | dt.datetime) -> str:
    return v.isoformat()  # a time "HH:MM:SS[.ffffff]": SQLite's form


def _date_to_db(v: dt.date) -> str:
    # "YYYY-MM-DD"; a datetime given for a date keeps its date, as PostgreSQL's DATE does (its
    # full text would never read back as a date, nor compare as one)
    if v.__class__ is not dt.date and isinstance(v, dt.datetime):
        v = v.date()
    return v.isoformat()


_EPOCH = dt.datetime(1970, 1, 1)


def _interval_from_db(v: Any) -> dt.timedelta:
    if v.__class__ is int or v.__class__ is float:
        return dt.timedelta(microseconds=v)
    if isinstance(v, str):
        try:
            return dt.timedelta(microseconds=int(v))
        except ValueError:
            pass
        try:
            # SQLAlchemy's form on SQLite: the duration as a datetime after 1970-01-01
            return dt.datetime.fromisoformat(v) - _EPOCH
        except ValueError:
            pass
    raise exc.DataError(f"the database holds {v!r} in an Interval column, which is neither a number of "
                        f"microseconds nor a datetime after 1970-01-01; update the rows")


def _datetime_to_db(v: dt.datetime) -> str:
    # SQLite's own form, the one CURRENT_TIMESTAMP and datetime() write: a space, and a fraction
    # only when there is one, so that text order is time order and equal instants are equal text.
    # An aware value is written as UTC without an offset: SQLite's functions take every time
    # as UTC, and one offset is what makes text compare and sort as instants (as PostgreSQL's
    # TIMESTAMP WITH TIME ZONE does).
    if v.tzinfo is not None:
        offset = v.utcoffset()
        if offset is not None:
            if offset:
                v = v.astimezone(_UTC)
            v = v.replace(tzinfo=None)
    return v.isoformat(" ")


def _aware_from_db(v: str) -> dt.datetime:
    # a naive text (CURRENT_TIMESTAMP, aiouow) is UTC; a text with an offset (another tool) is
    # read as that instant, in UTC like PostgreSQL returns it
    d = dt.datetime.fromisoformat(v)
    if d.tzinfo is None:
        return d.replace(tzinfo=_UTC)
    return d if d.utcoffset() == _NO_OFFSET else d.astimezone(_UTC)


def _date_from_db(v: str) -> dt.date:
    try:
        return dt.date.fromisoformat(v)
    except (TypeError, ValueError):
        pass
    try:
        # a datetime at midnight, as some tools write a date
        d = dt.datetime.fromisoformat(v)
    except (TypeError, ValueError):
        d = None
    if d is not None and d.time() == dt.time(0):
        return d.date()
    raise exc.DataError(f"the database holds {v!r} in a Date column, which is not a date (YYYY-MM-DD); "
                        f"update the rows or map the column as DateTime")


def _uuid_from_db(v: Any) -> uuid.UUID:
    if v.__class__ is str:
        return uuid.UUID(v)  # with or without dashes (SQLAlchemy writes 32 hex digits)
    if isinstance(v, (bytes, bytearray, memoryview)) and len(v) == 16:
        return uuid.UUID(bytes=bytes(v))
    raise exc.DataError(f"the database holds {v!r} in a Uuid column, which is not a UUID; update the rows")


class _Booleans(dict[Any, bool]):
    """Stored forms of a boolean; a dict lookup per value, Python code only for odd forms."""

    def __missing__(self, key: Any) -> bool:
        if isinstance(key, (int, float)):
            return key != 0
        if isinstance(key, str) and key.strip().lower() in self:
            return self[key.strip().lower()]
        raise exc.DataError(f"the database holds {key!r} in a Boolean column, which is not a boolean "
                            f"(0/1, true/false); update the rows or map the column with another type")


# 0/1 are what SQLite, aiouow and most tools store; the texts come from other tools
_BOOLEANS = _Booleans({0: False, 1: True, "0": False, "1": True, "false": False, "true": True,
                       "f": False, "t": True, "no": False, "yes": True, "n": False, "y": True,
                       "off": False, "on": True})


def _decimal_to_db(v: Any) -> Any:
    # A number, never text: SQLite compares text with numbers as text, so a Decimal bound as
    # text matches "9.00" for "> 10" and never equals sum(price).  An integral value travels
    # as an integer (exact up to 64 bits), any other as a double (15 significant digits).
    if v.__class__ is decimal.Decimal:
        f = float(v)
        if f.is_integer():
            if -_INT53 < f < _INT53:
                return int(f)
            if v.adjusted() <= 18:  # never int() of a Decimal("1E+1000000")
                i = int(v)
                if -_INT64 <= i < _INT64:
                    return i
        elif f != f:
            raise exc.DataError("Decimal('NaN') cannot be stored on SQLite (it would become NULL); "
                                "use None for a missing value")
        return f
    if isinstance(v, int) and not -_INT64 <= v < _INT64:
        return float(v)
    return v


_UTC = dt.UTC
_NO_OFFSET = dt.timedelta(0)
_INT64 = 2**63
_INT53 = 2.0**53  # below it every integral double is exact


class SQLiteDialect(Dialect):
    name = "sqlite"
    compiler_class = SQLiteCompiler
    max_params = 32766
    type_names = {
        "integer": "INTEGER",
        "big_integer": "INTEGER",
        "small_integer": "INTEGER",
        "string": "VARCHAR",
        "text": "TEXT",
        "float": "REAL",
        # NUMERIC affinity: values are stored as numbers, so comparisons, ORDER BY and
        # aggregates are numeric (at a double's 15 significant digits; see the README)
        "numeric": "NUMERIC",
        "boolean": "BOOLEAN",
        "datetime": "DATETIME_TEXT",
        "date": "DATE_TEXT",
        "time": "TIME_TEXT",
        "interval": "INTEGER",
        "binary": "BLOB",
        "uuid": "CHAR(36)",
        # TEXT affinity: a JSON document "123" must stay text, not become an integer
        "json": "JSON_TEXT",
        "null": "",
    }

    def _make_bind_processor(self, type_: sqltypes.TypeEngine) -> Processor:
        v = type_.visit_name
        if v == "datetime":
            return none_safe(_datetime_to_db)
        if v == "date":
            return none_safe(_date_to_db)
        if v == "time":
            return none_safe(_iso)
        if v == "numeric":
            return none_safe(_decimal_to_db)
        if v == "interval":
            return none_safe(_interval_to_db)
        if v == "uuid":
            return none_safe(str)
        if v == "json":
            return none_safe(json_dumps)
        if v == "null":
            return self.adapt_untyped  # a value compared to an expression of unknown type
        return super()._make_bind_processor(type_)

    def _make_result_processor(self, type_: sqltypes.TypeEngine) -> Processor:
        v = type_.visit_name
        if v == "boolean":
            return none_safe(_BOOLEANS.__getitem__)
        if v == "datetime":
            if getattr(type_, "timezone", False):
                return none_safe(_aware_from_db)
            # both "2021-01-01 00:00:00" and the "T" form older aiouow versions wrote
            return none_safe(dt.datetime.fromisoformat)
        if v == "date":
            return none_safe(_date_from_db)
        if v == "time":
            return none_safe(dt.time.fromisoformat)
        if v == "numeric":
            return none_safe(decimal_reader(getattr(type_, "scale", None)))
        if v == "interval":
            return none_safe(_interval_from_db)
        if v == "uuid":
            return none_safe(_uuid_from_db)
        if v == "json":
            return none_safe(json_loads)
        return super()._make_result_processor(type_)

    def adapt_untyped(self, value: Any) -> Any:
        if isinstance(value, dt.datetime):
            return _datetime_to_db(value)
        if isinstance(value, (dt.date, dt.time)):
            return value.isoformat()
        if isinstance(value, decimal.Decimal):
            return _decimal_to_db(value)
        if isinstance(value, uuid.UUID):
            return str(value)
        if isinstance(value, dt.timedelta):
            return _interval_to_db(value)
        if isinstance(value, (dict, list)):
            return json_dumps(value)
        return super().adapt_untyped(value)

    def type_ddl(self, col: Any, table: Any) -> str:
        if table.autoincrement_column is col:
            return "INTEGER"  # exactly INTEGER: the column becomes the rowid
        return super().type_ddl(col, table)

    def translate_error(self, err: BaseException, statement: str | None, params: Any) -> exc.DBAPIError | None:
        code = getattr(err, "sqlite_errorcode", None) if isinstance(err, sqlite3.Error) else None
        if code is not None and code & 0xFF in (sqlite3.SQLITE_MISMATCH, sqlite3.SQLITE_TOOBIG):
            # sqlite3 raises "datatype mismatch" as an IntegrityError; by SQLSTATE it is class 22
            return self.wrap(exc.DataError, err, statement, params)
        if isinstance(err, sqlite3.IntegrityError):
            return self.wrap(exc.IntegrityError, err, statement, params)
        if isinstance(err, sqlite3.DataError):
            return self.wrap(exc.DataError, err, statement, params)
        if isinstance(err, OverflowError) or (
            isinstance(err, (sqlite3.ProgrammingError, sqlite3.InterfaceError)) and "binding parameter" in str(err)
        ):
            # a value sqlite3 cannot send (an int beyond 64 bits, an unsupported type):
            # what asyncpg reports as DataError, so the same class on both drivers
            return self.wrap(exc.DataError, err, statement, params)
        if isinstance(err, sqlite3.ProgrammingError):
            return self.wrap(exc.ProgrammingError, err, statement, params)
        if code == _SQLITE_BUSY_SNAPSHOT:
            return exc.StaleSnapshotError(
                f"({type(err).__module__}.{type(err).__name__}) {err}: this transaction reads a stale "
                "snapshot (SQLITE_BUSY_SNAPSHOT): another connection to the file committed after it began "
                "reading, so it can never write; roll it back (rollback()) and run it again, e.g. with a "
                "run_transaction-style retry", err, statement, params)
        if code is not None and code & 0xFF == sqlite3.SQLITE_BUSY:
            return exc.OperationalError(
                f"({type(err).__module__}.{type(err).__name__}) {err}: another connection to the file "
                "(a second engine or process) held the write lock longer than the busy timeout "
                "(pool_timeout, or connect_args['timeout'])", err, statement, params)
        if isinstance(err, sqlite3.OperationalError):
            # SQLITE_ERROR (1) is what SQLite reports for bad SQL and missing tables: class 42
            if code is not None and code & 0xFF == sqlite3.SQLITE_ERROR:
                return self.wrap(exc.ProgrammingError, err, statement, params)
            return self.wrap(exc.OperationalError, err, statement, params)
        if isinstance(err, sqlite3.Error):
            if code is not None and code & 0xFF == sqlite3.SQLITE_CONSTRAINT:
                return self.wrap(exc.IntegrityError, err, statement, params)
            return self.wrap(exc.DBAPIError, err, statement, params)
        if isinstance(err, ValueError) and "closed" in str(err).lower():
            return self.wrap(exc.OperationalError, err, statement, params)
        return None

    def create_pool(self, url: Any, pool_size: int, connect_args: dict[str, Any]) -> SQLitePool:
        path = url.database or ":memory:"
        memory = path == ":memory:" or path == ""
        if not memory:
            directory = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(directory):
                raise exc.ArgumentError(f"sqlite URL {url.raw!r}: directory {directory!r} does not exist")
        return SQLitePool(self, ":memory:" if memory else path, memory, pool_size, connect_args)


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
    __slots__ = ("_aio", "_on_thread", "_raw", "_begin", "_names", "_job", "_cursors", "_reader")

    def __init__(self, aio: aiosqlite.Connection, raw: sqlite3.Connection, reader: bool = False) -> None:
        self._aio = aio
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

    def defer_begin(self, sql: str = "BEGIN") -> bool:
        """The next statement starts a transaction (in the same thread hop)."""
        self._begin = sql
        return True

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


# -- routing: readers and the writer ------------------------------------------------------------

_SQLITE_BUSY_SNAPSHOT = 517  # SQLITE_BUSY | (2 << 8)

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

    def __init__(self, dialect: SQLiteDialect, path: str, memory: bool, size: int,
                 connect_args: dict[str, Any]) -> None:
        self._dialect = dialect
        self._path = path
        self._memory = memory
        self._args = connect_args
        #: one connection for everything: ``:memory:``, or a file that cannot use WAL
        self.serial = memory
        self._timeout = 30.0
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
            conn = SQLiteConnection(aio, raw, reader)
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

    __slots__ = ("_pool", "_timeout", "_w", "_tx", "_wtx", "_names", "_streams")

    def __init__(self, pool: SQLitePool, timeout: float) -> None:
        self._pool = pool
        self._timeout = timeout
        self._w: SQLiteConnection | None = None  # the writer, while held
        self._tx = False  # a transaction is open (BEGIN deferred to its first write)
        self._wtx = False  # ... and it runs on the writer (BEGIN sent, or due with the next statement)
        self._names: list[str] = []
        #: readers held by open streams, each in a one-item list emptied when taken back
        self._streams: list[list[SQLiteConnection]] = []

    async def _writer(self) -> SQLiteConnection:
        w = self._w
        if w is None:
            try:
                w = cast(SQLiteConnection, await self._pool._writer.acquire(self._timeout))
            except exc.PoolTimeoutError:
                what = ("the SQLite connection (one for every transaction: a :memory: database, or a file "
                        "without WAL)" if self._pool.serial else
                        "the SQLite writer (one writing transaction at a time)")
                raise exc.PoolTimeoutError(
                    f"another transaction kept {what} for more than pool_timeout={self._timeout}s; "
                    "commit transactions sooner, raise pool_timeout, or, if one task holds two such "
                    "sessions, finish the first"
                ) from None
            self._w = w
        if self._tx and not self._wtx:
            self._wtx = True
            w.defer_begin("BEGIN" if self._pool.serial else "BEGIN IMMEDIATE")
        return w

    def _on_writer(self, sql: str) -> bool:
        return self._w is not None or self._pool.serial or _writes(sql)

    async def reserve_writer(self) -> None:
        """Take the writer now, before a write that must not wait for it later."""
        await self._writer()

    async def fetch(self, sql: str, params: Sequence[Any]) -> list[Any]:
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

    def defer_begin(self) -> bool:
        self._tx = True
        return True

    def cancel_deferred_begin(self) -> bool:
        pending = self._tx
        self._tx = False
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
            self._tx = False
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
        self._tx = self._wtx = False
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
