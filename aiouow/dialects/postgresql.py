"""PostgreSQL through asyncpg.

asyncpg converts most types natively (numeric, timestamps, interval, uuid,
bytea); JSON and JSONB get a codec per connection, Enum members travel by
name.  Lists for ``IN`` travel as one array parameter (``= ANY($1)``), so a
statement's SQL does not depend on how many values it filters by.
"""

from __future__ import annotations

import asyncio
import decimal
from collections.abc import AsyncGenerator, Coroutine, Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from .. import exc
from .. import types as sqltypes
from ..sql.compiler import Compiler, quote, quote_table
from ..sql.elements import BindParameter, ExpandingBind, leading_keyword
from ..sql.schema import Column, Table
from .base import Dialect, DriverConnection, Processor, RoundTrips, decimal_reader, json_dumps, json_loads, none_safe
from .batch import BatchWriter, MappedTable, StatementRunner, column_sql, processed_rows
from .pool import SlotPool

#: inserts of more rows than this go through COPY (measured here: 10 000 rows took 19 ms by
#: COPY, 35-58 ms by one unnest INSERT, 66-110 ms by executemany)
COPY_MIN_ROWS = 1000


class PGCompiler(Compiler):
    reuses_placeholders = True

    def placeholder(self, position: int) -> str:
        return f"${position}"

    def visit_expanding_in(self, left: str, op: str, bind: ExpandingBind) -> str:
        mark = self._add_param(bind, self.bind_processor(bind.type), expand_index=-2)
        cast = self.dialect.array_cast(bind.type)
        if op == "IN":
            return f"{left} = ANY({mark}{cast})"
        return f"{left} != ALL({mark}{cast})"

    def visit_ilike(self, left: str, right: str) -> str:
        return f"{left} ILIKE {right}"

    def typed_bind(self, bind: BindParameter) -> str:
        # asyncpg takes an untyped $n for text and refuses other values
        mark = super().visit_bind(bind)  # the full type's cast replaces the number cast
        name = self.dialect.sql_type(bind.type)
        return f"{mark}::{name}" if name else mark

    def visit_bind(self, bind: BindParameter) -> str:
        mark = super().visit_bind(bind)
        # PostgreSQL types a parameter by the other operand: in "qty * $1" or "qty >= $1" with
        # an integer qty, asyncpg would send Decimal("1.5") or 2.5 truncated to an integer
        cast = _NUMBER_CASTS.get(bind.type.visit_name)
        return mark + cast if cast else mark


def _to_int(value: Any) -> Any:
    return int(value) if value.__class__ is decimal.Decimal and value == value.to_integral_value() else value


_INT_PROC = none_safe(_to_int)
_FLOAT_PROC = none_safe(float)

_NUMBER_CASTS = {"numeric": "::NUMERIC", "float": "::DOUBLE PRECISION"}


def _json_text(value: Any) -> Any:
    return None if value is None else json_dumps(value)


def _columns(rows: list[list[Any]], procs: Sequence[Processor]) -> list[list[Any]]:
    """Transpose rows into per-column lists, converting values for the driver."""
    cols = [list(c) for c in zip(*rows)] if rows else [[] for _ in procs]
    for i, p in enumerate(procs):
        if p is not None:
            cols[i] = [p(v) for v in cols[i]]
    return cols


