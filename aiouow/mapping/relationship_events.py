"""What happens when a relationship attribute is assigned."""

from __future__ import annotations

from typing import Any

from ..exc import ArgumentError
from . import state as _state
from .collections import make_collection
from .state import PERSISTENT, InstanceState


def set_relationship(rel: Any, obj: Any, value: Any) -> None:
    """``obj.rel = value``: check the value, remember the old one for history."""
    if rel.uselist:
        if value is None or isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise ArgumentError(f"{type(obj).__name__}.{rel.key} is a collection; assign a list, not {value!r}")
        value = make_collection(rel, obj, list(value))
        target = rel.mapper.class_
        for item in value:
            if not isinstance(item, target):
                raise ArgumentError(
                    f"{type(obj).__name__}.{rel.key} holds {target.__name__} objects, not {type(item).__name__}"
                )
    elif value is not None and not isinstance(value, rel.mapper.class_):
        raise ArgumentError(
            f"{type(obj).__name__}.{rel.key} takes a {rel.mapper.class_.__name__} or None, "
            f"not {type(value).__name__}"
        )
    d = obj.__dict__
    st = _state.state_of(obj)
    if st.status >= PERSISTENT:
        committed = st.rel_committed
        if committed is None:
            committed = st.rel_committed = {}
            session = st.session
            if session is not None:
                session._note_modified(obj)
        if rel.key not in committed:
            old = d.get(rel.key, _state.NO_VALUE)
            committed[rel.key] = list(old) if isinstance(old, list) else old
    d[rel.key] = value


def is_full_state(st: Any) -> bool:
    return st.__class__ is InstanceState
