"""Many-to-many relationships whose association table has two foreign keys to one table: users
following users (self-referential, configured with ``foreign_keys=`` or with ``primaryjoin=`` /
``secondaryjoin=``) and a non-self-referential pair whose association table refers twice to one
side.  Association rows are checked with raw SQL (which column holds which id); loading in every
way is compared with the rows; ambiguous configurations are refused with a message saying how to
fix them."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import pytest

from aiouow import (
    AsyncSession,
    Column,
    Engine,
    ForeignKey,
    Model,
    Table,
    column,
    exc,
    joinedload,
    relationship,
    select,
    selectinload,
)
from aiouow.mapping.mapper import unregister

from .models import Node
from .self_m2m_models import SmPerson, SmTask, SmUser, SmWorker, sm_fans, sm_follows


@dataclass(frozen=True)
class Cfg:
    """One way of configuring "a follows b": class, forward / backward relationship, table and columns."""

    cls: type
    fwd: str  # the people one follows
    back: str  # the people following one
    table: str
    src: str  # column holding the follower's id
    dst: str  # column holding the followed one's id


FK = Cfg(SmUser, "following", "followers", "sm_follows", "follower_id", "following_id")
JOIN = Cfg(SmPerson, "idols", "fans", "sm_fans", "fan_id", "idol_id")


@pytest.fixture(params=[FK, JOIN], ids=["foreign_keys", "primaryjoin"])
def cfg(request: pytest.FixtureRequest) -> Cfg:
    return request.param  # type: ignore[no-any-return]


async def raw_links(db: Engine, cfg: Cfg) -> set[tuple[int, int]]:
    """(follower id, followed id) rows, straight from the table."""
    async with db.connect() as conn:
        res = await conn.exec_driver_sql(f'SELECT "{cfg.src}", "{cfg.dst}" FROM "{cfg.table}"')
        return {(int(a), int(b)) for a, b in res.all()}


async def make_people(db: Engine, cfg: Cfg, names: list[str],
                      follows: list[tuple[str, str]] = ()) -> dict[str, int]:  # type: ignore[assignment]
    async with AsyncSession(db) as s:
        people = {n: cfg.cls(name=n) for n in names}
        for a, b in follows:
            getattr(people[a], cfg.fwd).append(people[b])
        s.add_all(list(people.values()))
        await s.flush()
        ids = {n: p.id for n, p in people.items()}
        await s.commit()
        return ids


def named(objs: list[Any]) -> list[str]:
    return [o.name for o in objs]


# -- writing -----------------------------------------------------------------------------------


async def test_follow_writes_each_id_in_its_column(db: Engine, cfg: Cfg) -> None:
    async with AsyncSession(db) as s:
        ann, bob, cat = cfg.cls(name="ann"), cfg.cls(name="bob"), cfg.cls(name="cat")
        getattr(ann, cfg.fwd).extend([bob, cat])
        getattr(cat, cfg.back).append(bob)  # from the other side: bob follows cat
        # both sides in memory, before any SQL
        assert named(getattr(bob, cfg.back)) == ["ann"] and named(getattr(cat, cfg.back)) == ["ann", "bob"]
        assert named(getattr(bob, cfg.fwd)) == ["cat"]
        s.add_all([ann, bob, cat])
        await s.flush()
        ids = {o.name: o.id for o in (ann, bob, cat)}
        await s.commit()
    assert await raw_links(db, cfg) == {(ids["ann"], ids["bob"]), (ids["ann"], ids["cat"]), (ids["bob"], ids["cat"])}


async def test_mutual_follow_in_one_flush_is_two_rows(db: Engine, cfg: Cfg) -> None:
    """"a follows b" and "b follows a" share their two objects but are different rows."""
    ids = await make_people(db, cfg, ["ann", "bob"])
    async with AsyncSession(db) as s:
        ann = await s.get(cfg.cls, ids["ann"])
        bob = await s.get(cfg.cls, ids["bob"])
        await s.load_all([ann, bob], cfg.fwd)
        await s.load_all([ann, bob], cfg.back)
        getattr(ann, cfg.fwd).append(bob)
        getattr(bob, cfg.fwd).append(ann)
        getattr(ann, cfg.fwd).append(ann)  # following oneself is one row
        assert named(getattr(ann, cfg.back)) == ["bob", "ann"]
        await s.commit()
    assert await raw_links(db, cfg) == {(ids["ann"], ids["bob"]), (ids["bob"], ids["ann"]),
                                        (ids["ann"], ids["ann"])}

    async with AsyncSession(db) as s:  # and both go away again in one flush, from either side
        ann = await s.get(cfg.cls, ids["ann"])
        bob = await s.get(cfg.cls, ids["bob"])
        await s.load_all([ann, bob], cfg.fwd)
        await s.load_all([ann, bob], cfg.back)
        getattr(ann, cfg.fwd).remove(bob)
        getattr(ann, cfg.back).remove(bob)  # bob no longer follows ann
        assert named(getattr(bob, cfg.fwd)) == [] and named(getattr(bob, cfg.back)) == []
        await s.commit()
    assert await raw_links(db, cfg) == {(ids["ann"], ids["ann"])}


async def test_unfollow_removes_only_that_row(db: Engine, cfg: Cfg) -> None:
    ids = await make_people(db, cfg, ["ann", "bob", "cat"],
                            [("ann", "bob"), ("ann", "cat"), ("bob", "ann"), ("cat", "ann")])
    async with AsyncSession(db) as s:
        ann = await s.get(cfg.cls, ids["ann"])
        following = await s.load(ann, cfg.fwd)
        assert named(following) == ["bob", "cat"]
        bob = following[0]
        await s.load(bob, cfg.back)
        assert named(getattr(bob, cfg.back)) == ["ann"]
        following.remove(bob)
        assert getattr(bob, cfg.back) == []  # the other side, in memory
        await s.commit()
    assert await raw_links(db, cfg) == {(ids["ann"], ids["cat"]), (ids["bob"], ids["ann"]),
                                        (ids["cat"], ids["ann"])}

    async with AsyncSession(db) as s:  # through the backward side: cat stops following ann
        ann = await s.get(cfg.cls, ids["ann"])
        followers = await s.load(ann, cfg.back)
        assert named(followers) == ["bob", "cat"]
        setattr(ann, cfg.back, [f for f in followers if f.name == "bob"])
        await s.commit()
    assert await raw_links(db, cfg) == {(ids["ann"], ids["cat"]), (ids["bob"], ids["ann"])}


async def test_delete_removes_rows_in_both_columns(db: Engine, cfg: Cfg) -> None:
    ids = await make_people(db, cfg, ["ann", "bob", "cat"],
                            [("ann", "bob"), ("bob", "ann"), ("bob", "cat"), ("cat", "ann")])
    async with AsyncSession(db) as s:
        await s.delete(await s.get(cfg.cls, ids["ann"]))  # nothing loaded: rows go by key
        await s.commit()
    assert await raw_links(db, cfg) == {(ids["bob"], ids["cat"])}
    async with db.connect() as conn:
        res = await conn.exec_driver_sql(f'SELECT name FROM "{cfg.cls.__tablename__}" ORDER BY name')  # type: ignore[attr-defined]
        assert [r[0] for r in res.all()] == ["bob", "cat"]


# -- loading -----------------------------------------------------------------------------------


FOLLOWS = [("ann", "bob"), ("ann", "cat"), ("bob", "cat"), ("cat", "ann"), ("dan", "dan")]
NAMES = ["ann", "bob", "cat", "dan", "eve"]


def expected_from_rows(links: set[tuple[int, int]], ids: dict[str, int]) -> tuple[dict[str, list[str]],
                                                                                 dict[str, list[str]]]:
    by_id = {v: k for k, v in ids.items()}
    fwd = {n: sorted(by_id[b] for a, b in links if a == ids[n]) for n in ids}
    back = {n: sorted(by_id[a] for a, b in links if b == ids[n]) for n in ids}
    return fwd, back


async def test_every_loader_matches_the_rows(db: Engine, cfg: Cfg) -> None:
    ids = await make_people(db, cfg, NAMES, FOLLOWS)
    fwd, back = expected_from_rows(await raw_links(db, cfg), ids)
    assert fwd["ann"] == ["bob", "cat"] and back["ann"] == ["cat"] and fwd["dan"] == back["dan"] == ["dan"]
    cls = cfg.cls
    f_rel, b_rel = getattr(cls, cfg.fwd), getattr(cls, cfg.back)

    def seen(people: list[Any]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        return ({p.name: named(getattr(p, cfg.fwd)) for p in people},
                {p.name: named(getattr(p, cfg.back)) for p in people})

    async with AsyncSession(db) as s:  # session.load, one object at a time
        people = (await s.execute(select(cls))).scalars().all()
        for p in people:
            await s.load(p, cfg.fwd)
            await s.load(p, b_rel)
        assert seen(people) == (fwd, back)

    async with AsyncSession(db) as s:  # load_all
        people = (await s.execute(select(cls))).scalars().all()
        await s.load_all(people, f_rel)
        await s.load_all(people, cfg.back)
        assert seen(people) == (fwd, back)

    for loader in (selectinload, joinedload):
        async with AsyncSession(db) as s:
            stmt = select(cls).options(loader(f_rel), loader(b_rel)).order_by(cls.name)  # type: ignore[attr-defined]
            people = (await s.execute(stmt)).unique().scalars().all()
            assert named(people) == NAMES
            assert seen(people) == (fwd, back), loader.__name__

        async with AsyncSession(db) as s:  # two levels: whom the followers of ann follow
            stmt = select(cls).where(cls.name == "ann").options(  # type: ignore[attr-defined]
                loader(b_rel).selectinload(f_rel))
            ann = (await s.execute(stmt)).unique().scalar_one()
            assert {f.name: named(getattr(f, cfg.fwd)) for f in getattr(ann, cfg.back)} == {"cat": fwd["cat"]}


async def test_query_join_along_a_self_referential_relationship_aliases_the_target(db: Engine) -> None:
    """``.join(SmUser.following)`` names sm_users twice: the target is aliased automatically (as in
    SQLAlchemy); joining the association table a second time cannot be aliased and is refused clearly
    (the database's own message was "ambiguous column name")."""
    ids = await make_people(db, FK, ["ann", "bob", "cat"], [("ann", "bob"), ("ann", "cat"), ("bob", "cat")])
    async with AsyncSession(db) as s:
        # each user once per person they follow / are followed by
        stmt = select(SmUser.name).join(SmUser.following).order_by(SmUser.name)
        assert (await s.execute(stmt)).scalars().all() == ["ann", "ann", "bob"]
        stmt = select(SmUser.name).join(SmUser.followers).order_by(SmUser.name)
        assert (await s.execute(stmt)).scalars().all() == ["bob", "cat", "cat"]
        with pytest.raises(exc.InvalidRequestError, match="already names the table 'sm_follows'.*aliased"):
            select(SmUser).join(SmUser.following).join(SmUser.following)
        with pytest.raises(exc.InvalidRequestError, match="already names the table 'nodes'.*aliased"):
            select(Node).join(Node, Node.parent_id == Node.id)
        stmt = (select(SmUser.name).join(sm_follows, SmUser.id == sm_follows.c.following_id)
                .where(sm_follows.c.follower_id == ids["ann"]).order_by(SmUser.name))
        assert (await s.execute(stmt)).scalars().all() == ["bob", "cat"]


# -- random follow / unfollow sequences against the rows ------------------------------------------


@pytest.mark.parametrize("seed", range(6))
async def test_random_follow_unfollow(db: Engine, cfg: Cfg, seed: int) -> None:
    rnd = random.Random(seed)
    names = ["p0", "p1", "p2", "p3"]
    ids = await make_people(db, cfg, names)
    by_id = {v: k for k, v in ids.items()}
    expected: set[tuple[str, str]] = set()
    for _round in range(3):
        async with AsyncSession(db) as s:
            stmt = select(cfg.cls).options(selectinload(getattr(cfg.cls, cfg.fwd)),
                                           selectinload(getattr(cfg.cls, cfg.back)))
            people = {p.name: p for p in (await s.execute(stmt)).scalars().all()}
            # what was loaded is what the last round committed
            assert {(a, b.name) for a, p in people.items() for b in getattr(p, cfg.fwd)} == expected
            assert {(b.name, a) for a, p in people.items() for b in getattr(p, cfg.back)} == expected
            for _ in range(rnd.randint(1, 8)):
                a, b = rnd.choice(names), rnd.choice(names)
                via_back = rnd.random() < 0.5  # change it through either side
                owner, other, key = (people[b], people[a], cfg.back) if via_back else (people[a], people[b], cfg.fwd)
                coll = getattr(owner, key)
                if (a, b) in expected:
                    coll.remove(other)
                    expected.discard((a, b))
                else:
                    coll.append(other)
                    expected.add((a, b))
                # both sides stay in step in memory
                assert {(x, y.name) for x, p in people.items() for y in getattr(p, cfg.fwd)} == expected
                assert {(y.name, x) for x, p in people.items() for y in getattr(p, cfg.back)} == expected
            await s.commit()
        assert {(by_id[a], by_id[b]) for a, b in await raw_links(db, cfg)} == expected


# -- a non-self-referential many-to-many with two foreign keys to one side -------------------------


async def test_two_foreign_keys_to_one_side(db: Engine) -> None:
    async with AsyncSession(db) as s:
        ann, bob = SmWorker(name="ann"), SmWorker(name="bob")
        t1, t2 = SmTask(title="t1"), SmTask(title="t2")
        ann.tasks.extend([t1, t2])
        t2.workers.append(bob)
        assert named(t1.workers) == ["ann"] and [t.title for t in bob.tasks] == ["t2"]
        s.add_all([ann, bob])
        await s.flush()
        ids = {"ann": ann.id, "bob": bob.id, "t1": t1.id, "t2": t2.id}
        await s.commit()
    async with db.connect() as conn:
        res = await conn.exec_driver_sql("SELECT task_id, worker_id, assigned_by FROM sm_assignments")
        assert {tuple(r) for r in res.all()} == {(ids["t1"], ids["ann"], None), (ids["t2"], ids["ann"], None),
                                                  (ids["t2"], ids["bob"], None)}
    async with AsyncSession(db) as s:
        t2 = (await s.execute(select(SmTask).where(SmTask.title == "t2").options(
            joinedload(SmTask.workers)))).unique().scalar_one()
        assert named(t2.workers) == ["ann", "bob"]
        ann = await s.get(SmWorker, ids["ann"])
        assert [t.title for t in await s.load(ann, "tasks")] == ["t1", "t2"]
        await s.delete(ann)
        await s.commit()
    async with db.connect() as conn:
        res = await conn.exec_driver_sql("SELECT task_id, worker_id FROM sm_assignments")
        assert {tuple(r) for r in res.all()} == {(ids["t2"], ids["bob"])}


# -- configuration errors (no database) ---------------------------------------------------------


class _Throwaway:
    """Defines models and tables for one test and forgets them afterwards."""

    def __init__(self) -> None:
        self.classes: list[type] = []
        self.tables: list[Table] = []

    def table(self, name: str, *cols: Column) -> Table:
        t = Table(name, *cols)
        self.tables.append(t)
        return t

    def forget(self) -> None:
        for cls in self.classes:
            unregister(cls)
        for t in self.tables:
            Model.metadata.remove(t)


@pytest.fixture
def throwaway() -> Any:
    tw = _Throwaway()
    yield tw
    tw.forget()


def _follow_table(tw: _Throwaway, prefix: str) -> Table:
    return tw.table(f"{prefix}_links",
                    Column("a_id", int, ForeignKey(f"{prefix}_users.id"), primary_key=True),
                    Column("b_id", int, ForeignKey(f"{prefix}_users.id"), primary_key=True))


def test_self_referential_without_a_choice_is_ambiguous(throwaway: _Throwaway) -> None:
    links = _follow_table(throwaway, "sme1")

    class Sme1User(Model):
        __tablename__ = "sme1_users"
        id: int = column(primary_key=True)
        following: list[Sme1User] = relationship(secondary=links)

    throwaway.classes.append(Sme1User)
    with pytest.raises(exc.ArgumentError) as info:
        Sme1User.following.resolve()
    msg = str(info.value)
    for part in ("Sme1User.following", "'sme1_links'", "sme1_links.a_id", "sme1_links.b_id", "foreign_keys=",
                 "primaryjoin="):
        assert part in msg, (part, msg)
    assert "needs one foreign key" not in msg  # not "the table lacks its foreign keys"


def test_self_referential_full_foreign_key_set_needs_primaryjoin(throwaway: _Throwaway) -> None:
    """SQLAlchemy-style foreign_keys= naming both columns does not say which is the parent's; with
    primaryjoin= it does."""
    links = _follow_table(throwaway, "sme2")

    class Sme2User(Model):
        __tablename__ = "sme2_users"
        id: int = column(primary_key=True)
        both: list[Sme2User] = relationship(secondary=links, foreign_keys=[links.c.a_id, links.c.b_id])
        joined: list[Sme2User] = relationship(secondary=links, foreign_keys=[links.c.a_id, links.c.b_id],
                                              primaryjoin=lambda: Sme2User.id == links.c.b_id)
        by_target: list[Sme2User] = relationship(secondary=links, secondaryjoin="sme2_links.c.b_id == Sme2User.id")

    throwaway.classes.append(Sme2User)
    with pytest.raises(exc.ArgumentError, match="primaryjoin="):
        Sme2User.both.resolve()
    j = Sme2User.joined.resolve()
    assert [c.name for _, c in j.secondary_parent] == ["b_id"] and [c.name for _, c in j.secondary_target] == ["a_id"]
    t = Sme2User.by_target.resolve()
    assert [c.name for _, c in t.secondary_parent] == ["a_id"] and [c.name for _, c in t.secondary_target] == ["b_id"]


def test_non_self_referential_two_foreign_keys_to_target_is_ambiguous(throwaway: _Throwaway) -> None:
    links = throwaway.table(
        "sme3_links",
        Column("group_id", int, ForeignKey("sme3_groups.id"), primary_key=True),
        Column("member_id", int, ForeignKey("sme3_users.id"), primary_key=True),
        Column("invited_by", int, ForeignKey("sme3_users.id"), nullable=True))

    class Sme3User(Model):
        __tablename__ = "sme3_users"
        id: int = column(primary_key=True)

    class Sme3Group(Model):
        __tablename__ = "sme3_groups"
        id: int = column(primary_key=True)
        members: list[Sme3User] = relationship(secondary=links)
        fixed: list[Sme3User] = relationship(secondary=links, secondaryjoin=lambda: Sme3User.id == links.c.member_id)

    throwaway.classes.extend([Sme3User, Sme3Group])
    with pytest.raises(exc.ArgumentError) as info:
        Sme3Group.members.resolve()
    msg = str(info.value)
    for part in ("Sme3Group.members", "'sme3_links'", "sme3_links.member_id", "sme3_links.invited_by",
                 "foreign_keys=", "secondaryjoin="):
        assert part in msg, (part, msg)
    assert [c.name for _, c in Sme3Group.fixed.resolve().secondary_target] == ["member_id"]


_sme4: dict[str, Any] = {}  # the throwaway class, for lambdas written before it exists


def sme4_links() -> Table:
    return Model.metadata.tables["sme4_links"]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"foreign_keys": "Sme4User.id"}, "not a column of the secondary table 'sme4_links'"),
    ({"foreign_keys": "sme4_links.c.nope"}, "table 'sme4_links' has no column 'nope'"),
    ({"foreign_keys": "sme4_links"}, "should read 'Model.column' or 'table.c.column'"),
    ({"foreign_keys": SmUser}, "takes columns like Model.col"),  # a class is not a lambda to call
    ({"foreign_keys": lambda: [sme4_links().c.a_id, sme4_links().c.b_id]}, "primaryjoin=Sme4User.id == "
                                                                           "sme4_links.c.a_id"),
    ({"primaryjoin": lambda: _sme4["user"].id > sme4_links().c.a_id}, "column == column"),
    ({"primaryjoin": "Sme4User.id = sme4_links.c.a_id"}, "should read"),
    ({"primaryjoin": lambda: _sme4["user"].id == _sme4["user"].id}, "must compare columns of 'sme4_users' with columns "
                                                          "of the secondary table 'sme4_links'"),
    ({"primaryjoin": lambda: _sme4["user"].id == 5}, "compares columns only"),
])
def test_bad_join_arguments_name_the_relationship(throwaway: _Throwaway, kwargs: dict[str, Any], match: str) -> None:
    _follow_table(throwaway, "sme4")

    class Sme4User(Model):
        __tablename__ = "sme4_users"
        id: int = column(primary_key=True)
        following: list[Sme4User] = relationship(secondary="sme4_links", **kwargs)

    throwaway.classes.append(Sme4User)
    _sme4["user"] = Sme4User  # the lambdas above name it
    with pytest.raises(exc.ArgumentError, match="Sme4User.following") as info:
        Sme4User.following.resolve()
    assert match in str(info.value)


