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
from ..sql.schema import Table
from .base import Dialect, Processor, decimal_reader, json_dumps, json_loads, none_safe
from .sqlite_pool import FOR_UPDATE_MARK, SQLitePool
from .sqlite_types import (
    _BOOLEANS,
    NAN_TEXT,
    _aware_from_db,
    _date_from_db,
    _date_to_db,
    _datetime_to_db,
    _decimal_to_db,
    _float_from_db,
    _float_to_db,
    _interval_from_db,
    _interval_to_db,
    _iso,
    _naive_datetime_to_db,
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

    def visit_expanding_in(self, left: str, op: str, bind: Any) -> str:
        if _json_in_list(bind):
            mark = self._add_param(bind, self.bind_processor(bind.type), expand_index=-4)
            return f"{left} {op} (SELECT value FROM json_each({mark}))"
        return super().visit_expanding_in(left, op, bind)


def _variable_limit() -> int:
    """How many parameters one statement may carry in the running SQLite: 32766 by default
    since 3.32, 999 before, 250000 in Debian's build (``SQLITE_MAX_VARIABLE_NUMBER``)."""
    try:
        conn = sqlite3.connect(":memory:")
        try:
            return int(conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
        finally:
            conn.close()
    except (AttributeError, sqlite3.Error):
        return 999


#: parameters per statement the flush and the loaders stay under (at most the SQLite default, so
#: a build allowing 250000 still gets statements of a reasonable size)
MAX_PARAMS = min(32766, _variable_limit())
#: longer IN lists travel as one JSON array (``IN (SELECT value FROM json_each(?))``): any length
#: works, whatever the limit, and the SQL (and its cache entry) is the same for every length; shorter
#: ones keep a placeholder per value (the loaders' chunks, under the limit, among them)
IN_INLINE_MAX = MAX_PARAMS // 2


def _json_in_list(bind: Any) -> bool:
    # bytes have no JSON form: a list of them keeps its placeholders
    return len(bind.value) > IN_INLINE_MAX and bind.type.visit_name != "binary"


_SQLITE_BUSY_SNAPSHOT = 517  # SQLITE_BUSY | (2 << 8)


class SQLiteDialect(Dialect):
    name = "sqlite"
    # a schema is an ATTACHed database there, which this engine does not manage
    supports_schemas = False
    compiler_class = SQLiteCompiler
    max_params = MAX_PARAMS
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
        # aggregates are numeric (at a double's 15 significant digits; see docs/models.md)
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

    def in_list_as_json(self, bind: Any) -> bool:
        return _json_in_list(bind)

    def _make_bind_processor(self, type_: sqltypes.TypeEngine) -> Processor:
        v = type_.visit_name
        if v == "datetime":
            return none_safe(_datetime_to_db if getattr(type_, "timezone", False) else _naive_datetime_to_db)
        if v == "date":
            return none_safe(_date_to_db)
        if v == "time":
            return none_safe(_iso)
        if v == "numeric":
            return none_safe(_decimal_to_db)
        if v == "float":
            return _float_to_db
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
        if v == "float":
            return none_safe(_float_from_db)
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
        if isinstance(value, float) and value != value:
            return NAN_TEXT
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
        if isinstance(err, UnicodeEncodeError):
            # a str with a lone surrogate, which UTF-8 cannot encode; asyncpg reports it as DataError
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

    def explain_constraint(self, err: exc.IntegrityError, table: Table, action: str) -> str:
        """SQLite names the columns of a failed UNIQUE constraint but not the constraint, and
        nothing at all of a failed foreign key: name them from the table's schema."""
        text = str(err.orig)
        if text.startswith("UNIQUE constraint failed: "):
            name = _unique_name(table, text.partition(": ")[2])
            return f' (constraint "{name}")' if name else ""
        if text.startswith("FOREIGN KEY constraint failed"):
            return _foreign_key_candidates(table, action)
        return ""

    def create_pool(self, url: Any, pool_size: int, connect_args: dict[str, Any]) -> SQLitePool:
        path = url.database or ":memory:"
        memory = path == ":memory:" or path == ""
        if not memory:
            directory = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(directory):
                raise exc.ArgumentError(f"sqlite URL {url.raw!r}: directory {directory!r} does not exist")
        return SQLitePool(self, ":memory:" if memory else path, memory, pool_size, connect_args)


def _unique_name(table: Table, columns: str) -> str | None:
    """The name of ``table``'s unique constraint or index over ``columns`` ("t.a, t.b", as SQLite
    lists them); None for the primary key or one made outside aiouow's schema."""
    names = [c.strip().rpartition(".")[2] for c in columns.split(",")]
    if len(names) == 1:
        col = next((c for c in table.columns if c.name == names[0]), None)
        if col is not None and col.unique:
            return f"uq_{table.name}_{col.name}"  # the name create_table gives it
    for ix in table.indexes:
        if ix.unique and [c.name for c in ix.columns] == names:
            return ix.name
    return None


def _foreign_key_candidates(table: Table, action: str) -> str:
    """The foreign keys that a write of ``action`` to ``table`` can have broken."""
    refers: list[str] = []  # rows written here may refer to a missing row
    referred: list[str] = []  # rows of other tables may refer to rows deleted (or rekeyed) here
    if action != "delete":
        refers = [f"{table.name}.{fk.parent.name} -> {fk.target}" for fk in table.foreign_keys
                  if fk.parent is not None]
    if action != "insert":
        for other in list(table.metadata.tables.values()):
            for fk in other.foreign_keys:
                try:
                    target = fk.column
                except exc.ArgumentError:
                    continue
                if target.table is table and fk.parent is not None and (
                        action == "update" or fk.ondelete in (None, "RESTRICT", "NO ACTION")):
                    referred.append(f"{other.name}.{fk.parent.name} -> {table.name}.{target.name}")
    parts = []
    if refers:
        parts.append(f"a row written to {table.name!r} refers to a row that does not exist through "
                     + " or ".join(refers))
    if referred:
        parts.append(f"rows of other tables still refer to a row {action}d in {table.name!r} through "
                     + " or ".join(referred))
    if not parts:
        return ""
    return " (SQLite does not say which foreign key: " + "; or ".join(parts) + ")"

