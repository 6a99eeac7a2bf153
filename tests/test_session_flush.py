"""The unit of work: autoflush, flush ordering, generated keys, UPDATE of changed columns only,
batching, version counters."""

from __future__ import annotations

import copy
import datetime as dt
import decimal
import logging
import uuid
from typing import Any

import pytest

from aiouow import AsyncSession, Engine, Model, column, exc, func, inspect, select, sessionmaker

from .conftest import capture_sql
from .models import Account, AllTypes, Membership, Mood, Node, Post, User
from .session_support import (
    core_rows,
    count,
    seed_account,
    seed_posts,
    seed_users,
    sql_text,
    statement_tables,
    user_names,
)

# -- autoflush -------------------------------------------------------------------------


async def test_autoflush_before_execute(db: Engine) -> None:
    async with AsyncSession(db) as s:
        u = User(name="ann")
        s.add(u)
        rows = (await s.execute(select(User.id, User.name))).all()
        assert [r.name for r in rows] == ["ann"]
        assert inspect(u).persistent
        assert rows[0].id == u.id


async def test_autoflush_before_scalars(db: Engine) -> None:
    async with AsyncSession(db) as s:
        u = User(name="ann")
        s.add(u)
        assert (await s.scalars(select(User))).all() == [u]
        assert not s.new


