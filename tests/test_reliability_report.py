"""The docs/RELIABILITY.md rendering of tests/reliability.py (no database)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .reliability import COMMAND, ReliabilityLog, render


def sample_log() -> ReliabilityLog:
    log = ReliabilityLog()
    log.backend = "sqlite"
    log.record("Random work with faults (x)", "machine", cases=40, held="model held", figures={"seconds": 1.25})
    log.record("Constraint failure mid-flush", "1000 rows | one bad", cases=1, held="nothing written",
               figures={"rows": 12000, "ms": 3.14159})
    log.backend = "postgresql"
    log.record("Constraint failure mid-flush", "1000 rows by COPY", cases=2, held="nothing written")
    log.record("Something new", "a new kind of check", cases=3, held="it held")
    log.describe("Something new", "What the new section tries.")
    return log


def test_report_has_a_summary_intros_totals_and_escaped_cells() -> None:
    text = render(sample_log(), outcome="all passed")
    assert COMMAND in text and "Outcome: all passed" in text
    summary = text[text.index("## Summary"):text.index("## Constraint")]
    assert "| section | tests | cases | cases (postgresql) | cases (sqlite) |" in summary
    assert "[Constraint failure mid-flush](#constraint-failure-mid-flush) | 2 | 3 | 2 | 1 |" in summary
    # sections in the order, unknown ones last; each with its introduction and totals
    assert text.index("## Constraint") < text.index("## Random work") < text.index("## Something new")
    assert "must name the constraint" in text and "What the new section tries." in text
    assert "2 tests, 3 cases (2 on postgresql, 1 on sqlite)." in text
    assert "1000 rows \\| one bad" in text  # a pipe does not break the table
    assert "rows: 12,000<br>ms: 3.142" in text
    assert "Failed in this run" not in text


def test_report_lists_failed_reliability_tests() -> None:
    log = sample_log()
    log.failed.append("tests/test_x.py::test_y[sqlite]")
    log.outcomes = {"passed": 3, "failed": 1}
    text = render(log, outcome="pytest exit status 1")
    assert "**Failed in this run**" in text and "`tests/test_x.py::test_y[sqlite]`" in text
    assert "reliability tests: 1 failed, 3 passed" in text


def test_an_empty_run_says_so() -> None:
    assert "No reliability test recorded anything" in render(ReliabilityLog(), outcome="all passed")


def test_report_written_through_pytest(tmp_path: Path) -> None:
    """The --reliability-report option of this suite's conftest writes the file (creating its
    directory) and lists a failed reliability test; run as a pytest of its own, on a copy."""
    root = Path(__file__).parent
    (tmp_path / "conftest.py").write_text((root / "conftest.py").read_text().replace(
        "from . import models  # noqa: F401  (registers the tables)\n", "").replace(
        "from .reliability import", "from reliability import"))
    (tmp_path / "reliability.py").write_text((root / "reliability.py").read_text())
    options = (root.parent / "conftest.py").read_text()  # the rootdir's: --reliability-report
    (tmp_path / "conftest.py").write_text((tmp_path / "conftest.py").read_text() + "\n" + options.replace(
        "from __future__ import annotations\n", ""))
    (tmp_path / "test_it.py").write_text("""
import pytest

@pytest.mark.reliability
def test_ok(reliability):
    reliability.record("Load", "tasks", cases=5, held="all done", figures={"tx_per_s": 812.5})

@pytest.mark.reliability
def test_bad(reliability):
    assert False
""")
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    reliability: x\n")
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "--reliability-report", "docs/RELIABILITY.md"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 1 and "1 failed, 1 passed" in run.stdout, run.stdout + run.stderr
    text = (tmp_path / "docs" / "RELIABILITY.md").read_text()
    assert "| - | tasks | 5 | all done | tx_per_s: 812.5 |" in text
    assert "test_it.py::test_bad" in text and "pytest exit status 1" in text


def test_every_section_the_suite_records_has_an_introduction() -> None:
    """A section of docs/RELIABILITY.md says what it tries: each one the reliability tests record
    (by a literal, or a module's SECTION) is one of INTRODUCTIONS."""
    import re

    from .reliability import _intro

    sections: set[str] = set()
    for path in Path(__file__).parent.glob("test_reliability_*.py"):
        source = path.read_text()
        sections |= set(re.findall(r'reliability\.record\(\s*"([^"]+)"', source))
        sections |= set(re.findall(r'^SECTION = "([^"]+)"', source, re.M))
    assert len(sections) >= 8, sections
    missing = sorted(s for s in sections if not _intro(ReliabilityLog(), s))
    assert not missing, f"sections without an introduction in tests/reliability.py: {missing}"
