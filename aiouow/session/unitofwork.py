"""Flush planning: from the session's pending changes to an ordered plan.

Planning is pure: it reads objects and mappings and returns data (no I/O,
no mutation).  ``persistence.py`` executes the plan; the session applies
the outcome to the objects only after every statement succeeded, so a
failed flush leaves every object exactly as it was.

Order: tables sorted by foreign-key dependency; for each table its INSERTs
(parents first, in "levels" for self-referential rows) and then its
UPDATEs; afterwards all DELETEs, tables in reverse order and children
before parents within a self-referential table.  Rows of one table with the
same shape form one batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..exc import InvalidRequestError
from ..mapping import state as _state
from ..mapping.mapper import Mapper
from ..mapping.relationships import Relationship
from ..mapping.state import NO_VALUE, InstanceState, _same, full_state
from ..sql.schema import Table, sort_tables
from .dependency import Ref, Sync


@dataclass(slots=True)
class InsertBatch:
    mapper: Mapper
    objs: list[Any]
    #: column keys sent, in table order
    keys: tuple[str, ...]
    #: one list of Python values per object, aligned with ``keys``
    rows: list[list[Any]]
    #: the database generates the autoincrement primary key
    generate_pk: bool
    #: (row, column) positions holding a Ref to resolve just before execution
    refs: list[tuple[int, int]] = field(default_factory=list)


@dataclass(slots=True)
class UpdateBatch:
    mapper: Mapper
    objs: list[Any]
    #: changed column keys, in table order
    keys: tuple[str, ...]
    rows: list[list[Any]]
    #: primary key values identifying each row (as of before the flush)
    pks: list[tuple[Any, ...]]
    #: "check": compare and set the version; "bump": version = version + 1; None
    version_mode: str | None
    old_versions: list[int] = field(default_factory=list)
    refs: list[tuple[int, int]] = field(default_factory=list)


@dataclass(slots=True)
class DeleteBatch:
    mapper: Mapper
    objs: list[Any]
    pks: list[tuple[Any, ...]]
    versions: list[int] | None


@dataclass(slots=True)
class AssocBatch:
    """Rows of a many-to-many association table to insert (or delete)."""

    table: Table
    keys: tuple[str, ...]
    rows: list[list[Any]]
    delete: bool
    refs: list[tuple[int, int]] = field(default_factory=list)


@dataclass(slots=True)
class ParentGone:
    """Deleted parents whose children to un-parent (``null_out``) or association rows to purge."""

    rel: Relationship
    parents: list[Any]
    purge: bool


Step = InsertBatch | UpdateBatch | DeleteBatch | AssocBatch | ParentGone


@dataclass(slots=True)
class FlushPlan:
    steps: list[Step]
    #: persistent objects whose changes turned out to be no net change
    unchanged: list[Any]

    def __bool__(self) -> bool:
        return bool(self.steps or self.unchanged)


def plan_inserts(mapper: Mapper, objs: list[Any], overrides: dict[int, tuple[Any, dict[str, Any]]]
                 ) -> list[InsertBatch]:
    auto = mapper.autoincrement_key
    version = mapper.version_key
    keys_all = mapper.column_keys
    keys_gen = tuple(k for k in keys_all if k != auto)
    index_all = {k: i for i, k in enumerate(keys_all)}
    index_gen = {k: i for i, k in enumerate(keys_gen)}
    nn_all = [index_all[k] for k in mapper.not_null_keys]
    nn_gen = [index_gen[k] for k in mapper.not_null_keys if k in index_gen]
    pk_all = [index_all[k] for k in mapper.pk_keys]
    v_all = index_all.get(version) if version else None
    v_gen = index_gen.get(version) if version else None
    batches = {True: InsertBatch(mapper, [], keys_gen, [], True),
               False: InsertBatch(mapper, [], keys_all, [], False)}
    for obj in objs:
        d = obj.__dict__
        generate = auto is not None and d.get(auto) is None
        if generate:
            keys, index, nn, vi = keys_gen, index_gen, nn_gen, v_gen
        else:
            keys, index, nn, vi = keys_all, index_all, nn_all, v_all
        row = list(map(d.get, keys))
        batch = batches[generate]
        ov = overrides.get(id(obj))
        if ov is not None:
            n = len(batch.rows)
            for k, v in ov[1].items():
                j = index[k]
                row[j] = v
                if v.__class__ is Ref:
                    batch.refs.append((n, j))
        if vi is not None and row[vi] is None:
            row[vi] = 1
        for j in (nn if None in row else ()):
            if row[j] is None:
                k = keys[j]
                raise InvalidRequestError(
                    f"{mapper.class_.__name__}.{k} is NOT NULL but is not set on the pending "
                    f"{mapper.class_.__name__} being flushed; set it (or give the column a default, "
                    f"or annotate it `{k}: X | None`)"
                )
        if not generate:
            for j in pk_all:
                if row[j] is None:
                    raise InvalidRequestError(
                        f"a pending {mapper.class_.__name__} has no primary key value "
                        f"({', '.join(mapper.pk_keys)}); set it before flush"
                    )
        batch.objs.append(obj)
        batch.rows.append(row)
    return [b for b in (batches[False], batches[True]) if b.objs]


def _ref_positions(rows: list[list[Any]], which: Iterable[int] | None = None) -> list[tuple[int, int]]:
    """Where Refs sit in ``rows`` (only the rows listed in ``which``, when given)."""
    indexes = range(len(rows)) if which is None else which
    return [(i, j) for i in indexes for j, v in enumerate(rows[i]) if v.__class__ is Ref]


def _self_ref_levels(mapper: Mapper, objs: list[Any],
                     overrides: dict[int, tuple[Any, dict[str, Any]]] | None = None) -> list[list[Any]]:
    """Split pending rows of a self-referential table so that referenced rows come first."""
    overrides = overrides or {}
    fks = [(fk.parent.key, fk.column.key) for fk in mapper.table.foreign_keys  # type: ignore[union-attr]
           if fk.column.table is mapper.table]
    if not fks or len(objs) < 2:
        return [objs]
    by_value: dict[tuple[str, Any], Any] = {}
    for obj in objs:
        d = obj.__dict__
        for _, target in fks:
            v = d.get(target)
            if v is not None:
                by_value[(target, v)] = obj
    level: dict[int, int] = {}
    members = {id(o) for o in objs}

    def depth(obj: Any, seen: set[int]) -> int:
        oid = id(obj)
        if oid in level:
            return level[oid]
        if oid in seen:
            raise InvalidRequestError(
                f"pending {mapper.class_.__name__} rows reference each other in a cycle; "
                "flush one of them first, then set the reference"
            )
        seen.add(oid)
        d = obj.__dict__
        ov = overrides.get(oid)
        if ov is not None:
            d = {**d, **ov[1]}
        best = 0
        for local, target in fks:
            v = d.get(local)
            if v.__class__ is Ref:
                parent = v.obj if id(v.obj) in members else None
            else:
                parent = by_value.get((target, v)) if v is not None else None
            if parent is not None and parent is not obj:
                best = max(best, depth(parent, seen) + 1)
        level[oid] = best
        return best

    for obj in objs:
        depth(obj, set())
    n = max(level.values()) + 1
    levels: list[list[Any]] = [[] for _ in range(n)]
    for obj in objs:
        levels[level[id(obj)]].append(obj)
    return levels


def plan_updates(mapper: Mapper, objs: list[Any], overrides: dict[int, tuple[Any, dict[str, Any]]]
                 ) -> tuple[list[UpdateBatch], list[Any]]:
    version = mapper.version_key
    composite = len(mapper.pk_keys) > 1
    order = mapper.cache.get("column_order")
    if order is None:
        order = mapper.cache["column_order"] = {k: i for i, k in enumerate(mapper.column_keys)}
    groups: dict[tuple[tuple[str, ...], str | None], UpdateBatch] = {}
    unchanged = []
    for obj in objs:
        st = full_state(obj)
        committed = st.committed if st is not None else None
        d = obj.__dict__
        changed = []
        ov = overrides.get(id(obj))
        if ov is not None:
            for k, v in ov[1].items():
                if v.__class__ is Ref or k not in d or not _same(d[k], v):
                    changed.append(k)
            d = {**d, **ov[1]}
        if committed:
            for k, old in committed.items():
                if k not in order:
                    continue
                new = d.get(k, NO_VALUE)
                if new is NO_VALUE or old is new or k in changed:
                    continue
                if old is NO_VALUE or not _same(old, new):
                    if new is None and k in mapper.not_null_keys:
                        raise InvalidRequestError(
                            f"{mapper.class_.__name__}.{k} is NOT NULL and was set to None"
                        )
                    changed.append(k)
        if not changed:
            unchanged.append(obj)
            continue
        if len(changed) > 1:
            changed.sort(key=order.__getitem__)
        keys = tuple(changed)
        mode = None
        old_version = None
        if version is not None and version not in keys:
            old_version = committed.get(version, d.get(version, NO_VALUE)) if committed else d.get(version, NO_VALUE)
            mode = "bump" if old_version is NO_VALUE or old_version is None else "check"
        group = groups.get((keys, mode))
        if group is None:
            group = groups[(keys, mode)] = UpdateBatch(mapper, [], keys, [], [], mode)
        row = list(map(d.__getitem__, keys))
        if ov is not None:  # Refs come only from the overrides
            n = len(group.rows)
            group.refs.extend((n, j) for j, v in enumerate(row) if v.__class__ is Ref)
        group.objs.append(obj)
        group.rows.append(row)
        key = st.key if st is not None and st.key is not None else mapper.pk_of(obj.__dict__)
        group.pks.append(key if composite else (key,))
        if mode == "check":
            group.old_versions.append(old_version)  # type: ignore[arg-type]
    return list(groups.values()), unchanged


def _pk_tuples(mapper: Mapper, objs: list[Any]) -> list[tuple[Any, ...]]:
    """Each object's primary key as a tuple, as known to the session (deletes come by the thousand)."""
    pk_of = mapper.pk_of
    single = len(mapper.pk_keys) == 1
    out = []
    get_slot = _state.get_slot  # full_state() without a Python call per object
    for obj in objs:
        st = get_slot(obj)
        key = st.key if st.__class__ is InstanceState and st.key is not None else pk_of(obj.__dict__)
        out.append((key,) if single else key)
    return out


