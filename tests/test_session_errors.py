"""Bad input gets a clear aiouow.exc error naming the object and attribute."""

from __future__ import annotations

import datetime

import pytest

from aiouow import AsyncSession, Engine, exc, inspect, select, sessionmaker

from .models import Account, Membership, Node, Post, User
from .session_support import count, seed_users, user_names


async def test_add_object_attached_to_another_session(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s1, AsyncSession(db) as s2:
        u = await s1.get(User, uid)
        with pytest.raises(exc.InvalidRequestError) as info:
            s2.add(u)
        msg = str(info.value)
        assert "User(id=1)" in msg and "another session" in msg and "merge" in msg
        assert inspect(u).session is s1
        pending = User(name="p")
        s1.add(pending)
        with pytest.raises(exc.InvalidRequestError, match="another session"):
            s2.add(pending)
        with pytest.raises(exc.InvalidRequestError, match="another session"):
            await s2.delete(u)
        assert u not in s2 and pending not in s2


async def test_add_second_object_with_held_identity(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        held = await s.get(User, uid)
        twin = User(id=uid, name="twin")
        with pytest.raises(exc.InvalidRequestError) as info:
            s.add(twin)
        msg = str(info.value)
        assert f"User(id={uid})" in msg and "merge" in msg
        assert inspect(twin).transient
        assert s.identity_map[(User, (uid,))] is held


async def test_add_detached_object_whose_identity_is_held(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db, expire_on_commit=False) as s:
        old = await s.get(User, uid)
    async with AsyncSession(db) as s:
        await s.get(User, uid)
        with pytest.raises(exc.InvalidRequestError, match="merge"):
            s.add(old)
        assert inspect(old).detached


async def test_add_two_new_objects_with_the_same_key_fails_at_flush(db: Engine) -> None:
    async with AsyncSession(db) as s:
        s.add(Account(code="same"))
        s.add(Account(code="same"))
        with pytest.raises((exc.IntegrityError, exc.InvalidRequestError)):
            await s.flush()
        await s.rollback()
    assert await count(db, Account) == 0


async def test_add_of_unmapped_object(db: Engine) -> None:
    async with AsyncSession(db) as s:
        with pytest.raises(exc.ArgumentError, match="mapped"):
            s.add(object())
        with pytest.raises(exc.ArgumentError, match="mapped"):
            await s.get(dict, 1)  # type: ignore[arg-type]


@pytest.mark.parametrize(("attr", "value"), [
    ("name", 5),
    ("name", b"bytes"),
    ("id", "seven"),
    ("created_at", "2024-01-01"),
    ("email", 3.5),
])
def test_wrong_python_type_at_assignment(attr: str, value: object) -> None:
    u = User(name="ann")
    with pytest.raises(exc.ArgumentError) as info:
        setattr(u, attr, value)
    msg = str(info.value)
    assert f"User.{attr}" in msg and type(value).__name__ in msg
    with pytest.raises(exc.ArgumentError, match=f"User.{attr}"):
        User(**{attr: value})


def test_date_is_not_a_datetime() -> None:
    with pytest.raises(exc.ArgumentError, match="User.created_at"):
        User(name="a", created_at=datetime.date(2024, 1, 1))


def test_none_for_not_null_column_at_assignment() -> None:
    u = User(name="ann")
    with pytest.raises(exc.ArgumentError, match="User.name"):
        u.name = None  # type: ignore[assignment]
    u.email = None  # nullable


async def test_wrong_type_on_persistent_object_leaves_it_unchanged(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        with pytest.raises(exc.ArgumentError):
            u.name = 42  # type: ignore[assignment]
        assert u.name == "ann"
        assert not s.is_modified(u) and u not in s.dirty


async def test_not_null_column_unset_at_flush(db: Engine) -> None:
    async with AsyncSession(db) as s:
        p = Post(title="t")
        s.add(p)
        with pytest.raises(exc.AiouowError) as info:
            await s.flush()
        assert "author_id" in str(info.value)
        assert "Post" in str(info.value)
        await s.rollback()
    async with AsyncSession(db) as s:
        s.add(User())
        with pytest.raises(exc.AiouowError, match="User.name"):
            await s.commit()
        await s.rollback()
    assert await count(db, User) == 0


async def test_not_null_error_does_not_blame_generated_key_or_defaults(db: Engine) -> None:
    async with AsyncSession(db) as s:
        u = User(name="ann")  # id generated, created_at defaulted, email nullable
        s.add(u)
        await s.flush()
        assert u.id is not None
        s.add(Account(code="x"))  # balance defaulted, version managed
        await s.commit()


@pytest.mark.parametrize(("model", "ident"), [
    (User, (1, 2)),
    (User, ()),
    (User, {"id": 1, "name": "x"}),
    (User, {"name": "x"}),
    (Membership, "acme"),
    (Membership, ("acme",)),
    (Membership, ("acme", 1, 2)),
    (Membership, {"org": "acme"}),
])
async def test_get_with_wrong_number_of_key_parts(db: Engine, model: type, ident: object) -> None:
    async with AsyncSession(db) as s:
        with pytest.raises(exc.ArgumentError) as info:
            await s.get(model, ident)
        assert model.__name__ in str(info.value)
        with pytest.raises(exc.ArgumentError):
            await s.get_one(model, ident)
        assert not s.in_transaction()


async def test_get_with_none_key(db: Engine) -> None:
    async with AsyncSession(db) as s:
        with pytest.raises(exc.ArgumentError, match="None"):
            await s.get(User, None)
        with pytest.raises(exc.ArgumentError, match="None"):
            await s.get(Membership, ("acme", None))


async def test_closed_transaction_from_begin(db: Engine) -> None:
    async with AsyncSession(db) as s:
        tx = s.begin()
        s.add(User(name="ann"))
        await tx.commit()
        assert not tx.is_active
        for op in (tx.commit, tx.rollback):
            with pytest.raises(exc.InvalidRequestError) as info:
                await op()
            assert "closed" in str(info.value) and "begin()" in str(info.value)
    assert await count(db, User) == 1


async def test_closed_transaction_after_session_rollback(db: Engine) -> None:
    async with AsyncSession(db) as s:
        tx = s.begin()
        s.add(User(name="ann"))
        await s.rollback()
        assert not tx.is_active
        with pytest.raises(exc.InvalidRequestError, match="closed"):
            await tx.commit()
    assert await count(db, User) == 0


async def test_closed_savepoint(db: Engine) -> None:
    async with AsyncSession(db) as s:
        sp = await s.begin_nested()
        await sp.commit()
        with pytest.raises(exc.InvalidRequestError, match="SAVEPOINT"):
            await sp.commit()
        with pytest.raises(exc.InvalidRequestError, match="SAVEPOINT"):
            await sp.rollback()
        outer = await s.begin_nested()
        inner = await s.begin_nested()
        with pytest.raises(exc.InvalidRequestError, match="still open"):
            await outer.commit()
        await inner.rollback()
        await outer.rollback()
        await s.rollback()


async def test_pending_rollback_error_for_database_operations(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        held = await s.get(User, uid)
        s.add(User(name="dup", email="ann@x"))
        with pytest.raises(exc.IntegrityError) as first:
            await s.flush()
        original = first.value
        for op in (lambda: s.execute(select(User.id)), lambda: s.flush(), lambda: s.commit(),
                   lambda: s.get(User, uid + 100), lambda: s.refresh(held),
                   lambda: s.scalars(select(User)), lambda: s.scalar(select(User.id))):
            with pytest.raises(exc.PendingRollbackError) as info:
                await op()
            assert info.value.orig is original
            assert isinstance(info.value, exc.InvalidRequestError)
        # identity-map hits need no database
        assert await s.get(User, uid) is held
        assert await s.get_one(User, (uid,)) is held
        assert held.name == "ann"
        await s.rollback()
        assert await s.get(User, uid + 100) is None
    assert await user_names(db) == {uid: "ann"}


async def test_pending_rollback_error_for_stale_data(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    Session = sessionmaker(db, expire_on_commit=False)
    async with Session() as s:
        u = await s.get(User, uid)
        await s.commit()
        async with Session.begin() as other:
            await other.delete(await other.get(User, uid))
        u.name = "x"
        with pytest.raises(exc.StaleDataError):
            await s.flush()
        with pytest.raises(exc.PendingRollbackError) as info:
            await s.execute(select(User))
        assert isinstance(info.value.orig, exc.StaleDataError)
        await s.rollback()


async def test_flush_without_changes_after_failure_is_not_an_error(db: Engine) -> None:
    """'flush with work' raises PendingRollbackError; a flush with nothing to do does not need the database."""
    await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        bad = User(name="dup", email="ann@x")
        s.add(bad)
        with pytest.raises(exc.IntegrityError):
            await s.flush()
        s.expunge(bad)
        await s.flush()  # nothing to do
        await s.rollback()


async def test_delete_of_transient_or_pending(db: Engine) -> None:
    async with AsyncSession(db) as s:
        u = User(name="ann")
        with pytest.raises(exc.InvalidRequestError, match="transient"):
            await s.delete(u)
        s.add(u)
        with pytest.raises(exc.InvalidRequestError, match="pending"):
            await s.delete(u)
        s.expunge(u)


async def test_add_of_flushed_deleted_object(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        await s.delete(u)
        await s.flush()
        with pytest.raises(exc.InvalidRequestError, match="deleted"):
            s.add(u)
        await s.rollback()


async def test_unknown_attribute_names(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        with pytest.raises(exc.ArgumentError, match="nosuch"):
            await s.refresh(u, ["nosuch"])
        with pytest.raises(exc.ArgumentError, match="nosuch"):
            s.expire(u, ["nosuch"])
    with pytest.raises(TypeError, match="nosuch"):
        User(name="x", nosuch=1)  # type: ignore[call-arg]


async def test_session_without_engine(db: Engine) -> None:
    s = AsyncSession()
    s.add(Node(name="x"))
    with pytest.raises(exc.InvalidRequestError, match="engine"):
        await s.flush()
    await s.close()
    with pytest.raises(exc.ArgumentError):
        AsyncSession("sqlite://")  # type: ignore[arg-type]


async def test_every_session_error_is_an_aiouow_error() -> None:
    for cls in (exc.PendingRollbackError, exc.StaleDataError, exc.NotLoadedError, exc.DetachedInstanceError,
                exc.ObjectDeletedError, exc.InvalidRequestError, exc.ArgumentError, exc.NoResultFound):
        assert issubclass(cls, exc.AiouowError)
    assert issubclass(exc.DetachedInstanceError, exc.NotLoadedError)
    assert not issubclass(exc.NotLoadedError, AttributeError)
