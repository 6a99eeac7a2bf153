"""isolation_level on create_engine(), engine.connect(), AsyncSession() and sessionmaker().

PostgreSQL reports the level a transaction runs at (``SHOW transaction_isolation``); on both
backends the level shows in what a concurrent commit does to the transaction's reads.
"""

from __future__ import annotations

import asyncio

import pytest

import aiouow
from aiouow import AsyncSession, create_engine, exc, func, select, sessionmaker, text

from .models import User


async def _level(session: AsyncSession, sql: object) -> str:
    """The level the session's transaction began at: as the engine logged its BEGIN and, on
    PostgreSQL, as the server reports it."""
    engine = session.bind
    assert isinstance(engine, aiouow.Engine)
    with sql(engine) as log:  # type: ignore[operator]
        # text() begins the transaction (a plain read would run before BEGIN at the default level)
        await session.scalar(text("SELECT 1"))
        await session.scalar(select(func.count(User.id)))
    begin = [r for r in log.records if r.startswith("BEGIN")]
    assert len(begin) == 1, log.records
    logged = begin[0].partition("; ")[2].rstrip(")") or "default"
    if engine.dialect.name == "postgresql":
        server = str(await session.scalar(text("SHOW transaction_isolation"))).upper()
        assert logged in (server, "default") and (logged != "default" or server == "READ COMMITTED"), (logged, server)
    return logged


async def test_levels_of_engine_sessionmaker_session_and_connection(db: aiouow.Engine, sql: object) -> None:
    engine = create_engine(db.url.raw, isolation_level="serializable")
    try:
        assert engine.isolation_level == "SERIALIZABLE"
        async with AsyncSession(engine) as session:
            assert await _level(session, sql) == "SERIALIZABLE"
        Session = sessionmaker(engine, isolation_level="READ_COMMITTED")
        async with Session() as session:
            assert await _level(session, sql) == "READ COMMITTED"
        async with Session(isolation_level=None) as session:  # None: the engine's
            assert await _level(session, sql) == "SERIALIZABLE"
        if db.dialect.name == "postgresql":
            async with Session(isolation_level="repeatable read") as session:
                assert await _level(session, sql) == "REPEATABLE READ"
        async with engine.connect(isolation_level="READ COMMITTED") as conn:
            assert conn.isolation_level == "READ COMMITTED"
            if db.dialect.name == "postgresql":
                assert (await conn.exec_driver_sql("SHOW transaction_isolation")).scalar() == "read committed"
        async with engine.connect() as conn:
            assert conn.isolation_level == "SERIALIZABLE"
            if db.dialect.name == "postgresql":
                assert (await conn.exec_driver_sql("SHOW transaction_isolation")).scalar() == "serializable"
    finally:
        await engine.dispose()
    async with AsyncSession(db) as session:  # an engine without a level: the database's default
        assert await _level(session, sql) == "default"


@pytest.mark.parametrize("level", [None, "READ COMMITTED", "SERIALIZABLE"])
async def test_what_a_level_does_to_a_concurrent_writer(db: aiouow.Engine, level: str | None) -> None:
    """SERIALIZABLE: the transaction's second read sees what its first saw, although another
    transaction committed a row in between; READ COMMITTED (the default on both) sees the row.
    On SQLite a SERIALIZABLE transaction holds the writer from its first read, so the other
    writer waits for it instead (PostgreSQL's never waits here)."""
    Session = sessionmaker(db)
    async with Session(isolation_level=level) as reader, reader.begin():
        assert await reader.scalar(select(func.count(User.id))) == 0

        async def write() -> None:
            async with Session.begin() as other:
                other.add(User(name="other"))

        writer = asyncio.create_task(write())
        await asyncio.sleep(0.2)
        waits = level == "SERIALIZABLE" and db.dialect.name == "sqlite"
        assert writer.done() is not waits
        assert await reader.scalar(select(func.count(User.id))) == (0 if level == "SERIALIZABLE" else 1)
    await writer
    async with Session() as session:
        assert await session.scalar(select(func.count(User.id))) == 1


async def test_refused_levels_say_what_is_available(db: aiouow.Engine) -> None:
    url = db.url.raw
    refused = ["AUTOCOMMIT", "SOMETIMES", 3]
    refused += ["READ UNCOMMITTED"] if db.dialect.name == "postgresql" else ["REPEATABLE READ", "READ UNCOMMITTED"]
    for level in refused:
        with pytest.raises(exc.ArgumentError, match="isolation_level") as raised:
            create_engine(url, isolation_level=level)  # type: ignore[arg-type]
        assert "SERIALIZABLE" in str(raised.value) and "create_engine()" in str(raised.value)
        with pytest.raises(exc.ArgumentError, match="AsyncSession()"):
            AsyncSession(db, isolation_level=level)  # type: ignore[arg-type]
        with pytest.raises(exc.ArgumentError, match="engine.connect()"):
            db.connect(isolation_level=level)  # type: ignore[arg-type]
    with pytest.raises(exc.ArgumentError, match="no AUTOCOMMIT mode"):
        create_engine(url, isolation_level="autocommit")
    if db.dialect.name == "sqlite":
        with pytest.raises(exc.ArgumentError, match="SQLite has no REPEATABLE READ"):
            create_engine(url, isolation_level="REPEATABLE READ")
    else:
        with pytest.raises(exc.ArgumentError, match="as READ COMMITTED"):
            create_engine(url, isolation_level="READ UNCOMMITTED")
    async with db.connect() as conn:  # a session joined to a connection runs in its transaction
        with pytest.raises(exc.ArgumentError, match=r"engine.connect\(isolation_level=...\)"):
            AsyncSession(conn, isolation_level="SERIALIZABLE")
