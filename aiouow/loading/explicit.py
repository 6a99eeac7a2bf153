"""Explicit relationship loads: session.load(), load_all(), refresh(obj, [rel])."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


async def load_relationship(session: Any, objs: list[Any], rel: Any, refresh: bool = False) -> None:
    raise NotImplementedError("relationship loading arrives with the relationships issue")


async def session_load(session: Any, obj: Any, attribute: Any) -> Any:
    raise NotImplementedError("relationship loading arrives with the relationships issue")


async def session_load_all(session: Any, objs: Sequence[Any], attribute: Any) -> None:
    raise NotImplementedError("relationship loading arrives with the relationships issue")
