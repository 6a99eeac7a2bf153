"""Executing a flush plan: one round trip per batch wherever the backend allows.

The statements are the dialect's (``dialect.batch``, a :class:`~aiouow.dialects.batch.BatchWriter`:
arrays and COPY on PostgreSQL, multi-row VALUES and ``executemany`` on SQLite); this module walks
the plan, resolves the keys rows refer to, and checks what came back (row counts for the
stale-data check, generated primary keys).

Nothing here touches the objects: the outcome is returned as data.
"""

from __future__ import annotations

from typing import Any

from ..dialects.value_errors import explain, row_items
from ..engine.connection import Connection
from ..exc import DataError, IntegrityError, InvalidRequestError, StaleDataError
from ..sql.compiler import quote, quote_table
from .dependency import Ref
from .unitofwork import AssocBatch, DeleteBatch, FlushPlan, InsertBatch, ParentGone, Step, UpdateBatch


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


async def execute_plan(conn: Connection, plan: FlushPlan, conns: list[Connection] | None = None) -> FlushOutcome:
    """Run the plan on ``conn`` (``conns``: a session with several engines, one per step)."""
    out = FlushOutcome()
    writer = conn.dialect.batch
    if conns is None:
        reserved = await _reserve_keys(conn, plan)
    else:
        reserved = await _reserve_keys_each(conns, plan)
    step: Step | None = None
    try:
        for i, step in enumerate(plan.steps):
            if conns is not None:
                conn = conns[i]
                writer = conn.dialect.batch
            if isinstance(step, InsertBatch):
                if step.refs:
                    out.resolve(step.rows, step.refs)
                ids = await writer.insert(conn, step.mapper, step.keys, step.rows, step.generate_pk, reserved.get(i))
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
    except DataError as err:
        # name the refused value by model attribute (the driver says "$3", or nothing at all)
        if not isinstance(step, (InsertBatch, UpdateBatch)):
            raise
        raise explain(err, conn.dialect.name, row_items(step.mapper, step.keys, step.rows)) from err.__cause__
    except IntegrityError as err:
        if step is not None:
            _explain(conn, err, step)
        raise
    return out


def _explain(conn: Connection, err: IntegrityError, step: Step) -> None:
    """Say in the message which step of the flush broke the constraint (and, where the driver's
    message does not, which constraint it may be), and how to go on."""
    if isinstance(step, InsertBatch):
        table, action, what = step.mapper.table, "insert", f"inserting {_rows(len(step.rows))} into"
    elif isinstance(step, UpdateBatch):
        table, action, what = step.mapper.table, "update", f"updating {_rows(len(step.rows))} of"
    elif isinstance(step, DeleteBatch):
        table, action, what = step.mapper.table, "delete", f"deleting {_rows(len(step.pks))} of"
    elif isinstance(step, AssocBatch):
        action = "delete" if step.delete else "insert"
        table, what = step.table, f"{action[:-1]}ing {len(step.rows)} association row(s) of"
    else:
        rel = step.rel
        if step.purge:
            assert rel.secondary is not None
            table, action, what = rel.secondary, "delete", "deleting the association rows of deleted parents in"
        else:
            table, action, what = rel.mapper.table, "update", "un-parenting the children of deleted parents in"
    extra = conn.dialect.explain_constraint(err, table, action)
    err.args = (f"{err.args[0]}{extra}\n(the flush was {what} table {table.name!r}; its work is rolled back: "
                "call `await session.rollback()` (or leave the begin_nested() block), which also expunges "
                "the objects that were new, then correct the values, add those objects again and retry)",
                *err.args[1:])


def _rows(n: int) -> str:
    return "1 row" if n == 1 else f"{n} rows"


# -- INSERT / UPDATE / DELETE ---------------------------------------------------------
async def _reserve_keys(conn: Connection, plan: FlushPlan) -> dict[int, list[Any]]:
    """The generated keys of the plan's insert batches, if the dialect takes them in one round
    trip before the first INSERT (PostgreSQL, so rows can go by COPY); by batch index."""
    wanted = [(i, step) for i, step in enumerate(plan.steps)
              if isinstance(step, InsertBatch) and step.generate_pk]
    if not wanted:
        return {}
    ids = await conn.dialect.batch.reserve_keys(conn, [(step.mapper, len(step.rows)) for _, step in wanted])
    if ids is None:
        return {}
    return {i: batch_ids for (i, _), batch_ids in zip(wanted, ids)}


async def _reserve_keys_each(conns: list[Connection], plan: FlushPlan) -> dict[int, list[Any]]:
    """``_reserve_keys`` on each engine for the steps that run there."""
    reserved: dict[int, list[Any]] = {}
    for conn in {id(c): c for c in conns}.values():
        idx = [i for i, c in enumerate(conns) if c is conn]
        sub = FlushPlan([plan.steps[i] for i in idx], [])
        for j, ids in (await _reserve_keys(conn, sub)).items():
            reserved[idx[j]] = ids
    return reserved


def _stale(kind: str, table: str, expected: int, matched: int) -> StaleDataError:
    return StaleDataError(
        f"{kind} of table {table!r} expected to match {expected} row(s) but matched {matched}: the row was "
        "deleted, or its version changed, in another transaction since it was loaded"
    )


async def _update(conn: Connection, b: UpdateBatch) -> None:
    n = len(b.rows)
    count = await conn.dialect.batch.update(conn, b.mapper, b.keys, b.rows, b.pks, b.version_mode, b.old_versions)
    if count != n and count >= 0:
        raise _stale("UPDATE", b.mapper.table.name, n, count)


async def _delete(conn: Connection, b: DeleteBatch) -> None:
    n = len(b.pks)
    count = await conn.dialect.batch.delete(conn, b.mapper, b.pks, b.versions)
    if count != n and count >= 0:
        raise _stale("DELETE", b.mapper.table.name, n, count)


# -- many-to-many association rows and deleted parents -------------------------------
async def _assoc(conn: Connection, b: AssocBatch) -> None:
    table = b.table
    keys, rows = b.keys, b.rows
    if not b.delete and table.insert_defaults:
        # other columns of the association table with a Python-side default get it, as a
        # core insert() gives them (a callable once per row)
        extra = [c for c in table.insert_defaults if c.key not in keys]
        if extra:
            keys = (*keys, *(c.key for c in extra))
            rows = [[*row, *(c.default_value() for c in extra)] for row in rows]
    await conn.dialect.batch.association_rows(conn, table, keys, rows, b.delete)


async def _parent_gone(conn: Connection, g: ParentGone) -> None:
    """Un-parent the children (or purge the association rows) of deleted parents, in one statement
    per relationship (per parameter-limit chunk), without loading them."""
    rel = g.rel
    if g.purge:
        table = rel.secondary
        assert table is not None
        pairs = rel.secondary_parent  # (parent column, association column)
    else:
        table = rel.mapper.table
        pairs = rel.pairs  # (parent column, child column)
    if len(pairs) != 1:
        raise InvalidRequestError(f"{rel}: composite-key relationships are not supported on delete")
    parent_col, child_col = pairs[0]
    values = [p.__dict__.get(parent_col.key) for p in g.parents]
    proc = conn.dialect.bind_processor(parent_col.type)
    if proc is not None:
        values = [proc(v) for v in values]
    name = quote_table(table)
    head = f"DELETE FROM {name} WHERE " if g.purge else f"UPDATE {name} SET {quote(child_col.name)} = NULL WHERE "
    await conn.dialect.batch.by_parent_keys(conn, head, child_col, parent_col.type, values)
