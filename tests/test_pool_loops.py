"""The pool across event loops, pool_pre_ping and poolclass="null".

One engine used from successive event loops is what Starlette's TestClient does
without ``with`` (a new loop per request, in a worker thread) and what test suites
with a loop per test do.  Each loop here runs in its own thread through
``asyncio.run()``, as the TestClient runs it; pytest-asyncio's own loop is not used
by these engines.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
import warnings
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest

from aiouow import AsyncSession, Engine, create_engine, exc, func, insert, select, text
from examples.web_app import create_app  # also registers its table for the engine fixture

from .models import Tag

_T = TypeVar("_T")

POOL_OPTIONS = [
    pytest.param({}, id="queue"),
    pytest.param({"pool_pre_ping": True}, id="pre_ping"),
    pytest.param({"poolclass": "null"}, id="null"),
]


def in_new_loop(fn: Callable[..., Coroutine[Any, Any, _T]], *args: Any) -> _T:
    """``asyncio.run(fn(*args))`` in a new thread: a new event loop, closed when it ends."""
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["value"] = asyncio.run(fn(*args))
        except BaseException as err:  # noqa: BLE001 - re-raised in the test's thread
            out["error"] = err

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the event loop did not finish"
    if "error" in out:
        raise out["error"]
    return out["value"]


@contextmanager
def no_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """Fail on any warning (a "coroutine ... was never awaited" RuntimeWarning, an unclosed
    transport or connection ResourceWarning) raised in the block or by the collection after it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught
        gc.collect()
    assert [str(w.message) for w in caught] == []


async def tag_names(engine: Engine) -> list[str]:
    async with AsyncSession(engine) as s:
        return list((await s.scalars(select(Tag.name).order_by(Tag.name))).all())


async def add_tag(engine: Engine, name: str) -> list[str]:
    async with AsyncSession(engine) as s:
        s.add(Tag(name=name))
        await s.commit()
    return await tag_names(engine)


async def backend_pid(engine: Engine) -> Any:
    async with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            return (await conn.execute(text("SELECT pg_backend_pid() AS pid"))).scalar_one()
        return id(conn._dc)


@pytest.mark.parametrize("options", POOL_OPTIONS)
def test_engine_used_from_successive_event_loops(db: Engine, options: dict[str, Any]) -> None:
    eng = create_engine(db.url.raw, pool_size=2, **options)
    with no_warnings():
        assert in_new_loop(add_tag, eng, "first") == ["first"]
        # the pooled connection of the first (closed) loop is replaced, not reused
        assert in_new_loop(add_tag, eng, "second") == ["first", "second"]
        assert in_new_loop(tag_names, eng) == ["first", "second"]
        assert eng.pool.checked_out == 0
        in_new_loop(eng.dispose)
        assert eng.pool.opened == 0


def test_stale_postgresql_connections_are_closed_on_the_server(db: Engine) -> None:
    if db.dialect.name != "postgresql":
        pytest.skip("aiosqlite connections are not bound to a loop: SQLite reuses them")
    name = f"aiouow_loops_test_{os.getpid()}"
    eng = create_engine(db.url.raw, connect_args={"server_settings": {"application_name": name}})

    async def pids() -> list[int]:
        async with AsyncSession(db) as s:
            rows = await s.execute(text("SELECT pid FROM pg_stat_activity WHERE application_name = :n"), {"n": name})
            return sorted(r.pid for r in rows)

    async def server_pids_settled(expected: int) -> list[int]:
        for _ in range(100):  # the server notices a closed socket shortly after
            found = await pids()
            if len(found) == expected:
                return found
            await asyncio.sleep(0.02)
        return await pids()

    with no_warnings():
        first = in_new_loop(backend_pid, eng)
        second = in_new_loop(backend_pid, eng)
        assert first != second
        assert in_new_loop(server_pids_settled, 1) == [second]  # the first one's backend is gone
        in_new_loop(eng.dispose)
        assert in_new_loop(server_pids_settled, 0) == []