class PGBatchWriter(BatchWriter):
    """A batch sends one array parameter per column and ``unnest``s it server-side
    (``INSERT ... SELECT * FROM unnest($1::bigint[], ...)``, ``UPDATE ... FROM unnest(...)``,
    ``DELETE ... USING unnest(...)``), so the SQL text, and asyncpg's prepared statement, is the
    same for any batch size, and the row count comes back for the stale-data check.  Generated
    keys are reserved from the sequence in one query before a multi-row insert, so large
    inserts can go by COPY."""

    def __init__(self, dialect: Dialect) -> None:
        super().__init__(dialect)
        #: "table.column" -> its sequence as an SQL string literal
        self._sequences: dict[str, str] = {}

    def mark(self, position: int) -> str:
        return f"${position}"

    def array(self, column: Column) -> tuple[str, str, Processor]:
        """(array cast, expression reading the unnested value, per-value processor)."""
        t = column.type
        if isinstance(t, sqltypes.JSON):
            # JSON travels as text: a list value must not read as an array dimension
            return "::TEXT[]", "::JSONB", _json_text
        return "::" + self.dialect.sql_type(t) + "[]", "", self.dialect.bind_processor(t)

    # -- INSERT ------------------------------------------------------------------------
    async def reserve_keys(self, conn: StatementRunner, batches: list[tuple[MappedTable, int]]
                           ) -> list[list[Any]] | None:
        """Only when some batch has several rows; then single-row batches take theirs here too, so
        keys still follow insertion order (a parent inserted first gets the lower key, as on SQLite)."""
        if all(n == 1 for _, n in batches):
            return None  # each single row gets its key from INSERT ... RETURNING, in plan order
        parts = []
        for i, (m, _) in enumerate(batches, 1):
            auto = m.autoincrement_key
            assert auto is not None
            seq = await self._sequence_literal(conn, quote_table(m.table), m.columns[auto].name)
            parts.append(f"array(SELECT nextval({seq}::regclass) FROM generate_series(1, ${i}::integer))")
        rows = await conn.fetch_sql("SELECT " + ", ".join(parts), [n for _, n in batches])
        return [list(ids) for ids in rows[0]]

    async def _sequence_literal(self, conn: StatementRunner, table: str, column: str) -> str:
        """The column's sequence as an SQL string literal, looked up once per engine: resolving it
        inside the query (per row) made reservation five times slower. ``table`` is the quoted,
        schema-qualified name."""
        key = f"{table}.{column}"
        literal = self._sequences.get(key)
        if literal is None:
            # the table is parsed as an identifier (folded to lower case unless quoted), the column is not
            rows = await conn.fetch_sql("SELECT pg_get_serial_sequence($1, $2)", [table, column])
            seq = rows[0][0]
            if seq is None:
                raise exc.InvalidRequestError(f"table {table} has no sequence behind column {column!r}")
            literal = self._sequences[key] = "'" + seq.replace("'", "''") + "'"
        return literal

    async def insert(self, conn: StatementRunner, m: MappedTable, keys: tuple[str, ...], rows: list[list[Any]],
                     generate_pk: bool, reserved: list[Any] | None) -> list[Any] | None:
        n = len(rows)
        if generate_pk and reserved is None:
            assert n == 1
            sql = self.cached(m, ("insert1r", keys), lambda: self.values_sql(m, keys, 1) + self.returning(m))
            got = await conn.fetch_sql(sql, processed_rows(rows, self.procs(m, keys))[0])
            return [got[0][0]]
        ids = None
        if generate_pk:
            assert reserved is not None and len(reserved) == n and m.autoincrement_key is not None
            ids = reserved
            keys = (m.autoincrement_key, *keys)
            rows = [[pk, *row] for pk, row in zip(ids, rows)]
        if n == 1:
            sql = self.cached(m, ("insert1", keys), lambda: self.values_sql(m, keys, 1))
            await conn.execute_sql(sql, processed_rows(rows, self.procs(m, keys))[0])
        elif n > COPY_MIN_ROWS and not _has_json(m.table):
            names = [m.columns[k].name for k in keys]
            await conn.copy_records(m.table.name, names, processed_rows(rows, self.procs(m, keys)),
                                    schema=m.table.schema)
        else:
            sql, procs = self.cached(m, ("insert_unnest", keys), lambda: self._unnest_insert(m, keys))
            await conn.execute_sql(sql, _columns(rows, procs))
        return ids

    def _unnest_insert(self, m: MappedTable, keys: tuple[str, ...]) -> tuple[str, list[Processor]]:
        specs = [self.array(m.columns[k]) for k in keys]
        names = [f"c{i}" for i in range(len(keys))]
        select = ", ".join(f"v.{n}{spec[1]}" for n, spec in zip(names, specs))
        args = ", ".join(f"${i + 1}{spec[0]}" for i, spec in enumerate(specs))
        sql = (f"INSERT INTO {quote_table(m.table)} ({', '.join(column_sql(m, k) for k in keys)}) "
               f"SELECT {select} FROM unnest({args}) AS v({', '.join(names)})")
        return sql, [spec[2] for spec in specs]

    # -- UPDATE ------------------------------------------------------------------------
    async def update(self, conn: StatementRunner, m: MappedTable, keys: tuple[str, ...], rows: list[list[Any]],
                     pks: list[tuple[Any, ...]], version_mode: str | None, old_versions: list[int]) -> int:
        if len(rows) == 1:
            return await super().update(conn, m, keys, rows, pks, version_mode, old_versions)
        sql, procs = self.cached(m, ("update_unnest", keys, version_mode),
                                 lambda: self._unnest_update(m, keys, version_mode))
        params = [[*pk, *row] for pk, row in zip(pks, rows)]
        if version_mode == "check":
            params = [[*r, v] for r, v in zip(params, old_versions)]
        return await conn.execute_sql(sql, _columns(params, procs))

    def _unnest_update(self, m: MappedTable, keys: tuple[str, ...], version_mode: str | None
                       ) -> tuple[str, list[Processor]]:
        specs = [self.array(m.columns[k]) for k in (*m.pk_keys, *keys)]
        if version_mode == "check":
            specs.append(("::BIGINT[]", "", None))
        names = [f"c{i}" for i in range(len(specs))]
        npk = len(m.pk_keys)
        sets = [f"{column_sql(m, k)} = v.{names[npk + i]}{specs[npk + i][1]}" for i, k in enumerate(keys)]
        where = [f"t.{column_sql(m, k)} = v.{names[i]}" for i, k in enumerate(m.pk_keys)]
        vk = column_sql(m, m.version_key) if m.version_key is not None else ""
        if version_mode == "check":
            sets.append(f"{vk} = v.{names[-1]} + 1")
            where.append(f"t.{vk} = v.{names[-1]}")
        elif version_mode == "bump":
            sets.append(f"{vk} = t.{vk} + 1")
        args = ", ".join(f"${i + 1}{spec[0]}" for i, spec in enumerate(specs))
        sql = (f"UPDATE {quote_table(m.table)} AS t SET {', '.join(sets)} FROM unnest({args}) "
               f"AS v({', '.join(names)}) WHERE {' AND '.join(where)}")
        return sql, [spec[2] for spec in specs]

    # -- DELETE ------------------------------------------------------------------------
    async def delete_many(self, conn: StatementRunner, m: MappedTable, rows: list[list[Any]], versioned: bool) -> int:
        sql, procs = self.cached(m, ("delete_unnest", versioned), lambda: self._unnest_delete(m, versioned))
        return await conn.execute_sql(sql, _columns(rows, procs))

    async def delete_keys(self, conn: StatementRunner, m: MappedTable, keys: list[Any]) -> int:
        """``= ANY($1)``: one statement, one parameter, whatever the number of keys."""
        sql, procs = self.cached(m, ("delete_unnest", False), lambda: self._unnest_delete(m, False))
        proc = procs[0]
        return await conn.execute_sql(sql, [keys if proc is None else [proc(k) for k in keys]])

    def _unnest_delete(self, m: MappedTable, versioned: bool) -> tuple[str, list[Processor]]:
        specs = [self.array(m.columns[k]) for k in m.pk_keys]
        if versioned:
            specs.append(("::BIGINT[]", "", None))
        table = quote_table(m.table)
        if len(m.pk_keys) == 1 and not versioned:
            cast, _, proc = specs[0]
            return f"DELETE FROM {table} WHERE {column_sql(m, m.pk_keys[0])} = ANY($1{cast})", [proc]
        names = [f"c{i}" for i in range(len(specs))]
        where = [f"t.{column_sql(m, k)} = v.{names[i]}" for i, k in enumerate(m.pk_keys)]
        if versioned and m.version_key is not None:
            where.append(f"t.{column_sql(m, m.version_key)} = v.{names[-1]}")
        args = ", ".join(f"${i + 1}{spec[0]}" for i, spec in enumerate(specs))
        sql = (f"DELETE FROM {table} AS t USING unnest({args}) AS v({', '.join(names)}) "
               f"WHERE {' AND '.join(where)}")
        return sql, [spec[2] for spec in specs]

    async def by_parent_keys(self, conn: StatementRunner, head: str, column: Column,
                             key_type: sqltypes.TypeEngine, values: list[Any]) -> None:
        cond = f"{quote(column.name)} = ANY($1::{self.dialect.sql_type(key_type)}[])"
        await conn.execute_sql(head + cond, [values])


