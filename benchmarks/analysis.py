"""Two extra sections of RESULTS.md: how cost grows with N, and where aiouow's time goes.

* Scaling (``--scaling 1000,10000,100000``): W1 and W2 for the raw driver and
  aiouow at each N, reported as time per row, so a quadratic step anywhere
  (flush planning, identity map, loading) shows as a rising column.
* Profiles (``--profile``): for every workload whose goal aiouow did not meet
  in the main run, one more run of aiouow under ``cProfile``, its own time
  (``tottime``) grouped by where the code lives.  cProfile slows down Python
  calls more than C code and waiting, so the shares are approximate: they say
  which layer to look at, not how many milliseconds it costs unprofiled.
"""

from __future__ import annotations

import cProfile
import pstats
import statistics
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .systems import System

#: (label, test on the profiled function's file name and function name), first match wins
CATEGORIES: list[tuple[str, Callable[[str, str], bool]]] = [
    ("waiting for the database (event loop idle)", lambda f, fn: "poll" in fn and "epoll" in fn),
    ("aiouow mapping: construction, attribute and relationship events",
     lambda f, fn: "/aiouow/mapping/" in f),
    ("aiouow session: add, flush planning, bookkeeping, identity map", lambda f, fn: "/aiouow/session/" in f),
    ("aiouow loading: rows to objects, eager loads", lambda f, fn: "/aiouow/loading/" in f),
    ("aiouow sql, engine, dialects: compiling, parameters, type conversion",
     lambda f, fn: "/aiouow/" in f),
    ("the workload's own code (loops, constructor calls)", lambda f, fn: "/benchmarks/" in f),
    ("driver, asyncio and built-ins (list, dict, datetime, ...)", lambda f, fn: True),
]


@dataclass
class Profile:
    total: float
    by_category: list[tuple[str, float]]
    top: list[tuple[str, int, float]]  # (function, calls, own seconds)


def profile_of(stats: pstats.Stats, top: int = 6) -> Profile:
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    by_cat: dict[str, float] = {label: 0.0 for label, _ in CATEGORIES}
    funcs = []
    total = 0.0
    for (filename, line, name), (_cc, ncalls, tottime, _ct, _callers) in raw.items():
        total += tottime
        for label, test in CATEGORIES:
            if test(filename, name):
                by_cat[label] += tottime
                break
        short = filename.split("/aiouow/", 1)[-1] if "/aiouow/" in filename else filename.rsplit("/", 1)[-1]
        where = f"{short}:{line} {name}" if filename != "~" else name
        funcs.append((where, ncalls, tottime))
    funcs.sort(key=lambda x: -x[2])
    return Profile(total, sorted(by_cat.items(), key=lambda x: -x[1]), funcs[:top])


async def profile_run(run: Callable[[], Awaitable[Any]]) -> Profile:
    prof = cProfile.Profile()
    prof.enable()
    try:
        await run()
    finally:
        prof.disable()
    return profile_of(pstats.Stats(prof))


def render_profiles(profiles: dict[tuple[str, str], Profile]) -> str:
    """``profiles``: (backend label, workload id) -> profile of one aiouow run."""
    if not profiles:
        return ""
    out = ["## Where aiouow's time goes (workloads whose goal is not met)", "",
           "One extra run of aiouow per workload under cProfile; own time grouped by where the code lives, "
           "then the functions with the most own time. Profiling slows Python calls more than C code and "
           "waiting, so read the shares as where to look, not as exact costs.", ""]
    for (backend, wid), p in profiles.items():
        out.append(f"**{backend} {wid}** (profiled run: {p.total * 1000:.0f} ms)\n")
        out.append("| where | share |")
        out.append("|---|---:|")
        for label, t in p.by_category:
            if t > 0.005 * p.total:
                out.append(f"| {label} | {t / p.total * 100:.0f}% |")
        out.append("")
        out.append("Most own time: " + "; ".join(
            f"`{name}` {t / p.total * 100:.0f}% ({calls} calls)" for name, calls, t in p.top) + "\n")
    return "\n".join(out)


# -- scaling ------------------------------------------------------------------------------
@dataclass
class ScalingCell:
    times: list[float] = field(default_factory=list)
    gc: list[float] = field(default_factory=list)

    def per_row_us(self, n: int) -> float | None:
        return statistics.median(self.times) / n * 1e6 if self.times else None


def render_scaling(cells: dict[tuple[str, str, str, int], ScalingCell], sizes: list[int], runs: int) -> str:
    """``cells``: (backend label, workload id, system name, N) -> timings."""
    if not cells:
        return ""
    out = ["## How cost grows with N (W1 and W2)", "",
           f"Time per row (median of {runs} run{'s' if runs != 1 else ''}, microseconds) at each N, then in "
           "brackets the cyclic garbage collector's share and the time per row without it. Flat rows mean no "
           "step in the work grows faster than the number of rows; the collector's share grows with the number "
           "of live objects for every system (it rescans the whole heap now and then), so the time without it "
           "is what shows whether aiouow's own work stays linear.", ""]
    head = ["backend", "workload", "system", *[f"N = {n:,}" for n in sizes], f"aiouow / raw at {sizes[-1]:,}"]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "|".join(["---"] * 3 + ["---:"] * (len(head) - 3)) + "|")
    keys = sorted({(b, w, s) for b, w, s, _ in cells}, key=lambda k: (k[0], k[1], k[2] != "raw"))
    for b, w, s in keys:
        row = [b, w, s]
        for n in sizes:
            c = cells.get((b, w, s, n))
            us = c.per_row_us(n) if c else None
            if us is None or c is None:
                row.append("-")
            else:
                share = statistics.median(c.gc)
                row.append(f"{us:.2f} ({share * 100:.0f}%; {us * (1 - share):.2f} without)")
        raw = cells.get((b, w, "raw", sizes[-1]))
        mine = cells.get((b, w, s, sizes[-1]))
        if s != "raw" and raw and mine and raw.times and mine.times:
            row.append(f"{statistics.median(mine.times) / statistics.median(raw.times):.2f}x")
        else:
            row.append("")
        out.append("| " + " | ".join(row) + " |")
    out.append("")
    return "\n".join(out)


def aiouow_system(systems: list[System]) -> System | None:
    return next((s for s in systems if s.name == "aiouow"), None)
