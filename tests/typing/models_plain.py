"""Models with plain annotations (``name: str = column()``): instance access is typed, class
access is the annotation's type to the checker, so class-level expressions want ``Mapped``."""

from __future__ import annotations

from typing import Any, assert_type

from aiouow import (
    AsyncSession,
    ForeignKey,
    Model,
    ScalarResult,
    column,
    joinedload,
    relationship,
    select,
    selectinload,
)
from aiouow.sql import Select


class Author(Model):
    __tablename__ = "typing_plain_authors"
    id: int = column(primary_key=True)
    name: str = column()
    nickname: str | None = column(default=None)
    rank: int = 0
    books: list[Book] = relationship(back_populates="author")


class Book(Model):
    __tablename__ = "typing_plain_books"
    id: int = column(primary_key=True)
    author_id: int = column(ForeignKey("typing_plain_authors.id"))
    author: Author = relationship(back_populates="books")


a = Author(name="ann")
Author()
Author(name="a", rank=2, books=[Book()])
Author(name=1)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
Author(nmae="x")  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
assert_type(a.name, str)
assert_type(a.nickname, str | None)
assert_type(a.books, list[Book])
assert_type(Book().author, Author)
a.name = "b"
a.name = 3  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]

# class access is typed as the annotation: no column operators for the checker
assert_type(Author.name, str)
Author.name.desc()  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType]

# the model itself is typed in statements and results all the same
assert_type(select(Author), Select[tuple[Author]])
assert_type(select(Author.name), Select[Any])


async def plain_queries(session: AsyncSession) -> None:
    assert_type(await session.scalars(select(Author)), ScalarResult[Author])
    assert_type((await session.scalars(select(Author))).all(), list[Author])
    assert_type(await session.get(Author, 1), Author | None)
    assert_type(await session.load(a, "books"), Any)
    # API.md section 1's plain models load as documented: User.posts is the list to the checker
    assert_type(await session.load(a, Author.books), list[Book])
    assert_type(await session.load(Book(), Book.author), Any)
    await session.load_all([a], Author.books)
    select(Author).options(selectinload(Author.books), joinedload(Author.books))
    select(Book).options(selectinload(Book.author))
    await session.load(a, Author.rank)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]


# models hash and compare by identity (the identity map's contract): usable in sets and as keys
seen: set[Author] = {a}
by_author: dict[Author, int] = {a: 1}
assert_type(a == a, bool)