def test_primaryjoin_needs_secondary(throwaway: _Throwaway) -> None:
    class Sme5Node(Model):
        __tablename__ = "sme5_nodes"
        id: int = column(primary_key=True)
        parent_id: int | None = column(ForeignKey("sme5_nodes.id"), default=None)
        kids: list[Sme5Node] = relationship(primaryjoin=lambda: Sme5Node.id == Sme5Node.parent_id)

    throwaway.classes.append(Sme5Node)
    with pytest.raises(exc.ArgumentError, match=r"Sme5Node.kids: primaryjoin=/secondaryjoin= are supported only "
                                                r"with secondary="):
        Sme5Node.kids.resolve()


def test_models_resolve_as_documented() -> None:
    """The accepted forms (Table column, its string, lambda, string join, column() spec) give the
    right columns."""
    def cols(rel: Any) -> tuple[list[str], list[str]]:
        rel.resolve()
        return [c.name for _, c in rel.secondary_parent], [c.name for _, c in rel.secondary_target]

    assert cols(SmUser.following) == (["follower_id"], ["following_id"])
    assert cols(SmUser.followers) == (["following_id"], ["follower_id"])
    assert cols(SmPerson.idols) == (["fan_id"], ["idol_id"])
    assert cols(SmPerson.fans) == (["idol_id"], ["fan_id"])
    assert cols(SmWorker.tasks) == (["worker_id"], ["task_id"])
    assert cols(SmTask.workers) == (["task_id"], ["worker_id"])
    assert SmUser.following.secondary is sm_follows and SmPerson.fans.secondary is sm_fans
