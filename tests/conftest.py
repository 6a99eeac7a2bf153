"""Fixtures: every behaviour test runs on SQLite and on PostgreSQL.

PostgreSQL is found through AIOUOW_PG_URL (default: the local trust-auth
server). Without it the PostgreSQL half skips with the reason; under CI=true
a missing PostgreSQL fails the run instead.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import pytest

import aiouow
from aiouow import Model, create_engine

from . import models  # noqa: F401  (registers the tables)
from .reliability import ReliabilityLog, log_of, write_report

PG_URL = os.environ.get("AIOUOW_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

_pg_state: dict[str, object] = {}


async def _pg_available() -> str | None:
    if "reason" not in _pg_state:
        import asyncpg

        try:
            conn = await asyncio.wait_for(asyncpg.connect(PG_URL), 5)
            await conn.close()
            _pg_state["reason"] = None
        except Exception as err:  # noqa: BLE001 - any failure means "not available"
            _pg_state["reason"] = f"PostgreSQL at {PG_URL} is not reachable ({type(err).__name__}: {err})"
    return _pg_state["reason"]  # type: ignore[return-value]


async def require_pg() -> None:
    """Skip the calling test when PostgreSQL is unreachable, or fail it under CI=true."""
    reason = await _pg_available()
    if reason is not None:
        if IN_CI:
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)


_PG_BASE, _, _PG_DB = PG_URL.partition("?")[0].rpartition("/")


async def empty_pg_database(suffix: str) -> str:
    """The URL of ``<test db>_<suffix>`` beside the test database, made if missing and emptied
    of every schema (public made again): tests that need a database of their own get one on a
    fresh server. Emptied rather than dropped: dropping makes the server checkpoint, seconds
    on a busy machine."""
    import asyncpg

    name = f"{_PG_DB}_{suffix}"
    admin = await asyncpg.connect(PG_URL)
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = f"{_PG_BASE}/{name}"
    conn = await asyncpg.connect(url)
    try:
        for (schema,) in await conn.fetch("SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
                                          "AND nspname != 'information_schema'"):
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await conn.execute("CREATE SCHEMA public")
    finally:
        await conn.close()
    return url


def _tables() -> list:
    return Model.metadata.sorted_tables()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                 ) -> AsyncIterator[aiouow.Engine]:
    """A session-wide engine per backend, with the test schema created."""
    if request.param == "postgresql":
        await require_pg()
        eng = create_engine(PG_URL, pool_size=5)
    else:
        path = tmp_path_factory.mktemp("sqlite") / "test.db"
        eng = create_engine(f"sqlite:///{path}")
    await Model.metadata.drop_all(eng)
    await Model.metadata.create_all(eng)
    yield eng
    await Model.metadata.drop_all(eng)
    await eng.dispose()


@pytest.fixture
async def db(engine: aiouow.Engine) -> AsyncIterator[aiouow.Engine]:
    """The engine with every test table emptied (and sequences reset) first."""
    tables = _tables()
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in tables)
            await conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        else:
            for t in reversed(tables):
                await conn.exec_driver_sql(f'DELETE FROM "{t.name}"')
    yield engine
    assert engine.pool.checked_out == 0, "a test left a connection checked out"


class StatementLog(logging.Handler):
    """Collects the statements an engine logs (``echo`` is switched on while active)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())

    @property
    def statements(self) -> list[str]:
        """SQL statements, transaction control (BEGIN/COMMIT/ROLLBACK/SAVEPOINT) excluded."""
        control = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")
        return [r for r in self.records if not r.startswith(control)]

    def count(self, prefix: str = "") -> int:
        return sum(1 for s in self.statements if s.upper().startswith(prefix.upper()))

    def clear(self) -> None:
        self.records.clear()


@contextmanager
def capture_sql(engine: aiouow.Engine) -> Iterator[StatementLog]:
    """``with capture_sql(engine) as log:`` then ``log.records`` / ``log.count("SELECT")``."""
    logger = logging.getLogger("aiouow.engine")
    handler = StatementLog()
    old_level, old_echo = logger.level, engine.echo
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    engine.echo = True
    try:
        yield handler
    finally:
        engine.echo = old_echo
        logger.removeHandler(handler)
        logger.setLevel(old_level)


@pytest.fixture
def sql() -> object:
    """The ``capture_sql`` context manager, as a fixture for convenience."""
    return capture_sql


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    write_report(session.config, int(exitstatus))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Reliability tests' outcomes go into the report too: a failure is never hidden there."""
    outcome = yield
    log_of(item.config).note(outcome.get_result())  # type: ignore[attr-defined]


@pytest.fixture
def reliability(request: pytest.FixtureRequest) -> ReliabilityLog:
    """Where a reliability test records what it tried and what held (see tests/reliability.py)."""
    log = log_of(request.config)
    backend = request.node.callspec.params.get("engine", "-") if hasattr(request.node, "callspec") else "-"
    log.backend = str(backend)
    return log
