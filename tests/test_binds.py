"""Several engines in one session: ``sessionmaker(engine, binds={Model: other_engine})`` and
``get_bind``.

The session's own engine is the test database (SQLite or PostgreSQL, the ``engine``
fixture); the other engine is a second real database: PostgreSQL ``<test db>_binds2``, made if missing
(two PostgreSQL databases, or SQLite + PostgreSQL) or an SQLite file (PostgreSQL +
SQLite, or two SQLite files).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import aiouow
from aiouow import (
    AsyncSession,
    ForeignKey,
    Model,
    column,
    create_engine,
    joinedload,
    relationship,
    select,
    selectinload,
    sessionmaker,
    text,
)
from tests.conftest import empty_pg_database, require_pg


class BindAuthor(Model):
    __tablename__ = "bind_authors"
    id: int = column(primary_key=True)
    name: str = column()
    notes: list[BindNote] = relationship(back_populates="author", order_by="BindNote.id")


class BindNote(Model):
    """Lives on the other engine: its foreign key is not enforced across databases."""

    __tablename__ = "bind_notes"
    id: int = column(primary_key=True)
    author_id: int = column(ForeignKey("bind_authors.id"))
    body: str = column()
    author: BindAuthor = relationship(back_populates="notes")


_NOTES_DDL = {
    # the unique constraint is checked at COMMIT: it makes that engine's commit fail on purpose
    "postgresql": "CREATE TABLE bind_notes (id BIGSERIAL PRIMARY KEY, author_id BIGINT NOT NULL, "
                  "body TEXT NOT NULL, CONSTRAINT bind_notes_body_key UNIQUE (body) DEFERRABLE INITIALLY DEFERRED)",
    "sqlite": "CREATE TABLE bind_notes (id INTEGER PRIMARY KEY AUTOINCREMENT, author_id INTEGER NOT NULL, "
              "body TEXT NOT NULL)",
}


@pytest.fixture(scope="module", params=["other_postgresql", "other_sqlite"])
async def other_engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                       ) -> AsyncIterator[aiouow.Engine]:
    """The second database, holding bind_notes (without a foreign key to the other database)."""
    if request.param == "other_postgresql":
        await require_pg()
        eng = create_engine(await empty_pg_database("binds2"), pool_size=3)
    else:
        path: Path = tmp_path_factory.mktemp("binds") / "other.db"
        eng = create_engine(f"sqlite:///{path}")
    async with eng.begin() as conn:
        await conn.exec_driver_sql("DROP TABLE IF EXISTS bind_notes")
        await conn.exec_driver_sql(_NOTES_DDL[eng.dialect.name])
    yield eng
    async with eng.begin() as conn:
        await conn.exec_driver_sql("DROP TABLE IF EXISTS bind_notes")
    await eng.dispose()


@pytest.fixture
async def two(db: aiouow.Engine, other_engine: aiouow.Engine) -> AsyncIterator[tuple[aiouow.Engine, aiouow.Engine]]:
    async with other_engine.begin() as conn:
        if other_engine.dialect.name == "postgresql":
            await conn.exec_driver_sql("TRUNCATE bind_notes RESTART IDENTITY")
        else:
            await conn.exec_driver_sql("DELETE FROM bind_notes")
            await conn.exec_driver_sql("DELETE FROM sqlite_sequence WHERE name = 'bind_notes'")
    yield db, other_engine
    assert other_engine.pool.checked_out == 0, "a test left a connection to the other engine checked out"


async def rows(engine: aiouow.Engine, sql: str) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(text(sql))).all()]


async def test_each_engine_flushes_and_commits_its_own_rows(two: Any) -> None:
    main, other = two
    Session = sessionmaker(main, binds={BindNote: other})
    async with Session() as s:
        a = BindAuthor(name="ann", notes=[BindNote(body="n1"), BindNote(body="n2")])
        s.add(a)
        await s.flush()
        # the generated key of the author (main engine) went into the notes (other engine)
        assert [n.author_id for n in a.notes] == [a.id, a.id]
        await s.commit()
    assert await rows(main, "SELECT id, name FROM bind_authors") == [(1, "ann")]
    assert await rows(main, "SELECT count(*) FROM bind_notes") == [(0,)]
    assert await rows(other, "SELECT author_id, body FROM bind_notes ORDER BY id") == [(1, "n1"), (1, "n2")]

    async with Session() as s:
        note = (await s.scalars(select(BindNote).where(BindNote.body == "n2"))).one()
        note.body = "n2!"
        s.add(BindAuthor(name="bob"))
        await s.rollback()  # both engines roll back
    assert await rows(other, "SELECT body FROM bind_notes ORDER BY id") == [("n1",), ("n2",)]
    assert await rows(main, "SELECT name FROM bind_authors") == [("ann",)]


async def test_queries_route_by_entity_and_relationships_load_per_engine(two: Any) -> None:
    main, other = two
    Session = sessionmaker(main, binds={BindNote: other})
    async with Session() as s:
        s.add(BindAuthor(name="ann", notes=[BindNote(body="x"), BindNote(body="y")]))
        await s.commit()
    async with Session() as s:
        assert (await s.scalars(select(BindNote.body).order_by(BindNote.id))).all() == ["x", "y"]
        authors = (await s.scalars(select(BindAuthor).options(selectinload(BindAuthor.notes)))).all()
        assert [n.body for n in authors[0].notes] == ["x", "y"]
        note = await s.get_one(BindNote, 1)
        assert note.author is authors[0]  # the many-to-one was set by the selectinload
    async with Session() as s:
        note = await s.get_one(BindNote, 2)
        author = await s.load(note, "author")
        assert author.name == "ann"
        assert [n.body for n in await s.load(author, BindAuthor.notes)] == ["x", "y"]
        with pytest.raises(aiouow.exc.InvalidRequestError, match="different engines.*selectinload"):
            await s.execute(select(BindAuthor).join(BindAuthor.notes))
        with pytest.raises(aiouow.exc.InvalidRequestError, match="different engines"):
            await s.execute(select(BindAuthor).options(joinedload(BindAuthor.notes)))
        # literal SQL names no entity: the session's own engine
        assert await s.scalar(text("SELECT count(*) FROM bind_notes")) == 0


async def test_a_session_without_a_default_engine(two: Any) -> None:
    main, other = two
    async with AsyncSession(binds={BindAuthor: main, BindNote: other}) as s:
        s.add(BindAuthor(name="a", notes=[BindNote(body="b")]))
        await s.commit()
        assert (await s.scalars(select(BindNote.body))).all() == ["b"]
        with pytest.raises(aiouow.exc.InvalidRequestError, match="no engine"):
            await s.execute(text("SELECT 1"))


async def test_get_bind_hook_and_subclass(two: Any) -> None:
    main, other = two
    seen: list[str] = []

    def route(mapper: Any, clause: Any) -> aiouow.Engine | None:
        seen.append(mapper.class_.__name__ if mapper is not None else "-")
        return other if mapper is not None and mapper.class_ is BindNote else None

    async with sessionmaker(main, get_bind=route)() as s:
        s.add(BindAuthor(name="a", notes=[BindNote(body="h")]))
        await s.commit()
    assert "BindNote" in seen and "BindAuthor" in seen
    assert await rows(other, "SELECT body FROM bind_notes") == [("h",)]

    class Routed(AsyncSession):
        def get_bind(self, mapper: Any = None, clause: Any = None) -> aiouow.Engine | aiouow.Connection:
            if mapper is not None and mapper.class_ is BindNote:
                return other
            return super().get_bind(mapper, clause)

    async with sessionmaker(main, class_=Routed)() as s:
        assert (await s.scalars(select(BindNote.body))).all() == ["h"]
        assert (await s.scalars(select(BindAuthor.name))).all() == ["a"]


async def test_savepoint_covers_one_engine(two: Any) -> None:
    main, other = two
    async with sessionmaker(main, binds={BindNote: other})() as s:
        async with s.begin_nested():
            s.add(BindAuthor(name="a"))
            await s.flush()
            note = BindNote(author_id=1, body="in savepoint")
            s.add(note)
            with pytest.raises(aiouow.exc.InvalidRequestError, match="SAVEPOINTs cover one engine"):
                await s.flush()
            s.expunge(note)  # the refusal came before any statement: the session goes on
        assert (await s.scalars(select(BindAuthor.name))).all() == ["a"]
        await s.rollback()
        await s.scalar(select(BindNote.id))  # the other engine is in this transaction now
        with pytest.raises(aiouow.exc.InvalidRequestError, match="covers one engine only"):
            await s.begin_nested()


async def test_commit_is_not_two_phase(two: Any) -> None:
    main, other = two
    if other.dialect.name != "postgresql":
        pytest.skip("the failing COMMIT uses a deferred unique constraint (PostgreSQL)")
    async with sessionmaker(main, binds={BindNote: other})() as s:
        s.add(BindAuthor(name="a", notes=[BindNote(body="same"), BindNote(body="same")]))
        await s.flush()
        # the other engine commits first and fails: the session's own engine is rolled back
        with pytest.raises(aiouow.exc.IntegrityError):
            await s.commit()
        with pytest.raises(aiouow.exc.PendingRollbackError):
            await s.scalar(select(BindAuthor.id))
        await s.rollback()
    assert await rows(main, "SELECT count(*) FROM bind_authors") == [(0,)]
    assert await rows(other, "SELECT count(*) FROM bind_notes") == [(0,)]


async def test_not_two_phase_an_earlier_commit_stays_when_a_later_one_fails(two: Any) -> None:
    """What the README's "not two-phase" means: the other engine commits first and keeps its rows;
    the session's own engine then fails at COMMIT and is rolled back, so the notes refer to an
    author that does not exist."""
    main, other = two
    if main.dialect.name != "postgresql":
        pytest.skip("the failing COMMIT of the session's own engine uses a deferred unique constraint (PostgreSQL)")
    async with main.begin() as conn:
        await conn.exec_driver_sql("ALTER TABLE bind_authors ADD CONSTRAINT bind_authors_name_deferred "
                                   "UNIQUE (name) DEFERRABLE INITIALLY DEFERRED")
    try:
        async with sessionmaker(main, binds={BindNote: other})() as s:
            s.add_all([BindAuthor(name="twin", notes=[BindNote(body="kept")]), BindAuthor(name="twin")])
            await s.flush()  # the duplicate is only checked at COMMIT
            with pytest.raises(aiouow.exc.IntegrityError, match="bind_authors_name_deferred"):
                await s.commit()
            with pytest.raises(aiouow.exc.PendingRollbackError):
                await s.scalar(select(BindAuthor.id))
            await s.rollback()
            assert other.pool.checked_out == 0 and main.pool.checked_out == 0
    finally:
        async with main.begin() as conn:
            await conn.exec_driver_sql("ALTER TABLE bind_authors DROP CONSTRAINT bind_authors_name_deferred")
    assert await rows(main, "SELECT count(*) FROM bind_authors") == [(0,)]
    assert await rows(other, "SELECT author_id, body FROM bind_notes") == [(1, "kept")]


def test_binds_argument_errors(engine: aiouow.Engine) -> None:
    with pytest.raises(aiouow.exc.ArgumentError, match="must be an Engine"):
        AsyncSession(engine, binds={BindNote: "sqlite://"})  # type: ignore[dict-item]
    with pytest.raises(aiouow.exc.ArgumentError, match="model classes, mappers or tables"):
        AsyncSession(engine, binds={"bind_notes": engine})


async def test_cancelled_statement_on_the_other_engine_fails_the_transaction(two: Any) -> None:
    import asyncio

    from aiouow import func

    main, other = two
    if other.dialect.name != "postgresql":
        pytest.skip("a statement that sleeps on the server (pg_sleep)")
    async with other.begin() as conn:  # a row for pg_sleep to run on
        await conn.exec_driver_sql("INSERT INTO bind_notes (author_id, body) VALUES (7, 'old')")
    async with sessionmaker(main, binds={BindNote: other})() as s:
        s.add(BindAuthor(name="kept only if committed"))
        await s.flush()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(s.execute(select(BindNote.id, func.pg_sleep(5))), 0.3)
        # the other engine's transaction is gone: the rest of this unit of work must not commit
        with pytest.raises(aiouow.exc.PendingRollbackError):
            await s.commit()
        await s.rollback()
        assert other.pool.checked_out == 0 and main.pool.checked_out == 0
        assert (await s.scalars(select(BindNote.body))).all() == ["old"]
    assert await rows(main, "SELECT count(*) FROM bind_authors") == [(0,)]


async def test_configure_replicas_and_per_session_override(db: aiouow.Engine) -> None:
    replica = create_engine(db.url.raw, pool_size=2)
    try:
        Session = sessionmaker(db)
        Session.configure(replicas=[replica])
        async with Session() as s:
            await s.scalar(select(BindAuthor.id))
            assert replica.pool.checked_out == 1 and db.pool.checked_out == 0
        async with sessionmaker(db)(replicas=[replica]) as s:
            await s.scalar(select(BindAuthor.id))
            assert replica.pool.checked_out == 1
    finally:
        await replica.dispose()
