"""SQLite through aiosqlite.

Writers are serialized by design: the pool holds one connection, so a
transaction owns the database from its first statement to its end.  SQLite
allows one writer at a time anyway, and a transaction that reads and later
writes (the classic upgrade deadlock, "database is locked") can only be made
safe by ordering transactions ourselves; measured here, one connection behind
a FIFO queue also ran 50 concurrent short write transactions faster than ten
connections fighting over SQLite's lock.  Waiting is bounded by
``pool_timeout``.

Each statement costs one hop to aiosqlite's worker thread: the statement,
its fetch and (after ``begin()``) the deferred ``BEGIN`` run in one function.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import os
import sqlite3
import threading
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiosqlite

from .. import exc
from .. import types as sqltypes
from ..sql.compiler import Compiler
from .base import Dialect, DriverConnection, Processor, json_dumps, json_loads, none_safe
from .pool import SlotPool


class SQLiteCompiler(Compiler):
    def placeholder(self, position: int) -> str:
        return "?"

    def limit_clause(self, limit: str | None, offset: str | None) -> str:
        if limit is None:
            limit = "-1"
        return super().limit_clause(limit, offset)

    def for_update_clause(self) -> str:
        return ""


def _interval_to_db(v: dt.timedelta) -> int:
    return v // dt.timedelta(microseconds=1)


def _db_to_interval(v: int) -> dt.timedelta:
    return dt.timedelta(microseconds=v)


def _iso(v: Any) -> str:
    return v.isoformat()


def _iso_utc(v: dt.datetime) -> str:
    # stored as text, an aware value must be in one offset (UTC) to compare and sort
    # as an instant, the way PostgreSQL's TIMESTAMP WITH TIME ZONE does
    if v.tzinfo is not None and v.utcoffset() is not None:
        v = v.astimezone(dt.UTC)
    return v.isoformat()


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
        # TEXT affinity keeps every digit of a Decimal; NUMERIC would round it to a float
        "numeric": "DECIMAL_TEXT",
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
            return none_safe(_iso_utc)
        if v in ("date", "time"):
            return none_safe(_iso)
        if v == "numeric":
            return none_safe(str)
        if v == "interval":
            return none_safe(_interval_to_db)
        if v == "uuid":
            return none_safe(str)
        if v == "json":
            return none_safe(json_dumps)
        return super()._make_bind_processor(type_)

    def _make_result_processor(self, type_: sqltypes.TypeEngine) -> Processor:
        v = type_.visit_name
        if v == "boolean":
            return none_safe(bool)
        if v == "datetime":
            return none_safe(dt.datetime.fromisoformat)
        if v == "date":
            return none_safe(dt.date.fromisoformat)
        if v == "time":
            return none_safe(dt.time.fromisoformat)
        if v == "numeric":
            return none_safe(lambda x: decimal.Decimal(str(x)) if not isinstance(x, str) else decimal.Decimal(x))
        if v == "interval":
            return none_safe(_db_to_interval)
        if v == "uuid":
            return none_safe(uuid.UUID)
        if v == "json":
            return none_safe(json_loads)
        return super()._make_result_processor(type_)

    def adapt_untyped(self, value: Any) -> Any:
        if isinstance(value, dt.datetime):
            return _iso_utc(value)
        if isinstance(value, (dt.date, dt.time)):
            return value.isoformat()
        if isinstance(value, (decimal.Decimal, uuid.UUID)):
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

    def create_pool(self, url: Any, pool_size: int, connect_args: dict[str, Any]) -> SlotPool:
        path = url.database or ":memory:"
        memory = path == ":memory:" or path == ""

        async def connect() -> DriverConnection:
            aio = aiosqlite.connect(
                ":memory:" if memory else path, isolation_level=None, check_same_thread=False, **connect_args
            )
            setup = ["PRAGMA foreign_keys=ON"]
            if not memory:
                setup += ["PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL"]
            thread = getattr(aio, "_thread", None)
            if thread is not None:
                # a forgotten engine.dispose() must not keep the interpreter from exiting
                thread.daemon = True
            try:
                await aio
                raw = aio._conn  # the sqlite3 connection, used only on aiosqlite's thread
                await aio._execute(_run_script, raw, setup)
                conn = SQLiteConnection(aio, raw)
                await aio._execute(raw.set_progress_handler, conn._progress, _PROGRESS_STEPS)
            except sqlite3.Error as err:
                await aio.close()
                # e.g. "unable to open database file": never a bare driver error
                raise self.wrap(exc.OperationalError, err, None, None) from err
            except BaseException:
                aio.stop()  # cancelled while connecting: the worker thread must not outlive us
                raise
            return conn

        if not memory:
            directory = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(directory):
                raise exc.ArgumentError(f"sqlite URL {url.raw!r}: directory {directory!r} does not exist")
        # one connection: see the module docstring (pool_size is accepted but not needed)
        return SlotPool(connect, 1, "sqlite")


def _run_script(raw: sqlite3.Connection, statements: list[str]) -> None:
    for s in statements:
        raw.execute(s)


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
    __slots__ = ("_aio", "_raw", "_begin", "_names", "_job", "_cursors")

    def __init__(self, aio: aiosqlite.Connection, raw: sqlite3.Connection) -> None:
        self._aio = aio
        self._raw = raw
        self._begin = False
        self._names: list[str] = []
        self._job: _Job | None = None  # the job running on the worker thread
        #: cursors of streams not yet finished; closed when the transaction ends, so a stream
        #: abandoned mid-way cannot keep tables locked for the next user of the connection
        self._cursors: list[sqlite3.Cursor] = []

    async def _call(self, fn: Any, *args: Any) -> Any:
        job = _Job()
        try:
            return await self._aio._execute(self._run_job, job, fn, args)
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
        if self._begin:
            self._begin = False
            self._raw.execute("BEGIN")

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
        return await self._call(self._fetch, sql, params)

    async def execute(self, sql: str, params: Sequence[Any]) -> int:
        return await self._call(self._execute, sql, params)

    async def executemany(self, sql: str, seq: Sequence[Sequence[Any]]) -> int:
        return await self._call(self._executemany, sql, seq)

    async def stream(self, sql: str, params: Sequence[Any], chunk: int) -> AsyncIterator[list[Any]]:  # type: ignore[override]
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

    def defer_begin(self) -> None:
        """The next statement starts a transaction (in the same thread hop)."""
        self._begin = True

    def cancel_deferred_begin(self) -> bool:
        """Forget a BEGIN no statement needed; True if one was pending."""
        pending = self._begin
        self._begin = False
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
            self._begin = False
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
        aio = self._aio
        if not aio._running or aio._connection is None:
            return True
        thread: Any = getattr(aio, "_thread", aio)  # aiosqlite < 0.21: the connection is the thread
        return not thread.is_alive()

    async def ping(self) -> None:
        await self._call(_select_one, self._raw)

    def terminate(self) -> None:
        # stop the worker thread; it closes the sqlite3 connection (rolling back what was not
        # committed) once the queued calls are done.  aiosqlite's stop() makes its reply future
        # on whatever loop it sees; if that loop closed before the reply, the worker thread
        # would die with "Event loop is closed".  Called from a thread that sees no loop, stop()
        # asks for no reply.
        if not self.is_closed:
            self._aio._running = False  # closed for new calls now (stop() would say so later)
            threading.Thread(target=_stop_quietly, args=(self._aio,), daemon=True).start()

    async def close(self) -> None:
        await self._aio.close()


def _stop_quietly(aio: aiosqlite.Connection) -> None:
    try:
        aio.stop()
    except Exception:
        pass


def _select_one(raw: sqlite3.Connection) -> None:
    raw.execute("SELECT 1").fetchall()
