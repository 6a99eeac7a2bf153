"""Statements through the session: execute / scalars / scalar / stream / stream_scalars return
identity-mapped objects; ORM update() / delete() keep held objects in step."""

from __future__ import annotations

import pytest

from aiouow import (
    AsyncSession,
    Column,
    Engine,
    MetaData,
    Table,
    delete,
    exc,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)

from .conftest import capture_sql
from .models import Account, Membership, Post, User
from .session_support import NOW, core_rows, count, seed_account, seed_posts, seed_users, user_names


async def test_execute_returns_identity_mapped_objects(db: Engine) -> None:
    uids = await seed_users(db, "ann", "bob", "cid")
    async with AsyncSession(db) as s:
        bob = await s.get(User, uids[1])
        result = await s.execute(select(User).order_by(User.id))
        objs = result.scalars().all()
        assert [o.name for o in objs] == ["ann", "bob", "cid"]
        assert objs[1] is bob
        again = (await s.execute(select(User).order_by(User.id))).scalars().all()
        assert all(a is b for a, b in zip(objs, again))
        assert all(inspect(o).persistent and inspect(o).session is s for o in objs)


async def test_execute_rows_of_entities_and_columns(db: Engine) -> None:
    uids = await seed_users(db, "ann", "bob")
    async with AsyncSession(db) as s:
        ann = await s.get(User, uids[0])
        rows = (await s.execute(select(User, User.name).order_by(User.id))).all()
        assert rows[0][0] is ann and rows[0][1] == "ann"
        obj, name = rows[1]
        assert obj.name == name == "bob"
        first = (await s.execute(select(User).where(User.id == uids[0]))).first()
        assert first[0] is ann
        assert (await s.execute(select(User).where(User.id == uids[0]))).scalar_one() is ann
        assert (await s.execute(select(User).where(User.id == -1))).scalar_one_or_none() is None
        with pytest.raises(exc.MultipleResultsFound):
            (await s.execute(select(User))).scalar_one()
        with pytest.raises(exc.NoResultFound):
            (await s.execute(select(User).where(User.id == -1))).one()


async def test_scalars_and_scalar(db: Engine) -> None:
    uids = await seed_users(db, "ann", "bob")
    async with AsyncSession(db) as s:
        objs = (await s.scalars(select(User).order_by(User.id))).all()
        assert await s.scalar(select(User).where(User.name == "bob")) is objs[1]
        assert await s.scalar(select(User.name).where(User.id == uids[0])) == "ann"
        assert await s.scalar(select(User).where(User.name == "nobody")) is None
        assert await s.scalar(select(func.count(User.id))) == 2
        assert (await s.scalars(select(User.name).order_by(User.name))).all() == ["ann", "bob"]


async def test_text_and_params(db: Engine) -> None:
    await seed_users(db, "ann", "bob")
    async with AsyncSession(db) as s:
        rows = (await s.execute(text("SELECT name FROM users WHERE id = :id"), {"id": 2})).all()
        assert [r.name for r in rows] == ["bob"]
        assert await s.scalar(text("SELECT count(*) FROM users")) == 2


async def test_core_insert_through_the_session(db: Engine) -> None:
    async with AsyncSession(db) as s:
        await s.execute(insert(User).values(name="core", created_at=NOW))
        assert await s.scalar(select(User.name)) == "core"
        await s.rollback()
    assert await count(db, User) == 0


async def test_objects_in_results_keep_unflushed_state(db: Engine) -> None:
    uids = await seed_users(db, "ann", "bob")
    async with AsyncSession(db, autoflush=False) as s:
        ann = await s.get(User, uids[0])
        ann.name = "local"
        objs = (await s.scalars(select(User).order_by(User.id))).all()
        assert objs[0] is ann and ann.name == "local"
        names = (await s.scalars(select(User.name).order_by(User.id))).all()
        assert names == ["ann", "bob"]  # columns come from the database


