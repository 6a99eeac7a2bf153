"""Every code block of README.md and docs/*.md is type-checked and run, on SQLite and on PostgreSQL,
so that no example rots (the conventions: tests/doc_examples.py and docs/development.md)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from . import doc_examples as ex
from .conftest import IN_CI, PG_URL, _pg_available

PAGES = {source: ex.blocks(source) for source in ex.SOURCES}
_PG_BASE, _PG_DB = PG_URL.rsplit("/", 1)
# beside the test database (not a name another checkout's test database could have: it is emptied)
DOCS_DB = f"{_PG_DB.split('?')[0]}_examples"


def test_every_marker_is_known_and_skips_are_rare() -> None:
    skipped = [b for page in PAGES.values() for b in page if b.kind == "skip"]
    assert len(skipped) <= 2, f"keep skips rare: {[b.where for b in skipped]}"
    runnable = [b for page in PAGES.values() for b in page if b.kind in ("complete", "prelude")]
    assert len(runnable) >= 25  # the extraction found the examples (a broken pattern finds none)


def test_examples_type_check(tmp_path: Path) -> None:
    status, output = ex.typecheck(ex.all_blocks(), tmp_path)
    assert status == 0, output


async def _empty_pg_database() -> str:
    """``<test db>_examples``, made once and emptied of every schema (public made again)."""
    admin = await asyncpg.connect(PG_URL)
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DOCS_DB):
            await admin.execute(f'CREATE DATABASE "{DOCS_DB}"')
    finally:
        await admin.close()
    url = f"{_PG_BASE}/{DOCS_DB}"
    conn = await asyncpg.connect(url)
    try:
        for (schema,) in await conn.fetch("SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
                                          "AND nspname != 'information_schema'"):
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await conn.execute("CREATE SCHEMA public")
    finally:
        await conn.close()
    return url


def _runnable(page: list[ex.Block]) -> bool:
    return any(b.kind in ("complete", "prelude", "shell") for b in page)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@pytest.mark.parametrize("source", [s for s, page in PAGES.items() if _runnable(page)],
                         ids=lambda s: s.name)
async def test_examples_run(source: Path, backend: str, tmp_path: Path) -> None:
    url: str | None = None
    empty = None
    if backend == "postgresql":
        reason = await _pg_available()
        if reason is not None:
            if IN_CI:
                pytest.fail(f"CI=true but {reason}")
            pytest.skip(reason)
        url = await _empty_pg_database()
        loop = asyncio.get_running_loop()

        def empty() -> None:  # called from the worker thread below
            asyncio.run_coroutine_threadsafe(_empty_pg_database(), loop).result()

    failures = await asyncio.to_thread(ex.run_page, PAGES[source], url, tmp_path, empty)
    assert not failures, "\n\n".join(failures)
