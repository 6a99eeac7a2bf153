"""Helpers of the query tests: the same question asked through aiouow and as raw SQL."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from aiouow import AsyncSession, Engine


async def raw_sql(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    """Rows of a raw SQL string, straight from the driver."""
    async with engine.connect() as conn:
        return [tuple(r) for r in await conn.exec_driver_sql(sql)]


async def orm_rows(engine: Engine, stmt: Any) -> list[tuple[Any, ...]]:
    """Rows of an aiouow statement, run in a session of its own."""
    async with AsyncSession(engine) as s:
        return [tuple(r) for r in (await s.execute(stmt)).all()]


def money(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows with numbers at cents, so driver floats and Decimals compare."""
    return [tuple(Decimal(str(v)).quantize(Decimal("0.01")) if isinstance(v, (Decimal, float)) else v for v in r)
            for r in rows]
