"""Reliability: a constraint violated in the middle of a large flush writes nothing.

A flush of many rows whose one row breaks a constraint must leave the database as it was
(checked with raw SQL on another connection), raise ``IntegrityError`` naming the constraint
and the table, refuse further database work with ``PendingRollbackError`` until ``rollback()``,
and, once the row is fixed and the objects added again (a rollback expunges the objects that
were pending, as in SQLAlchemy), commit every row on the retry.  The large batches take each
backend's bulk path: multi-row VALUES on SQLite, ``unnest`` arrays and, above
``COPY_MIN_ROWS``, COPY on PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aiouow import AsyncSession, Engine, ForeignKey, MetaData, Model, column, exc, inspect, select
from aiouow.dialects.postgresql import COPY_MIN_ROWS

from .query_support import raw_sql
from .reliability import ReliabilityLog

pytestmark = pytest.mark.reliability

SECTION = "Constraint failure mid-flush"


class FaultBase(Model):
    metadata = MetaData()


class RParent(FaultBase):
    __tablename__ = "rl_parents"
    id: int = column(primary_key=True)
    code: str = column(unique=True)
    label: str = column()


class RChild(FaultBase):
    __tablename__ = "rl_children"
    id: int = column(primary_key=True)
    # no ON DELETE action: deleting a parent that still has a child is a violation
    parent_id: int = column(ForeignKey("rl_parents.id"))
    name: str = column()


@pytest.fixture
async def fdb(db: Engine) -> AsyncIterator[Engine]:
    await FaultBase.metadata.drop_all(db)
    await FaultBase.metadata.create_all(db)
    yield db
    await FaultBase.metadata.drop_all(db)


async def parent_rows(engine: Engine) -> list[tuple[Any, ...]]:
    """The committed parents, as (id, code, label), read with raw SQL on a connection of its own."""
    return await raw_sql(engine, 'SELECT id, code, label FROM rl_parents ORDER BY id')


async def seed(engine: Engine, *codes: str) -> list[int]:
    async with AsyncSession(engine) as s:
        objs = [RParent(code=c, label=f"seed {c}") for c in codes]
        s.add_all(objs)
        await s.commit()
        return [o.id for o in objs]


def unique_message_ok(engine: Engine, err: exc.IntegrityError, value: str) -> None:
    """The message names the constraint, the table and the column (PostgreSQL also the value)."""
    msg = str(err)
    if engine.dialect.name == "postgresql":
        assert 'unique constraint "uq_rl_parents_code" on table "rl_parents"' in msg, msg
        assert f"(code)=({value})" in msg, msg
    else:
        assert 'UNIQUE constraint failed: rl_parents.code (constraint "uq_rl_parents_code")' in msg, msg
    assert "table 'rl_parents'" in msg and "session.rollback()" in msg, msg


async def assert_needs_rollback(s: AsyncSession, held: RParent | None = None) -> None:
    """Every operation that needs the database raises PendingRollbackError; identity-map hits do not."""
    for op in (s.flush, s.commit):
        s.add(RParent(code="blocked", label="x"))
        with pytest.raises(exc.PendingRollbackError) as info:
            await op()
        assert isinstance(info.value.orig, exc.IntegrityError)
    with pytest.raises(exc.PendingRollbackError):
        await s.execute(select(RParent.id))
    with pytest.raises(exc.PendingRollbackError):
        await s.get(RParent, 10**9)
    if held is not None:
        assert await s.get(RParent, held.id) is held  # no SQL: still in the identity map
        with pytest.raises(exc.PendingRollbackError):
            await s.refresh(held)


CASES = [
    # (the batch size, which row clashes, with what)
    pytest.param(1000, "batch", id="1000-rows-500th-duplicates-the-10th"),
    pytest.param(1000, "existing", id="1000-rows-500th-duplicates-a-committed-row"),
    pytest.param(COPY_MIN_ROWS + 500, "batch", id="copy-sized-batch-500th-duplicates-the-10th"),
    pytest.param(COPY_MIN_ROWS + 500, "existing", id="copy-sized-batch-1200th-duplicates-a-committed-row"),
]


@pytest.mark.parametrize(("n", "clash"), CASES)
async def test_unique_violation_mid_flush_writes_nothing_and_the_fixed_retry_writes_all(
        fdb: Engine, reliability: ReliabilityLog, n: int, clash: str) -> None:
    before = await parent_rows(fdb) if clash == "batch" else None
    if clash == "existing":
        await seed(fdb, "taken")
        before = await parent_rows(fdb)
    bad = 1199 if clash == "existing" and n > COPY_MIN_ROWS else 499
    dup = "c9" if clash == "batch" else "taken"
    objs = [RParent(code=f"c{i}", label=f"row {i}") for i in range(n)]
    objs[bad].code = dup
    async with AsyncSession(fdb) as s:
        s.add_all(objs)
        t0 = time.perf_counter()
        with pytest.raises(exc.IntegrityError) as info:
            await s.flush()
        failed_ms = (time.perf_counter() - t0) * 1000
        unique_message_ok(fdb, info.value, dup)
        assert isinstance(info.value.orig, Exception) and not isinstance(info.value.orig, exc.AiouowError)
        assert fdb.pool.checked_out == 0, "the failed flush's connection was not returned"
        assert await parent_rows(fdb) == before, "a failed flush wrote rows"
        assert all(inspect(o).pending for o in objs), "objects left pending until rollback()"
        await assert_needs_rollback(s)
        await s.rollback()
        # as in SQLAlchemy: objects pending in a rolled-back transaction are expunged
        assert all(inspect(o).transient for o in objs) and not s.new
        objs[bad].code = f"c{bad}"
        s.add_all(objs)
        t0 = time.perf_counter()
        await s.commit()
        retry_ms = (time.perf_counter() - t0) * 1000
    rows = await parent_rows(fdb)
    assert rows[:len(before)] == before
    assert rows[len(before):] == [(o.id, f"c{i}", f"row {i}") for i, o in enumerate(objs)]
    assert fdb.pool.checked_out == 0
    path = "COPY" if fdb.dialect.name == "postgresql" and n > COPY_MIN_ROWS else "batched INSERT"
    what = f"the {bad + 1}th duplicates {'the 10th' if clash == 'batch' else 'a committed row'}"
    reliability.record(
        SECTION, f"{n} new rows by {path}; {what} (unique constraint)", cases=1,
        held="IntegrityError naming constraint and table; 0 rows written; PendingRollbackError until "
             f"rollback(); fixed retry committed all {n}",
        figures={"failed_flush_ms": round(failed_ms, 1), "retry_commit_ms": round(retry_ms, 1)})


async def seed_family(engine: Engine) -> tuple[list[int], int]:
    """Five parents, and a child of the first."""
    ids = await seed(engine, "p0", "p1", "p2", "p3", "p4")
    async with AsyncSession(engine) as s:
        child = RChild(parent_id=ids[0], name="kid")
        s.add(child)
        await s.commit()
        return ids, child.id


async def test_mixed_flush_with_foreign_key_violation_on_delete(fdb: Engine, reliability: ReliabilityLog) -> None:
    """Inserts, updates and a delete in one flush; the delete of a parent that still has a child
    fails after the inserts and updates ran: none of them is committed."""
    ids, child_id = await seed_family(fdb)
    before = await parent_rows(fdb)
    children = await raw_sql(fdb, "SELECT id, parent_id, name FROM rl_children")
    new = [RParent(code=f"n{i}", label="new") for i in range(1000)]
    async with AsyncSession(fdb) as s:
        p0, p1, p2 = [await s.get_one(RParent, i) for i in ids[:3]]
        s.add_all(new)
        p1.label = "changed"
        p2.code = "p2-renamed"
        await s.delete(p0)
        with pytest.raises(exc.IntegrityError) as info:
            await s.flush()
        msg = str(info.value)
        assert "rl_parents" in msg and "rl_children" in msg, msg
        if fdb.dialect.name == "postgresql":
            assert '"rl_children_parent_id_fkey"' in msg, msg
        else:
            # SQLite names no constraint: the flush says which rows and which foreign keys
            assert "FOREIGN KEY constraint failed" in msg, msg
            assert "rl_children.parent_id -> rl_parents.id" in msg, msg
        assert "deleting 1 row of table 'rl_parents'" in msg, msg
        assert await parent_rows(fdb) == before
        assert await raw_sql(fdb, "SELECT id, parent_id, name FROM rl_children") == children
        await assert_needs_rollback(s, held=p1)
        await s.rollback()
        # the deleted parent is persistent again, the changed ones expired, the new ones expunged
        assert inspect(p0).persistent and p0 in s
        assert {"label", "code"} <= inspect(p1).unloaded and {"label", "code"} <= inspect(p2).unloaded
        assert all(inspect(o).transient for o in new)
        # the fix: delete the child first (the flush orders it before its parent), then redo the work
        await s.delete(await s.get_one(RChild, child_id))
        s.add_all(new)
        p1.label = "changed"
        p2.code = "p2-renamed"
        await s.delete(p0)
        await s.commit()
    rows = await parent_rows(fdb)
    want = {i: (c, lbl) for i, c, lbl in before if i != ids[0]}
    want[ids[1]] = ("p1", "changed")
    want[ids[2]] = ("p2-renamed", "seed p2")
    for i, o in enumerate(new):
        want[o.id] = (f"n{i}", "new")
    assert {i: (c, lbl) for i, c, lbl in rows} == want
    assert await raw_sql(fdb, "SELECT id FROM rl_children") == []
    reliability.record(
        SECTION, "one flush: 1000 inserts, 2 updates, and a delete of a parent still referenced (foreign key)",
        cases=1, held="IntegrityError naming the foreign key and both tables; nothing written; "
                      "PendingRollbackError until rollback(); the fixed retry committed everything")


async def test_mixed_flush_with_unique_violation_in_an_update(fdb: Engine, reliability: ReliabilityLog) -> None:
    """A batch of updates, one of which takes another row's unique code, after 1000 inserts."""
    ids = await seed(fdb, *[f"u{i}" for i in range(20)])
    before = await parent_rows(fdb)
    new = [RParent(code=f"n{i}", label="new") for i in range(1000)]
    async with AsyncSession(fdb) as s:
        held = (await s.scalars(select(RParent).order_by(RParent.id))).all()
        s.add_all(new)
        for o in held:
            o.label = "relabelled"
        held[7].code = "u3"  # taken by held[3]
        await s.delete(held[19])
        with pytest.raises(exc.IntegrityError) as info:
            await s.commit()
        unique_message_ok(fdb, info.value, "u3")
        assert await parent_rows(fdb) == before
        await assert_needs_rollback(s, held=held[0])
        await s.rollback()
        for o in held[:19]:
            o.label = "relabelled"
        held[7].code = "u7b"
        s.add_all(new)
        await s.delete(held[19])
        await s.commit()
    rows = await parent_rows(fdb)
    assert len(rows) == len(ids) - 1 + len(new)
    assert {(c, lbl) for _, c, lbl in rows if lbl == "relabelled"} == {
        ("u7b" if i == 7 else f"u{i}", "relabelled") for i in range(19)}
    reliability.record(
        SECTION, "one commit: 1000 inserts, 20 updates of which one takes another row's unique value, 1 delete",
        cases=1, held="IntegrityError naming constraint and table; nothing written; fixed retry committed all")