async def test_stream_returns_identity_mapped_objects(db: Engine) -> None:
    names = [f"u{i:02}" for i in range(7)]
    await seed_users(db, *names)
    async with AsyncSession(db) as s:
        held = await s.get(User, 3)
        seen = []
        result = await s.stream(select(User).order_by(User.id), chunk_size=2)
        async for row in result:
            seen.append(row[0])
        assert [u.name for u in seen] == names
        assert seen[2] is held
        assert all(s.identity_map[(User, (u.id,))] is u for u in seen)
        again = [u async for u in await s.stream_scalars(select(User).order_by(User.id), chunk_size=3)]
        assert all(a is b for a, b in zip(seen, again))


async def test_stream_columns_and_partitions(db: Engine) -> None:
    await seed_users(db, *[f"u{i}" for i in range(5)])
    async with AsyncSession(db) as s:
        result = await s.stream(select(User.id, User.name).order_by(User.id), chunk_size=2)
        parts = [p async for p in result.partitions()]
        assert [len(p) for p in parts] == [2, 2, 1]
        assert parts[0][1].name == "u1"
        scalars = await s.stream_scalars(select(User.name).order_by(User.id), chunk_size=10)
        assert await scalars.all() == [f"u{i}" for i in range(5)]


async def test_stream_autoflushes(db: Engine) -> None:
    async with AsyncSession(db) as s:
        u = User(name="new")
        s.add(u)
        got = [x async for x in await s.stream_scalars(select(User))]
        assert got == [u]


async def test_stream_closed_early_leaves_the_session_usable(db: Engine) -> None:
    await seed_users(db, *[f"u{i}" for i in range(10)])
    async with AsyncSession(db) as s:
        result = await s.stream_scalars(select(User).order_by(User.id), chunk_size=2)
        first = await result.first()
        assert first.name == "u0"
        assert await s.scalar(select(func.count()).select_from(User)) == 10
        await s.commit()
    assert db.pool.checked_out == 0


# -- ORM update() / delete() ------------------------------------------------------------------


async def test_orm_update_changes_held_objects(db: Engine) -> None:
    uids = await seed_users(db, "ann", "bob", "cid")
    async with AsyncSession(db) as s:
        objs = [await s.get(User, i) for i in uids]
        with capture_sql(db) as log:
            result = await s.execute(update(User).where(User.id != uids[2]).values(email=None, name="same"))
        assert log.count("UPDATE") == 1
        assert result.rowcount == 2
        assert [o.name for o in objs] == ["same", "same", "cid"]
        assert [o.email for o in objs] == [None, None, "cid@x"]
        assert not s.dirty
        with capture_sql(db) as log:
            await s.commit()
        assert log.count("UPDATE") == 0
    assert await core_rows(db, select(User.name, User.email).order_by(User.id)) == [
        ("same", None), ("same", None), ("cid", "cid@x")]


async def test_orm_update_with_sql_expression(db: Engine) -> None:
    await seed_account(db, "a", 10)
    await seed_account(db, "b", 20)
    async with AsyncSession(db) as s:
        a = await s.get(Account, "a")
        b = await s.get(Account, "b")
        await s.execute(update(Account).where(Account.code == "a").values(balance=Account.balance + 5))
        # updated in memory (evaluated or fetched), as synchronize_session="auto" does
        assert "balance" not in inspect(a).unloaded
        assert a.balance == 15
        assert b.balance == 20
        assert not s.is_modified(a)
        await s.commit()
    assert await core_rows(db, select(Account.code, Account.balance).order_by(Account.code)) == [
        ("a", 15), ("b", 20)]


