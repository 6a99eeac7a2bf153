"""Cascades with SQLAlchemy's meaning: save-update, delete (loaded in batched queries by
``session.delete()``), delete-orphan, expunge, refresh-expire, merge, all, passive_deletes; children
un-parented when a parent without delete cascade goes; association rows removed with either side."""

from __future__ import annotations

import pytest

from aiouow import AsyncSession, Engine, exc, func, insert, inspect, select, selectinload
from aiouow.mapping.relationships import parse_cascade

from .conftest import capture_sql
from .models import Node, Post, Tag, User, post_tags
from .rel_models import (
    TrCategory,
    TrCourse,
    TrFile,
    TrFolder,
    TrPassport,
    TrPerson,
    TrPlayer,
    TrProfile,
    TrStudent,
    TrTeam,
    rows,
    tr_enrollments,
)


async def seed_blog(db: Engine) -> int:
    async with AsyncSession(db) as s:
        t1, t2 = Tag(name="t1"), Tag(name="t2")
        u = User(name="ann", posts=[Post(title="p1", tags=[t1, t2]), Post(title="p2", tags=[t1]), Post(title="p3")])
        s.add(u)
        await s.commit()
        return u.id


def tables_of(log: object, verb: str) -> list[str]:
    out = []
    for r in log.statements:  # type: ignore[attr-defined]
        first = r.split("\n", 1)[0]
        if first.upper().startswith(verb):
            words = first.replace('"', "").split()
            idx = {"INSERT": 2, "DELETE": 2, "UPDATE": 1}[verb]
            out.append(words[idx])
    return out


# -- the cascade words -------------------------------------------------------------------------


def test_cascade_words() -> None:
    assert parse_cascade("all") == {"save-update", "merge", "expunge", "delete", "refresh-expire"}
    assert parse_cascade("all, delete-orphan") == parse_cascade("all") | {"delete-orphan"}
    assert parse_cascade("save-update, merge") == {"save-update", "merge"}
    assert inspect(User).relationships["posts"].cascade == parse_cascade("all, delete-orphan")
    assert inspect(Post).relationships["author"].cascade == {"save-update", "merge"}  # the default
    with pytest.raises(exc.ArgumentError, match="unknown cascade"):
        parse_cascade("save-update, everything")


# -- save-update ---------------------------------------------------------------------------------


async def test_save_update_cascade_on_add(db: Engine) -> None:
    async with AsyncSession(db) as s:
        tag = Tag(name="t")
        post = Post(title="p", tags=[tag])
        u = User(name="ann", posts=[post])
        s.add(u)
        assert post in s and tag in s  # through User.posts, then Post.tags
        assert set(map(id, s.new)) == {id(u), id(post), id(tag)}
        await s.commit()
    assert await rows(db, select(Tag.name)) == [("t",)]


async def test_save_update_cascade_on_append_and_assignment(db: Engine) -> None:
    uid = await seed_blog(db)
    async with AsyncSession(db) as s:
        u = await s.get(User, uid, options=[selectinload(User.posts).selectinload(Post.tags)])
        new_post = Post(title="p4")
        u.posts.append(new_post)  # no add(): joins through the collection
        assert new_post in s.new
        new_tag = Tag(name="t3")
        u.posts[0].tags.append(new_tag)
        assert new_tag in s.new
        other = User(name="bob")
        u.posts[1].author = other  # many-to-one assignment
        assert other in s.new
        await s.commit()
    assert sorted(await rows(db, select(Post.title))) == [("p1",), ("p2",), ("p3",), ("p4",)]
    assert await rows(db, select(User.name).order_by(User.id)) == [("ann",), ("bob",)]
    assert len(await rows(db, select(post_tags.c.tag_id))) == 4


async def test_save_update_cascade_reattaches_detached(db: Engine) -> None:
    uid = await seed_blog(db)
    async with AsyncSession(db) as s:
        p3 = (await s.scalars(select(Post).where(Post.title == "p3"))).one()
    assert inspect(p3).detached
    async with AsyncSession(db) as s:
        bob = User(name="bob")
        s.add(bob)
        bob.posts.append(p3)
        assert inspect(p3).persistent and p3 in s
        await s.commit()
        bob_id = bob.id
    assert await rows(db, select(Post.author_id).where(Post.title == "p3")) == [(bob_id,)]
    assert bob_id != uid


