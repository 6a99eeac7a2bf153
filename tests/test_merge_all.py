"""``session.merge_all()``: a loop of ``merge()`` with the identity-map misses loaded in one SELECT per
model and chunk of keys; and ``merge()`` of an identity the map holds sends nothing.

The equality with the loop is checked on random mixes (hypothesis) of objects the session holds, rows
only in the database, keys with no row, objects without a key and repeated inputs; the other tests
pin the statement counts, the chunking at the parameter limit, composite keys, duplicates,
``load=False``, errors and relationships.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiouow import AsyncSession, Engine, exc, inspect, select, selectinload

from .conftest import capture_sql
from .models import Account, Membership, Post, Tag, User
from .session_support import NOW, seed_users, user_names


def status(obj: Any) -> str:
    i = inspect(obj)
    return next(s for s in ("transient", "pending", "persistent", "deleted", "detached") if getattr(i, s))


def selects(log: Any) -> list[str]:
    return [r for r in log.statements if r.upper().startswith("SELECT")]


async def detached_users(db: Engine, *ids: int, posts: bool = False) -> list[User]:
    opts = [selectinload(User.posts)] if posts else []
    async with AsyncSession(db, expire_on_commit=False) as s:
        got = [await s.get_one(User, i, options=opts) for i in ids]
    return got


async def seed_blog(db: Engine, users: int, posts_per_user: int) -> None:
    async with AsyncSession(db) as s:
        for i in range(1, users + 1):
            s.add(User(id=i, name=f"u{i}", created_at=NOW,
                       posts=[Post(title=f"u{i}p{j}") for j in range(posts_per_user)]))
        await s.commit()


# -- statement counts --------------------------------------------------------------------------------


async def test_one_select_for_all_misses_in_input_order(db: Engine) -> None:
    await seed_users(db, "a", "b", "c", "d")
    copies = await detached_users(db, 1, 2, 3)
    for u in copies:
        u.name += "!"
    async with AsyncSession(db) as s:
        held = await s.get_one(User, 4)
        new = User(name="fresh", created_at=NOW)
        absent = User(id=77, name="absent", created_at=NOW)
        inputs = [copies[2], User(id=4, name="d!", created_at=NOW), new, copies[0], absent, copies[1]]
        with capture_sql(db) as log:
            out = await s.merge_all(inputs)
        assert len(selects(log)) == 1 and len(log.statements) == 1
        assert [u.name for u in out] == ["c!", "d!", "fresh", "a!", "absent", "b!"]
        assert out[1] is held
        assert [status(u) for u in out] == ["persistent", "persistent", "pending", "persistent", "pending",
                                            "persistent"]
        assert all(o is not i for o, i in zip(out, inputs)) and all(status(u) == "detached" for u in copies)
        await s.commit()
    assert await user_names(db) == {1: "a!", 2: "b!", 3: "c!", 4: "d!", 77: "absent", out[2].id: "fresh"}


async def test_identities_in_the_map_send_nothing(db: Engine) -> None:
    """merge() and merge_all() of objects whose identity the session holds: no statement at all,
    relationships included when the held objects have them loaded."""
    await seed_blog(db, 3, 2)
    copies = await detached_users(db, 1, 2, 3, posts=True)
    copies[0].posts[0].title = "renamed"
    async with AsyncSession(db) as s:
        held = list((await s.scalars(select(User).options(selectinload(User.posts)))).all())
        with capture_sql(db) as log:
            one = await s.merge(copies[1])
            out = await s.merge_all(copies)
            again = await s.merge_all(copies)
        assert log.records == []
        assert one is held[1] and out == held and again == held
        assert held[0].posts[0].title == "renamed" and held[0].posts[0] in s.dirty
        await s.commit()


async def test_merge_of_held_identity_never_queries_even_expired(db: Engine) -> None:
    await seed_users(db, "a", "b")
    async with AsyncSession(db) as s:
        held = await s.get_one(User, 1)
        s.expire(held)
        with capture_sql(db) as log:
            m = await s.merge(User(id=1, name="over", created_at=NOW))
            ms = await s.merge_all([User(id=1, name="again", created_at=NOW)])
        assert log.records == []
        assert m is held and ms == [held] and held.name == "again"
        await s.commit()
    assert (await user_names(db))[1] == "again"


async def test_chunks_at_the_parameter_limit(db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    await seed_users(db, *[f"u{i}" for i in range(7)])
    copies = await detached_users(db, *range(1, 8))
    monkeypatch.setattr(db.dialect, "max_params", 13)  # room for 3 keys a statement (10 kept spare)
    async with AsyncSession(db) as s:
        with capture_sql(db) as log:
            out = await s.merge_all(copies)
        assert len(selects(log)) == 3 == len(log.statements)  # 3 + 3 + 1 keys
        assert [u.id for u in out] == list(range(1, 8)) and all(status(u) == "persistent" for u in out)


async def test_composite_keys_batched_and_chunked(db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    async with AsyncSession(db) as s:
        s.add_all([Membership(org="o", user_no=i, role="member") for i in range(5)])
        await s.commit()
    monkeypatch.setattr(db.dialect, "max_params", 14)  # 2 keys of 2 columns a statement
    async with AsyncSession(db) as s:
        inputs = [Membership(org="o", user_no=i, role="owner") for i in (4, 0, 2, 9, 1, 3)]
        with capture_sql(db) as log:
            out = await s.merge_all(inputs)
        assert len(selects(log)) == 3 == len(log.statements)  # 6 keys, 2 a statement
        assert [(m.user_no, status(m)) for m in out] == [(4, "persistent"), (0, "persistent"), (2, "persistent"),
                                                          (9, "pending"), (1, "persistent"), (3, "persistent")]
        await s.commit()
    async with AsyncSession(db) as s:
        got = (await s.scalars(select(Membership).order_by(Membership.user_no))).all()
        assert [(m.user_no, m.role) for m in got] == [(i, "owner") for i in (0, 1, 2, 3, 4, 9)]


# -- duplicates, load=False, errors --------------------------------------------------------------------


async def test_duplicates_merge_onto_one_object(db: Engine) -> None:
    (uid,) = await seed_users(db, "a")
    async with AsyncSession(db) as s:
        same = User(id=uid, name="first", created_at=NOW)
        new_twice = Account(code="n", balance=1), Account(code="n", balance=2)
        keyless = User(name="keyless", created_at=NOW)
        with capture_sql(db) as log:
            out = await s.merge_all([same, User(id=uid, name="second", created_at=NOW), same, *new_twice,
                                     keyless, keyless])
        assert len(selects(log)) == 2 == len(log.statements)  # users, accounts
        assert out[0] is out[1] is out[2] and out[0].name == "first"  # the last copy of the source won
        assert out[3] is out[4] and out[3].balance == 2 and status(out[3]) == "pending"
        # an object without a key is new every time it is merged, as with merge() in a loop
        assert out[5] is not out[6] and status(out[5]) == status(out[6]) == "pending"
        with capture_sql(db) as log:
            await s.commit()
        assert log.count('INSERT INTO "accounts"') == 1
    assert sorted((await user_names(db)).values()) == ["first", "keyless", "keyless"]


async def test_load_false_is_the_loop(db: Engine) -> None:
    await seed_users(db, "a", "b", "c")
    first, second, dirty = await detached_users(db, 1, 2, 3)
    dirty.name = "changed"
    async with AsyncSession(db) as s:
        with capture_sql(db) as log:
            out = await s.merge_all([first, first], load=False)
            assert out[0] is out[1] and status(out[0]) == "persistent" and not s.is_modified(out[0])
            with pytest.raises(exc.InvalidRequestError, match="load=False"):
                await s.merge_all([second, dirty], load=False)
            with pytest.raises(exc.InvalidRequestError, match="load=False"):
                await s.merge_all([User(id=9, name="z", created_at=NOW)], load=False)
        assert log.records == []
        # as in the loop, what came before the failing object is merged
        assert (User, (2,)) in s.identity_map and (User, (3,)) not in s.identity_map


async def test_unmapped_input_raises_before_anything_is_merged(db: Engine) -> None:
    await seed_users(db, "a")
    (copy,) = await detached_users(db, 1)
    async with AsyncSession(db) as s:
        with capture_sql(db) as log:
            with pytest.raises(exc.ArgumentError, match=r"merge_all\(\) takes a mapped object"):
                await s.merge_all([copy, object()])
        assert log.records == [] and len(s.identity_map) == 0 and not s.in_transaction()
        assert await s.merge_all([]) == []


# -- relationships -----------------------------------------------------------------------------------


async def test_cascade_is_batched_one_query_per_model_and_relationship(db: Engine) -> None:
    await seed_blog(db, 4, 3)
    async with AsyncSession(db, expire_on_commit=False) as s:
        users = list((await s.scalars(
            select(User).order_by(User.id).options(selectinload(User.posts).selectinload(Post.tags)))).all())
    for u in users:
        u.name = u.name.upper()
        u.posts[0].title += " renamed"
        u.posts[1].tags.append(Tag(name=f"tag{u.id}"))
    removed = users[0].posts.pop()
    users[1].posts.append(Post(title="added"))
    async with AsyncSession(db) as s:
        with capture_sql(db) as log:
            out = await s.merge_all(users)
        # users by key, posts by key, then the collections the merge replaces: users' posts, posts' tags
        assert len(selects(log)) == 4 == len(log.statements)
        assert [u.name for u in out] == ["U1", "U2", "U3", "U4"]
        assert [p.title for p in out[1].posts] == ["u2p0 renamed", "u2p1", "u2p2", "added"]
        await s.commit()
    async with AsyncSession(db) as s:
        titles = {p.title for p in (await s.scalars(select(Post))).all()}
        assert removed.title not in titles  # delete-orphan, as merge() does
        assert {"u1p0 renamed", "added"} <= titles and len(titles) == 12
        tagged = await s.get_one(Post, users[2].posts[1].id, options=[selectinload(Post.tags)])
        assert [t.name for t in tagged.tags] == ["tag3"]


async def test_cascade_counts_beat_the_loop(db: Engine) -> None:
    """The same graph merged by a loop of merge() sends one SELECT per object and per collection."""
    await seed_blog(db, 5, 2)
    users = await detached_users(db, *range(1, 6), posts=True)
    async with AsyncSession(db) as s:
        with capture_sql(db) as log:
            for u in users:
                await s.merge(u)
        loop_selects = len(selects(log))
        await s.rollback()
    async with AsyncSession(db) as s:
        with capture_sql(db) as log:
            await s.merge_all(users)
        assert len(selects(log)) == 3  # users, posts, users' posts
    assert loop_selects == 5 + 10 + 5


async def test_many_to_one_from_the_map(db: Engine) -> None:
    await seed_blog(db, 2, 1)
    async with AsyncSession(db, expire_on_commit=False) as s:
        posts = list((await s.scalars(select(Post).options(selectinload(Post.author)))).all())
    posts[0].author = posts[1].author
    posts[0].author_id = posts[1].author_id
    async with AsyncSession(db) as s:
        with capture_sql(db) as log:
            out = await s.merge_all(posts)
        assert len(selects(log)) == 2  # posts, users: the authors come from the map afterwards
        assert out[0].author is out[1].author and out[0].author.id == 2
        await s.commit()
    async with AsyncSession(db) as s:
        assert [p.author_id for p in (await s.scalars(select(Post).order_by(Post.id))).all()] == [2, 2]


# -- equality with a loop of merge() (hypothesis) ------------------------------------------------------

SPEC = st.lists(st.one_of(
    st.tuples(st.just("row"), st.integers(1, 4), st.booleans()),  # a row's key (detached copy or transient)
    st.tuples(st.just("missing"), st.integers(101, 103), st.booleans()),  # a key with no row
    st.tuples(st.just("nokey"), st.just(0), st.booleans()),  # no key: becomes pending
    st.tuples(st.just("again"), st.integers(0, 20), st.booleans()),  # an earlier input, repeated
), max_size=10)


def build_inputs(spec: list[tuple[str, int, bool]], detached: dict[int, User]) -> list[Any]:
    out: list[Any] = []
    for n, (kind, key, flag) in enumerate(spec):
        if kind == "again":
            if out:
                out.append(out[key % len(out)])
            continue
        if kind == "row" and flag:
            out.append(detached[key])  # loaded elsewhere, with a change
            continue
        kw: dict[str, Any] = {} if kind == "nokey" else {"id": key}
        out.append(User(name=f"{kind}{key}-{n}", created_at=NOW, **kw))
    return out


def key(ident: int, name: str) -> int:
    """Generated keys compared as 0: the order of the INSERTs, and so the keys, differs (the loop
    inserts some rows at an autoflush), and PostgreSQL's sequence does not roll back."""
    return 0 if name.startswith("nokey") else ident


