"""run_transaction(), isolation levels and prepared_statements (checked by mypy and pyright, never run)."""

from __future__ import annotations

from typing import assert_type

from aiouow import AsyncSession, Connection, Engine, create_engine, exc, run_transaction, select, sessionmaker
from tests.typing.models_mapped import User

engine = create_engine("postgresql://u@h/db", isolation_level="SERIALIZABLE", prepared_statements=False)
assert_type(engine, Engine)
assert_type(engine.isolation_level, str | None)
assert_type(engine.prepared_statements, bool)
Session = sessionmaker(engine, isolation_level="REPEATABLE READ")
assert_type(engine.connect(isolation_level="READ COMMITTED"), Connection)


async def count_users(session: AsyncSession) -> int:
    return len((await session.scalars(select(User))).all())


async def transactions() -> None:
    assert_type(await run_transaction(Session, count_users), int)
    assert_type(await run_transaction(Session, count_users, retries=3, backoff=0.1, max_backoff=1,
                                      isolation_level="SERIALIZABLE"), int)
    session = AsyncSession(engine, isolation_level="SERIALIZABLE")
    assert_type(session.isolation_level, str | None)
    try:
        await run_transaction(Session, count_users)
    except exc.SerializationError as err:
        assert_type(err.sqlstate, str | None)
    except exc.CommitOutcomeUnknownError as err:
        assert_type(err.orig, BaseException | None)
