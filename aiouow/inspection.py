"""``aiouow.inspect()``: the mapping of a class, or the state of an instance."""

from __future__ import annotations

from typing import Any

from .exc import ArgumentError
from .mapping.aliased import inspect_alias
from .mapping.mapper import Mapper
from .mapping.state import InstanceInspection, state_of


def inspect(subject: Any) -> Any:
    """The mapping of a model class, the state of an instance, or an alias.

    ``inspect(User)`` -> its :class:`Mapper`; ``inspect(user)`` -> its state
    (``.transient .pending .persistent .deleted .detached .modified .identity
    .session .unloaded .attrs[name].history``); ``inspect(aliased(User))`` -> the alias
    (``.mapper .class_ .name .table .columns``).
    """
    alias = inspect_alias(subject)
    if alias is not None:
        return alias
    if isinstance(subject, type):
        mapper = subject.__dict__.get("__aiouow_mapper__")
        if isinstance(mapper, Mapper):
            return mapper
        raise ArgumentError(f"{subject.__name__} is not a mapped model class")
    if hasattr(type(subject), "__aiouow_mapper__") and isinstance(type(subject).__aiouow_mapper__, Mapper):
        return InstanceInspection(subject, state_of(subject))
    raise ArgumentError(f"inspect() takes a model class or instance, not {type(subject).__name__}")
