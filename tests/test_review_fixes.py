"""Regressions found reviewing issue 10's fixes ("correct on real data"), each on both backends."""

from __future__ import annotations

import datetime as dt

import pytest

from aiouow import AsyncSession, Engine, Model, column, insert, select, text, update

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


class RvDay(Model):
    __tablename__ = "rv_days"
    id: int = column(primary_key=True)
    day: dt.date | None = column(default=None)


async def test_core_datetime_given_for_a_date_column_stores_its_date(db: Engine) -> None:
    # SQLite stored "2024-05-02T07:00:00", which no read of the Date column accepted afterwards;
    # PostgreSQL's DATE keeps the date
    async with db.begin() as conn:
        await conn.execute(insert(RvDay).values(id=1, day=dt.datetime(2024, 5, 2, 7, 0)))
        await conn.execute(insert(RvDay).values(id=2, day=dt.date(2024, 5, 3)))
        await conn.execute(update(RvDay).where(RvDay.id == 2).values(day=dt.datetime(2024, 5, 4, 23, 59)))
    async with AsyncSession(db) as s:
        assert (await s.execute(select(RvDay.id, RvDay.day).order_by(RvDay.id))).all() == [
            (1, dt.date(2024, 5, 2)), (2, dt.date(2024, 5, 4))]
        assert await s.scalar(select(RvDay.id).where(RvDay.day == dt.date(2024, 5, 2))) == 1
    async with db.connect() as conn:
        raw = (await conn.exec_driver_sql("SELECT CAST(day AS TEXT) FROM rv_days ORDER BY id")).all()
    assert [r[0] for r in raw] == ["2024-05-02", "2024-05-04"]
