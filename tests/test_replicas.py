"""Read replicas: ``sessionmaker(engine, replicas=[...])``.

Against a real PostgreSQL streaming replica on loopback (``tests/servers/replica.py``
makes it with ``pg_basebackup -R``): reads there (``pg_is_in_recovery()``), writes
on the primary, read-your-writes once a transaction wrote, round robin, and a
stopped replica falling back to the primary.  The routing itself is tested on
both backends with "replicas" that are other engines on the test database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

import aiouow
from aiouow import AsyncSession, create_engine, func, select, sessionmaker, text
from tests.conftest import IN_CI, PG_URL, _pg_available
from tests.servers import replica as replica_server

from .models import Post, User


def _same_db_engine(engine: aiouow.Engine) -> aiouow.Engine:
    """Another engine on the test database (a stand-in replica: same data, its own pool)."""
    return create_engine(engine.url.raw, pool_size=2)


def dead_engine() -> aiouow.Engine:
    """An engine whose server is not there (nothing listens on the port)."""
    return create_engine(f"postgresql://postgres@127.0.0.1:{replica_server.free_port()}/nowhere",
                         connect_args={"timeout": 2})


# -- routing, on both backends ---------------------------------------------------------
async def test_reads_use_a_replica_until_the_transaction_writes(db: aiouow.Engine) -> None:
    replica = _same_db_engine(db)
    try:
        Session = sessionmaker(db, replicas=[replica])
        async with Session() as s:
            assert await s.scalar(select(func.count(User.id))) == 0
            assert replica.pool.checked_out == 1 and db.pool.checked_out == 0
            s.add(User(name="a"))
            # autoflush: the pending row is written on the primary, and the query follows it
            assert await s.scalar(select(func.count(User.id))) == 1
            assert replica.pool.checked_out == 0 and db.pool.checked_out == 1
            assert (await s.scalars(select(User.name))).all() == ["a"]
            await s.commit()
            assert db.pool.checked_out == 0
            # a new transaction reads on the replica again
            assert await s.scalar(select(User.name)) == "a"
            assert replica.pool.checked_out == 1 and db.pool.checked_out == 0
        assert replica.pool.checked_out == 0
    finally:
        await replica.dispose()


async def test_forcing_the_primary(db: aiouow.Engine) -> None:
    replica = _same_db_engine(db)
    try:
        Session = sessionmaker(db, replicas=[replica])
        async with Session() as s:
            await s.scalar(select(User.id).execution_options(bind="primary"))
            assert db.pool.checked_out == 1 and replica.pool.checked_out == 0
        async with Session(replicas=False) as s:
            await s.scalar(select(User.id))
            assert db.pool.checked_out == 1 and replica.pool.checked_out == 0
        async with Session() as s:
            await s.get(User, 1, with_for_update=True)
            assert db.pool.checked_out == 1 and replica.pool.checked_out == 0
        async with Session() as s:
            await s.execute(text("UPDATE users SET name = name"))
            assert db.pool.checked_out == 1 and replica.pool.checked_out == 0
        async with Session() as s, s.begin_nested():
            assert db.pool.checked_out == 1 and replica.pool.checked_out == 0
        async with Session() as s:
            await s.connection()
            await s.scalar(select(User.id))
            assert db.pool.checked_out == 1 and replica.pool.checked_out == 0
    finally:
        await replica.dispose()


async def test_loads_and_gets_read_on_the_replica(db: aiouow.Engine) -> None:
    async with AsyncSession(db) as s:
        s.add(User(name="u", posts=[Post(title="p")]))
        await s.commit()
    replica = _same_db_engine(db)
    try:
        Session = sessionmaker(db, replicas=[replica])
        async with Session() as s:
            u = await s.get_one(User, 1)
            await s.load(u, User.posts)
            await s.refresh(u)
            rows = [r async for r in await s.stream_scalars(select(Post.title))]
            assert rows == ["p"]
            assert replica.pool.checked_out == 1 and db.pool.checked_out == 0
            u.name = "v"
            await s.commit()  # the write goes to the primary; expire_on_commit reloads read again
            await s.refresh(u)
            assert u.name == "v"
            assert replica.pool.checked_out == 1 and db.pool.checked_out == 0
    finally:
        await replica.dispose()


async def test_round_robin_and_a_replica_that_does_not_connect(db: aiouow.Engine) -> None:
    r1, r2 = _same_db_engine(db), _same_db_engine(db)
    dead = dead_engine()
    try:
        Session = sessionmaker(db, replicas=[r1, dead, r2])
        served = []
        for _ in range(6):
            async with Session() as s:
                await s.scalar(select(User.id))
                served.append("r1" if r1.pool.checked_out else "r2" if r2.pool.checked_out else
                              "primary" if db.pool.checked_out else "?")
        # the dead one's turns go to the next replica
        assert served == ["r1", "r2", "r2", "r1", "r2", "r2"]
        async with sessionmaker(db, replicas=[dead])() as s:
            assert await s.scalar(select(func.count(User.id))) == 0
            assert db.pool.checked_out == 1
    finally:
        for e in (r1, r2, dead):
            await e.dispose()


def test_replicas_argument_errors(engine: aiouow.Engine) -> None:
    with pytest.raises(aiouow.exc.ArgumentError, match="list of engines"):
        AsyncSession(engine, replicas=engine)  # type: ignore[arg-type]
    with pytest.raises(aiouow.exc.ArgumentError, match="engines"):
        AsyncSession(engine, replicas=["postgresql://x"])  # type: ignore[list-item]
    with pytest.raises(aiouow.exc.ArgumentError, match="replica engines"):
        AsyncSession(engine, replicas=True)


# -- a real streaming replica ------------------------------------------------------------
@pytest.fixture(scope="module")
async def pg_replica(engine: aiouow.Engine) -> AsyncIterator[replica_server.Replica]:
    # (by backend: the SQLite half skips here rather than start and stop a replica for nothing)
    if engine.dialect.name != "postgresql":
        pytest.skip("a streaming replica is a PostgreSQL server")
    reason = await _pg_available() or replica_server.unavailable_reason()
    if reason is not None:
        if IN_CI:
            pytest.fail(f"CI=true but no PostgreSQL replica can be made: {reason}")
        pytest.skip(reason)
    r = await replica_server.start_replica(PG_URL)
    try:
        yield r
    finally:
        r.remove()


@pytest.fixture
async def on_replica(pg_replica: replica_server.Replica, engine: aiouow.Engine, db: aiouow.Engine
                     ) -> AsyncIterator[tuple[aiouow.Engine, aiouow.Engine, replica_server.Replica]]:
    """(primary engine, replica engine, the replica server) with the tables emptied on both."""
    if engine.dialect.name != "postgresql":
        pytest.skip("a streaming replica is a PostgreSQL server")
    rep = create_engine(pg_replica.url(), pool_size=3, connect_args={"timeout": 5})
    await pg_replica.wait_replayed()
    try:
        yield db, rep, pg_replica
    finally:
        await rep.dispose()


async def in_recovery(s: AsyncSession) -> Any:
    return await s.scalar(text("SELECT pg_is_in_recovery()"))


@pytest.mark.slow  # the replica takes seconds to copy and start
async def test_real_replica_reads_writes_and_read_your_writes(on_replica: Any) -> None:
    primary, rep, server = on_replica
    Session = sessionmaker(primary, replicas=[rep])
    async with Session() as s:
        assert await in_recovery(s) is True
        assert await s.scalar(select(func.pg_is_in_recovery())) is True
        s.add(User(name="w"))
        await s.flush()
        # the transaction wrote: the rest of it reads on the primary and sees its own row
        assert await in_recovery(s) is False
        assert (await s.scalars(select(User.name))).all() == ["w"]
        await s.commit()
    await server.wait_replayed()
    async with Session() as s:
        assert (await s.scalars(select(User.name))).all() == ["w"]
        assert await in_recovery(s) is True
        u = await s.get_one(User, 1)
        u.name = "x"
        await s.commit()
        assert await in_recovery(s) is True  # a new transaction
    async with Session() as s:
        assert await s.scalar(select(User.name).execution_options(bind="primary")) == "x"
    async with Session(replicas=False) as s:
        assert await in_recovery(s) is False
    async with Session() as s, s.begin_nested():
        assert await in_recovery(s) is False


@pytest.mark.slow  # the replica takes seconds to copy and start
async def test_real_replica_refuses_writes_so_they_never_go_there(on_replica: Any) -> None:
    primary, rep, _server = on_replica
    async with AsyncSession(rep) as s:  # the replica on its own: read only
        s.add(User(name="nope"))
        with pytest.raises(aiouow.exc.DBAPIError, match="read-only"):
            await s.flush()
    async with sessionmaker(primary, replicas=[rep])() as s:
        s.add(User(name="yes"))
        await s.commit()


@pytest.mark.slow  # the replica takes seconds to copy and start
async def test_real_replica_round_robin_over_two_engines(on_replica: Any) -> None:
    primary, rep, server = on_replica
    rep2 = create_engine(server.url(), pool_size=1)
    try:
        Session = sessionmaker(primary, replicas=[rep, rep2])
        used = []
        for _ in range(4):
            async with Session() as s:
                assert await in_recovery(s) is True
                used.append(1 if rep.pool.checked_out else 2 if rep2.pool.checked_out else 0)
        assert used == [1, 2, 1, 2]
    finally:
        await rep2.dispose()


@pytest.mark.slow  # the replica takes seconds to copy and start
async def test_stopped_replica_falls_back_to_the_primary(on_replica: Any) -> None:
    primary, rep, server = on_replica
    Session = sessionmaker(primary, replicas=[rep])
    async with Session() as s:
        assert await in_recovery(s) is True
    await rep.dispose()  # no pooled connection to the server about to stop
    server.stop()
    try:
        async with Session() as s:
            assert await in_recovery(s) is False
            assert await s.scalar(select(func.count(User.id))) == 0
    finally:
        server.start()
    async with Session() as s:
        assert await in_recovery(s) is True
