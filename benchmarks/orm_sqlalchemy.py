"""SQLAlchemy 2.x ``AsyncSession`` (the ``bench`` extra), written the way its documentation shows.

Its own ``DeclarativeBase`` (own registry and MetaData) maps the shared tables.
PostgreSQL: asyncpg, ``pool_size=10, max_overflow=0`` (aiouow's default size).
SQLite: aiosqlite with the same PRAGMAs as every other system and SQLAlchemy's
default pool (5 connections).  SQLAlchemy has no ``merge_all()``: T5 uses what its documentation
suggests for merging many objects, loading them first with one ``IN`` query so that each
``merge()`` finds its object in the identity map, and ``no_autoflush`` around the loop (each
``merge()`` autoflushes first, which would send every change on its own).  Measured on W6, that default was faster than
one pooled connection (``pool_size=1``, as aiouow and the raw driver use) and
it does not fail: pysqlite's legacy transaction control only begins the
transaction at the first write, so a read never has to upgrade to a write.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .schema import SQLITE_PRAGMAS, Backend, PostData, UserData
from .systems import W8_PAGE, System

try:
    from sqlalchemy import BigInteger, ForeignKey, String, Text, event, select
    from sqlalchemy.ext.asyncio import AsyncAttrs, async_sessionmaker, create_async_engine
    from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, selectinload

    IMPORT_ERROR: Exception | None = None
except ImportError as err:  # the bench extra is not installed
    IMPORT_ERROR = err

if IMPORT_ERROR is None:

    class Base(AsyncAttrs, DeclarativeBase):
        pass

    class SAUser(Base):
        __tablename__ = "bench_users"
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
        name: Mapped[str] = mapped_column(String)
        email: Mapped[str | None] = mapped_column(String)
        created_at: Mapped[datetime]
        posts: Mapped[list[SAPost]] = relationship(back_populates="user", passive_deletes=True)

    class SAPost(Base):
        __tablename__ = "bench_posts"
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
        user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("bench_users.id", ondelete="CASCADE"),
                                             index=True)
        title: Mapped[str] = mapped_column(String)
        body: Mapped[str] = mapped_column(Text)
        score: Mapped[int] = mapped_column(BigInteger)
        user: Mapped[SAUser] = relationship(back_populates="posts")


class SQLAlchemy(System):
    name = "sqlalchemy"
    label = "SQLAlchemy"

    @staticmethod
    def available() -> str | None:
        """None if SQLAlchemy can run here, else why not."""
        if IMPORT_ERROR is not None:
            return f"SQLAlchemy is not installed ({IMPORT_ERROR}); pip install -e '.[bench]'"
        return None

    async def open(self, backend: Backend) -> None:
        import sqlalchemy

        self.backend = backend
        self.label = f"SQLAlchemy {sqlalchemy.__version__}"
        if backend.pg:
            self.engine = create_async_engine(backend.sqlalchemy_url, pool_size=10, max_overflow=0)
        else:
            self.engine = create_async_engine(backend.sqlalchemy_url)

            @event.listens_for(self.engine.sync_engine, "connect")
            def _pragmas(dbapi_connection, _record):  # noqa: ANN001
                cursor = dbapi_connection.cursor()
                for p in SQLITE_PRAGMAS:
                    cursor.execute(p)
                cursor.close()

        self.Session = async_sessionmaker(self.engine)

    async def close(self) -> None:
        await self.engine.dispose()

    async def w1_insert(self, users: list[UserData], posts: list[PostData]) -> int:
        async with self.Session() as s:
            s.add_all([
                SAUser(name=u.name, email=u.email, created_at=u.created_at,
                       posts=[SAPost(title=p.title, body=p.body, score=p.score)])
                for u, p in zip(users, posts)
            ])
            await s.commit()
        return len(users)

    async def load_users(self) -> list:
        async with self.Session() as s:
            return list((await s.scalars(select(SAUser))).all())

    async def w3_update(self) -> int:
        async with self.Session() as s:
            users = (await s.scalars(select(SAUser))).all()
            for u in users:
                u.name = u.name + "x"
            await s.commit()
        return len(users)

    async def w4_get(self, keys: list[int]) -> int:
        found = 0
        async with self.Session() as s:
            for _ in range(2):
                for k in keys:
                    found += await s.get(SAUser, k) is not None
        return found

    async def w5_eager(self) -> int:
        async with self.Session() as s:
            users = (await s.scalars(select(SAUser).options(selectinload(SAUser.posts)))).all()
            return sum(len(u.posts) for u in users)

    async def w6_task(self, task: int, keys: list[int]) -> int:
        done = 0
        for j, k in enumerate(keys):
            async with self.Session.begin() as s:
                u = await s.get(SAUser, k)
                u.name = f"t{task}-{j}"
            done += 1
        return done

    async def w8_task(self, task: int, keys: list[int]) -> int:
        done = 0
        for j, k in enumerate(keys):
            async with self.Session() as s:
                u = await s.get(SAUser, k)
                page = (await s.scalars(select(SAUser).where(SAUser.id > k).order_by(SAUser.id)
                                        .limit(W8_PAGE))).all()
                if j % 5 == 0:
                    u.name = f"r{task}-{j}-{len(page)}"
                    await s.commit()
            done += 1
        return done

    async def w7_delete(self, count: int) -> int:
        async with self.Session() as s:
            users = (await s.scalars(select(SAUser).order_by(SAUser.id).limit(count))).all()
            for u in users:
                await s.delete(u)
            await s.commit()
        return len(users)

    # -- T1-T5 --------------------------------------------------------------------------
    async def t1_add(self, users: list[UserData]) -> int:
        for u in users:
            async with self.Session.begin() as s:
                s.add(SAUser(name=u.name, email=u.email, created_at=u.created_at))
        return len(users)

    async def t2_change(self, keys: list[int]) -> int:
        for i, k in enumerate(keys):
            async with self.Session.begin() as s:
                u = await s.get_one(SAUser, k)
                u.name = f"c{i}"
        return len(keys)

    async def t3_delete(self, keys: list[int]) -> int:
        for k in keys:
            async with self.Session.begin() as s:
                await s.delete(await s.get_one(SAUser, k))
        return len(keys)

    async def detached_users(self, keys: list[int]) -> list[Any]:
        async with self.Session(expire_on_commit=False) as s:
            found = {u.id: u for u in await s.scalars(select(SAUser).where(SAUser.id.in_(keys)))}
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
                # into the identity map, held here (SQLAlchemy's map keeps unchanged objects only weakly)
                held = (await s.scalars(select(SAUser).where(SAUser.id.in_([d.id for d in batch])))).all()
                with s.no_autoflush:  # merge() autoflushes first: it would send each change on its own
                    for i, d in enumerate(batch):
                        m = await s.merge(d)
                        m.name = f"m{b}-{i}"
                del held
            done += len(batch)
        return done
