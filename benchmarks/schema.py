"""The benchmark schema, its data, and the untimed set-up around every measurement.

Every system works on the same two tables, created once per backend from the
hand-written DDL below, so the physical schema is identical for all of them;
each ORM maps its own classes (its own metadata) onto those tables.  Before
each measurement the tables are emptied and seeded through the bare driver on
a separate "admin" connection, outside the timed section, and afterwards the
admin connection checks that the workload did what it claims.

SQLite: a file in a temporary directory with the PRAGMAs aiouow uses
(WAL, synchronous=NORMAL, foreign_keys=ON) applied by every system.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

USERS = "bench_users"
POSTS = "bench_posts"

SQLITE_PRAGMAS = ("PRAGMA foreign_keys=ON", "PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL")

PG_DDL = (
    f"DROP TABLE IF EXISTS {POSTS}",
    f"DROP TABLE IF EXISTS {USERS}",
    f"CREATE TABLE {USERS} (id BIGSERIAL PRIMARY KEY, name VARCHAR NOT NULL, email VARCHAR,"
    " created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL)",
    f"CREATE TABLE {POSTS} (id BIGSERIAL PRIMARY KEY,"
    f" user_id BIGINT NOT NULL REFERENCES {USERS} (id) ON DELETE CASCADE,"
    " title VARCHAR NOT NULL, body TEXT NOT NULL, score BIGINT NOT NULL)",
    f"CREATE INDEX ix_{POSTS}_user_id ON {POSTS} (user_id)",
)

SQLITE_DDL = (
    f"DROP TABLE IF EXISTS {POSTS}",
    f"DROP TABLE IF EXISTS {USERS}",
    f"CREATE TABLE {USERS} (id INTEGER NOT NULL PRIMARY KEY, name VARCHAR NOT NULL, email VARCHAR,"
    " created_at DATETIME NOT NULL)",
    f"CREATE TABLE {POSTS} (id INTEGER NOT NULL PRIMARY KEY,"
    f" user_id INTEGER NOT NULL REFERENCES {USERS} (id) ON DELETE CASCADE,"
    " title VARCHAR NOT NULL, body TEXT NOT NULL, score INTEGER NOT NULL)",
    f"CREATE INDEX ix_{POSTS}_user_id ON {POSTS} (user_id)",
)

BASE_TIME = datetime(2024, 1, 1, 12, 0, 0, 123456)
BODY = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore."


@dataclass(frozen=True, slots=True)
class UserData:
    name: str
    email: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PostData:
    title: str
    body: str
    score: int


def user_data(n: int) -> list[UserData]:
    return [UserData(f"user{i}", f"user{i}@example.com", BASE_TIME + timedelta(seconds=i)) for i in range(1, n + 1)]


def post_data(i: int) -> PostData:
    return PostData(f"post {i}", BODY, i % 100)


@dataclass
class Backend:
    """One database, as each system addresses it, plus the admin connection."""

    name: str  # "sqlite" | "postgresql"
    aiouow_url: str
    sqlalchemy_url: str
    raw_target: str  # asyncpg DSN, or the SQLite file path
    server_version: str = ""
    tmpdir: str | None = None
    admin: Any = field(default=None, repr=False)

    @property
    def pg(self) -> bool:
        return self.name == "postgresql"

    @property
    def label(self) -> str:
        return "PostgreSQL" if self.pg else "SQLite"

    # -- life cycle ---------------------------------------------------------------
    @classmethod
    async def open_sqlite(cls) -> Backend:
        import sqlite3

        import aiosqlite

        tmpdir = tempfile.mkdtemp(prefix="aiouow-bench-")
        path = os.path.join(tmpdir, "bench.db")
        b = cls("sqlite", f"sqlite:///{path}", f"sqlite+aiosqlite:///{path}", path,
                server_version=sqlite3.sqlite_version, tmpdir=tmpdir)
        b.admin = await aiosqlite.connect(path, isolation_level=None)
        for p in SQLITE_PRAGMAS:
            await b.admin.execute(p)
        for stmt in SQLITE_DDL:
            await b.admin.execute(stmt)
        return b

    @classmethod
    async def open_postgresql(cls, url: str) -> Backend:
        import asyncpg

        dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
        admin = await asyncio.wait_for(asyncpg.connect(dsn), 10)
        version = await admin.fetchval("SHOW server_version")
        b = cls("postgresql", dsn, dsn.replace("postgresql://", "postgresql+asyncpg://", 1), dsn,
                server_version=version, admin=admin)
        await admin.execute("SET client_min_messages = warning")
        for stmt in PG_DDL:
            await admin.execute(stmt)
        return b

    async def close(self) -> None:
        if self.admin is None:
            return
        try:
            for stmt in (PG_DDL if self.pg else SQLITE_DDL)[:2]:
                await self.admin.execute(stmt)
        finally:
            await self.admin.close()
            self.admin = None
            if self.tmpdir is not None:
                import shutil

                shutil.rmtree(self.tmpdir, ignore_errors=True)

    # -- untimed set-up and checks -------------------------------------------------------
    async def reset(self, users: int = 0, posts_per_user: int = 0) -> None:
        """Empty both tables, then seed ``users`` users (ids 1..users) with ``posts_per_user`` posts each."""
        rows = [(i, d.name, d.email, d.created_at) for i, d in enumerate(user_data(users), 1)]
        posts = []
        pid = 0
        for uid in range(1, users + 1):
            for _ in range(posts_per_user):
                pid += 1
                p = post_data(pid)
                posts.append((pid, uid, p.title, p.body, p.score))
        a = self.admin
        if self.pg:
            await a.execute(f"TRUNCATE {POSTS}, {USERS} RESTART IDENTITY")
            if rows:
                await a.copy_records_to_table(USERS, records=rows, columns=["id", "name", "email", "created_at"])
                await a.execute(f"SELECT setval(pg_get_serial_sequence('{USERS}', 'id'), {users})")
            if posts:
                await a.copy_records_to_table(POSTS, records=posts,
                                              columns=["id", "user_id", "title", "body", "score"])
                await a.execute(f"SELECT setval(pg_get_serial_sequence('{POSTS}', 'id'), {pid})")
            await a.execute(f"ANALYZE {USERS}, {POSTS}")
        else:
            await a.execute("BEGIN")
            await a.execute(f"DELETE FROM {POSTS}")
            await a.execute(f"DELETE FROM {USERS}")
            if rows:
                await a.executemany(f"INSERT INTO {USERS} (id, name, email, created_at) VALUES (?, ?, ?, ?)",
                                    [(i, n, e, c.isoformat(" ")) for i, n, e, c in rows])
            if posts:
                await a.executemany(f"INSERT INTO {POSTS} (id, user_id, title, body, score) VALUES (?, ?, ?, ?, ?)",
                                    posts)
            await a.execute("COMMIT")
            await a.execute("ANALYZE")

    async def scalar(self, sql: str) -> Any:
        if self.pg:
            return await self.admin.fetchval(sql)
        rows = await self.admin.execute_fetchall(sql)
        return rows[0][0]

    async def counts(self) -> tuple[int, int]:
        return (await self.scalar(f"SELECT count(*) FROM {USERS}"), await self.scalar(f"SELECT count(*) FROM {POSTS}"))
