"""Rows to objects.

An object is built without ``__init__`` and without change tracking:
``object.__new__``, its ``__dict__`` filled straight from the row, and the
session's token put in its state slot (see ``mapping/state.py``).  Rows for
objects the session already holds return the held object; its loaded
values are kept (SQLAlchemy's rule: a query does not overwrite pending
changes) unless ``populate_existing`` is asked for, and its unloaded
(expired) attributes are filled in.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from .._gc import gc_paused
from ..mapping import state as _state
from ..mapping.mapper import Mapper
from ..mapping.state import InstanceState


@cache
def _filler(keys: tuple[str, ...]) -> Callable[[dict[str, Any], Any], None]:
    """``fill(d, row)`` doing ``d[k0], d[k1], ... = row`` for these keys.

    Generated because one unpacking assignment into subscripts is about twice
    as fast as ``d.update(zip(keys, row))`` (no pair tuples, no generic merge),
    and building ``__dict__`` is most of the per-row cost of a load.  The keys
    are written as string literals (``repr``), so any column name is safe.
    """
    targets = ", ".join(f"d[{k!r}]" for k in keys)
    source = f"def fill(d, row):\n    {targets}, = row\n"
    namespace: dict[str, Any] = {}
    exec(source, namespace)  # noqa: S102 - our own column names, as literals
    return namespace["fill"]  # type: ignore[no-any-return]


def instances(session: Any, mapper: Mapper, rows: list[Any], start: int, populate_existing: bool) -> list[Any]:
    """One object (or None, for an all-NULL outer-join row) per row."""
    with gc_paused(len(rows)):
        return _instances(session, mapper, rows, start, populate_existing)


def _instances(session: Any, mapper: Mapper, rows: list[Any], start: int, populate_existing: bool) -> list[Any]:
    keys = mapper.column_keys
    width = len(keys)
    imap = session._identity_for(mapper)
    token = session._token
    cls = mapper.class_
    new = object.__new__
    set_slot = _state._set_slot
    pk_pos = [start + keys.index(k) for k in mapper.pk_keys]
    single = len(pk_pos) == 1
    p0 = pk_pos[0]
    # rows holding exactly this entity's columns are unpacked as they are, others sliced
    whole = start == 0 and bool(rows) and len(rows[0]) == width
    stop = start + width
    fill = _filler(keys)
    get = imap.get
    out = []
    append = out.append
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
        else:
            _refill(session, obj, keys, row if whole else row[start:stop], populate_existing)
        append(obj)
    return out


def _refill(session: Any, obj: Any, keys: tuple[str, ...], values: Any, populate_existing: bool) -> None:
    d = obj.__dict__
    if populate_existing:
        d.update(zip(keys, values))
        st = _state.raw_state(obj)
        if st.__class__ is InstanceState:
            st.committed = None
            st.expired_by = None
        session._forget_modified(obj)
        return
    for k, v in zip(keys, values):
        if k not in d:
            d[k] = v
