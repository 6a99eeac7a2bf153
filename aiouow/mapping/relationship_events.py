"""What happens in memory when a relationship changes (no I/O, ever).

* The owner remembers the relationship's value before its first change
  (``InstanceState.rel_committed``), for history and for the flush.
* The ``back_populates`` side is updated: for a many-to-one, the target's
  collection gains or loses the owner if that collection is loaded (or the
  target is new); for a collection, each item's many-to-one or collection.
* With ``save-update`` cascade, an object attached to one in a session joins
  that session.
"""

from __future__ import annotations

from typing import Any

from ..exc import ArgumentError
from . import state as _state
from .collections import InstrumentedList, make_collection
from .state import NO_VALUE, PENDING, PERSISTENT, TRANSIENT, SessionHooks


def record_change(rel: Any, obj: Any) -> None:
    """Remember the relationship's value before its first change since load/flush."""
    st = _state.state_of(obj)
    if st.status < PERSISTENT:
        return
    committed = st.rel_committed
    if committed is None:
        committed = st.rel_committed = {}
        session: SessionHooks | None = st.session if st.status == PERSISTENT else None
        if session is not None:  # (a deleted object's changes are never flushed)
            session._note_modified(obj)
    if rel.key not in committed:
        old = obj.__dict__.get(rel.key, NO_VALUE)
        committed[rel.key] = list(old) if isinstance(old, list) else old


def _loaded_or_new(obj: Any, rel: Any) -> Any:
    """The value of ``obj.<rel>`` if it is loaded (initialising it for new objects), else NO_VALUE."""
    d = obj.__dict__
    if rel.key in d:
        return d[rel.key]
    if _state.status_of(obj) in (TRANSIENT, PENDING):
        value = rel.empty_value(obj)
        d[rel.key] = value
        return value
    return NO_VALUE


def _cascade_session(rel: Any, owner: Any) -> SessionHooks | None:
    """The session new related objects join through ``save-update`` cascade, or None."""
    if "save-update" not in rel.cascade:
        return None
    session: SessionHooks | None = _state.session_of(owner)
    return session


def _cascade_add(rel: Any, owner: Any, item: Any) -> None:
    if item is None:
        return
    session = _cascade_session(rel, owner)
    if session is not None and _state.status_of(item) in (TRANSIENT, _state.DETACHED):
        session.add(item)


def _back_set_scalar(back: Any, item: Any, owner: Any) -> None:
    """item.<back> = owner, quietly (no reverse sync back to owner's collection)."""
    d = item.__dict__
    old = d.get(back.key, NO_VALUE)
    if old is owner:
        return
    if old is NO_VALUE and _state.status_of(item) < PERSISTENT:
        d[back.key] = owner  # a new object's first value: no history, no previous parent
        return
    record_change(back, item)
    if old not in (None, NO_VALUE) and owner is not None:
        # item leaves its previous parent's collection
        prev = back.back
        if prev is not None:
            coll = old.__dict__.get(prev.key)
            if isinstance(coll, InstrumentedList):
                coll._remove_quiet(item)
            elif coll is item:
                record_change(prev, old)
                old.__dict__[prev.key] = None
    d[back.key] = owner


def _link_back(back: Any, item: Any, owner: Any) -> None:
    """The other side of ``back_populates`` gains ``owner`` (if it is loaded, or ``item`` is new)."""
    if back.uselist:
        coll = _loaded_or_new(item, back)
        if isinstance(coll, InstrumentedList):
            coll._append_quiet(owner)
    else:
        _back_set_scalar(back, item, owner)


def _unlink_back(back: Any, item: Any, owner: Any) -> None:
    """The other side of ``back_populates`` loses ``owner`` (where it is loaded)."""
    d = item.__dict__
    if back.uselist:
        coll = d.get(back.key)
        if isinstance(coll, InstrumentedList):
            coll._remove_quiet(owner)
    elif d.get(back.key, NO_VALUE) is owner:
        record_change(back, item)
        d[back.key] = None


def on_collection_add(rel: Any, owner: Any, item: Any) -> None:
    back = rel.back
    if back is not None:
        _link_back(back, item, owner)
    _cascade_add(rel, owner, item)


def on_collection_remove(rel: Any, owner: Any, item: Any) -> None:
    if "delete-orphan" in rel.cascade and _state.status_of(item) == PENDING:
        # a pending orphan is never inserted: it leaves the session (SQLAlchemy)
        session = _state.state_of(item).session
        if session is not None:
            session.expunge(item)
    back = rel.back
    if back is not None:
        _unlink_back(back, item, owner)


def set_relationship(rel: Any, obj: Any, value: Any) -> None:
    """``obj.rel = value``: check it, record history, keep the other side in step."""
    target = rel.resolve().mapper.class_
    if rel.uselist:
        if value is None or isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
            raise ArgumentError(f"{type(obj).__name__}.{rel.key} is a collection; assign a list, not {value!r}")
        items = list(value)
        for item in items:
            if not isinstance(item, target):
                raise ArgumentError(
                    f"{type(obj).__name__}.{rel.key} holds {target.__name__} objects, not {type(item).__name__}"
                )
        d = obj.__dict__
        old = d.get(rel.key, NO_VALUE)
        if old is not NO_VALUE or _state.status_of(obj) >= PERSISTENT:
            record_change(rel, obj)
        ids: set[int] = set()
        unique = []
        for item in items:  # an object listed twice is held once
            if id(item) not in ids:
                ids.add(id(item))
                unique.append(item)
        d[rel.key] = make_collection(rel, obj, unique)
        if isinstance(old, list):
            for item in old:
                if id(item) not in ids:
                    on_collection_remove(rel, obj, item)
        back = rel.back
        session = _cascade_session(rel, obj)
        for item in unique:
            if back is not None:
                _link_back(back, item, obj)
            if session is not None and _state.status_of(item) in (TRANSIENT, _state.DETACHED):
                session.add(item)
        return
    if value is not None and not isinstance(value, target):
        raise ArgumentError(
            f"{type(obj).__name__}.{rel.key} takes a {target.__name__} or None, not {type(value).__name__}"
        )
    d = obj.__dict__
    old = d.get(rel.key, NO_VALUE)
    if old is value:
        return
    record_change(rel, obj)
    d[rel.key] = value
    back = rel.back
    if back is not None:
        if old not in (None, NO_VALUE):
            _unlink_back(back, old, obj)
        if value is not None:
            _link_back(back, value, obj)
    _cascade_add(rel, obj, value)