def test_session_kept_across_loops_raises_then_recovers(db: Engine) -> None:
    eng = create_engine(db.url.raw, pool_size=1)
    session = AsyncSession(eng)

    async def first() -> None:
        session.add(Tag(name="uncommitted"))
        await session.flush()  # holds a connection in a transaction; the loop ends meanwhile

    async def second() -> list[str]:
        with pytest.raises(exc.InvalidRequestError, match="another event loop"):
            await session.execute(select(Tag.name))
        await session.rollback()  # closes the old loop's connection without I/O
        assert eng.pool.checked_out == 0
        names = list((await session.scalars(select(Tag.name))).all())
        await session.close()
        return names

    with no_warnings():
        in_new_loop(first)
        assert in_new_loop(second) == []  # the flushed row was rolled back with its connection
        assert eng.pool.checked_out == 0
        assert in_new_loop(add_tag, eng, "after") == ["after"]
        in_new_loop(eng.dispose)


def test_commit_on_another_loop_raises(db: Engine) -> None:
    eng = create_engine(db.url.raw, pool_size=1)
    session = AsyncSession(eng)

    async def first() -> None:
        session.add(Tag(name="never"))
        await session.flush()

    async def second() -> None:
        with pytest.raises(exc.InvalidRequestError, match="another event loop"):
            await session.commit()
        await session.close()

    with no_warnings():
        in_new_loop(first)
        in_new_loop(second)
        assert eng.pool.checked_out == 0
        assert in_new_loop(tag_names, eng) == []
        in_new_loop(eng.dispose)


def test_closing_on_a_loop_that_ends_at_once_leaves_no_thread_error(db: Engine) -> None:
    # a connection of an earlier loop, closed as the last act of a loop: closing it must not
    # leave a reply to be delivered to that loop (aiosqlite's worker would die of it)
    eng = create_engine(db.url.raw, pool_size=1)
    errors: list[BaseException | None] = []
    old_hook = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_value)
    try:
        with no_warnings():
            for _ in range(40):
                conn = eng.connect()

                async def first(conn: Any = conn) -> None:
                    await conn.__aenter__()
                    await conn.execute(text("SELECT 1"))

                async def second(conn: Any = conn) -> None:
                    await conn.close()

                in_new_loop(first)
                in_new_loop(second)
            assert eng.pool.checked_out == 0
            in_new_loop(eng.dispose)
            time.sleep(0.2)  # any late reply of a worker thread
    finally:
        threading.excepthook = old_hook
    assert errors == []


def test_connection_left_open_when_its_loop_closed_frees_its_slot(db: Engine) -> None:
    eng = create_engine(db.url.raw, pool_size=1, pool_timeout=2)
    held: list[Any] = []

    async def leak() -> None:
        conn = await eng.connect()
        await conn.execute(text("SELECT 1"))
        held.append(conn)  # never closed

    in_new_loop(leak)
    assert eng.pool.checked_out == 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        held.clear()
        gc.collect()
    # aiouow's own warning about the forgotten connection, and nothing else
    assert [w.category for w in caught] == [ResourceWarning]
    assert "garbage-collected while holding" in str(caught[0].message)
    assert eng.pool.checked_out == 0
    with no_warnings():
        assert in_new_loop(add_tag, eng, "slot") == ["slot"]  # the only slot was freed, not lost
        in_new_loop(eng.dispose)


def test_waiter_stranded_by_a_closed_loop_does_not_block_the_next_loop(db: Engine) -> None:
    eng = create_engine(db.url.raw, pool_size=1, pool_timeout=1)
    held: list[Any] = []

    def first() -> None:
        # a loop closed while a checkout waited: nothing cancelled its task (no asyncio.run())
        loop = asyncio.new_event_loop()

        async def write() -> None:
            conn = await eng.connect()
            await conn.execute(insert(Tag).values(name="never"))  # waits for SQLite's writer

        async def main() -> None:
            conn = await eng.connect()
            # a write: on SQLite only the writer is exclusive (reads run on pooled readers)
            await conn.execute(insert(Tag).values(name="held"))
            held.append(conn)
            held.append(asyncio.ensure_future(write() if eng.dialect.name == "sqlite" else eng.connect().__aenter__()))
            await asyncio.sleep(0.01)
            assert len(eng.pool._waiters) == 1  # type: ignore[attr-defined]

        loop.run_until_complete(main())
        loop.close()

    thread = threading.Thread(target=first)
    thread.start()
    thread.join(30)

    async def second() -> list[str]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)  # aiouow's note on the forgotten connection
            held.clear()
            gc.collect()  # frees the slot of the connection the closed loop held
        return await asyncio.wait_for(add_tag(eng, "free"), 0.8)  # no queueing behind the dead waiter

    assert in_new_loop(second) == ["free"]
    assert eng.pool.checked_out == 0
    in_new_loop(eng.dispose)


