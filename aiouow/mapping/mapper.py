"""The mapping of one model class to its table."""

from __future__ import annotations

import dataclasses
import re
import sys
import typing
from collections.abc import Callable
from typing import Any

from .. import types as sqltypes
from ..exc import ArgumentError
from ..sql.schema import Column, ForeignKey, MetaData, Table
from ..sql.selectable import EntityClause
from .attributes import ColumnAttribute, Mapped
from .relationships import Relationship, parse_annotation

_MISSING: Any = dataclasses.MISSING

#: every mapped class by name, for string targets like relationship("Post")
_registry: dict[str, list[Mapper]] = {}


class ColumnSpec:
    """What ``column(...)`` returns inside a class body."""

    __slots__ = ("name", "foreign_keys", "primary_key", "nullable", "default", "default_factory", "unique",
                 "index", "type_", "version", "autoincrement")

    def __init__(self, name: str | None, foreign_keys: tuple[ForeignKey, ...], primary_key: bool, nullable: bool | None,
                 default: Any, default_factory: Any, unique: bool, index: bool, type_: Any, version: bool,
                 autoincrement: bool | str) -> None:
        #: the database name of the column (None: the attribute's)
        self.name = name
        self.foreign_keys = foreign_keys
        self.primary_key = primary_key
        self.nullable = nullable
        self.default = default
        self.default_factory = default_factory
        self.unique = unique
        self.index = index
        self.type_ = type_
        self.version = version
        self.autoincrement = autoincrement


class Mapper:
    """``aiouow.inspect(User)``: ``.columns``, ``.primary_key``, ``.relationships``, ``.table``.

    Attributes:
        class_: The mapped class.
        table: Its :class:`Table`.
        columns: Attribute name to :class:`Column`, in table order.
        relationships: Attribute name to :class:`Relationship`.
        primary_key: The primary-key columns, in order.
        pk_keys: The attribute names of the primary-key columns.
        column_keys: The attribute names of every column, in table order.
        attrs: Every mapped attribute name (columns first), mapped to its relationship or ``None``.
        expire_keys: The attributes expiring an object forgets (all but the primary key, whose values
            keep the identity known).
        defaults: ``(attribute, value or factory, is_factory)`` triples the constructor applies.
        version_key: The attribute of the ``version=True`` column, if there is one.
        autoincrement_key: The attribute of the primary key the database generates, if there is one.
        not_null_keys: Attributes that must have a value at flush (NOT NULL, not generated, not the
            version counter).
        cache: Per-dialect caches of precompiled SQL and row loaders, filled by the layers above.
        column_specs: ``id()`` of each ``column()`` of the class body to the column made of it.
        pk_of: The primary-key value (a scalar, or a tuple for a composite key) of a dict of attribute
            values.
    """

    def __init__(self, cls: type, table: Table, columns: dict[str, Column],
                 relationships: dict[str, Relationship], defaults: list[tuple[str, Any, bool]]) -> None:
        self.class_ = cls
        self.table = table
        #: attribute name -> Column, in table order
        self.columns = columns
        self.relationships = relationships
        self.primary_key: tuple[Column, ...] = table.primary_key
        self.pk_keys: tuple[str, ...] = tuple(c.key for c in table.primary_key)
        self.column_keys: tuple[str, ...] = tuple(columns)
        self.attrs: dict[str, Any] = {**{k: None for k in columns}, **relationships}
        #: what expiring an object forgets (primary-key values stay: the identity is known)
        self.expire_keys: tuple[str, ...] = tuple(k for k in self.attrs if k not in self.pk_keys)
        #: (key, value or factory, is_factory) applied by the constructor
        self.defaults = defaults
        self.version_key: str | None = next((c.key for c in table.columns if c.version), None)
        auto = table.autoincrement_column
        self.autoincrement_key: str | None = auto.key if auto is not None else None
        self.not_null_keys = tuple(c.key for c in table.columns if not c.nullable and c is not auto
                                   and not c.version)
        self._clause = EntityClause(table, table.columns, self)
        #: per-dialect caches of precompiled SQL and row loaders (filled by upper layers)
        self.cache: dict[Any, Any] = {}
        #: id(column() spec of the class body) -> its column, set by map_class()
        self.column_specs: dict[int, Column] = {}
        if len(self.pk_keys) == 1:
            k = self.pk_keys[0]
            self.pk_of: Callable[[dict[str, Any]], Any] = lambda d: d.get(k)
        else:
            keys = self.pk_keys
            self.pk_of = lambda d: tuple(d.get(k) for k in keys)

    def __clause_element__(self) -> EntityClause:
        return self._clause

    def identity_from_pk(self, pk: Any) -> Any:
        """The identity-map key for a user-given primary key (scalar, tuple or dict)."""
        keys = self.pk_keys
        if len(keys) == 1 and pk is not None and not isinstance(pk, (dict, tuple, list)):
            # the common case: a scalar for a one-column key; of the key's type, or the lookup
            # would miss silently (SQLite: b"1" for an integer) or be truncated (asyncpg: 1.5 -> 1)
            if not self.primary_key[0].type.accepts(pk):
                self._refuse_pk(self.primary_key[0], pk)
            return pk
        name = self.class_.__name__
        if isinstance(pk, dict):
            missing = [k for k in keys if k not in pk]
            extra = [k for k in pk if k not in keys]
            if missing or extra:
                raise ArgumentError(
                    f"{name} primary key is ({', '.join(keys)}); the dict given "
                    f"{'lacks ' + ', '.join(missing) if missing else 'has unknown ' + ', '.join(extra)}"
                )
            values = tuple(pk[k] for k in keys)
        elif isinstance(pk, (tuple, list)):
            values = tuple(pk)
        else:
            values = (pk,)
        if len(values) != len(keys):
            raise ArgumentError(
                f"{name} has a primary key of {len(keys)} column(s) ({', '.join(keys)}), "
                f"but {len(values)} value(s) were given: {pk!r}"
            )
        if any(v is None for v in values):
            raise ArgumentError(f"{name}: a primary key value cannot be None ({pk!r})")
        for col, v in zip(self.primary_key, values):
            if not col.type.accepts(v):
                self._refuse_pk(col, v)
        return values[0] if len(values) == 1 else values

    def _refuse_pk(self, col: Any, value: Any) -> None:
        key = next((k for k, c in self.columns.items() if c is col), col.key)
        raise ArgumentError(f"primary key {self.class_.__name__}.{key} {sqltypes.refusal(col.type, value)}")

    def __repr__(self) -> str:
        return f"<Mapper {self.class_.__name__} -> {self.table.name}>"


