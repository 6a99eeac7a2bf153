"""Explicit relationship loads: ``session.load()``, ``load_all()``, ``refresh(obj, [rel])``.

One query loads a relationship for many parents (an ``IN`` list / ``= ANY``
array, chunked under the backend's parameter limit).  ``session.load()``
calls awaited concurrently for the same relationship (``asyncio.gather``
over many objects) join one batch, DataLoader style: the first caller waits
one loop iteration for the others, then runs a single query for all of them.
These coalesced waiters are the one designed exception to "one task at a
time": they do not touch the session, only await the batch.

Many single-object loads of one relationship in one session is the N+1
pattern; past ``n_plus_one_threshold`` the session warns once
(``NPlusOneWarning``), or raises ``NPlusOneError`` with ``n_plus_one="raise"``.
"""

from __future__ import annotations

import asyncio
import warnings
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .. import exc
from ..mapping import state as _state
from ..mapping.collections import make_collection
from ..mapping.mapper import Mapper
from ..mapping.relationships import MANYTOMANY, MANYTOONE, Relationship
from ..mapping.state import DETACHED, PENDING, PERSISTENT, TRANSIENT
from ..sql.elements import and_, or_
from ..sql.selectable import Select
from .rows import instances, is_expired

if TYPE_CHECKING:
    from .protocol import SessionInternals


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


async def _fetch(session: SessionInternals, stmt: Select) -> list[Any]:
    from ..engine.result import _process

    conn = await session._connection_for(stmt)
    compiled, args = conn.compile(stmt)
    rows = await conn.fetch_sql(compiled.sql, args, compiled.reads_only)
    if compiled.result_procs:
        rows = _process(rows, compiled.result_procs)
    return rows


def _in(cols: list[Any], keys: list[tuple[Any, ...]]) -> Any:
    if len(cols) == 1:
        return cols[0].in_([k[0] for k in keys])
    return or_(*[and_(*[c == v for c, v in zip(cols, k)]) for k in keys])


