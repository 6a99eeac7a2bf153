"""aiouow.events: session, model and state events, on SQLite and PostgreSQL.

Listeners on model classes are global: every test registers through the ``listen`` fixture,
which removes them again at teardown.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import aiouow
from aiouow import Model, events, exc, insert, inspect, select, sessionmaker, text
from examples.audit_log import Account, AuditEntry, demo, install_audit, uninstall_audit

from .models import Post, Tag, User
from .query_support import raw_sql

Listen = Callable[[Any, str, Callable[..., Any]], None]


@pytest.fixture
def listen() -> Iterator[Listen]:
    added: list[tuple[Any, str, Callable[..., Any]]] = []

    def _listen(target: Any, name: str, fn: Callable[..., Any]) -> None:
        events.listen(target, name, fn)
        added.append((target, name, fn))

    yield _listen
    for target, name, fn in reversed(added):
        if events.contains(target, name, fn):
            events.remove(target, name, fn)
    gc.collect()  # sessions and sessionmakers with listeners give them back when collected
    assert not events.active, "a test left a listener registered"


async def count(engine: aiouow.Engine, table: str) -> int:
    rows = await raw_sql(engine, f'SELECT count(*) FROM "{table}"')
    return int(rows[0][0])


# -- the audit-log example ---------------------------------------------------------------
async def test_audit_log_example(db: aiouow.Engine) -> None:
    log = await demo(db)
    assert log == [
        ("insert", 1, {"id": [None, 1], "owner": [None, "ann"], "balance": [None, 100]}),
        ("insert", 2, {"id": [None, 2], "owner": [None, "bob"], "balance": [None, 0]}),
        ("update", 1, {"balance": [100, 150]}),
        ("delete", 2, {"id": [2, None], "owner": ["bob", None], "balance": [0, None]}),
    ]
    assert not events.active


async def test_audit_rows_share_the_transaction(db: aiouow.Engine, sql: Any) -> None:
    Session = sessionmaker(db)
    install_audit(Session)
    try:
        async with Session() as session:
            session.add(Account(owner="cy", balance=5))
            with sql(db) as log:
                await session.flush()
            # one INSERT for the account, one for its audit row, no second flush, no autoflush loop
            assert log.count("INSERT") == 2
            assert await session.scalar(select(AuditEntry.action)) == "insert"
            await session.rollback()
        assert await count(db, "t14_audit_log") == 0 and await count(db, "t14_accounts") == 0
        async with Session.begin() as session:
            session.add(Account(owner="cy", balance=5))
        assert await count(db, "t14_audit_log") == 1
    finally:
        uninstall_audit(Session)


# -- before_flush / after_flush ----------------------------------------------------------------
async def test_before_flush_changes_are_part_of_the_flush(db: aiouow.Engine, listen: Listen, sql: Any) -> None:
    Session = sessionmaker(db)
    calls: list[int] = []

    async def before(session: aiouow.AsyncSession, flush: events.FlushContext) -> None:
        calls.append(len(session.new))
        # a query inside the listener: no autoflush (the flush is under way), no recursion
        assert await session.scalar(select(User.id).where(User.name == "ann")) is None
        for obj in list(session.new):
            if isinstance(obj, User) and not obj.posts:
                obj.posts.append(Post(title=f"welcome {obj.name}"))
                obj.name = obj.name.upper()
        if not any(isinstance(o, Tag) for o in session.new):
            session.add(Tag(name="added-by-hook"))

    listen(Session, "before_flush", before)
    async with Session() as session:
        ann = User(name="ann")
        session.add(ann)
        with sql(db) as log:
            await session.flush()
        assert calls == [1]
        assert log.count("INSERT") == 3  # users, posts, tags: one flush
        assert inspect(ann).persistent and inspect(ann.posts[0]).persistent
        await session.commit()
    rows = await raw_sql(db, 'SELECT u.name, p.title FROM "users" u JOIN "posts" p ON p.author_id = u.id')
    assert rows == [("ANN", "welcome ann")]
    assert await raw_sql(db, 'SELECT name FROM "tags"') == [("added-by-hook",)]


async def test_flush_inside_a_flush_listener_is_refused(db: aiouow.Engine, listen: Listen) -> None:
    Session = sessionmaker(db)

    async def before(session: aiouow.AsyncSession, flush: events.FlushContext) -> None:
        await session.flush()

    listen(Session, "before_flush", before)
    async with Session() as session:
        session.add(User(name="ann"))
        with pytest.raises(exc.InvalidRequestError, match="already flushing"):
            await session.flush()
        # a listener's failure fails the flush: rolled back, rollback() required
        with pytest.raises(exc.PendingRollbackError):
            await session.execute(select(User))
        await session.rollback()
        assert not session._flushing
    assert await count(db, "users") == 0


async def test_after_flush_sees_keys_and_its_objects_are_committed(db: aiouow.Engine, listen: Listen) -> None:
    Session = sessionmaker(db)
    seen: list[tuple[str, list[Any]]] = []

    async def after(session: aiouow.AsyncSession, flush: events.FlushContext) -> None:
        seen.append(("ins", [o.id for o in flush.inserted if isinstance(o, User)]))
        seen.append(("upd", [o.id for o in flush.updated]))
        seen.append(("del", [o.id for o in flush.deleted]))
        # an object added here is flushed by the next flush: commit() flushes it
        for o in flush.inserted:
            if isinstance(o, User):
                session.add(Post(author_id=o.id, title="from after_flush"))
        n = await session.scalar(select(aiouow.func.count(User.id)))
        seen.append(("count", [n]))

    listen(Session, "after_flush", after)
    async with Session() as session:
        session.add_all([User(name="a"), User(name="b")])
        await session.commit()
    assert seen[:4] == [("ins", [1, 2]), ("upd", []), ("del", []), ("count", [2])]
    assert await raw_sql(db, 'SELECT author_id FROM "posts" ORDER BY author_id') == [(1,), (2,)]


async def test_after_flush_failure_rolls_the_flush_back(db: aiouow.Engine, listen: Listen) -> None:
    Session = sessionmaker(db)

    def after(session: aiouow.AsyncSession, flush: events.FlushContext) -> None:
        raise RuntimeError("audit store down")

    listen(Session, "after_flush", after)
    async with Session() as session:
        ann = User(name="ann")
        session.add(ann)
        with pytest.raises(RuntimeError, match="audit store down"):
            await session.commit()
        with pytest.raises(exc.PendingRollbackError):
            await session.execute(select(User))
        await session.rollback()
        assert inspect(ann).transient
    assert await count(db, "users") == 0


# -- model events ----------------------------------------------------------------------------
async def test_before_insert_and_update_values_reach_the_statement(db: aiouow.Engine, listen: Listen) -> None:
    seen: list[tuple[str, Any]] = []

    def before_insert(mapper: aiouow.Mapper, connection: aiouow.Connection, target: User) -> None:
        assert mapper is inspect(User) and isinstance(connection, aiouow.Connection)
        seen.append(("insert", target.name))
        target.email = f"{target.name}@example.com"

    def before_update(mapper: aiouow.Mapper, connection: aiouow.Connection, target: User) -> None:
        seen.append(("update", target.name))
        target.email = f"{target.name}@changed.example.com"

    listen(User, "before_insert", before_insert)
    listen(User, "before_update", before_update)
    Session = sessionmaker(db)
    async with Session.begin() as session:
        session.add_all([User(name="ann"), User(name="bob")])
    async with Session.begin() as session:
        bob = (await session.scalars(select(User).where(User.name == "bob"))).one()
        bob.name = "bob2"
    rows = await raw_sql(db, 'SELECT name, email FROM "users" ORDER BY id')
    assert rows == [("ann", "ann@example.com"), ("bob2", "bob2@changed.example.com")]
    assert seen == [("insert", "ann"), ("insert", "bob"), ("update", "bob2")]


async def test_before_update_runs_for_dirty_objects_without_net_change(db: aiouow.Engine, listen: Listen) -> None:
    def stamp(mapper: aiouow.Mapper, connection: aiouow.Connection, target: User) -> None:
        target.email = "touched"

    Session = sessionmaker(db)
    async with Session.begin() as session:
        session.add(User(name="ann"))
    listen(User, "before_update", stamp)
    async with Session.begin() as session:
        ann = await session.get_one(User, 1)
        ann.name = "ann"  # no net change: SQLAlchemy still calls before_update, whose change is sent
    assert await raw_sql(db, 'SELECT email FROM "users"') == [("touched",)]


async def test_after_update_sees_the_written_row(db: aiouow.Engine, listen: Listen, sql: Any) -> None:
    """after_update: once per updated object, after its UPDATE (its new values as written), never
    for objects that were only inserted or deleted; as SQLAlchemy, also for an object whose
    changes were no net change (before_update saw it, no UPDATE was sent)."""
    seen: list[tuple[str, Any, Any, bool]] = []

    def before_update(mapper: aiouow.Mapper, connection: aiouow.Connection, target: User) -> None:
        seen.append(("before", target.id, target.name, inspect(target).modified))

    def after_update(mapper: aiouow.Mapper, connection: aiouow.Connection, target: User) -> None:
        assert mapper is inspect(User) and isinstance(connection, aiouow.Connection)
        seen.append(("after", target.id, target.name, inspect(target).modified))

    Session = sessionmaker(db)
    async with Session.begin() as session:
        session.add_all([User(name="ann"), User(name="bob"), User(name="cy")])
    listen(User, "before_update", before_update)
    listen(User, "after_update", after_update)
    async with Session.begin() as session:
        ann, bob, cy = (await session.scalars(select(User).order_by(User.id))).all()
        ann.name = "ann2"
        cy.name = "cy2"
        await session.delete(bob)
        session.add(User(name="dee"))
        await session.flush()
        # after_update ran after the UPDATE: the new values are the row's, the changes are flushed
        assert sorted(seen) == [("after", 1, "ann2", False), ("after", 3, "cy2", False),
                                ("before", 1, "ann2", True), ("before", 3, "cy2", True)]
        assert [s[0] for s in seen] == ["before", "before", "after", "after"]
    rows = await raw_sql(db, 'SELECT id, name FROM "users" ORDER BY id')
    assert rows == [(1, "ann2"), (3, "cy2"), (4, "dee")]
    seen.clear()
    async with Session() as session:
        ann = await session.get_one(User, 1)
        ann.name = "ann2"  # no net change: no UPDATE, but both events all the same (SQLAlchemy)
        with sql(db) as log:
            await session.flush()
        assert log.count("UPDATE") == 0
        assert seen == [("before", 1, "ann2", True), ("after", 1, "ann2", False)]
        await session.commit()


async def test_after_and_delete_events_in_plan_order(db: aiouow.Engine, listen: Listen) -> None:
    order: list[str] = []
    for name in ("before_insert", "after_insert", "before_delete", "after_delete"):
        for model in (User, Post):
            def fn(mapper: aiouow.Mapper, connection: aiouow.Connection, target: Any, name: str = name) -> None:
                key = getattr(target, "id", None)
                order.append(f"{name} {type(target).__name__} {key}")
            listen(model, name, fn)
    Session = sessionmaker(db)
    async with Session.begin() as session:
        session.add(User(name="ann", posts=[Post(title="p")]))
    assert order == ["before_insert User None", "before_insert Post None",
                     "after_insert User 1", "after_insert Post 1"]
    order.clear()
    async with Session.begin() as session:
        ann = await session.get_one(User, 1)
        await session.delete(ann)  # cascade: the post goes first
    assert order == ["before_delete Post 1", "before_delete User 1", "after_delete Post 1", "after_delete User 1"]


async def test_listener_on_a_base_class_applies_to_subclasses(db: aiouow.Engine, listen: Listen) -> None:
    seen: list[str] = []
    listen(Model, "before_insert", lambda m, c, t: seen.append(f"Model:{type(t).__name__}"))
    listen(User, "before_insert", lambda m, c, t: seen.append("User"))
    Session = sessionmaker(db)
    async with Session.begin() as session:
        session.add_all([User(name="ann"), Tag(name="t")])
    # unrelated tables come in no promised order; for one object, the base's listener runs first
    assert sorted(seen) == ["Model:Tag", "Model:User", "User"]
    assert seen.index("Model:User") == seen.index("User") - 1


async def test_before_insert_failure_writes_nothing(db: aiouow.Engine, listen: Listen, sql: Any) -> None:
    def refuse(mapper: aiouow.Mapper, connection: aiouow.Connection, target: Post) -> None:
        raise ValueError(f"no posts titled {target.title!r}")

    listen(Post, "before_insert", refuse)
    Session = sessionmaker(db)
    async with Session() as session:
        session.add(User(name="ann", posts=[Post(title="spam")]))
        with sql(db) as log:
            with pytest.raises(ValueError, match="spam"):
                await session.commit()
        assert log.count("INSERT") == 0
        with pytest.raises(exc.PendingRollbackError):
            await session.get(User, 1)
        await session.rollback()
        assert not session.new
    assert await count(db, "users") == 0


def test_model_and_state_events_refuse_async_def() -> None:
    async def hook(*args: Any) -> None:
        pass

    with pytest.raises(exc.ArgumentError, match="before_insert.*async def"):
        events.listen(User, "before_insert", hook)
    with pytest.raises(exc.ArgumentError, match="transient_to_pending.*async def"):
        events.listen(sessionmaker(), "transient_to_pending", hook)
    assert not events.active


def test_wrong_targets_and_names() -> None:
    Session = sessionmaker()
    with pytest.raises(exc.ArgumentError, match="model event.*model class"):
        events.listen(Session, "before_insert", print)
    with pytest.raises(exc.ArgumentError, match="session event"):
        events.listen(User, "after_commit", print)
    with pytest.raises(exc.ArgumentError, match="no event named 'before_flsuh'"):
        events.listen(Session, "before_flsuh", print)
    with pytest.raises(exc.ArgumentError, match="takes a sessionmaker"):
        events.listen(object(), "after_commit", print)
    with pytest.raises(exc.InvalidRequestError, match="not listening"):
        events.remove(Session, "after_commit", print)
    assert not events.active


# -- commit / rollback / begin ----------------------------------------------------------------
async def test_after_commit_and_its_failure(db: aiouow.Engine, listen: Listen) -> None:
    Session = sessionmaker(db)
    states: list[bool] = []

    async def after_commit(session: aiouow.AsyncSession) -> None:
        states.append(session.in_transaction())
        if len(states) == 2:
            raise RuntimeError("notify failed")

    listen(Session, "after_commit", after_commit)
    async with Session() as session:
        session.add(User(name="ann"))
        await session.commit()
        session.add(User(name="bob"))
        with pytest.raises(RuntimeError, match="notify failed"):
            await session.commit()
        # the commit is done: both rows are there and the session goes on
        assert not session.in_transaction() and session.is_active
        assert await session.scalar(select(aiouow.func.count(User.id))) == 2
    assert states == [False, False]
    assert await count(db, "users") == 2


async def test_after_rollback_once_per_database_rollback(db: aiouow.Engine, listen: Listen) -> None:
    Session = sessionmaker(db)
    calls: list[str] = []

    async def after_rollback(session: aiouow.AsyncSession) -> None:
        calls.append(session._state.value)

    listen(Session, "after_rollback", after_rollback)
    async with Session() as session:
        await session.rollback()  # no transaction: nothing rolled back, no event
        assert calls == []
        session.add(User(name="ann"))
        await session.rollback()
        assert calls == ["idle"]
        session.add_all([User(name="x", email="same"), User(name="y", email="same")])
        with pytest.raises(exc.IntegrityError):
            await session.flush()
        assert calls == ["idle", "failed"]  # at the database's rollback, as in SQLAlchemy
        await session.rollback()
        assert calls == ["idle", "failed"]  # ... not again at rollback()
        session.add(User(name="z"))
        await session.flush()
        async with session.begin_nested():
            session.add(User(name="z2"))
        sp = await session.begin_nested()
        session.add(User(name="z3"))
        await session.flush()
        await sp.rollback()  # ROLLBACK TO SAVEPOINT: after_rollback, as SQLAlchemy
        assert calls == ["idle", "failed", "active"]
        await session.commit()
    assert await raw_sql(db, 'SELECT name FROM "users" ORDER BY name') == [("z",), ("z2",)]


async def test_after_commit_follows_a_savepoint_release(db: aiouow.Engine, listen: Listen) -> None:
    Session = sessionmaker(db)
    calls: list[bool] = []
    listen(Session, "after_commit", lambda s: calls.append(s.in_nested_transaction()))
    async with Session() as session:
        session.add(User(name="a"))
        async with session.begin_nested():
            session.add(User(name="b"))
        assert calls == [False]
        await session.commit()
    assert calls == [False, False]


async def test_after_begin_may_run_statements(db: aiouow.Engine, listen: Listen) -> None:
    Session = sessionmaker(db)
    seen: list[Any] = []

    async def after_begin(session: aiouow.AsyncSession, connection: aiouow.Connection) -> None:
        seen.append((await connection.execute(text("SELECT 41 + 1"))).scalar())

    listen(Session, "after_begin", after_begin)
    async with Session() as session:
        session.add(User(name="a"))
        await session.commit()
        await session.get(User, 1)
        await session.get(User, 1)  # identity map: no connection, no event
        await session.commit()
    assert seen == [42, 42]


async def test_after_begin_failure_fails_the_transaction(db: aiouow.Engine, listen: Listen) -> None:
    Session = sessionmaker(db)

    def after_begin(session: aiouow.AsyncSession, connection: aiouow.Connection) -> None:
        raise RuntimeError("no tenant")

    listen(Session, "after_begin", after_begin)
    async with Session() as session:
        with pytest.raises(RuntimeError, match="no tenant"):
            await session.execute(select(User))
        with pytest.raises(exc.PendingRollbackError):
            await session.execute(select(User))
        await session.rollback()
    assert db.pool.checked_out == 0


# -- state events -----------------------------------------------------------------------------
async def test_state_events(db: aiouow.Engine, listen: Listen) -> None:
    Session = sessionmaker(db)
    seen: list[tuple[str, str, Any]] = []
    for name in ("transient_to_pending", "pending_to_persistent", "persistent_to_deleted",
                 "persistent_to_detached"):
        listen(Session, name, lambda s, obj, name=name: seen.append((name, obj.name, inspect(obj).persistent)))
    async with Session() as session:
        ann, bob = User(name="ann"), User(name="bob")
        session.add_all([ann, bob])
        assert seen == [("transient_to_pending", "ann", False), ("transient_to_pending", "bob", False)]
        seen.clear()
        await session.commit()
        assert seen == [("pending_to_persistent", "ann", True), ("pending_to_persistent", "bob", True)]
        seen.clear()
        ann = await session.get_one(User, 1)
        bob = await session.get_one(User, 2)
        session.expunge(bob)
        assert seen == [("persistent_to_detached", "bob", False)]
        seen.clear()
        await session.delete(ann)
        await session.flush()
        assert seen == [("persistent_to_deleted", "ann", False)]
        await session.rollback()
        seen.clear()
        await session.get_one(User, 1)
    assert [(n, name) for n, name, _ in seen] == [("persistent_to_detached", "ann")]  # close()


async def test_session_listener_and_maker_listener_scope(db: aiouow.Engine, listen: Listen) -> None:
    Session = sessionmaker(db)
    early = Session()  # made before the listener: a sessionmaker's listeners apply to it too
    other = sessionmaker(db)()
    late = Session()
    calls: list[str] = []
    listen(Session, "after_commit", lambda s: calls.append("maker"))
    listen(late, "after_commit", lambda s: calls.append("late"))
    for name, session in (("early", early), ("other", other), ("late", late)):
        async with session:
            session.add(User(name=name))
            await session.commit()
    assert calls == ["maker", "maker", "late"]


def test_listens_for_returns_the_function() -> None:
    Session = sessionmaker()

    @events.listens_for(Session, "after_commit")
    def on_commit(session: aiouow.AsyncSession) -> None:
        pass

    assert events.contains(Session, "after_commit", on_commit)
    events.remove(Session, "after_commit", on_commit)
    assert not events.contains(Session, "after_commit", on_commit) and not events.active


async def test_core_insert_of_audit_rows_uses_the_session_connection(db: aiouow.Engine, listen: Listen) -> None:
    """A statement run from after_flush is on the flush's connection: inside its transaction."""
    Session = sessionmaker(db)
    conns: list[Any] = []

    async def after(session: aiouow.AsyncSession, flush: events.FlushContext) -> None:
        conns.append(await session.connection())
        await session.execute(insert(Tag), [{"name": "audit"}])

    listen(Session, "after_flush", after)
    async with Session() as session:
        session.add(User(name="a"))
        await session.flush()
        assert conns == [session._conn]
        assert await session.scalar(select(Tag.name)) == "audit"
        await session.rollback()
    assert await count(db, "tags") == 0


