"""What happens to objects in the session: add, delete, expunge, expire, refresh, merge.

Each function takes the session and moves objects between the states of
``mapping/state.py`` (transient, pending, persistent, deleted, detached),
keeping the session's book-keeping (``_new``, ``_modified``, ``_deleted``,
the identity map, the innermost transaction level's records) in step.  The
delete and save-update cascades walk relationships here; what the flush then
writes is ``flush.py``'s business, and undoing a rolled-back transaction in
memory ``restore.py``'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from .. import events as _events
from .. import exc
from ..loading.execute import select_by_pk
from ..loading.explicit import load_by_pks, load_relationship
from ..loading.rows import instances
from ..mapping import state as _state
from ..mapping.collections import make_collection
from ..mapping.mapper import Mapper
from ..mapping.relationships import MANYTOONE
from ..mapping.state import (
    DETACHED,
    NO_VALUE,
    PENDING,
    PERSISTENT,
    TRANSIENT,
    InstanceState,
    _same,
    describe,
    full_state,
    state_of,
    status_of,
)
from .connection import autobegin, require_usable
from .identity import SessionToken

if TYPE_CHECKING:
    from .session import AsyncSession


def mapper_of_instance(obj: Any, op: str) -> Mapper:
    mapper = getattr(type(obj), "__aiouow_mapper__", None)
    if not isinstance(mapper, Mapper):
        raise exc.ArgumentError(f"session.{op}() takes a mapped object (a Model instance), not {obj!r}")
    return mapper


def mapper_of_class(entity: Any, op: str) -> Mapper:
    mapper = getattr(entity, "__aiouow_mapper__", None) if isinstance(entity, type) else None
    if not isinstance(mapper, Mapper):
        raise exc.ArgumentError(f"session.{op}() takes a mapped model class, not {entity!r}")
    return mapper


def _cascading(mapper: Mapper, word: str) -> tuple[Any, ...]:
    """The mapper's relationships that cascade ``word`` (cached)."""
    key = ("cascading", word)
    rels = mapper.cache.get(key)
    if rels is None:
        rels = mapper.cache[key] = tuple(r for r in mapper.relationships.values() if word in r.cascade)
    return rels


def _related(obj: Any, mapper: Mapper, word: str) -> Iterator[Any]:
    """Loaded related objects reached through relationships cascading ``word``."""
    d = obj.__dict__
    for rel in _cascading(mapper, word):
        if rel.key in d:
            value = d[rel.key]
            if value is None:
                continue
            if isinstance(value, list):
                yield from list(value)
            else:
                yield value



def add(session: AsyncSession, obj: Any) -> None:
    mapper = mapper_of_instance(obj, "add")
    st = state_of(obj)
    status = st.status
    other = st.session
    if other is not None and other is not session:
        raise foreign(session, obj)
    if status == PERSISTENT or status == PENDING:
        session._deleted.pop(id(obj), None)  # as in SQLAlchemy: add() cancels a delete() not yet flushed
        return
    if status == TRANSIENT:
        autobegin(session)
        pk = mapper.pk_of(obj.__dict__)
        if pk is not None and not (isinstance(pk, tuple) and None in pk):
            existing = session._identity_for(mapper).get(pk)
            if existing is not None and existing is not obj:
                raise exc.InvalidRequestError(
                    f"cannot add {describe(obj)}: this session already holds {describe(existing)} with "
                    "the same primary key; modify that object, or use `await session.merge(obj)`"
                )
        st.status = PENDING
        st.session_ref = session._token
        oid = id(obj)
        session._new[oid] = obj
        session._levels[-1].added[oid] = obj
        if _events.state_active:
            _state_event(session, "transient_to_pending", obj)
    elif status == DETACHED:
        autobegin(session)
        attach(session, obj, st, mapper)
    else:
        raise exc.InvalidRequestError(
            f"{describe(obj)} was deleted in this transaction; it cannot be added back until the "
            "transaction ends (after rollback() it is persistent again)"
        )
    for rel in _cascading(mapper, "save-update"):
        value = obj.__dict__.get(rel.key)
        if value is None:
            continue
        for item in (list(value) if isinstance(value, list) else (value,)):
            if status_of(item) in (TRANSIENT, DETACHED):
                add(session, item)