async def test_orm_update_after_pending_change_flushes_first(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        u.email = "pending@x"
        await s.execute(update(User).where(User.email == "pending@x").values(name="matched"))
        assert u.name == "matched" and u.email == "pending@x"
        await s.commit()
    assert await core_rows(db, select(User.name, User.email)) == [("matched", "pending@x")]


async def test_orm_delete_removes_held_objects(db: Engine) -> None:
    uids = await seed_users(db, "ann", "bob", "cid")
    async with AsyncSession(db) as s:
        objs = [await s.get(User, i) for i in uids]
        result = await s.execute(delete(User).where(User.name.in_(["ann", "bob"])))
        assert result.rowcount == 2
        assert inspect(objs[0]).deleted and inspect(objs[1]).deleted
        assert objs[0] not in s and objs[1] not in s
        assert (User, (uids[0],)) not in s.identity_map
        assert inspect(objs[2]).persistent
        assert await s.get(User, uids[0]) is None
        await s.commit()
        assert inspect(objs[0]).detached
    assert await user_names(db) == {uids[2]: "cid"}


async def test_orm_delete_rolled_back_restores_objects(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        await s.execute(delete(User))
        assert inspect(u).deleted
        await s.rollback()
        assert inspect(u).persistent and s.identity_map[(User, (uid,))] is u
    assert await count(db, User) == 1


async def test_orm_delete_in_savepoint_rolled_back(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        async with s.begin_nested() as sp:
            await s.execute(delete(User).where(User.id == uid))
            await sp.rollback()
        assert inspect(u).persistent and u in s
        assert await s.get(User, uid) is u
        await s.commit()
    assert await count(db, User) == 1


async def test_orm_update_composite_key(db: Engine) -> None:
    async with AsyncSession(db) as s:
        s.add_all([Membership(org="a", user_no=1), Membership(org="a", user_no=2), Membership(org="b", user_no=1)])
        await s.commit()
    async with AsyncSession(db) as s:
        held = (await s.scalars(select(Membership).order_by(Membership.org, Membership.user_no))).all()
        await s.execute(update(Membership).where(Membership.org == "a").values(role="admin"))
        assert [m.role for m in held] == ["admin", "admin", "member"]
        await s.execute(delete(Membership).where(Membership.user_no == 1))
        assert [inspect(m).deleted for m in held] == [True, False, True]
        await s.commit()


async def test_orm_update_of_versioned_rows(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    await seed_posts(db, uid, "a", "b")
    async with AsyncSession(db) as s:
        posts = (await s.scalars(select(Post).order_by(Post.id))).all()
        await s.execute(update(Post).values(title="bulk"))
        assert [p.title for p in posts] == ["bulk", "bulk"]
        posts[0].title = "after"  # the version check must still pass
        await s.commit()
    assert await core_rows(db, select(Post.title).order_by(Post.id)) == [("after",), ("bulk",)]


async def test_stream_does_not_hold_the_whole_result(db: Engine) -> None:
    """A million-row result: reading the first rows of a stream fetches only a chunk or so."""
    import tracemalloc

    many = text("WITH RECURSIVE cnt(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM cnt WHERE x < 1000000) "
                "SELECT x, 'some padding to make rows bigger' AS p FROM cnt")
    async with AsyncSession(db) as s:
        tracemalloc.start()
        try:
            result = await s.stream(many, chunk_size=100)
            got = []
            async for row in result:
                got.append(row[0])
                if len(got) == 250:
                    break
            await result.close()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert got == list(range(1, 251))
        assert peak < 8 * 1024 * 1024, f"streaming 250 rows peaked at {peak // 1024} KiB"
        assert await s.scalar(select(func.count()).select_from(User)) == 0  # the session goes on
        await s.commit()


async def test_stream_of_text_rows_have_names(db: Engine) -> None:
    await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        rows = await (await s.stream(text("SELECT id, name FROM users"))).all()
        assert rows[0].name == "ann"


async def test_stream_abandoned_by_an_exception_leaves_no_open_cursor(db: Engine) -> None:
    """Leaving ``async for`` with an exception (no close()) and closing the session must not leave the
    driver's cursor open on the pooled connection."""
    meta = MetaData()
    Table("ts_stream_scratch", Column("id", int, primary_key=True), metadata=meta)
    await meta.create_all(db)
    result = None
    try:
        await seed_users(db, *[f"u{i}" for i in range(10)])
        with pytest.raises(KeyError):
            async with AsyncSession(db) as s:
                result = await s.stream_scalars(select(User), chunk_size=2)  # still referenced below
                async for _ in result:
                    raise KeyError("leave the loop")
        assert db.pool.checked_out == 0
        await meta.drop_all(db)  # needs no statement left open on the connection
    finally:
        if result is not None:
            await result.close()  # (what the session should have done) so later tests are not locked out
        await meta.drop_all(db)