async def test_cancelled_flush_announces_the_rollback_at_rollback(db: aiouow.Engine, listen: Listen) -> None:
    Session = sessionmaker(db)
    calls: list[str] = []

    async def slow(session: aiouow.AsyncSession, flush: events.FlushContext) -> None:
        await session.execute(select(User.id))
        await asyncio.sleep(10)

    listen(Session, "before_flush", slow)
    listen(Session, "after_rollback", lambda s: calls.append(s._state.value))
    async with Session() as session:
        session.add(User(name="ann"))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await session.flush()
        assert calls == []  # the cancellation propagated at once (the database side is rolled back)
        assert db.pool.checked_out == 0
        await session.rollback()
        assert calls == ["idle"]
    assert await count(db, "users") == 0


async def test_model_hooks_run_in_the_collector_pause_session_hooks_outside(db: aiouow.Engine,
                                                                           listen: Listen) -> None:
    seen: dict[str, set[bool]] = {"model": set(), "before_flush": set(), "after_flush": set()}

    def model(mapper: aiouow.Mapper, connection: aiouow.Connection, target: Tag) -> None:
        seen["model"].add(gc.isenabled())
        target.name = target.name.upper()

    Session = sessionmaker(db)
    listen(Tag, "before_insert", model)
    listen(Session, "before_flush", lambda s, f: seen["before_flush"].add(gc.isenabled()))
    listen(Session, "after_flush", lambda s, f: seen["after_flush"].add(gc.isenabled()))
    assert gc.isenabled()
    async with Session.begin() as session:
        session.add_all([Tag(name=f"t{i}") for i in range(1200)])  # past _gc.GC_PAUSE_MIN
    assert seen == {"model": {False}, "before_flush": {True}, "after_flush": {True}}
    assert gc.isenabled()
    rows = await raw_sql(db, 'SELECT count(*) FROM "tags" WHERE substr(name, 1, 1) = \'T\'')
    assert rows[0][0] == 1200


async def test_before_delete_failure_deletes_nothing(db: aiouow.Engine, listen: Listen) -> None:
    Session = sessionmaker(db)
    async with Session.begin() as session:
        session.add(User(name="ann", posts=[Post(title="keep")]))

    def refuse(mapper: aiouow.Mapper, connection: aiouow.Connection, target: User) -> None:
        raise PermissionError(f"{target.name} may not be deleted")

    listen(User, "before_delete", refuse)
    async with Session() as session:
        ann = await session.get_one(User, 1)
        await session.delete(ann)
        with pytest.raises(PermissionError):
            await session.commit()
        await session.rollback()
        assert inspect(ann).persistent
    assert await count(db, "users") == 1 and await count(db, "posts") == 1
