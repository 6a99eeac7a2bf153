"""The raw drivers: the fastest honest path on bare asyncpg and aiosqlite.

asyncpg: ``fetchmany`` (executemany with RETURNING) and ``executemany`` for
writes, ``fetch`` for reads, one ``fetchrow`` per lookup; a pool of 10
connections, like aiouow's default, whose reset-on-release query is turned
off (aiouow's pool does not run one either; these transactions leave no
session state behind).  aiosqlite: one connection (aiouow writes through one
per SQLite database, and reads on up to pool_size more), ``executemany`` for writes,
``execute_fetchall`` for reads (one thread hop per statement), multi-row
``INSERT ... VALUES ... RETURNING id`` where generated keys are needed, and an
``asyncio.Lock`` around each transaction when tasks share the connection.

T1-T3 (one small transaction at a time) send what a correct program must and no more: each
write is one autocommitted statement (asyncpg outside a transaction block, aiosqlite in
autocommit mode), T2/T3 reading the row first with its own SELECT.  T4/T5 change rows the
program already holds: one transaction of an ``executemany`` UPDATE per batch (asyncpg sends
it as one pipelined request), nothing read back; T5 is the same as T4.

Rows stay driver rows (asyncpg ``Record``, tuples): no objects are built.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

from .schema import POSTS, SQLITE_PRAGMAS, USERS, Backend, PostData, UserData
from .systems import W8_PAGE, System

SELECT_USERS = f"SELECT id, name, email, created_at FROM {USERS}"
SQLITE_MAX_VARIABLES = 32766  # SQLITE_MAX_VARIABLE_NUMBER since SQLite 3.32


async def _no_reset(conn: Any) -> None:
    return None


class Raw(System):
    name = "raw"
    label = "raw driver"

    async def open(self, backend: Backend) -> None:
        self.backend = backend
        if backend.pg:
            import asyncpg

            self.pool = await asyncpg.create_pool(backend.raw_target, min_size=10, max_size=10, reset=_no_reset)
        else:
            import aiosqlite

            self.conn = await aiosqlite.connect(backend.raw_target, isolation_level=None)
            for p in SQLITE_PRAGMAS:
                await self.conn.execute(p)
            self.lock = asyncio.Lock()

    async def close(self) -> None:
        if self.backend.pg:
            await self.pool.close()
        else:
            await self.conn.close()

    # -- W1 ---------------------------------------------------------------------------
    async def w1_insert(self, users: list[UserData], posts: list[PostData]) -> int:
        if self.backend.pg:
            async with self.pool.acquire() as c, c.transaction():
                ids = await c.fetchmany(
                    f"INSERT INTO {USERS} (name, email, created_at) VALUES ($1, $2, $3) RETURNING id",
                    [(u.name, u.email, u.created_at) for u in users],
                )
                await c.executemany(
                    f"INSERT INTO {POSTS} (user_id, title, body, score) VALUES ($1, $2, $3, $4)",
                    [(r[0], p.title, p.body, p.score) for r, p in zip(ids, posts)],
                )
            return len(ids)
        c = self.conn
        ids: list[int] = []
        await c.execute("BEGIN")
        try:
            chunk = SQLITE_MAX_VARIABLES // 3
            for start in range(0, len(users), chunk):
                part = users[start:start + chunk]
                args: list[Any] = []
                for u in part:
                    args += (u.name, u.email, u.created_at.isoformat(" "))
                rows = await c.execute_fetchall(
                    f"INSERT INTO {USERS} (name, email, created_at) VALUES "
                    + ", ".join(["(?, ?, ?)"] * len(part)) + " RETURNING id", args)
                ids += sorted(r[0] for r in rows)  # rowids are handed out in insertion order
            await c.executemany(
                f"INSERT INTO {POSTS} (user_id, title, body, score) VALUES (?, ?, ?, ?)",
                [(i, p.title, p.body, p.score) for i, p in zip(ids, posts)],
            )
            await c.execute("COMMIT")
        except BaseException:
            await c.execute("ROLLBACK")
            raise
        return len(ids)

    # -- W2 ---------------------------------------------------------------------------
    async def load_users(self) -> list[Any]:
        if self.backend.pg:
            async with self.pool.acquire() as c:
                return await c.fetch(SELECT_USERS)
        return list(await self.conn.execute_fetchall(SELECT_USERS))

    # -- W3 ---------------------------------------------------------------------------
    async def w3_update(self) -> int:
        if self.backend.pg:
            async with self.pool.acquire() as c, c.transaction():
                rows = await c.fetch(SELECT_USERS)
                await c.executemany(f"UPDATE {USERS} SET name = $1 WHERE id = $2",
                                    [(r[1] + "x", r[0]) for r in rows])
            return len(rows)
        c = self.conn
        await c.execute("BEGIN")
        try:
            rows = await c.execute_fetchall(SELECT_USERS)
            await c.executemany(f"UPDATE {USERS} SET name = ? WHERE id = ?", [(r[1] + "x", r[0]) for r in rows])
            await c.execute("COMMIT")
        except BaseException:
            await c.execute("ROLLBACK")
            raise
        return len(rows)

    # -- W4 ---------------------------------------------------------------------------
    async def w4_get(self, keys: list[int]) -> int:
        found = 0
        if self.backend.pg:
            sql = SELECT_USERS + " WHERE id = $1"
            async with self.pool.acquire() as c:
                for _ in range(2):
                    for k in keys:
                        found += await c.fetchrow(sql, k) is not None
            return found
        sql = SELECT_USERS + " WHERE id = ?"
        c = self.conn
        for _ in range(2):
            for k in keys:
                found += bool(await c.execute_fetchall(sql, (k,)))
        return found

    # -- W5 ---------------------------------------------------------------------------
    async def w5_eager(self) -> int:
        by_user: dict[int, list[Any]] = defaultdict(list)
        if self.backend.pg:
            async with self.pool.acquire() as c:
                users = await c.fetch(SELECT_USERS)
                posts = await c.fetch(f"SELECT id, user_id, title, body, score FROM {POSTS}"
                                      " WHERE user_id = ANY($1::bigint[])", [u[0] for u in users])
        else:
            c = self.conn
            users = await c.execute_fetchall(SELECT_USERS)
            ids = [u[0] for u in users]
            posts = []
            for start in range(0, len(ids), SQLITE_MAX_VARIABLES):
                part = ids[start:start + SQLITE_MAX_VARIABLES]
                posts += await c.execute_fetchall(
                    f"SELECT id, user_id, title, body, score FROM {POSTS} WHERE user_id IN ("
                    + ", ".join(["?"] * len(part)) + ")", part)
        for p in posts:
            by_user[p[1]].append(p)
        loaded = [(u, by_user.get(u[0], [])) for u in users]
        return sum(len(ps) for _, ps in loaded)

    # -- W6 ---------------------------------------------------------------------------
    async def w6_task(self, task: int, keys: list[int]) -> int:
        done = 0
        if self.backend.pg:
            sel = SELECT_USERS + " WHERE id = $1"
            upd = f"UPDATE {USERS} SET name = $1 WHERE id = $2"
            for j, k in enumerate(keys):
                async with self.pool.acquire() as c, c.transaction():
                    row = await c.fetchrow(sel, k)
                    await c.execute(upd, f"t{task}-{j}", row[0])
                done += 1
            return done
        sel = SELECT_USERS + " WHERE id = ?"
        upd = f"UPDATE {USERS} SET name = ? WHERE id = ?"
        c = self.conn
        for j, k in enumerate(keys):
            async with self._sqlite_tx():
                row = (await c.execute_fetchall(sel, (k,)))[0]
                await c.execute(upd, (f"t{task}-{j}", row[0]))
            done += 1
        return done

    @contextlib.asynccontextmanager
    async def _sqlite_tx(self) -> AsyncIterator[None]:
        """One short SQLite transaction, taken in turn (the least a correct program must do)."""
        c = self.conn
        async with self.lock:
            await c.execute("BEGIN")
            try:
                yield
                await c.execute("COMMIT")
            except BaseException:
                await c.execute("ROLLBACK")
                raise

    # -- W8 ---------------------------------------------------------------------------
    async def w8_task(self, task: int, keys: list[int]) -> int:
        done = 0
        if self.backend.pg:
            sel = SELECT_USERS + " WHERE id = $1"
            page = SELECT_USERS + " WHERE id > $1 ORDER BY id LIMIT $2"
            upd = f"UPDATE {USERS} SET name = $1 WHERE id = $2"
            for j, k in enumerate(keys):
                async with self.pool.acquire() as c, c.transaction():
                    row = await c.fetchrow(sel, k)
                    rows = await c.fetch(page, k, W8_PAGE)
                    if j % 5 == 0:
                        await c.execute(upd, f"r{task}-{j}-{len(rows)}", row[0])
                done += 1
            return done
        sel = SELECT_USERS + " WHERE id = ?"
        page = SELECT_USERS + " WHERE id > ? ORDER BY id LIMIT ?"
        upd = f"UPDATE {USERS} SET name = ? WHERE id = ?"
        c = self.conn
        for j, k in enumerate(keys):
            async with self._sqlite_tx():
                row = (await c.execute_fetchall(sel, (k,)))[0]
                rows = await c.execute_fetchall(page, (k, W8_PAGE))
                if j % 5 == 0:
                    await c.execute(upd, (f"r{task}-{j}-{len(rows)}", row[0]))
            done += 1
        return done

    # -- W7 ---------------------------------------------------------------------------
    async def w7_delete(self, count: int) -> int:
        if self.backend.pg:
            async with self.pool.acquire() as c, c.transaction():
                rows = await c.fetch(SELECT_USERS + " ORDER BY id LIMIT $1", count)
                await c.executemany(f"DELETE FROM {USERS} WHERE id = $1", [(r[0],) for r in rows])
            return len(rows)
        c = self.conn
        await c.execute("BEGIN")
        try:
            rows = await c.execute_fetchall(SELECT_USERS + " ORDER BY id LIMIT ?", (count,))
            await c.executemany(f"DELETE FROM {USERS} WHERE id = ?", [(r[0],) for r in rows])
            await c.execute("COMMIT")
        except BaseException:
            await c.execute("ROLLBACK")
            raise
        return len(rows)

    # -- T1-T5 --------------------------------------------------------------------------
    async def t1_add(self, users: list[UserData]) -> int:
        if self.backend.pg:
            sql = f"INSERT INTO {USERS} (name, email, created_at) VALUES ($1, $2, $3) RETURNING id"
            async with self.pool.acquire() as c:
                for u in users:
                    await c.fetchval(sql, u.name, u.email, u.created_at)
            return len(users)
        sql = f"INSERT INTO {USERS} (name, email, created_at) VALUES (?, ?, ?) RETURNING id"
        for u in users:
            await self.conn.execute_fetchall(sql, (u.name, u.email, u.created_at.isoformat(" ")))
        return len(users)

    async def t2_change(self, keys: list[int]) -> int:
        if self.backend.pg:
            sel, upd = SELECT_USERS + " WHERE id = $1", f"UPDATE {USERS} SET name = $1 WHERE id = $2"
            async with self.pool.acquire() as c:
                for i, k in enumerate(keys):
                    row = await c.fetchrow(sel, k)
                    await c.execute(upd, f"c{i}", row[0])
            return len(keys)
        sel, upd = SELECT_USERS + " WHERE id = ?", f"UPDATE {USERS} SET name = ? WHERE id = ?"
        for i, k in enumerate(keys):
            row = (await self.conn.execute_fetchall(sel, (k,)))[0]
            await self.conn.execute(upd, (f"c{i}", row[0]))
        return len(keys)

    async def t3_delete(self, keys: list[int]) -> int:
        if self.backend.pg:
            sel, dele = SELECT_USERS + " WHERE id = $1", f"DELETE FROM {USERS} WHERE id = $1"
            async with self.pool.acquire() as c:
                for k in keys:
                    row = await c.fetchrow(sel, k)
                    await c.execute(dele, row[0])
            return len(keys)
        sel, dele = SELECT_USERS + " WHERE id = ?", f"DELETE FROM {USERS} WHERE id = ?"
        for k in keys:
            row = (await self.conn.execute_fetchall(sel, (k,)))[0]
            await self.conn.execute(dele, (row[0],))
        return len(keys)

    async def detached_users(self, keys: list[int]) -> list[Any]:
        if self.backend.pg:
            async with self.pool.acquire() as c:
                rows = {r[0]: r for r in await c.fetch(SELECT_USERS + " WHERE id = ANY($1::bigint[])", keys)}
        else:
            rows = {r[0]: r for r in await self.conn.execute_fetchall(
                SELECT_USERS + f" WHERE id IN ({', '.join('?' * len(keys))})", keys)}
        return [rows[k] for k in keys]

    async def t4_merge(self, batches: list[list[Any]]) -> int:
        done = 0
        if self.backend.pg:
            upd = f"UPDATE {USERS} SET name = $1 WHERE id = $2"
            async with self.pool.acquire() as c:
                for b, batch in enumerate(batches):
                    async with c.transaction():
                        await c.executemany(upd, [(f"m{b}-{i}", r[0]) for i, r in enumerate(batch)])
                    done += len(batch)
            return done
        upd = f"UPDATE {USERS} SET name = ? WHERE id = ?"
        for b, batch in enumerate(batches):
            async with self._sqlite_tx():
                await self.conn.executemany(upd, [(f"m{b}-{i}", r[0]) for i, r in enumerate(batch)])
            done += len(batch)
        return done

    async def t5_merge_all(self, batches: list[list[Any]]) -> int:
        return await self.t4_merge(batches)  # nothing to merge: the same statements as T4
