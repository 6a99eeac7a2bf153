"""Class-level descriptors for mapped column attributes.

A column attribute is a *non-data* descriptor: when the value is loaded it
sits in the instance ``__dict__`` and Python returns it without calling any
of our code.  Only a read of an unloaded attribute reaches ``__get__``.
Writes go through ``Model.__setattr__`` to :meth:`ColumnAttribute.set`,
which checks the value's type and records the previous value once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..exc import ArgumentError
from . import state as _state
from .state import PERSISTENT, InstanceState

if TYPE_CHECKING:
    from ..sql.schema import Column


class ColumnAttribute:
    """``User.name``: the Column on the class; the value on an instance."""

    __slots__ = ("key", "column", "owner", "_accepts", "_types", "_nullable")

    def __init__(self, key: str, column: Column, owner: type) -> None:
        from ..types import TypeEngine

        self.key = key
        self.column = column
        self.owner = owner
        # plain isinstance() unless the type refines acceptance (Date rejects datetime)
        self._types = column.type.python_types
        self._accepts = None if type(column.type).accepts is TypeEngine.accepts else column.type.accepts
        self._nullable = column.nullable or column.primary_key

    def check(self, obj: Any, value: Any) -> None:
        """Raise a clear error if ``value`` cannot be stored in this column."""
        if value is None:
            if not self._nullable:
                raise ArgumentError(
                    f"{type(obj).__name__}.{self.key} is NOT NULL and cannot be set to None; "
                    f"annotate it as `{self.key}: X | None` to allow NULL"
                )
        elif not (isinstance(value, self._types) if self._accepts is None else self._accepts(value)):
            raise ArgumentError(
                f"{type(obj).__name__}.{self.key} takes {self.column.type!r} values "
                f"({', '.join(t.__name__ for t in self.column.type.python_types)}), "
                f"not {type(value).__name__} {value!r}"
            )

    def __get__(self, obj: Any, cls: type | None = None) -> Any:
        if obj is None:
            return self.column
        return _state.missing_column(obj, self.key)

    def set(self, obj: Any, value: Any) -> None:
        if value is None or not (isinstance(value, self._types) if self._accepts is None else self._accepts(value)):
            self.check(obj, value)
        d = obj.__dict__
        st = _state.get_slot(obj)  # not full_state(): no Python call on the attribute-set path
        if st.__class__ is not InstanceState:
            if st.active:
                # the first change to a clean object persistent in a session (the usual case):
                # promote its compact state with this change as its only history
                key = self.key
                _state.promote(obj, st).committed = {key: d.get(key, _state.NO_VALUE)}
                session = st.ref()
                if session is not None:
                    session._note_modified(obj)
                d[key] = value
                return
            st = _state.promote(obj, st)
        if st.status >= PERSISTENT:
            committed = st.committed
            if committed is None:
                committed = st.committed = {}
                token = st.session_ref
                session = token() if token is not None and st.status == PERSISTENT else None
                if session is not None:  # (a deleted object's changes are never flushed)
                    session._note_modified(obj)
            if self.key not in committed:
                committed[self.key] = d.get(self.key, _state.NO_VALUE)
        d[self.key] = value

    def __repr__(self) -> str:
        return f"<ColumnAttribute {self.owner.__name__}.{self.key}>"
