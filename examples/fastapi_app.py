"""A small FastAPI service on aiouow: authors, their books, and tags on books (many-to-many).

    pip install -e '.[test]' uvicorn
    AIOUOW_URL=sqlite:///books.db uvicorn examples.fastapi_app:app
    curl -X POST localhost:8000/authors -H 'content-type: application/json' -d '{"name": "Ann"}'
    curl -X POST localhost:8000/books -H 'content-type: application/json' \\
         -d '{"title": "Tides", "author_id": 1, "tags": ["sea", "poems"]}'
    curl 'localhost:8000/books?limit=10&offset=0'

Each request gets its session from ``Depends(get_session)`` (``aiouow.asgi.session_dependency``):
closed after the response, rolled back if the endpoint raised; endpoints commit explicitly.
Responses are Pydantic models read from the objects (``from_attributes=True``): what a response
nests is loaded in the query (``selectinload``), because aiouow never loads on attribute access;
a relationship the query did not load makes the response fail with ``NotLoadedError`` naming it,
never a silent empty list and never a hidden query.

Table names are prefixed (``fa_``) to keep them apart from the test suite's tables.
"""

# no `from __future__ import annotations`: FastAPI reads the endpoints' annotations, and `DB` below
# is local to create_app()
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from aiouow import (
    AsyncSession,
    Column,
    Engine,
    ForeignKey,
    Mapped,
    Model,
    Table,
    column,
    create_engine,
    func,
    relationship,
    select,
    selectinload,
    sessionmaker,
)
from aiouow import types as T
from aiouow.asgi import session_dependency
from aiouow.exc import IntegrityError

book_tags = Table(
    "fa_book_tags",
    Column("book_id", T.Integer(), ForeignKey("fa_books.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", T.Integer(), ForeignKey("fa_tags.id", ondelete="CASCADE"), primary_key=True),
)


class Author(Model):
    __tablename__ = "fa_authors"
    id: Mapped[int] = column(primary_key=True)
    name: Mapped[str] = column(type_=T.String(100), unique=True)
    books: Mapped[list["Book"]] = relationship(back_populates="author", order_by="id")


class Book(Model):
    __tablename__ = "fa_books"
    id: Mapped[int] = column(primary_key=True)
    title: Mapped[str] = column(type_=T.String(200))
    author_id: Mapped[int] = column(ForeignKey("fa_authors.id"), index=True)
    author: Mapped[Author] = relationship(back_populates="books")
    tags: Mapped[list["Tag"]] = relationship(secondary=book_tags, order_by="name")


class Tag(Model):
    __tablename__ = "fa_tags"
    id: Mapped[int] = column(primary_key=True)
    name: Mapped[str] = column(type_=T.String(40), unique=True)


# -- the API's shapes ------------------------------------------------------------------------------
class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class AuthorIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)


class BookIn(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    author_id: int
    tags: list[str] = []


class BookPatch(BaseModel):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    tags: list[str] | None = None


class AuthorOut(Schema):
    id: int
    name: str


class TagOut(Schema):
    name: str


class BookOut(Schema):
    id: int
    title: str
    author: AuthorOut
    tags: list[TagOut]


class BookBrief(Schema):
    id: int
    title: str


class AuthorWithBooks(AuthorOut):
    books: list[BookBrief]


class BookPage(BaseModel):
    items: list[BookOut]
    total: int
    limit: int
    offset: int


def create_app(engine: Engine) -> FastAPI:
    # expire_on_commit=False: what was committed stays readable to build the response
    get_session = session_dependency(sessionmaker(engine, expire_on_commit=False))
    DB = Annotated[AsyncSession, Depends(get_session)]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await Model.metadata.create_all(engine, tables=[Author.__table__, Book.__table__, Tag.__table__, book_tags])
        yield
        await engine.dispose()

    app = FastAPI(title="books", lifespan=lifespan)

    @app.exception_handler(IntegrityError)
    async def conflict(request: Request, err: IntegrityError) -> JSONResponse:
        return JSONResponse({"detail": "conflicts with an existing row"}, status_code=409)

    async def tags_named(session: AsyncSession, names: list[str]) -> list[Tag]:
        wanted = sorted(set(names))
        found = {t.name: t for t in (await session.scalars(select(Tag).where(Tag.name.in_(wanted)))).all()}
        for name in wanted:
            if name not in found:
                found[name] = Tag(name=name)
                session.add(found[name])
        return [found[n] for n in wanted]

    async def book_or_404(session: AsyncSession, book_id: int) -> Book:
        book = (await session.scalars(
            select(Book).where(Book.id == book_id).options(selectinload(Book.author), selectinload(Book.tags))
        )).one_or_none()
        if book is None:
            raise HTTPException(404, f"no book {book_id}")
        return book

    @app.post("/authors", status_code=201, response_model=AuthorOut)
    async def create_author(data: AuthorIn, session: DB) -> Author:
        author = Author(name=data.name)
        session.add(author)
        await session.commit()
        return author

    @app.get("/authors/{author_id}", response_model=AuthorWithBooks)
    async def get_author(author_id: int, session: DB) -> Author:
        author = await session.get(Author, author_id, options=[selectinload(Author.books)])
        if author is None:
            raise HTTPException(404, f"no author {author_id}")
        return author

    @app.post("/books", status_code=201, response_model=BookOut)
    async def create_book(data: BookIn, session: DB) -> Book:
        author = await session.get(Author, data.author_id)
        if author is None:
            raise HTTPException(422, f"no author {data.author_id}")
        book = Book(title=data.title, author=author, tags=await tags_named(session, data.tags))
        session.add(book)
        await session.commit()
        return book

    @app.get("/books", response_model=BookPage)
    async def list_books(session: DB, limit: Annotated[int, Query(ge=1, le=100)] = 20,
                         offset: Annotated[int, Query(ge=0)] = 0, tag: str | None = None) -> BookPage:
        query = select(Book).order_by(Book.id)
        if tag is not None:
            query = query.join(Book.tags).where(Tag.name == tag)
        total = await session.scalar(select(func.count()).select_from(query.subquery()))
        page = (await session.scalars(query.limit(limit).offset(offset)
                                      .options(selectinload(Book.author), selectinload(Book.tags)))).all()
        items = [BookOut.model_validate(b) for b in page]
        return BookPage(items=items, total=total or 0, limit=limit, offset=offset)

    @app.get("/books/{book_id}", response_model=BookOut)
    async def get_book(book_id: int, session: DB) -> Book:
        return await book_or_404(session, book_id)

    @app.patch("/books/{book_id}", response_model=BookOut)
    async def update_book(book_id: int, data: BookPatch, session: DB) -> Book:
        book = await book_or_404(session, book_id)
        if data.title is not None:
            book.title = data.title
        if data.tags is not None:
            book.tags = await tags_named(session, data.tags)
        await session.commit()
        return book

    @app.delete("/books/{book_id}", status_code=204)
    async def delete_book(book_id: int, session: DB) -> None:
        await session.delete(await book_or_404(session, book_id))
        await session.commit()

    @app.get("/books/{book_id}/unloaded", response_model=BookOut)
    async def book_without_its_tags(book_id: int, session: DB) -> Book:
        """A bug on purpose: the response needs ``tags``, which this query does not load."""
        book = await session.get(Book, book_id, options=[selectinload(Book.author)], populate_existing=True)
        if book is None:
            raise HTTPException(404, f"no book {book_id}")
        return book

    return app


app = create_app(create_engine(os.environ.get("AIOUOW_URL", "sqlite:///books.db")))
