"""Transactions: commit / rollback / close, failed flushes, SAVEPOINTs, begin() context managers,
optimistic concurrency, sessionmaker."""

from __future__ import annotations

import pytest

from aiouow import AsyncSession, Engine, NestedTransaction, delete, exc, inspect, select, sessionmaker, update

from .conftest import capture_sql
from .models import Account, Post, User
from .session_support import (
    core_exec,
    core_rows,
    count,
    delete_user_elsewhere,
    rename_user_elsewhere,
    seed_account,
    seed_posts,
    seed_users,
    user_names,
)


class Boom(Exception):
    pass


# -- commit ------------------------------------------------------------------------------


async def test_commit_persists_and_expires(db: Engine) -> None:
    async with AsyncSession(db) as s:
        u = User(name="ann")
        s.add(u)
        await s.commit()
        assert not s.in_transaction()
        assert inspect(u).persistent
        assert {"name", "email", "created_at"} <= inspect(u).unloaded
        assert u.id is not None  # primary keys stay readable
        with pytest.raises(exc.NotLoadedError, match="commit"):
            _ = u.name
        assert await user_names(db) == {u.id: "ann"}
        with capture_sql(db) as log:
            assert await s.get(User, u.id) is u
        assert log.count("SELECT") == 1
        assert u.name == "ann"


async def test_commit_without_expire_on_commit_keeps_values(db: Engine) -> None:
    async with AsyncSession(db, expire_on_commit=False) as s:
        u = User(name="ann")
        s.add(u)
        await s.commit()
        assert inspect(u).unloaded <= {"posts"}
        with capture_sql(db) as log:
            assert u.name == "ann"
            assert await s.get(User, u.id) is u
        assert log.records == []


async def test_changes_after_commit_are_committed_by_the_next_commit(db: Engine) -> None:
    """Modifying a persistent object after commit() (no new transaction yet) must not be lost."""
    async with AsyncSession(db, expire_on_commit=False) as s:
        u = User(name="ann")
        s.add(u)
        await s.commit()
        assert not s.in_transaction()
        u.name = "bob"
        assert u in s.dirty
        await s.commit()
        assert u not in s.dirty
    assert await user_names(db) == {u.id: "bob"}


async def test_commit_on_a_fresh_session_does_nothing(db: Engine) -> None:
    async with AsyncSession(db) as s:
        with capture_sql(db) as log:
            await s.commit()
            await s.rollback()
        assert log.records == []
        assert not s.in_transaction()


async def test_commit_releases_the_connection(db: Engine) -> None:
    async with AsyncSession(db) as s:
        s.add(User(name="ann"))
        await s.flush()
        assert db.pool.checked_out == 1
        await s.commit()
        assert db.pool.checked_out == 0


# -- rollback ----------------------------------------------------------------------------


async def test_rollback_expunges_pending(db: Engine) -> None:
    async with AsyncSession(db) as s:
        flushed = User(name="flushed")
        s.add(flushed)
        await s.flush()
        unflushed = User(name="unflushed")
        s.add(unflushed)
        await s.rollback()
        for obj in (flushed, unflushed):
            assert inspect(obj).transient
            assert obj not in s
            assert inspect(obj).session is None
        assert len(s.identity_map) == 0
        assert not s.new
        assert unflushed.name == "unflushed"  # a transient object keeps its values
    assert await count(db, User) == 0


async def test_rolled_back_pending_object_can_be_added_again(db: Engine) -> None:
    async with AsyncSession(db) as s:
        u = User(name="ann")
        s.add(u)
        await s.flush()
        await s.rollback()
        s.add(u)
        await s.commit()
    assert await user_names(db) == {u.id: "ann"}


async def test_rollback_restores_deleted(db: Engine) -> None:
    uids = await seed_users(db, "ann", "bob")
    async with AsyncSession(db) as s:
        ann = await s.get(User, uids[0])
        bob = await s.get(User, uids[1])
        await s.delete(ann)
        await s.flush()
        await s.delete(bob)  # marked, not flushed
        assert inspect(ann).deleted
        await s.rollback()
        for obj, uid in ((ann, uids[0]), (bob, uids[1])):
            assert inspect(obj).persistent
            assert obj in s
            assert s.identity_map[(User, (uid,))] is obj
        assert not s.deleted
        assert await s.get(User, uids[0]) is ann
        assert ann.name == "ann"
        await s.commit()
    assert await count(db, User) == 2


