"""aiouow.testing: transactional_session() and the pytest plugin (API.md 8 and 9).

The plugin is exercised through pytest's own ``pytester``: a small test suite is written
to a temporary directory and run in a subprocess (the plugin is found through its
``pytest11`` entry point), on SQLite and on PostgreSQL, and what it left in the database
is inspected afterwards.
"""

from __future__ import annotations

import asyncio
import sqlite3

import asyncpg
import pytest

from aiouow import AsyncSession, Engine, Model, column, func, select
from aiouow.exc import IntegrityError
from aiouow.testing import transactional_session
from aiouow.testing.plugin import ENV_VAR, configured_url

from .conftest import capture_sql

pytest_plugins = ["pytester"]


class Widget(Model):
    __tablename__ = "t5_testing_widgets"
    id: int = column(primary_key=True)
    name: str = column(unique=True)


async def widget_names(engine: Engine) -> list[str]:
    async with AsyncSession(engine) as s:
        return list((await s.scalars(select(Widget.name).order_by(Widget.name))).all())


# -- transactional_session ----------------------------------------------------------------

async def test_transactional_session_undoes_commits_rollbacks_and_savepoints(db: Engine) -> None:
    async with transactional_session(db) as session:
        session.add(Widget(name="committed"))
        await session.commit()  # a SAVEPOINT released, not a COMMIT
        assert await session.scalar(select(func.count(Widget.id))) == 1

        session.add(Widget(name="rolled back"))
        await session.flush()
        await session.rollback()  # back to the SAVEPOINT: the committed row is still there
        assert [w.name for w in await session.scalars(select(Widget))] == ["committed"]

        async with session.begin_nested():
            session.add(Widget(name="nested"))
        session.add(Widget(name="committed"))  # duplicate: the flush fails (IntegrityError)
        with pytest.raises(IntegrityError):
            await session.commit()
        await session.rollback()
        names = sorted(w.name for w in await session.scalars(select(Widget)))
        assert names == ["committed"]  # the failed transaction's work (the nested row too) is gone
        await session.commit()

        async with session.begin():
            session.add(Widget(name="in begin()"))
        assert await session.scalar(select(func.count(Widget.id))) == 2
        await session.close()  # closing rolls back to the SAVEPOINT only; the session goes on
        assert await session.scalar(select(func.count(Widget.id))) == 2
    assert db.pool.checked_out == 0
    assert await widget_names(db) == []  # everything undone at exit


async def test_transactional_session_never_sends_commit(db: Engine) -> None:
    with capture_sql(db) as log:
        async with transactional_session(db) as session:
            session.add(Widget(name="a"))
            await session.commit()
            session.add(Widget(name="b"))
            await session.commit()
    control = [r.split()[0] for r in log.records if r.split()[0] in ("BEGIN", "COMMIT", "ROLLBACK", "RELEASE",
                                                                       "SAVEPOINT")]
    assert "COMMIT" not in control
    assert control.count("RELEASE") == 2 and control[-1] == "ROLLBACK"
    assert await widget_names(db) == []


async def test_transactional_session_rolls_back_when_the_block_fails(db: Engine) -> None:
    with pytest.raises(KeyError):
        async with transactional_session(db) as session:
            session.add(Widget(name="x"))
            await session.commit()
            raise KeyError("test failed")
    assert db.pool.checked_out == 0
    assert await widget_names(db) == []


# -- the pytest plugin -------------------------------------------------------------------------

