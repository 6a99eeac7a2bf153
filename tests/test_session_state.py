"""Instance state: inspect(), new/dirty/deleted, is_modified, expire/refresh/expunge/merge, and the
NotLoadedError / DetachedInstanceError messages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar

import pytest

from aiouow import AsyncSession, Engine, MetaData, Model, column, exc, inspect, select

from .conftest import capture_sql
from .models import Account, Membership, User
from .session_support import delete_user_elsewhere, rename_user_elsewhere, seed_users, user_names


def status(obj: object) -> str:
    st = inspect(obj)
    flags = [k for k in ("transient", "pending", "persistent", "deleted", "detached") if getattr(st, k)]
    assert len(flags) == 1, flags
    return flags[0]


# -- the life cycle -----------------------------------------------------------------------


async def test_life_cycle(db: Engine) -> None:
    async with AsyncSession(db) as s:
        u = User(name="ann")
        assert status(u) == "transient"
        assert inspect(u).session is None and inspect(u).identity is None
        s.add(u)
        assert status(u) == "pending"
        assert inspect(u).session is s and u in s and u in s.new
        assert inspect(u).identity is None
        await s.flush()
        assert status(u) == "persistent"
        assert inspect(u).identity == (u.id,)
        assert u not in s.new
        await s.delete(u)
        assert status(u) == "persistent" and u in s.deleted
        await s.flush()
        assert status(u) == "deleted"
        assert u not in s and u not in s.deleted
        assert (User, (u.id,)) not in s.identity_map
        await s.commit()
        assert status(u) == "detached"
        assert inspect(u).session is None


async def test_loaded_object_state(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        st = inspect(u)
        assert st.persistent and not st.modified
        assert st.session is s
        assert st.identity == (uid,)
        assert not ({"id", "name", "email", "created_at"} & st.unloaded)
        assert u in s and u not in s.dirty
        assert st.attrs["name"].history == ((), ("ann",), ())


async def test_loading_does_not_run_init(db: Engine) -> None:
    class TsBase(Model):
        metadata = MetaData()

    class TsCounted(TsBase):
        __tablename__ = "ts_counted"
        calls: ClassVar[int] = 0
        id: int = column(primary_key=True)
        name: str = column()

        def __init__(self, **kw: object) -> None:
            type(self).calls += 1
            super().__init__(**kw)

    await TsBase.metadata.drop_all(db)
    await TsBase.metadata.create_all(db)
    try:
        async with AsyncSession(db) as s:
            s.add_all([TsCounted(name="a"), TsCounted(name="b")])
            await s.commit()
        assert TsCounted.calls == 2
        async with AsyncSession(db) as s:
            objs = (await s.scalars(select(TsCounted))).all()
            assert len(objs) == 2
            assert not any(inspect(o).modified for o in objs)
            assert not s.dirty
        assert TsCounted.calls == 2
    finally:
        await TsBase.metadata.drop_all(db)


async def test_unset_column_of_new_object_reads_none(db: Engine) -> None:
    async with AsyncSession(db) as s:
        u = User()
        assert u.name is None and u.id is None
        assert u.email is None  # a default
        s.add(u)
        assert u.name is None
        s.expunge(u)


async def test_history(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    u = User(name="new")
    assert inspect(u).attrs["name"].history == (("new",), (), ())
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        u.name = "bob"
        h = inspect(u).attrs["name"].history
        assert h.added == ("bob",) and h.deleted == ("ann",) and h.unchanged == ()
        assert h.has_changes()
        assert inspect(u).attrs["email"].history == ((), ("ann@x",), ())
        assert inspect(u).modified
        await s.flush()
        assert inspect(u).attrs["name"].history == ((), ("bob",), ())
        assert not inspect(u).modified


# -- new / dirty / deleted / is_modified -----------------------------------------------------


async def test_new_dirty_deleted(db: Engine) -> None:
    uids = await seed_users(db, "ann", "bob")
    async with AsyncSession(db) as s:
        ann = await s.get(User, uids[0])
        bob = await s.get(User, uids[1])
        new = User(name="cid")
        s.add(new)
        ann.name = "ANN"
        await s.delete(bob)
        assert list(s.new) == [new] and len(s.new) == 1
        assert list(s.dirty) == [ann]
        assert list(s.deleted) == [bob]
        assert bob not in s.dirty
        await s.flush()
        assert not s.new and not s.dirty and not s.deleted


async def test_add_cancels_a_pending_delete(db: Engine) -> None:
    """As in SQLAlchemy: add() of an object marked by delete() (not flushed yet) un-marks it."""
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        await s.delete(u)
        s.add(u)
        assert u not in s.deleted
        await s.commit()
    assert await user_names(db) == {uid: "ann"}


async def test_is_modified(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        assert not s.is_modified(u)
        u.name = "ann"
        assert not s.is_modified(u)  # no net change
        u.name = "bob"
        assert s.is_modified(u)
        u.name = "ann"
        assert not s.is_modified(u)
        u.email = None
        assert s.is_modified(u)
        await s.flush()
        assert not s.is_modified(u)


# -- expunge --------------------------------------------------------------------------------


async def test_expunge(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        p = User(name="pending")
        s.add(p)
        s.expunge(u)
        s.expunge(p)
        assert status(u) == "detached" and status(p) == "transient"
        assert u not in s and p not in s
        assert len(s.identity_map) == 0 and not s.new
        again = await s.get(User, uid)
        assert again is not u
        with pytest.raises(exc.InvalidRequestError, match="not present"):
            s.expunge(u)
        await s.commit()
    assert await user_names(db) == {uid: "ann"}  # the expunged pending object was never inserted


async def test_expunge_all(db: Engine) -> None:
    uids = await seed_users(db, "ann", "bob")
    async with AsyncSession(db) as s:
        objs = [await s.get(User, i) for i in uids]
        objs[0].name = "changed"
        s.add(User(name="p"))
        s.expunge_all()
        assert all(status(o) == "detached" for o in objs)
        assert not s.new and not s.dirty and len(s.identity_map) == 0
        await s.commit()
    assert sorted((await user_names(db)).values()) == ["ann", "bob"]


# -- expire / refresh ----------------------------------------------------------------------


async def test_expire_all_attributes(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        u.name = "unflushed"
        s.expire(u)
        assert {"name", "email", "created_at"} <= inspect(u).unloaded
        assert u.id == uid  # primary key stays readable
        assert not s.is_modified(u) and u not in s.dirty  # pending changes are discarded
        with pytest.raises(exc.NotLoadedError) as info:
            _ = u.name
        msg = str(info.value)
        assert "User.name" in msg and "session.expire()" in msg and "refresh" in msg
        with capture_sql(db) as log:
            await s.commit()
        assert log.count("UPDATE") == 0
    assert await user_names(db) == {uid: "ann"}


async def test_expire_some_attributes(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        u.name = "x"
        u.email = "changed@x"
        s.expire(u, ["name"])
        assert "name" in inspect(u).unloaded and "email" not in inspect(u).unloaded
        assert u.email == "changed@x"
        assert s.is_modified(u)
        await s.commit()
    assert await user_names(db) == {uid: "ann"}
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        assert u.email == "changed@x"
        with pytest.raises(exc.ArgumentError, match="nope"):
            s.expire(u, ["nope"])


async def test_expire_all(db: Engine) -> None:
    uids = await seed_users(db, "ann", "bob")
    async with AsyncSession(db) as s:
        objs = [await s.get(User, i) for i in uids]
        objs[0].name = "x"
        s.expire_all()
        for o in objs:
            assert "name" in inspect(o).unloaded
        assert not s.dirty
        with pytest.raises(exc.NotLoadedError, match="expire_all"):
            _ = objs[1].name
        await s.refresh(objs[0])
        assert objs[0].name == "ann"


async def test_expire_of_non_persistent_raises(db: Engine) -> None:
    async with AsyncSession(db) as s:
        u = User(name="x")
        with pytest.raises(exc.InvalidRequestError, match="transient"):
            s.expire(u)
        s.add(u)
        with pytest.raises(exc.InvalidRequestError, match="pending"):
            s.expire(u)
        s.expunge(u)


async def test_refresh(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db, expire_on_commit=False) as s:
        u = await s.get(User, uid)
        await s.commit()
        await rename_user_elsewhere(db, uid, "bob")
        assert u.name == "ann"
        u.email = "local@x"
        with s.no_autoflush:
            await s.refresh(u)
        assert u.name == "bob"
        assert u.email == "ann@x"  # refresh overwrites unflushed changes
        assert not s.is_modified(u) and u not in s.dirty
        await s.commit()


async def test_refresh_some_attributes(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db, expire_on_commit=False) as s:
        u = await s.get(User, uid)
        await s.commit()
        await rename_user_elsewhere(db, uid, "bob")
        s.expire(u)
        with capture_sql(db) as log:
            await s.refresh(u, ["name"])
        assert log.count("SELECT") == 1
        assert u.name == "bob"
        assert "email" in inspect(u).unloaded
        await s.commit()


async def test_refresh_of_vanished_row(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        await s.commit()
        await delete_user_elsewhere(db, uid)
        with pytest.raises(exc.ObjectDeletedError, match="User"):
            await s.refresh(u)
        await s.rollback()


async def test_refresh_of_non_persistent_raises(db: Engine) -> None:
    async with AsyncSession(db) as s:
        with pytest.raises(exc.InvalidRequestError, match="transient"):
            await s.refresh(User(name="x"))


# -- the NotLoadedError messages --------------------------------------------------------------


async def test_not_loaded_message_after_commit(db: Engine) -> None:
    async with AsyncSession(db) as s:
        u = User(name="ann")
        s.add(u)
        await s.commit()
        with pytest.raises(exc.NotLoadedError) as info:
            _ = u.email
        msg = str(info.value)
        assert "User.email" in msg
        assert "expired by commit()" in msg
        assert "await session.refresh(obj, ['email'])" in msg
        assert "expire_on_commit=False" in msg
        assert not isinstance(info.value, AttributeError)
        with pytest.raises(exc.NotLoadedError):
            hasattr(u, "email")  # never silently False


async def test_not_loaded_message_after_rollback(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        await s.rollback()
        with pytest.raises(exc.NotLoadedError, match=r"User\.name.*rollback\(\)"):
            _ = u.name


async def test_detached_instance_error(db: Engine) -> None:
    async with AsyncSession(db) as s:
        u = User(name="ann")
        s.add(u)
        await s.commit()
    assert status(u) == "detached"
    assert u.id is not None
    with pytest.raises(exc.DetachedInstanceError) as info:
        _ = u.name
    assert isinstance(info.value, exc.NotLoadedError)
    msg = str(info.value)
    assert "User.name" in msg and "detached" in msg
    assert "merge" in msg or "session.add" in msg


async def test_detached_object_keeps_loaded_values(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db, expire_on_commit=False) as s:
        u = await s.get(User, uid)
        await s.commit()
    assert status(u) == "detached" and u.name == "ann"


async def test_detached_object_can_be_added_back(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db, expire_on_commit=False) as s:
        u = await s.get(User, uid)
    u.name = "changed while detached"
    async with AsyncSession(db) as s:
        s.add(u)
        assert status(u) == "persistent" and inspect(u).session is s
        assert s.identity_map[(User, (uid,))] is u
        assert u in s.dirty
        await s.commit()
    assert await user_names(db) == {uid: "changed while detached"}


async def test_delete_of_detached_object(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db, expire_on_commit=False) as s:
        u = await s.get(User, uid)
    async with AsyncSession(db) as s:
        await s.delete(u)
        assert u in s.deleted and status(u) == "persistent"
        await s.commit()
    assert await user_names(db) == {}


# -- merge ---------------------------------------------------------------------------------


async def test_merge_loads_and_copies(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db, expire_on_commit=False) as s:
        detached = await s.get(User, uid)
    detached.name = "merged"
    async with AsyncSession(db) as s:
        with capture_sql(db) as log:
            m = await s.merge(detached)
        assert log.count("SELECT") == 1
        assert m is not detached
        assert status(m) == "persistent" and status(detached) == "detached"
        assert m.name == "merged" and m.email == "ann@x"
        assert m in s.dirty
        assert await s.merge(detached) is m  # now from the identity map
        await s.commit()
    assert await user_names(db) == {uid: "merged"}


async def test_merge_onto_held_object(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    copy = User(id=uid, name="copy", email="copy@x")
    async with AsyncSession(db) as s:
        held = await s.get(User, uid)
        with capture_sql(db) as log:
            m = await s.merge(copy)
        assert log.records == []
        assert m is held and held.name == "copy" and held.email == "copy@x"
        assert status(copy) == "transient"
        await s.commit()
    assert await user_names(db) == {uid: "copy"}


async def test_merge_of_new_rows(db: Engine) -> None:
    async with AsyncSession(db) as s:
        no_pk = User(name="fresh")
        m = await s.merge(no_pk)
        assert m is not no_pk and status(m) == "pending" and status(no_pk) == "transient"
        given_pk = Account(code="zz", balance=3)
        m2 = await s.merge(given_pk)  # no such row: becomes pending
        assert status(m2) == "pending" and m2.balance == 3
        await s.commit()
    assert await user_names(db) != {}
    async with AsyncSession(db) as s:
        acct = await s.get(Account, "zz")
        assert acct is not None and acct.balance == 3 and acct.version == 1


async def test_merge_of_persistent_object_returns_it(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        assert await s.merge(u) is u


async def test_merge_load_false(db: Engine) -> None:
    uids = await seed_users(db, "ann", "bob")
    async with AsyncSession(db, expire_on_commit=False) as s:
        clean = await s.get(User, uids[0])
        dirty = await s.get(User, uids[1])
    dirty.name = "changed"
    async with AsyncSession(db) as s:
        with capture_sql(db) as log:
            m = await s.merge(clean, load=False)
        assert log.records == []
        assert m is not clean and status(m) == "persistent"
        assert m.name == "ann"
        assert not inspect(m).modified and m not in s.dirty
        assert s.identity_map[(User, (uids[0],))] is m
        with pytest.raises(exc.InvalidRequestError, match="load=False"):
            await s.merge(dirty, load=False)
        with capture_sql(db) as log:
            await s.commit()
        assert log.count("UPDATE") == 0


async def test_merge_composite_key(db: Engine) -> None:
    async with AsyncSession(db) as s:
        s.add(Membership(org="o", user_no=1, role="member"))
        await s.commit()
    async with AsyncSession(db) as s:
        m = await s.merge(Membership(org="o", user_no=1, role="owner"))
        assert status(m) == "persistent" and m.role == "owner"
        await s.commit()
    async with AsyncSession(db) as s:
        got = await s.get(Membership, ("o", 1))
        assert got is not None and got.role == "owner"


@pytest.fixture
async def session(db: Engine) -> AsyncIterator[AsyncSession]:
    async with AsyncSession(db) as s:
        yield s


async def test_contains(session: AsyncSession) -> None:
    u = User(name="x")
    assert u not in session
    session.add(u)
    assert u in session
    assert object() not in session
    session.expunge(u)
    assert u not in session


async def test_merge_of_expired_detached_object_copies_nothing_unloaded(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        await s.commit()  # expired, then detached by close
    assert "name" in inspect(u).unloaded
    async with AsyncSession(db) as s:
        m = await s.merge(u)
        assert m.name == "ann" and not s.is_modified(m)
        await s.commit()
    assert await user_names(db) == {uid: "ann"}


async def test_merge_from_another_live_session(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db, expire_on_commit=False) as s1, AsyncSession(db) as s2:
        u1 = await s1.get(User, uid)
        await s1.commit()
        u1.name = "from s1"
        u2 = await s2.merge(u1)
        assert u2 is not u1 and inspect(u2).session is s2 and inspect(u1).session is s1
        assert u2.name == "from s1" and u2 in s2.dirty
        await s2.commit()
        await s1.rollback()
    assert await user_names(db) == {uid: "from s1"}