async def test_rollback_expires_persistent(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        u.name = "changed"
        await s.flush()
        u.email = "unflushed@x"
        await s.rollback()
        assert inspect(u).persistent
        assert {"name", "email"} <= inspect(u).unloaded
        assert u not in s.dirty
        with pytest.raises(exc.NotLoadedError, match="rollback"):
            _ = u.name
        await s.refresh(u)
        assert (u.name, u.email) == ("ann", "ann@x")
        await s.commit()
    assert await user_names(db) == {uid: "ann"}


async def test_rollback_releases_the_connection(db: Engine) -> None:
    async with AsyncSession(db) as s:
        s.add(User(name="ann"))
        await s.flush()
        await s.rollback()
        assert db.pool.checked_out == 0
        assert not s.in_transaction()


# -- a failed flush ---------------------------------------------------------------------


async def _failed_flush(db: Engine, s: AsyncSession) -> User:
    """Leave ``s`` after a failed flush (duplicate unique email); returns a persistent user in it."""
    (uid,) = await seed_users(db, "ann")
    held = await s.get(User, uid)
    s.add(User(name="dup", email="ann@x"))
    with pytest.raises(exc.IntegrityError):
        await s.flush()
    return held


async def test_failed_flush_requires_rollback(db: Engine) -> None:
    async with AsyncSession(db) as s:
        held = await _failed_flush(db, s)
        assert not s.is_active
        assert db.pool.checked_out == 0  # the database transaction is already rolled back
        ops = {
            "execute": lambda: s.execute(select(User)),
            "scalars": lambda: s.scalars(select(User)),
            "scalar": lambda: s.scalar(select(User.id)),
            "flush": lambda: s.flush(),
            "commit": lambda: s.commit(),
            "get miss": lambda: s.get(User, 999),
            "refresh": lambda: s.refresh(held),
        }
        for name, op in ops.items():
            with pytest.raises(exc.PendingRollbackError) as info:
                await op()
            assert isinstance(info.value.orig, exc.IntegrityError), name
            assert "rollback()" in str(info.value)
        await s.rollback()
        assert s.is_active
        assert (await s.scalars(select(User.name))).all() == ["ann"]


async def test_identity_map_hits_work_after_failed_flush(db: Engine) -> None:
    async with AsyncSession(db) as s:
        held = await _failed_flush(db, s)
        assert await s.get(User, held.id) is held
        assert held.name == "ann"
        await s.rollback()


async def test_failed_flush_leaves_objects_unchanged(db: Engine) -> None:
    async with AsyncSession(db) as s:
        (uid,) = await seed_users(db, "ann")
        held = await s.get(User, uid)
        held.name = "renamed"
        good = User(name="good")
        bad = User(name="dup", email="ann@x")
        s.add_all([good, bad])
        with pytest.raises(exc.IntegrityError):
            await s.flush()
        assert inspect(good).pending and inspect(bad).pending
        assert good.id is None
        assert held in s.dirty
        await s.rollback()
        assert inspect(good).transient and inspect(bad).transient
        assert "name" in inspect(held).unloaded
    assert await user_names(db) == {uid: "ann"}


async def test_session_usable_after_rollback_of_failed_flush(db: Engine) -> None:
    async with AsyncSession(db) as s:
        await _failed_flush(db, s)
        await s.rollback()
        s.add(User(name="fine", email="fine@x"))
        await s.commit()
    assert sorted((await user_names(db)).values()) == ["ann", "fine"]


async def test_close_clears_a_failed_flush(db: Engine) -> None:
    async with AsyncSession(db) as s:
        await _failed_flush(db, s)
        await s.close()
        assert s.is_active
        assert await s.scalar(select(User.name)) == "ann"


async def test_failed_commit_flush_raises_the_error_then_pending_rollback(db: Engine) -> None:
    async with AsyncSession(db) as s:
        await seed_users(db, "ann")
        s.add(User(id=1, name="same pk"))
        with pytest.raises(exc.IntegrityError):
            await s.commit()
        with pytest.raises(exc.PendingRollbackError):
            await s.commit()
        await s.rollback()
        await s.commit()


# -- close -----------------------------------------------------------------------------------


async def test_close_expunges_and_returns_the_connection(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    s = AsyncSession(db)
    held = await s.get(User, uid)
    pending = User(name="p")
    s.add(pending)
    await s.flush()
    assert db.pool.checked_out == 1
    await s.close()
    assert db.pool.checked_out == 0
    assert inspect(held).detached and inspect(held).session is None
    assert inspect(pending).detached  # as in SQLAlchemy: flushed objects are detached by close()
    assert len(s.identity_map) == 0 and not s.new
    assert not s.in_transaction()
    assert held.name == "ann"  # closing does not expire
    assert await count(db, User) == 1
    # reusable
    again = await s.get(User, uid)
    assert again is not held
    s.add(User(name="bob"))
    await s.commit()
    await s.close()
    assert db.pool.checked_out == 0
    assert sorted((await user_names(db)).values()) == ["ann", "bob"]


async def test_async_with_session_closes(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        u.name = "uncommitted"
        await s.flush()
    assert inspect(u).detached
    assert db.pool.checked_out == 0
    assert await user_names(db) == {uid: "ann"}


async def test_close_twice_is_harmless(db: Engine) -> None:
    s = AsyncSession(db)
    await s.close()
    await s.close()
    assert db.pool.checked_out == 0


# -- begin() ---------------------------------------------------------------------------------


async def test_sessionmaker_begin_commits(db: Engine) -> None:
    Session = sessionmaker(db)
    async with Session.begin() as s:
        assert isinstance(s, AsyncSession) and s.in_transaction()
        u = User(name="ann")
        s.add(u)
    assert inspect(u).detached  # closed
    assert db.pool.checked_out == 0
    assert await user_names(db) == {u.id: "ann"}


async def test_sessionmaker_begin_rolls_back_on_error(db: Engine) -> None:
    Session = sessionmaker(db)
    with pytest.raises(Boom):
        async with Session.begin() as s:
            s.add(User(name="ann"))
            await s.flush()
            raise Boom
    assert db.pool.checked_out == 0
    assert await count(db, User) == 0


async def test_session_begin_commits(db: Engine) -> None:
    async with AsyncSession(db) as s:
        async with s.begin() as tx:
            assert s.in_transaction() and tx.is_active
            s.add(User(name="ann"))
        assert not tx.is_active
        assert not s.in_transaction()
        assert await user_names(db) != {}


async def test_session_begin_rolls_back_on_error(db: Engine) -> None:
    async with AsyncSession(db) as s:
        u = User(name="ann")
        with pytest.raises(Boom):
            async with s.begin():
                s.add(u)
                await s.flush()
                raise Boom
        assert not s.in_transaction()
        assert inspect(u).transient
    assert await count(db, User) == 0


async def test_session_and_begin_in_one_with(db: Engine) -> None:
    async with AsyncSession(db) as s, s.begin():
        s.add(User(name="ann"))
    assert db.pool.checked_out == 0
    assert await count(db, User) == 1


async def test_begin_when_a_transaction_is_active_raises(db: Engine) -> None:
    async with AsyncSession(db) as s:
        await s.execute(select(User))
        assert s.in_transaction()
        with pytest.raises(exc.InvalidRequestError, match="already"):
            s.begin()


async def test_begin_block_commit_inside_then_exit(db: Engine) -> None:
    async with AsyncSession(db) as s:
        async with s.begin() as tx:
            s.add(User(name="ann"))
            await tx.commit()
            assert not tx.is_active
        assert await count(db, User) == 1


async def test_operations_on_a_closed_begin_transaction_raise(db: Engine) -> None:
    async with AsyncSession(db) as s:
        async with s.begin() as tx:
            s.add(User(name="ann"))
        with pytest.raises(exc.InvalidRequestError, match="closed"):
            await tx.commit()
        with pytest.raises(exc.InvalidRequestError, match="closed"):
            await tx.rollback()
        tx2 = s.begin()
        await tx2.rollback()
        with pytest.raises(exc.InvalidRequestError, match="closed"):
            await tx2.commit()


async def test_autobegin_false(db: Engine) -> None:
    async with AsyncSession(db, autobegin=False) as s:
        assert not s.in_transaction()
        with pytest.raises(exc.InvalidRequestError, match="begin"):
            await s.execute(select(User))
        with pytest.raises(exc.InvalidRequestError, match="begin"):
            s.add(User(name="ann"))
        async with s.begin():
            s.add(User(name="ann"))
        assert not s.in_transaction()
        with pytest.raises(exc.InvalidRequestError):
            await s.get(User, 1)
    assert await count(db, User) == 1


# -- SAVEPOINTs ------------------------------------------------------------------------------


async def test_begin_nested_emits_savepoint(db: Engine) -> None:
    async with AsyncSession(db) as s:
        with capture_sql(db) as log:
            async with s.begin_nested() as sp:
                assert isinstance(sp, NestedTransaction)
                assert s.in_nested_transaction()
                s.add(User(name="ann"))
        assert any(r.startswith("SAVEPOINT") for r in log.records)
        assert any(r.startswith("RELEASE") for r in log.records)
        assert not s.in_nested_transaction() and s.in_transaction()
        await s.commit()
    assert await count(db, User) == 1


async def test_savepoint_rollback_discards_only_work_since(db: Engine) -> None:
    uids = await seed_users(db, "ann", "bob", "cid")
    async with AsyncSession(db) as s:
        ann = await s.get(User, uids[0])
        bob = await s.get(User, uids[1])
        cid = await s.get(User, uids[2])
        outer_new = User(name="outer")
        s.add(outer_new)
        ann.name = "ann-outer"
        sp = await s.begin_nested()  # flushes the outer work first
        assert inspect(outer_new).persistent
        inner_new = User(name="inner")
        inner_flushed = User(name="inner-flushed")
        s.add(inner_flushed)
        await s.flush()
        s.add(inner_new)
        bob.name = "bob-inner"
        await s.delete(cid)
        await s.flush()
        with capture_sql(db) as log:
            await sp.rollback()
        assert any(r.startswith("ROLLBACK TO SAVEPOINT") for r in log.records)
        assert s.in_transaction() and not s.in_nested_transaction()
        # identity map: inner additions gone, inner deletion undone, outer work kept
        assert inspect(inner_new).transient and inspect(inner_flushed).transient
        assert inner_new not in s and inner_flushed not in s
        assert inspect(cid).persistent and s.identity_map[(User, (uids[2],))] is cid
        assert inspect(outer_new).persistent and outer_new in s
        assert ann.name == "ann-outer"
        assert "name" in inspect(bob).unloaded or bob.name == "bob"
        rows = dict((await s.execute(select(User.id, User.name))).all())
        assert sorted(rows.values()) == ["ann-outer", "bob", "cid", "outer"]
        await s.refresh(bob)
        assert bob.name == "bob"
        await s.commit()
    assert sorted((await user_names(db)).values()) == ["ann-outer", "bob", "cid", "outer"]


async def test_savepoint_context_manager_rolls_back_on_error(db: Engine) -> None:
    async with AsyncSession(db) as s:
        kept = User(name="kept")
        s.add(kept)
        lost = User(name="lost")
        with pytest.raises(Boom):
            async with s.begin_nested():
                s.add(lost)
                await s.flush()
                raise Boom
        assert inspect(lost).transient and inspect(kept).persistent
        await s.commit()
    assert (await user_names(db)) == {kept.id: "kept"}


async def test_savepoint_release_keeps_work(db: Engine) -> None:
    async with AsyncSession(db) as s:
        sp = await s.begin_nested()
        u = User(name="ann")
        s.add(u)
        await sp.commit()  # flushes, releases
        assert inspect(u).persistent
        assert not sp.is_active
        await s.rollback()  # the whole transaction still rolls back
        assert inspect(u).transient
    assert await count(db, User) == 0


async def test_nested_savepoints(db: Engine) -> None:
    async with AsyncSession(db) as s:
        a, b, c = User(name="a"), User(name="b"), User(name="c")
        s.add(a)
        async with s.begin_nested():
            s.add(b)
            with pytest.raises(Boom):
                async with s.begin_nested():
                    s.add(c)
                    await s.flush()
                    raise Boom
            assert inspect(c).transient and inspect(b).persistent  # the inner begin_nested() flushed b
        await s.commit()
    assert sorted((await user_names(db)).values()) == ["a", "b"]


async def test_failed_flush_inside_savepoint_is_recovered_by_its_rollback(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        ok = User(name="ok")
        s.add(ok)
        with pytest.raises(exc.IntegrityError):
            async with s.begin_nested():
                s.add(User(name="dup", email="ann@x"))
                await s.flush()
        assert s.is_active
        assert inspect(ok).persistent
        await s.commit()
    assert sorted((await user_names(db)).values()) == ["ann", "ok"]
    del uid


async def test_savepoint_rollback_restores_modified_object(db: Engine) -> None:
    await seed_account(db, "a", 10)
    async with AsyncSession(db) as s:
        acct = await s.get(Account, "a")
        async with s.begin_nested() as sp:
            acct.balance = 99
            await s.flush()
            assert acct.version == 2
            await sp.rollback()
        assert acct not in s.dirty
        await s.refresh(acct)
        assert (acct.balance, acct.version) == (10, 1)
        acct.balance = 11  # the version check uses the restored version
        await s.commit()
    assert await core_rows(db, select(Account.balance, Account.version)) == [(11, 2)]


# -- optimistic concurrency -------------------------------------------------------------


async def test_stale_update_when_version_changed_elsewhere(db: Engine) -> None:
    await seed_account(db, "a", 10)
    async with AsyncSession(db, expire_on_commit=False) as s:
        acct = await s.get(Account, "a")
        await s.commit()
        await core_exec(db, update(Account).where(Account.code == "a").values(balance=20, version=2))
        acct.balance = 30
        with pytest.raises(exc.StaleDataError, match="accounts"):
            await s.flush()
        with pytest.raises(exc.PendingRollbackError):
            await s.flush()
        await s.rollback()
    assert await core_rows(db, select(Account.balance, Account.version)) == [(20, 2)]


async def test_stale_update_through_second_session(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    await seed_posts(db, uid, "t")
    Session = sessionmaker(db, expire_on_commit=False)
    async with Session() as s1:
        p1 = await s1.get(Post, 1)
        await s1.commit()
        async with Session.begin() as s2:
            p2 = await s2.get(Post, 1)
            p2.title = "second"
        assert p2.version == 2
        p1.title = "first"
        with pytest.raises(exc.StaleDataError):
            await s1.commit()
        await s1.rollback()
    assert await core_rows(db, select(Post.title, Post.version)) == [("second", 2)]


async def test_stale_delete_when_version_changed_elsewhere(db: Engine) -> None:
    await seed_account(db, "a", 10)
    async with AsyncSession(db, expire_on_commit=False) as s:
        acct = await s.get(Account, "a")
        await s.commit()
        await core_exec(db, update(Account).where(Account.code == "a").values(version=5))
        await s.delete(acct)
        with pytest.raises(exc.StaleDataError):
            await s.commit()
        await s.rollback()
    assert await count(db, Account) == 1


async def test_stale_update_when_row_vanished(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db, expire_on_commit=False) as s:
        u = await s.get(User, uid)
        await s.commit()
        await delete_user_elsewhere(db, uid)
        u.name = "ghost"
        with pytest.raises(exc.StaleDataError, match="UPDATE"):
            await s.flush()
        await s.rollback()


async def test_stale_delete_when_row_vanished(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db, expire_on_commit=False) as s:
        u = await s.get(User, uid)
        await s.commit()
        await delete_user_elsewhere(db, uid)
        await s.delete(u)
        with pytest.raises(exc.StaleDataError, match="DELETE"):
            await s.flush()
        await s.rollback()
        assert inspect(u).persistent


async def test_stale_delete_of_many_rows_one_vanished(db: Engine) -> None:
    """A batch deleted in one statement (IN / = ANY) still notices a row that is gone."""
    uids = await seed_users(db, "ann", "bob", "cy")
    async with AsyncSession(db, expire_on_commit=False) as s:
        users = [await s.get(User, uid) for uid in uids]
        await s.commit()
        await delete_user_elsewhere(db, uids[1])
        for u in users:
            await s.delete(u)
        with capture_sql(db) as log:
            with pytest.raises(exc.StaleDataError, match="expected to match 3 row.s. but matched 2"):
                await s.flush()
        assert log.count("DELETE") == 1
        await s.rollback()
        assert all(inspect(u).persistent for u in users)
    assert await count(db, User) == 2


async def test_delete_of_many_rows_in_chunks(db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the dialect's parameter limit the keys go in several statements, all counted."""
    uids = await seed_users(db, *[f"u{i}" for i in range(7)])
    monkeypatch.setattr(db.dialect, "max_params", 3)
    async with AsyncSession(db) as s:
        users = [await s.get(User, uid) for uid in uids]
        for u in users:
            await s.delete(u)
        with capture_sql(db) as log:
            await s.commit()
        assert log.count("DELETE") == (1 if db.dialect.name == "postgresql" else 3)
        assert all(inspect(u).detached for u in users)
    assert await count(db, User) == 0
    await seed_users(db, *[f"v{i}" for i in range(7)])
    async with AsyncSession(db, expire_on_commit=False) as s:
        users = list(await s.scalars(select(User)))
        await s.commit()
        await delete_user_elsewhere(db, users[-1].id)
        for u in users:
            await s.delete(u)
        with pytest.raises(exc.StaleDataError, match="expected to match 7 row.s. but matched 6"):
            await s.flush()
        await s.rollback()
    assert await count(db, User) == 6


async def test_stale_versioned_row_vanished(db: Engine) -> None:
    await seed_account(db, "a", 10)
    await seed_account(db, "b", 10)
    async with AsyncSession(db, expire_on_commit=False) as s:
        a = await s.get(Account, "a")
        b = await s.get(Account, "b")
        await s.commit()
        await core_exec(db, delete(Account).where(Account.code == "a"))
        a.balance = 1
        b.balance = 1  # one batch of two rows, one of them gone
        with pytest.raises(exc.StaleDataError):
            await s.flush()
        await s.rollback()
    assert await core_rows(db, select(Account.code, Account.balance)) == [("b", 10)]


async def test_unchanged_version_passes_the_check(db: Engine) -> None:
    await seed_account(db, "a", 10)
    async with AsyncSession(db, expire_on_commit=False) as s:
        acct = await s.get(Account, "a")
        await s.commit()
        await core_exec(db, update(Account).where(Account.code == "b").values(balance=0))  # no-op elsewhere
        acct.balance = 11
        await s.commit()
        assert acct.version == 2
        await s.delete(acct)
        await s.commit()
    assert await count(db, Account) == 0


async def test_concurrent_rename_without_version_is_last_writer_wins(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db, expire_on_commit=False) as s:
        u = await s.get(User, uid)
        await s.commit()
        await rename_user_elsewhere(db, uid, "elsewhere")
        u.name = "mine"
        await s.commit()
    assert await user_names(db) == {uid: "mine"}


# -- sessionmaker, info -------------------------------------------------------------------


async def test_sessionmaker_defaults_and_overrides(db: Engine) -> None:
    Session = sessionmaker(db, expire_on_commit=False)
    s = Session()
    assert s.expire_on_commit is False and s.autoflush is True and s.autobegin is True
    assert s.bind is db
    assert Session(expire_on_commit=True).expire_on_commit is True
    Session.configure(autoflush=False, expire_on_commit=True)
    t = Session()
    assert t.autoflush is False and t.expire_on_commit is True
    assert s.autoflush is True  # existing sessions keep their settings
    async with t:
        u = User(name="ann")
        t.add(u)
        await t.commit()
        assert "name" in inspect(u).unloaded
    await s.close()


async def test_sessionmaker_configure_bind(db: Engine) -> None:
    Session = sessionmaker()
    Session.configure(bind=db)
    async with Session.begin() as s:
        s.add(User(name="ann"))
    assert await count(db, User) == 1


async def test_info(db: Engine) -> None:
    Session = sessionmaker(db, info={"app": "x"})
    a, b = Session(), Session()
    assert a.info == {"app": "x"}
    a.info["user"] = 1
    assert b.info == {"app": "x"}  # each session has its own dict
    assert AsyncSession(db).info == {}
    async with a:
        a.add(User(name="ann"))
        await a.commit()
        assert a.info["user"] == 1  # info survives transactions and close
    assert a.info["user"] == 1
    await b.close()


async def test_in_transaction_reflects_autobegin(db: Engine) -> None:
    async with AsyncSession(db) as s:
        assert not s.in_transaction()
        await s.execute(select(User))
        assert s.in_transaction()
        await s.commit()
        assert not s.in_transaction()
        s.add(User(name="x"))
        assert s.in_transaction()
        await s.rollback()
        assert not s.in_transaction()


async def test_savepoint_rollback_undoes_unflushed_work_since(db: Engine) -> None:
    """Work not yet flushed when the savepoint is rolled back is discarded too (as in SQLAlchemy)."""
    uids = await seed_users(db, "ann", "bob", "cid")
    async with AsyncSession(db) as s:
        ann, bob, cid = [await s.get(User, i) for i in uids]
        cid.name = "cid-outer"  # flushed by begin_nested(): outer work
        sp = await s.begin_nested()
        await s.delete(ann)  # marked, not flushed
        bob.name = "bob-inner"  # dirty, not flushed
        new = User(name="new")
        s.add(new)  # pending, not flushed
        await sp.rollback()
        assert ann not in s.deleted and inspect(ann).persistent
        assert bob not in s.dirty and "name" in inspect(bob).unloaded
        assert inspect(new).transient and new not in s
        assert cid.name == "cid-outer" and "name" not in inspect(cid).unloaded
        await s.commit()
    assert sorted((await user_names(db)).values()) == ["ann", "bob", "cid-outer"]


@pytest.mark.parametrize("savepoint", [False, True])
async def test_rollback_of_object_inserted_and_deleted_in_it(db: Engine, savepoint: bool) -> None:
    async with AsyncSession(db) as s:
        sp = await s.begin_nested() if savepoint else None
        u = User(name="ann")
        s.add(u)
        await s.flush()
        await s.delete(u)
        await s.flush()
        assert inspect(u).deleted
        await (sp.rollback() if sp is not None else s.rollback())
        assert inspect(u).transient
        assert u not in s and len(s.identity_map) == 0
        s.add(u)  # usable as a new object again
        await s.commit()
    assert await user_names(db) == {u.id: "ann"}


async def test_savepoint_rollback_expires_object_modified_then_deleted(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        async with s.begin_nested() as sp:
            u.name = "inner"
            await s.delete(u)
            await s.flush()
            await sp.rollback()
        assert inspect(u).persistent
        assert "name" in inspect(u).unloaded  # not the stale "inner"
        await s.refresh(u)
        assert u.name == "ann"
        u.name = "inner"  # a real change again: must be written
        await s.commit()
    assert await user_names(db) == {uid: "inner"}


async def test_savepoint_rollback_expires_objects_changed_by_orm_update(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        async with s.begin_nested() as sp:
            await s.execute(update(User).where(User.id == uid).values(name="bulk"))
            assert u.name == "bulk"
            await sp.rollback()
        assert "name" in inspect(u).unloaded
        await s.refresh(u)
        assert u.name == "ann"
        await s.commit()


async def test_commit_with_an_open_savepoint_commits_everything(db: Engine) -> None:
    async with AsyncSession(db) as s:
        s.add(User(name="outer"))
        sp = await s.begin_nested()
        s.add(User(name="inner"))
        await s.commit()
        assert not sp.is_active and not s.in_transaction()
        with pytest.raises(exc.InvalidRequestError):
            await sp.rollback()
    assert sorted((await user_names(db)).values()) == ["inner", "outer"]


async def test_rollback_with_an_open_savepoint_undoes_everything(db: Engine) -> None:
    async with AsyncSession(db) as s:
        a = User(name="outer")
        s.add(a)
        sp = await s.begin_nested()
        b = User(name="inner")
        s.add(b)
        await s.flush()
        await s.rollback()
        assert not sp.is_active and not s.in_nested_transaction() and not s.in_transaction()
        assert inspect(a).transient and inspect(b).transient
        assert db.pool.checked_out == 0
    assert await count(db, User) == 0


async def test_sessionmaker_begin_with_failing_commit(db: Engine) -> None:
    await seed_users(db, "ann")
    Session = sessionmaker(db)
    with pytest.raises(exc.IntegrityError):
        async with Session.begin() as s:
            s.add(User(name="dup", email="ann@x"))  # fails at the commit on exit
    assert db.pool.checked_out == 0
    assert not s.in_transaction() and len(s.identity_map) == 0
    assert await count(db, User) == 1


async def test_session_commit_inside_begin_block(db: Engine) -> None:
    async with AsyncSession(db) as s:
        async with s.begin() as tx:
            s.add(User(name="ann"))
            await s.commit()
            assert not tx.is_active
        assert not s.in_transaction()
    assert await count(db, User) == 1


async def test_expunged_deleted_object_is_not_deleted(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        await s.delete(u)
        s.expunge(u)
        assert not s.deleted and inspect(u).detached
        await s.commit()
    assert await count(db, User) == 1


async def test_modify_then_delete_deletes(db: Engine) -> None:
    await seed_account(db, "a", 1)
    async with AsyncSession(db) as s:
        a = await s.get(Account, "a")
        a.balance = 2
        await s.delete(a)
        with capture_sql(db) as log:
            await s.commit()
        assert log.count("UPDATE") == 0 and log.count("DELETE") == 1
    assert await count(db, Account) == 0
