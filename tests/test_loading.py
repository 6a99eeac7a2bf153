"""Loading: no hidden I/O.  Explicit loads (``session.load``, ``awaitable_attrs``, ``refresh``,
``load_all``), coalescing of concurrent loads, eager options, ``NotLoadedError`` and
``DetachedInstanceError``, relationships of new objects, the N+1 guard."""

from __future__ import annotations

import asyncio
import warnings

import pytest

from aiouow import (
    AsyncSession,
    Engine,
    exc,
    inspect,
    joinedload,
    noload,
    raiseload,
    select,
    selectinload,
)

from .conftest import capture_sql
from .models import Node, Post, Tag, User
from .rel_models import TrPassport, TrPerson, TrPlayer, TrTeam, rows

# -- data ------------------------------------------------------------------------------------


async def seed(db: Engine, users: int = 3, posts_per_user: int = 2, tags: int = 2) -> list[int]:
    """Users u0..u{n-1}, each with posts (u0 gets none when posts_per_user > 0: an empty collection
    to load), every post tagged with every tag.  Returns user ids in name order."""
    async with AsyncSession(db) as s:
        tag_objs = [Tag(name=f"t{i}") for i in range(tags)]
        us = []
        for i in range(users):
            n = 0 if i == 0 else posts_per_user
            us.append(User(name=f"u{i}", posts=[Post(title=f"u{i}p{j}", tags=list(tag_objs)) for j in range(n)]))
        s.add_all(us)
        s.add_all(tag_objs)
        await s.commit()
        return [u.id for u in us]


def selects(log: object) -> int:
    return log.count("SELECT")  # type: ignore[attr-defined]


def sorted_users(users: list[User]) -> list[User]:
    return sorted(users, key=lambda u: u.name)


# -- explicit loads ------------------------------------------------------------------------------


async def test_session_load_by_name_and_by_attribute(db: Engine) -> None:
    ids = await seed(db)
    async with AsyncSession(db) as s:
        u1 = await s.get(User, ids[1])
        u2 = await s.get(User, ids[2])
        with capture_sql(db) as log:
            posts = await s.load(u1, "posts")
        assert selects(log) == 1 and len(log.statements) == 1
        assert [p.title for p in posts] == ["u1p0", "u1p1"] and posts is u1.posts
        with capture_sql(db) as log:
            assert await s.load(u1, "posts") is posts  # loaded: no SQL
            assert await s.load(u1, User.posts) is posts
        assert log.statements == []
        with capture_sql(db) as log:
            assert [p.title for p in await s.load(u2, User.posts)] == ["u2p0", "u2p1"]
        assert selects(log) == 1
        u0 = await s.get(User, ids[0])
        assert await s.load(u0, "posts") == []


async def test_session_load_rejects_unknown_attributes(db: Engine) -> None:
    ids = await seed(db, users=2)
    async with AsyncSession(db) as s:
        u = await s.get(User, ids[1])
        with pytest.raises(exc.ArgumentError, match="posts"):
            await s.load(u, "nope")
        with pytest.raises(exc.ArgumentError):
            await s.load(u, Post.tags)  # a relationship of another class


async def test_awaitable_attrs(db: Engine) -> None:
    ids = await seed(db)
    async with AsyncSession(db) as s:
        u = await s.get(User, ids[1])
        with capture_sql(db) as log:
            posts = await u.awaitable_attrs.posts
        assert selects(log) == 1
        assert [p.title for p in posts] == ["u1p0", "u1p1"] and u.posts is posts
        with capture_sql(db) as log:
            assert await u.awaitable_attrs.posts is posts
            assert await u.awaitable_attrs.name == "u1"
            assert await posts[0].awaitable_attrs.author is u  # set by the collection load
        assert log.statements == []
        s.expire(u, ["name"])
        with capture_sql(db) as log:
            assert await u.awaitable_attrs.name == "u1"  # an expired column, reloaded
        assert selects(log) == 1
        with pytest.raises(AttributeError):
            await u.awaitable_attrs.nope


