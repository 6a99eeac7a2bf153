"""Column types.

A type says what Python values a column holds.  How it is spelled in DDL and
how values are converted on the way to and from a driver is the dialect's
business (``aiouow.dialects``), keyed by the type's ``visit_name``; this module
knows nothing of any database.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import enum
import types as _pytypes
import typing
import uuid
from typing import Any

from .exc import ArgumentError


class TypeEngine:
    """Base of every column type."""

    visit_name = "type"
    """The name the dialects look the type up by, for its DDL and its value conversions."""
    python_types: tuple[type, ...] = (object,)
    """The Python classes a value of this type is an instance of (``None`` is handled apart)."""

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` can be stored in a column of this type."""
        return isinstance(value, self.python_types)

    def cache_key(self) -> tuple[Any, ...]:
        """A hashable description of the type, its parameters included.

        Two types with equal keys are the same type: compiled statements are cached by it, and
        ``==`` and ``hash()`` use it.
        """
        return (self.visit_name,)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.cache_key() == self.cache_key()

    def __hash__(self) -> int:
        return hash(self.cache_key())


class Integer(TypeEngine):
    """An integer (``INTEGER``, 32 bits on PostgreSQL, as in SQLAlchemy).

    An ``int`` annotation maps to :class:`BigInteger`, not to this.
    """

    visit_name = "integer"
    python_types = (int,)


class BigInteger(Integer):
    """A 64-bit integer."""

    visit_name = "big_integer"


class SmallInteger(Integer):
    """A 16-bit integer."""

    visit_name = "small_integer"


class String(TypeEngine):
    """A string, optionally of bounded length (``VARCHAR(length)``).

    Attributes:
        length: The maximum length (``VARCHAR(length)``), or ``None`` for no limit.
    """

    visit_name = "string"
    python_types = (str,)

    def __init__(self, length: int | None = None) -> None:
        self.length = length

    def cache_key(self) -> tuple[Any, ...]:
        return (self.visit_name, self.length)

    def __repr__(self) -> str:
        name = type(self).__name__  # Text() too
        return f"{name}({self.length})" if self.length else f"{name}()"


class Text(String):
    """An unbounded string (``TEXT``)."""

    visit_name = "text"


class Float(TypeEngine):
    """A double-precision float."""

    visit_name = "float"
    python_types = (float, int)


class Numeric(TypeEngine):
    """An exact decimal number.  Values are :class:`decimal.Decimal`.

    Attributes:
        precision: The total number of digits, or ``None`` for the database's unbounded NUMERIC.
        scale: The number of digits after the decimal point.
    """

    visit_name = "numeric"
    python_types = (decimal.Decimal, int)

    def __init__(self, precision: int | None = None, scale: int | None = None) -> None:
        self.precision = precision
        self.scale = scale

    def cache_key(self) -> tuple[Any, ...]:
        return (self.visit_name, self.precision, self.scale)

    def __repr__(self) -> str:
        if self.precision is None:
            return "Numeric()"
        return f"Numeric({self.precision}, {self.scale or 0})"


class Boolean(TypeEngine):
    """A boolean."""

    visit_name = "boolean"
    python_types = (bool,)


class DateTime(TypeEngine):
    """A timestamp; ``timezone=True`` stores time-zone aware values.

    Attributes:
        timezone: Whether values are time-zone aware (``TIMESTAMP WITH TIME ZONE``).
    """

    visit_name = "datetime"
    python_types = (_dt.datetime,)

    def __init__(self, timezone: bool = False) -> None:
        self.timezone = timezone

    def cache_key(self) -> tuple[Any, ...]:
        return (self.visit_name, self.timezone)

    def refuses_aware(self, value: Any) -> bool:
        """Whether ``value`` is an aware datetime for this naive column.

        Such a value is refused when it is sent (asyncpg refuses it; SQLite would store it converted
        to UTC), not when it is set, which stays a plain isinstance().
        """
        return not self.timezone and isinstance(value, _dt.datetime) and value.utcoffset() is not None

    def __repr__(self) -> str:
        return f"DateTime(timezone={self.timezone})"


class Date(TypeEngine):
    """A calendar date."""

    visit_name = "date"
    python_types = (_dt.date,)

    def accepts(self, value: Any) -> bool:
        return isinstance(value, _dt.date) and not isinstance(value, _dt.datetime)


class Time(TypeEngine):
    """A time of day."""

    visit_name = "time"
    python_types = (_dt.time,)

    def accepts(self, value: Any) -> bool:
        # a time of day without time zone (PostgreSQL's TIME would drop the tzinfo silently)
        return isinstance(value, _dt.time) and value.utcoffset() is None


class Interval(TypeEngine):
    """A duration (:class:`datetime.timedelta`)."""

    visit_name = "interval"
    python_types = (_dt.timedelta,)


