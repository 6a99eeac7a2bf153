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
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiosqlite

from .. import exc
from .. import types as sqltypes
from ..sql.compiler import Compiler
from .base import Dialect, DriverConnection, Processor, decimal_reader, json_dumps, json_loads, none_safe
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


def _iso(v: Any) -> str:
    return v.isoformat()  # a date "YYYY-MM-DD", a time "HH:MM:SS[.ffffff]": SQLite's forms


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
        if v in ("date", "time"):
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

    async def close(self) -> None:
        await self._aio.close()
