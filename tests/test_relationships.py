"""Relationships: each kind through add / flush / load / modify / delete, back_populates kept in
step in memory without SQL, foreign keys and association rows written by the flush, row order
for self-referential graphs, cycles refused."""

from __future__ import annotations

import pytest

from aiouow import AsyncSession, Engine, ForeignKey, Model, column, exc, inspect, relationship, select, selectinload
from aiouow.mapping.mapper import unregister

from .conftest import capture_sql
from .models import Node, Post, Tag, User, post_tags
from .rel_models import (
    TrBadge,
    TrBadgeHolder,
    TrCategory,
    TrCourse,
    TrMember,
    TrMessage,
    TrPassport,
    TrPerson,
    TrPlayer,
    TrProfile,
    TrStudent,
    TrTeam,
    rows,
    tr_badge_links,
    tr_enrollments,
)


def names(objs: list) -> list[str]:
    return [getattr(o, "title", None) or o.name for o in objs]


# -- each relationship kind through a full cycle --------------------------------------------


async def test_one_to_many_cycle(db: Engine) -> None:
    async with AsyncSession(db) as s:
        u = User(name="ann", posts=[Post(title="p1"), Post(title="p2")])
        s.add(u)
        await s.commit()
        uid = u.id
    assert await rows(db, select(Post.title, Post.author_id).order_by(Post.id)) == [("p1", uid), ("p2", uid)]

    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        posts = await s.load(u, "posts")
        assert names(posts) == ["p1", "p2"]
        assert all(p.author is u for p in posts)  # the many-to-one side is filled in too
        # modify: add one, rename one, remove one (delete-orphan deletes it)
        posts.append(Post(title="p3"))
        posts[0].title = "p1b"
        posts.remove(posts[1])
        await s.commit()
    assert [r[0] for r in await rows(db, select(Post.title).order_by(Post.id))] == ["p1b", "p3"]

    async with AsyncSession(db) as s:
        u = await s.get(User, uid)
        await s.delete(u)
        await s.commit()
    assert await rows(db, select(User.id)) == []
    assert await rows(db, select(Post.id)) == []


async def test_many_to_one_cycle_with_optional_annotation(db: Engine) -> None:
    """``team: "TrTeam | None"`` is a many-to-one; setting it writes the foreign key."""
    async with AsyncSession(db) as s:
        red, blue = TrTeam(name="red"), TrTeam(name="blue")
        p = TrPlayer(name="pat", team=red)
        assert p.team is red and red.players == [p]
        s.add_all([p, blue])  # red joins through the save-update cascade
        await s.commit()
        pid, red_id, blue_id = p.id, red.id, blue.id
    assert await rows(db, select(TrPlayer.team_id)) == [(red_id,)]

    async with AsyncSession(db) as s:
        p = await s.get(TrPlayer, pid)
        team = await s.load(p, TrPlayer.team)
        assert team is not None and team.name == "red"
        p.team = await s.get(TrTeam, blue_id)
        await s.commit()
    assert await rows(db, select(TrPlayer.team_id)) == [(blue_id,)]

    async with AsyncSession(db) as s:
        p = await s.get(TrPlayer, pid)
        await s.load(p, "team")
        p.team = None
        await s.commit()
    assert await rows(db, select(TrPlayer.team_id)) == [(None,)]

    async with AsyncSession(db) as s:
        p = await s.get(TrPlayer, pid)
        assert await s.load(p, "team") is None
        await s.delete(p)
        await s.commit()
    assert await rows(db, select(TrPlayer.id)) == []
    assert len(await rows(db, select(TrTeam.id))) == 2  # no delete cascade on many-to-one