# -- pool_pre_ping: pooled PostgreSQL connections terminated by the server ------------------

async def _terminate_pooled(db: Engine, eng: Engine, *, unnoticed: bool) -> list[int]:
    """Terminate the server backends of ``eng``'s idle connections; with ``unnoticed`` asyncpg
    is kept from reading the news until the next checkout (a dropped network does that)."""
    pool = eng.pool
    conns = list(pool._free)  # type: ignore[attr-defined]
    pids = [c._c.get_server_pid() for c in conns]
    if unnoticed:
        for c in conns:
            c._c._transport.pause_reading()
    async with db.connect() as admin:
        for pid in pids:
            # the timeout makes the call wait until the backend has exited
            await admin.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
    if unnoticed:
        for c in conns:
            assert not c.is_closed
            c._c._transport.resume_reading()
    else:
        for _ in range(100):
            if all(c.is_closed for c in conns):
                break
            await asyncio.sleep(0.01)
    return pids


async def _fill_pool(eng: Engine, n: int) -> None:
    conns = [await eng.connect() for _ in range(n)]
    for c in conns:
        await c.execute(text("SELECT 1"))
    for c in conns:
        await c.close()
    assert eng.pool.opened == n


@pytest.fixture
def pg(db: Engine) -> Engine:
    if db.dialect.name != "postgresql":
        pytest.skip("needs pg_terminate_backend")
    return db


async def test_pre_ping_replaces_terminated_connections(pg: Engine) -> None:
    eng = create_engine(pg.url.raw, pool_size=3, pool_pre_ping=True)
    try:
        await _fill_pool(eng, 3)
        dead = await _terminate_pooled(pg, eng, unnoticed=True)
        # every session works on its first try, each on a new backend
        seen = []
        for i in range(3):
            async with AsyncSession(eng) as s:
                s.add(Tag(name=f"t{i}"))
                seen.append((await s.execute(text("SELECT pg_backend_pid() AS pid"))).scalar_one())
                await s.commit()
        assert not set(seen) & set(dead)
        assert await tag_names(pg) == ["t0", "t1", "t2"]
        assert eng.pool.checked_out == 0 and eng.pool.opened <= 3
    finally:
        await eng.dispose()


async def test_without_pre_ping_an_unnoticed_dead_connection_is_replaced_at_begin(pg: Engine) -> None:
    # issue 13: each dead pooled connection used to fail once for its next user; its BEGIN (the
    # first statement of every transaction) now finds it dead and a fresh one takes its place
    eng = create_engine(pg.url.raw, pool_size=2)
    try:
        await _fill_pool(eng, 2)
        dead = await _terminate_pooled(pg, eng, unnoticed=True)
        for name in ("a", "b", "c"):
            assert (await backend_pid(eng)) not in dead
            await add_tag(eng, name)
        assert await tag_names(pg) == ["a", "b", "c"]
        assert eng.pool.checked_out == 0 and eng.pool.opened <= 2
    finally:
        await eng.dispose()


async def test_connections_the_driver_saw_terminated_are_replaced_without_pre_ping(pg: Engine) -> None:
    eng = create_engine(pg.url.raw, pool_size=2)
    try:
        await _fill_pool(eng, 2)
        dead = await _terminate_pooled(pg, eng, unnoticed=False)
        for name in ("a", "b"):  # asyncpg knows them closed: checkout opens new ones, no error
            assert (await backend_pid(eng)) not in dead
            await add_tag(eng, name)
        assert await tag_names(pg) == ["a", "b"]
    finally:
        await eng.dispose()


