"""Property test: random parent/child, many-to-many and self-referential graphs survive a flush and
a reload with eager loads, and so do random changes made through the relationships afterwards.

Every example runs on both backends: build the graph in memory, flush it in one commit, reload it in
a fresh session (selectinload / joinedload), compare with the model; then apply random operations
(move, orphan, tag, untag, new post, reparent, delete) through the relationships, commit, reload in
another fresh session and compare again.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiouow import AsyncSession, Engine, delete, joinedload, select, selectinload

from .models import Node, Post, Tag, User, post_tags

# -- the model the database must match ---------------------------------------------------------


class Expected:
    """Plain-Python picture of the graph: what each relationship should read after a reload."""

    def __init__(self) -> None:
        self.author: dict[str, str] = {}  # post title -> user name
        self.users: set[str] = set()
        self.tags: dict[str, set[str]] = {}  # post title -> tag names
        self.tag_names: set[str] = set()
        self.parent: dict[str, str | None] = {}  # node name -> parent name

    def posts_of(self, user: str) -> set[str]:
        return {p for p, u in self.author.items() if u == user}

    def ancestors(self, node: str) -> set[str]:
        out = set()
        cur = self.parent[node]
        while cur is not None:
            out.add(cur)
            cur = self.parent[cur]
        return out


@st.composite
def graphs(draw: Any) -> tuple[list[list[list[int]]], int, list[int | None], int]:
    n_tags = draw(st.integers(0, 4))
    users = []
    for _ in range(draw(st.integers(1, 4))):
        posts = []
        for _ in range(draw(st.integers(0, 4))):
            tags = draw(st.sets(st.integers(0, n_tags - 1), max_size=n_tags)) if n_tags else set()
            posts.append(sorted(tags))
        users.append(posts)
    n_nodes = draw(st.integers(0, 7))
    parents = [draw(st.none() | st.integers(0, k - 1)) if k else None for k in range(n_nodes)]
    seed = draw(st.integers(0, 2**16))  # the order objects are added in
    return users, n_tags, parents, seed


OPS = ["move", "orphan", "tag", "untag", "new_post", "reparent", "delete_node", "delete_user"]
operations = st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 50), st.integers(0, 50)), max_size=8)


# -- building, checking, changing -----------------------------------------------------------------


async def clear(db: Engine) -> None:
    async with db.begin() as conn:
        for table in (post_tags, Post, Tag, User):
            await conn.execute(delete(table))
        await conn.execute(delete(Node).where(Node.parent_id.is_not(None)))
        await conn.execute(delete(Node))


async def build(db: Engine, spec: tuple[list[list[list[int]]], int, list[int | None], int]) -> Expected:
    users_spec, n_tags, parents, seed = spec
    exp = Expected()
    tags = [Tag(name=f"t{k}") for k in range(n_tags)]
    exp.tag_names = {t.name for t in tags}
    objs: list[Any] = list(tags)
    for i, posts in enumerate(users_spec):
        u = User(name=f"u{i}")
        exp.users.add(u.name)
        for j, tag_ids in enumerate(posts):
            p = Post(title=f"u{i}p{j}", tags=[tags[k] for k in tag_ids])
            u.posts.append(p)
            exp.author[p.title] = u.name
            exp.tags[p.title] = {f"t{k}" for k in tag_ids}
        objs.append(u)
    nodes = [Node(name=f"n{k}") for k in range(len(parents))]
    for k, parent in enumerate(parents):
        if parent is not None:
            nodes[k].parent = nodes[parent]
        exp.parent[f"n{k}"] = None if parent is None else f"n{parent}"
    objs.extend(nodes)
    random.Random(seed).shuffle(objs)  # children may be added before their parents
    async with AsyncSession(db) as s:
        s.add_all(objs)
        await s.commit()
    return exp


async def check(db: Engine, exp: Expected) -> None:
    async with AsyncSession(db) as s:
        users = (await s.scalars(select(User).options(selectinload(User.posts).selectinload(Post.tags)))).all()
        assert {u.name for u in users} == exp.users
        for u in users:
            assert {p.title for p in u.posts} == exp.posts_of(u.name)
            ids = [p.id for p in u.posts]
            assert ids == sorted(ids)  # order_by="Post.id"
            for p in u.posts:
                assert p.author is u
                assert {t.name for t in p.tags} == exp.tags[p.title]
        tags = (await s.scalars(select(Tag).options(joinedload(Tag.posts)))).all()
        assert {t.name for t in tags} == exp.tag_names
        for t in tags:
            assert {p.title for p in t.posts} == {p for p, names in exp.tags.items() if t.name in names}
        posts = (await s.scalars(select(Post).options(joinedload(Post.author)))).all()
        assert {p.title: p.author.name for p in posts} == exp.author
        nodes = (await s.scalars(select(Node).options(selectinload(Node.children)))).all()
        assert {n.name for n in nodes} == set(exp.parent)
        by_name = {n.name: n for n in nodes}
        await s.load_all(nodes, "parent")
        for n in nodes:
            assert (n.parent.name if n.parent is not None else None) == exp.parent[n.name]
            assert {c.name for c in n.children} == {k for k, v in exp.parent.items() if v == n.name}
            if n.parent is not None:
                assert n in by_name[n.parent.name].children


async def mutate(db: Engine, exp: Expected, ops: list[tuple[str, int, int]]) -> None:
    async with AsyncSession(db) as s:
        users = (await s.scalars(select(User).order_by(User.name)
                                 .options(selectinload(User.posts).selectinload(Post.tags)))).all()
        tags = (await s.scalars(select(Tag).order_by(Tag.name).options(selectinload(Tag.posts)))).all()
        nodes = (await s.scalars(select(Node).order_by(Node.name).options(selectinload(Node.children)))).all()
        await s.load_all(nodes, "parent")
        counter = 0
        for kind, a, b in ops:
            posts = sorted((p for u in users for p in u.posts), key=lambda p: p.title)
            if kind == "move" and posts and len(users) > 1:
                p, u = posts[a % len(posts)], users[b % len(users)]
                p.author = u  # back_populates moves it between the collections
                exp.author[p.title] = u.name
            elif kind == "orphan" and posts:
                p = posts[a % len(posts)]
                p.author.posts.remove(p)  # delete-orphan: the post goes
                del exp.author[p.title]
                del exp.tags[p.title]
            elif kind == "tag" and posts and tags:
                p, t = posts[a % len(posts)], tags[b % len(tags)]
                if t not in p.tags:
                    t.posts.append(p)  # from the other side
                    exp.tags[p.title].add(t.name)
            elif kind == "untag" and posts:
                p = posts[a % len(posts)]
                if p.tags:
                    t = p.tags[b % len(p.tags)]
                    p.tags.remove(t)
                    exp.tags[p.title].discard(t.name)
            elif kind == "new_post" and users:
                u = users[a % len(users)]
                counter += 1
                title = f"new{counter}"
                p = Post(title=title, tags=list(tags[: b % (len(tags) + 1)]))
                u.posts.append(p)
                exp.author[title] = u.name
                exp.tags[title] = {t.name for t in p.tags}
            elif kind == "reparent" and nodes:
                n = nodes[a % len(nodes)]
                target = None if b % (len(nodes) + 1) == len(nodes) else nodes[b % (len(nodes) + 1)]
                if target is not None and (target is n or n.name in exp.ancestors(target.name)):
                    continue  # would make a cycle
                n.parent = target
                exp.parent[n.name] = None if target is None else target.name
            elif kind == "delete_node" and nodes:
                n = nodes.pop(a % len(nodes))
                for c in list(n.children):  # no delete cascade: the children lose their parent
                    exp.parent[c.name] = None
                if n.parent is not None:
                    n.parent.children.remove(n)
                del exp.parent[n.name]
                await s.delete(n)
            elif kind == "delete_user" and users:
                u = users.pop(a % len(users))
                for title in exp.posts_of(u.name):
                    del exp.author[title]
                    del exp.tags[title]
                exp.users.discard(u.name)
                for p in list(u.posts):  # tags loaded with these posts hold them: let go in memory too
                    for t in list(p.tags):
                        t.posts.remove(p)
                await s.delete(u)  # cascades to the posts
        await s.commit()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=graphs(), ops=operations)
async def test_random_graphs_round_trip(db: Engine, spec: Any, ops: list[tuple[str, int, int]]) -> None:
    await clear(db)
    exp = await build(db, spec)
    await check(db, exp)
    await mutate(db, exp, ops)
    await check(db, exp)
