"""Round trips per transaction: what each small transaction sends, by statement log and by the
engine's round-trip counter (``engine.round_trips``, counted in the driver adapters).

The rule under test (``engine/connection.py``): plain reads run before BEGIN, a commit whose
whole work is one statement sends it alone (autocommitted), and everything else is in
BEGIN ... COMMIT as before.  On SQLite a BEGIN rides with the statement after it (one thread hop),
so it is logged but costs no round trip of its own.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

import aiouow
from aiouow import AsyncSession, create_engine, events, exc, func, select, sessionmaker, text

from .conftest import capture_sql
from .models import Account, User


@dataclass
class Trips:
    """What some work sent: the first word of each logged statement, and the round trips."""

    engine: aiouow.Engine
    words: list[str] = field(default_factory=list)
    n: int = 0

    def expect(self, *words: str, sqlite: int | None = None) -> None:
        """The statements logged, and as many round trips, but on SQLite one fewer for a BEGIN
        (or ``sqlite``, where nothing but reads ran: a BEGIN and COMMIT that are never sent)."""
        assert self.words == list(words), self.words
        if self.engine.dialect.name == "sqlite":
            n = len(words) - (1 if "BEGIN" in words else 0) if sqlite is None else sqlite
        else:
            n = len(words)
        assert self.n == n, (self.n, self.words)


@contextmanager
def trips(engine: aiouow.Engine) -> Iterator[Trips]:
    out = Trips(engine)
    with capture_sql(engine) as log:
        start = engine.round_trips
        yield out
        out.n = engine.round_trips - start
    out.words = [r.split()[0].upper() for r in log.records if not r.startswith("a pooled connection")]


@pytest.fixture
async def account(db: aiouow.Engine) -> AsyncIterator[None]:
    async with AsyncSession(db) as s:
        s.add(Account(code="a", balance=10))
        await s.commit()
    yield


async def _balances(engine: aiouow.Engine) -> dict[str, int]:
    async with AsyncSession(engine) as s:
        return {a.code: a.balance for a in (await s.scalars(select(Account).order_by(Account.code))).all()}


# -- one statement: one round trip ------------------------------------------------------------

async def test_add_one_and_commit_is_one_autocommitted_insert(db: aiouow.Engine) -> None:
    async with AsyncSession(db) as s:
        s.add(User(name="u"))
        with trips(db) as t:
            await s.commit()
        t.expect("INSERT")
        assert s.in_transaction() is False
    async with AsyncSession(db) as s:
        assert [u.name for u in (await s.scalars(select(User))).all()] == ["u"]
    assert db.pool.checked_out == 0


async def test_get_change_commit_is_select_and_update(db: aiouow.Engine, account: None) -> None:
    async with AsyncSession(db) as s:
        with trips(db) as t:
            a = await s.get(Account, "a")
            assert a is not None
            a.balance = 11
            await s.commit()
        t.expect("SELECT", "UPDATE")
    assert await _balances(db) == {"a": 11}


async def test_get_delete_commit_is_select_and_delete(db: aiouow.Engine, account: None) -> None:
    async with AsyncSession(db) as s:
        with trips(db) as t:
            a = await s.get(Account, "a")
            await s.delete(a)
            await s.commit()
        t.expect("SELECT", "DELETE")
    assert await _balances(db) == {}


async def test_delete_of_a_loaded_object_is_one_delete(db: aiouow.Engine, account: None) -> None:
    async with AsyncSession(db, expire_on_commit=False) as s:
        a = await s.get(Account, "a")
        await s.commit()  # nothing to write: the read's transaction had nothing to end
        with trips(db) as t:
            await s.delete(a)
            await s.commit()
        t.expect("DELETE")
    assert await _balances(db) == {}


async def test_reads_alone_send_no_begin_or_commit(db: aiouow.Engine, account: None) -> None:
    async with AsyncSession(db) as s:
        with trips(db) as t:
            assert (await s.get(Account, "a")) is not None
            assert await s.scalar(select(func.count(Account.code))) == 1
            await s.commit()
        t.expect("SELECT", "SELECT")


async def test_a_stale_single_update_raises_and_writes_nothing(db: aiouow.Engine, account: None) -> None:
    async with AsyncSession(db) as s:
        a = await s.get(Account, "a")
        assert a is not None
        async with AsyncSession(db) as other:  # another transaction bumps the version meanwhile
            b = await other.get(Account, "a")
            assert b is not None
            b.balance = 20
            await other.commit()
        a.balance = 30
        with pytest.raises(exc.StaleDataError):
            await s.commit()
        with pytest.raises(exc.PendingRollbackError):
            await s.execute(select(Account))
        await s.rollback()
    assert await _balances(db) == {"a": 20}


# -- several statements, or a flush before commit: in a transaction ---------------------------

async def test_a_three_statement_flush_stays_in_a_transaction(db: aiouow.Engine) -> None:
    async with AsyncSession(db) as s:
        s.add_all([Account(code="x"), User(name="u")])
        await s.flush()
        await s.commit()
        s.add_all([Account(code="y"), Account(code="z", balance=5), User(name="v")])
        with trips(db) as t:
            await s.commit()
        t.expect("BEGIN", "INSERT", "INSERT", "COMMIT")  # the two accounts in one statement
    async with AsyncSession(db) as s:
        assert await s.scalar(select(func.count(User.id))) == 2
    assert await _balances(db) == {"x": 0, "y": 0, "z": 5}


async def test_three_tables_three_statements(db: aiouow.Engine, account: None) -> None:
    async with AsyncSession(db) as s:
        a = await s.get(Account, "a")
        assert a is not None
        with trips(db) as t:
            a.balance = 1
            s.add(User(name="u"))
            s.add(Account(code="b"))
            await s.commit()
        t.expect("BEGIN", "INSERT", "UPDATE", "INSERT", "COMMIT")  # tables in dependency order


async def test_flush_then_commit_stays_transactional(db: aiouow.Engine) -> None:
    async with AsyncSession(db) as s:
        s.add(Account(code="f"))
        with trips(db) as t:
            await s.flush()
            await s.commit()
        t.expect("BEGIN", "INSERT", "COMMIT")
        # and a flush can still be rolled back
        s.add(Account(code="g"))
        await s.flush()
        await s.rollback()
    assert await _balances(db) == {"f": 0}


# -- failure of the autocommitted statement -----------------------------------------------------

async def test_a_failed_autocommitted_insert_needs_rollback_and_writes_nothing(db: aiouow.Engine,
                                                                                account: None) -> None:
    async with AsyncSession(db) as s:
        s.add(Account(code="a", balance=99))  # the key is taken
        with trips(db) as t:
            with pytest.raises(exc.IntegrityError, match="accounts"):
                await s.commit()
        t.expect("INSERT")  # nothing began, so nothing to roll back on the server
        assert not s.is_active
        with pytest.raises(exc.PendingRollbackError):
            await s.execute(select(Account))
        with pytest.raises(exc.PendingRollbackError):
            await s.commit()
        await s.rollback()
        assert s.is_active and not s.new  # the pending object was expunged
        s.add(Account(code="b", balance=2))  # the next transaction works
        await s.commit()
    assert await _balances(db) == {"a": 10, "b": 2}
    assert db.pool.checked_out == 0


# -- where BEGIN still comes first ------------------------------------------------------------

async def test_savepoint_begins_first(db: aiouow.Engine, account: None) -> None:
    async with AsyncSession(db) as s:
        with trips(db) as t:
            async with s.begin_nested():
                a = await s.get(Account, "a")
                assert a is not None
                a.balance = 12
            await s.commit()
        t.expect("BEGIN", "SAVEPOINT", "SELECT", "UPDATE", "RELEASE", "COMMIT")
    assert await _balances(db) == {"a": 12}


@pytest.mark.parametrize("level", ["SERIALIZABLE", "REPEATABLE READ"])
async def test_other_isolation_level_begins_first(db: aiouow.Engine, account: None, level: str) -> None:
    if level == "REPEATABLE READ" and db.dialect.name == "sqlite":
        pytest.skip("SQLite has READ COMMITTED and SERIALIZABLE only")
    async with AsyncSession(db, isolation_level=level) as s:
        with trips(db) as t:
            a = await s.get(Account, "a")
            assert a is not None
            a.balance = 13
            await s.commit()
        t.expect("BEGIN", "SELECT", "UPDATE", "COMMIT")
        s.add(Account(code="b"))
        with trips(db) as t:
            await s.commit()
        t.expect("BEGIN", "INSERT", "COMMIT")


async def test_explicit_read_committed_is_the_default(db: aiouow.Engine, account: None) -> None:
    async with AsyncSession(db, isolation_level="READ COMMITTED") as s:
        with trips(db) as t:
            a = await s.get(Account, "a")
            assert a is not None
            a.balance = 13
            await s.commit()
        t.expect("SELECT", "UPDATE")


async def test_with_for_update_begins_first(db: aiouow.Engine, account: None) -> None:
    async with AsyncSession(db) as s:
        with trips(db) as t:
            a = await s.get(Account, "a", with_for_update=True)
            assert a is not None
            a.balance = 14
            await s.commit()
        t.expect("BEGIN", "SELECT", "UPDATE", "COMMIT")


async def test_text_begins_first(db: aiouow.Engine) -> None:
    async with AsyncSession(db) as s:
        with trips(db) as t:
            assert (await s.execute(text("SELECT 1 AS one"))).scalar_one() == 1
            s.add(Account(code="t"))
            await s.commit()
        t.expect("BEGIN", "SELECT", "INSERT", "COMMIT")


async def test_a_select_calling_a_function_outside_the_pure_ones_begins_first(db: aiouow.Engine) -> None:
    now = "now" if db.dialect.name == "postgresql" else "random"
    async with AsyncSession(db) as s:
        with trips(db) as t:
            await s.scalar(select(getattr(func, now)()))
            await s.scalar(select(func.lower("A")))  # inside the transaction now
            await s.commit()
        # SQLite: the transaction begun is one that has not written, so its reads run on readers
        t.expect("BEGIN", "SELECT", "SELECT", "COMMIT", sqlite=2)


async def test_session_connection_begins_first(db: aiouow.Engine) -> None:
    async with AsyncSession(db) as s:
        with trips(db) as t:
            conn = await s.connection()
            await conn.execute(select(func.count(Account.code)))
            s.add(Account(code="c"))
            await s.commit()
        t.expect("BEGIN", "SELECT", "INSERT", "COMMIT")


async def test_always_begin_engine(db: aiouow.Engine, account: None) -> None:
    eng = create_engine(db.url.raw, always_begin=True)
    try:
        assert eng.always_begin
        async with AsyncSession(eng) as s:
            s.add(Account(code="b"))
            with trips(eng) as t:
                await s.commit()
            t.expect("BEGIN", "INSERT", "COMMIT")
            with trips(eng) as t:
                a = await s.get(Account, "a")
                assert a is not None
                a.balance = 15
                await s.commit()
            t.expect("BEGIN", "SELECT", "UPDATE", "COMMIT")
    finally:
        await eng.dispose()
    with pytest.raises(exc.ArgumentError, match="always_begin"):
        create_engine(db.url.raw, always_begin=1)  # type: ignore[arg-type]


async def test_core_connection_reads_then_writes(db: aiouow.Engine) -> None:
    async with db.connect() as conn:
        with trips(db) as t:
            await conn.execute(select(func.count(Account.code)))
            assert conn.in_transaction()  # begun, in aiouow's sense: its BEGIN is not sent yet
            await conn.execute(aiouow.insert(Account).values(code="k", balance=1, version=1))
            await conn.commit()
        t.expect("SELECT", "BEGIN", "INSERT", "COMMIT")
    assert await _balances(db) == {"k": 1}


# -- events -------------------------------------------------------------------------------------

async def test_events_fire_around_an_autocommitted_statement(db: aiouow.Engine) -> None:
    Session = sessionmaker(db)
    seen: list[str] = []
    events.listen(Session, "before_flush", lambda s, ctx: seen.append("before_flush"))
    events.listen(Session, "after_commit", lambda s: seen.append("after_commit"))
    after_insert = events.listens_for(Account, "after_insert")(
        lambda m, c, obj: seen.append(f"after_insert {obj.code}"))
    try:
        async with Session() as s:
            s.add(Account(code="e"))
            with trips(db) as t:
                await s.commit()
            t.expect("INSERT")
        assert seen == ["before_flush", "after_insert e", "after_commit"]
    finally:
        events.remove(Account, "after_insert", after_insert)


async def test_after_begin_listeners_get_a_begun_transaction(db: aiouow.Engine) -> None:
    Session = sessionmaker(db)
    begun: list[Any] = []

    async def after_begin(session: AsyncSession, connection: aiouow.Connection) -> None:
        begun.append(connection)

    events.listen(Session, "after_begin", after_begin)
    async with Session() as s:
        s.add(Account(code="b"))
        with trips(db) as t:
            await s.commit()
        t.expect("BEGIN", "INSERT", "COMMIT")
    assert len(begun) == 1


async def test_after_flush_listener_keeps_the_transaction(db: aiouow.Engine) -> None:
    Session = sessionmaker(db)

    async def audit(session: AsyncSession, ctx: Any) -> None:
        for obj in ctx.inserted:
            if isinstance(obj, Account) and obj.code != "audit":
                await session.execute(aiouow.insert(Account).values(code="audit", balance=0, version=1))

    events.listen(Session, "after_flush", audit)
    async with Session() as s:
        s.add(Account(code="x"))
        with trips(db) as t:
            await s.commit()
        t.expect("BEGIN", "INSERT", "INSERT", "COMMIT")
    assert await _balances(db) == {"audit": 0, "x": 0}


# -- the database ends as a transactional run leaves it -------------------------------------------

_OPS = ("add", "change", "delete", "get_change", "flush_add")


async def _apply(engine: aiouow.Engine, ops: list[tuple[str, str, int]]) -> tuple[dict[str, int], list[str]]:
    """Each op in a session of its own, committed; the accounts left and each op's outcome."""
    outcomes = []
    for op, code, value in ops:
        async with AsyncSession(engine) as s:
            try:
                if op == "add":
                    s.add(Account(code=code, balance=value))
                elif op == "flush_add":
                    s.add(Account(code=code, balance=value))
                    await s.flush()
                    s.add(Account(code=code + "2", balance=value))
                else:
                    a = await s.get(Account, code)
                    if a is None:
                        outcomes.append("missing")
                        continue
                    if op == "delete":
                        await s.delete(a)
                    else:
                        a.balance = value
                await s.commit()
                outcomes.append("ok")
            except exc.IntegrityError:
                outcomes.append("integrity")
                await s.rollback()
    return await _balances(engine), outcomes


async def test_random_small_transactions_match_a_transactional_run(db: aiouow.Engine) -> None:
    """Seeded random sequences of one-op transactions (duplicate keys included) leave the same
    rows, with the same outcome per op, as an engine that always begins, in fewer round trips."""
    baseline = create_engine(db.url.raw, always_begin=True)
    rng = random.Random(16)
    fewer = 0
    try:
        for _ in range(30):
            ops = [(rng.choice(_OPS), rng.choice("abc"), rng.randrange(10)) for _ in range(rng.randint(1, 8))]
            runs = []
            for engine in (db, baseline):
                async with engine.begin() as conn:
                    await conn.exec_driver_sql('DELETE FROM "accounts"')
                with trips(engine) as t:
                    result = await _apply(engine, ops)
                runs.append((result, t.n))
            (got, fast), (want, slow) = runs
            assert got == want, ops
            assert fast <= slow, ops
            fewer += fast < slow
    finally:
        await baseline.dispose()
    assert fewer > 20
