"""A stateful test: random add / modify / delete / flush / commit / rollback / SAVEPOINT sequences on
one session, checked after every step against a plain in-memory model of SQLAlchemy's semantics.

Hypothesis's state machines are synchronous, so the machine runs in a worker thread and hands each
session operation to the test's event loop (``run_coroutine_threadsafe``); the loop is otherwise idle
while the thread runs.

What the model knows, per object: its status (transient / pending / persistent / marked for
deletion / deleted / detached), its primary key, and for each column attribute either the value it
must have, ``EXPIRED`` (must be unloaded), or ``EITHER`` (a SAVEPOINT rollback expired or kept it:
if loaded, it must equal the database row).  The database is modelled as the committed rows and the
rows as seen inside the session's transaction (what has been flushed), each with its version counter.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from aiouow import AsyncSession, Engine, MetaData, Model, column, delete, exc, insert, inspect, select, update


class HypBase(Model):
    metadata = MetaData()


class HItem(HypBase):
    __tablename__ = "ts_hyp_items"
    id: int = column(primary_key=True)
    name: str = column()
    value: int | None = column(default=None)
    version: int = column(version=True)


ATTRS = ("name", "value")
EXPIRED = object()
EITHER = object()
NOVAL = object()

names = st.sampled_from(["a", "b", "c", "dd"])
values = st.one_of(st.none(), st.integers(-3, 3))
index = st.integers(min_value=0, max_value=10_000)


@dataclass(eq=False)
class Entry:
    obj: HItem
    status: str  # transient, pending, persistent, deleted (flushed), detached
    marked: bool = False  # session.delete() not yet flushed
    pk: int | None = None
    vals: dict[str, Any] = field(default_factory=dict)
    #: attribute -> value at the last load/flush when it was first set since (NOVAL: was unloaded)
    base: dict[str, Any] = field(default_factory=dict)
    touched: bool = False  # an attribute was set since the last flush (dirty, even without net change)
    sets: int = 0  # attribute sets ever (to tell "modified since the SAVEPOINT")
    inserted_in_tx: bool = False
    clash: bool = False  # made to collide with a row: never added again


@dataclass
class Snapshot:
    current: dict[int, tuple[Any, ...]]
    entries: dict[int, tuple[str, int]]  # id(entry) -> (status, sets) when the SAVEPOINT began


class SessionMachine(RuleBasedStateMachine):
    engine: Engine
    loop: asyncio.AbstractEventLoop

    def __init__(self) -> None:
        super().__init__()
        self.session: AsyncSession | None = None
        self.entries: list[Entry] = []
        self.committed: dict[int, tuple[Any, ...]] = {}  # pk -> (name, value, version)
        self.current: dict[int, tuple[Any, ...]] = {}
        self.in_tx = False
        self.savepoints: list[tuple[Any, Snapshot]] = []
        self.failed = False  # a flush failed: only rollback() (or the SAVEPOINT's) is allowed
        self.orphans = 0  # rows inserted with core statements (named "core", never loaded as objects)

    # -- plumbing --------------------------------------------------------------------------
    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def call(self, fn: Any, *args: Any) -> Any:
        """Run a synchronous session method on the loop too (the session checks its task)."""
        async def wrapper() -> Any:
            return fn(*args)

        return self.run(wrapper())

    @property
    def s(self) -> AsyncSession:
        assert self.session is not None
        return self.session

    def teardown(self) -> None:
        if self.session is not None:
            self.run(self.session.close())
        assert self.engine.pool.checked_out == 0

    def pick(self, i: int, pred: Any) -> Entry:
        cands = [e for e in self.entries if pred(e)]
        return cands[i % len(cands)]

    def has(self, pred: Any) -> bool:
        return any(pred(e) for e in self.entries)

    # -- model of flush -------------------------------------------------------------------------
    def changed_attrs(self, e: Entry) -> list[str]:
        return [a for a in e.base if e.base[a] is NOVAL or e.base[a] != e.vals[a]]

    def has_work(self) -> bool:
        return any(e.status == "pending" or e.marked or (e.status == "persistent" and e.touched)
                   for e in self.entries)

    def model_flush(self) -> None:
        if not self.has_work():
            return
        self.in_tx = True
        for e in self.entries:
            if e.status == "pending":
                e.status = "persistent"
                e.pk = e.obj.id
                assert isinstance(e.pk, int)
                assert e.pk not in self.current
                self.current[e.pk] = (e.vals["name"], e.vals["value"], 1)
                e.inserted_in_tx = True
                e.base = {}
                e.touched = False
            elif e.marked:
                assert e.pk is not None
                del self.current[e.pk]
                e.status = "deleted"
                e.marked = False
            elif e.status == "persistent" and e.touched:
                changed = self.changed_attrs(e)
                if changed:
                    assert e.pk is not None
                    name, value, version = self.current[e.pk]
                    row = {"name": name, "value": value}
                    for a in changed:
                        row[a] = e.vals[a]
                    self.current[e.pk] = (row["name"], row["value"], version + 1)
                e.base = {}
                e.touched = False

    # -- rules ----------------------------------------------------------------------------------
    @initialize(expire_on_commit=st.booleans())
    def start(self, expire_on_commit: bool) -> None:
        async def clean() -> None:
            async with self.engine.begin() as conn:
                await conn.execute(delete(HItem))

        self.run(clean())
        self.expire_on_commit = expire_on_commit
        self.session = AsyncSession(self.engine, expire_on_commit=expire_on_commit)

    @precondition(lambda self: not self.failed)
    @rule(name=names, value=values)
    def add(self, name: str, value: int | None) -> None:
        obj = HItem(name=name, value=value)
        self.call(self.s.add, obj)
        self.entries.append(Entry(obj, "pending", vals={"name": name, "value": value}))
        self.in_tx = True

    @staticmethod
    def _re_addable(e: Entry) -> bool:
        # a transient object whose values were expired before its INSERT was rolled back has them unset
        known = all(e.vals[a] is not EXPIRED and e.vals[a] is not EITHER for a in ATTRS)
        return e.status == "transient" and not e.clash and known

    @precondition(lambda self: not self.failed)
    @precondition(lambda self: self.has(self._re_addable))
    @rule(i=index)
    def add_again(self, i: int) -> None:
        e = self.pick(i, self._re_addable)
        self.call(self.s.add, e.obj)
        e.status = "pending"
        e.pk = None
        self.in_tx = True

    @precondition(lambda self: not self.failed)
    @precondition(lambda self: self.has(lambda e: e.status in ("pending", "persistent") and not e.marked))
    @rule(i=index, attr=st.sampled_from(ATTRS), data=st.data())
    def modify(self, i: int, attr: str, data: st.DataObject) -> None:
        e = self.pick(i, lambda e: e.status in ("pending", "persistent") and not e.marked)
        new = data.draw(names if attr == "name" else values)
        if e.status == "persistent" and attr not in e.base:
            loaded = attr not in inspect(e.obj).unloaded
            e.base[attr] = e.obj.__dict__[attr] if loaded else NOVAL
        self.call(setattr, e.obj, attr, new)
        e.vals[attr] = new
        e.sets += 1
        if e.status == "persistent":
            e.touched = True
            self.in_tx = True  # as in SQLAlchemy: changing a persistent object begins a transaction

    @precondition(lambda self: not self.failed and self.has(lambda e: e.status == "persistent" and not e.marked))
    @rule(i=index)
    def delete(self, i: int) -> None:
        e = self.pick(i, lambda e: e.status == "persistent" and not e.marked)
        self.run(self.s.delete(e.obj))
        e.marked = True
        self.in_tx = True

    @precondition(lambda self: not self.failed and self.has(lambda e: e.status == "persistent" and not e.marked))
    @rule(i=index)
    def expire(self, i: int) -> None:
        e = self.pick(i, lambda e: e.status == "persistent" and not e.marked)
        self.call(self.s.expire, e.obj)
        for a in ATTRS:
            e.vals[a] = EXPIRED
        e.base = {}
        e.touched = False

    @precondition(lambda self: self.has(lambda e: e.status == "persistent"))
    @rule(i=index)
    def get(self, i: int) -> None:
        e = self.pick(i, lambda e: e.status == "persistent")
        if self.failed:
            # identity-map hits need no database; a miss needs rollback() first
            misses = bool({"id", "name", "value", "version"} & inspect(e.obj).unloaded)
            if misses:
                with pytest.raises(exc.PendingRollbackError):
                    self.run(self.s.get(HItem, e.pk))
            else:
                assert self.run(self.s.get(HItem, e.pk)) is e.obj
            return

        async def go() -> Any:
            with self.s.no_autoflush:
                return await self.s.get(HItem, e.pk)

        misses = bool({"id", "name", "value", "version"} & inspect(e.obj).unloaded)
        assert self.run(go()) is e.obj
        self.in_tx = self.in_tx or misses  # only a get() that must load begins a transaction
        self._refilled(e)

    @precondition(lambda self: not self.failed and self.has(lambda e: e.status == "persistent"))
    @rule()
    def query(self) -> None:
        """The rows of the objects the session holds (rows of detached objects would load new objects,
        which the model does not track)."""
        by_pk = {e.pk: e for e in self.entries if e.status == "persistent"}

        async def go() -> list[Any]:
            stmt = select(HItem).where(HItem.id.in_(list(by_pk))).order_by(HItem.id)
            with self.s.no_autoflush:
                return list((await self.s.scalars(stmt)).all())

        objs = self.run(go())
        self.in_tx = True
        assert [o.id for o in objs] == sorted(by_pk)
        for o in objs:
            assert by_pk[o.id].obj is o, "a query returned another object than the one the session holds"
            self._refilled(by_pk[o.id])

    def _refilled(self, e: Entry) -> None:
        """Unloaded attributes were filled from the database row; loaded ones were kept."""
        assert e.pk is not None
        name, value, _ = self.current[e.pk]
        for a, db_value in zip(ATTRS, (name, value)):
            if e.vals[a] is EXPIRED or e.vals[a] is EITHER:
                e.vals[a] = db_value

    @precondition(lambda self: not self.failed)
    @rule()
    def flush(self) -> None:
        self.run(self.s.flush())
        self.model_flush()

    @precondition(lambda self: not self.failed)
    @rule()
    def commit(self) -> None:
        self.run(self.s.commit())
        if not self.in_tx and not self.has_work():
            return
        self.model_flush()
        self.committed = dict(self.current)
        for e in self.entries:
            e.inserted_in_tx = False
            if e.status == "deleted":
                e.status = "detached"
            elif e.status == "persistent" and self.expire_on_commit:
                for a in ATTRS:
                    e.vals[a] = EXPIRED
        self.savepoints = []
        self.in_tx = False

    @rule()
    def rollback(self) -> None:
        self.run(self.s.rollback())
        self.failed = False
        if not self.in_tx:
            return  # nothing to roll back: pending changes stay
        self.current = dict(self.committed)
        for e in self.entries:
            if e.status == "pending" or e.inserted_in_tx:
                e.status = "transient"
                e.pk = None
                e.marked = False
            elif e.status in ("persistent", "deleted"):
                e.status = "persistent"
                e.marked = False
                for a in ATTRS:
                    e.vals[a] = EXPIRED
            e.base = {}
            e.touched = False
            e.inserted_in_tx = False
        self.savepoints = []
        self.in_tx = False

    @precondition(lambda self: not self.failed)
    @precondition(lambda self: len(self.savepoints) < 3)
    @rule()
    def begin_nested(self) -> None:
        sp = self.run(self.s.begin_nested().__aenter__())
        self.model_flush()
        self.in_tx = True
        snap = Snapshot(dict(self.current), {id(e): (e.status, e.sets) for e in self.entries})
        self.savepoints.append((sp, snap))

    @precondition(lambda self: not self.failed and bool(self.savepoints))
    @rule()
    def release_nested(self) -> None:
        sp, _ = self.savepoints.pop()
        self.run(sp.commit())
        self.model_flush()

    @precondition(lambda self: bool(self.savepoints))
    @rule()
    def rollback_nested(self) -> None:
        sp, snap = self.savepoints.pop()
        self.run(sp.rollback())
        self.failed = False
        self.current = dict(snap.current)
        for e in self.entries:
            before, sets = snap.entries.get(id(e), ("transient", 0))
            if before == "transient" and e.status in ("pending", "persistent", "deleted", "detached"):
                # (added since, or inserted since and expunged)
                e.status = "transient"
                e.pk = None
                e.marked = False
                e.inserted_in_tx = False
            elif before == "persistent" and e.status in ("persistent", "deleted"):
                e.status = "persistent"
                e.marked = False
                if e.sets != sets:  # modified since the SAVEPOINT: expired, or equal to the row
                    for a in ATTRS:
                        e.vals[a] = EITHER
                e.base = {}
                e.touched = False

    @precondition(lambda self: not self.failed and self.has(lambda e: e.status == "persistent"))
    @rule(i=index)
    def refresh(self, i: int) -> None:
        e = self.pick(i, lambda e: e.status == "persistent")

        async def go() -> None:
            with self.s.no_autoflush:
                await self.s.refresh(e.obj)

        self.run(go())
        self.in_tx = True
        assert e.pk is not None
        e.vals = dict(zip(ATTRS, self.current[e.pk][:2]))
        e.base = {}
        e.touched = False

    @precondition(lambda self: self.has(lambda e: e.status in ("pending", "persistent")))
    @rule(i=index)
    def expunge(self, i: int) -> None:
        e = self.pick(i, lambda e: e.status in ("pending", "persistent"))
        self.call(self.s.expunge, e.obj)
        e.status = "transient" if e.status == "pending" else "detached"
        e.marked = False
        e.base = {}
        e.touched = False

    @rule()
    def close(self) -> None:
        self.run(self.s.close())
        assert self.engine.pool.checked_out == 0
        self.current = dict(self.committed)
        for e in self.entries:
            if e.status == "pending":
                e.status = "transient"
            elif e.status in ("persistent", "deleted"):
                e.status = "detached"
            e.marked = False
            e.base = {}
            e.touched = False
            e.inserted_in_tx = False
        self.savepoints = []
        self.in_tx = False
        self.failed = False

    @precondition(lambda self: not self.failed)
    @rule(value=values)
    def core_insert(self, value: int | None) -> None:
        """A row the session does not hold, inserted with a core statement in its transaction."""
        self.orphans += 1
        pk = 10**9 + 1000 * self.orphans  # far from generated keys (SQLite's next rowid is max + 1)
        self.run(self.s.execute(insert(HItem).values(id=pk, name="core", value=value, version=1)))
        self.model_flush()  # execute() autoflushes first
        self.in_tx = True
        self.current[pk] = ("core", value, 1)

    @precondition(lambda self: not self.failed and any(row[0] == "core" for row in self.current.values()))
    @rule(i=index)
    def failing_flush(self, i: int) -> None:
        """A pending object whose key collides with a row: the flush fails, rollback() is required."""
        pks = sorted(pk for pk, row in self.current.items() if row[0] == "core")
        obj = HItem(id=pks[i % len(pks)], name="clash")
        self.call(self.s.add, obj)
        self.entries.append(Entry(obj, "pending", vals={"name": "clash", "value": None}, clash=True))
        self.in_tx = True
        with pytest.raises(exc.IntegrityError):
            self.run(self.s.flush())
        self.failed = True
        for op in (self.s.flush(), self.s.commit(), self.s.execute(select(HItem.id))):
            with pytest.raises(exc.PendingRollbackError):
                self.run(op)
        assert not self.s.is_active

    @precondition(lambda self: not self.failed and self.has(lambda e: e.status == "persistent" and not e.marked))
    @rule(i=index, value=values)
    def orm_update(self, i: int, value: int | None) -> None:
        e = self.pick(i, lambda e: e.status == "persistent" and not e.marked)
        self.run(self.s.execute(update(HItem).where(HItem.id == e.pk).values(value=value)))
        self.model_flush()
        self.in_tx = True
        name, _, version = self.current[e.pk]
        self.current[e.pk] = (name, value, version)
        e.vals["value"] = value
        e.sets += 1  # modified since a SAVEPOINT, for its rollback

    @precondition(lambda self: not self.failed and self.has(lambda e: e.status == "persistent" and not e.marked))
    @rule(i=index)
    def orm_delete(self, i: int) -> None:
        e = self.pick(i, lambda e: e.status == "persistent" and not e.marked)
        self.run(self.s.execute(delete(HItem).where(HItem.id == e.pk)))
        self.model_flush()
        self.in_tx = True
        del self.current[e.pk]
        e.status = "deleted"

    # -- checks -----------------------------------------------------------------------------------
    @invariant()
    def session_agrees_with_model(self) -> None:
        if self.session is None:
            return
        s = self.s
        new, deleted, imap = s.new, s.deleted, s.identity_map
        held = 0
        for e in self.entries:
            st_ = inspect(e.obj)
            expected = "persistent" if e.marked else e.status
            assert getattr(st_, expected), (e, st_.status_name if hasattr(st_, "status_name") else None)
            assert (e.obj in s) == (e.status in ("pending", "persistent"))
            assert (e.obj in new) == (e.status == "pending")
            assert (e.obj in deleted) == e.marked
            unloaded = st_.unloaded
            for a in ATTRS:
                want = e.vals[a]
                if want is EXPIRED:
                    assert a in unloaded, f"{a} should be expired"
                elif want is EITHER:
                    if a not in unloaded and e.status == "persistent":
                        row = self.current[e.pk]
                        assert e.obj.__dict__[a] == row[ATTRS.index(a)]
                else:
                    assert a not in unloaded, f"{a} should be loaded"
                    assert e.obj.__dict__[a] == want
            if e.status == "persistent":
                held += 1
                assert e.obj.id == e.pk
                assert imap[(HItem, (e.pk,))] is e.obj
                assert s.is_modified(e.obj) == bool(self.changed_attrs(e))
                if "version" not in unloaded:
                    assert e.obj.__dict__["version"] == self.current[e.pk][2]
        assert len(imap) == held
        assert s.in_transaction() == self.in_tx
        assert s.in_nested_transaction() == bool(self.savepoints)

    @invariant()
    def database_agrees_with_model(self) -> None:
        if self.session is None:
            return
        stmt = select(HItem.id, HItem.name, HItem.value, HItem.version)
        if self.failed:
            assert self.s.in_transaction() and not self.s.is_active
            return
        if self.in_tx:
            async def inside() -> dict[int, tuple[Any, ...]]:
                with self.s.no_autoflush:
                    return {r[0]: tuple(r[1:]) for r in (await self.s.execute(stmt)).all()}

            assert self.run(inside()) == self.current
        else:
            assert self.current == self.committed

            async def outside() -> dict[int, tuple[Any, ...]]:
                async with self.engine.connect() as conn:
                    return {r[0]: tuple(r[1:]) for r in (await conn.execute(stmt)).all()}

            assert self.run(outside()) == self.committed


EXAMPLES = int(os.environ.get("AIOUOW_HYPOTHESIS_EXAMPLES", "150"))


@pytest.fixture
async def hyp_engine(db: Engine) -> Any:
    await HypBase.metadata.drop_all(db)
    await HypBase.metadata.create_all(db)
    yield db
    await HypBase.metadata.drop_all(db)


async def test_session_matches_model(hyp_engine: Engine) -> None:
    machine = type("Machine", (SessionMachine,), {"engine": hyp_engine, "loop": asyncio.get_running_loop()})
    config = settings(max_examples=EXAMPLES, stateful_step_count=30, deadline=None,
                      suppress_health_check=list(HealthCheck))
    await asyncio.to_thread(run_state_machine_as_test, machine, settings=config)
