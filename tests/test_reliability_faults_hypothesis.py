"""Reliability, property-based: random session work with faults injected, checked against a plain model.

A hypothesis state machine plays random sequences of add, modify, delete, flush, commit,
rollback, SAVEPOINT (begin, release, roll back), expire, refresh, get, merge, expunge and queries
on one session, and injects faults at random points of flushes, commits, queries, begin_nested()
and SAVEPOINT releases:

- a real constraint violation (an added row takes the unique ``code`` of a row that exists);
- a driver error raised at the k-th driver call of the operation, before that call reaches the
  driver (the driver's own exception classes: asyncpg's ``SerializationError`` /
  ``DeadlockDetectedError`` / ``QueryCanceledError``, sqlite3's ``OperationalError``);
- a real cancellation: at the k-th driver call the operation's task is cancelled and the call
  then runs, so ``CancelledError`` lands inside the driver's await (mid-flush, or mid-COMMIT,
  whose outcome is then unknown: the database must hold either all of the transaction or none).

Nothing is mocked: every statement that is not faulted runs on the real database.  The faults
come from ``fault_support.FaultInjector``, which wraps the statement methods of the dialect's
driver connection class for the duration of the test and acts only on the operation's own task.

The model is what the database must hold once committed: ``committed`` (key -> value), and
``view``, what a commit would make of it now.  After every step the committed rows, read with
raw SQL on a connection of their own, must equal ``committed`` (nothing half-written, ever),
and the engine's pool must have no connection checked out beyond the session's own.  Operations
other than flush and commit run under ``no_autoflush``, so the model knows what is flushed.

Hypothesis is synchronous: the machine runs in a worker thread and hands each operation to the
test's event loop, as ``test_session_hypothesis.py`` does.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from aiouow import AsyncSession, Engine, MetaData, Model, column, exc, inspect, select

from .fault_support import DRIVER_ERRORS, Fault, FaultInjector
from .reliability import ReliabilityLog

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

EXAMPLES = int(os.environ.get("AIOUOW_HYPOTHESIS_EXAMPLES", "200"))
STEPS = 25


class FaultBase(Model):
    metadata = MetaData()


class FItem(FaultBase):
    __tablename__ = "rl_fault_items"
    key: str = column(primary_key=True)
    code: str = column(unique=True)  # always "c-" + key, unless a fault wants a clash
    value: int = column()


def code_of(key: str) -> str:
    return f"c-{key}"


# -- the model ---------------------------------------------------------------------------------
@dataclass(eq=False)
class Entry:
    obj: FItem
    key: str
    #: pending | persistent | marked (delete() not flushed) | deleted (flushed delete)
    status: str
    #: the SAVEPOINT depth it was added at, while its insert is not committed (None: loaded)
    added_depth: int | None = None
    dirty: bool = False  # a value set since the last flush


@dataclass
class Snapshot:
    view: dict[str, int]
    status: dict[Entry, str]  # held entries, by identity


Stats = Counter[str]


def logged(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Record the step in the machine's history, and show the history if it fails (a failure that
    hypothesis cannot replay, as a cancellation that lands differently, would not show the steps)."""
    import functools

    @functools.wraps(fn)
    def step(self: FaultMachine, **kw: Any) -> Any:
        if not fn.__name__.startswith(("nothing_", "no_", "objects_")):
            self.history.append(f"{fn.__name__}({', '.join(f'{k}={v!r}' for k, v in kw.items())})")
        t0 = time.perf_counter()
        try:
            return fn(self, **kw)
        except BaseException as err:
            if not getattr(err, "_shown", False):
                err._shown = True  # type: ignore[attr-defined]
                err.add_note("steps of this run:\n  " + "\n  ".join(self.history))
            raise
        finally:
            took = time.perf_counter() - t0
            if took > 0.5:
                self.stats[f"slow step: {fn.__name__}"] += 1
                self.history.append(f"  (took {took:.2f} s)")

    return step


