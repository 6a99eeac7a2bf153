"""Regressions found reviewing issue 10's fixes ("correct on real data"), each on both backends."""

from __future__ import annotations

import pytest

from aiouow import AsyncSession, Engine, text

from .session_support import seed_users


@pytest.mark.parametrize("sql", [
    "/* a comment */ SELECT count(*) FROM users",
    "-- a comment\nselect count(*) from users",
    "  \n/* one */ -- two\n  SELECT count(*) FROM users ; ",
])
async def test_text_select_after_a_comment_returns_its_rows(db: Engine, sql: str) -> None:
    # a leading comment made the statement look like one without rows: scalar() gave None
    await seed_users(db, "ann", "bob")
    async with AsyncSession(db) as s:
        assert await s.scalar(text(sql)) == 2
        assert (await s.execute(text(sql))).all() == [(2,)]
    async with db.connect() as conn:
        assert (await conn.exec_driver_sql(sql)).all() == [(2,)]
        assert (await conn.execute(text(sql))).scalar() == 2