async def test_refresh_reloads_a_relationship(db: Engine) -> None:
    ids = await seed(db)
    async with AsyncSession(db, expire_on_commit=False) as s:
        u = await s.get(User, ids[1])
        await s.load(u, "posts")
        await s.commit()  # ends the transaction: the next one sees the other session's insert
        async with AsyncSession(db) as other:
            other.add(Post(title="elsewhere", author_id=ids[1]))
            await other.commit()
        assert [p.title for p in u.posts] == ["u1p0", "u1p1"]  # loaded: kept as is
        with capture_sql(db) as log:
            await s.refresh(u, ["posts"])
        assert selects(log) == 1
        assert [p.title for p in u.posts] == ["u1p0", "u1p1", "elsewhere"]
        p = u.posts[2]
        await s.refresh(p, ["author"])
        assert p.author is u


async def test_many_to_one_load_uses_identity_map(db: Engine) -> None:
    ids = await seed(db)
    async with AsyncSession(db) as s:
        post = (await s.scalars(select(Post).where(Post.title == "u1p0"))).one()
        with capture_sql(db) as log:
            author = await s.load(post, "author")
        assert selects(log) == 1 and author.id == ids[1]
        other = (await s.scalars(select(Post).where(Post.title == "u1p1"))).one()
        with capture_sql(db) as log:
            assert await s.load(other, Post.author) is author  # already in the identity map
        assert log.statements == []


async def test_many_to_one_with_null_key_loads_none_without_sql(db: Engine) -> None:
    async with AsyncSession(db) as s:
        s.add(TrPlayer(name="free agent"))
        await s.commit()
    async with AsyncSession(db) as s:
        p = (await s.scalars(select(TrPlayer))).one()
        with capture_sql(db) as log:
            assert await s.load(p, "team") is None
        assert log.statements == []
        assert p.team is None


async def test_load_after_expire_reloads_the_foreign_key(db: Engine) -> None:
    ids = await seed(db)
    async with AsyncSession(db) as s:
        post = (await s.scalars(select(Post).where(Post.title == "u2p0"))).one()
        s.expire(post)
        author = await s.load(post, "author")
        assert author.id == ids[2] and post.author_id == ids[2]


# -- load_all -------------------------------------------------------------------------------------


async def test_load_all_one_select(db: Engine) -> None:
    ids = await seed(db, users=30, posts_per_user=3)
    async with AsyncSession(db) as s:
        users = (await s.scalars(select(User))).all()
        with capture_sql(db) as log:
            await s.load_all(users, "posts")
        assert selects(log) == 1 and len(log.statements) == 1
        by_name = {u.name: [p.title for p in u.posts] for u in users}
        assert by_name["u0"] == [] and by_name["u7"] == ["u7p0", "u7p1", "u7p2"]
        with capture_sql(db) as log:
            await s.load_all(users, User.posts)  # all loaded already
        assert log.statements == []
        posts = [p for u in users for p in u.posts]
        assert len(posts) == 29 * 3
        with capture_sql(db) as log:
            await s.load_all(posts, "tags")
        assert selects(log) == 1
        assert all(sorted(t.name for t in p.tags) == ["t0", "t1"] for p in posts)
        assert all(p.author.id in ids for p in posts)  # set by the collection load


async def test_load_all_many_to_one(db: Engine) -> None:
    await seed(db, users=5)
    async with AsyncSession(db) as s:
        posts = (await s.scalars(select(Post))).all()
        with capture_sql(db) as log:
            await s.load_all(posts, Post.author)
        assert selects(log) == 1
        assert all(p.author.name == p.title.split("p")[0] for p in posts)


async def test_load_all_edge_cases(db: Engine) -> None:
    ids = await seed(db, users=2)
    async with AsyncSession(db) as s:
        with capture_sql(db) as log:
            await s.load_all([], "posts")
        assert log.statements == []
        u = await s.get(User, ids[1])
        new = User(name="new")
        s.add(new)
        with capture_sql(db) as log:
            await s.load_all([u, new], "posts")  # the pending one needs nothing
        assert new.posts == [] and [p.title for p in u.posts] == ["u1p0", "u1p1"]
        with pytest.raises(exc.ArgumentError):
            await s.load_all([u, u.posts[0]], "posts")


