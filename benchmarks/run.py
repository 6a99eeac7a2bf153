"""Run the workloads of issue 6 for aiouow, the raw drivers and SQLAlchemy, on SQLite and PostgreSQL.

    python -m benchmarks                      # N=10000, median of 5 runs, both backends
    python -m benchmarks --n 2000 --runs 3 --backend sqlite
    python -m benchmarks --smoke              # tiny N, 1 run, no RESULTS.md (what .ci/run does)

How a measurement goes: the tables are emptied and seeded through the bare
driver (untimed), the cyclic garbage collector is run (untimed), then the
workload is timed with ``time.perf_counter`` while a ``gc.callbacks`` hook adds
up the time spent in collections; afterwards the database is checked (untimed)
to confirm the workload did its work.  Systems are interleaved: every run of a
workload times each system once, in an order that rotates from run to run.
W2's memory is measured in separate runs under ``tracemalloc``: "peak" is the
highest traced memory during the load, "retained" what the loaded result still
holds once the load returned (session closed, result kept), both per row.
No timing is asserted anywhere: this reports, it does not judge.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import traceback
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from .analysis import Profile, ScalingCell, aiouow_system, profile_run, render_profiles, render_scaling
from .roundtrips import RoundTripProxy, counting_sqlite_calls
from .schema import USERS, Backend, post_data, user_data
from .systems import MERGE_BATCH, NotAvailable, System

HERE = Path(__file__).resolve().parent
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
TASKS, TXNS_PER_TASK = 50, 20


# -- workloads ------------------------------------------------------------------------
@dataclass
class Workload:
    id: str
    title: str
    goal: tuple[float, float]  # aiouow's target ratio to raw: (PostgreSQL, SQLite), from issue 6
    seed: Callable[[int], tuple[int, int]]  # n -> (users, posts per user) to seed before the run
    run: Callable[[System, int, dict[str, Any]], Awaitable[int]]
    expected: Callable[[int], int]  # n -> the value the run must return
    check: Callable[[Backend, int], Awaitable[str | None]] | None = None  # n -> None, or what is wrong
    #: untimed, after seeding: what the run needs from the system itself (in ctx["prepared"])
    prepare: Callable[[System, int, dict[str, Any]], Awaitable[Any]] | None = None
    #: n -> transactions in a run, for the workloads whose round trips per transaction are counted
    transactions: Callable[[int], int] | None = None


async def _check_counts(backend: Backend, users: int, posts: int) -> str | None:
    got = await backend.counts()
    return None if got == (users, posts) else f"expected {users} users / {posts} posts in the database, found {got}"


async def _check_w3(backend: Backend, n: int) -> str | None:
    changed = await backend.scalar(f"SELECT count(*) FROM {USERS} WHERE name LIKE '%x'")
    return None if changed == n else f"expected {n} renamed users, found {changed}"


async def _check_w6(backend: Backend, n: int) -> str | None:
    changed = await backend.scalar(f"SELECT count(*) FROM {USERS} WHERE name LIKE 't%'")
    return None if changed > 0 else "no user was renamed"


async def _check_w8(backend: Backend, n: int) -> str | None:
    changed = await backend.scalar(f"SELECT count(*) FROM {USERS} WHERE name LIKE 'r%'")
    return None if changed > 0 else "no user was renamed"


async def _run_w8(system: System, n: int, ctx: dict[str, Any]) -> int:
    done = await asyncio.gather(*(system.w8_task(t, keys) for t, keys in enumerate(ctx["w6_keys"])))
    return sum(done)


async def _run_w6(system: System, n: int, ctx: dict[str, Any]) -> int:
    done = await asyncio.gather(*(system.w6_task(t, keys) for t, keys in enumerate(ctx["w6_keys"])))
    return sum(done)


def t_count(n: int) -> int:
    """Transactions of T1-T3 (and merged objects of T4/T5): 1000, or N if smaller."""
    return min(1000, n)


def t_batches(n: int) -> int:
    """Transactions of T4/T5, each of MERGE_BATCH merges: as many merges as T1-T3 have transactions."""
    return max(1, t_count(n) // MERGE_BATCH)


def _merge_keys(n: int) -> list[list[int]]:
    return [[(b * MERGE_BATCH + i) % n + 1 for i in range(MERGE_BATCH)] for b in range(t_batches(n))]


async def _prepare_merge(system: System, n: int, ctx: dict[str, Any]) -> list[list[Any]]:
    batches = ctx["t4_keys"]
    keys = sorted({k for b in batches for k in b})
    objs = dict(zip(keys, await system.detached_users(keys)))
    return [[objs[k] for k in b] for b in batches]


async def _check_renamed(backend: Backend, prefix: str, expected: int) -> str | None:
    changed = await backend.scalar(f"SELECT count(*) FROM {USERS} WHERE name LIKE '{prefix}%'")
    return None if changed == expected else f"expected {expected} users renamed {prefix}..., found {changed}"


def _check_merged(backend: Backend, n: int) -> Awaitable[str | None]:
    return _check_renamed(backend, "m", len({k for b in _merge_keys(n) for k in b}))


WORKLOADS = [
    Workload("W1", "unit-of-work insert: N users each with one post, add + commit", (1.0, 1.5),
             lambda n: (0, 0), lambda s, n, c: s.w1_insert(c["users"], c["posts"]), lambda n: n,
             lambda b, n: _check_counts(b, n, n)),
    Workload("W2", "load N users into objects", (1.8, 1.8),
             lambda n: (n, 0), lambda s, n, c: s.w2_load(), lambda n: n),
    Workload("W3", "load N users, change one attribute each, commit", (1.5, 1.5),
             lambda n: (n, 0), lambda s, n, c: s.w3_update(), lambda n: n, _check_w3),
    Workload("W4", "N/10 get() by primary key, each key twice", (0.8, 0.8),
             lambda n: (n, 0), lambda s, n, c: s.w4_get(c["w4_keys"]), lambda n: 2 * (n // 10)),
    Workload("W5", "N/10 users with 10 posts each, eager-loaded", (1.8, 1.8),
             lambda n: (n // 10, 10), lambda s, n, c: s.w5_eager(), lambda n: (n // 10) * 10),
    Workload("W6", f"{TASKS} tasks x {TXNS_PER_TASK} short transactions (get, update, commit)", (1.2, 1.2),
             lambda n: (n, 0), _run_w6, lambda n: TASKS * TXNS_PER_TASK, _check_w6),
    Workload("W7", "load N/2 users and delete them (database cascade), commit", (1.5, 1.5),
             lambda n: (n, 1), lambda s, n, c: s.w7_delete(n // 2), lambda n: n // 2,
             lambda b, n: _check_counts(b, n - n // 2, n - n // 2)),
    Workload("W8", f"read-heavy mix: {TASKS} tasks x {TXNS_PER_TASK} sessions (get + next 20 users; "
             "every 5th renames and commits)", (1.2, 1.2),
             lambda n: (n, 0), _run_w8, lambda n: TASKS * TXNS_PER_TASK, _check_w8),
    # per-transaction workloads (issue 16): one task, each transaction its own session or statement
    Workload("T1", "min(N, 1000) transactions: add one user, commit", (1.3, 1.3),
             lambda n: (0, 0), lambda s, n, c: s.t1_add(c["t1_users"]), t_count,
             lambda b, n: _check_counts(b, t_count(n), 0), transactions=t_count),
    Workload("T2", "min(N, 1000) transactions: get one user, change one attribute, commit", (1.3, 1.3),
             lambda n: (n, 0), lambda s, n, c: s.t2_change(c["t2_keys"]), t_count,
             lambda b, n: _check_renamed(b, "c", t_count(n)), transactions=t_count),
    Workload("T3", "min(N, 1000) transactions: get one user, delete it, commit", (1.3, 1.3),
             lambda n: (n, 0), lambda s, n, c: s.t3_delete(c["t3_keys"]), t_count,
             lambda b, n: _check_counts(b, n - t_count(n), 0), transactions=t_count),
    Workload("T4", f"min(N, 1000)/{MERGE_BATCH} transactions: merge() {MERGE_BATCH} detached users one by one, change "
             "each, commit", (1.3, 1.3),
             lambda n: (n, 0), lambda s, n, c: s.t4_merge(c["prepared"]), lambda n: t_batches(n) * MERGE_BATCH,
             _check_merged, prepare=_prepare_merge, transactions=t_batches),
    Workload("T5", f"T4 with the {MERGE_BATCH} merged in one call (merge_all; SQLAlchemy: one IN query, "
             "then merge() without autoflush)", (1.3, 1.3),
             lambda n: (n, 0), lambda s, n, c: s.t5_merge_all(c["prepared"]), lambda n: t_batches(n) * MERGE_BATCH,
             _check_merged, prepare=_prepare_merge, transactions=t_batches),
]


def make_context(n: int) -> dict[str, Any]:
    """The inputs of every workload, built once, outside the timed sections."""
    rng = random.Random(6)
    return {
        "users": user_data(n),
        "posts": [post_data(i) for i in range(1, n + 1)],
        "w4_keys": rng.sample(range(1, n + 1), n // 10),
        "w6_keys": [[rng.randint(1, n) for _ in range(TXNS_PER_TASK)] for _ in range(TASKS)],
        "t1_users": user_data(t_count(n)),
        "t2_keys": rng.sample(range(1, n + 1), t_count(n)),
        "t3_keys": rng.sample(range(1, n + 1), t_count(n)),
        "t4_keys": _merge_keys(n),
    }


# -- measuring ------------------------------------------------------------------------
class GCTimer:
    """Adds up the time the cyclic garbage collector runs, through ``gc.callbacks``."""

    def __init__(self) -> None:
        self.total = 0.0
        self._start: float | None = None

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        elif self._start is not None:
            self.total += time.perf_counter() - self._start
            self._start = None

    def reset(self) -> None:
        self.total = 0.0
        self._start = None


@dataclass
class Cell:
    times: list[float] = field(default_factory=list)
    gc_shares: list[float] = field(default_factory=list)
    na: str | None = None
    error: str | None = None
    round_trips: float | None = None  # per transaction, from the counting pass

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times and self.error is None else None

    @property
    def gc_share(self) -> float | None:
        return statistics.median(self.gc_shares) if self.gc_shares and self.error is None else None


@dataclass
class BackendResult:
    backend: Backend
    systems: list[System]
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)
    memory: dict[str, tuple[float, float]] = field(default_factory=dict)  # system -> (peak, retained) per row
    #: (backend label, workload, system, N) -> timings, for --scaling
    scaling: dict[tuple[str, str, str, int], ScalingCell] = field(default_factory=dict)
    #: (backend label, workload) -> profile of one aiouow run, for --profile
    profiles: dict[tuple[str, str], Profile] = field(default_factory=dict)

    def cell(self, wid: str, system: str) -> Cell:
        return self.cells.setdefault((wid, system), Cell())


async def prepared(w: Workload, system: System, n: int, ctx: dict[str, Any]) -> dict[str, Any]:
    """``ctx``, with what ``w.prepare`` makes for this system (after seeding, untimed) if it has one."""
    return ctx if w.prepare is None else {**ctx, "prepared": await w.prepare(system, n, ctx)}


async def time_one(backend: Backend, system: System, w: Workload, n: int, ctx: dict[str, Any],
                   timer: GCTimer) -> tuple[float, float] | None:
    """Seed, time one run of ``w`` on ``system``, check it.  None if the system cannot run it."""
    users, per_user = w.seed(n)
    await backend.reset(users, per_user)
    ctx = await prepared(w, system, n, ctx)
    gc.collect()
    timer.reset()
    t0 = time.perf_counter()
    value = await w.run(system, n, ctx)
    elapsed = time.perf_counter() - t0
    gc_time = timer.total
    if value != w.expected(n):
        raise AssertionError(f"{w.id} returned {value}, expected {w.expected(n)}")
    if w.check is not None:
        problem = await w.check(backend, n)
        if problem:
            raise AssertionError(f"{w.id}: {problem}")
    return elapsed, gc_time / elapsed if elapsed > 0 else 0.0


async def measure_memory(backend: Backend, system: System, n: int) -> tuple[float, float]:
    """Peak and retained traced bytes per row of one W2 load (after an untimed warm-up load)."""
    await backend.reset(n, 0)
    warm = await system.load_users()
    del warm
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        loaded = await system.load_users()
        current, peak = tracemalloc.get_traced_memory()
        assert len(loaded) == n
        del loaded
    finally:
        tracemalloc.stop()
    return (peak - base) / n, (current - base) / n


@dataclass
class Extras:
    """The optional sections: cost growth (--scaling) and profiles of unmet goals (--profile)."""

    scaling: list[int] = field(default_factory=list)
    scaling_runs: int = 3
    profile: bool = False


def _goal_missed(res: BackendResult, w: Workload) -> bool:
    raw, mine = res.cell(w.id, "raw").median, res.cell(w.id, "aiouow").median
    goal = w.goal[0] if res.backend.pg else w.goal[1]
    return raw is not None and mine is not None and mine / raw > goal


async def run_extras(res: BackendResult, systems: list[System], workloads: list[Workload], n: int,
                     ctx: dict[str, Any], timer: GCTimer, extras: Extras, log: Callable[[str], None]) -> None:
    backend = res.backend
    aiouow = aiouow_system(systems)
    if aiouow is None:
        return
    if extras.profile:
        for w in workloads:
            if _goal_missed(res, w):
                users, per_user = w.seed(n)
                await backend.reset(users, per_user)
                wctx = await prepared(w, aiouow, n, ctx)
                gc.collect()
                res.profiles[(backend.label, w.id)] = await profile_run(lambda w=w, c=wctx: w.run(aiouow, n, c))
                log(f"  {backend.label:<10} {w.id}  profiled")
    pair = [s for s in systems if s.name in ("raw", "aiouow")]
    for size in extras.scaling:
        sized = make_context(size)
        for w in (x for x in WORKLOADS if x.id in ("W1", "W2")):
            for r in range(-1, extras.scaling_runs):
                for s in pair if r % 2 else pair[::-1]:
                    measured = await time_one(backend, s, w, size, sized, timer)
                    if r >= 0 and measured is not None:
                        cell = res.scaling.setdefault((backend.label, w.id, s.name, size), ScalingCell())
                        cell.times.append(measured[0])
                        cell.gc.append(measured[1])
            log(f"  {backend.label:<10} {w.id}  N={size} scaled")


async def bench_backend(backend: Backend, systems: list[System], workloads: list[Workload], n: int, runs: int,
                        warmup: int, ctx: dict[str, Any], timer: GCTimer, log: Callable[[str], None],
                        extras: Extras | None = None) -> BackendResult:
    res = BackendResult(backend, systems)
    for s in systems:
        await s.open(backend)
    try:
        for wi, w in enumerate(workloads):
            for r in range(-warmup, runs):
                k = (r + wi) % len(systems)
                for s in systems[k:] + systems[:k]:  # interleaved, in an order that rotates
                    cell = res.cell(w.id, s.name)
                    if cell.na or cell.error:
                        continue
                    try:
                        measured = await time_one(backend, s, w, n, ctx, timer)
                    except NotAvailable as err:
                        cell.na = str(err)
                        continue
                    except Exception as err:  # noqa: BLE001 - reported, and the run fails at the end
                        cell.error = f"{type(err).__name__}: {err}"
                        log(f"  ! {backend.label} {w.id} {s.label}: {cell.error}")
                        log("    " + "    ".join(traceback.format_exception(err)[-4:]))
                        continue
                    if r >= 0 and measured is not None:
                        cell.times.append(measured[0])
                        cell.gc_shares.append(measured[1])
            log(f"  {backend.label:<10} {w.id}  " + "   ".join(
                f"{s.name} {_fmt_cell(res.cell(w.id, s.name))}" for s in systems))
        for s in systems:
            try:
                res.memory[s.name] = await measure_memory(backend, s, n)
            except Exception as err:  # noqa: BLE001
                res.cell("W2", s.name).error = f"memory measurement: {type(err).__name__}: {err}"
                log(f"  ! {backend.label} W2 memory {s.label}: {err}")
        if extras is not None:
            await run_extras(res, systems, workloads, n, ctx, timer, extras, log)
    finally:
        for s in systems:
            await s.close()
    await count_round_trips(res, [s.name for s in systems], workloads, n, ctx, log)
    return res


async def count_round_trips(res: BackendResult, wanted: list[str], workloads: list[Workload], n: int,
                            ctx: dict[str, Any], log: Callable[[str], None]) -> None:
    """The untimed counting pass (``roundtrips.py``): every system, opened afresh through the
    counter, runs each per-transaction workload twice, the second run counted (the first opens
    the connections and prepares the statements a long-running program has ready)."""
    todo = [w for w in workloads if w.transactions is not None]
    if not todo:
        return
    backend = res.backend
    async with contextlib.AsyncExitStack() as stack:
        if backend.pg:
            proxy = await stack.enter_async_context(RoundTripProxy(backend.raw_target))
            counted = dataclasses.replace(backend, aiouow_url=proxy.dsn, raw_target=proxy.dsn,
                                          sqlalchemy_url=proxy.dsn.replace("postgresql://", "postgresql+asyncpg://", 1))

            def count() -> int:
                return proxy.count
        else:
            calls = stack.enter_context(counting_sqlite_calls([backend.admin]))
            counted = backend

            def count() -> int:
                return calls.count
        systems, _ = make_systems(wanted, log)
        try:
            for s in systems:
                await s.open(counted)
            for w in todo:
                assert w.transactions is not None
                for s in systems:
                    cell = res.cell(w.id, s.name)
                    if cell.na or cell.error:
                        continue
                    try:
                        for counting in (False, True):
                            await backend.reset(*w.seed(n))
                            wctx = await prepared(w, s, n, ctx)
                            before = count()
                            await w.run(s, n, wctx)
                            if counting:
                                cell.round_trips = (count() - before) / w.transactions(n)
                    except Exception as err:  # noqa: BLE001 - reported; the timings stand
                        log(f"  ! {backend.label} {w.id} {s.label} round-trip count: {type(err).__name__}: {err}")
            log(f"  {backend.label:<10} round trips per transaction counted")
        finally:
            for s in systems:
                await s.close()


def _fmt_cell(cell: Cell) -> str:
    if cell.error:
        return "ERROR"
    if cell.na:
        return "n/a"
    m = cell.median
    return "-" if m is None else _ms(m)


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.0f} ms" if ms >= 100 else f"{ms:.1f} ms" if ms >= 10 else f"{ms:.2f} ms"


# -- reporting ------------------------------------------------------------------------
def render(results: list[BackendResult], workloads: list[Workload], n: int, runs: int) -> str:
    out: list[str] = []
    for res in results:
        b = res.backend
        names = [s.name for s in res.systems]
        labels = {s.name: s.label for s in res.systems}
        others = [x for x in names if x != "raw"]
        out.append(f"### {b.label} {b.server_version}: N = {n}, median of {runs} run{'s' if runs != 1 else ''}\n")
        head = ["workload", "raw"]
        for x in others:
            head += [labels[x], f"{labels[x]} / raw"]
        if "aiouow" in others:
            head.append("aiouow goal")
        head.append("GC share: " + " / ".join(labels[x] for x in names))
        counted = any(w.transactions is not None for w in workloads)
        if counted:
            head.append("round trips per transaction: " + " / ".join(labels[x] for x in names))
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
        for w in workloads:
            raw = res.cell(w.id, "raw").median if "raw" in names else None
            row = [f"{w.id} {w.title}", _fmt_cell(res.cell(w.id, "raw")) if "raw" in names else "-"]
            for x in others:
                c = res.cell(w.id, x)
                row.append(_fmt_cell(c))
                row.append(f"{c.median / raw:.2f}x" if c.median is not None and raw else "n/a" if c.na else "-")
            if "aiouow" in others:
                goal = w.goal[0] if b.pg else w.goal[1]
                c = res.cell(w.id, "aiouow")
                met = "" if c.median is None or not raw else " met" if c.median / raw <= goal else " not met"
                row.append(f"<= {goal:.1f}x{met}")
            shares = []
            for x in names:
                g = res.cell(w.id, x).gc_share
                shares.append("-" if g is None else f"{g * 100:.0f}%")
            row.append(" / ".join(shares))
            if counted:
                trips = [res.cell(w.id, x).round_trips for x in names]
                row.append("" if w.transactions is None else
                           " / ".join("-" if t is None else f"{t:.3g}" for t in trips))
            out.append("| " + " | ".join(row) + " |")
        out.append("")
        if res.memory:
            out.append(f"W2 memory on {b.label} (tracemalloc, bytes per loaded row; aiouow goal: <= 450 retained):\n")
            out.append("| system | peak during load | retained after load |")
            out.append("|---|---:|---:|")
            for x in names:
                if x in res.memory:
                    peak, kept = res.memory[x]
                    out.append(f"| {labels[x]} | {peak:.0f} B | {kept:.0f} B |")
            out.append("")
        notes = [f"- {labels[s.name]}: {s.note}" for s in res.systems if s.note]
        notes += [f"- {labels[x]} {wid}: n/a ({c.na})" for (wid, x), c in res.cells.items() if c.na]
        notes += [f"- {labels[x]} {wid}: ERROR {c.error}" for (wid, x), c in res.cells.items() if c.error]
        if notes:
            out += ["Notes:", "", *notes, ""]
    return "\n".join(out)


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=HERE.parent, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except Exception:  # noqa: BLE001
        return ""


def machine_facts(results: list[BackendResult]) -> list[str]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def version(pkg: str) -> str:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return "not installed"

    commit = _git("rev-parse", "--short", "HEAD")
    if commit and _git("status", "--porcelain", "--", "aiouow"):
        commit += " + uncommitted changes in aiouow/"
    facts = [
        f"- Date: {datetime.now().strftime('%Y-%m-%d %H:%M')}",
        f"- CPU: {cpu}, {os.cpu_count()} logical cores",
        f"- OS: {platform.platform()}",
        f"- Python: {platform.python_implementation()} {platform.python_version()}",
        f"- aiouow {version('aiouow')} (commit {commit or 'unknown'}), asyncpg {version('asyncpg')}, "
        f"aiosqlite {version('aiosqlite')}, SQLAlchemy {version('sqlalchemy')}",
    ]
    for res in results:
        b = res.backend
        where = "loopback TCP" if b.pg else "a file in a temporary directory, WAL, synchronous=NORMAL"
        facts.append(f"- {b.label} {b.server_version} ({where})")
    return facts


# -- command line ---------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=10_000, help="rows per workload (default 10000)")
    p.add_argument("--runs", type=int, default=5, help="timed runs per workload and system (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs before the timed ones (default 1)")
    p.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    p.add_argument("--pg-url", default=os.environ.get("AIOUOW_PG_URL", DEFAULT_PG_URL),
                   help="PostgreSQL URL (default: $AIOUOW_PG_URL or %(default)s)")
    p.add_argument("--systems", default="raw,aiouow,sqlalchemy",
                   help="comma-separated subset of raw,aiouow,sqlalchemy (raw is always included)")
    p.add_argument("--workloads", default=",".join(w.id for w in WORKLOADS), help="e.g. W1,W2")
    p.add_argument("--smoke", action="store_true",
                   help="N=200, 1 run, no warm-up, RESULTS.md not written: checks that everything still runs")
    p.add_argument("--output", default=str(HERE / "RESULTS.md"), help="where to write the results")
    p.add_argument("--no-write", action="store_true", help="print only")
    p.add_argument("--scaling", default="",
                   help="also run W1 and W2 (raw and aiouow) at these N, e.g. 1000,10000,100000, "
                        "and report time per row")
    p.add_argument("--scaling-runs", type=int, default=3, help="timed runs per N for --scaling (default 3)")
    p.add_argument("--profile", action="store_true",
                   help="profile one more aiouow run of every workload whose goal is not met")
    args = p.parse_args(argv)
    try:
        args.scaling = [int(x) for x in args.scaling.split(",") if x.strip()]
    except ValueError:
        p.error("--scaling takes comma-separated integers, e.g. 1000,10000,100000")
    if args.smoke:
        args.n, args.runs, args.warmup, args.no_write = min(args.n, 200), 1, 0, True
        args.scaling, args.scaling_runs = [x for x in args.scaling if x <= 1000], 1
    if args.n < 20:
        p.error("--n must be at least 20")
    return args


def make_systems(wanted: list[str], log: Callable[[str], None]) -> tuple[list[System], list[str]]:
    from .orm_aiouow import Aiouow
    from .orm_sqlalchemy import SQLAlchemy
    from .raw import Raw

    systems: list[System] = [Raw()]
    problems: list[str] = []
    if "aiouow" in wanted:
        systems.append(Aiouow())
    if "sqlalchemy" in wanted:
        why = SQLAlchemy.available()
        if why is None:
            systems.append(SQLAlchemy())
        else:
            problems.append(why)
    unknown = set(wanted) - {"raw", "aiouow", "sqlalchemy"}
    if unknown:
        problems.append(f"unknown systems: {', '.join(sorted(unknown))}")
    return systems, problems


async def amain(args: argparse.Namespace) -> int:
    def log(msg: str) -> None:
        print(msg, flush=True)

    wanted = [s.strip() for s in args.systems.split(",") if s.strip()]
    workloads = [w for w in WORKLOADS if w.id in {x.strip().upper() for x in args.workloads.split(",")}]
    if not workloads:
        log("no workload selected")
        return 2
    failures: list[str] = []
    systems_probe, problems = make_systems(wanted, log)
    failures += problems
    for p in problems:
        log(f"! {p}")
    ctx = make_context(args.n)
    timer = GCTimer()
    gc.callbacks.append(timer)
    in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    results: list[BackendResult] = []
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    log(f"aiouow benchmarks: N={args.n}, {args.runs} timed run(s) + {args.warmup} warm-up, "
        f"systems: {', '.join(s.name for s in systems_probe)}")
    try:
        for name in backends:
            if name == "sqlite":
                backend = await Backend.open_sqlite()
            else:
                try:
                    backend = await Backend.open_postgresql(args.pg_url)
                except Exception as err:  # noqa: BLE001
                    msg = f"PostgreSQL at {args.pg_url} is not reachable ({type(err).__name__}: {err})"
                    if args.backend == "postgresql" or in_ci:
                        failures.append(msg)
                    log(f"! {msg}; skipping PostgreSQL")
                    continue
            systems, _ = make_systems(wanted, log)  # fresh objects per backend
            try:
                extras = Extras(args.scaling, args.scaling_runs, args.profile)
                results.append(await bench_backend(backend, systems, workloads, args.n, args.runs,
                                                   args.warmup, ctx, timer, log, extras))
            finally:
                await backend.close()
    finally:
        gc.callbacks.remove(timer)
    table = render(results, workloads, args.n, args.runs)
    scaling = render_scaling({k: v for r in results for k, v in r.scaling.items()}, args.scaling,
                             args.scaling_runs)
    profiles = render_profiles({k: v for r in results for k, v in r.profiles.items()})
    table = "\n".join(x for x in (table, scaling, profiles) if x)
    facts = machine_facts(results)
    log("\n" + table)
    log("\n".join(facts))
    for res in results:
        for (wid, x), c in res.cells.items():
            if c.error:
                failures.append(f"{res.backend.label} {wid} {x}: {c.error}")
    if not args.no_write and results:
        text = (
            "# Benchmark results\n\n"
            "Written by `python -m benchmarks` (see `benchmarks/run.py` for what is measured and how, and\n"
            "issue 6 for the workloads and goals). Ratios are to the raw driver doing the same work; lower is\n"
            "better. GC share: the part of each timed run spent in Python's cyclic garbage collector.\n\n"
            "How each system runs (details in the modules' docstrings): **raw** is asyncpg (a pool of 10,\n"
            "`fetchmany` with RETURNING and `executemany` for writes, `fetch`, one `fetchrow` per lookup) and\n"
            "aiosqlite (one connection, `executemany`, `execute_fetchall`, multi-row INSERT ... RETURNING for\n"
            "W1's keys, an asyncio lock around W6's transactions). Raw updates (W3) and deletes (W7) are\n"
            "`executemany`, one statement per row, as issue 6 defines raw; aiouow sends one set-based statement\n"
            "per table on PostgreSQL, which is why it can come out below 1x there. **aiouow** uses only its\n"
            "public API with default settings. **SQLAlchemy** is `AsyncSession` as its documentation shows it\n"
            "(`pool_size=10, max_overflow=0` on PostgreSQL like aiouow's pool, its default pool on SQLite),\n"
            "relationships with `passive_deletes=True`, W1 through the relationship (`User(posts=[Post()])`).\n"
            "Every system applies the same SQLite PRAGMAs. The machine may be shared with other work, so\n"
            "small differences are noise.\n\n"
            f"Command: `python -m benchmarks {' '.join(sys.argv[1:])}`\n\n"
            + "\n".join(facts) + "\n\n" + table + "\n"
        )
        Path(args.output).write_text(text + _kept_analysis(Path(args.output)))
        log(f"\nwrote {args.output}")
    if failures:
        log("\nFAILED:\n  " + "\n  ".join(failures))
        return 1
    return 0


#: RESULTS.md keeps what follows this line from one run to the next (hand-written analysis)
ANALYSIS_MARKER = "<!-- analysis: written by hand, kept when the results above are rewritten -->"


def _kept_analysis(path: Path) -> str:
    try:
        old = path.read_text()
    except OSError:
        return ""
    at = old.find(ANALYSIS_MARKER)
    return "" if at < 0 else "\n" + old[at:]


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(amain(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