def _has_json(table: Table) -> bool:
    # asyncpg's COPY is binary, and JSON goes through a text codec
    return any(isinstance(c.type, sqltypes.JSON) for c in table.columns)


class PGDialect(Dialect):
    name = "postgresql"
    compiler_class = PGCompiler
    batch_writer_class = PGBatchWriter
    expands_in_lists = False
    max_params = 32767
    isolation_levels = ("READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE")
    cursors_need_transaction = True
    type_names = {
        "integer": "INTEGER",
        "big_integer": "BIGINT",
        "small_integer": "SMALLINT",
        "string": "VARCHAR",
        "text": "TEXT",
        "float": "DOUBLE PRECISION",
        "numeric": "NUMERIC",
        "boolean": "BOOLEAN",
        "datetime": "TIMESTAMP WITHOUT TIME ZONE",
        "date": "DATE",
        "time": "TIME WITHOUT TIME ZONE",
        "interval": "INTERVAL",
        "binary": "BYTEA",
        "uuid": "UUID",
        "json": "JSONB",
    }
    _serial = {"integer": "SERIAL", "big_integer": "BIGSERIAL", "small_integer": "SMALLSERIAL"}

    def __init__(self) -> None:
        super().__init__()
        self._computed_procs: dict[sqltypes.TypeEngine, Processor] = {}

    def type_ddl(self, col: Any, table: Any) -> str:
        if table.autoincrement_column is col:
            return self._serial[col.type.visit_name]
        if isinstance(col.type, sqltypes.DateTime) and col.type.timezone:
            return "TIMESTAMP WITH TIME ZONE"
        return super().type_ddl(col, table)

    def computed_result_processor(self, type_: sqltypes.TypeEngine) -> Processor:
        if isinstance(type_, sqltypes.Numeric) and type_.scale is not None:
            # avg() of a NUMERIC(10, 2) column has 16 decimals: read at the declared scale, as
            # SQLite does (a column's own values have that scale already and are not touched)
            try:
                return self._computed_procs[type_]
            except KeyError:
                proc = self._computed_procs[type_] = none_safe(decimal_reader(type_.scale))
                return proc
        if isinstance(type_, sqltypes.Integer):
            return _INT_PROC  # sum() of a BIGINT column is a NUMERIC: read as the column's int
        if isinstance(type_, sqltypes.Float):
            return _FLOAT_PROC  # avg() of integers is a NUMERIC: read as SQLite's float
        return self.result_processor(type_)

    def sql_type(self, type_: sqltypes.TypeEngine) -> str:
        """The type name used in casts (``$1::BIGINT``)."""
        if isinstance(type_, sqltypes.DateTime) and type_.timezone:
            return "TIMESTAMP WITH TIME ZONE"
        if isinstance(type_, (sqltypes.String, sqltypes.Enum)):
            return "VARCHAR" if type_.visit_name != "text" else "TEXT"
        return self.type_names.get(type_.visit_name, "")

    def array_cast(self, type_: sqltypes.TypeEngine) -> str:
        name = self.sql_type(type_)
        return f"::{name}[]" if name else ""

    def isolation_refusal(self, level: str) -> str:
        if level == "READ UNCOMMITTED":
            return "PostgreSQL runs READ UNCOMMITTED as READ COMMITTED (its default), so ask for that"
        return super().isolation_refusal(level)

    def begin_sql(self, isolation_level: str | None) -> str:
        return "BEGIN" if isolation_level is None else f"BEGIN ISOLATION LEVEL {isolation_level}"

    def translate_error(self, err: BaseException, statement: str | None, params: Any) -> exc.DBAPIError | None:
        if isinstance(err, asyncpg.PostgresError):
            state = getattr(err, "sqlstate", None) or ""
            if state in _STATEMENT_LOST and "__asyncpg_" in str(err):
                return self._pooler_error(err, statement, params)
            cls = _BY_STATE.get(state) or _BY_CLASS.get(state[:2], exc.DBAPIError)
            if cls is exc.IntegrityError:
                return cls(_constraint_message(err), err, statement, params)
            return self.wrap(cls, err, statement, params)
        if isinstance(err, asyncpg.exceptions.DataError):  # client-side: a value asyncpg cannot encode
            return self.wrap(exc.DataError, err, statement, params)
        if isinstance(err, (asyncpg.InterfaceError, OSError)):
            return self.wrap(exc.OperationalError, err, statement, params)
        if isinstance(err, asyncpg.InternalClientError):
            # "cannot switch to state 12; another operation (2) is in progress": the server's
            # FATAL message was read, the end of the connection not yet; the protocol is out of
            # step for good, so the connection is discarded like a lost one
            return self.wrap(exc.OperationalError, err, statement, params)
        return None

    def is_disconnect(self, err: BaseException, conn: DriverConnection | None) -> bool:
        if conn is not None and conn.is_closed:
            return True
        if isinstance(err, (asyncpg.PostgresConnectionError, asyncpg.InternalClientError, OSError)):
            return True
        if isinstance(err, asyncpg.PostgresError):
            # terminated by pg_terminate_backend / a server shutdown or crash / still starting
            return getattr(err, "sqlstate", None) in ("57P01", "57P02", "57P03")
        return isinstance(err, asyncpg.InterfaceError) and "connection is closed" in str(err)

    def never_ran(self, err: BaseException, conn: DriverConnection | None) -> bool:
        # asyncpg refused to send on a connection it knew closed; or the server ended the session
        # (administrator command, shutdown, crash recovery), which aborts a statement it had not
        # finished; not a connection dropped mid-statement, whose outcome is unknown
        if isinstance(err, asyncpg.PostgresError):
            return getattr(err, "sqlstate", None) in ("57P01", "57P02", "57P03")
        return isinstance(err, asyncpg.InterfaceError) and "connection is closed" in str(err)

    def _pooler_error(self, err: BaseException, statement: str | None, params: Any) -> exc.DBAPIError:
        """asyncpg's own prepared statement is missing (or already there) on the server: a pooler
        lent this connection another server session.  Operational, so the connection, whose
        statement cache no longer matches its server, is not reused."""
        first = str(err).split("\n", 1)[0]
        return exc.OperationalError(
            f"({type(err).__module__}.{type(err).__name__}) {first}: the server session is not the one "
            "this connection prepared its statements on; behind a pooler in transaction mode (PgBouncer "
            "before 1.21, or without max_prepared_statements) use create_engine(url, prepared_statements=False)",
            err, statement, params)

    def create_pool(self, url: Any, pool_size: int, connect_args: dict[str, Any]) -> SlotPool:
        dsn = url.driver_dsn
        # statement_cache_size=0 (create_engine(prepared_statements=False)): asyncpg then prepares
        # every statement unnamed and parses it again with its Bind, so no statement outlives the
        # round trip that uses it; streams must not use asyncpg's cursors either (named statements)
        unnamed = connect_args.get("statement_cache_size") == 0

        async def connect() -> DriverConnection:
            try:
                conn = await asyncpg.connect(dsn, **connect_args)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
                # whatever the server says (no such database, authentication), not getting a
                # connection is operational, as in SQLAlchemy; the SQLSTATE stays on .orig
                raise self.wrap(exc.OperationalError, err, None, None) from err
            try:
                for name in ("jsonb", "json"):
                    await conn.set_type_codec(name, encoder=json_dumps, decoder=json_loads, schema="pg_catalog")
            except BaseException:
                conn.terminate()  # cancelled (or failed) half-way: never leave the connection open
                raise
            return PGConnection(conn, pool.trips, sql_cursors=unnamed)

        pool = SlotPool(connect, pool_size, "postgresql")
        return pool


