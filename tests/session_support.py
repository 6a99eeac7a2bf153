"""Small helpers shared by the session test modules (no fixtures here: see conftest.py).

Everything reads or writes the database through a core connection of its
own, never through the session under test.  On SQLite the pool holds one
connection, so these helpers must only be called while the session under
test holds none (before its first statement, or after commit / rollback /
close).
"""

from __future__ import annotations

import datetime
import re
from typing import Any

from aiouow import Engine, delete, func, insert, select, update

from .models import Account, Post, User

NOW = datetime.datetime(2024, 1, 2, 3, 4, 5)


async def core_rows(engine: Engine, stmt: Any) -> list[tuple[Any, ...]]:
    """Rows of ``stmt`` read through a fresh core connection (committed data only)."""
    async with engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(stmt)).all()]


async def core_exec(engine: Engine, stmt: Any, params: Any = None) -> None:
    """Execute and commit ``stmt`` through a fresh core connection."""
    async with engine.connect() as conn:
        await conn.execute(stmt, params)
        await conn.commit()


async def user_names(engine: Engine) -> dict[int, str]:
    return dict(await core_rows(engine, select(User.id, User.name).order_by(User.id)))


async def count(engine: Engine, model: Any) -> int:
    return (await core_rows(engine, select(func.count()).select_from(model)))[0][0]


async def seed_users(engine: Engine, *names: str) -> list[int]:
    """Insert users through core (ids 1..n, explicit) and return their ids."""
    ids = list(range(1, len(names) + 1))
    async with engine.connect() as conn:
        for i, name in zip(ids, names):
            await conn.execute(insert(User).values(id=i, name=name, email=f"{name}@x", created_at=NOW))
        if engine.dialect.name == "postgresql":
            await conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('users', 'id'), 1000)")
        await conn.commit()
    return ids


async def seed_posts(engine: Engine, author_id: int, *titles: str, start: int = 1) -> list[int]:
    ids = list(range(start, start + len(titles)))
    async with engine.connect() as conn:
        for i, title in zip(ids, titles):
            await conn.execute(insert(Post).values(id=i, author_id=author_id, title=title, version=1))
        if engine.dialect.name == "postgresql":
            await conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('posts', 'id'), 1000)")
        await conn.commit()
    return ids


async def seed_account(engine: Engine, code: str, balance: int = 0, version: int = 1) -> None:
    await core_exec(engine, insert(Account).values(code=code, balance=balance, version=version))


async def rename_user_elsewhere(engine: Engine, uid: int, name: str) -> None:
    await core_exec(engine, update(User).where(User.id == uid).values(name=name))


async def delete_user_elsewhere(engine: Engine, uid: int) -> None:
    await core_exec(engine, delete(User).where(User.id == uid))


def statement_tables(statements: list[str], verb: str) -> list[str]:
    """The table of each logged statement starting with ``verb`` (INSERT/UPDATE/DELETE), in order."""
    pattern = {
        "INSERT": r'^INSERT INTO "?(\w+)"?',
        "UPDATE": r'^UPDATE "?(\w+)"?',
        "DELETE": r'^DELETE FROM "?(\w+)"?',
    }[verb]
    out = []
    for s in statements:
        m = re.match(pattern, s, re.IGNORECASE)
        if m:
            out.append(m.group(1))
    return out


def sql_text(record: str) -> str:
    """The SQL part of a logged record (parameters follow on the next line)."""
    return record.split("\n", 1)[0]