class FaultMachine(RuleBasedStateMachine):
    engine: Engine
    loop: asyncio.AbstractEventLoop
    injector: FaultInjector
    stats: Stats

    def __init__(self) -> None:
        super().__init__()
        self.stats["examples"] += 1
        self.pg = self.engine.dialect.name == "postgresql"
        self.run(self._empty())
        self.session = AsyncSession(self.engine)
        self.entries: list[Entry] = []
        self.committed: dict[str, int] = {}
        self.view: dict[str, int] = {}
        self.savepoints: list[tuple[Any, Snapshot]] = []
        #: None, "savepoint" (rolled back to the innermost SAVEPOINT; its rollback recovers),
        #: or "whole" (the transaction is gone; only rollback() recovers)
        self.failed: str | None = None
        self.counter = 0
        self.history: list[str] = []

    # -- plumbing --------------------------------------------------------------------------
    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    @property
    def s(self) -> AsyncSession:
        return self.session

    async def _empty(self) -> None:
        async with self.engine.connect() as conn:
            await conn.exec_driver_sql('DELETE FROM "rl_fault_items"')
            await conn.commit()

    async def db_rows(self) -> dict[str, int]:
        async with self.engine.connect() as conn:
            rows = await conn.exec_driver_sql('SELECT "key", "code", "value" FROM "rl_fault_items"')
            out = {}
            for key, code, value in rows:
                assert code == code_of(key), f"row {key!r} has code {code!r}"
                out[key] = value
            return out

    async def write_rows(self, rows: dict[str, int]) -> None:
        async with self.engine.connect() as conn:
            await conn.exec_driver_sql('DELETE FROM "rl_fault_items"')
            marks = "$1, $2, $3" if self.pg else "?, ?, ?"
            sql = f'INSERT INTO "rl_fault_items" ("key", "code", "value") VALUES ({marks})'
            for key, value in rows.items():
                await conn.exec_driver_sql(sql, [key, code_of(key), value])
            await conn.commit()

    def teardown(self) -> None:
        self.run(self.session.close())
        assert self.engine.pool.checked_out == 0, "close() left a connection checked out"

    def new_key(self) -> str:
        self.counter += 1
        return f"k{self.counter}"

    def pick(self, i: int, pred: Callable[[Entry], bool]) -> Entry:
        cands = [e for e in self.entries if pred(e)]
        return cands[i % len(cands)]

    def has(self, pred: Callable[[Entry], bool]) -> bool:
        return any(pred(e) for e in self.entries)

    @property
    def depth(self) -> int:
        return len(self.savepoints)

    def held_keys(self) -> set[str]:
        return {e.key for e in self.entries}

    def loadable(self) -> list[str]:
        """Committed rows the transaction has not deleted, and the session holds no object of."""
        held = self.held_keys()
        return sorted(k for k in self.committed if k in self.view and k not in held)

    @staticmethod
    def live(e: Entry) -> bool:
        return e.status in ("pending", "persistent")

    @staticmethod
    def clean(e: Entry) -> bool:
        return e.status == "persistent" and not e.dirty

    # -- the model's transitions ---------------------------------------------------------------
    def model_flush(self) -> None:
        for e in self.entries:
            if e.status == "pending":
                e.status = "persistent"
            elif e.status == "marked":
                e.status = "deleted"
            e.dirty = False

    def model_commit(self) -> None:
        self.model_flush()
        self.committed = dict(self.view)
        self.entries = [e for e in self.entries if e.status != "deleted"]
        for e in self.entries:
            e.added_depth = None

    def model_rollback(self) -> None:
        self.view = dict(self.committed)
        self.entries = [e for e in self.entries if e.added_depth is None]
        for e in self.entries:
            e.status = "persistent"
            e.dirty = False
        self.savepoints.clear()
        self.failed = None

    def snapshot(self) -> Snapshot:
        return Snapshot(dict(self.view), {e: e.status for e in self.entries})

    async def faulted(self, op: Callable[[], Coroutine[Any, Any, Any]], fault: tuple[str, int, int] | None
                      ) -> tuple[BaseException | None, bool]:
        """Run ``op`` as a task, with the fault armed; (what it raised, whether the fault fired)."""
        task = asyncio.ensure_future(op())
        if fault is not None:
            kind, at, which = fault
            errors = DRIVER_ERRORS[self.engine.dialect.name]
            self.injector.arm(Fault(task, at, kind, errors[which % len(errors)] if kind == "error" else None))
        try:
            await task
            raised: BaseException | None = None
        except BaseException as err:  # noqa: BLE001 - the outcome is what is checked
            raised = err
        fired = self.injector.disarm() if fault is not None else False
        self.history.append(f"  -> raised {raised!r}, fired: {self.injector.fired[-1] if fired else None}")
        if fault is not None:
            self.stats[f"armed: {fault[0]}"] += 1
        if fired:
            self.stats[f"faults: {fault[0]}"] += 1  # type: ignore[index]
            self.stats[f"fired at: {self.injector.fired[-1][2].split(' ')[0]}"] += 1
        return raised, fired

    def session_failed(self) -> bool:
        return self.s.in_transaction() and not self.s.is_active

    def after_failure(self, raised: BaseException, fired: bool, kind: str | None) -> None:
        """The operation (a flush, or the flush of a commit) failed; note how."""
        assert self.session_failed(), f"the session is usable after {raised!r}"
        if isinstance(raised, asyncio.CancelledError):
            assert fired and kind == "cancel", f"cancelled without an injected cancellation: {raised!r}"
            self.failed = "whole"  # a cancelled statement takes the whole transaction
            return
        assert isinstance(raised, exc.DBAPIError), f"not an aiouow DBAPIError: {raised!r}"
        assert not isinstance(raised.orig, exc.AiouowError)
        if kind == "error":
            assert fired and isinstance(raised, exc.OperationalError), repr(raised)
        self.failed = "savepoint" if self.savepoints else "whole"

    # -- rules: changes in memory ----------------------------------------------------------------
    @precondition(lambda self: self.failed is None)
    @rule(value=st.integers(0, 9))
    @logged
    def add(self, value: int) -> None:
        key = self.new_key()
        obj = FItem(key=key, code=code_of(key), value=value)
        self.s.add(obj)
        self.entries.append(Entry(obj, key, "pending", added_depth=self.depth, dirty=True))
        self.view[key] = value

    @precondition(lambda self: self.failed is None and self.has(FaultMachine.live))
    @rule(i=st.integers(0, 99), value=st.integers(0, 9))
    @logged
    def modify(self, i: int, value: int) -> None:
        e = self.pick(i, self.live)
        e.obj.value = value
        e.dirty = True
        self.view[e.key] = value

    @precondition(lambda self: self.failed is None and self.has(lambda e: e.status == "persistent"))
    @rule(i=st.integers(0, 99))
    @logged
    def delete(self, i: int) -> None:
        e = self.pick(i, lambda e: e.status == "persistent")
        self.run(self.s.delete(e.obj))
        e.status = "marked"
        del self.view[e.key]

    @precondition(lambda self: self.failed is None and self.has(FaultMachine.clean))
    @rule(i=st.integers(0, 99))
    @logged
    def expire(self, i: int) -> None:
        e = self.pick(i, self.clean)
        self.s.expire(e.obj)
        assert "value" in inspect(e.obj).unloaded

    @precondition(lambda self: self.failed is None and self.has(lambda e: self.clean(e) or e.status == "pending"))
    @rule(i=st.integers(0, 99))
    @logged
    def expunge(self, i: int) -> None:
        e = self.pick(i, lambda e: self.clean(e) or e.status == "pending")
        self.s.expunge(e.obj)
        assert inspect(e.obj).detached or inspect(e.obj).transient
        self.entries.remove(e)
        if e.status == "pending":
            del self.view[e.key]  # never inserted

    # -- rules: reads --------------------------------------------------------------------------------
    @precondition(lambda self: self.failed is None and self.has(FaultMachine.clean))
    @rule(i=st.integers(0, 99))
    @logged
    def refresh(self, i: int) -> None:
        e = self.pick(i, self.clean)

        async def go() -> None:
            with self.s.no_autoflush:
                await self.s.refresh(e.obj)

        self.run(go())
        assert e.obj.value == self.view[e.key]

    @precondition(lambda self: self.failed is None and bool(self.loadable()))
    @rule(i=st.integers(0, 99))
    @logged
    def get(self, i: int) -> None:
        keys = self.loadable()
        key = keys[i % len(keys)]

        async def go() -> FItem | None:
            with self.s.no_autoflush:
                return await self.s.get(FItem, key)

        obj = self.run(go())
        assert obj is not None and obj.value == self.view[key]
        self.entries.append(Entry(obj, key, "persistent"))

    @precondition(lambda self: self.failed is None and bool(
        self.loadable() or self.has(lambda e: e.status == "persistent" and e.added_depth is None)))
    @rule(i=st.integers(0, 99), value=st.integers(0, 9))
    @logged
    def merge(self, i: int, value: int) -> None:
        keys = self.loadable() + sorted(e.key for e in self.entries
                                        if e.status == "persistent" and e.added_depth is None)
        key = keys[i % len(keys)]

        async def go() -> FItem:
            with self.s.no_autoflush:
                return await self.s.merge(FItem(key=key, code=code_of(key), value=value))

        merged = self.run(go())
        held = next((e for e in self.entries if e.key == key), None)
        if held is None:
            held = Entry(merged, key, "persistent")
            self.entries.append(held)
        assert merged is held.obj and inspect(merged).persistent
        assert merged.value == value
        held.dirty = True
        self.view[key] = value

    # -- rules: flush and commit, with faults ------------------------------------------------------
    def has_work(self) -> bool:
        return self.has(lambda e: e.status in ("pending", "marked") or e.dirty)

    at = st.integers(1, 3)  # the how-manieth driver call of the operation: BEGIN, a write, COMMIT, ...
    which = st.integers(0, 2)  # which of the backend's driver errors

    @precondition(lambda self: self.failed is None)
    @rule()
    @logged
    def flush(self) -> None:
        self.do_flush(None)

    @precondition(lambda self: self.failed is None and self.has_work())
    @rule(at=at, which=which)
    @logged
    def flush_driver_error(self, at: int, which: int) -> None:
        self.do_flush(("error", at, which))

    @precondition(lambda self: self.failed is None and self.has_work())
    @rule(at=at)
    @logged
    def flush_cancelled(self, at: int) -> None:
        self.do_flush(("cancel", at, 0))

    @precondition(lambda self: self.failed is None and not self.savepoints)
    @rule()
    @logged
    def commit(self) -> None:
        self.do_commit(None)

    @precondition(lambda self: self.failed is None and not self.savepoints and self.has_work())
    @rule(at=at, which=which)
    @logged
    def commit_driver_error(self, at: int, which: int) -> None:
        self.do_commit(("error", at, which))

    @precondition(lambda self: self.failed is None and not self.savepoints and self.has_work())
    @rule(at=st.integers(1, 4))
    @logged
    def commit_cancelled(self, at: int) -> None:
        self.do_commit(("cancel", at, 0))

    def do_flush(self, fault: tuple[str, int, int] | None) -> None:
        raised, fired = self.run(self.faulted(self.s.flush, fault))
        kind = fault[0] if fired and fault is not None else None
        if raised is None or (isinstance(raised, asyncio.CancelledError) and not self.session_failed()):
            # done (a cancellation that landed once the work was done leaves the session usable)
            self.model_flush()
            return
        self.after_failure(raised, fired, kind)

    def do_commit(self, fault: tuple[str, int, int] | None) -> None:
        raised, fired = self.run(self.faulted(self.s.commit, fault))
        kind = fault[0] if fired and fault is not None else None
        if raised is None or (isinstance(raised, asyncio.CancelledError) and not self.session_failed()):
            self.model_commit()
            self.stats["commits"] += 1
            # committed: the session gives its connection back (the invariant allows the one a
            # session in a transaction holds; after a commit it holds none)
            assert self.engine.pool.checked_out == 0, (
                f"{self.engine.pool.checked_out} connection(s) still checked out after commit()")
            self.stats["invariant checks: no connection after commit"] += 1
            return
        self.after_failure(raised, fired, kind)
        # a commit whose whole work is one statement sends it alone, autocommitted: cancelled
        # while it runs, it is a COMMIT cancelled (an injected error fires before it is sent)
        alone = fired and kind == "cancel" and self.injector.outside[-1] \
            and self.injector.fired[-1][2].split(" ")[0] in ("INSERT", "UPDATE", "DELETE")
        if not (fired and (self.injector.fired[-1][2] == "COMMIT" or alone)):
            return  # the flush failed: nothing of it applied in memory either
        self.model_flush()  # the flush went through; COMMIT failed or was cancelled
        if kind != "cancel":
            return
        if alone:
            self.stats["cancelled single autocommitted statements"] += 1
        # cancelled mid-COMMIT: all of the transaction may be committed, or nothing
        rows = self.run(self.db_rows())
        if rows == self.view and rows != self.committed:
            self.stats["cancelled commits that committed"] += 1
        else:
            assert rows == self.committed, "a cancelled commit left part of its transaction"
            self.stats["cancelled commits that rolled back"] += 1
            # Which way it goes depends on timing; the rest of the run must not (hypothesis
            # replays runs), so the database is brought to the committed outcome by hand.
            self.run(self.write_rows(self.view))
        self.resolve_committed_anyway()

    def resolve_committed_anyway(self) -> None:
        """The COMMIT went through although the session saw it cancelled: the session still
        needs rollback(), which restores its deleted objects (their rows are gone), so they leave."""
        self.run(self.s.rollback())
        for e in self.entries:
            if e.status == "deleted":
                self.s.expunge(e.obj)
        self.committed = dict(self.view)
        self.entries = [e for e in self.entries if e.added_depth is None and e.status != "deleted"]
        for e in self.entries:
            e.status, e.dirty = "persistent", False
        self.savepoints.clear()
        self.failed = None

    @precondition(lambda self: self.failed is None and not self.has_work())
    @rule(fault=st.one_of(st.none(), st.tuples(st.sampled_from(["error", "cancel"]), st.integers(1, 2), which)))
    @logged
    def query(self, fault: tuple[str, int, int] | None) -> None:
        """A query in the transaction (everything flushed, so it must see ``view``); a fault in it
        (its BEGIN, or the SELECT) fails the statement, and a cancellation the transaction."""
        got: list[dict[str, int]] = []

        async def op() -> None:
            result = await self.s.execute(select(FItem.key, FItem.value))
            got.append({k: v for k, v in result.all()})

        raised, fired = self.run(self.faulted(op, fault))
        if raised is None:
            assert got == [self.view]
            return
        assert fired and fault is not None, f"the query failed without a fault: {raised!r}"
        if fault[0] == "cancel":
            assert isinstance(raised, asyncio.CancelledError)
            assert not self.s.is_active, "a cancelled query left the session looking active"
            self.failed = "whole"
        else:
            assert isinstance(raised, exc.OperationalError), repr(raised)
            assert self.s.is_active  # a failed statement outside a flush does not fail the session

    @precondition(lambda self: self.failed is None and bool(self.view))
    @rule(i=st.integers(0, 99), at_commit=st.booleans())
    @logged
    def violation(self, i: int, at_commit: bool) -> None:
        """A new row takes the unique code of a row that exists (or is inserted by the same flush)."""
        if at_commit and self.savepoints:
            at_commit = False
        taken = sorted(self.view)[i % len(self.view)]
        key = self.new_key()
        obj = FItem(key=key, code=code_of(taken), value=0)
        self.s.add(obj)
        self.entries.append(Entry(obj, key, "pending", added_depth=self.depth, dirty=True))
        raised, _ = self.run(self.faulted(self.s.commit if at_commit else self.s.flush, None))
        assert isinstance(raised, exc.IntegrityError), f"expected IntegrityError, got {raised!r}"
        assert code_of(taken) in str(raised) or "rl_fault_items.code" in str(raised), str(raised)
        self.stats["faults: constraint violation"] += 1
        self.after_failure(raised, False, None)

    @precondition(lambda self: self.failed is not None)
    @rule()
    @logged
    def blocked(self) -> None:
        async def go() -> None:
            with pytest.raises(exc.PendingRollbackError):
                await self.s.execute(select(FItem.key))
            with pytest.raises(exc.PendingRollbackError):
                await self.s.get(FItem, "no such key")
            with pytest.raises(exc.PendingRollbackError):
                await self.s.commit()

        self.run(go())

    @rule()
    @logged
    def rollback(self) -> None:
        self.run(self.s.rollback())
        self.model_rollback()

    # -- rules: SAVEPOINTs -------------------------------------------------------------------------------
    @precondition(lambda self: self.failed is None and len(self.savepoints) < 3)
    @rule()
    @logged
    def savepoint(self) -> None:
        sp = self.run(self.s.begin_nested().__aenter__())
        self.model_flush()
        self.savepoints.append((sp, self.snapshot()))

    @precondition(lambda self: self.failed is None and len(self.savepoints) < 3)
    @rule(kind=st.sampled_from(["error", "cancel"]), at=st.integers(1, 3), which=which)
    @logged
    def savepoint_faulted(self, kind: str, at: int, which: int) -> None:
        """begin_nested() (its flush, its BEGIN, its SAVEPOINT) with a fault."""
        work = self.has_work()
        made: list[Any] = []

        async def op() -> None:
            made.append(await self.s.begin_nested().__aenter__())

        raised, fired = self.run(self.faulted(op, (kind, at, which)))
        if made and self.s.is_active:
            self.model_flush()
            self.savepoints.append((made[0], self.snapshot()))
            return
        assert raised is not None and fired, f"begin_nested() failed without a fault: {raised!r}"
        sql = self.injector.fired[-1][2]
        if sql.startswith("SAVEPOINT"):
            self.model_flush()  # the flush went through; the SAVEPOINT statement failed
            if kind == "cancel":
                assert not self.s.is_active, "a cancelled SAVEPOINT left the session looking active"
                self.failed = "whole"
            else:
                assert self.s.is_active and isinstance(raised, exc.OperationalError), repr(raised)
            return
        if not self.s.is_active:
            self.after_failure(raised, fired, kind)  # its flush failed
            return
        assert sql.startswith("BEGIN") and not work and kind == "error", (sql, raised)

    @precondition(lambda self: self.failed is None and bool(self.savepoints))
    @rule()
    @logged
    def release(self) -> None:
        sp, _ = self.savepoints[-1]
        self.run(sp.commit())
        self.release_done()

    @precondition(lambda self: self.failed is None and bool(self.savepoints))
    @rule(kind=st.sampled_from(["error", "cancel"]), at=st.integers(1, 2), which=which)
    @logged
    def release_faulted(self, kind: str, at: int, which: int) -> None:
        """Releasing a SAVEPOINT (its flush, then RELEASE) with a fault: the SAVEPOINT stays open."""
        sp, _ = self.savepoints[-1]
        raised, fired = self.run(self.faulted(sp.commit, (kind, at, which)))
        if raised is None or (isinstance(raised, asyncio.CancelledError) and self.s.is_active
                              and not sp.is_active):
            self.release_done()
            return
        assert fired, f"releasing a SAVEPOINT failed without a fault: {raised!r}"
        assert sp.is_active, "a SAVEPOINT whose release failed is no longer open"
        if self.injector.fired[-1][2].startswith("RELEASE"):
            self.model_flush()
            if kind == "cancel":
                assert not self.s.is_active, "a cancelled RELEASE left the session looking active"
                self.failed = "whole"
            else:
                assert self.s.is_active and isinstance(raised, exc.OperationalError), repr(raised)
            return
        self.after_failure(raised, fired, kind)  # its flush failed

    def release_done(self) -> None:
        self.savepoints.pop()
        self.model_flush()
        for e in self.entries:
            if e.added_depth is not None and e.added_depth > self.depth:
                e.added_depth = self.depth

    @precondition(lambda self: bool(self.savepoints))
    @rule()
    @logged
    def rollback_savepoint(self) -> None:
        sp, snap = self.savepoints.pop()
        self.run(sp.rollback())
        kept = []
        for e in self.entries:
            if e.added_depth is not None and e.added_depth > self.depth:
                continue  # added inside: transient again
            before = snap.status.get(e)
            if before is not None:
                e.status = before  # deleted inside: persistent again
            e.dirty = False  # changed inside: expired (checked by objects_agree)
            kept.append(e)
        self.entries = kept
        if self.failed == "whole":
            return  # the transaction is gone whole; still only rollback() recovers
        self.failed = None
        self.view = snap.view

    # -- invariants -----------------------------------------------------------------------------------
    @invariant()
    @logged
    def nothing_half_written(self) -> None:
        assert self.run(self.db_rows()) == self.committed
        self.stats["invariant checks: database == model"] += 1

    @invariant()
    @logged
    def no_connection_leaked(self) -> None:
        conn = self.s._conn
        own = 1 if conn is not None and conn._dc is not None else 0
        assert self.engine.pool.checked_out <= own, (
            f"{self.engine.pool.checked_out} connections checked out, the session holds {own}")
        self.stats["invariant checks: pool"] += 1

    @invariant()
    @logged
    def objects_agree(self) -> None:
        s = self.s
        for e in self.entries:
            st_ = inspect(e.obj)
            if e.status == "pending":
                assert st_.pending, e
            elif e.status == "persistent":
                assert st_.persistent and e.obj not in s.deleted, e
            elif e.status == "marked":
                assert st_.persistent and e.obj in s.deleted, e
            else:
                assert st_.deleted, e
            if e.status in ("pending", "persistent") and "value" not in st_.unloaded and self.failed is None:
                assert e.obj.__dict__["value"] == self.view[e.key], e
        mapped = {id(o) for o in s.identity_map.values()}
        assert mapped == {id(e.obj) for e in self.entries if e.status in ("persistent", "marked")}, \
            "the identity map holds other objects than the model"
        assert {id(o) for o in s.new} == {id(e.obj) for e in self.entries if e.status == "pending"}
        self.stats["invariant checks: objects"] += 1


