"""Every code block of README.md and docs/*.md is type-checked and run, on SQLite and on PostgreSQL,
so that no example rots (the conventions: tests/doc_examples.py and docs/development.md)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from . import doc_examples as ex
from .conftest import empty_pg_database, require_pg

PAGES = {source: ex.blocks(source) for source in ex.SOURCES}


def test_every_marker_is_known_and_skips_are_rare() -> None:
    skipped = [b for page in PAGES.values() for b in page if b.kind == "skip"]
    assert len(skipped) <= 2, f"keep skips rare: {[b.where for b in skipped]}"
    runnable = [b for page in PAGES.values() for b in page if b.kind in ("complete", "prelude")]
    assert len(runnable) >= 25  # the extraction found the examples (a broken pattern finds none)


def test_examples_type_check(tmp_path: Path) -> None:
    status, output = ex.typecheck(ex.all_blocks(), tmp_path)
    assert status == 0, output


def _runnable(page: list[ex.Block]) -> bool:
    return any(b.kind in ("complete", "prelude", "shell") for b in page)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@pytest.mark.parametrize("source", [s for s, page in PAGES.items() if _runnable(page)],
                         ids=lambda s: s.name)
async def test_examples_run(source: Path, backend: str, tmp_path: Path) -> None:
    url: str | None = None
    empty = None
    if backend == "postgresql":
        await require_pg()
        url = await empty_pg_database("examples")
        loop = asyncio.get_running_loop()

        def empty() -> None:  # called from the worker thread below
            asyncio.run_coroutine_threadsafe(empty_pg_database("examples"), loop).result()

    failures = await asyncio.to_thread(ex.run_page, PAGES[source], url, tmp_path, empty)
    assert not failures, "\n\n".join(failures)
