"""What relationship changes mean for rows, worked out before a flush (pure).

From the relationships' history (``rel_committed`` against the current value)
this computes:

* foreign-key values to write (``overrides``): a many-to-one copies its
  target's key into the owner; a one-to-many copies the owner's key into each
  added child, and NULL into each removed child (unless ``delete-orphan``
  makes it an orphan to delete).  Keys the database generates during this
  very flush are written as :class:`Ref` placeholders that the executor
  resolves once the parent row is inserted.
* association rows to insert and delete for many-to-many changes (a link
  changed on both sides of a ``back_populates`` pair counts once).
* for deleted objects: children to un-parent in bulk (one-to-many without
  ``delete`` cascade) and association rows to purge (many-to-many), without
  loading anything, unless ``passive_deletes`` leaves it to the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..mapping import state as _state
from ..mapping.relationships import MANYTOMANY, MANYTOONE, ONETOMANY, Relationship
from ..mapping.state import NO_VALUE, PENDING, TRANSIENT, full_state
from ..sql.schema import Table


class Ref:
    """The value of ``obj.<key>``, known only once ``obj`` is inserted by this flush."""

    __slots__ = ("obj", "key")

    def __init__(self, obj: Any, key: str) -> None:
        self.obj = obj
        self.key = key

    def __repr__(self) -> str:
        return f"Ref({type(self.obj).__name__}.{self.key})"


def value_of(obj: Any, key: str) -> Any:
    """``obj.<key>`` if known now, else a Ref to it."""
    v = obj.__dict__.get(key)
    if v is None and _state.status_of(obj) == PENDING:
        return Ref(obj, key)
    return v


#: many-to-many links seen in one flush: (table, ids of the two objects in column order)
_Links = set[tuple[Table, int, int]]


@dataclass(slots=True)
class Sync:
    #: id(obj) -> (obj, {column key: value or Ref})
    overrides: dict[int, tuple[Any, dict[str, Any]]] = field(default_factory=dict)
    orphans: dict[int, Any] = field(default_factory=dict)
    #: pending objects that became orphans before ever being flushed: just drop them
    drop_pending: dict[int, Any] = field(default_factory=dict)
    assoc_insert: dict[Table, list[dict[str, Any]]] = field(default_factory=dict)
    assoc_delete: dict[Table, list[dict[str, Any]]] = field(default_factory=dict)
    #: (relationship, deleted parent): children rows to un-parent
    null_out: list[tuple[Relationship, Any]] = field(default_factory=list)
    #: (relationship, deleted parent): association rows to delete
    purge: list[tuple[Relationship, Any]] = field(default_factory=list)


def _set(sync: Sync, obj: Any, key: str, value: Any) -> None:
    entry = sync.overrides.get(id(obj))
    if entry is None:
        sync.overrides[id(obj)] = (obj, {key: value})
    else:
        entry[1][key] = value


def _as_list(value: Any) -> list[Any]:
    if value is None or value is NO_VALUE:
        return []
    if isinstance(value, list):
        return value
    return [value]


def _diff(old: Any, current: Any) -> tuple[list[Any], list[Any]]:
    old_l, cur_l = _as_list(old), _as_list(current)
    old_ids = {id(x) for x in old_l}
    cur_ids = {id(x) for x in cur_l}
    return [x for x in cur_l if id(x) not in old_ids], [x for x in old_l if id(x) not in cur_ids]


def compute_sync(new: list[Any], modified: list[Any], deleted: list[Any]) -> Sync:
    sync = Sync()
    deleted_ids = {id(o) for o in deleted}
    seen_links: _Links = set()
    nulls: list[tuple[Any, list[str]]] = []
    orphan_candidates: list[Any] = []
    adopted: set[int] = set()

    for obj in deleted:
        for rel in _delete_relationships(type(obj).__aiouow_mapper__):
            if "delete-orphan" in rel.cascade and not rel.viewonly and rel.resolve().direction == ONETOMANY:
                # children removed from the collection before the parent was deleted are orphans too
                st = full_state(obj)
                committed = st.rel_committed if st is not None else None
                if committed and rel.key in committed:
                    orphan_candidates.extend(_diff(committed[rel.key], obj.__dict__.get(rel.key))[1])
            if rel.viewonly or rel.passive_deletes:
                continue
            rel.resolve()
            if rel.direction == ONETOMANY and "delete" not in rel.cascade:
                sync.null_out.append((rel, obj))
            elif rel.direction == MANYTOMANY:
                sync.purge.append((rel, obj))

    for obj in new:
        rels = _flush_relationships(type(obj).__aiouow_mapper__)
        if rels and id(obj) not in deleted_ids:
            _sync_pending(sync, obj, rels, adopted, seen_links)
    for obj in modified:
        st = full_state(obj)
        committed = st.rel_committed if st is not None else None
        if not committed or id(obj) in deleted_ids:
            continue  # no relationship changed
        d = obj.__dict__
        for rel in _flush_relationships(type(obj).__aiouow_mapper__):
            key = rel.key
            if key not in committed or key not in d:
                continue
            old, current = committed[key], d[key]
            rel.resolve()
            if rel.direction == MANYTOONE:
                if current is None:
                    if old is None:
                        continue
                    back = rel.back
                    if back is not None and "delete-orphan" in back.cascade:
                        orphan_candidates.append(obj)  # taken from its parent: an orphan (SQLAlchemy)
                        continue
                    for local, _ in rel.pairs:
                        _set(sync, obj, local.key, None)
                else:
                    for local, remote in rel.pairs:
                        _set(sync, obj, local.key, value_of(current, remote.key))
                    adopted.add(id(obj))
            elif rel.direction == ONETOMANY:
                added, removed = _diff(old, current)
                for child in removed:
                    if id(child) in deleted_ids:
                        continue
                    if "delete-orphan" in rel.cascade:
                        orphan_candidates.append(child)
                    else:
                        nulls.append((child, [remote.key for _, remote in rel.pairs]))
                _adopt(sync, obj, rel, added, adopted)
            elif rel.direction == MANYTOMANY:
                added, removed = _diff(old, current)
                _link_rows(sync, obj, rel, added, sync.assoc_insert, seen_links)
                _link_rows(sync, obj, rel, removed, sync.assoc_delete, seen_links)

    for child, keys in nulls:
        if id(child) in adopted:
            continue
        for k in keys:
            _set(sync, child, k, None)
    for child in orphan_candidates:
        if id(child) in adopted or id(child) in deleted_ids:
            continue
        if _state.status_of(child) == PENDING:
            sync.drop_pending[id(child)] = child
        else:
            sync.orphans[id(child)] = child
    return sync


def _flush_relationships(mapper: Any) -> tuple[Relationship, ...]:
    """The mapper's relationships that write rows (cached: asked once per object).  Each is
    resolved only when an object has a value for it: a target class that is never defined
    must not break flushes that do not use it."""
    rels = mapper.cache.get("flush_relationships")
    if rels is None:
        rels = mapper.cache["flush_relationships"] = tuple(r for r in mapper.relationships.values()
                                                           if not r.viewonly)
    return rels  # type: ignore[no-any-return]


def _delete_relationships(mapper: Any) -> tuple[Relationship, ...]:
    """The relationships that deleting one of the mapper's objects has to look at (cached): a
    ``delete-orphan`` collection, or one the database is not left to clean up (``passive_deletes``)."""
    rels = mapper.cache.get("delete_relationships")
    if rels is None:
        rels = mapper.cache["delete_relationships"] = tuple(
            r for r in mapper.relationships.values()
            if not r.viewonly and ("delete-orphan" in r.cascade or not r.passive_deletes))
    return rels  # type: ignore[no-any-return]


def _sync_pending(sync: Sync, obj: Any, rels: tuple[Relationship, ...], adopted: set[int],
                  seen_links: _Links) -> None:
    """A pending object: everything it refers to or holds is new (there is no old value)."""
    d = obj.__dict__
    for rel in rels:
        current = d.get(rel.key)
        if current is None:  # never set, or set to None
            continue
        rel.resolve()
        if rel.direction == MANYTOONE:
            for local, remote in rel.pairs:
                _set(sync, obj, local.key, value_of(current, remote.key))
            adopted.add(id(obj))
        elif rel.direction == ONETOMANY:
            _adopt(sync, obj, rel, _as_list(current), adopted)  # a one-to-one holds one object
        elif rel.direction == MANYTOMANY:
            _link_rows(sync, obj, rel, _as_list(current), sync.assoc_insert, seen_links)  # or uselist=False


def _adopt(sync: Sync, parent: Any, rel: Relationship, added: list[Any], adopted: set[int]) -> None:
    """Children added to a one-to-many collection take the parent's key."""
    back = rel.back
    if back is not None and not back.uselist:
        # a child whose many-to-one points back here gets its key from that side
        bk = back.key
        added = [c for c in added if c.__dict__.get(bk, NO_VALUE) is not parent]
    for child in added:
        for local, remote in rel.pairs:
            _set(sync, child, remote.key, value_of(parent, local.key))
        adopted.add(id(child))


def _link_rows(sync: Sync, obj: Any, rel: Relationship, children: list[Any],
               bucket: dict[Table, list[dict[str, Any]]], seen_links: _Links) -> None:
    """Association rows for many-to-many links added (or removed); a link changed on both
    sides of a back_populates pair counts once."""
    sec = rel.secondary
    assert sec is not None
    # a link is the two objects in the order of their association columns: in a
    # self-referential many-to-many "a follows b" and "b follows a" are two rows, while the
    # same row seen from the back_populates side (columns swapped) is one
    parent_first = rel.secondary_parent[0][1].key < rel.secondary_target[0][1].key
    for child in children:
        if _state.status_of(child) == TRANSIENT:
            continue  # not in the session (an expunged pending orphan): no row (SQLAlchemy)
        link = (sec, id(obj), id(child)) if parent_first else (sec, id(child), id(obj))
        if link in seen_links:
            continue
        seen_links.add(link)
        row = {}
        for col, sec_col in rel.secondary_parent:
            row[sec_col.key] = value_of(obj, col.key)
        for col, sec_col in rel.secondary_target:
            row[sec_col.key] = value_of(child, col.key)
        bucket.setdefault(sec, []).append(row)