SUITE = '''
import pytest
from aiouow import Model, column, func, select

class PluginItem(Model):
    __tablename__ = "t5_plugin_items"
    id: int = column(primary_key=True)
    name: str = column(unique=True)

async def test_a_commits(aiouow_session):
    aiouow_session.add(PluginItem(name="from test a"))
    await aiouow_session.commit()
    assert await aiouow_session.scalar(select(func.count(PluginItem.id))) == 1

async def test_b_sees_nothing_of_a(aiouow_session, aiouow_engine):
    assert await aiouow_session.scalar(select(func.count(PluginItem.id))) == 0
    aiouow_session.add(PluginItem(name="from test a"))  # no conflict: a's row is gone
    await aiouow_session.commit()
    print("ENGINE-URL", aiouow_engine.url.raw)

async def test_c_failing_code_under_test(aiouow_session):
    aiouow_session.add(PluginItem(name="dup"))
    aiouow_session.add(PluginItem(name="dup"))
    with pytest.raises(Exception):
        await aiouow_session.flush()
    await aiouow_session.rollback()
    assert await aiouow_session.scalar(select(func.count(PluginItem.id))) == 0

async def test_d_engine_is_plain(aiouow_engine):
    async with aiouow_engine.connect() as conn:  # outside any test transaction
        assert (await conn.execute(select(func.count(PluginItem.id)))).scalar() == 0
'''


def run_suite(pytester: pytest.Pytester, *args: str, ini: str = "") -> pytest.RunResult:
    pytester.makeini(f"[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n{ini}")
    pytester.makepyfile(test_suite=SUITE)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s", *args)


def test_plugin_on_both_backends(pytester: pytest.Pytester, engine: Engine, monkeypatch: pytest.MonkeyPatch
                                 ) -> None:
    """Each test's session is rolled back: the next test (and the database afterwards) sees
    nothing of it; SQLite configured by the ini key, PostgreSQL by --aiouow-url."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    if engine.dialect.name == "postgresql":
        url = engine.url.raw
        result = run_suite(pytester, f"--aiouow-url={url}")
    else:
        path = pytester.path / "plugin.db"
        url = f"sqlite:///{path}"
        result = run_suite(pytester, ini=f"aiouow_url = {url}")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines([f"*ENGINE-URL {url}*"])

    # the tables were created, and nothing any test committed is left in them
    if engine.dialect.name == "postgresql":
        async def rows() -> int:
            conn = await asyncpg.connect(url)
            try:
                return await conn.fetchval('SELECT count(*) FROM "t5_plugin_items"')  # type: ignore[no-any-return]
            finally:
                await conn.execute('DROP TABLE IF EXISTS "t5_plugin_items"')
                await conn.close()

        assert asyncio.run(rows()) == 0
    else:
        with sqlite3.connect(path) as conn:
            assert conn.execute('SELECT count(*) FROM "t5_plugin_items"').fetchone() == (0,)


def test_plugin_default_is_an_sqlite_file_per_test_strict_mode(pytester: pytest.Pytester,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """No URL configured: an SQLite file in each test's tmp_path; the fixtures also work under
    pytest-asyncio's strict mode (tests marked explicitly)."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    pytester.makeini("[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_default='''
import pytest
from aiouow import Model, column, func, select

class DefaultItem(Model):
    __tablename__ = "t5_plugin_default_items"
    id: int = column(primary_key=True)

@pytest.mark.asyncio
async def test_url(aiouow_url, aiouow_engine, aiouow_session, tmp_path):
    assert aiouow_url is None
    assert aiouow_engine.url.raw == f"sqlite:///{tmp_path / 'aiouow_test.db'}"
    aiouow_session.add(DefaultItem())
    await aiouow_session.commit()
    assert await aiouow_session.scalar(select(func.count(DefaultItem.id))) == 1
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize(("option", "ini", "env", "expected"), [
    ("sqlite:///opt.db", "sqlite:///ini.db", "sqlite:///env.db", "sqlite:///opt.db"),
    (None, "sqlite:///ini.db", "sqlite:///env.db", "sqlite:///ini.db"),
    (None, None, "sqlite:///env.db", "sqlite:///env.db"),
    (None, None, None, None),
])
def test_url_precedence_option_then_ini_then_environment(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                                         option: str | None, ini: str | None, env: str | None,
                                                         expected: str | None) -> None:
    if env is None:
        monkeypatch.delenv(ENV_VAR, raising=False)
    else:
        monkeypatch.setenv(ENV_VAR, env)
    pytester.makeini("[pytest]\n" + (f"aiouow_url = {ini}\n" if ini else ""))
    config = pytester.parseconfig(*([f"--aiouow-url={option}"] if option else []))
    assert configured_url(config) == expected