# -- delete --------------------------------------------------------------------------------------


async def test_delete_loads_cascade_in_one_query_and_deletes(db: Engine) -> None:
    uid = await seed_blog(db)
    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        with capture_sql(db) as log:
            await s.delete(u)
        assert log.count("SELECT") == 1 and len(log.statements) == 1  # the posts, nothing else
        posts = u.posts
        assert len(posts) == 3 and all(p in s.deleted for p in posts)
        with capture_sql(db) as log:
            await s.flush()
        assert all(inspect(p).deleted for p in posts) and inspect(u).deleted
        assert tables_of(log, "DELETE")[-2:] == ["posts", "users"]  # children first
        await s.commit()
    assert await rows(db, select(Post.id)) == []
    assert await rows(db, select(post_tags.c.post_id)) == []
    assert len(await rows(db, select(Tag.id))) == 2  # no delete cascade along Post.tags


async def test_delete_with_children_already_loaded_needs_no_select(db: Engine) -> None:
    uid = await seed_blog(db)
    async with AsyncSession(db) as s:
        u = await s.get(User, uid, options=[selectinload(User.posts)])
        with capture_sql(db) as log:
            await s.delete(u)
        assert log.statements == []
        await s.commit()
    assert await rows(db, select(Post.id)) == []


async def test_delete_cascade_through_a_tree_one_query_per_level(db: Engine) -> None:
    async with AsyncSession(db) as s:
        root = TrCategory(name="root", subs=[
            TrCategory(name=f"a{i}", subs=[TrCategory(name=f"a{i}b{j}", subs=[TrCategory(name=f"a{i}b{j}c{k}")
                                                                             for k in range(2)])
                                          for j in range(3)])
            for i in range(3)])
        other = TrCategory(name="other", subs=[TrCategory(name="keep")])
        s.add_all([root, other])
        await s.commit()
        root_id = root.id
    assert len(await rows(db, select(TrCategory.id))) == 1 + 3 + 9 + 18 + 2
    async with AsyncSession(db) as s:
        root = await s.get(TrCategory, root_id)
        with capture_sql(db) as log:
            await s.delete(root)
        # one query per level of the tree (the last finds no children), not one per node
        assert log.count("SELECT") == 4 and len(log.statements) == 4
        assert len(s.deleted) == 31
        await s.commit()
    assert sorted(await rows(db, select(TrCategory.name))) == [("keep",), ("other",)]


async def test_delete_one_to_one_cascade_and_unparent(db: Engine) -> None:
    async with AsyncSession(db) as s:
        p = TrPerson(name="ann", passport=TrPassport(number="A"), profile=TrProfile(bio="b"))
        s.add(p)
        await s.commit()
        pid = p.id
    async with AsyncSession(db) as s:
        p = await s.get(TrPerson, pid)
        with capture_sql(db) as log:
            await s.delete(p)
        assert log.count("SELECT") == 1  # the passport (delete cascade); the profile is not loaded
        assert "profile" in inspect(p).unloaded
        await s.commit()
    assert await rows(db, select(TrPassport.id)) == []
    assert await rows(db, select(TrProfile.bio, TrProfile.person_id)) == [("b", None)]


async def test_delete_requires_persistent_object(db: Engine) -> None:
    async with AsyncSession(db) as s:
        u = User(name="x")
        with pytest.raises(exc.InvalidRequestError, match="not persisted"):
            await s.delete(u)
        s.add(u)
        with pytest.raises(exc.InvalidRequestError, match="expunge"):
            await s.delete(u)


# -- deleting a parent without delete cascade: children un-parented ------------------------------


async def test_delete_parent_without_delete_cascade_nulls_children(db: Engine) -> None:
    async with AsyncSession(db) as s:
        red = TrTeam(name="red", players=[TrPlayer(name=f"r{i}") for i in range(3)])
        blue = TrTeam(name="blue", players=[TrPlayer(name="b0")])
        s.add_all([red, blue])
        await s.commit()
        red_id, blue_id = red.id, blue.id
    async with AsyncSession(db) as s:
        red = await s.get(TrTeam, red_id)
        r0 = (await s.scalars(select(TrPlayer).where(TrPlayer.name == "r0"))).one()
        r1 = (await s.scalars(select(TrPlayer).where(TrPlayer.name == "r1").options(selectinload(TrPlayer.team)))).one()
        assert r1.team is red
        with capture_sql(db) as log:
            await s.delete(red)
        assert log.statements == []  # nothing to load: the children are un-parented in bulk
        with capture_sql(db) as log:
            await s.flush()
        assert tables_of(log, "UPDATE") == ["tr_players"]  # one statement for all children
        assert r0.team_id is None and r1.team_id is None and r1.team is None  # in memory too
        await s.commit()
    got = dict(await rows(db, select(TrPlayer.name, TrPlayer.team_id)))
    assert got == {"r0": None, "r1": None, "r2": None, "b0": blue_id}
    assert await rows(db, select(TrTeam.name)) == [("blue",)]


