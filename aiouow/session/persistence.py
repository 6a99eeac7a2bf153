"""Executing a flush plan: one round trip per batch wherever the backend allows.

PostgreSQL: a batch sends one array parameter per column and ``unnest``s it
server-side (``INSERT ... SELECT * FROM unnest($1::bigint[], ...)``,
``UPDATE ... FROM unnest(...)``, ``DELETE ... USING unnest(...)``), so the
SQL text, and asyncpg's prepared statement, is the same for any batch size,
and the row count comes back for the stale-data check.  Generated keys are
reserved from the sequence in one query before a multi-row insert.

SQLite: multi-row ``INSERT ... VALUES ... RETURNING`` for generated keys
(chunked under the parameter limit; rowids are handed out in insertion
order, so sorting them restores the row order whatever order RETURNING
uses), ``DELETE ... WHERE pk IN (?, ...)`` for rows with a one-column key,
``executemany`` for the rest, which reports the total row count.

Nothing here touches the objects: the outcome is returned as data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import types as sqltypes
from ..engine.base import Connection
from ..exc import InvalidRequestError, StaleDataError
from ..mapping.mapper import Mapper
from ..sql.schema import Column
from .dependency import Ref
from .unitofwork import AssocBatch, DeleteBatch, FlushPlan, InsertBatch, ParentGone, UpdateBatch

Processor = Callable[[Any], Any] | None

#: PostgreSQL inserts of more rows than this go through COPY (measured here: 10 000 rows
#: took 19 ms by COPY, 35-58 ms by one unnest INSERT, 66-110 ms by executemany)
COPY_MIN_ROWS = 1000


def _has_json(mapper: Mapper) -> bool:
    # asyncpg's COPY is binary, and JSON goes through a text codec
    return any(isinstance(c.type, sqltypes.JSON) for c in mapper.table.columns)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class FlushOutcome:
    """What the database decided: generated primary keys, by batch index and by object."""

    __slots__ = ("generated", "by_obj")

    def __init__(self) -> None:
        self.generated: dict[int, list[Any]] = {}
        self.by_obj: dict[int, Any] = {}

    def resolve(self, rows: list[list[Any]], refs: list[tuple[int, int]]) -> None:
        """Replace Refs by the values their objects have now (generated keys included)."""
        by_obj = self.by_obj
        for i, j in refs:
            ref = rows[i][j]
            if ref.__class__ is Ref:
                obj = ref.obj
                value = obj.__dict__.get(ref.key)
                if value is None:
                    value = by_obj.get(id(obj))
                if value is None:
                    raise InvalidRequestError(
                        f"{type(obj).__name__}.{ref.key} has no value to copy into a related row: "
                        f"{obj!r} is either not in the session (add it) or inserted later in this flush "
                        "because the foreign keys form a cycle between tables; flush one side first "
                        "(session.add(a); await session.flush(); then set the reference)"
                    )
                rows[i][j] = value


class _Sql:
    """SQL for one mapper and dialect, built once per batch shape."""

    def __init__(self, conn: Connection, mapper: Mapper) -> None:
        self.dialect = conn.dialect
        self.pg = self.dialect.name == "postgresql"
        self.mapper = mapper
        self.table = _q(mapper.table.name)

    def col(self, key: str) -> Column:
        return self.mapper.columns[key]

    def procs(self, keys: tuple[str, ...]) -> list[Processor]:
        return [self.dialect.bind_processor(self.col(k).type) for k in keys]

    def mark(self, i: int) -> str:
        return f"${i}" if self.pg else "?"

    # -- PostgreSQL array parameters --------------------------------------------
    def array(self, key: str) -> tuple[str, str, Processor]:
        """(array cast, expression reading the unnested value, per-value processor)."""
        t = self.col(key).type
        if isinstance(t, sqltypes.JSON):
            # JSON travels as text: a list value must not read as an array dimension
            from ..dialects.base import json_dumps

            return "::TEXT[]", "::JSONB", (lambda v: None if v is None else json_dumps(v))
        return "::" + self.dialect.sql_type(t) + "[]", "", self.dialect.bind_processor(t)


def _columns(rows: list[list[Any]], procs: list[Processor]) -> list[list[Any]]:
    """Transpose rows into per-column lists, converting values for the driver."""
    cols = [list(c) for c in zip(*rows)] if rows else [[] for _ in procs]
    for i, p in enumerate(procs):
        if p is not None:
            cols[i] = [p(v) for v in cols[i]]
    return cols


def _processed_rows(rows: list[list[Any]], procs: list[Processor]) -> list[list[Any]]:
    if not any(p is not None for p in procs):
        return rows
    return [[v if p is None else p(v) for v, p in zip(row, procs)] for row in rows]


def _cache(mapper: Mapper, conn: Connection, key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
    full = (conn.dialect.name, *key)
    hit = mapper.cache.get(full)
    if hit is None:
        hit = mapper.cache[full] = build()
    return hit


async def execute_plan(conn: Connection, plan: FlushPlan) -> FlushOutcome:
    out = FlushOutcome()
    reserved = await _reserve_keys(conn, plan) if conn.dialect.name == "postgresql" else {}
    for i, step in enumerate(plan.steps):
        if isinstance(step, InsertBatch):
            if step.refs:
                out.resolve(step.rows, step.refs)
            ids = await _insert(conn, step, reserved.get(i))
            if ids is not None:
                out.generated[i] = ids
                by_obj = out.by_obj
                for obj, pk in zip(step.objs, ids):
                    by_obj[id(obj)] = pk
        elif isinstance(step, UpdateBatch):
            if step.refs:
                out.resolve(step.rows, step.refs)
            await _update(conn, step)
        elif isinstance(step, DeleteBatch):
            await _delete(conn, step)
        elif isinstance(step, AssocBatch):
            if step.refs:
                out.resolve(step.rows, step.refs)
            await _assoc(conn, step)
        else:
            await _parent_gone(conn, step)
    return out


# -- INSERT ------------------------------------------------------------------------
async def _reserve_keys(conn: Connection, plan: FlushPlan) -> dict[int, list[Any]]:
    """PostgreSQL: the generated keys of the plan's insert batches, taken from the sequences in one
    round trip (one array per batch, in plan order) before the first INSERT, so rows can go by COPY.

    Only when some batch has several rows; then single-row batches take theirs here too, so keys
    still follow insertion order (a parent inserted first gets the lower key, as on SQLite)."""
    wanted = [(i, step) for i, step in enumerate(plan.steps)
              if isinstance(step, InsertBatch) and step.generate_pk]
    if all(len(step.rows) == 1 for _, step in wanted):
        return {}  # each single row gets its key from INSERT ... RETURNING, in plan order
    parts = []
    for n, (_, step) in enumerate(wanted, 1):
        seq = await _sequence_literal(conn, step.mapper.table.name, step.mapper.autoincrement_key)
        parts.append(f"array(SELECT nextval({seq}::regclass) FROM generate_series(1, ${n}::integer))")
    rows = await conn.fetch_sql("SELECT " + ", ".join(parts), [len(step.rows) for _, step in wanted])
    return {i: list(ids) for (i, _), ids in zip(wanted, rows[0])}


async def _insert(conn: Connection, b: InsertBatch, reserved: list[Any] | None = None) -> list[Any] | None:
    s = _Sql(conn, b.mapper)
    n = len(b.rows)
    auto = b.mapper.autoincrement_key
    if s.pg:
        if b.generate_pk and reserved is None:
            assert n == 1
            sql = _cache(b.mapper, conn, ("insert1r", b.keys), lambda: _values_sql(s, b.keys, 1) +
                         f" RETURNING {_q(auto)}")  # type: ignore[arg-type]
            rows = await conn.fetch_sql(sql, _processed_rows(b.rows, s.procs(b.keys))[0])
            return [rows[0][0]]
        keys, rows, ids = b.keys, b.rows, None
        if b.generate_pk:
            assert reserved is not None and len(reserved) == n
            ids = reserved
            keys = (auto, *keys)  # type: ignore[assignment]
            rows = [[pk, *row] for pk, row in zip(ids, rows)]
        if n == 1:
            sql = _cache(b.mapper, conn, ("insert1", keys), lambda: _values_sql(s, keys, 1))
            await conn.execute_sql(sql, _processed_rows(rows, s.procs(keys))[0])
        elif n > COPY_MIN_ROWS and not _has_json(b.mapper):
            await conn.copy_records(b.mapper.table.name, keys, _processed_rows(rows, s.procs(keys)))
        else:
            sql, procs = _cache(b.mapper, conn, ("insert_unnest", keys), lambda: _unnest_insert_sql(s, keys))
            await conn.execute_sql(sql, _columns(rows, procs))
        return ids
    # SQLite
    procs = s.procs(b.keys)
    prows = _processed_rows(b.rows, procs)
    if not b.generate_pk:
        sql = _cache(b.mapper, conn, ("insert1", b.keys), lambda: _values_sql(s, b.keys, 1))
        if n == 1:
            await conn.execute_sql(sql, prows[0])
        else:
            await conn.executemany_sql(sql, prows)
        return None
    width = max(1, len(b.keys))
    per_chunk = max(1, conn.dialect.max_params // width)
    ids: list[Any] = []
    for start in range(0, n, per_chunk):
        chunk = prows[start:start + per_chunk]
        m = len(chunk)
        sql = _cache(b.mapper, conn, ("insert_ret", b.keys, m),
                     lambda m=m: _values_sql(s, b.keys, m) + f" RETURNING {_q(auto)}")  # type: ignore[arg-type]
        flat = [v for row in chunk for v in row]
        got = await conn.fetch_sql(sql, flat)
        ids.extend(sorted(r[0] for r in got))
    return ids


async def _sequence_literal(conn: Connection, table: str, column: str | None) -> str:
    """The column's sequence as an SQL string literal, looked up once per engine: resolving it
    inside the query (per row) made reservation five times slower."""
    names: dict[str, str] = conn.dialect.__dict__.setdefault("_sequences", {})
    key = f"{table}.{column}"
    literal = names.get(key)
    if literal is None:
        rows = await conn.fetch_sql("SELECT pg_get_serial_sequence($1, $2)", [table, column])
        seq = rows[0][0]
        if seq is None:
            raise InvalidRequestError(f"table {table} has no sequence behind column {column!r}")
        literal = names[key] = "'" + seq.replace("'", "''") + "'"
    return literal


def _values_sql(s: _Sql, keys: tuple[str, ...], rows: int) -> str:
    cols = ", ".join(_q(k) for k in keys)
    if not keys:
        return f"INSERT INTO {s.table} DEFAULT VALUES" if rows == 1 else \
            f"INSERT INTO {s.table} ({_q(s.mapper.autoincrement_key)}) VALUES " + \
            ", ".join("(NULL)" for _ in range(rows))  # type: ignore[arg-type]
    width = len(keys)
    groups = []
    n = 0
    for _ in range(rows):
        marks = []
        for _ in range(width):
            n += 1
            marks.append(s.mark(n))
        groups.append("(" + ", ".join(marks) + ")")
    return f"INSERT INTO {s.table} ({cols}) VALUES " + ", ".join(groups)


def _unnest_insert_sql(s: _Sql, keys: tuple[str, ...]) -> tuple[str, list[Processor]]:
    casts, reads, procs = zip(*[s.array(k) for k in keys])
    names = [f"c{i}" for i in range(len(keys))]
    select = ", ".join(f"v.{n}{r}" for n, r in zip(names, reads))
    args = ", ".join(f"${i + 1}{c}" for i, c in enumerate(casts))
    sql = (f"INSERT INTO {s.table} ({', '.join(_q(k) for k in keys)}) "
           f"SELECT {select} FROM unnest({args}) AS v({', '.join(names)})")
    return sql, list(procs)


# -- UPDATE ------------------------------------------------------------------------
def _stale(kind: str, table: str, expected: int, matched: int) -> StaleDataError:
    return StaleDataError(
        f"{kind} of table {table!r} expected to match {expected} row(s) but matched {matched}: the row was "
        "deleted, or its version changed, in another transaction since it was loaded"
    )


async def _update(conn: Connection, b: UpdateBatch) -> None:
    m = b.mapper
    n = len(b.rows)
    if conn.dialect.name != "postgresql" or n == 1:
        # SQL and per-parameter converters built once per shape: most flushes update one row
        sql, procs = _cache(m, conn, ("update1", b.keys, b.version_mode), lambda: _update_one(_Sql(conn, m), b))
        if b.version_mode == "check":
            params = [[*row, v + 1, *pk, v] for row, pk, v in zip(b.rows, b.pks, b.old_versions)]
        else:
            params = [[*row, *pk] for row, pk in zip(b.rows, b.pks)]
        if procs is not None:
            params = [[v if p is None else p(v) for v, p in zip(row, procs)] for row in params]
        if n == 1:
            count = await conn.execute_sql(sql, params[0])
        else:
            count = await conn.executemany_sql(sql, params)
    else:
        s = _Sql(conn, m)
        sql, procs = _cache(m, conn, ("update_unnest", b.keys, b.version_mode), lambda: _update_unnest_sql(s, b))
        rows = [[*pk, *row] for pk, row in zip(b.pks, b.rows)]
        if b.version_mode == "check":
            rows = [[*r, v] for r, v in zip(rows, b.old_versions)]
        count = await conn.execute_sql(sql, _columns(rows, procs))
    if count != n and count >= 0:
        raise _stale("UPDATE", m.table.name, n, count)


def _update_one(s: _Sql, b: UpdateBatch) -> tuple[str, list[Processor] | None]:
    """The one-row UPDATE and the converters of its parameters (None if there is nothing to convert):
    the new values, [the new version], the primary key, [the old version]."""
    check = [None] if b.version_mode == "check" else []
    procs = s.procs(b.keys) + check + s.procs(s.mapper.pk_keys) + check
    return _update_one_sql(s, b), (procs if any(p is not None for p in procs) else None)


def _update_one_sql(s: _Sql, b: UpdateBatch) -> str:
    m = b.mapper
    n = 0

    def mark() -> str:
        nonlocal n
        n += 1
        return s.mark(n)

    sets = [f"{_q(k)} = {mark()}" for k in b.keys]
    if b.version_mode == "check":
        sets.append(f"{_q(m.version_key)} = {mark()}")  # type: ignore[arg-type]
    elif b.version_mode == "bump":
        sets.append(f"{_q(m.version_key)} = {_q(m.version_key)} + 1")  # type: ignore[arg-type]
    where = [f"{_q(k)} = {mark()}" for k in m.pk_keys]
    if b.version_mode == "check":
        where.append(f"{_q(m.version_key)} = {mark()}")  # type: ignore[arg-type]
    return f"UPDATE {s.table} SET {', '.join(sets)} WHERE {' AND '.join(where)}"


def _update_unnest_sql(s: _Sql, b: UpdateBatch) -> tuple[str, list[Processor]]:
    m = b.mapper
    keys = [*m.pk_keys, *b.keys]
    specs = [s.array(k) for k in keys]
    if b.version_mode == "check":
        specs.append(("::BIGINT[]", "", None))
    names = [f"c{i}" for i in range(len(specs))]
    npk = len(m.pk_keys)
    sets = [f"{_q(k)} = v.{names[npk + i]}{specs[npk + i][1]}" for i, k in enumerate(b.keys)]
    where = [f"t.{_q(k)} = v.{names[i]}" for i, k in enumerate(m.pk_keys)]
    vk = m.version_key
    if b.version_mode == "check":
        sets.append(f"{_q(vk)} = v.{names[-1]} + 1")  # type: ignore[arg-type]
        where.append(f"t.{_q(vk)} = v.{names[-1]}")  # type: ignore[arg-type]
    elif b.version_mode == "bump":
        sets.append(f"{_q(vk)} = t.{_q(vk)} + 1")  # type: ignore[arg-type]
    args = ", ".join(f"${i + 1}{spec[0]}" for i, spec in enumerate(specs))
    sql = (f"UPDATE {s.table} AS t SET {', '.join(sets)} FROM unnest({args}) AS v({', '.join(names)}) "
           f"WHERE {' AND '.join(where)}")
    return sql, [spec[2] for spec in specs]


# -- DELETE ------------------------------------------------------------------------
async def _delete(conn: Connection, b: DeleteBatch) -> None:
    s = _Sql(conn, b.mapper)
    m = b.mapper
    n = len(b.pks)
    versioned = b.versions is not None
    if n > 1 and len(m.pk_keys) == 1 and not versioned:
        count = await _delete_keys(conn, s, [pk[0] for pk in b.pks])
    elif s.pg and n > 1:
        rows = [[*pk, v] for pk, v in zip(b.pks, b.versions)] if versioned else [list(pk) for pk in b.pks]  # type: ignore[arg-type]
        sql, procs = _cache(m, conn, ("delete_unnest", versioned), lambda: _delete_unnest_sql(s, versioned))
        count = await conn.execute_sql(sql, _columns(rows, procs))
    else:
        rows = [[*pk, v] for pk, v in zip(b.pks, b.versions)] if versioned else [list(pk) for pk in b.pks]  # type: ignore[arg-type]
        sql = _cache(m, conn, ("delete1", versioned), lambda: _delete_one_sql(s, versioned))
        procs = s.procs(m.pk_keys) + ([None] if versioned else [])
        prows = _processed_rows(rows, procs)
        count = await (conn.execute_sql(sql, prows[0]) if n == 1 else conn.executemany_sql(sql, prows))
    if count != n and count >= 0:
        raise _stale("DELETE", m.table.name, n, count)


async def _delete_keys(conn: Connection, s: _Sql, keys: list[Any]) -> int:
    """Delete rows by a one-column primary key in one statement: ``= ANY($1)`` on PostgreSQL,
    ``IN (?, ...)`` on SQLite (chunked under its parameter limit; measured here, 5000 rows took
    6.4 ms against 9.1 ms by executemany).  Rows deleted, for the stale-data check."""
    m = s.mapper
    if s.pg:
        sql, procs = _cache(m, conn, ("delete_unnest", False), lambda: _delete_unnest_sql(s, False))
        proc = procs[0]
        return await conn.execute_sql(sql, [keys if proc is None else [proc(k) for k in keys]])
    proc = s.procs(m.pk_keys)[0]
    if proc is not None:
        keys = [proc(k) for k in keys]
    head = f"DELETE FROM {s.table} WHERE {_q(m.pk_keys[0])} IN ("
    per_chunk = conn.dialect.max_params
    count = 0
    for start in range(0, len(keys), per_chunk):
        chunk = keys[start:start + per_chunk]
        count += await conn.execute_sql(head + ", ".join("?" * len(chunk)) + ")", chunk)
    return count


def _delete_one_sql(s: _Sql, versioned: bool) -> str:
    m = s.mapper
    keys = [*m.pk_keys, *([m.version_key] if versioned else [])]
    where = " AND ".join(f"{_q(k)} = {s.mark(i + 1)}" for i, k in enumerate(keys))  # type: ignore[arg-type]
    return f"DELETE FROM {s.table} WHERE {where}"


def _delete_unnest_sql(s: _Sql, versioned: bool) -> tuple[str, list[Processor]]:
    m = s.mapper
    specs = [s.array(k) for k in m.pk_keys]
    if versioned:
        specs.append(("::BIGINT[]", "", None))
    if len(m.pk_keys) == 1 and not versioned:
        cast, _, proc = specs[0]
        return f"DELETE FROM {s.table} WHERE {_q(m.pk_keys[0])} = ANY($1{cast})", [proc]
    names = [f"c{i}" for i in range(len(specs))]
    where = [f"t.{_q(k)} = v.{names[i]}" for i, k in enumerate(m.pk_keys)]
    if versioned:
        where.append(f"t.{_q(m.version_key)} = v.{names[-1]}")  # type: ignore[arg-type]
    args = ", ".join(f"${i + 1}{spec[0]}" for i, spec in enumerate(specs))
    sql = (f"DELETE FROM {s.table} AS t USING unnest({args}) AS v({', '.join(names)}) "
           f"WHERE {' AND '.join(where)}")
    return sql, [spec[2] for spec in specs]


# -- many-to-many association rows and deleted parents -------------------------------
async def _assoc(conn: Connection, b: AssocBatch) -> None:
    table = b.table
    pg = conn.dialect.name == "postgresql"
    keys, rows_in = b.keys, b.rows
    if not b.delete and table.insert_defaults:
        # other columns of the association table with a Python-side default get it, as a
        # core insert() gives them (a callable once per row)
        extra = [c for c in table.insert_defaults if c.key not in keys]
        if extra:
            keys = (*keys, *(c.key for c in extra))
            rows_in = [[*row, *(c.default_value() for c in extra)] for row in rows_in]
    cols = [table.c[k] for k in keys]
    procs = [conn.dialect.bind_processor(c.type) for c in cols]
    name = _q(table.name)
    if b.delete:
        where = " AND ".join(f"{_q(k)} = {'$' + str(i + 1) if pg else '?'}" for i, k in enumerate(keys))
        sql = f"DELETE FROM {name} WHERE {where}"
    else:
        marks = ", ".join(f"${i + 1}" if pg else "?" for i in range(len(keys)))
        sql = f"INSERT INTO {name} ({', '.join(_q(k) for k in keys)}) VALUES ({marks})"
    rows = _processed_rows(rows_in, procs)
    if len(rows) == 1:
        await conn.execute_sql(sql, rows[0])
    else:
        await conn.executemany_sql(sql, rows)


async def _parent_gone(conn: Connection, g: ParentGone) -> None:
    """Un-parent the children (or purge the association rows) of deleted parents, in one statement
    per relationship, without loading them."""
    rel = g.rel
    pg = conn.dialect.name == "postgresql"
    if g.purge:
        table = rel.secondary
        pairs = rel.secondary_parent  # (parent column, association column)
    else:
        table = rel.mapper.table
        pairs = rel.pairs  # (parent column, child column)
    name = _q(table.name)
    parent_col, child_col = pairs[0]
    values = [p.__dict__.get(parent_col.key) for p in g.parents]
    proc = conn.dialect.bind_processor(parent_col.type)
    if proc is not None:
        values = [proc(v) for v in values]
    if len(pairs) != 1:
        raise InvalidRequestError(f"{rel}: composite-key relationships are not supported on delete")
    if g.purge:
        head = f"DELETE FROM {name} WHERE "
    else:
        head = f"UPDATE {name} SET {_q(child_col.name)} = NULL WHERE "
    if pg:
        cond = f"{_q(child_col.name)} = ANY($1::{conn.dialect.sql_type(parent_col.type)}[])"
        await conn.execute_sql(head + cond, [values])
        return
    # SQLite binds each value as its own parameter: chunked under its limit, as _delete_keys does
    per_chunk = conn.dialect.max_params
    for start in range(0, len(values), per_chunk):
        chunk = values[start:start + per_chunk]
        await conn.execute_sql(head + f"{_q(child_col.name)} IN ({', '.join('?' * len(chunk))})", chunk)