def foreign(session: AsyncSession, obj: Any) -> exc.InvalidRequestError:
    return exc.InvalidRequestError(
        f"{describe(obj)} is already attached to another session; expunge it from that session "
        "first, or copy it into this one with `await session.merge(obj)`"
    )


def attach(session: AsyncSession, obj: Any, st: InstanceState, mapper: Mapper) -> None:
    key = st.key if st.key is not None else mapper.pk_of(obj.__dict__)
    imap = session._identity_for(mapper)
    existing = imap.get(key)
    if existing is not None and existing is not obj:
        raise exc.InvalidRequestError(
            f"cannot attach {describe(obj)}: this session already holds another object with that "
            "primary key; use `obj = await session.merge(obj)` instead"
        )
    st.key = key
    imap[key] = obj
    st.status = PERSISTENT
    st.session_ref = session._token
    if st.committed is not None or st.rel_committed is not None:
        session._modified[id(obj)] = obj


def delete_at_once(session: AsyncSession, obj: Any) -> bool:
    """Mark ``obj`` deleted if that needs no cascade (the common case); whether it did."""
    mapper = mapper_of_instance(obj, "delete")
    if _state.get_slot(obj) is session._token and not _cascading(mapper, "delete"):
        # clean, persistent in this session, no relationship to walk: it never awaits, so
        # like add() it checks the task without holding the session
        autobegin(session)
        session._deleted[id(obj)] = obj
        return True
    return False


async def delete(session: AsyncSession, obj: Any) -> None:
    """Mark ``obj`` and what the delete cascade reaches from it (loading what it needs)."""
    check_deletable(session, obj)
    targets = await delete_cascade(session, [obj])
    for item in targets.values():
        if item is not obj:
            check_deletable(session, item)
        session._deleted[id(item)] = item


async def delete_cascade(session: AsyncSession, roots: list[Any]) -> dict[int, Any]:
    """The roots and what the delete cascade reaches from them, loading what it needs in one
    query per relationship and level."""
    targets = {id(o): o for o in roots}
    frontier = list(roots)
    while frontier:
        await load_for_cascade(session, frontier, "delete")
        nxt = []
        for o in frontier:
            for item in _related(o, type(o).__aiouow_mapper__, "delete"):
                if id(item) not in targets and status_of(item) in (PERSISTENT, DETACHED):
                    targets[id(item)] = item
                    nxt.append(item)
        frontier = nxt
    return targets


async def load_for_cascade(session: AsyncSession, objs: list[Any], word: str) -> None:
    """Load, in one query per relationship, what a cascade needs and is not loaded."""
    by_mapper: dict[Mapper, list[Any]] = {}
    for o in objs:
        by_mapper.setdefault(type(o).__aiouow_mapper__, []).append(o)
    for mapper, group in by_mapper.items():
        for rel in mapper.relationships.values():
            if word not in rel.cascade or rel.viewonly or rel.passive_deletes:
                continue
            missing = [o for o in group if rel.key not in o.__dict__ and status_of(o) == PERSISTENT]
            if missing:
                await load_relationship(session, missing, rel)


def check_deletable(session: AsyncSession, obj: Any) -> None:
    mapper = mapper_of_instance(obj, "delete")
    st = state_of(obj)
    if st.status == TRANSIENT or st.status == PENDING:
        raise exc.InvalidRequestError(
            f"{describe(obj)} is not persisted ({st.status_name}): there is no row to delete; "
            + ("to discard it, session.expunge(obj)" if st.status == PENDING else "nothing to do")
        )
    other = st.session
    if other is not None and other is not session:
        raise exc.InvalidRequestError(f"{describe(obj)} belongs to another session")
    autobegin(session)
    if st.status == DETACHED:
        attach(session, obj, st, mapper)