def _constraint_message(err: asyncpg.PostgresError) -> str:
    """The message of a constraint violation, naming the table: PostgreSQL's own text names the
    table for a foreign key, NOT NULL or CHECK violation but not for a unique one
    (``duplicate key value violates unique constraint "uq_t_c"``, with ``Key (c)=(v)`` as DETAIL)."""
    text = str(err)
    table = getattr(err, "table_name", None)
    if table and f'"{table}"' not in text.partition("\n")[0]:
        schema = getattr(err, "schema_name", None)
        where = f'"{schema}"."{table}"' if schema and schema != "public" else f'"{table}"'
        head, nl, rest = text.partition("\n")
        text = f"{head} on table {where}{nl}{rest}"
    return f"({type(err).__module__}.{type(err).__name__}) {text}"


#: invalid_sql_statement_name, duplicate_prepared_statement
_STATEMENT_LOST = frozenset(("26000", "42P05"))

#: the SQLSTATEs a transaction can be run again after (class 40's other codes are not: 40002 is
#: a constraint violated at COMMIT, 40003 a statement whose completion is unknown)
_BY_STATE: dict[str, type[exc.DBAPIError]] = {
    "40001": exc.SerializationError,
    "40P01": exc.DeadlockError,
}

_BY_CLASS: dict[str, type[exc.DBAPIError]] = {
    "23": exc.IntegrityError,
    "22": exc.DataError,
    "42": exc.ProgrammingError,
    "0A": exc.ProgrammingError,
    "08": exc.OperationalError,
    "57": exc.OperationalError,
    "53": exc.OperationalError,
    "40": exc.OperationalError,
    "55": exc.OperationalError,
    "58": exc.OperationalError,
}