async def test_one_to_one_by_annotation_cycle(db: Engine) -> None:
    """``passport: "TrPassport | None"`` on the one-to-many side makes a scalar one-to-one."""
    async with AsyncSession(db) as s:
        person = TrPerson(name="ann")
        assert person.passport is None  # scalar, not a list
        person.passport = TrPassport(number="A1")
        s.add(person)
        await s.commit()
        pid = person.id
    assert await rows(db, select(TrPassport.number, TrPassport.person_id)) == [("A1", pid)]

    async with AsyncSession(db) as s:
        person = await s.get(TrPerson, pid)
        passport = await s.load(person, "passport")
        assert isinstance(passport, TrPassport) and passport.number == "A1"
        assert passport.person is person
        # replacing it orphans the old one (delete-orphan): deleted, the new one inserted
        person.passport = TrPassport(number="B2")
        assert passport.person is None
        await s.commit()
    assert await rows(db, select(TrPassport.number, TrPassport.person_id)) == [("B2", pid)]

    async with AsyncSession(db) as s:
        person = await s.get(TrPerson, pid)
        await s.load(person, "passport")
        person.passport = None
        await s.commit()
    assert await rows(db, select(TrPassport.id)) == []

    async with AsyncSession(db) as s:
        person = await s.get(TrPerson, pid)
        person.passport = TrPassport(number="C3")
        await s.flush()
        await s.delete(person)
        await s.commit()
    assert await rows(db, select(TrPerson.id)) == []
    assert await rows(db, select(TrPassport.id)) == []


async def test_one_to_one_by_uselist_false_cycle(db: Engine) -> None:
    """``uselist=False``: a scalar one-to-many; without delete-orphan a replaced row is un-parented."""
    async with AsyncSession(db) as s:
        person = TrPerson(name="ann", profile=TrProfile(bio="first"))
        s.add(person)
        await s.commit()
        pid = person.id

    async with AsyncSession(db) as s:
        person = await s.get(TrPerson, pid)
        old = await s.load(person, "profile")
        assert isinstance(old, TrProfile) and old.bio == "first" and old.person is person
        person.profile = TrProfile(bio="second")
        assert old.person is None
        await s.commit()
    assert await rows(db, select(TrProfile.bio, TrProfile.person_id).order_by(TrProfile.id)) == [
        ("first", None), ("second", pid)]

    async with AsyncSession(db) as s:
        person = await s.get(TrPerson, pid)
        await s.delete(person)  # profile: no delete cascade -> un-parented
        await s.commit()
    assert await rows(db, select(TrProfile.bio, TrProfile.person_id).order_by(TrProfile.id)) == [
        ("first", None), ("second", None)]


async def test_many_to_many_string_secondary_cycle(db: Engine) -> None:
    async with AsyncSession(db) as s:
        a, b, c = Tag(name="a"), Tag(name="b"), Tag(name="c")
        u = User(name="ann", posts=[Post(title="p1", tags=[a, b]), Post(title="p2", tags=[b])])
        s.add_all([u, c])
        await s.flush()
        p1, p2 = u.posts
        ids = {"p1": p1.id, "p2": p2.id, "a": a.id, "b": b.id, "c": c.id}
        await s.commit()

    def links(found: list[tuple[int, int]]) -> set[tuple[str, str]]:
        back = {v: k for k, v in ids.items() if k.startswith("p")}
        tback = {v: k for k, v in ids.items() if not k.startswith("p")}
        return {(back[p], tback[t]) for p, t in found}

    assert links(await rows(db, select(post_tags.c.post_id, post_tags.c.tag_id))) == {
        ("p1", "a"), ("p1", "b"), ("p2", "b")}

    async with AsyncSession(db) as s:
        p1 = await s.get(Post, ids["p1"])
        tags = await s.load(p1, Post.tags)
        assert sorted(t.name for t in tags) == ["a", "b"]
        b = await s.get(Tag, ids["b"])
        assert sorted(p.title for p in await s.load(b, "posts")) == ["p1", "p2"]
        c = await s.get(Tag, ids["c"])
        tags.remove(next(t for t in tags if t.name == "a"))
        tags.append(c)
        await s.commit()
    assert links(await rows(db, select(post_tags.c.post_id, post_tags.c.tag_id))) == {
        ("p1", "b"), ("p1", "c"), ("p2", "b")}

    async with AsyncSession(db) as s:  # from the other side
        b = await s.get(Tag, ids["b"])
        posts = await s.load(b, "posts")
        posts.clear()
        await s.commit()
    assert links(await rows(db, select(post_tags.c.post_id, post_tags.c.tag_id))) == {("p1", "c")}
    assert len(await rows(db, select(Tag.id))) == 3  # only links went away


