"""The identity map: one object per primary key per session, get()/get_one() and their keys,
populate_existing, with_for_update."""

from __future__ import annotations

import pytest

from aiouow import AsyncSession, Engine, exc, inspect, select

from .conftest import capture_sql
from .models import Membership, Post, User
from .session_support import rename_user_elsewhere, seed_posts, seed_users, user_names


async def test_one_object_per_primary_key(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        a = await s.get(User, uid)
        b = await s.get(User, uid)
        c = (await s.execute(select(User).where(User.id == uid))).scalar_one()
        d = (await s.scalars(select(User))).one()
        e = await s.scalar(select(User).where(User.name == "ann"))
        assert a is not None
        assert a is b is c is d is e
        assert len(s.identity_map) == 1


async def test_get_hit_emits_no_sql(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        with capture_sql(db) as log:
            again = await s.get(User, uid)
            one = await s.get_one(User, uid)
        assert again is u and one is u
        assert log.records == []


async def test_get_of_flushed_new_object_emits_no_sql(db: Engine) -> None:
    async with AsyncSession(db) as s:
        u = User(name="new")
        s.add(u)
        await s.flush()
        with capture_sql(db) as log:
            assert await s.get(User, u.id) is u
        assert log.records == []


async def test_get_miss_emits_one_select(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        with capture_sql(db) as log:
            u = await s.get(User, uid)
        assert u is not None and u.name == "ann"
        assert log.count("SELECT") == 1


async def test_get_missing_row(db: Engine) -> None:
    async with AsyncSession(db) as s:
        assert await s.get(User, 12345) is None
        with pytest.raises(exc.NoResultFound, match="User"):
            await s.get_one(User, 12345)


async def test_get_of_expired_object_reloads_it_in_place(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        await s.commit()  # expire_on_commit
        await rename_user_elsewhere(db, uid, "bob")
        with capture_sql(db) as log:
            again = await s.get(User, uid)
        assert again is u
        assert log.count("SELECT") == 1
        assert u.name == "bob"


async def test_get_of_partially_expired_object_reloads(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        s.expire(u, ["name"])
        with capture_sql(db) as log:
            assert await s.get(User, uid) is u
        assert log.count("SELECT") == 1
        assert u.name == "ann"


async def test_query_keeps_unflushed_changes_of_held_objects(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        u.name = "changed"
        with s.no_autoflush:
            again = (await s.scalars(select(User))).one()
        assert again is u
        assert u.name == "changed"
        assert u in s.dirty


async def test_query_refills_expired_attributes_of_held_objects(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db, expire_on_commit=False) as s:
        u = await s.get(User, uid)
        s.expire(u)
        assert "name" in inspect(u).unloaded
        await s.scalars(select(User))
        assert "name" not in inspect(u).unloaded
        assert u.name == "ann"


async def test_identity_map_view(db: Engine) -> None:
    uids = await seed_users(db, "ann", "bob")
    async with AsyncSession(db) as s:
        objs = (await s.scalars(select(User).order_by(User.id))).all()
        im = s.identity_map
        assert len(im) == 2
        assert (User, (uids[0],)) in im
        assert im[(User, (uids[1],))] is objs[1]
        assert (User, (999,)) not in im
        assert sorted(id(o) for o in im.values()) == sorted(id(o) for o in objs)
        assert set(im) == {(User, (uids[0],)), (User, (uids[1],))}
        assert not hasattr(im, "__setitem__")
        with pytest.raises(TypeError):
            im[(User, (5,))] = objs[0]  # type: ignore[index]


async def test_get_accepts_tuple_and_dict_keys(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        a = await s.get(User, uid)
        assert await s.get(User, (uid,)) is a
        assert await s.get(User, {"id": uid}) is a
        assert await s.get_one(User, {"id": uid}) is a


async def test_composite_keys(db: Engine) -> None:
    async with AsyncSession(db) as s:
        s.add_all([Membership(org="acme", user_no=1, role="admin"), Membership(org="acme", user_no=2),
                   Membership(org="zeta", user_no=1)])
        await s.commit()
    async with AsyncSession(db) as s:
        m = await s.get(Membership, ("acme", 1))
        assert m is not None and m.role == "admin"
        assert inspect(m).identity == ("acme", 1)
        assert (Membership, ("acme", 1)) in s.identity_map
        with capture_sql(db) as log:
            assert await s.get(Membership, {"user_no": 1, "org": "acme"}) is m
            assert await s.get(Membership, ["acme", 1]) is m
        assert log.records == []
        other = await s.get(Membership, ("acme", 2))
        assert other is not None and other is not m and other.role == "member"
        assert await s.get(Membership, ("zeta", 2)) is None
        rows = (await s.scalars(select(Membership).order_by(Membership.org, Membership.user_no))).all()
        assert rows[0] is m and rows[1] is other


async def test_get_populate_existing_overwrites(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db, expire_on_commit=False) as s:
        u = await s.get(User, uid)
        await s.commit()
        await rename_user_elsewhere(db, uid, "bob")
        with capture_sql(db) as log:
            assert await s.get(User, uid) is u
        assert log.records == []
        assert u.name == "ann"  # the identity map answers, stale
        with capture_sql(db) as log:
            assert await s.get(User, uid, populate_existing=True) is u
        assert log.count("SELECT") == 1
        assert u.name == "bob"
        assert not s.is_modified(u)


async def test_populate_existing_discards_unflushed_changes(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        u.name = "local"
        with s.no_autoflush:
            await s.execute(select(User).execution_options(populate_existing=True))
        assert u.name == "ann"
        assert u not in s.dirty
        assert not inspect(u).modified
        await s.commit()
    assert (await user_names(db)) == {uid: "ann"}


async def test_get_with_for_update(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db, expire_on_commit=False) as s:
        u = await s.get(User, uid)
        await s.commit()
        await rename_user_elsewhere(db, uid, "bob")
        with capture_sql(db) as log:
            locked = await s.get(User, uid, with_for_update=True)
        assert locked is u
        assert u.name == "bob"  # a locking read refreshes the held object
        selects = [r for r in log.statements if r.upper().startswith("SELECT")]
        assert len(selects) == 1
        assert ("FOR UPDATE" in selects[0].upper()) == (db.dialect.name == "postgresql")
        assert s.in_transaction()
        await s.commit()


async def test_get_with_for_update_locks_the_row(db: Engine) -> None:
    # SQLite has no row locks: a locking read takes the single writer, which blocks the same way
    import asyncio

    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s1, AsyncSession(db) as s2:
        u = await s1.get(User, uid, with_for_update=True)
        assert u is not None
        other = asyncio.ensure_future(s2.get(User, uid, with_for_update=True))
        await asyncio.sleep(0.3)
        assert not other.done()  # blocked on the row lock
        u.name = "first"
        await s1.commit()
        got = await asyncio.wait_for(other, 5)
        assert got is not None and got.name == "first"
        await s2.rollback()


async def test_get_of_deleted_object(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        await s.delete(u)
        with capture_sql(db) as log:
            # SQLAlchemy: an object in the identity map is returned without SQL, even if marked for deletion
            assert await s.get(User, uid) is u
        assert log.records == []
        await s.flush()
        assert await s.get(User, uid) is None
        assert (User, (uid,)) not in s.identity_map


async def test_get_of_expired_object_marked_for_deletion_without_autoflush(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        s.expire(u)
        await s.delete(u)
        with s.no_autoflush:
            assert await s.get(User, uid) is u  # the row is still there: as in SQLAlchemy
            assert (await s.scalars(select(User))).all() == [u]
        assert u.name == "ann" and u in s.deleted
        await s.commit()
    assert await user_names(db) == {}


async def test_objects_from_joined_rows_are_identity_mapped(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    await seed_posts(db, uid, "p1", "p2")
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        rows = (await s.execute(select(User, Post).join(Post, Post.author_id == User.id).order_by(Post.id))).all()
        assert len(rows) == 2
        assert rows[0][0] is u and rows[1][0] is u
        p1 = await s.get(Post, rows[0][1].id)
        assert p1 is rows[0][1]
        assert rows[0].User is u and rows[0].Post is p1


async def test_sessions_have_separate_identity_maps(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s1, AsyncSession(db) as s2:
        a = await s1.get(User, uid)
        await s1.commit()
        b = await s2.get(User, uid)
        assert a is not b
        assert inspect(a).session is s1 and inspect(b).session is s2
        await s2.commit()

