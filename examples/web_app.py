"""A small web service: one aiouow session per request (Starlette).

    pip install starlette uvicorn
    AIOUOW_URL=sqlite:///notes.db uvicorn examples.web_app:app
    curl -X POST localhost:8000/notes -d '{"title": "first"}'
    curl localhost:8000/notes

``SessionMiddleware`` runs every request inside ``db.scope()``: handlers call
``db()`` to get the request's session, commit explicitly when they mean to,
and the session is closed after the response (anything not committed, for
instance because the handler failed half-way, is rolled back).

The table is created at startup; its name is prefixed (``t5_notes``) to keep
it apart from the test suite's tables in a shared database.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aiouow import Engine, Mapped, Model, column, create_engine, func, scoped_session, select, sessionmaker
from aiouow.asgi import SessionMiddleware
from aiouow.exc import IntegrityError


class Note(Model):
    __tablename__ = "t5_notes"
    id: Mapped[int] = column(primary_key=True)
    title: Mapped[str] = column(unique=True)
    body: Mapped[str] = column(default="")


def as_json(note: Note) -> dict[str, object]:
    return {"id": note.id, "title": note.title, "body": note.body}


def create_app(engine: Engine) -> Starlette:
    # expire_on_commit=False: objects stay readable after commit() to build the response
    db = scoped_session(sessionmaker(engine, expire_on_commit=False))

    async def list_notes(request: Request) -> Response:
        notes = (await db().scalars(select(Note).order_by(Note.id))).all()
        return JSONResponse([as_json(n) for n in notes])

    async def get_note(request: Request) -> Response:
        note = await db().get(Note, int(request.path_params["id"]))
        if note is None:
            return JSONResponse({"error": "no such note"}, status_code=404)
        return JSONResponse(as_json(note))

    async def create_note(request: Request) -> Response:
        data = await request.json()
        session = db()
        note = Note(title=data["title"], body=data.get("body", ""))
        session.add(note)
        await session.commit()
        return JSONResponse(as_json(note), status_code=201)

    async def import_notes(request: Request) -> Response:
        """All or nothing: every note is written (flushed) as it comes; a bad one fails the
        request, and the notes before it are never committed."""
        session = db()
        created: list[Note] = []
        for item in await request.json():
            if not str(item.get("title", "")).strip():
                raise ValueError(f"note #{len(created) + 1} has no title")
            note = Note(title=item["title"], body=item.get("body", ""))
            session.add(note)
            await session.flush()  # e.g. a duplicate title fails here, not at commit
            created.append(note)
        await session.commit()
        return JSONResponse([as_json(n) for n in created], status_code=201)

    async def count_notes(request: Request) -> Response:
        return JSONResponse({"count": await db().scalar(select(func.count(Note.id)))})

    async def conflict(request: Request, err: Exception) -> Response:
        return JSONResponse({"error": "a note with this title exists"}, status_code=409)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await Model.metadata.create_all(engine, tables=[Note.__table__])
        yield
        await engine.dispose()

    app = Starlette(
        routes=[
            Route("/notes", list_notes, methods=["GET"]),
            Route("/notes", create_note, methods=["POST"]),
            Route("/notes/import", import_notes, methods=["POST"]),
            Route("/notes/count", count_notes, methods=["GET"]),
            Route("/notes/{id:int}", get_note, methods=["GET"]),
        ],
        middleware=[Middleware(SessionMiddleware, db=db)],
        exception_handlers={IntegrityError: conflict},
        lifespan=lifespan,
    )
    app.state.db = db
    return app


app = create_app(create_engine(os.environ.get("AIOUOW_URL", "sqlite:///notes.db")))