async def test_many_to_many_table_secondary_cycle(db: Engine) -> None:
    async with AsyncSession(db) as s:
        math, art = TrCourse(title="math"), TrCourse(title="art")
        ann = TrStudent(name="ann", courses=[math, art])
        bob = TrStudent(name="bob", courses=[math])
        s.add_all([ann, bob])
        await s.commit()
        ids = (ann.id, bob.id, math.id, art.id)
    ann_id, bob_id, math_id, art_id = ids
    assert sorted(await rows(db, select(tr_enrollments.c.student_id, tr_enrollments.c.course_id))) == sorted(
        [(ann_id, math_id), (ann_id, art_id), (bob_id, math_id)])

    async with AsyncSession(db) as s:
        ann = await s.get(TrStudent, ann_id)
        assert names(await s.load(ann, "courses")) == ["art", "math"]  # order_by title
        math = await s.get(TrCourse, math_id)
        assert names(await s.load(math, "students")) == ["ann", "bob"]
        math.students.remove(ann)
        assert [c.title for c in ann.courses] == ["art"]  # the other side, in memory
        await s.commit()
    assert sorted(await rows(db, select(tr_enrollments.c.student_id, tr_enrollments.c.course_id))) == sorted(
        [(ann_id, art_id), (bob_id, math_id)])

    async with AsyncSession(db) as s:
        # no ON DELETE on the association table: the ORM removes the rows itself
        await s.delete(await s.get(TrCourse, math_id))
        await s.delete(await s.get(TrStudent, ann_id))
        await s.commit()
    assert await rows(db, select(tr_enrollments.c.student_id)) == []
    assert await rows(db, select(TrStudent.name)) == [("bob",)]


async def test_self_referential_string_remote_side_cycle(db: Engine) -> None:
    async with AsyncSession(db) as s:
        root = Node(name="root")
        kid = Node(name="kid", parent=root)
        Node(name="grandkid", parent=kid)
        assert [n.name for n in root.children] == ["kid"]
        s.add(root)  # the whole tree follows through root.children
        await s.commit()
        root_id = root.id

    async with AsyncSession(db) as s:
        root = await s.get(Node, root_id)
        (kid,) = await s.load(root, "children")
        assert kid.parent is root  # many-to-one side set from the parent's collection load
        (grandkid,) = await s.load(kid, "children")
        assert await s.load(grandkid, "parent") is kid
        assert await s.load(root, "parent") is None
        # move the grandkid up under root
        grandkid.parent = root
        assert kid.children == [] and grandkid in root.children
        await s.commit()
    got = dict(await rows(db, select(Node.name, Node.parent_id)))
    assert got["grandkid"] == root_id and got["kid"] == root_id and got["root"] is None


async def test_self_referential_attribute_remote_side(db: Engine) -> None:
    """``remote_side=id`` (the column of the class body) makes ``parent`` the many-to-one side."""
    rel = inspect(TrCategory).relationships["parent"]
    assert rel.uselist is False and inspect(TrCategory).relationships["subs"].uselist is True
    async with AsyncSession(db) as s:
        top = TrCategory(name="top", subs=[TrCategory(name="a"), TrCategory(name="b")])
        s.add(top)
        await s.commit()
        top_id = top.id
    assert sorted(await rows(db, select(TrCategory.name, TrCategory.parent_id))) == [
        ("a", top_id), ("b", top_id), ("top", None)]
    async with AsyncSession(db) as s:
        a = (await s.scalars(select(TrCategory).where(TrCategory.name == "a"))).one()
        top = await s.load(a, "parent")
        assert top.name == "top"
        assert names(await s.load(top, "subs")) == ["a", "b"]