async def test_load_all_chunks_under_parameter_limit(db: Engine) -> None:
    n = 10_001
    async with AsyncSession(db) as s:
        s.add_all([User(name=f"u{i}") for i in range(n)])
        await s.commit()
    async with AsyncSession(db) as s:
        users = (await s.scalars(select(User))).all()
        assert len(users) == n
        with capture_sql(db) as log:
            await s.load_all(users, "posts")
        found = [r for r in log.statements if r.upper().startswith("SELECT")]
        assert 1 <= len(found) <= 2 and len(found) == len(log.statements)
        if db.dialect.name == "sqlite":
            marks = [r.split("\n", 1)[0].count("?") for r in found]
            assert all(m <= db.dialect.max_params for m in marks)
            assert sum(marks) == n  # every parent key sent once: one SELECT per chunk
        assert all(u.posts == [] for u in users)


# -- coalescing --------------------------------------------------------------------------------------


async def test_concurrent_loads_coalesce_into_one_select(db: Engine) -> None:
    await seed(db, users=100, posts_per_user=1)
    async with AsyncSession(db) as s:
        users = (await s.scalars(select(User))).all()
        with warnings.catch_warnings(record=True) as caught, capture_sql(db) as log:
            warnings.simplefilter("always")
            results = await asyncio.gather(*[s.load(u, "posts") for u in users])
        assert selects(log) == 1 and len(log.statements) == 1
        assert not [w for w in caught if issubclass(w.category, exc.NPlusOneWarning)]
        for u, posts in zip(users, results):
            assert posts is u.posts
            assert [p.title for p in posts] == ([] if u.name == "u0" else [f"{u.name}p0"])


async def test_concurrent_loads_of_two_relationships(db: Engine) -> None:
    await seed(db, users=20, posts_per_user=2)
    async with AsyncSession(db) as s:
        users = (await s.scalars(select(User))).all()
        posts = (await s.scalars(select(Post))).all()
        with capture_sql(db) as log:
            await asyncio.gather(*[s.load(u, User.posts) for u in users], *[p.awaitable_attrs.tags for p in posts])
        assert selects(log) == 2
        assert all(len(p.tags) == 2 for p in posts)
        assert sum(len(u.posts) for u in users) == len(posts)


async def test_concurrent_awaitable_attrs_coalesce(db: Engine) -> None:
    await seed(db, users=50, posts_per_user=1)
    async with AsyncSession(db) as s:
        posts = (await s.scalars(select(Post))).all()  # their authors are not in the session yet
        with capture_sql(db) as log:
            authors = await asyncio.gather(*[p.awaitable_attrs.author for p in posts])
        assert selects(log) == 1
        assert [a.name for a in authors] == [p.title.split("p")[0] for p in posts]


async def test_coalesced_duplicates_and_mixed_loaded(db: Engine) -> None:
    await seed(db, users=5)
    async with AsyncSession(db) as s:
        users = (await s.scalars(select(User).order_by(User.name))).all()
        await s.load(users[1], "posts")
        with capture_sql(db) as log:
            got = await asyncio.gather(*[s.load(u, "posts") for u in users + users])
        assert selects(log) == 1  # the loaded one needs nothing; duplicates join the batch
        assert got[:5] == got[5:] and all(a is b for a, b in zip(got[:5], got[5:]))


async def test_coalesced_waiters_share_the_leaders_error(db: Engine) -> None:
    await seed(db, users=4)
    async with AsyncSession(db) as s:
        users = (await s.scalars(select(User))).all()
        s.add(Tag(name="t0"))  # a duplicate of a unique name
        with pytest.raises(exc.IntegrityError):
            await s.flush()
        results = await asyncio.gather(*[s.load(u, "posts") for u in users], return_exceptions=True)
        assert len(results) == 4 and all(isinstance(r, exc.PendingRollbackError) for r in results)
        await s.rollback()
        users = (await s.scalars(select(User))).all()
        assert len(await asyncio.gather(*[s.load(u, "posts") for u in users])) == 4  # usable again


