"""Pausing the cyclic garbage collector around large synchronous batches.

Building thousands of rows, objects or flush parameters allocates thousands of
container objects.  None of them form cycles, but the allocations alone trigger
collections that rescan every live object, so their cost grows with the heap:
measured here, 30-45% of a 100 000-row load or flush.

Most batches run with no await inside.  A large flush stays paused across its
statements as well (a few milliseconds per thousand rows): its parameter
lists are allocated in bursts between awaits, and a full collection there
rescanned every object being flushed (a third of a 10 000-row insert).  Other
tasks keep running meanwhile with the collector paused; nothing is lost, their
cyclic garbage is collected once the flush ends.  Pauses nest: only the
outermost one switches the collector back on.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: batches smaller than this run as they are
GC_PAUSE_MIN = 1000


@contextmanager
def gc_paused(size: int) -> Iterator[None]:
    """Pause the cyclic collector for a batch of ``size`` items (if large and enabled)."""
    if size < GC_PAUSE_MIN or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
