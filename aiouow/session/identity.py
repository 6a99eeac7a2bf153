"""The identity map: one object per primary key per session.

Stored per mapper (``{mapper: {pk: obj}}``) so the hot paths look up a bare
primary key (a scalar for single-column keys) without building key tuples;
the public view presents SQLAlchemy-style identity keys ``(cls, pk_tuple)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ..mapping.mapper import Mapper
from ..mapping.state import SessionToken

__all__ = ["IdentityMapView", "IdentitySet", "SessionToken", "identity_key"]


def identity_key(mapper: Mapper, pk: Any) -> tuple[type, tuple[Any, ...]]:
    return (mapper.class_, pk if len(mapper.pk_keys) > 1 else (pk,))


class IdentityMapView(Mapping[tuple[type, tuple[Any, ...]], Any]):
    """``session.identity_map``: read-only, keyed by ``(cls, pk_tuple)``."""

    __slots__ = ("_maps",)

    def __init__(self, maps: dict[Mapper, dict[Any, Any]]) -> None:
        self._maps = maps

    def __getitem__(self, key: tuple[type, tuple[Any, ...]]) -> Any:
        try:
            cls, ident = key
            mapper = cls.__aiouow_mapper__  # type: ignore[attr-defined]
            pk = ident if len(mapper.pk_keys) > 1 else ident[0]
            return self._maps[mapper][pk]
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            raise KeyError(key) from None

    def __iter__(self) -> Iterator[tuple[type, tuple[Any, ...]]]:
        for mapper, objs in list(self._maps.items()):
            for pk in list(objs):
                yield identity_key(mapper, pk)

    def __len__(self) -> int:
        return sum(len(m) for m in self._maps.values())

    def values(self) -> list[Any]:  # type: ignore[override]
        """Every object in the identity map."""
        return [obj for m in self._maps.values() for obj in m.values()]


class IdentitySet:
    """A read-only set of objects compared by identity (``session.new`` etc.)."""

    __slots__ = ("_objs",)

    def __init__(self, objs: dict[int, Any]) -> None:
        self._objs = dict(objs)

    def __contains__(self, obj: object) -> bool:
        return id(obj) in self._objs and self._objs[id(obj)] is obj

    def __iter__(self) -> Iterator[Any]:
        return iter(self._objs.values())

    def __len__(self) -> int:
        return len(self._objs)

    def __bool__(self) -> bool:
        return bool(self._objs)

    def __repr__(self) -> str:
        return f"IdentitySet({list(self._objs.values())!r})"
