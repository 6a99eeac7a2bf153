"""aiouow.asgi.SessionMiddleware and examples/web_app.py, end to end through httpx's
ASGI transport: each request has its own session, closed after the response, never
committed implicitly; a failing request leaves nothing behind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aiouow import AsyncSession, Engine, func, scoped_session, select, sessionmaker
from aiouow.asgi import SCOPE_KEY, SessionMiddleware
from examples.web_app import Note, create_app


@pytest.fixture
async def app_and_client(db: Engine) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    app = create_app(db)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield app, client


async def titles(engine: Engine) -> list[str]:
    async with AsyncSession(engine) as s:
        return list((await s.scalars(select(Note.title).order_by(Note.title))).all())


async def test_crud_through_the_app(db: Engine, app_and_client: Any) -> None:
    _, client = app_and_client
    r = await client.post("/notes", json={"title": "first", "body": "hello"})
    assert r.status_code == 201 and r.json()["title"] == "first"
    note_id = r.json()["id"]
    assert (await client.get(f"/notes/{note_id}")).json() == {"id": note_id, "title": "first", "body": "hello"}
    assert (await client.get("/notes/999999")).status_code == 404
    assert [n["title"] for n in (await client.get("/notes")).json()] == ["first"]
    assert (await client.get("/notes/count")).json() == {"count": 1}
    assert db.pool.checked_out == 0  # every request's session was closed
    assert await titles(db) == ["first"]


async def test_concurrent_requests_each_see_their_own_session(db: Engine, app_and_client: Any) -> None:
    app, client = app_and_client
    db_registry: scoped_session = app.state.db
    sessions: list[AsyncSession] = []

    async def probe(request: Request) -> Response:
        tag = request.query_params["tag"]
        session = db_registry()
        assert request.scope[SCOPE_KEY] is session
        sessions.append(session)
        session.add(Note(title=f"probe-{tag}"))  # never committed
        await session.flush()
        await asyncio.sleep(0.02)  # let the other requests interleave
        assert db_registry() is session  # still this request's session after the await
        mine = (await session.scalars(select(Note.title))).all()
        return JSONResponse({"seen": list(mine)})

    app.router.routes.append(Route("/probe", probe))
    responses = await asyncio.gather(*(client.get("/probe", params={"tag": str(i)}) for i in range(5)))
    for i, r in enumerate(responses):
        assert r.status_code == 200, r.text
        assert r.json() == {"seen": [f"probe-{i}"]}  # its own uncommitted row, nobody else's
    assert len({id(s) for s in sessions}) == 5
    # closed after the response: rolled back, connection returned, nothing committed implicitly
    assert all(not s.in_transaction() and s._conn is None and len(s.identity_map) == 0 for s in sessions)
    assert db.pool.checked_out == 0
    assert await titles(db) == []

    # requests served one after the other in one task get fresh sessions too
    await client.get("/probe", params={"tag": "a"})
    await client.get("/probe", params={"tag": "b"})
    assert sessions[-1] is not sessions[-2]


async def test_a_failing_request_leaves_nothing_behind(db: Engine, app_and_client: Any) -> None:
    _, client = app_and_client
    await client.post("/notes", json={"title": "existing"})

    # the handler fails half-way (after flushing two notes): 500, and none of them stays
    r = await client.post("/notes/import", json=[{"title": "a"}, {"title": "b"}, {"title": ""}])
    assert r.status_code == 500
    assert db.pool.checked_out == 0
    assert await titles(db) == ["existing"]

    # a database error half-way, turned into a 409 by an exception handler inside the middleware
    r = await client.post("/notes/import", json=[{"title": "c"}, {"title": "existing"}])
    assert r.status_code == 409
    assert db.pool.checked_out == 0
    assert await titles(db) == ["existing"]

    # and the service still works
    r = await client.post("/notes/import", json=[{"title": "c"}, {"title": "d"}])
    assert r.status_code == 201
    assert await titles(db) == ["c", "d", "existing"]


async def test_middleware_leaves_the_callers_session_alone_and_skips_lifespan(db: Engine) -> None:
    db_registry = scoped_session(sessionmaker(db))
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope["type"], db_registry.has(), scope.get(SCOPE_KEY)))
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    wrapped = SessionMiddleware(app, db_registry)
    mine = db_registry()
    await wrapped({"type": "lifespan"}, None, None)  # type: ignore[arg-type]

    async def send(message: Any) -> None:
        pass

    await wrapped({"type": "http", "path": "/"}, None, send)  # type: ignore[arg-type]
    assert seen[0] == ("lifespan", True, None)  # no request session for lifespan (the caller's is kept)
    assert seen[1][0] == "http" and seen[1][2] is not None and seen[1][2] is not mine
    assert db_registry() is mine
    await db_registry.remove()
    with pytest.raises(TypeError):
        SessionMiddleware(app, sessionmaker(db))  # type: ignore[arg-type]


async def test_example_counts_through_its_own_session(db: Engine, app_and_client: Any) -> None:
    _, client = app_and_client
    async with AsyncSession(db) as s:
        s.add_all([Note(title="x"), Note(title="y")])
        await s.commit()
    assert (await client.get("/notes/count")).json() == {"count": 2}
    async with AsyncSession(db) as s:
        assert await s.scalar(select(func.count(Note.id))) == 2
