"""The ORM execute path: ``session.execute()`` / ``stream()`` / ``get()`` for statements with entities.

A SELECT naming mapped classes returns identity-mapped objects (``rows.py``
builds them), with its loader options applied (``options.py``, ``joined.py``);
an ORM ``update()`` / ``delete()`` returns the primary keys of the rows it
changed so that the session can keep the objects it holds in step
(``SessionInternals._sync_dml``); anything else runs as core SQL.  The
session is reached only through ``SessionInternals`` (``protocol.py``), so
this module does not depend on the session package.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from ..engine.connection import Connection
from ..engine.result import AsyncResult, Result, _process, make_row_class
from ..mapping.mapper import Mapper
from ..sql.dml import Delete, DMLStatement, Update
from ..sql.elements import BindParameter, ClauseElement, and_
from ..sql.selectable import EntityClause, Select
from ..sql.subquery import CompoundSelect
from .joined import joined_statement, populate_joined, split_options
from .options import LoaderOption, apply_options
from .rows import instances, is_expired

if TYPE_CHECKING:
    from .protocol import SessionInternals

Params = dict[str, Any] | Sequence[dict[str, Any]] | None


async def execute(session: SessionInternals, statement: ClauseElement, params: Params) -> Result:
    conn = await session._ready_for(statement)
    if isinstance(statement, (Select, CompoundSelect)) and \
            any(getattr(c, "visit_name", "") == "entity" for c in statement._columns):
        return await orm_select(session, conn, statement, params)
    if isinstance(statement, DMLStatement) and statement.entity is not None and \
            isinstance(statement, (Update, Delete)) and not isinstance(params, (list, tuple)):
        return await orm_dml(session, conn, statement, params)
    if not isinstance(statement, (Select, CompoundSelect)):
        session._note_statement(statement)
    return await conn.execute(statement, params)


async def orm_select(session: SessionInternals, conn: Connection, stmt: Select | CompoundSelect,
                     params: Any) -> Result:
    if isinstance(stmt, Select) and stmt._options and len(stmt._columns) == 1:
        mapper = stmt._columns[0].entity  # type: ignore[attr-defined]
        joined, rest = split_options(stmt, mapper)
        if joined:
            return await orm_select_joined(session, conn, stmt, params, mapper, joined, rest)
    compiled, args = conn.compile(stmt, params)
    rows = await conn.fetch_sql(compiled.sql, args, compiled.reads_only)
    populate = bool(stmt._execution_options.get("populate_existing"))
    row_class = orm_row_class(compiled)
    items = compiled.items
    if len(items) == 1:
        # one entity: its values are converted as its objects are built
        mapper = items[0][1]
        objs = instances(session, mapper, rows, 0, populate, compiled.result_procs)
        if stmt._options:
            await apply_options(session, stmt._options, [mapper], [objs], populate, _entity_tables(stmt))
        return Result(objs, row_class, scalar_rows=True)
    if compiled.result_procs:
        rows = _process(rows, compiled.result_procs)
    columns: list[list[Any]] = []
    entity_cols: list[tuple[Mapper, list[Any]]] = []
    for kind, ent, start, _stop in items:
        if kind == "entity":
            objs = instances(session, ent, rows, start, populate)
            columns.append(objs)
            entity_cols.append((ent, objs))
        else:
            columns.append([r[start] for r in rows])
    if stmt._options and entity_cols:
        await apply_options(session, stmt._options, [m for m, _ in entity_cols], [o for _, o in entity_cols],
                            populate, _entity_tables(stmt))
    return Result(list(zip(*columns)) if rows else [], row_class)


def _entity_tables(stmt: Select | CompoundSelect) -> list[Any]:
    """The FROM item (table or alias) of each entity the statement selects, in order."""
    return [c.table for c in stmt._columns if isinstance(c, EntityClause)]


async def orm_select_joined(session: SessionInternals, conn: Connection, stmt: Select, params: Any, mapper: Mapper,
                            joined: list[Any], rest: list[Any]) -> Result:
    """A single-entity SELECT with joined eager loads in the same query."""
    compiled, args = conn.compile(joined_statement(stmt, joined), params)
    rows = await conn.fetch_sql(compiled.sql, args, compiled.reads_only)
    if compiled.result_procs:
        rows = _process(rows, compiled.result_procs)
    populate = bool(stmt._execution_options.get("populate_existing"))
    parents, children = populate_joined(session, mapper, rows, compiled.items, joined, populate)
    for opt, objs in children:
        if len(opt.path) > 1:
            await apply_options(session, [LoaderOption(opt.path[1:])], [opt.path[0][1].mapper], [objs], populate)
    if rest:
        await apply_options(session, rest, [mapper], [parents], populate, _entity_tables(stmt))
    base, _ = conn.compile(stmt, params)
    return Result(parents, orm_row_class(base), scalar_rows=True)


async def orm_dml(session: SessionInternals, conn: Connection, stmt: Update | Delete, params: Any) -> Result:
    """ORM update()/delete(): the session keeps identity-mapped objects in step
    (synchronize_session="auto")."""
    mapper = stmt.table.mapper
    if mapper is None:
        session._note_statement(stmt)
        return await conn.execute(stmt, params)
    if stmt._returning:
        session._note_statement(stmt)
        result = await conn.execute(stmt, params)
        if isinstance(stmt, Update):
            session._sync_dml(stmt, None, {})
        return result
    # values given as SQL expressions come back through RETURNING (synchronize_session="fetch")
    fetched = [c for c, v in stmt._values if not isinstance(v, BindParameter)] if isinstance(stmt, Update) else []
    npk = len(mapper.pk_keys)
    fetched_at = {c.key: npk + i for i, c in enumerate(fetched)}
    compiled, args = conn.compile(stmt.returning(*mapper.primary_key, *fetched), params)
    rows = await conn.fetch_sql(compiled.sql, args)
    if compiled.result_procs:
        rows = _process(rows, compiled.result_procs)
    session._sync_dml(stmt, rows, fetched_at)
    return Result([], None, rowcount=len(rows))


async def stream(session: SessionInternals, statement: ClauseElement, params: dict[str, Any] | None,
                 chunk_size: int) -> AsyncResult:
    with session._guard:
        conn = await session._ready_for(statement)
    compiled, args = conn.compile(statement, params)
    procs = compiled.result_procs
    items = compiled.items
    entities = any(kind == "entity" for kind, *_ in items)
    populate = isinstance(statement, Select) and bool(statement._execution_options.get("populate_existing"))

    def convert(rows: list[Any]) -> list[Any]:
        if procs:
            rows = _process(rows, procs)
        if not entities:
            return rows
        if len(items) == 1:
            return instances(session, items[0][1], rows, 0, populate)
        cols = [instances(session, ent, rows, start, populate) if kind == "entity" else [r[start] for r in rows]
                for kind, ent, start, _ in items]
        return list(zip(*cols))

    single = entities and len(items) == 1
    chunks = _guarded_stream(session, conn, compiled.sql, args, chunk_size, compiled.reads_only)
    if compiled.text_names is not None:
        return AsyncResult(chunks, convert, None, names_from=conn._column_names)
    return AsyncResult(chunks, convert, orm_row_class(compiled) if entities else compiled.row_class(),
                       scalar_rows=single)


async def _guarded_stream(session: SessionInternals, conn: Connection, sql: str, args: list[Any], chunk: int,
                          read: bool) -> AsyncIterator[list[Any]]:
    """The chunks of a stream; fetching each holds the session, handing it out does not."""
    agen = conn.stream_sql(sql, args, chunk, read)
    try:
        while True:
            with session._guard:
                try:
                    rows = await agen.__anext__()
                except StopAsyncIteration:
                    return
            yield rows
    finally:
        await agen.aclose()  # type: ignore[attr-defined]


async def get(session: SessionInternals, mapper: Mapper, pk: Any, populate_existing: bool, with_for_update: bool,
              options: Sequence[Any]) -> Any:
    if not populate_existing and not with_for_update:
        obj = session._identity_for(mapper).get(pk)
        if obj is not None and not is_expired(obj, mapper):  # marked deleted too, as in SQLAlchemy
            if options:
                await apply_options(session, options, [mapper], [[obj]], False)
            return obj
    await session._prepare()
    row = await select_by_pk(session, mapper, pk, with_for_update)
    if row is None:
        return None
    obj = instances(session, mapper, [row], 0, populate_existing or with_for_update)[0]
    if options:
        await apply_options(session, options, [mapper], [[obj]], populate_existing)
    return obj


async def select_by_pk(session: SessionInternals, mapper: Mapper, pk: Any, for_update: bool) -> Any:
    """The row of ``mapper``'s columns with this primary key (identity form), or None."""
    conn = await session._connection_for_mapper(mapper, for_update)
    dialect = conn.dialect
    key = (dialect.name, "get", for_update)
    cached = mapper.cache.get(key)
    if cached is None:
        cols = mapper.primary_key
        stmt = Select(mapper.class_).where(and_(*[c == BindParameter(None, c.type) for c in cols]))
        if for_update:
            stmt = stmt.with_for_update()
        compiled, _ = dialect.compile(stmt)
        procs = [dialect.bind_processor(c.type) for c in cols]
        cached = mapper.cache[key] = (compiled, procs)
    compiled, procs = cached
    values = pk if len(mapper.pk_keys) > 1 else (pk,)
    args = [v if p is None else p(v) for v, p in zip(values, procs)]
    rows = await conn.fetch_sql(compiled.sql, args, compiled.reads_only)
    if not rows:
        return None
    if compiled.result_procs:
        rows = _process(rows, compiled.result_procs)
    return rows[0]


def orm_row_class(compiled: Any) -> Any:
    """The row class of an ORM result: entities named by their class (cached on the statement)."""
    rc = getattr(compiled, "_orm_row_class", None)
    if rc is None:
        names = []
        for kind, ent, start, _ in compiled.items:
            names.append(ent.class_.__name__ if kind == "entity" else compiled.names[start])
        rc = make_row_class(names)
        try:
            compiled._orm_row_class = rc
        except AttributeError:
            pass
    return rc