def expunge(session: AsyncSession, obj: Any) -> None:
    """Remove an object from the session (pending -> transient, persistent -> detached)."""
    mapper = mapper_of_instance(obj, "expunge")
    if obj not in session:
        raise exc.InvalidRequestError(f"{describe(obj)} is not present in this session")
    st = state_of(obj)
    oid = id(obj)
    session._new.pop(oid, None)
    session._modified.pop(oid, None)
    session._deleted.pop(oid, None)
    session._expire_reasons.pop(oid, None)
    for level in session._levels:
        level.added.pop(oid, None)
    cascade = list(_related(obj, mapper, "expunge"))
    if st.status == PENDING:
        st.status = TRANSIENT
    else:
        imap = session._imap.get(mapper)
        key = st.key if st.key is not None else mapper.pk_of(obj.__dict__)
        if imap is not None and imap.get(key) is obj:
            del imap[key]
        st.status = DETACHED
    st.session_ref = None
    if st.status == DETACHED and _events.state_active:
        _state_event(session, "persistent_to_detached", obj)
    for item in cascade:
        if item in session:
            expunge(session, item)


def _state_event(session: AsyncSession, name: str, obj: Any) -> None:
    hooks = _events.session_hooks(session, name)
    if hooks:
        _events.call_state(hooks, session, (obj,))


def detach_all(session: AsyncSession) -> None:
    announce = _events.session_hooks(session, "persistent_to_detached") if _events.state_active else ()
    if announce:
        held = [o for m in session._imap.values() for o in m.values()]
    for obj in session._new.values():
        st = state_of(obj)
        st.status = TRANSIENT
        st.session_ref = None
    # clean objects hold the token, deactivated below; only full states need updating
    for m in session._imap.values():
        # `slot`, not `st`: a name typed InstanceState above (compiled, an Any stored in it is checked)
        for slot in map(_state.get_slot, m.values()):  # inline: no Python call per object
            if slot.__class__ is InstanceState:
                slot.status = DETACHED
                slot.session_ref = None
    for level in session._levels:
        for obj in level.removed.values():
            st = state_of(obj)
            st.status = DETACHED
            st.session_ref = None
    session._token.active = False
    session._token = SessionToken(session._ref)
    session._imap = {}
    session._new = {}
    session._modified = {}
    session._deleted = {}
    session._expire_reasons = {}
    session._expire_all_reason = None
    for level in session._levels:
        level.added.clear()
        level.inserted.clear()
        level.updated.clear()
        level.removed.clear()
        level.key_switches.clear()
        level.loaded_new.clear()
        level.loaded.clear()
    if announce:
        _events.call_state(announce, session, held)


def expire_obj(session: AsyncSession, obj: Any, mapper: Mapper, names: Iterable[str] | None) -> None:
    d = obj.__dict__
    pk = mapper.pk_keys
    keys = mapper.attrs if names is None else names
    for k in keys:
        if k not in pk:
            d.pop(k, None)
    st = full_state(obj)
    if st is not None:
        if names is None:
            st.committed = None
            st.rel_committed = None
        else:
            for k in names:
                if st.committed:
                    st.committed.pop(k, None)
                if st.rel_committed:
                    st.rel_committed.pop(k, None)
            if not st.committed:
                st.committed = None
            if not st.rel_committed:
                st.rel_committed = None
        if st.committed is None and st.rel_committed is None:
            session._modified.pop(id(obj), None)


def check_persistent(session: AsyncSession, obj: Any, op: str) -> tuple[Mapper, InstanceState]:
    mapper = mapper_of_instance(obj, op)
    st = state_of(obj)
    if st.status != PERSISTENT or st.session is not session:
        raise exc.InvalidRequestError(
            f"session.{op}() needs an object persistent in this session; {describe(obj)} is "
            f"{st.status_name}{'' if st.session in (None, session) else ' in another session'}"
        )
    return mapper, st


