"""examples/fastapi_app.py end to end through httpx.AsyncClient, on SQLite and PostgreSQL, plus
Pydantic v2 validation straight from aiouow objects: the session dependency closes the session
after the response and rolls back a failed request; responses read loaded columns and
relationships; an unloaded one fails with aiouow's NotLoadedError naming it, without SQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

pytest.importorskip("fastapi", reason="FastAPI is in the test extra")

from fastapi import Depends, FastAPI  # noqa: E402
from pydantic import ValidationError  # noqa: E402

from aiouow import AsyncSession, Engine, scoped_session, select, selectinload, sessionmaker  # noqa: E402
from aiouow.asgi import session_dependency  # noqa: E402
from aiouow.exc import NotLoadedError  # noqa: E402
from aiouow.pydantic import model_validate  # noqa: E402
from examples.fastapi_app import Author, Book, BookOut, Tag, TagOut, create_app  # noqa: E402

from .conftest import capture_sql  # noqa: E402


@pytest.fixture
async def client(db: Engine) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(db), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c
    assert db.pool.checked_out == 0, "a request's session was not closed"


async def _rows(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        return [tuple(r) for r in await conn.exec_driver_sql(sql)]


async def test_crud_with_nested_responses_and_a_many_to_many(db: Engine, client: httpx.AsyncClient) -> None:
    ann = (await client.post("/authors", json={"name": "Ann"})).json()
    assert ann == {"id": ann["id"], "name": "Ann"}
    r = await client.post("/books", json={"title": "Tides", "author_id": ann["id"], "tags": ["sea", "poems"]})
    assert r.status_code == 201, r.text
    book = r.json()
    assert book["author"] == ann and book["tags"] == [{"name": "poems"}, {"name": "sea"}]
    second = (await client.post("/books", json={"title": "Salt", "author_id": ann["id"], "tags": ["sea"]})).json()
    assert second["tags"] == [{"name": "sea"}]
    assert await _rows(db, "SELECT count(*) FROM fa_tags") == [(2,)]  # "sea" was reused, not duplicated

    got = (await client.get(f"/authors/{ann['id']}")).json()
    assert [b["title"] for b in got["books"]] == ["Tides", "Salt"]
    r = await client.patch(f"/books/{book['id']}", json={"title": "Tides II", "tags": ["waves"]})
    assert r.status_code == 200 and r.json()["title"] == "Tides II" and r.json()["tags"] == [{"name": "waves"}]
    assert sorted(await _rows(db, "SELECT t.name FROM fa_book_tags bt JOIN fa_tags t ON t.id = bt.tag_id "
                                  f"WHERE bt.book_id = {book['id']}")) == [("waves",)]
    assert (await client.delete(f"/books/{book['id']}")).status_code == 204
    assert (await client.get(f"/books/{book['id']}")).status_code == 404
    assert await _rows(db, f"SELECT count(*) FROM fa_book_tags WHERE book_id = {book['id']}") == [(0,)]


async def test_pagination_with_the_total_count(db: Engine, client: httpx.AsyncClient) -> None:
    a = (await client.post("/authors", json={"name": "Bo"})).json()
    for i in range(23):
        tags = ["even"] if i % 2 == 0 else []
        assert (await client.post("/books", json={"title": f"b{i:02}", "author_id": a["id"], "tags": tags})
                ).status_code == 201
    pages = [(await client.get("/books", params={"limit": 10, "offset": off})).json() for off in (0, 10, 20)]
    assert [p["total"] for p in pages] == [23, 23, 23]
    assert [b["title"] for p in pages for b in p["items"]] == [f"b{i:02}" for i in range(23)]
    even = (await client.get("/books", params={"limit": 5, "offset": 10, "tag": "even"})).json()
    assert even["total"] == 12 and [b["title"] for b in even["items"]] == ["b20", "b22"]
    assert (await client.get("/books", params={"limit": 0})).status_code == 422


async def test_a_failed_request_writes_nothing_and_conflicts_are_409(db: Engine, client: httpx.AsyncClient) -> None:
    assert (await client.post("/authors", json={"name": "Cy"})).status_code == 201
    assert (await client.post("/authors", json={"name": "Cy"})).status_code == 409
    assert (await client.post("/books", json={"title": "x", "author_id": 999999})).status_code == 422
    assert await _rows(db, "SELECT name FROM fa_authors") == [("Cy",)]
    assert await _rows(db, "SELECT count(*) FROM fa_books") == [(0,)]


async def test_an_unloaded_relationship_fails_the_response_naming_it(db: Engine, client: httpx.AsyncClient) -> None:
    a = (await client.post("/authors", json={"name": "Di"})).json()
    b = (await client.post("/books", json={"title": "t", "author_id": a["id"], "tags": ["x"]})).json()
    with capture_sql(db) as log:
        r = await client.get(f"/books/{b['id']}/unloaded")
    assert r.status_code == 500
    # the query and the author's selectinload; serializing the unloaded tags sent nothing
    assert log.count("SELECT") == 2


def _probe_app(factory: sessionmaker | scoped_session, events: list[str]) -> FastAPI:
    app = FastAPI()
    get_session = session_dependency(factory)

    @app.post("/boom")
    async def boom(session: AsyncSession = Depends(get_session)) -> None:  # noqa: B008
        session.add(Author(name=f"ghost-{len(events)}"))
        await session.flush()
        events.append("flushed")
        raise RuntimeError("the endpoint failed after a flush")

    @app.get("/same")
    async def same(session: AsyncSession = Depends(get_session)) -> dict[str, bool]:  # noqa: B008
        # with a scoped_session, db() in the request's task is the dependency's session
        current = factory() if isinstance(factory, scoped_session) else session
        return {"same": current is session}

    return app


@pytest.mark.parametrize("scoped", [False, True])
async def test_the_dependency_rolls_back_when_the_endpoint_raises(db: Engine, scoped: bool) -> None:
    events: list[str] = []
    factory = scoped_session(sessionmaker(db)) if scoped else sessionmaker(db)
    transport = httpx.ASGITransport(app=_probe_app(factory, events), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        assert (await c.post("/boom")).status_code == 500
        assert (await c.get("/same")).json() == {"same": True}
    assert db.pool.checked_out == 0
    assert events == ["flushed"]
    assert await _rows(db, "SELECT count(*) FROM fa_authors") == [(0,)]
    with pytest.raises(TypeError, match="sessionmaker or a scoped_session"):
        session_dependency(db)  # type: ignore[arg-type]


async def test_pydantic_reads_loaded_objects_and_refuses_unloaded_ones(db: Engine) -> None:
    async with AsyncSession(db) as s:
        author = Author(name="Eve")
        s.add(Book(title="One", author=author, tags=[Tag(name="a"), Tag(name="b")]))
        await s.commit()
    async with AsyncSession(db) as s:
        loaded = (await s.scalars(select(Book).options(selectinload(Book.author), selectinload(Book.tags)))).one()
        out = BookOut.model_validate(loaded)
        assert out.model_dump() == {"id": loaded.id, "title": "One", "author": {"id": author.id, "name": "Eve"},
                                    "tags": [{"name": "a"}, {"name": "b"}]}
    async with AsyncSession(db) as s:
        bare = (await s.scalars(select(Book))).one()
        with capture_sql(db) as log, pytest.raises(ValidationError) as caught:
            BookOut.model_validate(bare)
        assert log.statements == []  # no hidden query
        # Pydantic turns what an attribute raises into a validation error, aiouow's text kept
        errors = [e for e in caught.value.errors() if e["type"] == "get_attribute_error"]
        assert [e["loc"] for e in errors] == [("author",), ("tags",)]
        assert "NotLoadedError: Book.author is not loaded" in str(errors[0]["ctx"]["error"])
        # aiouow.pydantic.model_validate raises the NotLoadedError itself
        with capture_sql(db) as log, pytest.raises(NotLoadedError, match="Book.author is not loaded"):
            model_validate(BookOut, bare)
        assert log.statements == []
        await s.load(bare, "author")
        with pytest.raises(NotLoadedError, match="Book.tags is not loaded"):
            model_validate(BookOut, bare)
        await s.load(bare, "tags")
        assert model_validate(BookOut, bare).tags == [TagOut(name="a"), TagOut(name="b")]
        # nested objects are checked too, and expired columns like relationships
        s.expire(bare.author, ["name"])
        with pytest.raises(NotLoadedError, match="Author.name is not loaded"):
            model_validate(BookOut, bare)
        s.expire(bare, ["title"])
        with pytest.raises(ValidationError, match="Book.title is not loaded"):
            BookOut.model_validate(bare)
    # a new object's relationships were never loaded from anywhere: they read as empty
    fresh = Book(id=10, title="new", author=Author(id=20, name="Fay"))
    assert model_validate(BookOut, fresh).tags == []
