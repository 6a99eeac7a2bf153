"""What each mypyc-compiled module gains: the bulk workloads on pure Python, on all modules
compiled, and on all but one (``--mode without``, the default) or on each module alone
(``--mode alone``).

    python -m benchmarks.compiled                       # N=5000, 3 rounds, both backends
    python -m benchmarks.compiled --mode alone --n 2000 --rounds 2 --backend sqlite

The modules are one mypyc group, and calls between compiled modules are native calls, so a
module's gain shows best as what the group loses without it.

Every variant is its own copy of the package in a temporary folder, built with
``setup.py build_ext --inplace`` (``AIOUOW_COMPILE_ONLY`` picks the module), and is measured in a
fresh interpreter started in that folder, so one process never mixes compiled and pure copies
of one module. A round measures every variant once, in an order that rotates from round to
round; each measurement takes the process CPU time of aiouow and of the raw driver, interleaved
(the raw figure is the same code in every variant, and shows how much the machine drifted). The
table gives the median of the rounds. Needs mypyc (``pip install mypy``, or the ``lint`` extra)
and a C compiler. Prints the table, and with ``--output`` writes it to that file in place of the
section between the markers (or at its end).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ("W1", "W2", "W3", "W7")
MODES = ("alone", "without")


def _markers(mode: str) -> tuple[str, str]:
    return (f"<!-- compiled modules ({mode}): written by python -m benchmarks.compiled -->",
            f"<!-- end of compiled modules ({mode}) -->")


def _sources() -> tuple[str, ...]:
    import runpy

    return tuple(runpy.run_path(str(ROOT / "aiouow" / "_compiled.py"))["COMPILED_SOURCES"])


def _copy_tree(into: Path) -> None:
    ignore = shutil.ignore_patterns("*.so", "*.pyd", "__pycache__", "build")
    for name in ("aiouow", "benchmarks"):
        shutil.copytree(ROOT / name, into / name, ignore=ignore)
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, into / name)


def build(variant: str, sources: tuple[str, ...], into: Path) -> None:
    """A copy of the package in ``into`` with ``sources`` compiled (none for "pure")."""
    _copy_tree(into)
    if not sources:
        return
    env = {**os.environ, "AIOUOW_COMPILE_ONLY": ",".join(sources)}
    env.pop("AIOUOW_PURE_PYTHON", None)
    done = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=into, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0 or not list((into / "aiouow").rglob("*.so")):
        raise SystemExit(f"building {variant} failed:\n{done.stdout}\n{done.stderr}")


async def _cpu_time_one(backend: Any, system: Any, w: Any, n: int, ctx: dict[str, Any]) -> float:
    """The process CPU time of one run of ``w`` (seeded and checked as benchmarks.run does).

    CPU time rather than wall time: what compiling changes is the client's Python work, and on a
    shared machine CPU time moves far less with other load than wall time does. It counts every
    thread of the process (aiosqlite's worker included), not the PostgreSQL server's work.
    """
    import gc

    from .run import prepared

    users, per_user = w.seed(n)
    await backend.reset(users, per_user)
    ctx = await prepared(w, system, n, ctx)
    gc.collect()
    t0 = time.process_time()
    value = await w.run(system, n, ctx)
    elapsed = time.process_time() - t0
    if value != w.expected(n):
        raise AssertionError(f"{w.id} returned {value}, expected {w.expected(n)}")
    if w.check is not None and (problem := await w.check(backend, n)):
        raise AssertionError(f"{w.id}: {problem}")
    return elapsed


async def _child(args: argparse.Namespace) -> dict[str, Any]:
    """One measurement of the variant this interpreter runs (started in its folder)."""
    from aiouow._compiled import compiled_modules

    from .run import WORKLOADS as ALL_WORKLOADS
    from .run import make_context, make_systems
    from .schema import Backend

    out: dict[str, Any] = {"compiled": list(compiled_modules()), "times": {}}
    ctx = make_context(args.n)
    workloads = [w for w in ALL_WORKLOADS if w.id in WORKLOADS]
    for name in args.backends.split(","):
        backend = await (Backend.open_sqlite() if name == "sqlite" else Backend.open_postgresql(args.pg_url))
        systems, _ = make_systems(["aiouow"], print)
        try:
            for s in systems:
                await s.open(backend)
            for w in workloads:
                runs: dict[str, list[float]] = {s.name: [] for s in systems}
                for r in range(-1, args.runs):  # one warm-up run
                    for s in systems if r % 2 else systems[::-1]:
                        cpu = await _cpu_time_one(backend, s, w, args.n, ctx)
                        if r >= 0:
                            runs[s.name].append(cpu)
                out["times"][f"{name} {w.id}"] = {k: statistics.median(v) for k, v in runs.items()}
        finally:
            for s in systems:
                await s.close()
            await backend.close()
    return out


def _measure(folder: Path, args: argparse.Namespace, backends: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("AIOUOW_PURE_PYTHON", "PYTHONPATH")}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.compiled", "--child", "--n", str(args.n), "--runs", str(args.runs),
         "--backends", backends, "--pg-url", args.pg_url],
        cwd=folder, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"measuring in {folder} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def render(results: dict[str, list[dict[str, Any]]], columns: list[str], args: argparse.Namespace) -> str:
    def median_ms(variant: str, col: str, system: str) -> float:
        return statistics.median(r["times"][col][system] for r in results[variant]) * 1000

    begin, end = _markers(args.mode)
    lines = [
        begin,
        f"aiouow's process CPU time in ms (median of {args.rounds} rounds, each the median of {args.runs} runs; "
        f"N = {args.n}) and its change from pure Python; the last line is the raw driver's CPU time in the same "
        "rounds (on PostgreSQL the server's work is not in these figures).",
        "",
        "| variant | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for variant in results:
        cells = []
        for col in columns:
            ms, pure = median_ms(variant, col, "aiouow"), median_ms("pure", col, "aiouow")
            cells.append(f"{ms:.1f}" if variant == "pure" else f"{ms:.1f} ({(ms / pure - 1) * 100:+.0f}%)")
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    lines.append("| raw driver | " + " | ".join(f"{median_ms('pure', c, 'raw'):.1f}" for c in columns) + " |")
    lines.append(end)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--runs", type=int, default=3, help="timed runs per workload in one measurement")
    p.add_argument("--rounds", type=int, default=3, help="measurements of every variant")
    p.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    p.add_argument("--pg-url", default=os.environ.get("AIOUOW_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    p.add_argument("--mode", choices=MODES, default="without",
                   help="without: all modules compiled but one, for each (what each adds to the group); "
                        "alone: each module compiled by itself")
    p.add_argument("--output", help="a Markdown file whose compiled-modules section is replaced")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--backends", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        import asyncio

        print(json.dumps(asyncio.run(_child(args))))
        return 0
    backends = "sqlite,postgresql" if args.backend == "both" else args.backend
    sources = _sources()
    variants: dict[str, tuple[str, ...]] = {"pure": ()}
    for src in sources:
        short = src.removeprefix("aiouow/")
        if args.mode == "alone":
            variants[f"{short} alone"] = (src,)
        else:
            variants[f"all but {short}"] = tuple(x for x in sources if x != src)
    variants["all compiled"] = sources
    results: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="aiouow-compiled-") as tmp:
        folders = {}
        for i, (variant, srcs) in enumerate(variants.items()):
            folders[variant] = Path(tmp) / f"v{i}"
            print(f"building {variant}", flush=True)
            build(variant, srcs, folders[variant])
        names = list(variants)
        for rnd in range(args.rounds):
            order = names[rnd % len(names):] + names[:rnd % len(names)]
            for variant in order:
                got = _measure(folders[variant], args, backends)
                expected = sorted(s[:-3].replace("/", ".") for s in variants[variant])
                if sorted(got["compiled"]) != expected:
                    raise SystemExit(f"{variant}: the child ran {got['compiled']}, expected {expected}")
                results[variant].append(got)
                print(f"round {rnd + 1} {variant}: " + ", ".join(
                    f"{k} {v['aiouow'] * 1000:.1f}" for k, v in got["times"].items()), flush=True)
    columns = list(results["pure"][0]["times"])
    table = render(results, columns, args)
    print("\n" + table)
    if args.output:
        path = Path(args.output)
        text = path.read_text() if path.exists() else ""
        begin, end = _markers(args.mode)
        if begin in text and end in text:
            text = text[:text.index(begin)] + table + text[text.index(end) + len(end):]
        else:
            text = text.rstrip("\n") + "\n\n" + table + "\n"
        path.write_text(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