def check_names(session: AsyncSession, mapper: Mapper, names: Iterable[str], op: str) -> list[str]:
    out = []
    for n in names:
        if n not in mapper.attrs:
            raise exc.ArgumentError(
                f"session.{op}(): {mapper.class_.__name__} has no mapped attribute {n!r}; "
                f"attributes: {', '.join(mapper.attrs)}"
            )
        out.append(n)
    return out


def expire(session: AsyncSession, obj: Any, attribute_names: Iterable[str] | None = None) -> None:
    """Forget loaded values (all, or the named ones); reading them then raises NotLoadedError."""
    mapper, st = check_persistent(session, obj, "expire")
    names = None if attribute_names is None else check_names(session, mapper, attribute_names, "expire")
    related = list(_related(obj, mapper, "refresh-expire")) if names is None else []
    expire_obj(session, obj, mapper, names)
    session._expire_reasons[id(obj)] = "session.expire()"
    for item in related:
        if item in session and status_of(item) == PERSISTENT:
            expire_obj(session, item, type(item).__aiouow_mapper__, None)
            session._expire_reasons[id(item)] = "session.expire() (refresh-expire cascade)"


def expire_everything(session: AsyncSession, reason: str) -> None:
    for mapper, objs in session._imap.items():
        keys = mapper.expire_keys
        for obj in objs.values():
            pop = obj.__dict__.pop
            for k in keys:
                pop(k, None)
            st = full_state(obj)
            if st is not None:
                st.committed = None
                st.rel_committed = None
    session._modified = {k: o for k, o in session._modified.items() if status_of(o) != PERSISTENT}
    session._expire_reasons = {}
    session._expire_all_reason = reason


async def refresh(session: AsyncSession, obj: Any, attribute_names: Iterable[str] | None = None,
                  with_for_update: bool = False) -> None:
    """Reload attributes (all, or the named ones, relationships included) from the database."""
    mapper, st = check_persistent(session, obj, "refresh")
    names = None if attribute_names is None else check_names(session, mapper, attribute_names, "refresh")
    require_usable(session)
    if names is None:
        # SQLAlchemy: the whole object expires first, relationships included, and the expiry
        # cascades along refresh-expire (those objects are expired, not reloaded)
        for item in list(_related(obj, mapper, "refresh-expire")):
            if item in session and status_of(item) == PERSISTENT:
                expire_obj(session, item, type(item).__aiouow_mapper__, None)
                session._expire_reasons[id(item)] = "session.refresh() (refresh-expire cascade)"
        if mapper.relationships:
            expire_obj(session, obj, mapper, list(mapper.relationships))
            session._expire_reasons[id(obj)] = "session.refresh()"
    # no autoflush: refreshing discards the object's unflushed changes (SQLAlchemy)
    col_names = [n for n in (names or mapper.column_keys) if n in mapper.columns]
    rel_names = [n for n in (names or ()) if n in mapper.relationships]
    if col_names or names is None:
        row = await select_by_pk(session, mapper, st.key if st.key is not None else mapper.pk_of(obj.__dict__),
                                 with_for_update)
        if row is None:
            raise exc.ObjectDeletedError(
                f"cannot refresh {describe(obj)}: its row no longer exists in the database"
            )
        d = obj.__dict__
        for k, v in zip(mapper.column_keys, row):
            if names is None or k in col_names:
                d[k] = v
        expire_obj_history(session, obj, col_names if names is not None else None)
        session._note_loaded((obj,))
    for rel in rel_names:
        await load_relationship(session, [obj], mapper.relationships[rel], refresh=True)


def expire_obj_history(session: AsyncSession, obj: Any, names: list[str] | None) -> None:
    st = full_state(obj)
    if st is not None and st.committed is not None:
        if names is None:
            st.committed = None
        else:
            for n in names:
                st.committed.pop(n, None)
            if not st.committed:
                st.committed = None
        if st.committed is None and st.rel_committed is None:
            session._modified.pop(id(obj), None)