async def test_pre_ping_keeps_a_live_connection(db: Engine) -> None:
    eng = create_engine(db.url.raw, pool_size=1, pool_pre_ping=True)
    try:
        if eng.dialect.name == "sqlite":
            # reads run on pooled readers: the same reader serves both, pinged, not replaced
            await tag_names(eng)
            reader = eng.pool._readers._free[0]  # type: ignore[attr-defined]
            await tag_names(eng)
            assert eng.pool._readers._free[0] is reader  # type: ignore[attr-defined]
        else:
            first = await backend_pid(eng)
            assert await backend_pid(eng) == first  # pinged and reused, not replaced
        assert eng.pool.opened == 1
    finally:
        await eng.dispose()


# -- poolclass="null" ------------------------------------------------------------------------

async def test_null_pool_opens_and_closes_a_connection_per_session(db: Engine) -> None:
    eng = create_engine(db.url.raw, poolclass="null")
    try:
        dcs = []
        for name in ("x", "y"):
            async with AsyncSession(eng) as s:
                s.add(Tag(name=name))
                await s.commit()
                await s.execute(select(Tag.id))
                dcs.append(s._conn._dc)  # type: ignore[union-attr]
                # SQLite: the writer was closed at commit, the reader after its one statement
                assert eng.pool.opened == (0 if eng.dialect.name == "sqlite" else 1)
                assert eng.pool.checked_out == 1
            assert eng.pool.opened == 0 and eng.pool.checked_out == 0
        assert dcs[0] is not dcs[1]
        if eng.dialect.name == "postgresql":
            assert all(dc.is_closed for dc in dcs)
        assert await tag_names(db) == ["x", "y"]
    finally:
        await eng.dispose()


async def test_null_pool_postgresql_backends_come_and_go(pg: Engine) -> None:
    name = f"aiouow_nullpool_test_{os.getpid()}"
    eng = create_engine(pg.url.raw, poolclass="null", connect_args={"server_settings": {"application_name": name}})

    async def backends() -> int:
        async with pg.connect() as conn:
            return (await conn.execute(text("SELECT count(*) AS n FROM pg_stat_activity "
                                            "WHERE application_name = :n"), {"n": name})).scalar_one()

    try:
        pids = set()
        for _ in range(3):
            async with eng.connect() as conn:
                pids.add((await conn.execute(text("SELECT pg_backend_pid() AS pid"))).scalar_one())
                assert await backends() == 1
            for _ in range(100):
                if await backends() == 0:
                    break
                await asyncio.sleep(0.02)
            assert await backends() == 0
        assert len(pids) == 3
    finally:
        await eng.dispose()


async def test_null_pool_still_serializes_and_waits(db: Engine) -> None:
    # pool_size caps the connections open at once (SQLite: the one writer) as with the default pool
    eng = create_engine(db.url.raw, poolclass="null", pool_size=2)
    try:
        sqlite = db.dialect.name == "sqlite"
        most = most_writers = 0

        def note() -> None:
            nonlocal most, most_writers
            most = max(most, eng.pool.opened)
            if sqlite:  # readers (up to pool_size) come and go beside the one writer
                most_writers = max(most_writers, eng.pool.inner._writer.opened)  # type: ignore[attr-defined]

        async def bump(i: int) -> None:
            async with AsyncSession(eng) as s:
                n = (await s.execute(select(func.count()).select_from(Tag))).scalar_one()
                note()
                await asyncio.sleep(0.01)
                s.add(Tag(name=f"n{i}-{n}"))
                await s.flush()
                note()
                await s.commit()

        await asyncio.gather(*(bump(i) for i in range(6)))
        assert len(await tag_names(db)) == 6
        assert eng.pool.opened == 0 and eng.pool.checked_out == 0
        assert 1 <= most <= (2 + 1 if sqlite else 2)
        assert most_writers == (1 if sqlite else 0)
    finally:
        await eng.dispose()