def plan_deletes(mapper: Mapper, objs: list[Any]) -> list[DeleteBatch]:
    version = mapper.version_key
    if version is None:
        return [DeleteBatch(mapper, list(objs), _pk_tuples(mapper, objs), None)] if objs else []
    with_v: list[Any] = []
    without: list[Any] = []
    for obj in objs:
        if version is not None and obj.__dict__.get(version) is not None:
            with_v.append(obj)
        else:
            without.append(obj)
    out = []
    if without:
        out.append(DeleteBatch(mapper, without, _pk_tuples(mapper, without), None))
    if with_v:
        out.append(DeleteBatch(mapper, with_v, _pk_tuples(mapper, with_v), [o.__dict__[version] for o in with_v]))
    return out


def _by_mapper(objs: Iterable[Any]) -> dict[Mapper, list[Any]]:
    out: dict[Mapper, list[Any]] = {}
    for obj in objs:
        m = type(obj).__aiouow_mapper__
        lst = out.get(m)
        if lst is None:
            out[m] = [obj]
        else:
            lst.append(obj)
    return out


def _assoc_batches(buckets: dict[Table, list[dict[str, Any]]], delete: bool) -> list[AssocBatch]:
    out = []
    for table, rows in buckets.items():
        keys = tuple(c.key for c in table.columns if any(c.key in r for r in rows))
        lists = [[r.get(k) for k in keys] for r in rows]
        out.append(AssocBatch(table, keys, lists, delete, _ref_positions(lists)))
    return out