async def test_two_foreign_keys_to_one_table(db: Engine) -> None:
    """``foreign_keys=`` (string or attribute) picks which of two foreign keys a relationship follows."""
    async with AsyncSession(db) as s:
        ann, bob = TrMember(name="ann"), TrMember(name="bob")
        m1 = TrMessage(body="hi bob", sender=ann, recipient=bob)
        m2 = TrMessage(body="hi ann", sender=bob, recipient=ann)
        m3 = TrMessage(body="note to self", sender=ann, recipient=ann)
        assert ann.sent == [m1, m3] and ann.received == [m2, m3]
        assert bob.sent == [m2] and bob.received == [m1]
        s.add_all([ann, bob])
        await s.commit()
        ann_id, bob_id = ann.id, bob.id
    assert sorted(await rows(db, select(TrMessage.body, TrMessage.sender_id, TrMessage.recipient_id))) == sorted([
        ("hi bob", ann_id, bob_id), ("hi ann", bob_id, ann_id), ("note to self", ann_id, ann_id)])

    async with AsyncSession(db) as s:
        ann = await s.get(TrMember, ann_id)
        assert [m.body for m in await s.load(ann, "sent")] == ["hi bob", "note to self"]
        assert [m.body for m in await s.load(ann, "received")] == ["hi ann", "note to self"]
        m = ann.received[0]
        assert (await s.load(m, "sender")).name == "bob"
        assert await s.load(m, "recipient") is ann


async def test_ambiguous_foreign_keys_need_foreign_keys_argument() -> None:
    class TrAmbiguousNote(Model):
        __tablename__ = "tr_ambiguous_notes"
        id: int = column(primary_key=True)
        a_id: int = column()
        b_id: int = column()
        owner: TrMember = relationship()

    class TrAmbiguous(Model):
        __tablename__ = "tr_ambiguous"
        id: int = column(primary_key=True)
        x_id: int = column(ForeignKey("tr_members.id"))
        y_id: int = column(ForeignKey("tr_members.id"))
        member: TrMember = relationship()

    try:
        with pytest.raises(exc.ArgumentError, match="foreign_keys"):
            TrAmbiguous().member  # noqa: B018  (resolving the relationship raises)
        with pytest.raises(exc.ArgumentError, match="no foreign key links"):
            TrAmbiguousNote().owner  # noqa: B018
    finally:
        unregister(TrAmbiguousNote)
        unregister(TrAmbiguous)


# -- back_populates in memory, without SQL ---------------------------------------------------


@pytest.fixture
async def two_users(db: Engine) -> tuple[int, int]:
    async with AsyncSession(db) as s:
        a = User(name="a", posts=[Post(title="a1"), Post(title="a2")])
        b = User(name="b", posts=[Post(title="b1")])
        s.add_all([a, b])
        await s.commit()
        return a.id, b.id


async def _loaded_users(s: AsyncSession, ids: tuple[int, int]) -> tuple[User, User]:
    users = (await s.scalars(select(User).where(User.id.in_(ids)).order_by(User.id)
                             .options(selectinload(User.posts)))).all()
    return users[0], users[1]


async def test_back_populates_many_to_one_assignment_no_sql(db: Engine, two_users: tuple[int, int]) -> None:
    async with AsyncSession(db) as s:
        a, b = await _loaded_users(s, two_users)
        a1 = a.posts[0]
        with capture_sql(db) as log:
            a1.author = b
            assert a1 not in a.posts and b.posts == [b.posts[0], a1]
            a1.author = a
            assert a1 in a.posts and a1 not in b.posts
        assert log.records == []
        await s.commit()
    assert await rows(db, select(Post.author_id).where(Post.title == "a1")) == [(two_users[0],)]


