"""Test-suite support: a transactional session and a pytest plugin.

``transactional_session(engine)`` yields a session joined to an outer
transaction with ``join_transaction_mode="create_savepoint"`` (SQLAlchemy's
"joining a session into an external transaction" recipe): the session's
``commit()`` releases a SAVEPOINT and its ``rollback()`` rolls back to one,
so the code under test may commit and roll back freely, and everything is
rolled back when the block exits.

The pytest plugin (``aiouow.testing.plugin``, registered through the
``pytest11`` entry point) provides the fixtures ``aiouow_engine`` and
``aiouow_session``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ..engine.connection import Connection
from ..engine.engine import Engine
from ..session.session import AsyncSession

__all__ = ["transactional_session"]


@asynccontextmanager
async def transactional_session(engine: Engine, **session_kw: Any) -> AsyncIterator[AsyncSession]:
    """A session inside an outer transaction that is always rolled back at exit.

    ``async with transactional_session(engine) as session:``: the session's own commits and
    rollbacks become SAVEPOINT releases and rollbacks.  Keywords go to ``AsyncSession``.
    """
    session_kw.setdefault("join_transaction_mode", "create_savepoint")
    conn: Connection = engine.connect()
    try:
        conn.begin()  # the outer transaction: never committed
        session = AsyncSession(conn, **session_kw)
        try:
            yield session
        finally:
            await session.close()
    finally:
        await conn.close()  # rolls the outer transaction back and returns the connection