async def outcome(db: Engine, inputs: list[Any], batched: bool) -> tuple[Any, ...]:
    """What the session holds and the database would hold after merging ``inputs`` (rolled back)."""
    async with AsyncSession(db) as s:
        held = [await s.get_one(User, 1), await s.get_one(User, 2)]
        if batched:
            out = await s.merge_all(inputs)
        else:
            out = [await s.merge(o) for o in inputs]
        await s.flush()
        shape = [next(i for i, p in enumerate(out) if p is o) for o in out]
        rows = (await s.execute(select(User.id, User.name))).all()
        result = ([(status(o), key(o.id, o.name), o.name) for o in out], shape,
                  [next((i for i, o in enumerate(out) if o is h), -1) for h in held],
                  sorted((key(i, name), name) for i, name in rows),
                  sorted(tuple(r) for r in (await s.execute(select(Post.author_id, Post.title))).all()))
        await s.rollback()
    return result


async def test_merge_all_equals_a_loop_of_merge(db: Engine) -> None:
    await seed_users(db, "a", "b", "c", "d")
    async with AsyncSession(db) as s:
        s.add_all([Post(author_id=i, title=f"p{i}{j}") for i in (1, 2, 3) for j in (0, 1)])
        # SQLite generates max(id) + 1: keep generated keys away from the "missing" ones, where the loop
        # would find a row it inserted at an autoflush under a key nobody chose
        s.add(User(id=999, name="high", created_at=NOW))
        await s.commit()
    detached = dict(enumerate(await detached_users(db, 1, 2, 3, 4, posts=True), start=1))
    for u in detached.values():
        u.name += "-detached"
    detached[1].posts[0].title = "renamed"
    detached[2].posts.pop()  # an orphan, deleted
    detached[3].posts.append(Post(title="added"))
    loop = asyncio.get_running_loop()

    def run(coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(SPEC)
    def check(spec: list[tuple[str, int, bool]]) -> None:
        inputs = build_inputs(spec, detached)
        assert run(outcome(db, inputs, True)) == run(outcome(db, inputs, False))

    await asyncio.to_thread(check)
    assert await user_names(db) == {1: "a", 2: "b", 3: "c", 4: "d", 999: "high"}  # every outcome was rolled back
