"""LIMIT and OFFSET, shared by ``Select`` and the set operations (``union(...)``)."""

from __future__ import annotations

import operator
from typing import Any, Self

from .. import types as sqltypes
from ..exc import ArgumentError
from .elements import BindParameter

_INT = sqltypes.Integer()


def _count(n: Any, what: str) -> BindParameter[Any] | None:
    if n is None:
        return None
    if isinstance(n, bool):
        raise ArgumentError(f"{what}() takes an int or None, not {n!r}")
    try:
        value = operator.index(n)
    except TypeError:
        raise ArgumentError(f"{what}() takes an int or None, not {n!r} ({type(n).__name__})") from None
    if value < 0:
        raise ArgumentError(f"{what}() takes a count of rows, not {value}")
    return BindParameter(value, _INT)


class Paged:
    """``.limit(n)`` / ``.offset(m)`` (``None`` removes them), as bound parameters so that
    every page shares one statement shape."""

    __slots__ = ("_limit", "_offset")

    def __init__(self) -> None:
        self._limit: BindParameter[Any] | None = None
        self._offset: BindParameter[Any] | None = None

    def _copy(self) -> Self:
        """A shallow copy; a subclass copies its own slots after these."""
        new = type(self).__new__(type(self))
        new._limit = self._limit
        new._offset = self._offset
        return new

    def limit(self, n: int | None) -> Self:
        """At most ``n`` rows."""
        new = self._copy()
        new._limit = _count(n, "limit")
        return new

    def offset(self, n: int | None) -> Self:
        """Skip the first ``n`` rows."""
        new = self._copy()
        new._offset = _count(n, "offset")
        return new
