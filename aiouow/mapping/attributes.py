"""Class-level descriptors for mapped column attributes, and ``Mapped[T]``.

A column attribute is a *non-data* descriptor: when the value is loaded it
sits in the instance ``__dict__`` and Python returns it without calling any
of our code.  Only a read of an unloaded attribute reaches ``__get__``.
Writes go through ``Model.__setattr__`` to :meth:`ColumnAttribute.set`,
which checks the value's type and records the previous value once.

``Mapped[T]`` is the annotation that tells a type checker both faces of an
attribute (see ``model.py`` for why there is one): ``User.name`` on the class
is a column expression of ``T`` (or, for a relationship, the relationship),
``user.name`` on an instance is a ``T``.  At run time it is only read from the
annotation, as if ``T`` had been written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from ..exc import ArgumentError
from ..types import refusal
from . import state as _state
from .state import PERSISTENT, InstanceState

if TYPE_CHECKING:
    from ..sql.elements import ColumnElement
    from ..sql.schema import Column
    from .relationships import Relationship

    class InstrumentedAttribute(ColumnElement["_T"], Relationship["_T"]):
        """What ``Model.attr`` is for the type checker, for an attribute annotated ``Mapped[_T]``.

        At run time a column's class attribute is its ``Column`` (a ``ColumnElement``) and a
        relationship's is its ``Relationship``; one annotation serves both, so the checker
        sees a type with both sides (as SQLAlchemy's ``InstrumentedAttribute``): the column
        operators, ``selectinload(User.posts)``, ``session.load(user, User.posts)``.  It does
        not exist at run time.  (Overloads of ``Mapped.__get__`` on a model-bound type variable
        could tell relationships from columns for pyright, but mypy matches ``Mapped[str | None]``
        against ``Mapped[M | None]`` too; the price of one type is that the checker also lets
        ``selectinload(User.name)`` pass, which fails at run time with a clear error.)
        """

_T = TypeVar("_T")


class Mapped(Generic[_T]):
    """``name: Mapped[str] = column()``: a mapped attribute, typed for the checker on both levels.

    ``User.name`` is a ``ColumnElement[str]`` (``User.name.desc()``, ``User.name == "a"``),
    ``user.name`` a ``str``; ``posts: Mapped[list[Post]] = relationship()`` makes
    ``User.posts`` usable in loader options and ``session.load()`` (which then returns
    ``list[Post]``).  The mapping reads ``Mapped[X]`` exactly as ``X``; a plain ``name: str``
    annotation maps the same, and types instance access only.  Never instantiated.
    """

    __slots__ = ()

    if TYPE_CHECKING:
        @overload
        def __get__(self, obj: None, owner: Any) -> InstrumentedAttribute[_T]: ...
        @overload
        def __get__(self, obj: object, owner: Any) -> _T: ...
        def __get__(self, obj: object | None, owner: Any) -> InstrumentedAttribute[_T] | _T: ...
        def __set__(self, obj: object, value: _T) -> None: ...


class ColumnAttribute(Generic[_T]):
    """``User.name``: the Column on the class; the value (a ``_T``) on an instance."""

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
            if self.column.primary_key and _state.status_of(obj) >= PERSISTENT:
                # a key is None only until the row exists (a generated key); the UPDATE would fail
                # differently per backend (SQLite: datatype mismatch, PostgreSQL: NOT NULL)
                raise ArgumentError(
                    f"{type(obj).__name__}.{self.key} is part of the primary key of a row that exists "
                    f"({_state.describe(obj)}) and cannot be set to None; give it another key value, "
                    "or delete the object"
                )
        elif not (isinstance(value, self._types) if self._accepts is None else self._accepts(value)):
            raise ArgumentError(f"{type(obj).__name__}.{self.key} {refusal(self.column.type, value)}")

    @overload
    def __get__(self, obj: None, cls: type | None = None) -> Column: ...
    @overload
    def __get__(self, obj: object, cls: type | None = None) -> _T: ...
    def __get__(self, obj: object | None, cls: type | None = None) -> Column | _T:
        if obj is None:
            return self.column
        value: _T = _state.missing_column(obj, self.key)
        return value

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