async def test_load_autoflushes_first(db: Engine) -> None:
    ids = await seed(db)
    async with AsyncSession(db) as s:
        u = await s.get(User, ids[1])
        s.add(Post(title="by hand", author_id=ids[1]))
        posts = await s.load(u, "posts")
        assert [p.title for p in posts] == ["u1p0", "u1p1", "by hand"]


# -- eager loading options ------------------------------------------------------------------------


async def test_selectinload(db: Engine) -> None:
    await seed(db, users=4)
    async with AsyncSession(db) as s:
        with capture_sql(db) as log:
            users = (await s.scalars(select(User).order_by(User.name).options(selectinload(User.posts)))).all()
        assert selects(log) == 2
        with capture_sql(db) as log:
            assert [[p.title for p in u.posts] for u in users] == [
                [], ["u1p0", "u1p1"], ["u2p0", "u2p1"], ["u3p0", "u3p1"]]
            assert all(p.author is u for u in users for p in u.posts)
        assert log.statements == []


async def test_chained_selectinload(db: Engine) -> None:
    await seed(db, users=3, tags=3)
    async with AsyncSession(db) as s:
        with capture_sql(db) as log:
            users = (await s.scalars(select(User).options(selectinload(User.posts).selectinload(Post.tags)))).all()
        assert selects(log) == 3
        with capture_sql(db) as log:
            tags = {t.name for u in users for p in u.posts for t in p.tags}
        assert log.statements == [] and tags == {"t0", "t1", "t2"}
        # the tags were not asked for their posts
        some_tag = users[1].posts[0].tags[0] if users[1].posts else users[2].posts[0].tags[0]
        with pytest.raises(exc.NotLoadedError):
            some_tag.posts  # noqa: B018


async def test_joinedload_collection_one_query_no_duplicate_parents(db: Engine) -> None:
    await seed(db, users=4, posts_per_user=3)
    async with AsyncSession(db) as s:
        with capture_sql(db) as log:
            result = await s.scalars(select(User).order_by(User.name.desc()).options(joinedload(User.posts)))
            users = result.all()
        assert selects(log) == 1
        assert [u.name for u in users] == ["u3", "u2", "u1", "u0"]  # each parent once, in order
        assert len({id(u) for u in users}) == 4
        assert [p.title for p in users[0].posts] == ["u3p0", "u3p1", "u3p2"]
        assert users[3].posts == []  # LEFT OUTER JOIN keeps parents without children


async def test_joinedload_many_to_one_and_mixed(db: Engine) -> None:
    await seed(db, users=3)
    async with AsyncSession(db) as s:
        with capture_sql(db) as log:
            posts = (await s.scalars(select(Post).order_by(Post.id).options(joinedload(Post.author)))).all()
        assert selects(log) == 1 and len(posts) == 4
        assert [p.author.name for p in posts] == ["u1", "u1", "u2", "u2"]
        s.expunge_all()
        with capture_sql(db) as log:
            posts = (await s.scalars(select(Post).options(joinedload(Post.author), selectinload(Post.tags)))).all()
        assert selects(log) == 2 and len(posts) == 4
        assert all(len(p.tags) == 2 and p.author is not None for p in posts)


async def test_joinedload_many_to_many(db: Engine) -> None:
    await seed(db, users=3, tags=3)
    async with AsyncSession(db) as s:
        with capture_sql(db) as log:
            posts = (await s.scalars(select(Post).order_by(Post.id).options(joinedload(Post.tags)))).all()
            tags = (await s.scalars(select(Tag).options(joinedload(Tag.posts)))).all()
        assert selects(log) == 2
        assert len(posts) == 4 and len({id(p) for p in posts}) == 4
        assert all(sorted(t.name for t in p.tags) == ["t0", "t1", "t2"] for p in posts)
        assert len(tags) == 3 and all(len(t.posts) == 4 for t in tags)