async def test_delete_more_parents_than_the_parameter_limit_nulls_children(db: Engine) -> None:
    """40 000 deleted parents (over SQLite's 32 766 bound parameters): the un-parenting
    statement is chunked on SQLite, one array parameter on PostgreSQL."""
    n = 40_000
    async with db.connect() as conn:
        await conn.execute(insert(TrTeam), [{"id": i, "name": f"t{i}"} for i in range(1, n + 1)])
        await conn.execute(insert(TrPlayer), [{"id": i, "name": f"p{i}", "team_id": i} for i in (1, n // 2, n)])
        await conn.execute(insert(TrPlayer).values(id=n + 1, name="free"))
        await conn.commit()
    async with AsyncSession(db) as s:
        teams = (await s.scalars(select(TrTeam))).all()
        assert len(teams) == n
        for t in teams:
            await s.delete(t)
        with capture_sql(db) as log:
            await s.commit()
    # this machine's SQLite may allow more parameters than the portable 32 766, so the chunking
    # is checked by the statements sent, not by an error
    assert tables_of(log, "UPDATE") == ["tr_players"] * (2 if db.dialect.name == "sqlite" else 1)
    assert await rows(db, select(func.count()).select_from(TrTeam)) == [(0,)]
    got = dict(await rows(db, select(TrPlayer.name, TrPlayer.team_id)))
    assert got == {"p1": None, f"p{n // 2}": None, f"p{n}": None, "free": None}


async def test_delete_parent_with_loaded_children_without_delete_cascade(db: Engine) -> None:
    async with AsyncSession(db) as s:
        s.add(Node(name="root", children=[Node(name="a"), Node(name="b")]))
        await s.commit()
    async with AsyncSession(db) as s:
        root = (await s.scalars(select(Node).where(Node.name == "root").options(selectinload(Node.children)))).one()
        a, b = root.children
        await s.delete(root)
        await s.commit()
    assert sorted(await rows(db, select(Node.name, Node.parent_id))) == [("a", None), ("b", None)]


async def test_child_moved_away_from_deleted_parent_keeps_new_parent(db: Engine) -> None:
    async with AsyncSession(db) as s:
        red = TrTeam(name="red", players=[TrPlayer(name="r0"), TrPlayer(name="r1")])
        blue = TrTeam(name="blue")
        s.add_all([red, blue])
        await s.commit()
        red_id, blue_id = red.id, blue.id
    async with AsyncSession(db) as s:
        red = await s.get(TrTeam, red_id, options=[selectinload(TrTeam.players)])
        blue = await s.get(TrTeam, blue_id)
        red.players[0].team = blue
        await s.delete(red)
        await s.commit()
    assert dict(await rows(db, select(TrPlayer.name, TrPlayer.team_id))) == {"r0": blue_id, "r1": None}


# -- many-to-many: either side deleted removes the association rows ------------------------------


@pytest.mark.parametrize("side", ["student", "course"])
@pytest.mark.parametrize("loaded", [False, True])
async def test_delete_either_side_of_many_to_many(db: Engine, side: str, loaded: bool) -> None:
    async with AsyncSession(db) as s:
        math, art = TrCourse(title="math"), TrCourse(title="art")
        s.add_all([TrStudent(name="ann", courses=[math, art]), TrStudent(name="bob", courses=[math])])
        await s.commit()
    async with AsyncSession(db) as s:
        if side == "student":
            obj = (await s.scalars(select(TrStudent).where(TrStudent.name == "ann"))).one()
            rel = "courses"
        else:
            obj = (await s.scalars(select(TrCourse).where(TrCourse.title == "math"))).one()
            rel = "students"
        if loaded:
            await s.load(obj, rel)
        with capture_sql(db) as log:
            await s.delete(obj)  # no delete cascade: nothing to load
        assert log.statements == []
        await s.commit()  # no ON DELETE in the schema: would fail if the rows stayed
    left = await rows(db, select(tr_enrollments.c.student_id, tr_enrollments.c.course_id))
    assert len(left) == (1 if side == "student" else 1)
    assert len(await rows(db, select(TrStudent.id))) + len(await rows(db, select(TrCourse.id))) == 3


# -- delete-orphan -------------------------------------------------------------------------------------


async def test_delete_orphan_on_remove_and_replace(db: Engine) -> None:
    uid = await seed_blog(db)
    async with AsyncSession(db) as s:
        u = await s.get(User, uid, options=[selectinload(User.posts)])
        p1, p2, p3 = u.posts
        u.posts.remove(p1)
        u.posts = [p2, Post(title="p4")]  # p3 leaves too
        await s.flush()
        assert inspect(p1).deleted and inspect(p3).deleted and inspect(p2).persistent
        await s.commit()
    assert sorted(await rows(db, select(Post.title))) == [("p2",), ("p4",)]


async def test_delete_orphan_via_many_to_one_set_to_none(db: Engine) -> None:
    uid = await seed_blog(db)
    async with AsyncSession(db) as s:
        u = await s.get(User, uid, options=[selectinload(User.posts)])
        p1 = u.posts[0]
        p1.author = None  # leaves u.posts: an orphan
        assert p1 not in u.posts
        await s.commit()
    assert sorted(await rows(db, select(Post.title))) == [("p2",), ("p3",)]


async def test_delete_orphan_via_many_to_one_with_collection_unloaded(db: Engine) -> None:
    uid = await seed_blog(db)
    async with AsyncSession(db) as s:
        p1 = (await s.scalars(select(Post).where(Post.title == "p1"))).one()
        p1.author = None  # the parent's collection is not loaded: still an orphan
        await s.flush()
        assert inspect(p1).deleted
        await s.commit()
    assert sorted(await rows(db, select(Post.title))) == [("p2",), ("p3",)]
    assert len(await rows(db, select(User.id))) == 1 and uid


async def test_moving_a_child_is_not_orphaning(db: Engine) -> None:
    uid = await seed_blog(db)
    async with AsyncSession(db) as s:
        u = await s.get(User, uid, options=[selectinload(User.posts)])
        bob = User(name="bob")
        s.add(bob)
        p1 = u.posts[0]
        u.posts.remove(p1)
        bob.posts.append(p1)  # removed, then adopted in the same flush
        await s.commit()
        bob_id = bob.id
    assert await rows(db, select(Post.author_id).where(Post.title == "p1")) == [(bob_id,)]


async def test_pending_orphan_is_never_inserted(db: Engine) -> None:
    uid = await seed_blog(db)
    async with AsyncSession(db) as s:
        u = await s.get(User, uid, options=[selectinload(User.posts)])
        tmp = Post(title="tmp")
        u.posts.append(tmp)
        assert tmp in s.new
        u.posts.remove(tmp)
        assert tmp not in s and inspect(tmp).transient  # expunged at once (SQLAlchemy)
        with capture_sql(db) as log:
            await s.flush()
        assert "posts" not in tables_of(log, "INSERT")
        assert inspect(tmp).transient
        await s.commit()
    assert len(await rows(db, select(Post.id))) == 3


async def test_clear_orphans_everything(db: Engine) -> None:
    uid = await seed_blog(db)
    async with AsyncSession(db) as s:
        u = await s.get(User, uid, options=[selectinload(User.posts)])
        u.posts.clear()
        await s.commit()
    assert await rows(db, select(Post.id)) == []
    assert await rows(db, select(post_tags.c.post_id)) == []


async def test_orphan_removed_before_its_parent_is_deleted(db: Engine) -> None:
    uid = await seed_blog(db)
    async with AsyncSession(db) as s:
        u = await s.get(User, uid, options=[selectinload(User.posts)])
        p1 = u.posts[0]
        u.posts.remove(p1)  # an orphan; then the parent goes too
        await s.delete(u)
        await s.flush()
        assert inspect(p1).deleted
        await s.commit()
    assert await rows(db, select(Post.id)) == []


async def test_expunged_pending_orphan_leaves_no_association_row(db: Engine) -> None:
    uid = await seed_blog(db)
    async with AsyncSession(db) as s:
        u = await s.get(User, uid, options=[selectinload(User.posts)])
        tags = (await s.scalars(select(Tag).options(selectinload(Tag.posts)))).all()
        tmp = Post(title="tmp", tags=list(tags))  # the tags' loaded collections hold it too
        u.posts.append(tmp)
        u.posts.remove(tmp)
        assert all(tmp in t.posts for t in tags)
        await s.commit()
    assert len(await rows(db, select(Post.id))) == 3
    assert len(await rows(db, select(post_tags.c.post_id))) == 3


async def test_orphan_with_loaded_children_deletes_the_subtree(db: Engine) -> None:
    """An orphan is deleted, and the delete cascades on from it (SQLAlchemy)."""
    async with AsyncSession(db) as s:
        s.add(TrCategory(name="root", subs=[TrCategory(name="mid", subs=[TrCategory(name="leaf")])]))
        await s.commit()
    async with AsyncSession(db) as s:
        root = (await s.scalars(select(TrCategory).where(TrCategory.name == "root")
                                .options(selectinload(TrCategory.subs).selectinload(TrCategory.subs)))).one()
        (mid,) = root.subs
        root.subs.remove(mid)
        await s.commit()
    assert await rows(db, select(TrCategory.name)) == [("root",)]


async def test_orphan_with_unloaded_children_deletes_the_subtree(db: Engine) -> None:
    async with AsyncSession(db) as s:
        s.add(TrCategory(name="root", subs=[TrCategory(name="mid", subs=[TrCategory(name="leaf")])]))
        await s.commit()
    async with AsyncSession(db) as s:
        root = (await s.scalars(select(TrCategory).where(TrCategory.name == "root")
                                .options(selectinload(TrCategory.subs)))).one()
        root.subs.clear()
        await s.commit()
    assert await rows(db, select(TrCategory.name)) == [("root",)]


# -- passive_deletes -------------------------------------------------------------------------------


async def test_passive_deletes_leaves_unloaded_children_to_the_database(db: Engine) -> None:
    async with AsyncSession(db) as s:
        s.add(TrFolder(name="f", files=[TrFile(name=f"x{i}") for i in range(3)]))
        s.add(TrFolder(name="g", files=[TrFile(name="y")]))
        await s.commit()
    async with AsyncSession(db) as s:
        f = (await s.scalars(select(TrFolder).where(TrFolder.name == "f"))).one()
        with capture_sql(db) as log:
            await s.delete(f)
            await s.flush()
        assert log.count("SELECT") == 0  # the files are never loaded
        assert tables_of(log, "DELETE") == ["tr_folders"]  # ON DELETE CASCADE removes the files
        await s.commit()
    assert await rows(db, select(TrFile.name)) == [("y",)]


async def test_passive_deletes_still_deletes_loaded_children(db: Engine) -> None:
    async with AsyncSession(db) as s:
        s.add(TrFolder(name="f", files=[TrFile(name="x0"), TrFile(name="x1")]))
        await s.commit()
    async with AsyncSession(db) as s:
        f = (await s.scalars(select(TrFolder).options(selectinload(TrFolder.files)))).one()
        files = list(f.files)
        with capture_sql(db) as log:
            await s.delete(f)
            await s.flush()
        assert tables_of(log, "DELETE") == ["tr_files", "tr_folders"]
        assert all(inspect(x).deleted for x in files)
        await s.commit()
    assert await rows(db, select(TrFile.id)) == []


# -- expunge ----------------------------------------------------------------------------------------


async def test_expunge_cascade(db: Engine) -> None:
    uid = await seed_blog(db)
    async with AsyncSession(db) as s:
        u = await s.get(User, uid, options=[selectinload(User.posts).selectinload(Post.tags)])
        posts = list(u.posts)
        tags = {id(t): t for p in posts for t in p.tags}.values()
        s.expunge(u)
        assert inspect(u).detached
        assert all(inspect(p).detached for p in posts)  # User.posts cascades expunge ("all")
        assert all(t in s for t in tags)  # Post.tags does not
        pending = User(name="new", posts=[Post(title="np")])
        s.add(pending)
        s.expunge(pending)
        assert inspect(pending).transient and inspect(pending.posts[0]).transient
        assert not s.new


async def test_expunge_default_cascade_does_not_follow(db: Engine) -> None:
    async with AsyncSession(db) as s:
        s.add(TrPerson(name="ann", passport=TrPassport(number="A"), profile=TrProfile(bio="b")))
        await s.commit()
    async with AsyncSession(db) as s:
        p = (await s.scalars(select(TrPerson).options(selectinload(TrPerson.passport),
                                                      selectinload(TrPerson.profile)))).one()
        passport, profile = p.passport, p.profile
        s.expunge(p)
        assert inspect(passport).detached  # "all, delete-orphan"
        assert profile in s  # the default "save-update, merge"


# -- refresh-expire ----------------------------------------------------------------------------------


async def test_expire_cascades_along_refresh_expire(db: Engine) -> None:
    uid = await seed_blog(db)
    async with AsyncSession(db) as s:
        u = await s.get(User, uid, options=[selectinload(User.posts).selectinload(Post.tags)])
        p1 = u.posts[0]
        t1 = p1.tags[0]
        s.expire(u)
        with pytest.raises(exc.NotLoadedError):
            u.posts  # noqa: B018  (relationships expire too)
        with pytest.raises(exc.NotLoadedError, match=r"Post\.title"):
            p1.title  # noqa: B018  (User.posts cascades refresh-expire)
        assert t1.name == "t1"  # Post.tags does not cascade it
        s.expire(t1)
        assert p1.id is not None  # identity stays readable


async def test_expire_does_not_follow_default_cascade(db: Engine) -> None:
    await seed_blog(db)
    async with AsyncSession(db) as s:
        post = (await s.scalars(select(Post).where(Post.title == "p1").options(selectinload(Post.author)))).one()
        author = post.author
        s.expire(post)
        assert author.name == "ann"  # not expired: Post.author has the default cascade


async def test_refresh_expires_along_refresh_expire(db: Engine) -> None:
    """``refresh(obj)`` expires what refresh-expire reaches (SQLAlchemy: expired, not reloaded)."""
    uid = await seed_blog(db)
    async with AsyncSession(db) as s:
        u = await s.get(User, uid, options=[selectinload(User.posts)])
        p1 = u.posts[0]
        await s.refresh(u)
        assert u.name == "ann"
        with pytest.raises(exc.NotLoadedError, match=r"Post\.title"):
            p1.title  # noqa: B018


# -- merge ------------------------------------------------------------------------------------------


async def test_merge_cascades_a_detached_graph(db: Engine) -> None:
    uid = await seed_blog(db)
    async with AsyncSession(db, expire_on_commit=False) as s:
        u = await s.get(User, uid, options=[selectinload(User.posts).selectinload(Post.tags)])
    assert inspect(u).detached
    u.posts[0].title = "p1 renamed"
    u.posts.append(Post(title="p4"))
    removed = u.posts[2]
    u.posts.remove(removed)
    u.posts[1].tags.append(Tag(name="t9"))
    async with AsyncSession(db) as s:
        merged = await s.merge(u)
        assert merged is not u and inspect(merged).persistent
        assert [p.title for p in merged.posts] == ["p1 renamed", "p2", "p4"]
        assert all(p in s for p in merged.posts) and all(p not in s for p in u.posts)
        await s.commit()
    assert sorted(await rows(db, select(Post.title))) == [("p1 renamed",), ("p2",), ("p4",)]  # p3 orphaned
    assert sorted(await rows(db, select(Tag.name))) == [("t1",), ("t2",), ("t9",)]


async def test_merge_transient_graph_inserts(db: Engine) -> None:
    async with AsyncSession(db) as s:
        merged = await s.merge(User(name="new", posts=[Post(title="a", tags=[Tag(name="x")])]))
        assert inspect(merged).pending and inspect(merged.posts[0]).pending
        await s.commit()
    assert await rows(db, select(Post.title)) == [("a",)]
    assert await rows(db, select(Tag.name)) == [("x",)]


async def test_merge_leaves_unloaded_relationships_alone(db: Engine) -> None:
    uid = await seed_blog(db)
    async with AsyncSession(db, expire_on_commit=False) as s:
        u = await s.get(User, uid)  # posts never loaded
    u.name = "renamed"
    async with AsyncSession(db) as s:
        merged = await s.merge(u)
        assert merged.name == "renamed"
        await s.commit()
    assert len(await rows(db, select(Post.id))) == 3  # posts untouched
