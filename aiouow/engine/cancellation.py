"""Cancellation: which errors mean a statement was interrupted, and cleanup that survives one.

Separate from the connection because it is the subtle part of it: a statement stopped by
cancellation has an unknown outcome (the session layer asks the same question), and
cleanup (ROLLBACK, returning a connection) must run to its end whichever kind of
cancellation arrives while it runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import anyio

_T = TypeVar("_T")


def _interrupted(err: BaseException) -> bool:
    """A statement stopped by cancellation (or Ctrl-C), not by an error: its outcome is unknown."""
    return not isinstance(err, (Exception, GeneratorExit))


async def run_shielded(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run cleanup to completion whatever cancellation arrives meanwhile, then re-raise it.

    ``anyio.CancelScope(shield=True)`` keeps anyio scopes (``move_on_after``, task
    groups) out, but not a native ``task.cancel()`` or ``asyncio.timeout``; so the
    work runs in its own task, which those never reach, and is awaited to the end.
    """
    inner = asyncio.ensure_future(coro)
    try:
        return await asyncio.shield(inner)
    except asyncio.CancelledError as err:
        cancelled: BaseException = err
    # cancelled meanwhile: wait for the work to end (shielded from anyio's repeated
    # deliveries too, which would otherwise spin), then let the cancellation through
    with anyio.CancelScope(shield=True):
        while not inner.done():
            try:
                await asyncio.wait((inner,))
            except asyncio.CancelledError as err:
                cancelled = err
    if not inner.cancelled():
        inner.exception()  # retrieved: the cancellation wins
    raise cancelled
