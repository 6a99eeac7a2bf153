"""The session's transaction state machine (``aiouow/session/levels.py``) under random use.

Hypothesis drives sequences of session operations (add, flush, commit, rollback, SAVEPOINTs
committed and rolled back, flushes failing on a unique violation, COMMITs failing on a deferred
foreign key, close, execute) against the real database.  A recorder on ``levels.observer`` sees
every transition made; the test checks that each is in the table, that the session's state after
each operation is the last one recorded (no write bypassed ``transition()``), and that the session
is consistent between operations and after ``close()``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from aiouow import AsyncSession, Engine, MetaData, Model, column, exc, select
from aiouow.session import NestedTransaction, levels
from aiouow.session.levels import ALLOWED, TxState


class SmBase(Model):
    metadata = MetaData()


class SmItem(SmBase):
    __tablename__ = "sm_items"
    id: int = column(primary_key=True)
    name: str = column(unique=True)
    #: references sm_items.id through a DEFERRABLE INITIALLY DEFERRED constraint made by the DDL
    #: below (not declared here, so the flush does not order rows by it): a dangling value fails
    #: at COMMIT, not at the INSERT
    ref_id: int | None = column(default=None)


DDL = ("CREATE TABLE sm_items (id INTEGER PRIMARY KEY, name VARCHAR(20) NOT NULL UNIQUE, "
       "ref_id INTEGER REFERENCES sm_items (id) DEFERRABLE INITIALLY DEFERRED)")


@pytest.fixture(scope="module")
async def sm_schema(engine: Engine) -> AsyncIterator[Engine]:
    async with engine.begin() as conn:
        await conn.exec_driver_sql("DROP TABLE IF EXISTS sm_items")
        await conn.exec_driver_sql(DDL)
    yield engine
    async with engine.begin() as conn:
        await conn.exec_driver_sql("DROP TABLE IF EXISTS sm_items")


@pytest.fixture
async def smdb(sm_schema: Engine) -> Engine:
    async with sm_schema.begin() as conn:
        await conn.exec_driver_sql("DELETE FROM sm_items")
    return sm_schema


class Recorder:
    def __init__(self) -> None:
        self.moves: list[tuple[TxState, TxState]] = []

    def __call__(self, old: TxState, new: TxState) -> None:
        self.moves.append((old, new))

    def state(self) -> TxState:
        return self.moves[-1][1] if self.moves else TxState.IDLE


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    assert levels.observer is None
    levels.observer = rec
    try:
        yield rec
    finally:
        levels.observer = None


OPS = ("add", "add_clash", "add_dangling", "flush", "commit", "rollback", "begin", "begin_nested",
       "nested_commit", "nested_rollback", "execute", "close")
#: SAVEPOINTs and failures more often than the rest: the interesting moves need several in a row
operations = st.lists(st.sampled_from(OPS + ("begin_nested", "add_clash", "nested_rollback", "flush")),
                      max_size=20)
EXAMPLES = int(os.environ.get("AIOUOW_STATE_MACHINE_EXAMPLES", "40"))


def check_consistent(s: AsyncSession, rec: Recorder) -> None:
    state = s._state
    assert state is rec.state(), f"the state was written without transition(): {state} after {rec.moves}"
    assert state is not TxState.COMMITTING, "commit() returned (or raised) leaving the session committing"
    assert s.in_transaction() == (state is not TxState.IDLE)
    assert bool(s._levels) == (state is not TxState.IDLE), (state, s._levels)
    assert (s._failure is not None) == (state is TxState.FAILED)
    assert s.is_active == (state is not TxState.FAILED)
    assert all(not level.closed for level in s._levels)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
@example(ops=["begin_nested", "add_clash", "flush", "nested_rollback", "commit"])
@example(ops=["add_dangling", "commit", "execute", "rollback", "add", "commit"])
@example(ops=["begin", "begin_nested", "add", "begin_nested", "add_clash", "nested_commit", "nested_rollback",
              "nested_rollback", "execute", "close"])
async def test_random_operation_sequences(smdb: Engine, recorder: Recorder, ops: list[str]) -> None:
    async with smdb.begin() as conn:
        await conn.exec_driver_sql("DELETE FROM sm_items")
    recorder.moves.clear()
    s = AsyncSession(smdb)
    nested: list[NestedTransaction] = []
    n = 0
    try:
        for op in ops:
            n += 1
            try:
                if op == "add":
                    s.add(SmItem(id=n, name=f"n{n}"))
                elif op == "add_clash":  # two new rows with one name: the flush fails
                    s.add_all([SmItem(id=100 + n, name="same"), SmItem(id=200 + n, name="same")])
                elif op == "add_dangling":  # flushes fine, fails at COMMIT
                    s.add(SmItem(id=300 + n, name=f"d{n}", ref_id=10_000))
                elif op == "flush":
                    await s.flush()
                elif op == "commit":
                    await s.commit()
                elif op == "rollback":
                    await s.rollback()
                elif op == "begin":
                    s.begin()
                elif op == "begin_nested":
                    nested.append(await s.begin_nested())
                elif op in ("nested_commit", "nested_rollback"):
                    if nested:
                        tx = nested.pop()
                        await (tx.commit() if op == "nested_commit" else tx.rollback())
                elif op == "execute":
                    (await s.execute(select(SmItem.id))).all()
                else:
                    await s.close()
            except (exc.IntegrityError, exc.PendingRollbackError):
                pass
            except exc.InvalidRequestError as err:
                # begin() with a transaction begun; a SAVEPOINT already closed by an outer rollback,
                # or not innermost
                assert "illegal session transaction transition" not in str(err)
            if s._state is TxState.IDLE:
                nested.clear()
            check_consistent(s, recorder)
    finally:
        await s.close()  # also when a check failed: the next example needs the SQLite writer
    check_consistent(s, recorder)
    assert s._state is TxState.IDLE and s._conn is None and not s._levels
    assert len(s.identity_map) == 0 and not s.new
    assert smdb.pool.checked_out == 0
    for move in recorder.moves:
        old, new = move
        assert new in ALLOWED[old], move
    # the session works again after close()
    s.add(SmItem(id=10_001, name="after"))
    await s.commit()
    assert (await s.get(SmItem, 10_001)) is not None
    await s.close()


async def test_the_moves_the_code_needs_are_made(smdb: Engine, recorder: Recorder) -> None:
    """The less common moves of the table, each reached on purpose."""
    async with AsyncSession(smdb) as s:
        # two rows: a commit of one statement would send it autocommitted, and the deferred
        # constraint would fail that statement (in the flush), not the COMMIT
        s.add_all([SmItem(id=1, name="a", ref_id=10_000), SmItem(id=5, name="e")])
        with pytest.raises(exc.IntegrityError):
            await s.commit()
        assert (TxState.COMMITTING, TxState.FAILED) in recorder.moves
        with pytest.raises(exc.PendingRollbackError):
            await s.execute(select(SmItem.id))
        await s.rollback()
        assert recorder.moves[-1] == (TxState.FAILED, TxState.IDLE)

        recorder.moves.clear()
        s.add(SmItem(id=2, name="b"))
        sp = await s.begin_nested()
        s.add_all([SmItem(id=3, name="same"), SmItem(id=4, name="same")])
        with pytest.raises(exc.IntegrityError):
            await s.flush()
        assert s._state is TxState.FAILED
        await sp.rollback()  # the failure went with the SAVEPOINT
        assert recorder.moves[-1] == (TxState.FAILED, TxState.ACTIVE)
        await s.commit()
        assert recorder.moves[-2:] == [(TxState.ACTIVE, TxState.COMMITTING), (TxState.COMMITTING, TxState.IDLE)]
    async with AsyncSession(smdb) as s:
        assert [i.name for i in (await s.scalars(select(SmItem).order_by(SmItem.id))).all()] == ["b"]


def test_an_illegal_move_raises() -> None:
    s = AsyncSession()
    with pytest.raises(exc.InvalidRequestError, match="illegal session transaction transition idle -> committing"):
        levels.transition(s, TxState.COMMITTING)
    assert s._state is TxState.IDLE


def test_the_table() -> None:
    """The moves of the module docstring's diagram, and no other."""
    S = TxState
    assert {(old, new) for old, news in ALLOWED.items() for new in news} == {
        (S.IDLE, S.ACTIVE), (S.IDLE, S.IDLE),
        (S.ACTIVE, S.COMMITTING), (S.ACTIVE, S.FAILED), (S.ACTIVE, S.IDLE),
        (S.COMMITTING, S.IDLE), (S.COMMITTING, S.FAILED),
        (S.FAILED, S.ACTIVE), (S.FAILED, S.IDLE),
    }
