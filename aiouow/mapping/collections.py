"""Collections held by one-to-many and many-to-many relationship attributes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .relationships import Relationship


def make_collection(rel: Relationship, owner: Any, items: list[Any]) -> list[Any]:
    """The list stored in ``owner.__dict__[rel.key]``."""
    return list(items)
