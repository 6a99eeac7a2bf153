"""Pausing the cyclic garbage collector around large synchronous batches.

Building thousands of rows, objects or flush parameters allocates thousands of
container objects.  None of them form cycles, but the allocations alone trigger
collections that rescan every live object, so their cost grows with the heap:
measured here, 30-45% of a 100 000-row load or flush.

Most batches run with no await inside.  A large flush stays paused across its
statements as well (a few milliseconds per thousand rows): its parameter
lists are allocated in bursts between awaits, and a full collection there
rescanned every object being flushed (a third of a 10 000-row insert).  The
flush checks its connection out of the pool first, so a wait for the pool is
not spent paused; a wait on a row lock held by another transaction is.  Other
tasks keep running meanwhile with the collector paused; nothing is lost, their
cyclic garbage is collected once the flush ends.  Pauses nest: only the
outermost one switches the collector back on (and it does so even if the
application called ``gc.disable()`` meanwhile).

``gc_paused`` hands out one of two stateless context managers rather than
being a ``@contextmanager`` generator: small batches (every short transaction
flushes through it twice) then cost 0.2 us instead of 0.7 us.
"""

from __future__ import annotations

import gc
from types import TracebackType

#: batches smaller than this run as they are
GC_PAUSE_MIN = 1000


class _Paused:
    __slots__ = ()

    def __enter__(self) -> None:
        gc.disable()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        gc.enable()


class _NotPaused:
    __slots__ = ()

    def __enter__(self) -> None:
        pass

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        pass


_PAUSED = _Paused()
_NOT_PAUSED = _NotPaused()


def gc_paused(size: int) -> _Paused | _NotPaused:
    """``with gc_paused(n):`` pauses the cyclic collector for a batch of ``n`` items, if that
    is large and the collector enabled (a nested pause finds it disabled and leaves it so)."""
    if size < GC_PAUSE_MIN or not gc.isenabled():
        return _NOT_PAUSED
    return _PAUSED