def _rowcount(status: str) -> int:
    # "UPDATE 3", "DELETE 0", "INSERT 0 5", "SELECT 2"
    tail = status.rpartition(" ")[2]
    return int(tail) if tail.isdigit() else -1


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


#: what DECLARE ... CURSOR FOR takes (a stream of anything else is fetched whole, then chunked)
_DECLARABLE = frozenset(("select", "values", "table"))


class PGConnection(DriverConnection):
    __slots__ = ("_c", "_loop", "_sql_cursors", "_cursor_count", "_trips")

    def __init__(self, conn: asyncpg.Connection, trips: RoundTrips, sql_cursors: bool = False) -> None:
        self._c = conn
        #: the engine's round-trip count: one per call below that reaches the server
        self._trips = trips
        #: streams DECLARE a cursor in SQL instead of asyncpg's cursor, whose named prepared
        #: statement would stay behind on whichever server a pooler (PgBouncer) lent
        self._sql_cursors = sql_cursors
        self._cursor_count = 0
        # asyncpg's socket and futures belong to the loop that connected: it is the only
        # loop the connection can be used, or even closed gracefully, from
        self._loop = asyncio.get_running_loop()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    async def fetch(self, sql: str, params: Sequence[Any]) -> list[Any]:
        self._trips.count += 1
        rows: list[Any] = await self._c.fetch(sql, *params)
        return rows

    def column_names(self, rows: list[Any]) -> list[str]:
        return list(rows[0].keys()) if rows else []

    async def execute(self, sql: str, params: Sequence[Any]) -> int:
        self._trips.count += 1
        return _rowcount(await self._c.execute(sql, *params))

    async def executemany(self, sql: str, seq: Sequence[Sequence[Any]]) -> int:
        self._trips.count += 1
        await self._until_lost(self._c.executemany(sql, seq))
        return -1

    async def copy_records(self, table: str, columns: Sequence[str], records: Sequence[Sequence[Any]],
                           schema: str | None = None) -> None:
        self._trips.count += 1
        await self._until_lost(
            self._c.copy_records_to_table(table, columns=list(columns), records=records, schema_name=schema))

    async def _until_lost(self, op: Coroutine[Any, Any, Any]) -> Any:
        """Run an operation that streams many messages to the server, failing it as soon as the
        connection is lost.

        asyncpg waits for the socket to become writable between the messages of a COPY or an
        executemany; when the server goes away while the socket's buffer is full, nothing ever
        wakes that wait (the connection is closed, the write flow is still "paused"), so the
        operation would hang for good.  The connection's termination listener ends it instead.
        """
        c = self._c
        task = asyncio.ensure_future(op)
        lost: asyncio.Future[None] = self._loop.create_future()

        def on_lost(_: Any) -> None:
            if not lost.done():
                lost.set_result(None)

        c.add_termination_listener(on_lost)
        try:
            await asyncio.wait((task, lost), return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            task.cancel()
            await _finish(task)
            raise
        finally:
            c.remove_termination_listener(on_lost)
            lost.cancel()
        if task.done():
            return task.result()
        task.cancel()
        await _finish(task)
        raise asyncpg.ConnectionDoesNotExistError(
            "connection was closed in the middle of operation (lost while sending data)")

    def stream(self, sql: str, params: Sequence[Any], chunk: int) -> AsyncGenerator[list[Any], None]:
        # the generator itself, not one wrapped in another: whoever closes it closes the cursor
        # at once, instead of leaving the inner one for the garbage collector to finish later
        if self._sql_cursors:
            return self._declared_stream(sql, params, chunk)
        return self._cursor_stream(sql, params, chunk)

    async def _cursor_stream(self, sql: str, params: Sequence[Any], chunk: int) -> AsyncGenerator[list[Any], None]:
        self._trips.count += 1
        cursor = await self._c.cursor(sql, *params)
        while True:
            self._trips.count += 1
            rows = await cursor.fetch(chunk)
            if not rows:
                return
            yield rows

    async def _declared_stream(self, sql: str, params: Sequence[Any], chunk: int
                               ) -> AsyncGenerator[list[Any], None]:
        """A stream through ``DECLARE ... CURSOR`` / ``FETCH``: only unnamed statements, each in
        the transaction a stream needs (a cursor WITHOUT HOLD ends with it)."""
        if leading_keyword(sql) not in _DECLARABLE:
            self._trips.count += 1
            rows: list[Any] = await self._c.fetch(sql, *params)
            for start in range(0, len(rows), chunk):
                yield rows[start:start + chunk]
            return
        self._cursor_count += 1
        name = f'"aiouow_cursor_{self._cursor_count}"'
        self._trips.count += 1
        await self._c.execute(f"DECLARE {name} NO SCROLL CURSOR FOR {sql}", *params)
        fetch = f"FETCH FORWARD {int(chunk)} FROM {name}"
        done = False
        try:
            while not done:
                self._trips.count += 1
                rows = await self._c.fetch(fetch)
                done = len(rows) < chunk
                if rows:
                    yield rows
        finally:
            # a stream left mid-way: free the portal now rather than at the end of the transaction
            if not done and not self._c.is_closed() and self._c.is_in_transaction():
                try:
                    self._trips.count += 1
                    await self._c.execute(f"CLOSE {name}")
                except Exception:
                    pass  # the transaction failed meanwhile: its rollback closes the cursor

    async def script(self, sql: str) -> None:
        self._trips.count += 1
        await self._c.execute(sql)

    @property
    def in_transaction(self) -> bool:
        return bool(self._c.is_in_transaction())

    @property
    def is_closed(self) -> bool:
        return bool(self._c.is_closed())

    async def ping(self) -> None:
        self._trips.count += 1
        await self._c.execute("SELECT 1")  # simple query protocol: one round trip, nothing prepared

    def terminate(self) -> None:
        loop = self._loop
        try:
            if loop.is_closed():
                _abort_orphan(self._c)
            elif loop.is_running() and loop is not _running_loop():
                loop.call_soon_threadsafe(self._c.terminate)  # that loop runs in another thread
            else:
                self._c.terminate()
        except Exception:
            pass

    async def close(self) -> None:
        if self._loop is not _running_loop():
            self.terminate()  # another loop's connection: awaiting it here cannot work
            return
        try:
            await self._c.close(timeout=2)
        except BaseException:
            self._c.terminate()


async def _finish(task: asyncio.Future[Any]) -> None:
    """Wait for a cancelled operation to unwind (its outcome is dropped); a cancellation
    arriving meanwhile is raised once it has."""
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.wait((task,))
        except asyncio.CancelledError as err:
            cancelled = err
    if not task.cancelled():
        task.exception()
    if cancelled is not None:
        raise cancelled


def _abort_orphan(conn: asyncpg.Connection) -> None:
    """Close a connection whose event loop is closed, without that loop.

    asyncpg's ``terminate()`` marks the connection aborted, then asyncio's transport stops
    half-way (its final step would be scheduled on the closed loop), leaving the socket
    open and an "unclosed transport" ResourceWarning for later; so the socket is closed here.
    """
    try:
        conn.terminate()
    except RuntimeError:  # "Event loop is closed"
        pass
    transport = getattr(conn, "_transport", None)
    sock = getattr(transport, "_sock", None)  # asyncio's selector transports
    if sock is not None:
        try:
            sock.close()
        finally:
            transport._sock = None  # type: ignore[union-attr]