def slot_pool(eng: Engine) -> Any:
    """The pool of ``poolclass="null"`` engine whose slots ``pool_size`` caps: PostgreSQL's
    connections, SQLite's writer (its readers are a pool of the same kind)."""
    inner = eng.pool.inner  # type: ignore[attr-defined]
    return inner._writer if eng.dialect.name == "sqlite" else inner


@pytest.mark.parametrize("give_up", ["release", "discard_nowait"])
async def test_a_slot_passed_to_a_waiter_is_not_taken_by_a_newcomer(db: Engine, give_up: str) -> None:
    # A connection closed while a checkout waits passes its slot to that waiter, which opens
    # a connection in it when it next runs; a checkout arriving before then must queue behind
    # it, not see a free slot and open one more than pool_size (the flaky
    # test_null_pool_still_serializes_and_waits: two SQLite writers, one waiting for the file lock)
    eng = create_engine(db.url.raw, poolclass="null", pool_size=1)
    pool = slot_pool(eng)
    seen: list[tuple[str, int]] = []
    try:
        first = await pool.acquire(5)

        async def wait_use_give_back() -> None:
            conn = await pool.acquire(5)
            seen.append(("waiter", pool.opened))
            await asyncio.sleep(0.02)
            await pool.release(conn, discard=True)

        waiter = asyncio.create_task(wait_use_give_back())
        while not pool._waiters:
            await asyncio.sleep(0)
        if give_up == "release":
            await pool.release(first, discard=True)
        else:
            pool.discard_nowait(first)
        # in the same step: the waiter has been handed the slot but has not run yet
        second = await pool.acquire(5)
        seen.append(("newcomer", pool.opened))
        await waiter
        await pool.release(second, discard=True)
        assert seen == [("waiter", 1), ("newcomer", 1)]
        assert pool.opened == 0 and pool.checked_out == 0 and not pool._waiters
    finally:
        await eng.dispose()


