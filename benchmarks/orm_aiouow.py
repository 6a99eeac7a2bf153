"""aiouow, through its public API only (``import aiouow``), as a user would write it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import aiouow
from aiouow import ForeignKey, Model, column, create_engine, inspect, relationship, select, sessionmaker

from .schema import Backend, PostData, UserData
from .systems import W8_PAGE, NotAvailable, System


class BenchUser(Model):
    __tablename__ = "bench_users"
    id: int = column(primary_key=True)
    name: str = column()
    email: str | None = column(default=None)
    created_at: datetime = column()
    posts: list[BenchPost] = relationship(back_populates="user", passive_deletes=True)


class BenchPost(Model):
    __tablename__ = "bench_posts"
    id: int = column(primary_key=True)
    user_id: int = column(ForeignKey("bench_users.id", ondelete="CASCADE"), index=True)
    title: str = column()
    body: str = column()
    score: int = column()
    user: BenchUser = relationship(back_populates="posts")


class Aiouow(System):
    name = "aiouow"
    label = "aiouow"

    async def open(self, backend: Backend) -> None:
        self.backend = backend
        self.engine = create_engine(backend.aiouow_url)  # pool_size 10 (SQLite: 10 readers and one writer)
        self.Session = sessionmaker(self.engine)
        self.cascade_insert = await self._relationship_insert_works()
        self.note = ("W1 adds users with their posts through the relationship (User(posts=[Post()]))"
                     if self.cascade_insert else
                     "W1: relationship cascade on insert does not work yet, so it adds the users, flushes, "
                     "then adds posts with user_id set by hand (same statements, two flushes)")

    async def _relationship_insert_works(self) -> bool:
        """Does ``User(posts=[Post()])`` insert the post?  Tried in a transaction that is rolled back."""
        try:
            async with self.Session() as s:
                u = BenchUser(name="probe", created_at=datetime(2024, 1, 1),
                              posts=[BenchPost(title="t", body="b", score=0)])
                s.add(u)
                await s.flush()
                p = u.posts[0]
                ok = inspect(p).persistent and p.user_id == u.id
                await s.rollback()
                return bool(ok)
        except Exception:  # noqa: BLE001 - any failure means "not yet"
            return False

    async def close(self) -> None:
        await self.engine.dispose()

    async def w1_insert(self, users: list[UserData], posts: list[PostData]) -> int:
        async with self.Session() as s:
            if self.cascade_insert:
                s.add_all([
                    BenchUser(name=u.name, email=u.email, created_at=u.created_at,
                              posts=[BenchPost(title=p.title, body=p.body, score=p.score)])
                    for u, p in zip(users, posts)
                ])
            else:
                objs = [BenchUser(name=u.name, email=u.email, created_at=u.created_at) for u in users]
                s.add_all(objs)
                await s.flush()
                s.add_all([BenchPost(user_id=o.id, title=p.title, body=p.body, score=p.score)
                           for o, p in zip(objs, posts)])
            await s.commit()
        return len(users)

    async def load_users(self) -> list[BenchUser]:
        async with self.Session() as s:
            return (await s.scalars(select(BenchUser))).all()

    async def w3_update(self) -> int:
        async with self.Session() as s:
            users = (await s.scalars(select(BenchUser))).all()
            for u in users:
                u.name = u.name + "x"
            await s.commit()
        return len(users)

    async def w4_get(self, keys: list[int]) -> int:
        found = 0
        async with self.Session() as s:
            for _ in range(2):
                for k in keys:
                    found += await s.get(BenchUser, k) is not None
        return found

    async def w5_eager(self) -> int:
        selectinload = getattr(aiouow, "selectinload", None)
        if selectinload is None:
            raise NotAvailable("aiouow has no selectinload yet")
        async with self.Session() as s:
            try:
                users = (await s.scalars(select(BenchUser).options(selectinload(BenchUser.posts)))).all()
            except NotImplementedError as err:
                raise NotAvailable(f"selectinload: {err}") from err
            return sum(len(u.posts) for u in users)

    async def w6_task(self, task: int, keys: list[int]) -> int:
        done = 0
        for j, k in enumerate(keys):
            async with self.Session.begin() as s:
                u = await s.get(BenchUser, k)
                u.name = f"t{task}-{j}"
            done += 1
        return done

    async def w8_task(self, task: int, keys: list[int]) -> int:
        done = 0
        for j, k in enumerate(keys):
            async with self.Session() as s:
                u = await s.get(BenchUser, k)
                page = (await s.scalars(select(BenchUser).where(BenchUser.id > k).order_by(BenchUser.id)
                                        .limit(W8_PAGE))).all()
                if j % 5 == 0:
                    u.name = f"r{task}-{j}-{len(page)}"
                    await s.commit()
            done += 1
        return done

    async def w7_delete(self, count: int) -> int:
        async with self.Session() as s:
            users = (await s.scalars(select(BenchUser).order_by(BenchUser.id).limit(count))).all()
            for u in users:
                await s.delete(u)
            await s.commit()
        return len(users)


    # -- T1-T5 --------------------------------------------------------------------------
    async def t1_add(self, users: list[UserData]) -> int:
        for u in users:
            async with self.Session.begin() as s:
                s.add(BenchUser(name=u.name, email=u.email, created_at=u.created_at))
        return len(users)

    async def t2_change(self, keys: list[int]) -> int:
        for i, k in enumerate(keys):
            async with self.Session.begin() as s:
                u = await s.get_one(BenchUser, k)
                u.name = f"c{i}"
        return len(keys)

    async def t3_delete(self, keys: list[int]) -> int:
        for k in keys:
            async with self.Session.begin() as s:
                await s.delete(await s.get_one(BenchUser, k))
        return len(keys)

    async def detached_users(self, keys: list[int]) -> list[Any]:
        async with self.Session(expire_on_commit=False) as s:
            found = {u.id: u for u in await s.scalars(select(BenchUser).where(BenchUser.id.in_(keys)))}
        return [found[k] for k in keys]

    async def t4_merge(self, batches: list[list[Any]]) -> int:
        done = 0
        for b, batch in enumerate(batches):
            async with self.Session.begin() as s:
                for i, d in enumerate(batch):
                    m = await s.merge(d)
                    m.name = f"m{b}-{i}"
            done += len(batch)
        return done

    async def t5_merge_all(self, batches: list[list[Any]]) -> int:
        done = 0
        for b, batch in enumerate(batches):
            async with self.Session.begin() as s:
                for i, m in enumerate(await s.merge_all(batch)):
                    m.name = f"m{b}-{i}"
            done += len(batch)
        return done