async def test_joinedload_with_limit_limits_parents(db: Engine) -> None:
    await seed(db, users=4, posts_per_user=3)
    async with AsyncSession(db) as s:
        users = (await s.scalars(select(User).order_by(User.name.desc()).limit(2)
                                 .options(joinedload(User.posts)))).all()
        assert [u.name for u in users] == ["u3", "u2"]
        assert [len(u.posts) for u in users] == [3, 3]


async def test_joinedload_chained_and_self_referential(db: Engine) -> None:
    await seed(db, users=3)
    async with AsyncSession(db) as s:
        with capture_sql(db) as log:
            users = (await s.scalars(select(User).options(joinedload(User.posts).selectinload(Post.tags)))).all()
        assert selects(log) == 2 and len(users) == 3
        assert all(len(p.tags) == 2 for u in users for p in u.posts)
        s.add(Node(name="r", children=[Node(name="a"), Node(name="b", children=[Node(name="c")])]))
        await s.commit()
    async with AsyncSession(db) as s:
        nodes = (await s.scalars(select(Node).order_by(Node.name).options(joinedload(Node.children)))).all()
        assert [n.name for n in nodes] == ["a", "b", "c", "r"]
        assert {n.name: [c.name for c in n.children] for n in nodes} == {"a": [], "b": ["c"], "c": [], "r": ["a", "b"]}


async def test_get_with_options(db: Engine) -> None:
    ids = await seed(db)
    async with AsyncSession(db) as s:
        with capture_sql(db) as log:
            u = await s.get(User, ids[1], options=[selectinload(User.posts).selectinload(Post.tags)])
        assert selects(log) == 3
        assert [len(p.tags) for p in u.posts] == [2, 2]
        u2 = await s.get(User, ids[2])
        with capture_sql(db) as log:  # identity-map hit: only the relationship is loaded
            assert await s.get(User, ids[2], options=[joinedload(User.posts)]) is u2
        assert selects(log) == 1 and len(u2.posts) == 2


async def test_raiseload_and_noload(db: Engine) -> None:
    ids = await seed(db)
    async with AsyncSession(db) as s:
        with capture_sql(db) as log:
            u = (await s.scalars(select(User).where(User.id == ids[1]).options(raiseload(User.posts)))).one()
        assert selects(log) == 1
        with pytest.raises(exc.NotLoadedError, match="User.posts"):
            u.posts  # noqa: B018
    async with AsyncSession(db) as s:
        with capture_sql(db) as log:
            u = (await s.scalars(select(User).where(User.id == ids[1]).options(noload(User.posts)))).one()
            assert u.posts == []
            posts = (await s.scalars(select(Post).options(noload(Post.author)))).all()
            assert all(p.author is None for p in posts)
        assert selects(log) == 2
        with capture_sql(db) as log:
            got = await s.get(User, ids[2], options=[selectinload(User.posts).noload(Post.tags)])
        assert selects(log) == 2 and all(p.tags == [] for p in got.posts)


async def test_option_errors(db: Engine) -> None:
    await seed(db, users=1)
    with pytest.raises(exc.ArgumentError):
        selectinload(User.name)  # a column, not a relationship
    with pytest.raises(exc.ArgumentError, match="cannot follow"):
        selectinload(User.posts).selectinload(Tag.posts)
    async with AsyncSession(db) as s:
        with pytest.raises(exc.ArgumentError, match="does not apply"):
            await s.scalars(select(Tag).options(selectinload(User.posts)))


# -- NotLoadedError: never I/O ------------------------------------------------------------------


async def test_not_loaded_error_message_contract(db: Engine) -> None:
    ids = await seed(db)
    async with AsyncSession(db) as s:
        u = await s.get(User, ids[1])
        post = (await s.scalars(select(Post).where(Post.author_id == ids[1]))).first()
        with capture_sql(db) as log:
            with pytest.raises(exc.NotLoadedError) as info:
                u.posts  # noqa: B018
            with pytest.raises(exc.NotLoadedError) as info2:
                post.author  # noqa: B018
        assert log.records == []  # not even a BEGIN
        for err, cls, attr in ((info.value, "User", "posts"), (info2.value, "Post", "author")):
            msg = str(err)
            assert not isinstance(err, AttributeError)
            assert isinstance(err, exc.AiouowError)
            assert f"{cls}.{attr}" in msg
            assert f"session.load(obj, '{attr}')" in msg
            assert f"awaitable_attrs.{attr}" in msg
            assert f"selectinload({cls}.{attr})" in msg
            assert "load_all" in msg