async def test_back_populates_collection_operations_no_sql(db: Engine, two_users: tuple[int, int]) -> None:
    async with AsyncSession(db) as s:
        a, b = await _loaded_users(s, two_users)
        a1, a2 = a.posts
        (b1,) = b.posts
        with capture_sql(db) as log:
            b.posts.append(a1)  # moves: leaves a.posts
            assert a1.author is b and a.posts == [a2]
            b.posts.remove(a1)
            assert a1.author is None
            a.posts.extend([a1, b1])
            assert a1.author is a and b1.author is a and b.posts == []
            popped = a.posts.pop()
            assert popped is b1 and b1.author is None
            a.posts.insert(0, b1)
            assert b1.author is a
            del a.posts[0]
            assert b1.author is None
            a.posts[0] = b1  # replaces a2
            assert b1.author is a and a2.author is None
            a.posts += [a2]
            assert a2.author is a
            a.posts.clear()
            assert a1.author is None and a2.author is None and b1.author is None
            a.posts = [a1, a2]  # collection replacement
            b.posts = [b1]
            assert a1.author is a and a2.author is a and b1.author is b
            b.posts = [a1]
            assert a1.author is b and b1.author is None and a.posts == [a2]
        assert log.records == []
        b.posts = [b1]
        a.posts.append(a1)
        await s.commit()
    got = dict(await rows(db, select(Post.title, Post.author_id)))
    assert got == {"a1": two_users[0], "a2": two_users[0], "b1": two_users[1]}


async def test_back_populates_many_to_many_no_sql(db: Engine) -> None:
    async with AsyncSession(db) as s:
        s.add_all([Post(title="p", author=User(name="u")), Tag(name="x"), Tag(name="y")])
        await s.commit()
    async with AsyncSession(db) as s:
        p = (await s.scalars(select(Post).options(selectinload(Post.tags)))).one()
        x, y = (await s.scalars(select(Tag).order_by(Tag.name).options(selectinload(Tag.posts)))).all()
        with capture_sql(db) as log:
            p.tags.append(x)
            assert x.posts == [p]
            y.posts.append(p)
            assert p.tags == [x, y]
            p.tags.remove(x)
            assert x.posts == []
            p.tags = [x]
            assert y.posts == [] and x.posts == [p]
            x.posts.clear()
            assert p.tags == []
            p.tags.extend([y, x])
            assert x.posts == [p] and y.posts == [p]
        assert log.records == []
        await s.commit()
    assert len(await rows(db, select(post_tags.c.tag_id))) == 2


async def test_back_populates_one_to_one_no_sql(db: Engine) -> None:
    async with AsyncSession(db) as s:
        s.add_all([TrPerson(name="ann", passport=TrPassport(number="A")), TrPerson(name="bob")])
        await s.commit()
    async with AsyncSession(db) as s:
        ann, bob = (await s.scalars(select(TrPerson).order_by(TrPerson.name)
                                    .options(selectinload(TrPerson.passport)))).all()
        pa = ann.passport
        with capture_sql(db) as log:
            pa.person = bob  # moves to bob: ann has none
            assert bob.passport is pa and ann.passport is None
            ann.passport = pa  # and back: bob has none
            assert pa.person is ann and bob.passport is None
        assert log.records == []
        await s.commit()
    assert await rows(db, select(TrPassport.number, TrPassport.person_id)) == [("A", ann.id)]


async def test_back_populates_transient_objects(db: Engine) -> None:
    """Objects in no session keep both sides in step too (and nothing is written)."""
    with capture_sql(db) as log:
        u = User(name="u")
        p = Post(title="p")
        p.author = u
        assert u.posts == [p]
        t = Tag(name="t", posts=[p])
        assert p.tags == [t]
        root = Node(name="r")
        kid = Node(name="k")
        root.children.append(kid)
        assert kid.parent is root
        root.children = []
        assert kid.parent is None
    assert log.records == []


