"""Task ownership: a session belongs to one task at a time.

An operation that may await holds the session for its task: ``with
session._guard:`` around its body.  The guard is re-entrant for the owning
task (an operation calling another), and another task arriving meanwhile gets
``ConcurrentSessionUseError`` instead of interleaving its statements with the
owner's.  Operations that never await (``add()``, ``expunge()``) do not hold
it; they only ``check()`` that no other task does, one attribute test when
the session is free.

A context manager rather than a decorator: entering and leaving cost the two
method calls the old ``_enter()`` / ``_leave()`` pair did, with no wrapper
coroutine per call, and the guard can cover part of a method (``stream()``
holds it while it starts, then once per chunk fetched).
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

from .. import exc


def current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


def _name(task: asyncio.Task[Any] | None) -> str:
    return task.get_name() if task is not None else "<no task>"


class TaskGuard:
    """The task that holds a session, and how many of its operations are under way."""

    __slots__ = ("owner", "depth")

    def __init__(self) -> None:
        self.owner: asyncio.Task[Any] | None = None
        self.depth = 0

    def __enter__(self) -> None:
        task = current_task()
        owner = self.owner
        if owner is None:
            self.owner = task
            self.depth = 1
        elif owner is task:
            self.depth += 1
        else:
            raise concurrent_use(owner, task)

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.depth -= 1
        if self.depth <= 0:
            self.owner = None
            self.depth = 0

    def check(self) -> None:
        """Raise if another task holds the session (for operations that never await)."""
        owner = self.owner
        if owner is not None:
            task = current_task()
            if owner is not task:
                raise concurrent_use(owner, task)


def concurrent_use(owner: asyncio.Task[Any] | None, task: asyncio.Task[Any] | None) -> exc.ConcurrentSessionUseError:
    return exc.ConcurrentSessionUseError(
        f"this AsyncSession is in use by task {_name(owner)!r} while task {_name(task)!r} tried to use it; "
        "a session belongs to one task at a time: give each task its own session "
        "(scoped_session / sessionmaker), or await the first operation before starting the next"
    )