async def test_not_loaded_is_not_swallowed_by_hasattr_or_getattr(db: Engine) -> None:
    ids = await seed(db)
    async with AsyncSession(db) as s:
        u = await s.get(User, ids[1])
        with capture_sql(db) as log:
            with pytest.raises(exc.NotLoadedError):
                hasattr(u, "posts")
            with pytest.raises(exc.NotLoadedError):
                getattr(u, "posts", None)
        assert log.records == []


async def test_expired_relationship_and_column(db: Engine) -> None:
    ids = await seed(db)
    async with AsyncSession(db) as s:
        u = await s.get(User, ids[1])
        await s.load(u, "posts")
        await s.commit()  # expire_on_commit
        with capture_sql(db) as log:
            with pytest.raises(exc.NotLoadedError, match=r"User\.posts.*commit\(\)"):
                u.posts  # noqa: B018
            with pytest.raises(exc.NotLoadedError, match=r"User\.name") as info:
                u.name  # noqa: B018
            assert u.id == ids[1]  # the identity stays readable
        assert log.records == []
        assert "refresh" in str(info.value) and not isinstance(info.value, AttributeError)


async def test_detached_instance_error(db: Engine) -> None:
    ids = await seed(db)
    async with AsyncSession(db) as s:
        u = await s.get(User, ids[1])
        loaded = await s.get(User, ids[2], options=[selectinload(User.posts)])
    with capture_sql(db) as log:
        with pytest.raises(exc.DetachedInstanceError, match=r"User\.posts") as info:
            u.posts  # noqa: B018
        assert [p.title for p in loaded.posts] == ["u2p0", "u2p1"]  # loaded values stay readable
    assert log.records == []
    assert isinstance(info.value, exc.NotLoadedError) and "detached" in str(info.value)
    with pytest.raises(exc.DetachedInstanceError):
        await u.awaitable_attrs.posts
    async with AsyncSession(db) as s2:
        with pytest.raises(exc.DetachedInstanceError):
            await s2.load(u, "posts")
        with pytest.raises(exc.DetachedInstanceError):
            await s2.load_all([u], "posts")


async def test_load_from_another_session_or_deleted(db: Engine) -> None:
    ids = await seed(db)
    async with AsyncSession(db) as s1, AsyncSession(db) as s2:
        u = await s1.get(User, ids[1])
        with pytest.raises(exc.InvalidRequestError, match="another session"):
            await s2.load(u, "posts")
        await s1.rollback()
    async with AsyncSession(db) as s:
        u = await s.get(User, ids[0])
        await s.delete(u)
        await s.flush()
        with pytest.raises(exc.InvalidRequestError, match="deleted"):
            await s.load(u, "posts")


# -- new objects: empty without I/O, loaded after flush --------------------------------------------


async def test_new_objects_relationships_read_empty_and_stay_loaded(db: Engine) -> None:
    with capture_sql(db) as log:
        u = User(name="new")
        p = Post(title="p")
        person = TrPerson(name="x")
        assert u.posts == [] and p.author is None and p.tags == [] and person.passport is None
        fresh = User(name="fresh")
        assert "posts" not in inspect(fresh).unloaded  # counts as loaded, never read
    assert log.records == []
    async with AsyncSession(db) as s:
        u2 = User(name="u2")
        t = Tag(name="t")
        s.add_all([u, u2, t, fresh])
        p.author = u
        with capture_sql(db) as log:
            assert u2.posts == [] and t.posts == []
            assert await s.load(u2, "posts") == []
            assert await u2.awaitable_attrs.posts == []
        assert log.records == []
        await s.flush()
        with capture_sql(db) as log:
            # loaded before the flush, or never touched: all loaded after it
            assert u.posts == [p] and u2.posts == [] and t.posts == [] and p.tags == []
            assert fresh.posts == []
            assert await s.load(fresh, "posts") == []
        assert log.records == []