class MergeBatch:
    """What ``merge_all()`` learned before merging object by object.

    ``absent``: the keys its batched SELECTs found no row for, so that ``merge()`` does not ask
    again; ``created``: the pending object made for such a key, so that a second input with the
    same key merges onto it, as it would in a loop of ``merge()`` (where the next miss's autoflush
    inserts the first and its SELECT finds it).
    """

    __slots__ = ("absent", "created")

    def __init__(self) -> None:
        self.absent: set[tuple[Mapper, Any]] = set()
        self.created: dict[tuple[Mapper, Any], Any] = {}


def _has_key(pk: Any) -> bool:
    return pk is not None and not (isinstance(pk, tuple) and None in pk)


async def merge(session: AsyncSession, obj: Any, load: bool, memo: dict[int, Any],
                batch: MergeBatch | None = None) -> Any:
    """Copy ``obj`` onto the session's object for its key; an identity already in the map is
    never queried for (only a relationship the target has not loaded may be, for its history)."""
    mapper = mapper_of_instance(obj, "merge")
    if id(obj) in memo:
        return memo[id(obj)]
    if obj in session:
        memo[id(obj)] = obj
        return obj
    d = obj.__dict__
    pk = mapper.pk_of(d)
    has_pk = _has_key(pk)
    target = None
    if has_pk:
        target = session._identity_for(mapper).get(pk)
        if target is None and load:
            if batch is not None and (mapper, pk) in batch.absent:
                target = batch.created.get((mapper, pk))
            else:
                await session._prepare()
                row = await select_by_pk(session, mapper, pk, False)
                if row is not None:
                    target = instances(session, mapper, [row], 0, False)[0]
    cls: Any = mapper.class_
    values = {k: d[k] for k in mapper.column_keys if k in d}
    if target is None:
        if not load and has_pk:
            st_src = full_state(obj)
            if st_src is not None and (st_src.committed or st_src.status == TRANSIENT):
                raise exc.InvalidRequestError(
                    f"merge(load=False) needs a clean object loaded from the database; "
                    f"{describe(obj)} is new or has pending changes"
                )
            autobegin(session)
            target = object.__new__(cls)
            target.__dict__.update(values)
            _state.set_slot(target, session._token)
            session._identity_for(mapper)[pk] = target
        else:
            target = cls.__new__(cls)
            for k, v in values.items():
                setattr(target, k, v)
            session.add(target)
            if batch is not None and has_pk:
                batch.created[(mapper, pk)] = target
    elif load:
        for k, v in values.items():
            if k in target.__dict__ and _same(target.__dict__[k], v):
                continue
            setattr(target, k, v)
    else:
        target.__dict__.update(values)
    memo[id(obj)] = target
    for rel in mapper.relationships.values():
        if "merge" not in rel.cascade or rel.key not in d:
            continue
        value = d[rel.key]
        merged: Any
        if isinstance(value, list):
            merged = [await merge(session, item, load, memo, batch) for item in value]
        else:
            merged = None if value is None else await merge(session, value, load, memo, batch)
        if load:
            if rel.key not in target.__dict__ and status_of(target) == PERSISTENT:
                await load_relationship(session, [target], rel)  # the history needs the current value
            setattr(target, rel.key, merged)
        else:
            target.__dict__[rel.key] = make_collection(rel, target, merged) if isinstance(merged, list) \
                else merged
    return target


async def merge_all(session: AsyncSession, objs: Iterable[Any], load: bool) -> list[Any]:
    """``[await merge(o) for o in objs]`` with the identity-map misses loaded first: one SELECT
    per mapper and chunk of keys for the inputs and what their ``merge`` cascade reaches, and one
    query per relationship for the collections the merged objects need loaded."""
    items = list(objs)
    for obj in items:
        mapper_of_instance(obj, "merge_all")  # nothing is merged if any input is not mapped
    batch = await _prefetch_for_merge(session, items) if load else None
    return [await merge(session, obj, load, {}, batch) for obj in items]