async def test_collection_history_and_wrong_types(db: Engine, two_users: tuple[int, int]) -> None:
    async with AsyncSession(db) as s:
        a, b = await _loaded_users(s, two_users)
        a1, a2 = a.posts
        new = Post(title="a3")
        a.posts.remove(a1)
        a.posts.append(new)
        hist = inspect(a).attrs["posts"].history
        assert hist.added == (new,) and hist.deleted == (a1,) and hist.unchanged == (a2,)
        with pytest.raises(exc.ArgumentError, match="Post"):
            a.posts.append(Tag(name="no"))
        with pytest.raises(exc.ArgumentError):
            a.posts = None
        with pytest.raises(exc.ArgumentError):
            a1.author = Tag(name="no")
        await s.rollback()


# -- foreign keys and association rows from the flush ---------------------------------------------


async def test_generated_parent_keys_reach_children_in_one_flush(db: Engine) -> None:
    async with AsyncSession(db) as s:
        users = [User(name=f"u{i}", posts=[Post(title=f"u{i}p{j}") for j in range(3)]) for i in range(4)]
        s.add_all(users)
        with capture_sql(db) as log:
            await s.flush()
        for u in users:
            assert all(p.author_id == u.id for p in u.posts)
        # rows of one table are batched: far fewer INSERTs than rows
        assert log.count("INSERT") <= 4
        expected = {p.title: u.id for u in users for p in u.posts}
        await s.commit()
    assert dict(await rows(db, select(Post.title, Post.author_id))) == expected


async def test_persistent_child_moved_to_pending_parent(db: Engine) -> None:
    async with AsyncSession(db) as s:
        s.add(User(name="old", posts=[Post(title="p")]))
        await s.commit()
    async with AsyncSession(db) as s:
        p = (await s.scalars(select(Post))).one()
        new = User(name="new")
        p.author = new  # new joins the session through save-update
        assert new in s
        await s.commit()
        new_id = new.id
    assert await rows(db, select(Post.author_id)) == [(new_id,)]
    async with AsyncSession(db) as s:  # the same through the new parent's collection
        p = (await s.scalars(select(Post))).one()
        newer = User(name="newer")
        s.add(newer)
        newer.posts.append(p)
        assert p.author is newer
        await s.commit()
        newer_id = newer.id
    assert await rows(db, select(Post.author_id)) == [(newer_id,)]


async def test_many_to_many_between_pending_objects(db: Engine) -> None:
    async with AsyncSession(db) as s:
        t = Tag(name="t")
        p = Post(title="p", author=User(name="u"), tags=[t])
        s.add(p)
        with capture_sql(db) as log:
            await s.flush()
        assert [sql for sql in log.statements if "post_tags" in sql.split("\n")[0]]
        await s.commit()
        pair = (p.id, t.id)
    assert await rows(db, select(post_tags.c.post_id, post_tags.c.tag_id)) == [pair]


async def test_link_changed_on_both_sides_written_once(db: Engine) -> None:
    async with AsyncSession(db) as s:
        t = Tag(name="t")
        p = Post(title="p", author=User(name="u"))
        s.add_all([t, p])
        await s.flush()
        p.tags.append(t)  # t.posts gets p too: one link, not two
        assert t.posts == [p]
        await s.commit()
    assert len(await rows(db, select(post_tags.c.post_id))) == 1


async def test_setting_foreign_key_by_hand_leaves_loaded_relationship(db: Engine, two_users: tuple[int, int]
                                                                      ) -> None:
    a_id, b_id = two_users
    async with AsyncSession(db) as s:
        a, b = await _loaded_users(s, two_users)
        a1 = a.posts[0]
        await s.load(a1, "author")
        with capture_sql(db) as log:
            a1.author_id = b_id
            assert a1.author is a and a1 in a.posts and a1 not in b.posts
        assert log.records == []
        await s.flush()
        assert a1.author is a and a1 in a.posts  # still, until reloaded
        await s.refresh(a1, ["author"])
        assert a1.author is b
        await s.refresh(b, ["posts"])
        assert a1 in b.posts
        await s.commit()
    assert await rows(db, select(Post.author_id).where(Post.title == "a1")) == [(b_id,)]


