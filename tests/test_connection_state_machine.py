"""Random sequences of core ``Connection`` operations, checked against ``engine.connection.MOVES``.

Each example plays a list of operations (begin, statements, a failing statement, commit,
rollback, SAVEPOINT begin/release/rollback, close, a statement cancelled mid-flight, and on
PostgreSQL the backend terminated from outside) on one connection of the real database.
Every move the connection makes is recorded through ``engine.connection.transition_hook`` and
must be in the table; after every operation the state must be the one a small model of
the documented behaviour predicts, and the misuse errors (``InvalidRequestError``,
``PendingRollbackError``) must come exactly when the model says.

Hypothesis runs synchronously, so examples run in a worker thread and hand each one to the
test's event loop.  ``AIOUOW_HYPOTHESIS_EXAMPLES`` raises the example count (default 40).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from aiouow import Engine, exc, text
from aiouow.engine import connection as engine_connection
from aiouow.engine.connection import MOVES, Connection, ConnState
from aiouow.engine.transaction import Transaction

from .test_concurrency import slow_statement

EXAMPLES = int(os.environ.get("AIOUOW_HYPOTHESIS_EXAMPLES", "40"))

IDLE, PENDING, BEGUN, LOST, CLOSED = (ConnState.IDLE, ConnState.PENDING, ConnState.BEGUN, ConnState.LOST,
                                      ConnState.CLOSED)

OPS = ["begin", "execute", "fail", "commit", "rollback", "sp_begin", "sp_release", "sp_rollback",
       "close", "new", "cancel", "terminate"]


class Player:
    """One example: a connection, the model's view of it, and the moves it made."""

    def __init__(self, engine: Engine, admin: Connection | None) -> None:
        self.engine = engine
        self.pg = engine.dialect.name == "postgresql"
        self.admin = admin
        self.moves: list[tuple[ConnState, ConnState]] = []
        self.conn = engine.connect()
        self.expected = IDLE
        self.savepoints: list[Transaction] = []
        self.aborted = False  # PostgreSQL: a statement failed in the transaction
        self.broken = False  # the backend was terminated

    def record(self, conn: Connection, old: ConnState, new: ConnState) -> None:
        if conn is self.conn:
            self.moves.append((old, new))

    @property
    def clean(self) -> bool:
        return not self.aborted and not self.broken

    def misuse(self) -> type[Exception] | None:
        """The error a statement gets in the expected state (None: it runs)."""
        if self.expected is LOST:
            return exc.PendingRollbackError
        if self.expected is CLOSED:
            return exc.InvalidRequestError
        return None

    async def statement(self, fn: Any, *, must_fail: bool = False) -> None:
        refused = self.misuse()
        try:
            await fn()
        except (exc.PendingRollbackError, exc.InvalidRequestError) as err:
            assert refused is not None and isinstance(err, refused), f"unexpected {err!r} in {self.expected}"
            return
        except exc.DBAPIError as err:
            assert refused is None, f"expected {refused} in {self.expected}"
            assert must_fail or not self.clean, "a statement failed on a healthy connection"
            self.failed(err)
            return
        assert refused is None, f"expected {refused} in {self.expected}"
        assert not must_fail, "the failing statement ran"
        self.expected = BEGUN

    def failed(self, err: exc.DBAPIError) -> None:
        """A statement failed: on a terminated backend the connection is given up and its
        transaction LOST (issue 13); otherwise the transaction goes on (aborted on PostgreSQL)."""
        if self.broken and isinstance(err, exc.OperationalError):
            self.expected = LOST
            self.tx_over()
            self.broken = False  # the dead driver connection is gone; the next one is new
            return
        self.expected = BEGUN
        if self.pg:
            self.aborted = True

    def tx_over(self) -> None:
        self.savepoints.clear()
        self.aborted = False

    async def play(self, op: str) -> None:
        conn = self.conn
        if op == "begin":
            try:
                conn.begin()
            except exc.PendingRollbackError:
                assert self.expected is LOST
            except exc.InvalidRequestError:
                assert self.expected in (PENDING, BEGUN, CLOSED)
            else:
                assert self.expected is IDLE
                self.expected = PENDING
        elif op == "execute":
            await self.statement(lambda: conn.execute(text("SELECT 1")))
        elif op == "fail":
            await self.statement(lambda: conn.execute(text("SELECT * FROM t11_no_such_table")), must_fail=True)
        elif op == "commit":
            open_savepoints = bool(conn._savepoints)
            try:
                await conn.commit()
            except exc.PendingRollbackError:
                assert self.expected is LOST
                return
            except exc.InvalidRequestError:
                assert open_savepoints and self.expected is not LOST
                return
            except exc.DBAPIError:
                assert not self.clean, "COMMIT failed on a healthy connection"
                self.broken = conn._dc is not None and self.broken  # a lost one was given up
            assert self.expected is not LOST and not open_savepoints
            if self.expected is not CLOSED:
                self.expected = IDLE
                self.tx_over()
        elif op == "rollback":
            try:
                await conn.rollback()
            except exc.DBAPIError:
                assert not self.clean, "ROLLBACK failed on a healthy connection"
            if self.expected is not CLOSED:
                self.expected = IDLE
                self.tx_over()
        elif op == "sp_begin":
            sp: list[Transaction] = []

            async def start() -> None:
                sp.append(await conn.begin_nested())

            await self.statement(start)
            self.savepoints.extend(sp)
        elif op == "sp_release" and self.savepoints:
            top = self.savepoints.pop()
            await self.statement(top.commit)
        elif op == "sp_rollback" and self.savepoints:
            top = self.savepoints.pop()
            if self.expected is LOST:
                await top.rollback()  # the whole transaction is gone already: nothing to do
                return
            await self.statement(top.rollback)
        elif op == "close":
            await conn.close()
            self.expected = CLOSED
            self.tx_over()
        elif op == "new":
            await conn.close()
            self.conn = self.engine.connect()
            self.expected = IDLE
            self.tx_over()
            self.broken = False
            self.moves.clear()  # the new connection's moves start here
        elif op == "cancel":
            refused = self.misuse()
            task = asyncio.ensure_future(conn.execute(slow_statement(self.engine, 5)))
            # cancel once the statement is at the driver: a cancellation while the pool is still
            # connecting (slow on a loaded machine) is a different case, which leaves the connection IDLE
            for _ in range(500):
                if conn._dc is not None or task.done():
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                assert refused is None, "a refused statement was cancelled instead of refused"
                self.expected = LOST
                self.tx_over()
            except (exc.PendingRollbackError, exc.InvalidRequestError) as err:
                assert refused is not None and isinstance(err, refused), f"unexpected {err!r}"
            except exc.DBAPIError as err:
                assert not self.clean
                self.failed(err)
            else:
                raise AssertionError("the slow statement finished within 50 ms")
        elif op == "terminate" and self.pg and self.admin is not None and conn._dc is not None:
            pid = conn._dc._c.get_server_pid()  # type: ignore[attr-defined]
            await self.admin.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
            await self.admin.commit()
            self.broken = True
            self.aborted = True

    def check(self, op: str) -> None:
        conn = self.conn
        illegal = [m for m in self.moves if m[1] not in MOVES[m[0]]]
        assert not illegal, f"moves outside the table after {op}: {illegal}"
        assert conn._state is self.expected, f"after {op}: {conn._state} but the model says {self.expected}"
        if self.moves:
            assert self.moves[-1][1] is conn._state, "the last recorded move does not end in the state"
        assert conn.in_transaction() == (conn._state in (PENDING, BEGUN))
        assert conn.closed == (conn._state is CLOSED)
        if conn._state in (LOST, CLOSED):
            assert conn._dc is None, "a lost or closed connection still holds a driver connection"
        dc = conn._dc
        if conn._state is IDLE and dc is not None and not self.broken:
            assert not dc.in_transaction, "the connection is IDLE but the driver is in a transaction"
        if self.pg and conn._state is BEGUN and dc is not None and not self.broken:
            assert dc.in_transaction, "the connection is BEGUN but the server has no transaction"


