"""scoped_session: one session per task (API.md 6 and 9).

The trap it closes: context variables are copied into child tasks, so a naive
ContextVar registry hands the parent's session (its connection, its open
transaction, its pending objects) to every task started by create_task, gather
or a task group.  Here every child gets a session of its own.
"""

from __future__ import annotations

import asyncio
import gc
import warnings

import anyio
import pytest

from aiouow import AsyncSession, Engine, Model, column, func, scoped_session, select, sessionmaker
from aiouow.exc import InvalidRequestError


class Note(Model):
    __tablename__ = "t5_scope_notes"
    id: int = column(primary_key=True)
    title: str = column()


@pytest.fixture
def db_registry(db: Engine) -> scoped_session:
    """A registry on the test engine (fixtures run in other tasks than the test: the test
    itself removes what its own task used)."""
    return scoped_session(sessionmaker(db))


async def notes(engine: Engine) -> list[str]:
    async with AsyncSession(engine) as s:
        return list((await s.scalars(select(Note.title).order_by(Note.title))).all())


async def wait_pool_back(engine: Engine) -> None:
    for _ in range(200):
        if engine.pool.checked_out == 0:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{engine.pool.checked_out} connection(s) still checked out")


async def test_same_task_same_session_other_task_other_session(db: Engine, db_registry: scoped_session) -> None:
    s = db_registry()
    assert isinstance(s, AsyncSession)
    assert db_registry() is s and db_registry.has()

    async def other() -> AsyncSession:
        return db_registry()

    t = asyncio.create_task(other())
    assert await t is not s


@pytest.mark.parametrize("spawn", ["create_task", "gather", "TaskGroup", "anyio"])
async def test_child_tasks_never_receive_the_parents_session(db: Engine, db_registry: scoped_session,
                                                             spawn: str) -> None:
    """The parent has a session with an open transaction and a pending object; each child
    task, whichever way it was started, gets a new session that sees none of it, and the
    parent's work stays the parent's."""
    parent = db_registry()
    parent.add(Note(title="parent"))
    await parent.flush()  # the parent holds a connection and an open transaction now
    seen: list[tuple[AsyncSession, int, bool]] = []

    async def child(i: int) -> None:
        s = db_registry()
        assert db_registry() is s  # stable within the child
        seen.append((s, len(s.identity_map), s.in_transaction()))
        await db_registry.remove()

    if spawn == "create_task":
        await asyncio.gather(*[asyncio.create_task(child(i)) for i in range(3)])
    elif spawn == "gather":
        await asyncio.gather(child(0), child(1), child(2))
    elif spawn == "TaskGroup":
        async with asyncio.TaskGroup() as tg:
            for i in range(3):
                tg.create_task(child(i))
    else:
        async with anyio.create_task_group() as atg:
            for i in range(3):
                atg.start_soon(child, i)

    sessions = [s for s, _, _ in seen]
    assert len(sessions) == 3
    assert all(s is not parent for s in sessions)
    assert len({id(s) for s in sessions}) == 3
    assert all(held == 0 and not in_tx for _, held, in_tx in seen)  # nothing of the parent's
    assert db_registry() is parent and parent.in_transaction() and len(parent.identity_map) == 1
    await parent.rollback()
    assert await notes(db) == []


async def test_children_work_in_their_own_transactions(db: Engine) -> None:
    """With a naive registry the children would share the parent's session and connection:
    here each commits (or fails) on its own, and the parent's rollback does not undo them."""
    Session = sessionmaker(db)
    db_registry = scoped_session(Session)
    parent = db_registry()
    parent.add(Note(title="parent-uncommitted"))
    await parent.flush()
    await parent.commit()  # on SQLite the one writer must be free for the children
    parent.add(Note(title="parent-rolled-back"))

    async def child(i: int) -> None:
        s = db_registry()
        s.add(Note(title=f"child{i}"))
        if i == 1:
            await s.rollback()
        else:
            await s.commit()
        await db_registry.remove()

    await asyncio.gather(*(child(i) for i in range(3)))
    await db_registry().rollback()
    await db_registry.remove()
    assert await notes(db) == ["child0", "child2", "parent-uncommitted"]