@pytest.fixture
async def fault_engine(db: Engine) -> Any:
    await FaultBase.metadata.drop_all(db)
    await FaultBase.metadata.create_all(db)
    yield db
    await FaultBase.metadata.drop_all(db)


async def test_random_work_with_faults_matches_the_model(fault_engine: Engine, reliability: ReliabilityLog) -> None:
    stats: Stats = Counter()
    config = settings(max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, derandomize=True,
                      suppress_health_check=list(HealthCheck), database=None)
    t0 = time.perf_counter()
    with FaultInjector.for_engine(fault_engine) as injector:
        machine = type("Machine", (FaultMachine,), {
            "engine": fault_engine, "loop": asyncio.get_running_loop(), "injector": injector, "stats": stats})
        await asyncio.to_thread(run_state_machine_as_test, machine, settings=config)
    elapsed = time.perf_counter() - t0
    faults = sum(v for k, v in stats.items() if k.startswith("faults: "))
    assert faults > 0 and stats["commits"] > 0
    checks = sum(v for k, v in stats.items() if k.startswith("invariant checks: "))
    reliability.record(
        "Random work with faults (hypothesis state machine)",
        f"{EXAMPLES} runs of up to {STEPS} random steps (add, modify, delete, flush, commit, rollback, "
        "SAVEPOINT begin/release/rollback, expire, refresh, get, merge, expunge, query); constraint "
        "violations, driver errors and cancellations injected into flushes, commits, queries, "
        "begin_nested() and SAVEPOINT releases", cases=stats["examples"],
        held=f"after all {checks} checks: committed rows == model, no connection left checked out, "
             "objects in the states the model says",
        figures={"faults injected": faults,
                 **{k: v for k, v in sorted(stats.items()) if k != "examples" and not k.startswith("armed")},
                 "seconds": round(elapsed, 1)})