async def test_a_connection_closing_on_release_keeps_its_slot_until_closed(
        db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    # ``opened`` counts a connection until its close() has finished, and pool_size caps what the
    # server (or the SQLite file) sees: a checkout arriving meanwhile waits for the close
    eng = create_engine(db.url.raw, poolclass="null", pool_size=1)
    pool = slot_pool(eng)
    try:
        first = await pool.acquire(5)
        closing, may_close = asyncio.Event(), asyncio.Event()
        real_close = type(first).close

        async def held_close(conn: Any) -> None:
            if conn is first:
                closing.set()
                await may_close.wait()
            await real_close(conn)

        monkeypatch.setattr(type(first), "close", held_close)
        release = asyncio.create_task(pool.release(first, discard=True))
        await closing.wait()
        newcomer = asyncio.create_task(pool.acquire(5))
        await asyncio.sleep(0.05)
        assert not newcomer.done() and len(pool._waiters) == 1
        assert (pool.opened, pool.checked_out) == (1, 0)
        may_close.set()
        await release
        conn = await asyncio.wait_for(newcomer, 5)
        assert conn is not first and (pool.opened, pool.checked_out) == (1, 1)
        await pool.release(conn, discard=True)
        assert (pool.opened, pool.checked_out) == (0, 0)
    finally:
        await eng.dispose()


async def test_a_waiter_cancelled_as_it_is_passed_a_slot_passes_it_on(db: Engine) -> None:
    # cancelled in the step in which it was handed the slot: it must neither keep the slot
    # nor count as a checkout, and the next waiter opens in it
    eng = create_engine(db.url.raw, poolclass="null", pool_size=1)
    pool = slot_pool(eng)
    try:
        first = await pool.acquire(5)
        cancelled = asyncio.create_task(pool.acquire(5))
        behind = asyncio.create_task(pool.acquire(5))
        while len(pool._waiters) < 2:
            await asyncio.sleep(0)
        pool.discard_nowait(first)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        conn = await asyncio.wait_for(behind, 5)
        assert (pool.opened, pool.checked_out) == (1, 1)
        await pool.release(conn, discard=True)
        assert (pool.opened, pool.checked_out) == (0, 0)
    finally:
        await eng.dispose()


async def test_sqlite_null_pool_writer_freed_by_commit_goes_to_the_waiting_session(db: Engine) -> None:
    # SQLite's COMMIT closes a null pool's writer at once and hands its slot to the session
    # waiting for it; a connection of the committing task writing next waits its turn, so the
    # writers open at once never exceed the one
    if db.dialect.name != "sqlite":
        pytest.skip("SQLite's writer is given back by COMMIT; PostgreSQL's connection only by close")
    eng = create_engine(db.url.raw, poolclass="null", pool_size=2)
    writers = slot_pool(eng)
    seen: list[tuple[str, int]] = []
    try:
        async with eng.connect() as first, eng.connect() as third:
            await first.execute(insert(Tag).values(name="first"))

            async def waiting_session() -> None:
                async with AsyncSession(eng) as s:
                    s.add(Tag(name="second"))
                    await s.flush()
                    seen.append(("second", writers.opened))
                    await s.commit()

            second = asyncio.create_task(waiting_session())
            while not writers._waiters:
                await asyncio.sleep(0)
            await first.commit()
            await third.execute(insert(Tag).values(name="third"))
            seen.append(("third", writers.opened))
            await third.commit()
            await second
        assert seen == [("second", 1), ("third", 1)]
        assert await tag_names(db) == ["first", "second", "third"]
        assert eng.pool.opened == 0 and eng.pool.checked_out == 0
    finally:
        await eng.dispose()


# -- argument checks ---------------------------------------------------------------------------

@pytest.mark.parametrize(("kw", "message"), [
    ({"pool_size": 0}, r"pool_size.*poolclass='null'"),
    ({"pool_size": -1}, "pool_size"),
    ({"pool_size": "5"}, "pool_size"),
    ({"pool_size": True}, "pool_size"),
    ({"pool_timeout": "30"}, "pool_timeout"),
    ({"pool_timeout": 0}, "pool_timeout"),
    ({"pool_pre_ping": "yes"}, "pool_pre_ping"),
    ({"poolclass": "static"}, r"poolclass.*'queue', 'null'"),
    ({"poolclass": None}, "poolclass"),
    ({"connect_args": [("timeout", 1)]}, "connect_args"),
])
@pytest.mark.parametrize("url", ["sqlite:///app.db", "postgresql://u@localhost/db"])
def test_bad_pool_arguments_are_argument_errors(url: str, kw: dict[str, Any], message: str) -> None:
    with pytest.raises(exc.ArgumentError, match=message):
        create_engine(url, **kw)


def test_null_pool_refuses_sqlite_memory() -> None:
    for url in ("sqlite://", "sqlite:///:memory:"):
        with pytest.raises(exc.ArgumentError, match="poolclass='null'.*new, empty database"):
            create_engine(url, poolclass="null")


def test_pool_options_are_kept_on_the_engine() -> None:
    eng = create_engine("sqlite:///app.db", pool_pre_ping=True, poolclass="null")
    assert (eng.pool_pre_ping, eng.poolclass) == (True, "null")
    eng = create_engine("sqlite:///app.db")
    assert (eng.pool_pre_ping, eng.poolclass) == (False, "queue")


@pytest.mark.parametrize("options", POOL_OPTIONS)
def test_starlette_testclient_without_with(db: Engine, options: dict[str, Any]) -> None:
    # without ``with``, TestClient runs every request on a new event loop in a worker thread
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette's deprecation note about httpx
        from starlette.testclient import TestClient
    eng = create_engine(db.url.raw, pool_size=2, **options)
    client = TestClient(create_app(eng))
    with no_warnings():
        for title in ("one", "two", "three"):
            r = client.post("/notes", json={"title": title, "body": ""})
            assert r.status_code == 201, r.text
        assert sorted(n["title"] for n in client.get("/notes").json()) == ["one", "three", "two"]
        assert eng.pool.checked_out == 0
        in_new_loop(eng.dispose)
