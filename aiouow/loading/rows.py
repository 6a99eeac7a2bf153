"""Rows to objects.

An object is built without ``__init__`` and without change tracking:
``object.__new__``, its ``__dict__`` filled straight from the row (by a small
function generated per column list, which also converts driver values where
the dialect needs it), and the session's token put in its state slot (see
``mapping/state.py``).  Rows for
objects the session already holds return the held object; its loaded
values are kept (SQLAlchemy's rule: a query does not overwrite pending
changes) unless ``populate_existing`` is asked for, and its unloaded
(expired) attributes are filled in.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from .._gc import gc_paused
from ..engine.result import _process
from ..mapping import state as _state
from ..mapping.mapper import Mapper

if TYPE_CHECKING:
    from .protocol import SessionInternals

#: (column index, result processor) pairs of an entity's columns whose driver values need converting
Converters = tuple[tuple[int, Callable[[Any], Any]], ...]


@lru_cache(maxsize=512)
def _filler(keys: tuple[str, ...], converters: Converters = ()) -> Callable[[dict[str, Any], Any], None]:
    """``fill(d, row)``: ``d[k0], d[k1], ... = row``, converting the ``converters`` columns.

    Generated because one unpacking assignment into subscripts is about twice
    as fast as ``d.update(zip(keys, row))`` (no pair tuples, no generic merge),
    and building ``__dict__`` is most of the per-row cost of a load.  With
    converters the row is unpacked into locals first, so the keys are still
    inserted in column order (every instance dict then shares one key layout).
    The keys are written as string literals (``repr``), so any column name is safe.
    """
    namespace: dict[str, Any] = {}
    if not converters:
        body = ", ".join(f"d[{k!r}]" for k in keys) + ", = row"
    else:
        convert = dict(converters)
        lines = [", ".join(f"v{i}" for i in range(len(keys))) + ", = row"]
        lines += [f"d[{k!r}] = {_value(i, convert.get(i), namespace)}" for i, k in enumerate(keys)]
        body = "\n    ".join(lines)
    exec(f"def fill(d, row):\n    {body}\n", namespace)  # noqa: S102 - our own column names, as literals
    return namespace["fill"]  # type: ignore[no-any-return]


def _value(i: int, proc: Callable[[Any], Any] | None, namespace: dict[str, Any]) -> str:
    """Source of column ``i``'s value in a filler: ``v{i}`` as is, or converted.

    A None-safe processor (``none_safe``) exposes its function as ``not_none``: the
    None test is then written inline and the function called directly, which
    spares a Python-level call per value (about 5% of loading a DATETIME column).
    """
    if proc is None:
        return f"v{i}"
    fn = getattr(proc, "not_none", None)
    namespace[f"c{i}"] = proc if fn is None else fn
    return f"c{i}(v{i})" if fn is None else f"None if v{i} is None else c{i}(v{i})"


def instances(session: SessionInternals, mapper: Mapper, rows: list[Any], start: int, populate_existing: bool,
              procs: tuple[tuple[int, Any], ...] = ()) -> list[Any]:
    """One object (or None, for an all-NULL outer-join row) per row.

    ``procs`` (a compiled statement's ``result_procs``) means the rows are the
    driver's, not yet converted: the entity's columns are converted while its
    objects are filled, which spares a converted copy of every row.
    """
    with gc_paused(len(rows)):
        return _instances(session, mapper, rows, start, populate_existing, procs)


def _instances(session: SessionInternals, mapper: Mapper, rows: list[Any], start: int, populate_existing: bool,
               procs: tuple[tuple[int, Any], ...]) -> list[Any]:
    keys = mapper.column_keys
    width = len(keys)
    stop = start + width
    pk_pos = [start + keys.index(k) for k in mapper.pk_keys]
    if any(pos in pk_pos for pos, _ in procs):
        # the identity-map key itself needs converting: convert whole rows first
        rows = _process(rows, procs)
        procs = ()
    fill = _filler(keys, tuple((pos - start, proc) for pos, proc in procs if start <= pos < stop))
    imap = session._identity_for(mapper)
    token = session._token
    cls = mapper.class_
    new = object.__new__
    set_slot = _state.set_slot
    single = len(pk_pos) == 1
    p0 = pk_pos[0]
    # rows holding exactly this entity's columns are unpacked as they are, others sliced
    whole = start == 0 and bool(rows) and len(rows[0]) == width
    get = imap.get
    out: list[Any] = []
    append = out.append
    # inside a SAVEPOINT, objects given values from the database are noted (see TxLevel.loaded)
    level = session._loads_tracker()
    track = level.loaded_new if level is not None else None
    for row in rows:
        pk = row[p0] if single else tuple(row[i] for i in pk_pos)
        if pk is None:
            append(None)
            continue
        obj = get(pk)
        if obj is None:
            obj = new(cls)
            fill(obj.__dict__, row if whole else row[start:stop])
            set_slot(obj, token)
            imap[pk] = obj
            if track is not None:
                track[id(obj)] = obj
        else:
            loaded: dict[str, Any] = {}
            fill(loaded, row if whole else row[start:stop])
            if _refill(session, obj, loaded, populate_existing) and level is not None:
                level.loaded[id(obj)] = obj
        append(obj)
    return out


def is_expired(obj: Any, mapper: Mapper) -> bool:
    """Whether a column of ``obj`` is unloaded (expired, or deferred by the query that loaded it)."""
    d = obj.__dict__
    for k in mapper.column_keys:
        if k not in d:
            return True
    return False


def _refill(session: SessionInternals, obj: Any, loaded: dict[str, Any], populate_existing: bool) -> bool:
    """A row for an object the session holds: fill what is unloaded (everything with
    populate_existing).  Whether any value was taken from the row."""
    d = obj.__dict__
    if populate_existing:
        d.update(loaded)
        st = _state.full_state(obj)
        if st is not None:
            st.committed = None
        session._forget_modified(obj)
        return True
    filled = False
    for k, v in loaded.items():
        if k not in d:
            d[k] = v
            filled = True
    return filled