@pytest.fixture
def moves_hook() -> Any:
    players: list[Player] = []

    def hook(conn: Connection, old: ConnState, new: ConnState) -> None:
        for p in players:
            p.record(conn, old, new)

    engine_connection.transition_hook = hook
    try:
        yield players
    finally:
        engine_connection.transition_hook = None


async def test_connection_moves_stay_in_the_table(db: Engine, moves_hook: list[Player]) -> None:
    loop = asyncio.get_running_loop()
    admin = db.connect() if db.dialect.name == "postgresql" else None
    seen: set[tuple[ConnState, ConnState]] = set()

    async def run_example(ops: list[str]) -> None:
        player = Player(db, admin)
        moves_hook.append(player)
        try:
            for op in ops:
                await player.play(op)
                player.check(op)
                seen.update(player.moves)
        finally:
            moves_hook.remove(player)
            await player.conn.close()

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.lists(st.sampled_from(OPS), min_size=1, max_size=25))
    # every move of the table at least once, whatever the random draws
    @example(["begin", "execute", "commit", "execute", "rollback", "begin", "rollback"])
    @example(["execute", "cancel", "execute", "begin", "rollback", "execute", "close", "begin", "rollback"])
    @example(["sp_begin", "fail", "sp_rollback", "execute", "sp_begin", "sp_release", "commit", "cancel", "close"])
    @example(["begin", "terminate", "execute", "rollback", "execute", "commit", "new", "execute", "commit"])
    @example(["execute", "commit", "close"])
    # a statement on a terminated backend outside a transaction: its BEGIN fails, none began
    @example(["execute", "commit", "terminate", "execute", "execute", "rollback"])
    @example(["execute", "commit", "terminate", "cancel"])
    def walk(ops: list[str]) -> None:
        asyncio.run_coroutine_threadsafe(run_example(ops), loop).result(timeout=120)

    try:
        await asyncio.to_thread(walk)
    finally:
        if admin is not None:
            await admin.close()
    # the walk exercised the table, not a corner of it
    assert {(IDLE, PENDING), (PENDING, BEGUN), (PENDING, IDLE), (IDLE, BEGUN), (BEGUN, IDLE), (IDLE, LOST),
            (LOST, IDLE), (LOST, CLOSED), (IDLE, CLOSED), (BEGUN, CLOSED)} <= seen


@pytest.mark.parametrize("op", ["begin", "begin_nested"])
async def test_misuse_raises_the_error_it_always_raised(db: Engine, op: str) -> None:
    """Moves outside the table raise: a second begin(), and begin() on a closed connection."""
    conn = db.connect()
    try:
        if op == "begin":
            conn.begin()
            with pytest.raises(exc.InvalidRequestError, match="already has a transaction"):
                conn.begin()
        else:
            conn.begin_nested()  # joins or starts the transaction: never a misuse while open
            assert conn.in_transaction()
    finally:
        await conn.close()
    with pytest.raises(exc.InvalidRequestError, match="closed"):
        getattr(conn, op)()
    assert conn._state is CLOSED
