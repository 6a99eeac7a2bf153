"""SQLite through aiosqlite: the dialect (SQL compilation, type names and codecs, errors).

The rest of the SQLite support is split by what a change touches: ``sqlite_types.py``
converts values to and from the forms SQLite stores, ``sqlite_pool.py`` routes each statement
to a reader or the writer (its docstring is the isolation SQLite gets), and
``sqlite_connection.py`` runs statements on one aiosqlite connection's worker thread (with
every use of aiosqlite's private attributes).
"""

from __future__ import annotations

import datetime as dt
import decimal
import os
import sqlite3
import uuid
from typing import Any

from .. import exc
from .. import types as sqltypes
from ..sql.compiler import Compiler
from ..sql.expressions import SQLiteExpressionCompiler
from .base import Dialect, Processor, decimal_reader, json_dumps, json_loads, none_safe
from .sqlite_pool import FOR_UPDATE_MARK, SQLitePool
from .sqlite_types import (
    _BOOLEANS,
    _aware_from_db,
    _date_from_db,
    _date_to_db,
    _datetime_to_db,
    _decimal_to_db,
    _interval_from_db,
    _interval_to_db,
    _iso,
    _uuid_from_db,
)


class SQLiteCompiler(SQLiteExpressionCompiler, Compiler):
    def placeholder(self, position: int) -> str:
        return "?"

    def limit_clause(self, limit: str | None, offset: str | None) -> str:
        if limit is None:
            limit = "-1"
        return super().limit_clause(limit, offset)

    def compound_member(self, sql: str, s: Any) -> str:
        # SQLite refuses "(SELECT ...) UNION ...": a member with its own ORDER BY / LIMIT is
        # wrapped as a FROM subquery instead
        if getattr(s, "_order_by", ()) or getattr(s, "_limit", None) is not None or \
                getattr(s, "_offset", None) is not None or not hasattr(s, "_where"):
            return f"SELECT * FROM ({sql})"
        return sql

    def for_update_clause(self) -> str:
        # no row locks in SQLite: the comment tells the router to run this read on the writer
        return FOR_UPDATE_MARK


_SQLITE_BUSY_SNAPSHOT = 517  # SQLITE_BUSY | (2 << 8)


class SQLiteDialect(Dialect):
    name = "sqlite"
    # a schema is an ATTACHed database there, which this engine does not manage
    supports_schemas = False
    compiler_class = SQLiteCompiler
    max_params = 32766
    #: READ COMMITTED: the routing of sqlite_pool.py (reads on readers until the first write);
    #: SERIALIZABLE: the whole transaction on the writer, from its first statement
    isolation_levels = ("READ COMMITTED", "SERIALIZABLE")
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

    def isolation_refusal(self, level: str) -> str:
        if level in ("REPEATABLE READ", "READ UNCOMMITTED"):
            return (f"SQLite has no {level}; aiouow's SQLite transactions read the latest commit until "
                    "they first write (READ COMMITTED, the default), or run on the one writer from their "
                    "first statement (SERIALIZABLE)")
        return super().isolation_refusal(level)

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