def flush_sets(new: Iterable[Any], modified: Iterable[Any], deleted: Iterable[Any], sync: Sync
               ) -> tuple[list[Any], list[Any], list[Any]]:
    """The objects a flush inserts, updates (or checks for changes) and deletes."""
    new = [o for o in new if id(o) not in sync.drop_pending]
    deleted = [*deleted, *sync.orphans.values()]
    deleted_ids = {id(o) for o in deleted}
    modified = [o for o in modified if id(o) not in deleted_ids]
    if sync.overrides:
        modified_ids = {id(o) for o in modified}
        new_ids = {id(o) for o in new}
        for oid, (obj, _) in sync.overrides.items():
            if oid not in modified_ids and oid not in new_ids and oid not in deleted_ids \
                    and oid not in sync.drop_pending:
                modified.append(obj)
                modified_ids.add(oid)
    return new, modified, deleted


def plan_flush(new: Iterable[Any], modified: Iterable[Any], deleted: Iterable[Any], sync: Sync) -> FlushPlan:
    """The ordered steps that write ``new``, ``modified`` and ``deleted`` objects."""
    new, modified, deleted = flush_sets(new, modified, deleted, sync)
    inserts = _by_mapper(new)
    updates = _by_mapper(modified)
    deletes = _by_mapper(deleted)
    gone: dict[Mapper, list[ParentGone]] = {}
    for rel, parent in [*sync.null_out, *sync.purge]:
        purge = rel.direction == "many-to-many"
        lst = gone.setdefault(rel.parent, [])
        for g in lst:
            if g.rel is rel:
                g.parents.append(parent)
                break
        else:
            lst.append(ParentGone(rel, [parent], purge))
    mappers = dict.fromkeys([*inserts, *updates, *deletes, *gone])
    tables = sort_tables([m.table for m in mappers])
    order: list[Mapper] = [t.mapper for t in tables]
    steps: list[Step] = []
    unchanged: list[Any] = []
    ov = sync.overrides
    for m in order:
        if m in inserts:
            for level in _self_ref_levels(m, inserts[m], ov):
                steps.extend(plan_inserts(m, level, ov))
        if m in updates:
            batches, same = plan_updates(m, updates[m], ov)
            steps.extend(batches)
            unchanged.extend(same)
    if sync.assoc_delete:
        steps.extend(_assoc_batches(sync.assoc_delete, True))
    if sync.assoc_insert:
        steps.extend(_assoc_batches(sync.assoc_insert, False))
    for m in reversed(order):
        for g in gone.get(m, ()):
            steps.append(g)
        if m in deletes:
            for level in _self_ref_levels(m, deletes[m])[::-1]:
                steps.extend(plan_deletes(m, level))
    return FlushPlan(steps, unchanged)


def single_statement(plan: FlushPlan) -> bool:
    """Whether the plan is one statement on every dialect: a single step of one row (an INSERT,
    with its generated key by RETURNING; an UPDATE or a DELETE by primary key; one association
    row).  Such a statement is atomic alone, and one that matches no row (the stale-data check)
    changed nothing, so the session may send it autocommitted instead of in BEGIN ... COMMIT."""
    steps = plan.steps
    if len(steps) != 1:
        return False
    step = steps[0]
    if isinstance(step, DeleteBatch):
        return len(step.pks) == 1
    if isinstance(step, (InsertBatch, UpdateBatch, AssocBatch)):
        return len(step.rows) == 1
    return False