async def test_scope_gives_a_new_session_and_restores_the_previous(db: Engine, db_registry: scoped_session) -> None:
    outer = db_registry()
    async with db_registry.scope() as scoped:
        assert scoped is not outer and db_registry() is scoped
        scoped.add(Note(title="in scope"))
        await scoped.flush()
        async with db_registry.scope() as inner:
            assert inner is not scoped and db_registry() is inner
        assert db_registry() is scoped
        assert inner._conn is None and not inner.in_transaction()
        await scoped.commit()
        scoped.add(Note(title="never committed"))
        await scoped.flush()
    # closed on exit: uncommitted work rolled back, connection returned, objects detached
    assert not scoped.in_transaction() and scoped._conn is None and len(scoped.identity_map) == 0
    assert db_registry() is outer
    assert await notes(db) == ["in scope"]


async def test_scope_closes_on_error_without_committing(db: Engine, db_registry: scoped_session) -> None:
    with pytest.raises(RuntimeError):
        async with db_registry.scope() as s:
            s.add(Note(title="x"))
            await s.flush()
            raise RuntimeError("handler failed")
    assert db.pool.checked_out == 0
    assert await notes(db) == []
    assert not db_registry.has()


async def test_remove_closes_and_forgets(db: Engine, db_registry: scoped_session) -> None:
    s = db_registry()
    s.add(Note(title="not committed"))
    await s.flush()
    await db_registry.remove()
    assert not db_registry.has()
    assert s._conn is None and not s.in_transaction() and len(s.new) == 0
    assert db.pool.checked_out == 0
    s2 = db_registry()
    assert s2 is not s
    assert await notes(db) == []
    await db_registry.remove()
    await db_registry.remove()  # nothing to remove: a no-op


async def test_remove_inside_a_scope_then_db_gives_a_new_session_closed_with_the_scope(
        db: Engine, db_registry: scoped_session) -> None:
    async with db_registry.scope() as first:
        await db_registry.remove()
        second = db_registry()
        assert second is not first
        second.add(Note(title="x"))
        await second.flush()
    assert second._conn is None and db.pool.checked_out == 0
    assert await notes(db) == []


async def test_session_of_a_finished_task_is_closed_with_a_warning(db: Engine) -> None:
    """A task that used db() and ended without remove(): its session is closed for it, its
    uncommitted work rolled back, the connection returned; a ResourceWarning says so."""
    db_registry = scoped_session(sessionmaker(db))
    box: list[AsyncSession] = []

    async def forgetful() -> None:
        s = db_registry()
        box.append(s)
        s.add(Note(title="forgotten"))
        await s.flush()  # holds a connection, in a transaction

    with pytest.warns(ResourceWarning, match="ended without"):
        await asyncio.create_task(forgetful(), name="forgetful")
        await wait_pool_back(db)
    assert not box[0].in_transaction() and len(box[0].identity_map) == 0
    assert await notes(db) == []


async def test_idle_session_of_a_finished_task_is_closed_silently(db: Engine) -> None:
    db_registry = scoped_session(sessionmaker(db))

    async def tidy() -> AsyncSession:
        s = db_registry()
        s.add(Note(title="kept"))
        await s.commit()
        return s

    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        s = await asyncio.create_task(tidy())
        await asyncio.sleep(0.01)
    assert db.pool.checked_out == 0 and not s.in_transaction()
    assert await notes(db) == ["kept"]


async def test_registry_does_not_keep_finished_tasks_sessions_alive(db: Engine) -> None:
    db_registry = scoped_session(sessionmaker(db))
    import weakref

    refs: list[weakref.ref[AsyncSession]] = []

    async def use() -> None:
        s = db_registry()
        refs.append(weakref.ref(s))
        await db_registry.remove()

    for _ in range(3):
        await asyncio.create_task(use())
    await asyncio.sleep(0)
    gc.collect()
    assert all(r() is None for r in refs)


