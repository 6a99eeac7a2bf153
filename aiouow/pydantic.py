"""Pydantic v2 models read from aiouow objects, with aiouow's own error for what is not loaded.

``Schema.model_validate(obj, from_attributes=True)`` works on aiouow objects as on any others:
loaded columns and relationships are read, and nothing is ever loaded (aiouow does no I/O on
attribute access). An unloaded attribute makes Pydantic fail with a ``ValidationError`` whose
message carries aiouow's ``NotLoadedError`` text (Pydantic turns every error raised by an
attribute into a validation error). :func:`model_validate` checks first and raises the
``NotLoadedError`` itself, naming the object and the attribute, for code that wants to catch it::

    from aiouow.pydantic import model_validate

    out = model_validate(BookOut, book)   # NotLoadedError: Book.tags is not loaded ...
"""

from __future__ import annotations

import types
import typing
from typing import Any, TypeVar

try:
    from pydantic import BaseModel
except ImportError as err:  # pragma: no cover - depends on what is installed
    raise ImportError("aiouow.pydantic needs Pydantic v2: pip install pydantic") from err

__all__ = ["check_loaded", "model_validate"]

_S = TypeVar("_S", bound=BaseModel)


def model_validate(schema: type[_S], obj: Any, **kw: Any) -> _S:
    """``schema.model_validate(obj, from_attributes=True)``, after :func:`check_loaded`."""
    check_loaded(schema, obj)
    return schema.model_validate(obj, from_attributes=True, **kw)


def check_loaded(schema: type[BaseModel], obj: Any) -> None:
    """Raise for the first attribute ``schema`` reads from ``obj`` that is not loaded.

    The objects nested in ``obj`` are checked too; the error is ``NotLoadedError`` (or
    ``DetachedInstanceError``).
    """
    _check(schema, obj, set())


def _check(schema: type[BaseModel], obj: Any, seen: set[tuple[int, type[BaseModel]]]) -> None:
    mapper = getattr(type(obj), "__aiouow_mapper__", None)
    if mapper is None or (id(obj), schema) in seen:
        return
    seen.add((id(obj), schema))
    d = obj.__dict__
    for name, field in schema.model_fields.items():
        key = field.validation_alias if isinstance(field.validation_alias, str) else (field.alias or name)
        if key not in mapper.attrs:
            continue
        value = d[key] if key in d else getattr(obj, key)  # an unloaded one raises NotLoadedError here
        nested = _nested_schema(field.annotation)
        if nested is None or value is None:
            continue
        for item in value if isinstance(value, (list, tuple, set, frozenset)) else (value,):
            _check(nested, item, seen)


def _nested_schema(annotation: Any) -> type[BaseModel] | None:
    """The Pydantic model inside ``X``, ``X | None``, ``list[X]``, ``Optional[list[X]]``, ..."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is None:
        return None
    if origin in (typing.Union, types.UnionType, list, tuple, set, frozenset, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _nested_schema(arg)
            if found is not None:
                return found
    return None