def is_mapped_name(name: str) -> bool:
    """Whether a mapped class of this name is defined."""
    return bool(_registry.get(name))


def mapper_for_name(name: str, rel: Relationship) -> Mapper:
    found = _registry.get(name, [])
    if not found:
        raise ArgumentError(f"relationship {rel}: no mapped class named {name!r} is defined")
    if len(found) > 1:
        # as an annotation would be read: a class of that name in the relationship's own module
        home = [m for m in found if m.class_.__module__ == rel.parent.class_.__module__]
        if len(home) == 1:
            return home[0]
        modules = ", ".join(sorted(f"{m.class_.__module__}.{m.class_.__name__}" for m in found))
        raise ArgumentError(f"relationship {rel}: several mapped classes are named {name!r} ({modules}), none "
                            "of them in this model's module; pass the class itself")
    return found[0]


#: ``Mapped[X]`` (or ``aiouow.Mapped[X]``) in an annotation that could not be evaluated
_MAPPED_TEXT = re.compile(r"^\s*(?:[\w.]+\.)?Mapped\s*\[(.*)\]\s*$", re.S)


def _eval_annotation(ann: Any, cls: type) -> Any:
    """The annotation as an object, with ``Mapped[X]`` read as ``X``; text that cannot be
    evaluated yet (a class defined later) stays text."""
    if isinstance(ann, str):
        module = sys.modules.get(cls.__module__)
        ns = dict(vars(module)) if module else {}
        ns.setdefault(cls.__name__, cls)
        try:
            ann = eval(ann, ns, dict(vars(cls)))  # noqa: S307 - annotations are the user's own code
        except Exception:
            m = _MAPPED_TEXT.match(ann)
            return _eval_annotation(m.group(1), cls) if m else ann
    if typing.get_origin(ann) is Mapped:
        (inner,) = typing.get_args(ann)
        # Mapped["Post"]: the quoted name is evaluated like a whole quoted annotation
        return _eval_annotation(inner.__forward_arg__ if isinstance(inner, typing.ForwardRef) else inner, cls)
    return ann


def _is_classvar(ann: Any) -> bool:
    if isinstance(ann, str):
        return ann.startswith(("ClassVar", "typing.ClassVar"))
    return ann is typing.ClassVar or typing.get_origin(ann) is typing.ClassVar


def collect_specs(cls: type) -> list[tuple[str, Any, Any]]:
    """(name, annotation, spec) for every mapped attribute, base classes first."""
    specs: dict[str, tuple[str, Any, Any]] = {}
    for base in reversed(cls.__mro__[1:]):
        for item in base.__dict__.get("__aiouow_specs__", ()):
            specs[item[0]] = item
    own = cls.__dict__.get("__annotations__", {})
    for name, ann in own.items():
        if name.startswith("_") or _is_classvar(ann):
            continue
        value = cls.__dict__.get(name, _MISSING)
        spec: ColumnSpec | Relationship | tuple[str, Any] | None
        if isinstance(value, (ColumnSpec, Relationship)):
            spec = value
        elif value is _MISSING:
            spec = None
        else:
            spec = ("default", value)
        specs[name] = (name, ann, spec)
    return list(specs.values())