async def test_new_many_to_one_with_key_set_by_hand_is_loadable_after_flush(db: Engine) -> None:
    async with AsyncSession(db) as s:
        team = TrTeam(name="red")
        s.add(team)
        await s.flush()
        p = TrPlayer(name="pat", team_id=team.id)
        s.add(p)
        await s.flush()
        assert await s.load(p, "team") is team


async def test_pending_object_with_collection_cascades_and_loads(db: Engine) -> None:
    async with AsyncSession(db) as s:
        person = TrPerson(name="x")
        s.add(person)
        person.passport = TrPassport(number="A")
        assert person.passport in s.new
        await s.commit()
    assert await rows(db, select(TrPassport.number)) == [("A",)]


# -- the N+1 guard --------------------------------------------------------------------------------


def _n_plus_one(caught: list[warnings.WarningMessage]) -> list[warnings.WarningMessage]:
    return [w for w in caught if issubclass(w.category, exc.NPlusOneWarning)]


async def test_n_plus_one_warns_once_past_threshold(db: Engine) -> None:
    await seed(db, users=30, posts_per_user=1)
    async with AsyncSession(db) as s:
        users = (await s.scalars(select(User).order_by(User.id))).all()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for u in users[:10]:
                await s.load(u, "posts")
            assert _n_plus_one(caught) == []  # the threshold itself is fine
            await s.load(users[10], "posts")
            assert len(_n_plus_one(caught)) == 1
            for u in users[11:]:
                await s.load(u, "posts")
            found = _n_plus_one(caught)
        assert len(found) == 1  # once per relationship
        msg = str(found[0].message)
        assert "User.posts" in msg and "selectinload" in msg and "load_all" in msg
        assert found[0].filename == __file__  # points at the caller's line
        assert isinstance(found[0].message, exc.AiouowError)


async def test_n_plus_one_counts_per_relationship_and_awaitable_attrs(db: Engine) -> None:
    await seed(db, users=8, posts_per_user=2)
    async with AsyncSession(db, n_plus_one_threshold=3) as s:
        posts = (await s.scalars(select(Post).order_by(Post.id))).all()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for p in posts[:4]:
                await p.awaitable_attrs.tags
            for p in posts[4:8]:
                await s.load(p, "author")  # identity-map hits count too: still one call per object
            found = _n_plus_one(caught)
        assert len(found) == 2
        assert "Post.tags" in str(found[0].message) and "Post.author" in str(found[1].message)


async def test_n_plus_one_raise_mode(db: Engine) -> None:
    await seed(db, users=6, posts_per_user=1)
    async with AsyncSession(db, n_plus_one_threshold=4, n_plus_one="raise") as s:
        users = (await s.scalars(select(User).order_by(User.id))).all()
        for u in users[:4]:
            await s.load(u, "posts")
        with pytest.raises(exc.NPlusOneError, match="User.posts") as info:
            await s.load(users[4], "posts")
        assert "selectinload" in str(info.value) and "load_all" in str(info.value)
        assert isinstance(info.value, exc.AiouowError)


async def test_n_plus_one_off_and_batched_loads_do_not_count(db: Engine) -> None:
    await seed(db, users=25, posts_per_user=1)
    with pytest.raises(exc.ArgumentError):
        AsyncSession(db, n_plus_one="loud")
    async with AsyncSession(db, n_plus_one=None) as s:
        users = (await s.scalars(select(User))).all()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for u in users:
                await s.load(u, "posts")
        assert _n_plus_one(caught) == []
    async with AsyncSession(db, n_plus_one_threshold=2, n_plus_one="raise") as s:
        for _ in range(5):  # load_all, eager options and coalesced gathers are not N+1
            users = (await s.scalars(select(User).options(selectinload(User.posts)))).all()
            await s.load_all([p for u in users for p in u.posts], "tags")
            s.expire_all()
            users = (await s.scalars(select(User))).all()
            await asyncio.gather(*[s.load(u, "posts") for u in users])
            s.expire_all()