async def test_proxy_methods_act_on_the_current_session(db: Engine, db_registry: scoped_session) -> None:
    db_registry.add(Note(title="proxied"))
    assert len(db_registry.new) == 1
    await db_registry.commit()
    assert await db_registry.scalar(select(func.count(Note.id))) == 1
    assert [n.title for n in await db_registry.scalars(select(Note))] == ["proxied"]
    with pytest.raises(AttributeError):
        db_registry.no_such_method  # noqa: B018
    await db_registry.remove()
    assert db.pool.checked_out == 0


def test_db_outside_a_task_is_refused() -> None:
    db_registry = scoped_session(sessionmaker())
    with pytest.raises(InvalidRequestError, match="running asyncio task"):
        db_registry()
    assert not db_registry.has()


async def test_anyio_cancel_scope_inside_a_scope_block(db: Engine, db_registry: scoped_session) -> None:
    """A scope() block cancelled by anyio still closes its session; the task's session is back."""
    outer = db_registry()
    with anyio.move_on_after(0.05):
        async with db_registry.scope() as s:
            s.add(Note(title="cancelled"))
            await s.flush()
            await anyio.sleep(5)
    assert s._conn is None and not s.in_transaction()
    assert db_registry() is outer
    assert db.pool.checked_out == 0
    assert await notes(db) == []


async def test_garbage_collected_session_returns_its_connection_rolled_back(db: Engine) -> None:
    """API.md 9: a plain AsyncSession dropped while holding a connection gives it back (rolled
    back) with a ResourceWarning."""

    async def leak() -> None:
        s = AsyncSession(db)
        s.add(Note(title="dropped"))
        await s.flush()
        assert db.pool.checked_out == 1

    with pytest.warns(ResourceWarning):
        await leak()
        gc.collect()
        await wait_pool_back(db)
    assert await notes(db) == []


# -- what the registry proxies, as its types say (tests/typing/queries.py) ---------------------

async def test_registry_proxies_membership_and_iteration(db: Engine) -> None:
    registry = scoped_session(sessionmaker(db))
    try:
        note = Note(title="a")
        registry.add(note)
        assert note in registry and Note(title="b") not in registry
        assert list(registry) == [note]
    finally:
        await registry.remove()


@pytest.mark.parametrize("name", ["bind", "autoflush", "expire_on_commit", "autobegin", "join_transaction_mode",
                                  "n_plus_one", "n_plus_one_threshold"])
async def test_registry_reads_the_sessions_settings(db: Engine, name: str) -> None:
    registry = scoped_session(sessionmaker(db))
    try:
        assert getattr(registry, name) == getattr(registry(), name)
    finally:
        await registry.remove()


async def test_registry_sets_autoflush_on_the_tasks_session(db: Engine) -> None:
    registry = scoped_session(sessionmaker(db))
    try:
        registry.autoflush = False
        assert registry().autoflush is False
        registry.add(Note(title="not flushed"))
        count = await registry.scalar(select(func.count()).select_from(Note).where(Note.title == "not flushed"))
        assert count == 0  # no autoflush before the query
        registry.autoflush = True
        assert await registry.scalar(select(func.count()).select_from(Note).where(Note.title == "not flushed")) == 1
        with pytest.raises(AttributeError, match="cannot be set through the registry"):
            registry.bind = None  # type: ignore[misc]
    finally:
        await registry.remove()


async def test_registry_is_not_a_context_manager(db: Engine) -> None:
    registry = scoped_session(sessionmaker(db))
    with pytest.raises((TypeError, AttributeError)):
        async with registry:  # type: ignore[misc]
            pass
    async with registry.scope() as session:
        assert isinstance(session, AsyncSession)