def build_columns(cls: type, specs: list[tuple[str, Any, Any]]
                  ) -> tuple[list[Column], dict[str, Relationship], list[tuple[str, Any, bool]]]:
    columns: list[Column] = []
    rels: dict[str, Relationship] = {}
    defaults: list[tuple[str, Any, bool]] = []
    for name, raw_ann, spec in specs:
        ann = _eval_annotation(raw_ann, cls)
        if isinstance(spec, Relationship):
            rel = Relationship.__new__(Relationship)
            rel.__dict__.update(spec.__dict__)
            rel.key = name
            target, uselist = parse_annotation(ann)
            if rel.argument is None:
                if target is None:
                    raise ArgumentError(f"{cls.__name__}.{name}: relationship() needs a target class or annotation")
                rel.argument = target
            rel._annotation_uselist = uselist
            rels[name] = rel
            continue
        if isinstance(spec, ColumnSpec):
            cs = spec
        else:
            default = spec[1] if isinstance(spec, tuple) else _MISSING
            cs = ColumnSpec(None, (), False, None, default, _MISSING, False, False, None, False, "auto")
        if isinstance(ann, str) and cs.type_ is None:
            raise ArgumentError(
                f"{cls.__name__}.{name}: cannot evaluate the annotation {ann!r}; "
                "import the type it names, or give column(type_=...)"
            )
        py_type, nullable = sqltypes.unwrap_optional(ann)
        if cs.type_ is not None:
            type_ = cs.type_
        elif cs.version:
            type_ = sqltypes.BigInteger()
        else:
            type_ = sqltypes.from_python(py_type)
            if type_ is None and typing.get_origin(py_type) is not None:
                type_ = sqltypes.from_python(typing.get_origin(py_type))
            if type_ is None:
                raise ArgumentError(
                    f"{cls.__name__}.{name}: no column type for annotation {py_type!r}; "
                    "use one of int, str, float, bool, bytes, Decimal, datetime, date, time, "
                    "timedelta, UUID, an Enum, dict or list, or give column(type_=...)"
                )
        if cs.nullable is not None:
            nullable = cs.nullable
        col = Column(
            cs.name or name, type_, *[ForeignKey(fk.target, ondelete=fk.ondelete, onupdate=fk.onupdate)
                           for fk in cs.foreign_keys],
            primary_key=cs.primary_key, nullable=nullable and not cs.primary_key, unique=cs.unique,
            index=cs.index, autoincrement=cs.autoincrement, version=cs.version, key=name,
        )
        columns.append(col)
        # the column carries the default too, so a core insert() that omits it applies it
        if cs.default_factory is not _MISSING:
            defaults.append((name, cs.default_factory, True))
            col.default, col.default_is_callable = cs.default_factory, True
        elif cs.default is not _MISSING:
            defaults.append((name, cs.default, False))
            col.default, col.default_is_callable = cs.default, False
    return columns, rels, defaults


def _table_schema(cls: type) -> str | None:
    """``__table_args__ = {"schema": "music"}`` as in SQLAlchemy (the only table argument known)."""
    args = cls.__dict__.get("__table_args__")
    if args is None:
        return None
    if not isinstance(args, dict) or set(args) - {"schema"}:
        raise ArgumentError(f"{cls.__name__}.__table_args__: only {{'schema': name}} is supported, got {args!r}")
    schema = args.get("schema")
    if schema is not None and not isinstance(schema, str):
        raise ArgumentError(f"{cls.__name__}.__table_args__: the schema must be a string, got {schema!r}")
    return schema


def map_class(cls: type, metadata: MetaData) -> Mapper | None:
    """Build the table and mapper of a model class (None for an abstract base)."""
    specs = collect_specs(cls)
    tablename = cls.__dict__.get("__tablename__")
    if tablename is None:
        for base in cls.__mro__[1:]:
            if base.__dict__.get("__aiouow_mapper__") is not None:
                raise ArgumentError(
                    f"{cls.__name__} subclasses the mapped class {base.__name__} without a __tablename__; "
                    "mapped inheritance is not supported: share columns through an abstract base "
                    "(a Model subclass without __tablename__)"
                )
        cls.__aiouow_specs__ = specs  # type: ignore[attr-defined]
        for name, _, spec in specs:
            if name in cls.__dict__ and isinstance(spec, (ColumnSpec, Relationship)):
                delattr(cls, name)
        return None
    columns, rels, defaults = build_columns(cls, specs)
    if not any(c.primary_key for c in columns):
        raise ArgumentError(f"{cls.__name__} has no primary key: mark a column with column(primary_key=True)")
    table = Table(tablename, *columns, metadata=metadata, schema=_table_schema(cls))
    mapper = Mapper(cls, table, {c.key: c for c in columns}, rels, defaults)
    mapper.column_specs = {id(spec): mapper.columns[name] for name, _, spec in specs
                           if isinstance(spec, ColumnSpec) and name in mapper.columns}
    table.mapper = mapper
    for c in columns:
        setattr(cls, c.key, ColumnAttribute(c.key, c, cls))
    for rel in rels.values():
        rel.parent = mapper
        setattr(cls, rel.key, rel)
    _registry.setdefault(cls.__name__, []).append(mapper)
    return mapper


def unregister(cls: type) -> None:
    """Forget a mapped class and its table (tests that define throwaway models)."""
    mapper = cls.__dict__.get("__aiouow_mapper__")
    if mapper is None:
        return
    lst = _registry.get(cls.__name__, [])
    if mapper in lst:
        lst.remove(mapper)
    mapper.table.metadata.remove(mapper.table)