def _chunk_size(session: SessionInternals, width: int) -> int:
    dialect = session._conn.dialect if session._conn is not None else None
    limit = dialect.max_params if dialect is not None else 30000
    return max(1, min(10000, (limit - 10) // max(1, width)))


async def load_relationship(session: SessionInternals, objs: Sequence[Any], rel: Relationship,
                            refresh: bool = False) -> None:
    """Load ``rel`` for every object of ``objs`` that lacks it (all of them with ``refresh``)."""
    rel.resolve()
    key = rel.key
    seen: set[int] = set()
    todo = []
    for o in objs:
        if id(o) in seen:
            continue
        seen.add(id(o))
        if refresh or key not in o.__dict__:
            todo.append(o)
    if not todo:
        return
    await session._connection_for_mapper(rel.mapper, False)
    if rel.direction == MANYTOONE:
        await _load_many_to_one(session, todo, rel)
    else:
        await _load_collection(session, todo, rel, refresh)


async def load_by_pks(session: SessionInternals, mapper: Mapper, pks: Sequence[Any]) -> list[Any]:
    """The objects of ``mapper`` for these primary keys (identity form: a value, or a tuple for a
    composite key) that have a row, loaded in one SELECT per chunk of keys under the backend's
    parameter limit; keys without a row are simply absent from the result."""
    if not pks:
        return []
    await session._connection_for_mapper(mapper, False)
    pk_cols = list(mapper.primary_key)
    keys = [(k,) for k in pks] if len(pk_cols) == 1 else list(pks)
    out: list[Any] = []
    for chunk in _chunks(keys, _chunk_size(session, len(pk_cols))):
        rows = await _fetch(session, Select(mapper.class_).where(_in(pk_cols, chunk)))
        out.extend(instances(session, mapper, rows, 0, False))
    return out


async def _ensure_columns(session: SessionInternals, objs: list[Any], keys: list[str]) -> None:
    """Reload expired columns the load needs (the foreign key of a many-to-one)."""
    missing = [o for o in objs if any(k not in o.__dict__ for k in keys)]
    if not missing:
        return
    mapper = type(missing[0]).__aiouow_mapper__
    pk_cols = list(mapper.primary_key)
    pks = [tuple(o.__dict__[k] for k in mapper.pk_keys) for o in missing]
    for chunk in _chunks(pks, _chunk_size(session, len(pk_cols))):
        rows = await _fetch(session, Select(mapper.class_).where(_in(pk_cols, chunk)))
        instances(session, mapper, rows, 0, False)


async def _load_many_to_one(session: SessionInternals, objs: list[Any], rel: Relationship) -> None:
    target = rel.mapper
    locals_ = [local.key for local, _ in rel.pairs]
    await _ensure_columns(session, objs, locals_)
    remote_cols = [remote for _, remote in rel.pairs]
    by_pk = tuple(c.key for c in remote_cols) == target.pk_keys
    wanted: dict[tuple[Any, ...], None] = {}
    for o in objs:
        k = tuple(o.__dict__.get(name) for name in locals_)
        if None not in k:
            wanted[k] = None
    found: dict[tuple[Any, ...], Any] = {}
    imap = session._identity_for(target)
    to_query = []
    for k in wanted:
        hit = imap.get(k[0] if len(k) == 1 else k) if by_pk else None
        if hit is not None and not is_expired(hit, target):
            found[k] = hit
        else:
            to_query.append(k)
    for chunk in _chunks(to_query, _chunk_size(session, len(remote_cols))):
        rows = await _fetch(session, Select(target.class_).where(_in(remote_cols, chunk)))
        for obj in instances(session, target, rows, 0, False):
            found[tuple(obj.__dict__[c.key] for c in remote_cols)] = obj
    key = rel.key
    for o in objs:
        k = tuple(o.__dict__.get(name) for name in locals_)
        _set_loaded(o, key, found.get(k))
    session._note_loaded(objs)


def _set_loaded(obj: Any, key: str, value: Any) -> None:
    """Store a loaded relationship value without recording a change."""
    obj.__dict__[key] = value
    st = _state.full_state(obj)
    if st is not None and st.rel_committed and key in st.rel_committed:
        del st.rel_committed[key]
        if not st.rel_committed:
            st.rel_committed = None


async def _load_collection(session: SessionInternals, objs: list[Any], rel: Relationship, refresh: bool) -> None:
    target = rel.mapper
    if rel.direction == MANYTOMANY:
        parent_cols = [p for p, _ in rel.secondary_parent]
        match_cols = [s for _, s in rel.secondary_parent]
        onclause = and_(*[t == s for t, s in rel.secondary_target])
    else:
        parent_cols = [p for p, _ in rel.pairs]
        match_cols = [c for _, c in rel.pairs]
        onclause = None
    parent_keys = [p.key for p in parent_cols]
    # the relationship's order_by, else the database's order (as SQLAlchemy's selectinload)
    order = rel.order_by
    single = len(parent_keys) == 1
    pk0 = parent_keys[0]
    # a list is made only for a parent key not seen yet (setdefault would make one per row)
    groups: defaultdict[Any, list[Any]] = defaultdict(list)
    if single:
        values = [(v,) for v in {o.__dict__[pk0]: None for o in objs}]
    else:
        values = list({tuple(o.__dict__[k] for k in parent_keys): None for o in objs})
    width = len(target.column_keys)
    # where each row says which parent it belongs to: the association column after the
    # target's columns (many-to-many), else the child's foreign-key column(s)
    if onclause is not None:
        positions = [width + i for i in range(len(match_cols))]
    else:
        positions = [target.column_keys.index(c.key) for c in match_cols]
    p0 = positions[0]
    for chunk in _chunks(values, _chunk_size(session, len(match_cols))):
        if onclause is not None:
            stmt = Select(target.class_, *match_cols).join(rel.secondary, onclause)
        else:
            stmt = Select(target.class_)
        stmt = stmt.where(_in(match_cols, chunk))
        if order:
            stmt = stmt.order_by(*order)
        rows = await _fetch(session, stmt)
        children = instances(session, target, rows, 0, False)
        if single:
            for row, child in zip(rows, children):
                groups[row[p0]].append(child)
        else:
            for row, child in zip(rows, children):
                groups[tuple(row[i] for i in positions)].append(child)
    back = rel.back if rel.direction != MANYTOMANY else None
    back_key = back.key if back is not None and not back.uselist else None
    key = rel.key
    uselist = rel.uselist
    empty: list[Any] = []
    level = session._loads_tracker()
    track = level.loaded if level is not None else None
    for o in objs:
        d = o.__dict__
        items = groups.get(d[pk0] if single else tuple(d[k] for k in parent_keys), empty)
        if uselist:
            _set_loaded(o, key, make_collection(rel, o, items))
        else:
            _set_loaded(o, key, items[0] if items else None)
        if back_key is not None:
            for child in items:
                cd = child.__dict__
                if back_key not in cd:
                    cd[back_key] = o
                    if track is not None:
                        track[id(child)] = child
    if track is not None:
        track.update((id(o), o) for o in objs)


# -- entry points --------------------------------------------------------------------
def resolve_attribute(obj_or_mapper: Any, attribute: Any, op: str) -> tuple[str, Relationship | None]:
    """(attribute name, relationship or None for a column) for ``"name"`` / ``Model.attr``."""
    mapper = obj_or_mapper if hasattr(obj_or_mapper, "relationships") else type(obj_or_mapper).__aiouow_mapper__
    cls = mapper.class_.__name__
    if isinstance(attribute, Relationship):
        if attribute.parent is not mapper:
            raise exc.ArgumentError(f"{op}(): {attribute} is not a relationship of {cls}")
        return attribute.key, attribute
    name = attribute if isinstance(attribute, str) else getattr(attribute, "key", None)
    if isinstance(name, str):
        rel = mapper.relationships.get(name)
        if rel is not None:
            return name, rel
        if name in mapper.columns and (isinstance(attribute, str) or mapper.columns[name] is attribute):
            return name, None
    raise exc.ArgumentError(
        f"{op}(): {cls} has no relationship or column {attribute!r}; relationships: "
        f"{', '.join(mapper.relationships) or 'none'}"
    )


def _check_attached(session: SessionInternals | None, obj: Any, name: str, op: str) -> int:
    status = _state.status_of(obj)
    cls = type(obj).__name__
    if status == DETACHED:
        raise exc.DetachedInstanceError(
            f"cannot {op} {cls}.{name}: {obj!r} is detached from any session; re-attach it with "
            f"session.add(obj) or `obj = await session.merge(obj)` first"
        )
    if status in (PERSISTENT, PENDING):
        if _state.session_of(obj) is not session:
            raise exc.InvalidRequestError(f"cannot {op} {cls}.{name}: {obj!r} belongs to another session")
    if status == _state.DELETED:
        raise exc.InvalidRequestError(f"cannot {op} {cls}.{name}: {obj!r} was deleted")
    return status


class _Batch:
    __slots__ = ("objs", "future", "started")

    def __init__(self) -> None:
        self.objs: list[Any] = []
        self.future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.started = False


def _note_single_load(session: SessionInternals, rel: Relationship) -> None:
    counts = session._single_loads
    n = counts[rel] = counts.get(rel, 0) + 1
    if n <= session.n_plus_one_threshold or rel in session._n_plus_one_warned or not session.n_plus_one:
        return
    session._n_plus_one_warned.add(rel)
    cls = rel.parent.class_.__name__
    message = (
        f"N+1 loading: {rel} was loaded one object at a time {n} times in this session. Load it for all "
        f"objects at once: select({cls}).options(selectinload({rel})) in the query, or "
        f"`await session.load_all(objs, {rel.key!r})`"
    )
    if session.n_plus_one == "raise":
        raise exc.NPlusOneError(message)
    warnings.warn(message, exc.NPlusOneWarning, stacklevel=4)


async def session_load(session: SessionInternals, obj: Any, attribute: Any) -> Any:
    name, rel = resolve_attribute(obj, attribute, "session.load")
    status = _check_attached(session, obj, name, "load")
    d = obj.__dict__
    if status in (TRANSIENT, PENDING):
        return getattr(obj, name)
    if rel is None:
        if name not in d:
            await session.refresh(obj, [name])
        return d[name]
    if name in d:
        return d[name]
    batches: dict[Relationship, _Batch] = session._load_batches
    batch = batches.get(rel)
    if batch is None or batch.started:
        batch = batches[rel] = _Batch()
        batch.objs.append(obj)
        lock = session._load_lock
        locked = False
        try:
            try:
                await asyncio.sleep(0)  # let concurrent callers join this batch
            finally:
                batch.started = True
                if batches.get(rel) is batch:
                    del batches[rel]
            # batches of other relationships awaited together (one gather) take turns
            await lock.acquire()
            locked = True
            with session._guard:
                await session._prepare()
                if len(batch.objs) == 1:
                    _note_single_load(session, rel)
                await load_relationship(session, batch.objs, rel)
        except BaseException as err:
            if not batch.future.done():
                batch.future.set_exception(err)
                batch.future.exception()  # retrieved: waiters may all be gone
            raise
        finally:
            if locked:
                lock.release()
        batch.future.set_result(None)
    else:
        batch.objs.append(obj)
        await asyncio.shield(batch.future)
    return d[name]


async def session_load_all(session: SessionInternals, objs: Sequence[Any], attribute: Any) -> None:
    objs = [o for o in objs if o is not None]
    if not objs:
        return
    mapper = type(objs[0]).__aiouow_mapper__
    name, rel = resolve_attribute(mapper, attribute, "session.load_all")
    for o in objs:
        if type(o).__aiouow_mapper__ is not mapper:
            raise exc.ArgumentError(f"session.load_all(): all objects must be {mapper.class_.__name__}, not {o!r}")
    persistent = [o for o in objs if _check_attached(session, o, name, "load") == PERSISTENT]
    with session._guard:
        await session._prepare()
        if rel is None:
            await _ensure_columns(session, [o for o in persistent if name not in o.__dict__], [name])
        else:
            await load_relationship(session, persistent, rel)


class AwaitableAttrs:
    """``await obj.awaitable_attrs.posts``: the value, loaded first if needed."""

    __slots__ = ("_obj",)

    def __init__(self, obj: Any) -> None:
        self._obj = obj

    def __getattr__(self, name: str) -> Any:
        return _await_attr(self._obj, name)


async def _await_attr(obj: Any, name: str) -> Any:
    mapper = type(obj).__aiouow_mapper__
    if name not in mapper.attrs:
        raise AttributeError(f"{type(obj).__name__} has no mapped attribute {name!r}")
    d = obj.__dict__
    if name in d:
        return d[name]
    status = _state.status_of(obj)
    if status in (TRANSIENT, PENDING):
        return getattr(obj, name)
    session: SessionInternals | None = _state.session_of(obj)
    if session is None:
        _check_attached(None, obj, name, "load")  # raises for a detached object
        raise exc.InvalidRequestError(f"cannot load {type(obj).__name__}.{name}: the session of {obj!r} is gone")
    return await session.load(obj, name)