async def test_autoflush_before_scalar(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        u.name = "renamed"
        assert await s.scalar(select(User.name).where(User.id == uid)) == "renamed"
        assert u not in s.dirty
        s.add(User(name="bob"))
        assert await s.scalar(select(func.count()).select_from(User)) == 2


async def test_autoflush_before_get_miss(db: Engine) -> None:
    async with AsyncSession(db) as s:
        s.add(User(id=50, name="ann"))
        s.add(User(name="bob"))
        with capture_sql(db) as log:
            got = await s.get(User, 50)
        assert got is not None and got.name == "ann"
        assert log.count("INSERT") >= 1  # flushed first
        assert not s.new


async def test_get_miss_finds_flushed_delete(db: Engine) -> None:
    """Deletions are flushed before a get() that must hit the database."""
    uids = await seed_users(db, "ann", "bob")
    async with AsyncSession(db) as s:
        ann = await s.get(User, uids[0])
        await s.delete(ann)
        with capture_sql(db) as log:
            assert await s.get(User, uids[1]) is not None
        assert log.count("DELETE") == 1
        assert inspect(ann).deleted


async def test_get_hit_does_not_autoflush(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        s.add(User(name="bob"))
        with capture_sql(db) as log:
            assert await s.get(User, uid) is u
        assert log.records == []
        assert len(s.new) == 1


async def test_no_autoflush_block(db: Engine) -> None:
    async with AsyncSession(db) as s:
        u = User(name="ann")
        s.add(u)
        with s.no_autoflush as same:
            assert same is s
            assert (await s.scalars(select(User))).all() == []
            assert await s.scalar(select(func.count()).select_from(User)) == 0
            assert await s.get(User, 1) is None
            assert inspect(u).pending
        assert (await s.scalars(select(User))).all() == [u]
        assert inspect(u).persistent


async def test_no_autoflush_nests(db: Engine) -> None:
    async with AsyncSession(db) as s:
        s.add(User(name="ann"))
        with s.no_autoflush:
            with s.no_autoflush:
                pass
            assert await s.scalar(select(func.count()).select_from(User)) == 0
        assert await s.scalar(select(func.count()).select_from(User)) == 1


async def test_autoflush_false(db: Engine) -> None:
    Session = sessionmaker(db, autoflush=False)
    async with Session() as s:
        assert s.autoflush is False
        u = User(name="ann")
        s.add(u)
        assert (await s.scalars(select(User))).all() == []
        assert await s.get(User, 1) is None
        assert inspect(u).pending
        await s.flush()  # an explicit flush still flushes
        assert (await s.scalars(select(User))).all() == [u]
        await s.commit()
    async with AsyncSession(db, autoflush=False) as s:
        s.add(User(name="bob"))
        assert await s.scalar(select(func.count()).select_from(User)) == 1
        await s.commit()  # commit always flushes
    assert sorted((await user_names(db)).values()) == ["ann", "bob"]


# -- ordering -----------------------------------------------------------------------------


async def test_parents_inserted_before_children(db: Engine) -> None:
    async with AsyncSession(db) as s:
        # children first in the session's order, on purpose
        s.add(Post(id=1, author_id=10, title="a"))
        s.add(Post(id=2, author_id=11, title="b"))
        s.add(User(id=10, name="ann"))
        s.add(User(id=11, name="bob"))
        with capture_sql(db) as log:
            await s.flush()
        assert statement_tables(log.statements, "INSERT")[0] == "users"
        assert statement_tables(log.statements, "INSERT")[-1] == "posts"
        await s.commit()
    assert await core_rows(db, select(Post.id, Post.author_id).order_by(Post.id)) == [(1, 10), (2, 11)]


async def test_children_deleted_before_parents(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    await seed_posts(db, uid, "a", "b")
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        posts = (await s.scalars(select(Post))).all()
        await s.delete(u)  # parent first in the session's order, on purpose
        for p in posts:
            await s.delete(p)
        with capture_sql(db) as log:
            await s.flush()  # with ON DELETE CASCADE, the wrong order would be a stale DELETE of posts
        # association rows of the deleted posts go first (deleting either side of a many-to-many)
        tables = [t for t in statement_tables(log.statements, "DELETE") if t != "post_tags"]
        assert tables in (["posts", "users"], ["posts", "posts", "users"])
        await s.commit()
    assert await count(db, User) == 0 and await count(db, Post) == 0


async def test_generated_parent_key_set_by_hand_on_child(db: Engine) -> None:
    async with AsyncSession(db) as s:
        u = User(name="ann")
        s.add(u)
        await s.flush()
        p = Post(author_id=u.id, title="t")
        s.add(p)
        await s.commit()
    assert await core_rows(db, select(Post.author_id, User.name).join(User, User.id == Post.author_id)) == [
        (u.id, "ann")]


async def test_self_referential_rows_inserted_parents_first(db: Engine) -> None:
    async with AsyncSession(db) as s:
        s.add_all([Node(id=4, parent_id=3, name="d"), Node(id=3, parent_id=2, name="c"),
                   Node(id=2, parent_id=1, name="b"), Node(id=1, name="root"), Node(id=5, parent_id=1, name="e")])
        await s.commit()
    assert await core_rows(db, select(Node.id, Node.parent_id).order_by(Node.id)) == [
        (1, None), (2, 1), (3, 2), (4, 3), (5, 1)]


async def test_self_referential_rows_deleted_children_first(db: Engine) -> None:
    async with AsyncSession(db) as s:
        s.add_all([Node(id=1, name="root"), Node(id=2, parent_id=1, name="b"), Node(id=3, parent_id=2, name="c")])
        await s.commit()
    async with AsyncSession(db) as s:
        nodes = (await s.scalars(select(Node).order_by(Node.id))).all()
        for n in nodes:  # root first, on purpose (no ON DELETE: the wrong order violates the FK)
            await s.delete(n)
        await s.commit()
    assert await count(db, Node) == 0


async def test_self_referential_cycle_is_reported(db: Engine) -> None:
    async with AsyncSession(db) as s:
        s.add_all([Node(id=1, parent_id=2, name="a"), Node(id=2, parent_id=1, name="b")])
        with pytest.raises(exc.InvalidRequestError, match="cycle"):
            await s.flush()
        await s.rollback()


async def test_insert_update_delete_in_one_flush(db: Engine) -> None:
    uids = await seed_users(db, "ann", "bob")
    async with AsyncSession(db) as s:
        ann = await s.get(User, uids[0])
        bob = await s.get(User, uids[1])
        ann.name = "ann2"
        await s.delete(bob)
        s.add(User(name="cid"))
        await s.commit()
    assert sorted((await user_names(db)).values()) == ["ann2", "cid"]


# -- generated keys ----------------------------------------------------------------------


async def test_generated_primary_key_single(db: Engine) -> None:
    async with AsyncSession(db) as s:
        u = User(name="ann")
        s.add(u)
        assert u.id is None
        await s.flush()
        assert isinstance(u.id, int)
        assert inspect(u).identity == (u.id,)
        assert s.identity_map[(User, (u.id,))] is u
        await s.commit()
    assert await user_names(db) == {u.id: "ann"}


async def test_generated_primary_keys_many_in_add_order(db: Engine) -> None:
    names = [f"u{i}" for i in range(25)]
    async with AsyncSession(db) as s:
        users = [User(name=n) for n in names]
        s.add_all(users)
        await s.commit()
    ids = [u.id for u in users]
    assert len(set(ids)) == 25
    assert ids == sorted(ids)  # rows of one table are inserted in the order they were added
    assert await user_names(db) == dict(zip(ids, names))


async def test_explicit_and_generated_keys_mixed(db: Engine) -> None:
    async with AsyncSession(db) as s:
        given = User(id=500, name="given")
        gen = [User(name="g1"), User(name="g2")]
        s.add_all([gen[0], given, gen[1]])
        await s.commit()
    names = await user_names(db)
    assert names[500] == "given"
    assert names[gen[0].id] == "g1" and names[gen[1].id] == "g2"
    assert len({500, gen[0].id, gen[1].id}) == 3


async def test_explicit_keys_without_autoincrement(db: Engine) -> None:
    async with AsyncSession(db) as s:
        s.add_all([Account(code="a", balance=5), Account(code="b")])
        s.add_all([Membership(org="o", user_no=1), Membership(org="o", user_no=2, role="x")])
        await s.commit()
    assert await core_rows(db, select(Account.code, Account.balance, Account.version).order_by(Account.code)) == [
        ("a", 5, 1), ("b", 0, 1)]
    assert await core_rows(db, select(Membership.user_no, Membership.role).order_by(Membership.user_no)) == [
        (1, "member"), (2, "x")]


# -- UPDATE only what changed -----------------------------------------------------------


async def test_update_sends_only_changed_columns(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        u.name = "renamed"
        with capture_sql(db) as log:
            await s.flush()
        updates = [sql_text(r) for r in log.statements if r.upper().startswith("UPDATE")]
        assert len(updates) == 1
        assert '"name"' in updates[0]
        assert "email" not in updates[0] and "created_at" not in updates[0]
        await s.commit()
    assert await user_names(db) == {uid: "renamed"}


async def test_setting_the_same_value_updates_nothing(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        u.name = "ann"
        assert not s.is_modified(u)
        with capture_sql(db) as log:
            await s.flush()
        assert log.count("UPDATE") == 0
        assert u not in s.dirty


async def test_change_and_change_back_updates_nothing(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        u.name = "other"
        u.name = "ann"
        with capture_sql(db) as log:
            await s.commit()
        assert log.count("UPDATE") == 0


async def test_second_flush_sends_only_newer_changes(db: Engine) -> None:
    (uid,) = await seed_users(db, "ann")
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        u.name = "n1"
        await s.flush()
        u.email = "new@x"
        with capture_sql(db) as log:
            await s.flush()
        (upd,) = [sql_text(r) for r in log.statements if r.upper().startswith("UPDATE")]
        assert "email" in upd and '"name"' not in upd
        with capture_sql(db) as log:
            await s.flush()
        assert log.records == []
        await s.commit()
    assert await core_rows(db, select(User.name, User.email)) == [("n1", "new@x")]


async def test_empty_flush_emits_nothing(db: Engine) -> None:
    async with AsyncSession(db) as s:
        with capture_sql(db) as log:
            await s.flush()
            await s.commit()
        assert log.records == []


# -- batching -------------------------------------------------------------------------


async def test_thousand_inserts_are_batched(db: Engine) -> None:
    async with AsyncSession(db) as s:
        users = [User(name=f"user{i}") for i in range(1000)]
        s.add_all(users)
        with capture_sql(db) as log:
            await s.flush()
        assert log.count("INSERT") <= 5
        assert len(log.statements) <= 6
        ids = [u.id for u in users]
        assert len(set(ids)) == 1000 and ids == sorted(ids)
        await s.commit()
    assert await user_names(db) == {u.id: f"user{i}" for i, u in enumerate(users)}


async def test_parents_and_children_insert_in_one_statement_per_table(db: Engine) -> None:
    # 1500 rows per table: PostgreSQL sends them by COPY after reserving the keys of both tables
    # in one query; SQLite sends multi-row INSERT ... RETURNING
    n = 1500
    async with AsyncSession(db) as s:
        users = [User(name=f"u{i}", posts=[Post(title=f"p{i}")]) for i in range(n)]
        s.add_all(users)
        with capture_sql(db) as log:
            await s.flush()
        if db.dialect.name == "postgresql":
            # (the sequences' names are looked up once per engine, on its first such flush)
            sent = [st for st in log.statements if "pg_get_serial_sequence" not in st]
            assert [st.split()[0] for st in sent] == ["SELECT", "COPY", "COPY"]
            assert "nextval('public.users_id_seq'" in sent[0] and "nextval('public.posts_id_seq'" in sent[0]
        else:
            assert log.count("INSERT") == 2 and len(log.statements) == 2
        assert len({u.id for u in users}) == n
        assert all(u.posts[0].author_id == u.id for u in users)
        await s.commit()
    got = await core_rows(db, select(User.name, Post.title).join(Post, Post.author_id == User.id))
    assert sorted(got) == sorted((f"u{i}", f"p{i}") for i in range(n))


async def test_inserts_with_explicit_keys_are_batched(db: Engine) -> None:
    async with AsyncSession(db) as s:
        s.add_all([Account(code=f"c{i:04}", balance=i) for i in range(500)])
        with capture_sql(db) as log:
            await s.commit()
        assert log.count("INSERT") <= 3
    assert await count(db, Account) == 500
    assert await core_rows(db, select(func.sum(Account.balance))) == [(sum(range(500)),)]


async def test_updates_are_batched(db: Engine) -> None:
    async with AsyncSession(db) as s:
        s.add_all([User(name=f"user{i}") for i in range(300)])
        await s.commit()
    async with AsyncSession(db) as s:
        users = (await s.scalars(select(User).order_by(User.id))).all()
        for u in users:
            u.name = u.name.upper()
        for u in users[:100]:
            u.email = f"{u.id}@mail"  # a second shape: (name, email)
        with capture_sql(db) as log:
            await s.flush()
        assert 1 <= log.count("UPDATE") <= 4
        await s.commit()
    rows = await core_rows(db, select(User.name, User.email).order_by(User.id))
    assert [r[0] for r in rows] == [f"USER{i}" for i in range(300)]
    assert sum(1 for r in rows if r[1] is not None) == 100


async def test_deletes_are_batched(db: Engine) -> None:
    async with AsyncSession(db) as s:
        s.add_all([User(name=f"user{i}") for i in range(300)])
        await s.commit()
    async with AsyncSession(db) as s:
        users = (await s.scalars(select(User))).all()
        for u in users[:250]:
            await s.delete(u)
        with capture_sql(db) as log:
            await s.flush()
        assert 1 <= log.count("DELETE") <= 3
        assert all(inspect(u).deleted for u in users[:250])
        await s.commit()
    assert await count(db, User) == 50


async def test_versioned_updates_and_deletes_are_batched(db: Engine) -> None:
    async with AsyncSession(db) as s:
        s.add_all([Account(code=f"c{i:03}") for i in range(200)])
        await s.commit()
    async with AsyncSession(db) as s:
        accts = (await s.scalars(select(Account))).all()
        for a in accts:
            a.balance = 7
        with capture_sql(db) as log:
            await s.flush()
        assert 1 <= log.count("UPDATE") <= 3
        assert all(a.version == 2 for a in accts)
        for a in accts[:150]:
            await s.delete(a)
        with capture_sql(db) as log:
            await s.flush()
        assert 1 <= log.count("DELETE") <= 3
        await s.commit()
    assert await core_rows(db, select(func.count(), func.min(Account.version), func.max(Account.balance))
                           .select_from(Account)) == [(50, 2, 7)]


# -- version counters ---------------------------------------------------------------------


async def test_version_starts_at_one_and_counts_updates(db: Engine) -> None:
    async with AsyncSession(db, expire_on_commit=False) as s:
        u = User(name="ann")
        s.add(u)
        await s.flush()
        p = Post(author_id=u.id, title="t")
        s.add(p)
        await s.flush()
        assert p.version == 1
        for i in range(3):
            p.title = f"t{i}"
            await s.flush()
            assert p.version == 2 + i
        await s.commit()
        p.title = "again"
        await s.commit()
        assert p.version == 5
    assert await core_rows(db, select(Post.title, Post.version)) == [("again", 5)]


async def test_version_not_bumped_without_a_change(db: Engine) -> None:
    await seed_account(db, "a", 1)
    async with AsyncSession(db) as s:
        a = await s.get(Account, "a")
        a.balance = 1
        await s.commit()
    assert await core_rows(db, select(Account.version)) == [(1,)]


async def test_version_of_expired_object_is_bumped_in_the_database(db: Engine) -> None:
    """Changing an expired object: the UPDATE increments the version server-side (nothing to check)."""
    await seed_account(db, "a", 1, version=4)
    async with AsyncSession(db) as s:
        a = await s.get(Account, "a")
        await s.commit()  # expired
        a.balance = 9
        await s.commit()
    assert await core_rows(db, select(Account.balance, Account.version)) == [(9, 5)]


# -- batches carry every column type ------------------------------------------------------

def _typed_values(i: int) -> dict[str, Any]:
    """Distinct values of every AllTypes column for row ``i`` (None for some rows, to mix NULLs in)."""
    if i % 4 == 3:
        return {}
    tz = dt.timezone(dt.timedelta(hours=i % 5))
    return {
        "i": 2**40 + i, "s": f"s{i} ✓ '\"", "f": i + 0.5, "b": i % 2 == 0, "raw": bytes([i % 256, 0, 255]),
        "dec": decimal.Decimal(f"{i}.0000000001"), "dt": dt.datetime(2024, 1, 1 + i % 28, 12, i % 60),
        "dt_tz": dt.datetime(2024, 2, 1 + i % 28, 1, 2, 3, tzinfo=tz), "d": dt.date(2000 + i % 50, 1, 2),
        "t": dt.time(i % 24, 30, 15, 7), "td": dt.timedelta(days=i, microseconds=-i), "u": uuid.UUID(int=i + 1),
        "mood": Mood.happy if i % 2 else Mood.sad, "doc": {"i": i, "l": [i, None, "x"]},
        "items": [i, "two", {"three": [3]}], "short": f"short{i}",
    }


def _changed_values(i: int) -> dict[str, Any]:
    v = _typed_values(i + 100) or _typed_values(i + 101)
    return {k: (None if i % 5 == 0 and k != "s" else val) for k, val in v.items()}


async def _all_types_rows(engine: Engine) -> dict[int, dict[str, Any]]:
    cols = [c for c in inspect(AllTypes).columns]
    rows = await core_rows(engine, select(*[getattr(AllTypes, c) for c in cols]).order_by(AllTypes.id))
    return {r[0]: dict(zip(cols, r)) for r in rows}


def _same(a: dict[str, Any], b: dict[str, Any]) -> None:
    for k, v in b.items():
        assert a[k] == v, (k, a[k], v)
        if v is not None:
            assert isinstance(a[k], type(v)), (k, a[k], v)


@pytest.mark.parametrize("generated", [True, False])
async def test_batched_insert_update_delete_of_every_type(db: Engine, generated: bool) -> None:
    n = 12
    async with AsyncSession(db) as s:
        objs = [AllTypes(**_typed_values(i)) if generated else AllTypes(id=1000 + i, **_typed_values(i))
                for i in range(n)]
        s.add_all(objs)
        with capture_sql(db) as log:
            await s.commit()
        assert log.count("INSERT") <= 2
    ids = [o.id for o in objs]
    rows = await _all_types_rows(db)
    assert sorted(rows) == sorted(ids)
    for i, oid in enumerate(ids):
        _same(rows[oid], {**{k: None for k in _typed_values(0)}, **_typed_values(i)})

    async with AsyncSession(db) as s:
        loaded = (await s.scalars(select(AllTypes).order_by(AllTypes.id))).all()
        for i, o in enumerate(loaded):
            for k, v in _changed_values(i).items():
                setattr(o, k, v)
        with capture_sql(db) as log:
            await s.flush()
        assert 1 <= log.count("UPDATE") <= 4
        for o in loaded[: n // 2]:
            await s.delete(o)
        with capture_sql(db) as log:
            await s.commit()
        assert log.count("DELETE") == 1
    rows = await _all_types_rows(db)
    assert sorted(rows) == sorted(ids[n // 2:])
    for i, oid in enumerate(ids):
        if oid in rows:
            _same(rows[oid], _changed_values(i))


async def test_insert_batch_larger_than_the_parameter_limit(db: Engine) -> None:
    per_row = len(inspect(AllTypes).columns) - 1
    n = db.dialect.max_params // per_row + 50  # more than one statement's worth of parameters
    async with AsyncSession(db) as s:
        objs = [AllTypes(i=k, s=f"r{k}") for k in range(n)]
        s.add_all(objs)
        with capture_sql(db) as log:
            await s.commit()
        assert log.count("INSERT") <= 3
    ids = [o.id for o in objs]
    assert ids == sorted(ids) and len(set(ids)) == n
    got = dict(await core_rows(db, select(AllTypes.id, AllTypes.i)))
    assert got == {o_id: k for k, o_id in enumerate(ids)}


async def test_composite_key_batches(db: Engine) -> None:
    async with AsyncSession(db) as s:
        s.add_all([Membership(org=f"o{k % 3}", user_no=k) for k in range(30)])
        await s.commit()
    async with AsyncSession(db) as s:
        ms = (await s.scalars(select(Membership))).all()
        for m in ms:
            m.role = f"r{m.user_no}"
        with capture_sql(db) as log:
            await s.flush()
        assert log.count("UPDATE") <= 2
        for m in ms[:20]:
            await s.delete(m)
        with capture_sql(db) as log:
            await s.commit()
        assert log.count("DELETE") <= 2
    rows = await core_rows(db, select(Membership.user_no, Membership.role).order_by(Membership.user_no))
    kept = sorted(m.user_no for m in ms[20:])
    assert rows == [(k, f"r{k}") for k in kept]


async def test_primary_key_change(db: Engine) -> None:
    await seed_account(db, "old", 5)
    async with AsyncSession(db) as s:
        a = await s.get(Account, "old")
        a.code = "new"
        await s.flush()
        assert inspect(a).identity == ("new",)
        assert s.identity_map[(Account, ("new",))] is a
        assert (Account, ("old",)) not in s.identity_map
        assert await s.get(Account, "old") is None
        assert await s.get(Account, "new") is a
        await s.commit()
    assert await core_rows(db, select(Account.code, Account.balance, Account.version)) == [("new", 5, 2)]


async def test_assigning_equal_values_of_every_type_is_no_change(db: Engine) -> None:
    async with AsyncSession(db) as s:
        s.add(AllTypes(id=1, **_typed_values(1)))
        await s.commit()
    async with AsyncSession(db) as s:
        o = await s.get(AllTypes, 1)
        for k, v in _typed_values(1).items():
            setattr(o, k, copy.deepcopy(v))  # equal, but not the loaded object
            assert not s.is_modified(o), k
        with capture_sql(db) as log:
            await s.commit()
        assert log.count("UPDATE") == 0


# -- the cyclic collector is paused during a large flush, and always switched back on -------------


async def test_large_flush_pauses_gc_and_restores_it(db: Engine) -> None:
    import gc

    from aiouow import _gc

    class GcProbe(logging.Handler):
        """Notes whether the collector runs while each statement is sent."""

        def __init__(self) -> None:
            super().__init__()
            self.enabled: list[bool] = []

        def emit(self, record: logging.LogRecord) -> None:
            if "INSERT" in record.getMessage() or "COPY" in record.getMessage():
                self.enabled.append(gc.isenabled())

    assert gc.isenabled()
    probe = GcProbe()
    logger = logging.getLogger("aiouow.engine")
    async with AsyncSession(db) as s:
        with capture_sql(db):
            logger.addHandler(probe)
            try:
                s.add_all([User(name=f"u{i}") for i in range(_gc.GC_PAUSE_MIN)])
                await s.flush()
                assert probe.enabled and not any(probe.enabled)  # paused while the INSERTs ran
                assert gc.isenabled()
                probe.enabled.clear()
                s.add(User(name="one"))
                await s.flush()
                assert probe.enabled == [True]  # a small flush leaves the collector alone
            finally:
                logger.removeHandler(probe)
        s.add(User(name="dup", email="same@x"))
        await s.flush()
        s.add_all([User(name=f"v{i}") for i in range(_gc.GC_PAUSE_MIN)])
        s.add(User(name="dup2", email="same@x"))  # the UNIQUE email fails the flush
        with pytest.raises(exc.IntegrityError):
            await s.flush()
        assert gc.isenabled()
    gc.disable()
    try:
        async with AsyncSession(db) as s:
            s.add_all([User(name=f"w{i}") for i in range(_gc.GC_PAUSE_MIN)])
            await s.commit()
        assert not gc.isenabled()  # the user's own setting is left alone
    finally:
        gc.enable()


async def test_large_flush_waits_for_its_connection_with_the_collector_on(db: Engine) -> None:
    import asyncio
    import gc

    from aiouow import _gc, create_engine

    # SQLite has one writer; on PostgreSQL a pool of one
    eng = db if db.dialect.name == "sqlite" else create_engine(db.url.raw, pool_size=1, pool_timeout=10)
    try:
        async with AsyncSession(eng) as holder:
            # holds the only connection (SQLite: the writer, a locking read takes it) in its transaction
            await holder.execute(select(User.id).with_for_update())
            flushing = AsyncSession(eng)
            flushing.add_all([User(name=f"u{i}") for i in range(_gc.GC_PAUSE_MIN)])
            flush = asyncio.create_task(flushing.flush())
            await asyncio.sleep(0.2)
            assert not flush.done()  # waiting for the connection...
            assert gc.isenabled()  # ...with the collector running
            await holder.rollback()
            await flush
            assert gc.isenabled()
            await flushing.commit()
            await flushing.close()
        assert await count(db, User) == _gc.GC_PAUSE_MIN
    finally:
        if eng is not db:
            await eng.dispose()


# -- regressions found in review of the flush fast paths ------------------------------------------


async def test_changes_to_a_flushed_deleted_object_are_not_written(db: Engine) -> None:
    async with AsyncSession(db) as s:
        gone = User(name="gone")
        s.add(gone)
        await s.flush()
        await s.delete(gone)
        await s.flush()
        other = User(name="other")  # on SQLite it may reuse the deleted row's key
        s.add(other)
        await s.flush()
        other_id = other.id
        with capture_sql(db) as log:
            gone.name = "oops"
            await s.commit()
        assert log.count("UPDATE") == 0
        assert inspect(gone).detached
        s.add(User(name="next"))  # the session is still usable
        await s.commit()
    assert list((await user_names(db)).values()) == ["other", "next"]
    assert (await user_names(db))[other_id] == "other"


async def test_column_update_does_not_need_an_unused_relationship_target(db: Engine) -> None:
    from aiouow import relationship, text
    from aiouow.mapping.mapper import unregister

    class TrUnfinished(Model):
        __tablename__ = "tr_unfinished"
        id: int = column(primary_key=True)
        name: str = column()
        later: list[Any] = relationship("TrNeverDefined")

    async with db.begin() as c:
        await c.execute(text("CREATE TABLE tr_unfinished (id INTEGER PRIMARY KEY, name VARCHAR NOT NULL)"))
        await c.execute(text("INSERT INTO tr_unfinished (id, name) VALUES (1, 'x')"))
    try:
        async with AsyncSession(db) as s:
            obj = await s.get(TrUnfinished, 1)
            obj.name = "y"
            await s.commit()
        assert await core_rows(db, text("SELECT name FROM tr_unfinished")) == [("y",)]
    finally:
        async with db.begin() as c:
            await c.execute(text("DROP TABLE tr_unfinished"))
        unregister(TrUnfinished)