async def test_self_referential_pending_rows_flushed_parents_first(db: Engine) -> None:
    """A chain added leaf first, plus a wide level: one INSERT per level, parents before children."""
    async with AsyncSession(db) as s:
        chain = [Node(name="n0")]
        for i in range(1, 5):
            chain.append(Node(name=f"n{i}", parent=chain[-1]))
        wide = [Node(name=f"w{i}", parent=chain[0]) for i in range(6)]
        for n in reversed(chain + wide):
            s.add(n)
        with capture_sql(db) as log:
            await s.flush()
        inserts = [r for r in log.statements if r.upper().startswith("INSERT")]
        assert len(inserts) == 5  # levels 0..4; the six w* share level 1 with n1
        for child in chain[1:] + wide:
            assert child.parent_id == child.parent.id
        await s.commit()
    got = dict(await rows(db, select(Node.name, Node.parent_id)))
    ids = dict(await rows(db, select(Node.name, Node.id)))
    assert got["n4"] == ids["n3"] and got["w5"] == ids["n0"] and got["n0"] is None


@pytest.mark.parametrize("size", [2, 3])
async def test_cycle_between_pending_rows_refused(db: Engine, size: int) -> None:
    async with AsyncSession(db) as s:
        nodes = [Node(name=f"c{i}") for i in range(size)]
        for i, n in enumerate(nodes):
            n.parent = nodes[(i + 1) % size]
        s.add_all(nodes)
        with capture_sql(db) as log:
            with pytest.raises(exc.InvalidRequestError, match="cycle") as info:
                await s.flush()
        assert not isinstance(info.value, exc.DBAPIError)
        assert "Node" in str(info.value)
        assert log.count("INSERT") == 0
        assert s.is_active  # refused before any I/O: nothing to roll back
        nodes[0].parent = None  # break the cycle: now it flushes
        await s.commit()
    assert len(await rows(db, select(Node.id))) == size


async def test_deleted_child_and_parent_in_one_flush(db: Engine) -> None:
    async with AsyncSession(db) as s:
        s.add(Node(name="r", children=[Node(name="k", children=[Node(name="g")])]))
        await s.commit()
    async with AsyncSession(db) as s:
        ns = (await s.scalars(select(Node).order_by(Node.id))).all()
        for n in ns:  # the parent first: the flush still deletes children first
            await s.delete(n)
        await s.commit()
    assert await rows(db, select(Node.id)) == []


# -- regressions found in review of the flush fast paths ------------------------------------------


async def test_scalar_many_to_many_on_new_objects(db: Engine) -> None:
    async with AsyncSession(db) as s:
        badge = TrBadge(name="gold")
        holder = TrBadgeHolder(name="ann", badge=badge)
        s.add(holder)
        await s.flush()
        hid, bid = holder.id, badge.id
        await s.commit()
    assert await rows(db, select(tr_badge_links.c.holder_id, tr_badge_links.c.badge_id)) == [(hid, bid)]
    async with AsyncSession(db) as s:
        got = await s.get(TrBadgeHolder, hid)
        await s.load(got, "badge")
        assert got.badge is not None and got.badge.name == "gold"


async def test_self_referential_keys_follow_insert_order(db: Engine) -> None:
    # parents are inserted before their children, so they get the lower keys, on both backends
    async with AsyncSession(db) as s:
        c1, c2 = TrCategory(name="c1"), TrCategory(name="c2")
        root = TrCategory(name="root", subs=[c1, c2])
        s.add(root)
        await s.flush()
        assert root.id < c1.id < c2.id
        await s.rollback()
