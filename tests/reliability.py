"""Figures of the reliability tests, gathered into ``docs/RELIABILITY.md``.

A reliability test (marked ``@pytest.mark.reliability``) takes the ``reliability`` fixture and
records what it tried, how many cases it ran and what held::

    reliability.record("Connection loss", "backend terminated during a flush",
                       cases=12, held="OperationalError; pool discarded it; next session worked",
                       figures={"recovery_ms": 4.1})

The figures of one run are written out by::

    python -m pytest -m reliability --reliability-report docs/RELIABILITY.md

Recording never changes a test's outcome; without ``--reliability-report`` nothing is written.
The report opens with a summary (per section: what it tries, tests, cases per backend, failures),
then one table per section.  A section's introduction comes from :data:`INTRODUCTIONS` (the
sections of issue 13), or from ``reliability.describe(section, text)`` for a new one.
Reliability tests that failed in the run are listed, so a report never hides a failure.
"""

from __future__ import annotations

import datetime as dt
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

COMMAND = "python -m pytest -m reliability --reliability-report docs/RELIABILITY.md"

#: what each section tries, by the start of its name (case-insensitive), in report order
INTRODUCTIONS: dict[str, str] = {
    "Connection loss": (
        "PostgreSQL backends terminated (`pg_terminate_backend` from another connection) before, "
        "during and after flushes and commits, and every pooled connection at once: the error must be "
        "`OperationalError` (then `PendingRollbackError`), the broken connection discarded, the next "
        "session working without a restart, and the committed data exactly what was committed."),
    "Constraint failure": (
        "Large flushes (1000 rows; COPY-sized batches on PostgreSQL) one of whose rows violates a unique "
        "or foreign-key constraint, alone or mixed with updates and deletes: nothing may be committed "
        "(checked with raw SQL on another connection), the `IntegrityError` must name the constraint and "
        "the table, the session must require `rollback()`, and the fixed retry must commit every row."),
    "Load": (
        "Many concurrent tasks running short transactions through `scoped_session` on a small pool, "
        "and a deliberately tiny pool with `pool_timeout`: every transaction completes with the expected "
        "row counts and no connection leaks; a timeout is a clear error and leaves the pool healthy. "
        "Throughput is reported, not asserted."),
    "Bad input": (
        "Wrong types, None for NOT NULL, unknown names, over-long or NUL strings, key changes, misuse of "
        "transient or closed-session objects, huge IN lists, injection-shaped strings and odd identifiers: "
        "each a clear `aiouow.exc` error naming what is wrong (or stored verbatim), with no partial write."),
    "Random work with faults": (
        "A hypothesis state machine plays random session work (add, modify, delete, flush, commit, "
        "rollback, SAVEPOINTs, expire, refresh, get, merge, expunge, queries) and injects faults: real "
        "constraint violations, driver exceptions raised at a chosen statement, and real task "
        "cancellations mid-statement (mid-COMMIT too). After every step the committed rows (raw SQL, "
        "another connection) must equal a plain model, no connection may be left checked out beyond the "
        "session's own, and every object must be in the state the model says."),
    "Huge IN lists": (
        "`in_()` / `not_in()` of 100 000 keys (and on SQLite more than its parameter limit) in selects, "
        "updates and deletes, and an ORM flush deleting 20 000 objects: every statement correct, one "
        "statement per query, whatever the number of keys."),
    "Open sessions": (
        "A second session opened while a first one holds an open transaction (that has read, or has "
        "written), on the same task or another: it reads at once and sees committed data only, never "
        "waiting for `pool_timeout`; on `sqlite:///:memory:` (one connection) a read behind an open "
        "*write* transaction is the one case that waits, and is refused with a message naming why."),
    "Statement fuzz": (
        "Hypothesis-generated values of every column type of `aiouow.types` inserted (ORM flush and core "
        "executemany) and selected back (fresh session, core select, `WHERE v = value`) on both backends: "
        "every value round-trips exactly; values a backend cannot hold are refused with an `aiouow.exc` "
        "error naming the attribute, and nothing is written."),
}


@dataclass(slots=True)
class Figure:
    section: str
    tried: str
    cases: int
    held: str
    backend: str
    figures: dict[str, float | int | str] = field(default_factory=dict)