class LargeBinary(TypeEngine):
    """Binary data: ``bytes`` (``bytearray`` and ``memoryview`` are accepted too)."""

    visit_name = "binary"
    python_types = (bytes, bytearray, memoryview)


class Uuid(TypeEngine):
    """A :class:`uuid.UUID`."""

    visit_name = "uuid"
    python_types = (uuid.UUID,)


class JSON(TypeEngine):
    """A JSON document (``JSONB`` on PostgreSQL)."""

    visit_name = "json"
    python_types = (dict, list, str, int, float, bool)


class Enum(TypeEngine):
    """A Python :class:`enum.Enum`, stored by member name.

    Attributes:
        enum_class: The :class:`enum.Enum` subclass.
        length: The length of its longest member name (the width of the column that stores it).
    """

    visit_name = "enum"

    def __init__(self, enum_class: type[enum.Enum]) -> None:
        if not (isinstance(enum_class, type) and issubclass(enum_class, enum.Enum)):
            raise ArgumentError(f"Enum() takes an enum.Enum subclass, not {enum_class!r}")
        self.enum_class = enum_class
        self.python_types = (enum_class,)
        self.length = max((len(m) for m in enum_class.__members__), default=1)

    def cache_key(self) -> tuple[Any, ...]:
        return (self.visit_name, self.enum_class)

    def __repr__(self) -> str:
        return f"Enum({self.enum_class.__name__})"


class NullType(TypeEngine):
    """The type of a value whose column type is unknown (``text()`` parameters)."""

    visit_name = "null"


NULLTYPE = NullType()

_SIMPLE: dict[Any, TypeEngine] = {
    int: BigInteger(),
    str: String(),
    float: Float(),
    bool: Boolean(),
    bytes: LargeBinary(),
    decimal.Decimal: Numeric(),
    _dt.datetime: DateTime(),
    _dt.date: Date(),
    _dt.time: Time(),
    _dt.timedelta: Interval(),
    uuid.UUID: Uuid(),
    dict: JSON(),
    list: JSON(),
}


def refusal(type_: TypeEngine, value: Any) -> str:
    """Why ``value`` is no value of ``type_``, and what to do instead (for error messages)."""
    accepted = ", ".join(t.__name__ for t in type_.python_types)
    text = f"takes {type_!r} values ({accepted}), not {type(value).__name__} {value!r:.80}"
    if isinstance(type_, Integer) and isinstance(value, (float, decimal.Decimal)):
        # never truncated (asyncpg would send int(1.7) == 1): the caller decides how to round
        return text + "; convert it (int(value), round(value)) or map the column as Float / Numeric"
    if isinstance(type_, Date) and isinstance(value, _dt.datetime):
        return text + "; pass value.date() or map the column as DateTime"
    if isinstance(type_, DateTime) and isinstance(value, _dt.datetime):
        return ("takes naive datetimes (DateTime(timezone=False)), not the aware "
                f"{value!r:.80}; pass value.astimezone(UTC).replace(tzinfo=None) (or whichever local time "
                "the column means), or declare the column DateTime(timezone=True)")
    if isinstance(type_, Time) and isinstance(value, _dt.time):
        return (f"takes times of day without time zone, not the aware {value!r:.80}; pass "
                "value.replace(tzinfo=None), or store a DateTime(timezone=True)")
    if isinstance(type_, String) and isinstance(value, (bytes, bytearray, memoryview)):
        return text + "; decode it (value.decode()) or map the column as LargeBinary"
    return text + f"; convert it to {accepted.split(', ')[0]} or change the column's type"


def unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    """Split ``X | None`` / ``Optional[X]`` into ``(X, True)``; else ``(X, False)``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is _pytypes.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(annotation))
        if len(args) == 1:
            return args[0], nullable
        return typing.Union[tuple(args)], nullable  # noqa: UP007
    return annotation, False


def from_python(annotation: Any) -> TypeEngine | None:
    """The column type for a (non-optional) Python annotation, or None."""
    origin = typing.get_origin(annotation)
    if origin in (dict, list):
        return _SIMPLE[origin]
    if annotation in _SIMPLE:
        return _SIMPLE[annotation]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return Enum(annotation)
    return None


def type_for_value(value: Any) -> TypeEngine:
    """The type of a literal value given with no column to compare it to."""
    if value is None:
        return NULLTYPE
    if isinstance(value, enum.Enum):
        return Enum(type(value))
    if isinstance(value, bool):
        return _SIMPLE[bool]
    t = _SIMPLE.get(type(value))
    if t is not None:
        return t
    for py, t in _SIMPLE.items():
        if isinstance(value, py):
            return t
    return NULLTYPE


__all__ = [
    "JSON",
    "BigInteger",
    "Boolean",
    "Date",
    "DateTime",
    "Enum",
    "Float",
    "Integer",
    "Interval",
    "LargeBinary",
    "Numeric",
    "SmallInteger",
    "String",
    "Text",
    "Time",
    "TypeEngine",
    "Uuid",
]
