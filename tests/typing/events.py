"""aiouow.events: the decorator keeps the decorated function's type (checked, never run)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, assert_type

from aiouow import AsyncSession, Connection, Mapper, events, sessionmaker
from aiouow.events import FlushContext
from tests.typing.models_mapped import User

Session = sessionmaker()


@events.listens_for(Session, "before_flush")
async def audit(session: AsyncSession, flush: FlushContext) -> None:
    flush.info["seen"] = len(flush.inserted) + len(flush.updated) + len(flush.deleted)


@events.listens_for(User, "before_insert")
def stamp(mapper: Mapper, connection: Connection, target: User) -> None:
    target.name = target.name.strip()


# the decorated functions keep their signatures (were they Any, the ignores below would be unused)
as_hook: Callable[[AsyncSession, FlushContext], Coroutine[Any, Any, None]] = audit
as_model_hook: Callable[[Mapper, Connection, User], None] = stamp


def misuse(mapper: Mapper, connection: Connection, user: User) -> None:
    assert_type(stamp(mapper, connection, user), None)
    stamp(mapper, connection, "not a user")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    _ = audit(mapper, 1)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    events.listens_for(Session, "after_commit")(42)  # type: ignore[type-var]  # pyright: ignore[reportArgumentType]


events.listen(Session, "after_commit", print)
events.remove(Session, "after_commit", print)
assert_type(events.contains(Session, "after_commit", print), bool)
