"""Regressions: what begins a transaction, and what refresh() does with unflushed changes."""

from __future__ import annotations

from aiouow import AsyncSession, Engine, create_engine, select

from .models import User


async def _seed(db: Engine) -> int:
    async with AsyncSession(db) as s:
        u = User(name="ann")
        s.add(u)
        await s.commit()
        return u.id


async def test_refresh_begins_a_transaction_and_commit_returns_the_connection(db: Engine) -> None:
    uid = await _seed(db)
    async with AsyncSession(db) as s:
        user = await s.get(User, uid)
        await s.commit()
        assert not s.in_transaction()
        await s.refresh(user)
        assert s.in_transaction()
        assert db.pool.checked_out == 1
        await s.commit()
        assert db.pool.checked_out == 0
        # another session can use the (single, on SQLite) connection right away
        async with AsyncSession(db) as other:
            assert (await other.get(User, uid)).name == "ann"


async def test_modifying_a_persistent_object_begins_a_transaction_rollback_discards(db: Engine) -> None:
    uid = await _seed(db)
    async with AsyncSession(db) as s:
        user = await s.get(User, uid)
        await s.commit()
        assert not s.in_transaction()
        user.name = "zzz"
        assert s.in_transaction()
        await s.rollback()
        assert user not in s.dirty
        await s.refresh(user)
        assert user.name == "ann"
    async with AsyncSession(db) as s:
        assert await s.scalar(select(User.name).where(User.id == uid)) == "ann"


async def test_refresh_discards_the_objects_unflushed_change(db: Engine) -> None:
    uid = await _seed(db)
    async with AsyncSession(db) as s:
        user = await s.get(User, uid)
        user.name = "zzz"
        await s.refresh(user)
        assert user.name == "ann"
        assert not s.is_modified(user) and user not in s.dirty
        await s.commit()
    async with AsyncSession(db) as s:
        assert await s.scalar(select(User.name).where(User.id == uid)) == "ann"


async def test_refresh_on_sqlite_single_connection_does_not_starve_other_sessions(tmp_path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/one.db", pool_timeout=1)
    from aiouow import Model

    await Model.metadata.create_all(engine, tables=[User.__table__])
    try:
        async with AsyncSession(engine) as s:
            u = User(name="bea")
            s.add(u)
            await s.commit()
            await s.refresh(u)
            await s.commit()
            async with AsyncSession(engine) as other:
                assert (await other.get(User, u.id)).name == "bea"
    finally:
        await engine.dispose()
