"""What one ``before_insert`` listener costs per row: ``python -m benchmarks.events_cost [--url URL]``.

The same flush of N new rows, alternately without and with an empty listener on the model;
the figure is the difference of the best main-thread CPU times (``time.thread_time``: the
event loop's own work, less sensitive than wall time to other processes on the machine),
divided by N.  SQLite in a temporary directory unless ``--url`` names another database.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tempfile
import time
from typing import Any

from aiouow import Mapped, Model, column, create_engine, delete, events, sessionmaker


class EventRow(Model):
    __tablename__ = "bench_event_rows"
    id: Mapped[int] = column(primary_key=True)
    name: Mapped[str] = column()
    score: Mapped[int] = column(default=0)


def listener(mapper: Any, connection: Any, target: EventRow) -> None:
    pass


async def measure(url: str, n: int, runs: int) -> tuple[float, float]:
    """Best flush CPU time in seconds (without, with the listener)."""
    engine = create_engine(url)
    tables = [EventRow.__table__]
    await Model.metadata.drop_all(engine, tables=tables)
    await Model.metadata.create_all(engine, tables=tables)
    Session = sessionmaker(engine)  # noqa: N806
    best = {False: float("inf"), True: float("inf")}
    try:
        for i in range(2 + 2 * runs):  # the first pair warms up
            with_listener = bool(i % 2)
            if with_listener:
                events.listen(EventRow, "before_insert", listener)
            try:
                async with Session.begin() as s:
                    await s.execute(delete(EventRow))
                objs = [EventRow(name=f"n{j}") for j in range(n)]
                gc.collect()
                async with Session() as s:
                    s.add_all(objs)
                    t0 = time.thread_time()
                    await s.flush()
                    spent = time.thread_time() - t0
                    await s.rollback()
            finally:
                if with_listener:
                    events.remove(EventRow, "before_insert", listener)
            if i >= 2:
                best[with_listener] = min(best[with_listener], spent)
    finally:
        await Model.metadata.drop_all(engine, tables=tables)
        await engine.dispose()
    return best[False], best[True]


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.events_cost", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=None, help="database URL (default: SQLite in a temporary directory)")
    p.add_argument("--n", type=int, default=5000, help="rows per flush (default 5000)")
    p.add_argument("--runs", type=int, default=15, help="flushes with and without the listener (default 15)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{tmp}/events.db"
        without, with_ = asyncio.run(measure(url, args.n, args.runs))
    extra = with_ - without
    print(f"{url.split(':')[0]}: flush of {args.n} rows: {without * 1e3:.2f} ms CPU without a listener, "
          f"{with_ * 1e3:.2f} ms with one before_insert listener: {extra / args.n * 1e9:.0f} ns per row "
          f"({extra / without * 100:.1f}%)")


if __name__ == "__main__":
    main()
