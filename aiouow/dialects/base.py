"""What every dialect provides, and the interfaces of its connection and pool.

A dialect is the only place that knows a database: SQL spelling (compiler
hooks), DDL type names, the flush's batch statements (``dialect.batch``, see
``batch.py``), value conversion to and from the driver, error translation, and
how to open connections.  Everything above it talks to the small
``DriverConnection`` / ``Pool`` interfaces below; what only some drivers can do
(defer BEGIN to the next statement, reserve SQLite's writer, COPY) is declared on
``DriverConnection`` with a default, so the engine calls it without probing.
"""

from __future__ import annotations

import asyncio
import decimal
import enum
import json
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any

from .. import exc
from .. import types as sqltypes
from ..sql.compiler import Compiled, Compiler, StatementCache, quote, quote_table
from ..sql.elements import BindParameter, ClauseElement, ExpandingBind
from ..sql.schema import Column, Table
from .batch import BatchWriter

Processor = Callable[[Any], Any] | None


def _none_safe(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def proc(value: Any) -> Any:
        return None if value is None else fn(value)

    # code generated per query (the object loader) tests for None inline and calls fn
    # directly, sparing a Python call per value
    proc.not_none = fn  # type: ignore[attr-defined]
    return proc


class _Members(dict[str, Any]):
    """An enum's members by name; a miss tries member values, then fails with an aiouow error."""

    def __init__(self, cls: type[enum.Enum]) -> None:
        super().__init__(cls.__members__)
        self.cls = cls

    def __missing__(self, key: Any) -> Any:
        # rows written by other tools may hold the member's value instead of its name
        for member in self.cls:
            if member.value == key:
                return member
        names = ", ".join(self.cls.__members__)
        raise exc.DataError(
            f"the database holds {key!r} in an Enum({self.cls.__name__}) column, which is none of its "
            f"member names ({names}) nor values; update the rows or add the member"
        )


def enum_processors(type_: sqltypes.Enum) -> tuple[Processor, Processor]:
    members = _Members(type_.enum_class)

    def to_db(value: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        return value.name

    # a dict lookup per value; only a miss runs Python code
    return to_db, _none_safe(members.__getitem__)


#: Enough digits for any float (about 310) and any declared scale: quantize() never overflows.
_QUANTIZE = decimal.Context(prec=2000, rounding=decimal.ROUND_HALF_UP)
_ZERO = decimal.Decimal(0)


def to_decimal(value: Any) -> decimal.Decimal:
    """A driver's numeric value as a Decimal.

    A float keeps 15 significant digits, all a double holds for sure: the digits of a
    Decimal that went in as a float come back, and sum()/avg() noise
    (``523.0600000000003``) goes.
    """
    cls = value.__class__
    if cls is decimal.Decimal:
        return value  # type: ignore[no-any-return]
    if cls is float:
        # repr is half the cost of format(); up to 15 digits (16 characters) it is the same
        text = repr(value)
        return decimal.Decimal(text if len(text) <= 16 else format(value, ".15g"))
    if isinstance(value, int):
        return decimal.Decimal(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode("ascii", "replace")
    if isinstance(value, str):
        # e.g. a value an older aiouow stored as text, or a TEXT column of another tool
        try:
            return decimal.Decimal(value.strip())
        except decimal.InvalidOperation:
            pass
    raise exc.DataError(f"the database holds {value!r} in a Numeric column, which is not a number; "
                        f"update the rows or map the column with another type")


def decimal_reader(scale: int | None) -> Callable[[Any], decimal.Decimal]:
    """Driver value -> Decimal, at the declared ``scale`` (rounded half away from zero, as PostgreSQL)."""
    if scale is None:
        return to_decimal
    exp = decimal.Decimal(1).scaleb(-scale)

    def read(value: Any) -> decimal.Decimal:
        if value.__class__ is float:  # to_decimal() inline: one call less per value
            text = repr(value)
            d = decimal.Decimal(text if len(text) <= 16 else format(value, ".15g"))
        else:
            d = to_decimal(value)
        try:
            d = d.quantize(exp, context=_QUANTIZE)
        except decimal.InvalidOperation:  # infinity
            return d
        return d if d else d.copy_abs()  # no -0.00

    return read


class DDLCompiler:
    """CREATE / DROP statements for one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect

    def column_spec(self, col: Column, table: Table) -> str:
        spec = f"{quote(col.name)} {self.dialect.type_ddl(col, table)}"
        if not col.nullable:
            spec += " NOT NULL"
        return spec

    def _check_schema(self, table: Table) -> None:
        if table.schema is not None and not self.dialect.supports_schemas:
            raise exc.ArgumentError(
                f"table {table.fullname!r} has schema {table.schema!r}: schemas are PostgreSQL-only "
                f"({self.dialect.name} has none); drop the schema from the table (__table_args__) "
                "to use it here"
            )

    def create_table(self, table: Table) -> list[str]:
        self._check_schema(table)
        parts = [self.column_spec(c, table) for c in table.columns]
        if table.primary_key:
            parts.append("PRIMARY KEY (" + ", ".join(quote(c.name) for c in table.primary_key) + ")")
        for c in table.columns:
            if c.unique:
                parts.append(f"CONSTRAINT {quote(f'uq_{table.name}_{c.name}')} UNIQUE ({quote(c.name)})")
        for fk in table.foreign_keys:
            target = fk.column
            clause = (f"FOREIGN KEY ({quote(fk.parent.name)}) REFERENCES "  # type: ignore[union-attr]
                      f"{quote_table(target.table)} ({quote(target.name)})")
            if fk.ondelete:
                clause += f" ON DELETE {fk.ondelete}"
            if fk.onupdate:
                clause += f" ON UPDATE {fk.onupdate}"
            parts.append(clause)
        stmts = [f"CREATE TABLE IF NOT EXISTS {quote_table(table)} (" + ", ".join(parts) + ")"]
        for ix in table.indexes:
            kind = "UNIQUE INDEX" if ix.unique else "INDEX"
            cols = ", ".join(quote(c.name) for c in ix.columns)
            stmts.append(f"CREATE {kind} IF NOT EXISTS {quote(ix.name)} ON {quote_table(table)} ({cols})")
        return stmts

    def drop_table(self, table: Table) -> str:
        self._check_schema(table)
        return f"DROP TABLE IF EXISTS {quote_table(table)}"


class RoundTrips:
    """Calls that went to the server (PostgreSQL) or to the SQLite worker thread, for one engine.

    Every statement, stream chunk, BEGIN/COMMIT/ROLLBACK/SAVEPOINT and ping counts one; opening a
    connection (its setup statements included) does not.  ``engine.round_trips`` reads it; the
    driver connections of the engine's pool share one, so the count costs an attribute increment
    per call."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


class DriverConnection:
    """One driver connection, adapted.  Methods take SQL already compiled for it.

    Errors are raised as the driver raised them; the engine translates them
    (it knows the statement, for the message).
    """

    __slots__ = ()

    async def fetch(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """Run a statement that returns rows; all rows."""
        raise NotImplementedError

    def column_names(self, rows: list[Any]) -> list[str]:
        """Column names of the rows the last ``fetch`` returned."""
        raise NotImplementedError

    async def execute(self, sql: str, params: Sequence[Any]) -> int:
        """Run a statement; the number of rows it changed (-1 if unknown)."""
        raise NotImplementedError

    async def executemany(self, sql: str, seq: Sequence[Sequence[Any]]) -> int:
        """Run a statement once per parameter set; total rows changed (-1 if unknown)."""
        raise NotImplementedError

    def stream(self, sql: str, params: Sequence[Any], chunk: int) -> AsyncGenerator[list[Any], None]:
        """Rows in chunks, without holding the whole result."""
        raise NotImplementedError

    async def script(self, sql: str) -> None:
        """Run parameterless SQL (transaction control, DDL)."""
        raise NotImplementedError

    async def copy_records(self, table: str, columns: Sequence[str], records: Sequence[Sequence[Any]],
                           schema: str | None = None) -> None:
        """Bulk-load rows (PostgreSQL's COPY); only called where the dialect's batch writer uses it."""
        raise NotImplementedError(f"{type(self).__name__} has no COPY")

    # -- capabilities the engine asks every driver connection for; the defaults are what a
    # driver that sends BEGIN itself and has a single connection per checkout needs
    def defer_begin(self, isolation_level: str | None = None) -> bool:
        """Send BEGIN with the next statement (in the same round trip) instead of now; False if this
        driver cannot, and the engine sends ``dialect.begin_sql(isolation_level)``."""
        return False

    def cancel_deferred_begin(self) -> bool:
        """Forget a deferred BEGIN no statement needed; True if one was pending."""
        return False

    async def reserve_writer(self) -> None:
        """Take whatever a write will need now (SQLite: the writer), before a large flush pauses
        the garbage collector; nothing to take by default."""

    @property
    def in_transaction(self) -> bool:
        """The driver's own view: a transaction is open on the server (e.g. a COMMIT cancelled
        before it was sent); False if the driver cannot tell."""
        return False

    def interrupt(self) -> None:
        """Stop the statement running now, if the driver can (best effort, sync)."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop this connection can only be used from; None if any loop will do."""
        return None

    @property
    def is_closed(self) -> bool:
        """The connection is known to be unusable (closed, or lost and noticed by the driver)."""
        return False

    async def ping(self) -> None:
        """A cheap round trip (``SELECT 1``); raises if the connection does not work."""
        await self.fetch("SELECT 1", ())

    def terminate(self) -> None:
        """Close at once, without awaiting: for a connection of another (maybe closed) event
        loop, or one found dead.  Never raises."""

    async def close(self) -> None:
        raise NotImplementedError


class Pool:
    """Connections of one engine."""

    #: what its driver connections count (shared by all of them)
    trips: RoundTrips

    #: ping a pooled connection on checkout and replace it if the ping fails (``pool_pre_ping``)
    pre_ping: bool = False
    #: released connections are kept for the next checkout; False: closed on release
    reuses_connections: bool = True

    async def acquire(self, timeout: float) -> DriverConnection:
        raise NotImplementedError

    async def release(self, conn: DriverConnection, *, discard: bool = False) -> None:
        raise NotImplementedError

    async def dispose(self) -> None:
        raise NotImplementedError

    def release_nowait(self, conn: DriverConnection) -> None:
        """Return a connection from a context that cannot await (garbage collection)."""
        raise NotImplementedError

    def discard_nowait(self, conn: DriverConnection) -> None:
        """Give a checked-out connection up without awaiting (its event loop is closed):
        terminated, its slot freed."""
        conn.terminate()
        self.release_nowait(conn)  # a checkout replaces a connection that is_closed

    @property
    def checked_out(self) -> int:
        raise NotImplementedError

    @property
    def opened(self) -> int:
        """Connections open now (checked out or idle)."""
        raise NotImplementedError


class Dialect:
    """Base dialect.  Subclasses: ``SQLiteDialect``, ``PGDialect``."""

    name = "base"
    compiler_class: type[Compiler] = Compiler
    batch_writer_class: type[BatchWriter] = BatchWriter
    #: how many bound parameters one statement may carry
    max_params = 32766
    #: ``IN`` lists are spelled with one placeholder per value (their length is part of the SQL)
    expands_in_lists = True
    #: DDL type names by type ``visit_name``
    type_names: dict[str, str] = {}
    #: tables may live in a named schema (``"music"."albums"``); the schema must already exist
    supports_schemas = True
    #: what ``isolation_level=`` accepts (normalized: upper case, one space between words)
    isolation_levels: tuple[str, ...] = ()
    #: a stream's cursor exists only inside a transaction block, so a stream begins one
    cursors_need_transaction = False

    def __init__(self) -> None:
        self.cache = StatementCache()
        self.ddl = DDLCompiler(self)
        #: the SQL of the flush's batches
        self.batch = self.batch_writer_class(self)
        self._bind_procs: dict[sqltypes.TypeEngine, Processor] = {}
        self._result_procs: dict[sqltypes.TypeEngine, Processor] = {}

    # -- compiling ---------------------------------------------------------
    def compile(self, stmt: ClauseElement) -> tuple[Compiled, list[BindParameter]]:
        """The cached Compiled for the statement's shape, and its bound parameters."""
        binds: list[BindParameter] = []
        key = stmt._ck(binds)
        if self.expands_in_lists:
            # a list sent as one parameter (``in_list_as_json``) keys as -1: its SQL is the same
            lengths = tuple(-1 if self.in_list_as_json(b) else len(b.value)
                            for b in binds if isinstance(b, ExpandingBind))
            if lengths:
                key = (key, lengths)
        if len(binds) > 1 and len({id(b) for b in binds}) != len(binds):
            # One bind object used at several places (a condition reused) compiles to a
            # single value; the key must say so, or a same-shaped statement with separate
            # values would reuse that SQL and send one value for all of them.
            first: dict[int, int] = {}
            key = (key, tuple(first.setdefault(id(b), i) for i, b in enumerate(binds)))
        compiled = self.cache.get(key)
        if compiled is None:
            compiled = self.compiler_class(self, binds).process(stmt)
            self.cache.put(key, compiled)
        return compiled, binds

    def params_for(self, compiled: Compiled, binds: list[BindParameter], extra: dict[str, Any] | None) -> list[Any]:
        """Driver-ready positional parameters for one execution."""
        if compiled.text_names is not None:
            return self._text_params(compiled.text_names, extra or {})
        out = []
        for index, proc, expand in compiled.params:
            if expand == -1:  # the common case first: one value
                value = binds[index].value
                out.append(value if proc is None else proc(value))
            elif expand >= 0:  # one value of an expanded IN list
                value = binds[index].value[expand]
                out.append(value if proc is None else proc(value))
            elif expand == -2:  # whole list as one array parameter
                value = binds[index].value
                out.append(value if proc is None else [proc(v) for v in value])
            elif expand == -4:  # whole list as one JSON array text (SQLite's json_each)
                value = binds[index].value
                out.append(json_dumps(value if proc is None else [proc(v) for v in value]))
            else:  # -3: a text() fragment's parameter given by name to execute()
                out.extend(self._text_params([compiled.named[index]], extra or {}))
        return out

    def _text_params(self, names: list[str], values: dict[str, Any]) -> list[Any]:
        out = []
        for name in names:
            if name not in values:
                raise exc.ArgumentError(
                    f"text() parameter :{name} has no value; pass it with .bindparams({name}=...) "
                    f"or execute(stmt, {{{name!r}: ...}})"
                )
            out.append(self.adapt_untyped(values[name]))
        return out

    def in_list_as_json(self, bind: ExpandingBind) -> bool:
        """Send this ``IN`` list as one JSON array parameter instead of a placeholder per value
        (a dialect that expands lists and has a parameter limit overrides)."""
        return False

    def adapt_untyped(self, value: Any) -> Any:
        """Convert a value with no known column type for the driver."""
        if isinstance(value, enum.Enum):
            return value.name
        return value

    # -- types ---------------------------------------------------------------
    def type_ddl(self, col: Column, table: Table) -> str:
        t = col.type
        if isinstance(t, sqltypes.String) and t.visit_name == "string" and t.length:
            return f"VARCHAR({t.length})"
        if isinstance(t, sqltypes.Enum):
            return f"VARCHAR({t.length})"
        if isinstance(t, sqltypes.Numeric) and t.precision is not None:
            return f"NUMERIC({t.precision}, {t.scale or 0})"
        return self.type_names[t.visit_name]

    def sql_type(self, type_: sqltypes.TypeEngine) -> str:
        """The type name a parameter is cast to (``$1::BIGINT``); empty: this dialect casts none."""
        return ""

    def cast_type(self, type_: sqltypes.TypeEngine) -> str:
        """The type named in ``CAST(x AS type)``."""
        if isinstance(type_, sqltypes.Numeric) and type_.precision is not None:
            return f"NUMERIC({type_.precision}, {type_.scale or 0})"
        if isinstance(type_, sqltypes.String) and type_.visit_name == "string" and type_.length:
            return f"VARCHAR({type_.length})"
        if isinstance(type_, sqltypes.Enum):
            return "VARCHAR"
        name = self.sql_type(type_) or self.type_names.get(type_.visit_name, "")
        if not name:
            raise exc.ArgumentError(f"cannot CAST to {type_!r} on {self.name}")
        return name

    def array_cast(self, type_: sqltypes.TypeEngine) -> str:
        """The cast of a whole list sent as one array parameter; empty: none."""
        return ""

    def bind_processor(self, type_: sqltypes.TypeEngine) -> Processor:
        try:
            return self._bind_procs[type_]
        except KeyError:
            proc = self._bind_procs[type_] = self._make_bind_processor(type_)
            return proc

    def result_processor(self, type_: sqltypes.TypeEngine) -> Processor:
        try:
            return self._result_procs[type_]
        except KeyError:
            proc = self._result_procs[type_] = self._make_result_processor(type_)
            return proc

    def computed_result_processor(self, type_: sqltypes.TypeEngine) -> Processor:
        """The processor for a selected expression (``func.avg(...)``, ``a * b``) of ``type_``.

        A column's values already have the column's form; an expression's may not
        (an average has more decimals than the column it averages).
        """
        return self.result_processor(type_)

    def _make_bind_processor(self, type_: sqltypes.TypeEngine) -> Processor:
        if isinstance(type_, sqltypes.Enum):
            return enum_processors(type_)[0]
        return None

    def _make_result_processor(self, type_: sqltypes.TypeEngine) -> Processor:
        if isinstance(type_, sqltypes.Enum):
            return enum_processors(type_)[1]
        return None

    # -- transactions ------------------------------------------------------------
    def check_isolation_level(self, level: Any, where: str) -> str | None:
        """``level`` normalized (``"serializable"`` and ``"REPEATABLE_READ"`` are accepted), or
        None for the default; an ArgumentError naming ``where`` and the choices otherwise."""
        if level is None:
            return None
        name = " ".join(level.replace("_", " ").upper().split()) if isinstance(level, str) else None
        if name in self.isolation_levels:
            return name
        choices = ", ".join(repr(n) for n in self.isolation_levels)
        why = self.isolation_refusal(name) if name is not None else ""
        raise exc.ArgumentError(f"{where}: isolation_level={level!r} is not available on {self.name}"
                                f"{'; ' + why if why else ''}; choose one of {choices}, or None for the default")

    def isolation_refusal(self, level: str) -> str:
        """Why a known level name is refused here (empty if there is nothing to add)."""
        if level == "AUTOCOMMIT":
            return ("aiouow always runs statements in a transaction (a flush needs one); there is no "
                    "AUTOCOMMIT mode: commit() when the work is done")
        return ""

    def begin_sql(self, isolation_level: str | None) -> str:
        """The statement that starts a transaction at ``isolation_level`` (None: the default)."""
        return "BEGIN"

    # -- errors ----------------------------------------------------------------
    def translate_error(self, err: BaseException, statement: str | None, params: Any) -> exc.DBAPIError | None:
        """The aiouow error for a driver error, or None if ``err`` is not the driver's."""
        raise NotImplementedError

    def is_disconnect(self, err: BaseException, conn: DriverConnection | None) -> bool:
        """Whether ``err`` (a driver error raised by a statement on ``conn``) means the connection
        is gone: the server ended it, the network dropped it.  Such a statement did not run."""
        return conn is not None and conn.is_closed

    def never_ran(self, err: BaseException, conn: DriverConnection | None) -> bool:
        """Whether a disconnect error (``is_disconnect``) shows the statement did not run, or was
        undone with the connection: an autocommitted write is sent again only then."""
        return self.is_disconnect(err, conn)

    def explain_constraint(self, err: exc.IntegrityError, table: Table, action: str) -> str:
        """What to add to the message of a constraint violation that a flush's ``action``
        (``"insert"``, ``"update"`` or ``"delete"``) on rows of ``table`` raised, where the
        driver's own message leaves out which constraint ("" when it says enough)."""
        return ""

    def wrap(self, cls: type[exc.DBAPIError], err: BaseException, statement: str | None,
             params: Any) -> exc.DBAPIError:
        return cls(f"({type(err).__module__}.{type(err).__name__}) {err}", err, statement, params)

    # -- connections -------------------------------------------------------------
    def create_pool(self, url: Any, pool_size: int, connect_args: dict[str, Any]) -> Pool:
        raise NotImplementedError


def json_dumps(value: Any) -> str:
    """A JSON document's text; a document JSON cannot represent is a DataError, on every backend.

    NaN and infinities have no JSON form (PostgreSQL refuses them; SQLite would keep a text no
    other JSON reader takes), nor has a lone surrogate (PostgreSQL refuses its escape).
    """
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except ValueError as err:
        why = ("it holds a NaN or infinite float, which JSON has no form for; use None or a string"
               if "float" in str(err) else f"{err}")
        raise exc.DataError(f"cannot store {value!r:.80} as JSON: {why}") from None
    except TypeError as err:
        raise exc.DataError(f"cannot store {value!r:.80} as JSON: {err}; use dict, list, str, int, float, "
                            "bool and None only") from None
    if "\\ud" in text:  # an astral character's escape, or a lone surrogate's: rare, so checked exactly
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as err:
            raise exc.DataError(f"cannot store {value!r:.80} as JSON: a string holds the lone surrogate "
                                f"{err.object[err.start]!r}, which UTF-8 cannot encode; remove it") from None
    return text


json_loads = json.loads
none_safe = _none_safe
