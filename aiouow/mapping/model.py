"""``Model``, ``column()`` and ``relationship()``: declaring mapped classes.

Typing.  ``Model`` is a ``dataclass_transform`` base *without* field specifiers, so a type
checker sees every annotated attribute of a model as an optional keyword of its constructor,
typed by its annotation (``User(name=1)`` and ``User(nmae="a")`` are errors; ``User()`` is not).
That is what the constructor does: it never requires a column (NOT NULL is checked at flush,
and a generated primary key, a default or a version column is filled in later).  With
``column`` and ``relationship`` as field specifiers the checker would instead make every
column without a ``default=`` a required keyword (``User(name="ann")`` would fail for want of
the generated ``id``): checkers decide "has a default" only from a literal ``default=`` /
``default_factory=`` argument, so ``column(primary_key=True)`` could not be made optional.

Annotations: ``name: Mapped[str] = column()`` types both levels, ``User.name`` as a column
expression of ``str`` and ``user.name`` as a ``str`` (see ``attributes.Mapped``); a plain
``name: str = column()`` maps the same and types instance access only, so class-level
expressions (``User.name.desc()``, ``select(User.name)``, ``selectinload(User.posts)``) want
``Mapped``.  ``column()`` and ``relationship()`` return ``Any`` to the checker, which both
annotation styles accept.  ``eq_default=False``: models compare and hash by identity (the
identity map's contract), so the checker must not synthesize a field-wise ``__eq__``, which
would also make every model unhashable to pyright.  ``dataclasses.fields()``/``asdict()``
type-check but raise at run time: a model is not a dataclass.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, dataclass_transform

from ..exc import ArgumentError, UnknownAttributeError
from ..sql.schema import ForeignKey, MetaData, default_metadata
from . import state as _state
from .mapper import ColumnSpec, Mapper, map_class
from .relationships import Relationship
from .slot import StateSlot
from .state import TRANSIENT, InstanceState

_MISSING: Any = dataclasses.MISSING


def column(
    *args: str | ForeignKey,
    name: str | None = None,
    primary_key: bool = False,
    nullable: bool | None = None,
    default: Any = _MISSING,
    default_factory: Callable[[], Any] | Any = _MISSING,
    unique: bool = False,
    index: bool = False,
    type_: Any = None,
    version: bool = False,
    autoincrement: bool | str = "auto",
) -> Any:
    """A mapped column.  Its type comes from the annotation unless ``type_`` is given.

    ``version=True`` makes it an optimistic-concurrency counter (starts at 1,
    +1 per UPDATE, checked on UPDATE and DELETE).

    The database name of the column is the attribute's unless given, as the first
    positional string (``column("ArtistId", ForeignKey("artists.ArtistId"))``, as
    SQLAlchemy's ``mapped_column("ArtistId")``) or as ``name=``: statements, DDL and
    foreign keys use it, objects and result rows the attribute name.
    """
    if args and isinstance(args[0], str):
        if name is not None:
            raise ArgumentError(f"column({args[0]!r}, name={name!r}): give the column name once")
        name, args = args[0], args[1:]
    if name is not None and (not isinstance(name, str) or not name):
        raise ArgumentError(f"column(name=...): expected a non-empty string, not {name!r}")
    foreign_keys: list[ForeignKey] = []
    for fk in args:
        if not isinstance(fk, ForeignKey):
            raise ArgumentError(
                "column(): positional arguments are the column name (first, a string) and "
                f"ForeignKey(...), not {fk!r}"
            )
        foreign_keys.append(fk)
    if default is not _MISSING and default_factory is not _MISSING:
        raise ArgumentError("column(): give default or default_factory, not both")
    return ColumnSpec(name, tuple(foreign_keys), primary_key, nullable, default, default_factory, unique, index,
                      type_, version, autoincrement)


def relationship(
    argument: Any = None,
    *,
    back_populates: str | None = None,
    cascade: str = "save-update, merge",
    order_by: Any = None,
    secondary: Any = None,
    uselist: bool | None = None,
    remote_side: Any = None,
    foreign_keys: Any = None,
    primaryjoin: Any = None,
    secondaryjoin: Any = None,
    passive_deletes: bool = False,
    viewonly: bool = False,
) -> Any:
    """A relationship to another model; direction is inferred from foreign keys.

    Loading is always explicit: ``await session.load(obj, "rel")`` or a loader
    option in the query.

    ``foreign_keys=`` names the foreign-key column(s) to follow where several
    link the same tables: ``Model.col``, ``"Model.col"``, a table's column
    (``table.c.col``, ``"table.c.col"``) or a lambda returning them.  With
    ``secondary=`` it names association columns: in a self-referential
    many-to-many the one pointing at the parent (the other then points at the
    target).  ``primaryjoin=`` / ``secondaryjoin=`` (many-to-many only) say
    the same as SQLAlchemy: ``Model.id == table.c.col`` (several joined with
    ``and_()``/``&``), a lambda returning it, or its string form.
    """
    return Relationship(
        argument, back_populates=back_populates, cascade=cascade, order_by=order_by,
        secondary=secondary, uselist=uselist, remote_side=remote_side,
        foreign_keys=foreign_keys, primaryjoin=primaryjoin, secondaryjoin=secondaryjoin,
        passive_deletes=passive_deletes, viewonly=viewonly,
    )


@dataclass_transform(kw_only_default=True, eq_default=False)
class Model(StateSlot):
    """Base class of mapped models.

    ``class User(Model): __tablename__ = "users"; id: int = column(primary_key=True)``.
    A subclass without ``__tablename__`` is an abstract base whose columns its
    subclasses inherit.
    """

    __slots__ = ("__dict__", "__weakref__")  # and StateSlot's _aiouow_state

    metadata: ClassVar[MetaData] = default_metadata
    """The :class:`MetaData` the model's table is registered in (shared by every model by default).

    ``await Model.metadata.create_all(engine)`` creates every table; a base class may set its own
    ``metadata = MetaData()`` to keep its models apart.
    """
    __aiouow_mapper__: ClassVar[Mapper]
    __table__: ClassVar[Any]
    __tablename__: ClassVar[str]

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        mapper = map_class(cls, cls.metadata)
        cls.__aiouow_mapper__ = mapper  # type: ignore[assignment]
        if mapper is not None:
            cls.__table__ = mapper.table
            cls.__aiouow_column_attrs__ = {k: cls.__dict__[k] for k in mapper.columns}  # type: ignore[attr-defined]
            cls.__aiouow_setters__ = {  # type: ignore[attr-defined]
                **{k: cls.__dict__[k].set for k in mapper.columns},
                **{k: _relationship_setter(r) for k, r in mapper.relationships.items()},
            }

    @classmethod
    def __clause_element__(cls) -> Any:
        mapper = cls.__dict__.get("__aiouow_mapper__")
        if mapper is None:
            raise ArgumentError(f"{cls.__name__} is an abstract model (no __tablename__); it has no table")
        return mapper.__clause_element__()

    def __new__(cls, *args: Any, **kw: Any) -> Any:
        mapper = cls.__dict__.get("__aiouow_mapper__")
        if mapper is None:
            raise ArgumentError(f"{cls.__name__} is an abstract model (no __tablename__) and cannot be instantiated")
        obj = object.__new__(cls)
        _set_state(obj, InstanceState(mapper, TRANSIENT))
        return obj

    def __init__(self, **kw: Any) -> None:
        cls = type(self)
        mapper = cls.__aiouow_mapper__
        d = self.__dict__
        for key, value, factory in mapper.defaults:
            if key not in kw:
                d[key] = value() if factory else value
        columns = cls.__aiouow_column_attrs__  # type: ignore[attr-defined]
        for key, value in kw.items():
            attr = columns.get(key)
            if attr is not None:
                # a new object has no history to record: check and store
                if value is None or not (isinstance(value, attr._types) if attr._accepts is None
                                         else attr._accepts(value)):
                    attr.check(self, value)
                d[key] = value
                continue
            setter = cls.__aiouow_setters__.get(key)  # type: ignore[attr-defined]
            if setter is None:
                raise UnknownAttributeError(
                    f"{cls.__name__}() got an unexpected keyword argument {key!r}; "
                    f"mapped attributes: {', '.join(mapper.attrs)}"
                )
            setter(self, value)

    if not TYPE_CHECKING:  # hidden from checkers, which allow any attribute write on a class with one
        def __setattr__(self, key: str, value: Any) -> None:
            setter = type(self).__aiouow_setters__.get(key)
            if setter is None:
                object.__setattr__(self, key, value)
            else:
                setter(self, value)

    @property
    def awaitable_attrs(self) -> Any:
        """``await obj.awaitable_attrs.posts``: the attribute's value, loaded first if it is not."""
        from ..loading.explicit import AwaitableAttrs

        return AwaitableAttrs(self)

    def __repr__(self) -> str:
        mapper = type(self).__aiouow_mapper__
        d = self.__dict__
        shown = ", ".join(f"{k}={d[k]!r}" for k in mapper.column_keys if k in d)
        return f"{type(self).__name__}({shown})"


_set_state = _state.set_slot


def _relationship_setter(rel: Relationship) -> Callable[[Any, Any], None]:
    from .relationship_events import set_relationship

    def setter(obj: Any, value: Any) -> None:
        set_relationship(rel, obj, value)

    return setter