@dataclass(slots=True)
class ReliabilityLog:
    """What the reliability tests of one run recorded; the ``reliability`` fixture's value."""

    entries: list[Figure] = field(default_factory=list)
    backend: str = "-"
    #: section -> introduction, for sections :data:`INTRODUCTIONS` does not know
    intros: dict[str, str] = field(default_factory=dict)
    #: node ids of reliability tests that failed (or errored) in this run
    failed: list[str] = field(default_factory=list)
    #: reliability tests that passed, failed or were skipped, by outcome
    outcomes: dict[str, int] = field(default_factory=dict)

    def record(self, section: str, tried: str, *, cases: int, held: str,
               figures: dict[str, float | int | str] | None = None) -> None:
        self.entries.append(Figure(section, tried, cases, held, self.backend, dict(figures or {})))

    def describe(self, section: str, text: str) -> None:
        """Say what a section not in :data:`INTRODUCTIONS` tries (shown under its heading)."""
        self.intros[section] = text

    def note(self, report: pytest.TestReport) -> None:
        """Count a reliability test's outcome (called for every test report)."""
        if "reliability" not in report.keywords:
            return
        if report.when == "call" or (report.when == "setup" and not report.passed):
            outcome = "failed" if report.failed else report.outcome
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
            if report.failed:
                self.failed.append(report.nodeid)
        elif report.when == "teardown" and report.failed:
            self.failed.append(f"{report.nodeid} (teardown)")


_KEY = pytest.StashKey[ReliabilityLog]()


def log_of(config: pytest.Config) -> ReliabilityLog:
    if _KEY not in config.stash:
        config.stash[_KEY] = ReliabilityLog()
    return config.stash[_KEY]


def _order(section: str) -> int:
    for i, known in enumerate(INTRODUCTIONS):
        if section.lower().startswith(known.lower()):
            return i
    return len(INTRODUCTIONS)


def _intro(log: ReliabilityLog, section: str) -> str:
    if section in log.intros:
        return log.intros[section]
    for known, text in INTRODUCTIONS.items():
        if section.lower().startswith(known.lower()):
            return text
    return ""


def _cell(text: object) -> str:
    """Text for a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _value(v: float | int | str) -> str:
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) >= 1000 else f"{v:.4g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _revision() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=5, cwd=Path(__file__).parent, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def render(log: ReliabilityLog, *, outcome: str) -> str:
    sections: dict[str, list[Figure]] = {}
    for entry in log.entries:
        sections.setdefault(entry.section, []).append(entry)
    ordered = sorted(sections, key=_order)  # stable: unknown sections keep their recorded order
    backends = sorted({e.backend for e in log.entries})
    counts = ", ".join(f"{n} {k}" for k, n in sorted(log.outcomes.items())) or "none counted"
    lines = [
        "# Reliability",
        "",
        "What aiouow was put through under faults, load and bad input, how many cases ran, and what held.",
        f"Regenerate with `{COMMAND}`",
        "(PostgreSQL from `AIOUOW_PG_URL`); the file is written by that run, do not edit it by hand.",
        "",
        f"Run on {dt.date.today().isoformat()} at revision {_revision()}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.machine()}; backends: {', '.join(backends) or 'none'}.",
        f"Outcome: {outcome}; reliability tests: {counts}.",
        "",
    ]
    if log.failed:
        lines += ["**Failed in this run** (their figures are missing or partial):", ""]
        lines += [f"- `{nodeid}`" for nodeid in log.failed]
        lines.append("")
    lines += ["## Summary", "", "| section | tests | cases | " + " | ".join(f"cases ({b})" for b in backends) + " |",
              "|---|---:|---:|" + "---:|" * len(backends)]
    for section in ordered:
        entries = sections[section]
        per = [sum(e.cases for e in entries if e.backend == b) for b in backends]
        lines.append(f"| [{_cell(section)}](#{_anchor(section)}) | {len(entries)} | "
                     f"{sum(e.cases for e in entries):,} | " + " | ".join(f"{n:,}" for n in per) + " |")
    lines.append("")
    for section in ordered:
        entries = sections[section]
        lines += [f"## {section}", ""]
        intro = _intro(log, section)
        if intro:
            lines += [intro, ""]
        by_backend = ", ".join(f"{sum(e.cases for e in entries if e.backend == b):,} on {b}"
                               for b in backends if any(e.backend == b for e in entries))
        lines += [f"{len(entries)} tests, {sum(e.cases for e in entries):,} cases ({by_backend}).", ""]
        lines += ["| backend | what was tried | cases | what held | figures |", "|---|---|---:|---|---|"]
        for e in entries:
            figs = "<br>".join(f"{_cell(k)}: {_cell(_value(v))}" for k, v in e.figures.items())
            lines.append(f"| {e.backend} | {_cell(e.tried)} | {e.cases:,} | {_cell(e.held)} | {figs} |")
        lines.append("")
    if not sections:
        lines += ["No reliability test recorded anything in this run.", ""]
    return "\n".join(lines)


def _anchor(title: str) -> str:
    """GitHub's anchor of a heading."""
    keep = [c for c in title.lower() if c.isalnum() or c in " -_"]
    return "".join(keep).replace(" ", "-")


def write_report(config: pytest.Config, exitstatus: int) -> None:
    target = config.getoption("reliability_report", None)
    if not target:
        return
    outcome = "all passed" if exitstatus == 0 else f"pytest exit status {exitstatus}"
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(log_of(config), outcome=outcome), encoding="utf-8")
