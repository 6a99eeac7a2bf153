"""Loader options: selectinload, joinedload, raiseload, noload."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


async def apply_options(session: Any, options: Sequence[Any], mappers: list[Any], objs: list[list[Any]],
                        populate: bool) -> None:
    """Run the eager loads the options ask for on freshly loaded objects."""
    raise NotImplementedError("loader options arrive with the relationships issue")
