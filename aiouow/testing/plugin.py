"""pytest plugin (registered through the ``pytest11`` entry point).

Fixtures:

- ``aiouow_url``: the database URL of the run: the ``--aiouow-url`` option, else
  the ``aiouow_url`` ini key, else the ``AIOUOW_TEST_URL`` environment variable,
  else ``None`` (then ``aiouow_engine`` uses an SQLite file in the test's
  temporary directory).
- ``aiouow_engine``: an engine on that database (per test, disposed afterwards),
  with the tables of ``aiouow.Model.metadata`` created (``CREATE TABLE IF NOT
  EXISTS``, once per database and run; ini ``aiouow_create_all = false`` turns
  that off).
- ``aiouow_session``: a session inside a transaction rolled back after the test
  (``aiouow.testing.transactional_session``): the code under test may commit and
  roll back as it likes, nothing stays in the database.

The fixtures are async: run the tests with pytest-asyncio (``asyncio_mode =
auto`` or ``@pytest.mark.asyncio``) or with anyio's plugin on its asyncio backend.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol, TypeVar, cast

import pytest

ENV_VAR = "AIOUOW_TEST_URL"
"""The environment variable read for the test database's URL when neither the option nor the ini key gives one."""

_F = TypeVar("_F", bound=Callable[..., Any])


class _FixtureDecorator(Protocol):
    def __call__(self, fn: _F, /) -> _F: ...


try:  # pytest-asyncio's decorator lets the fixtures work in its strict mode too
    import pytest_asyncio

    _async_fixture = cast(_FixtureDecorator, pytest_asyncio.fixture)
except ImportError:  # anyio's plugin runs plain async fixtures for anyio tests
    _async_fixture = cast(_FixtureDecorator, pytest.fixture)

_created = pytest.StashKey[set[str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the ``--aiouow-url`` option and the ``aiouow_url`` / ``aiouow_create_all`` ini keys."""
    group = parser.getgroup("aiouow", "aiouow test database")
    group.addoption(
        "--aiouow-url",
        dest="aiouow_url",
        default=None,
        metavar="URL",
        help=f"database URL for the aiouow_engine / aiouow_session fixtures (else the aiouow_url ini key, "
             f"else ${ENV_VAR}, else an SQLite file in each test's temporary directory)",
    )
    parser.addini("aiouow_url", "database URL for the aiouow_engine / aiouow_session fixtures", default=None)
    parser.addini("aiouow_create_all", "create the tables of aiouow.Model.metadata in the test database",
                  type="bool", default=True)


def configured_url(config: pytest.Config) -> str | None:
    """The URL configured for the run (option, ini key, environment variable), or None."""
    url = config.getoption("aiouow_url", default=None) or config.getini("aiouow_url") or os.environ.get(ENV_VAR)
    return url or None


@pytest.fixture(scope="session")
def aiouow_url(pytestconfig: pytest.Config) -> str | None:
    """The configured database URL (None: an SQLite file per test)."""
    return configured_url(pytestconfig)


@_async_fixture
async def aiouow_engine(aiouow_url: str | None, tmp_path: Any, pytestconfig: pytest.Config) -> AsyncIterator[Any]:
    """An engine on the test database, disposed after the test."""
    from .. import Model, create_engine

    url = aiouow_url or f"sqlite:///{tmp_path / 'aiouow_test.db'}"
    engine = create_engine(url, pool_size=2)
    try:
        if pytestconfig.getini("aiouow_create_all"):
            done = pytestconfig.stash.setdefault(_created, set())
            if aiouow_url is None or url not in done:
                await Model.metadata.create_all(engine)
                done.add(url)
        yield engine
    finally:
        await engine.dispose()


@_async_fixture
async def aiouow_session(aiouow_engine: Any) -> AsyncIterator[Any]:
    """A session whose work is rolled back after the test, whatever it committed."""
    from . import transactional_session

    async with transactional_session(aiouow_engine) as session:
        yield session