async def _prefetch_for_merge(session: AsyncSession, roots: list[Any]) -> MergeBatch:
    """Load the rows a loop of ``merge()`` would load one by one, and the collections it would."""
    batch = MergeBatch()
    sources: list[tuple[Any, Mapper, Any]] = []
    seen: set[int] = set()
    stack = list(reversed(roots))
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        mapper = getattr(type(obj), "__aiouow_mapper__", None)
        if not isinstance(mapper, Mapper) or obj in session:
            continue  # merge() returns an object of this session as it is, cascading nothing
        d = obj.__dict__
        pk = mapper.pk_of(d)
        if _has_key(pk):
            sources.append((obj, mapper, pk))
        for rel in _cascading(mapper, "merge"):
            value = d.get(rel.key)
            if isinstance(value, list):
                stack.extend(reversed(value))
            elif value is not None:
                stack.append(value)
    missing = _merge_misses(session, sources)
    if missing:
        await session._prepare()  # the autoflush the first miss's SELECT would run
        missing = _merge_misses(session, sources)  # what that flush made persistent is held now
    for mapper, keys in missing.items():
        found = {mapper.pk_of(o.__dict__) for o in await load_by_pks(session, mapper, list(keys))}
        batch.absent.update((mapper, k) for k in keys if k not in found)
    # a merged collection replaces the target's current one, whose members the history needs
    # (merge() loads it per object otherwise); many-to-one values mostly come from the map
    wanted: dict[Any, list[Any]] = {}
    for obj, mapper, pk in sources:
        target = session._identity_for(mapper).get(pk)
        if target is None or status_of(target) != PERSISTENT:
            continue
        for rel in _cascading(mapper, "merge"):
            if rel.key in obj.__dict__ and rel.key not in target.__dict__ and rel.resolve().direction != MANYTOONE:
                wanted.setdefault(rel, []).append(target)
    for rel, targets in wanted.items():
        await load_relationship(session, targets, rel)
    return batch


def _merge_misses(session: AsyncSession, sources: list[tuple[Any, Mapper, Any]]) -> dict[Mapper, dict[Any, None]]:
    """The keys of ``sources`` the identity map does not hold, by mapper, in first-seen order."""
    out: dict[Mapper, dict[Any, None]] = {}
    for _obj, mapper, pk in sources:
        if pk not in session._identity_for(mapper):
            out.setdefault(mapper, {})[pk] = None
    return out


def is_modified(obj: Any) -> bool:
    """Whether the object has net attribute changes not yet flushed."""
    mapper_of_instance(obj, "is_modified")  # raises for an object that is not mapped
    st = full_state(obj)
    if st is None:
        return False
    if st.rel_committed:
        return True
    if not st.committed:
        return False
    d = obj.__dict__
    for k, old in st.committed.items():
        new = d.get(k, NO_VALUE)
        if new is NO_VALUE:
            continue
        if old is NO_VALUE or not _same(old, new):
            return True
    return False


def to_transient(session: AsyncSession, obj: Any) -> None:
    mapper = type(obj).__aiouow_mapper__
    st = state_of(obj)
    oid = id(obj)
    session._new.pop(oid, None)
    session._modified.pop(oid, None)
    session._deleted.pop(oid, None)
    imap = session._imap.get(mapper)
    if imap is not None:
        key = st.key if st.key is not None else mapper.pk_of(obj.__dict__)
        if imap.get(key) is obj:
            del imap[key]
    d = obj.__dict__
    if mapper.autoincrement_key is not None and st.status != PENDING:
        d.pop(mapper.autoincrement_key, None)  # the key was the database's, and is gone
    if mapper.version_key is not None:
        d.pop(mapper.version_key, None)
    st.status = TRANSIENT
    st.session_ref = None
    st.key = None
    st.committed = None

