"""Models annotated with ``Mapped[...]``: both levels typed (checked by mypy and pyright, never run)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, assert_type

from aiouow import Column, ForeignKey, Mapped, Model, Table, column, relationship
from aiouow.sql.elements import BinaryExpression, BooleanClauseList, Label, UnaryExpression

if TYPE_CHECKING:
    # the checker's type of `Model.attr` (it does not exist at run time)
    from aiouow.mapping.attributes import InstrumentedAttribute  # noqa: F401

class User(Model):
    __tablename__ = "typing_users"
    id: Mapped[int] = column(primary_key=True)
    name: Mapped[str] = column()
    email: Mapped[str | None] = column(default=None)
    created_at: Mapped[datetime] = column(default_factory=datetime.now)
    version: Mapped[int] = column(version=True)
    posts: Mapped[list[Post]] = relationship(back_populates="author")
    tags: Mapped[list[Tag]] = relationship(secondary="typing_user_tags")


class Post(Model):
    __tablename__ = "typing_posts"
    id: Mapped[int] = column(primary_key=True)
    author_id: Mapped[int | None] = column(ForeignKey("typing_users.id"))
    title: Mapped[str] = column()
    price: Mapped[Decimal] = column(default=Decimal(0))
    author: Mapped[User | None] = relationship(back_populates="posts")


class Tag(Model):
    __tablename__ = "typing_tags"
    id: Mapped[int] = column(primary_key=True)
    label: Mapped[str] = column()


class Album(Model):
    """An existing schema's names: the database column apart from the attribute."""
    __tablename__ = "typing_albums"
    album_id: Mapped[int] = column("AlbumId", primary_key=True)
    title: Mapped[str] = column(name="Title")
    author_id: Mapped[int] = column("AuthorId", ForeignKey("typing_users.id"))


user_tags = Table(
    "typing_user_tags",
    Column("user_id", int, ForeignKey("typing_users.id"), primary_key=True),
    Column("tag_id", int, ForeignKey("typing_tags.id"), primary_key=True),
)


class Track(Model):
    """A table in a PostgreSQL schema."""
    __tablename__ = "typing_tracks"
    __table_args__ = {"schema": "music"}
    id: Mapped[int] = column(primary_key=True)
    title: Mapped[str] = column()


track_tags = Table("typing_track_tags", Column("track_id", int, primary_key=True), schema="music")
assert_type(track_tags.schema, str | None)
assert_type(track_tags.fullname, str)

# -- construction: every mapped attribute is an optional keyword, typed by its annotation ---------
ann = User(name="ann")
User()
User(name="bob", email=None, posts=[Post(title="t")], tags=[])
Post(title="t", author=ann, author_id=None, price=Decimal("1.5"))
User(name=1)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
User(nmae="x")  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
User(1)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
User(posts=[ann])  # type: ignore[list-item]  # pyright: ignore[reportArgumentType]
Post(author=Post())  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

# -- instance access: the value -------------------------------------------------------------------
assert_type(ann.id, int)
assert_type(ann.name, str)
assert_type(ann.email, str | None)
assert_type(ann.created_at, datetime)
assert_type(ann.posts, list[Post])
assert_type(Post().author, User | None)
assert_type(Post().author_id, int | None)
assert_type(Tag().label, str)
ann.name = "Ann"
ann.email = None
ann.posts.append(Post(title="x"))
ann.name = 3  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]
ann.name = None  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]
ann.posts = [ann]  # type: ignore[list-item]  # pyright: ignore[reportAttributeAccessIssue]
ann.nickname = "a"  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue]

# -- class access: a typed column expression, or the relationship ----------------------------------
assert_type(User.name, "InstrumentedAttribute[str]")
assert_type(User.posts, "InstrumentedAttribute[list[Post]]")
assert_type(User.name == "ann", BinaryExpression[bool])
assert_type(Album.title, "InstrumentedAttribute[str]")
assert_type(Album(title="t").author_id, int)
column("AlbumId", name="AlbumId", primary_key=1)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
assert_type(User.name != "ann", BinaryExpression[bool])
assert_type(User.id < 3, BinaryExpression[bool])
assert_type(User.id <= 3, BinaryExpression[bool])
assert_type(User.id > 3, BinaryExpression[bool])
assert_type(User.id >= 3, BinaryExpression[bool])
assert_type(Post.price + 1, BinaryExpression[Decimal])
assert_type(Post.price - 1, BinaryExpression[Decimal])
assert_type(Post.price * 2, BinaryExpression[Decimal])
assert_type(Post.price / 2, BinaryExpression[Decimal])
# mixed operands promote at run time (integer * decimal is a decimal): Any, never a wrong type
assert_type(Post.id * Post.price, BinaryExpression[Any])
assert_type(Post.id * Decimal("1.5"), BinaryExpression[Any])
assert_type(Post.id + Post.id, BinaryExpression[int])
assert_type(-Post.price, UnaryExpression[Decimal])
assert_type(User.name.desc(), UnaryExpression[str])
assert_type(User.name.asc(), UnaryExpression[str])
assert_type(User.name.like("a%"), BinaryExpression[bool])
assert_type(User.name.ilike("a%"), BinaryExpression[bool])
assert_type(User.name.contains("a"), BinaryExpression[bool])
assert_type(User.name.startswith("a"), BinaryExpression[bool])
assert_type(User.name.endswith("a"), BinaryExpression[bool])
assert_type(User.id.in_([1, 2]), BinaryExpression[bool])
assert_type(User.id.not_in([1, 2]), BinaryExpression[bool])
assert_type(User.email.is_(None), BinaryExpression[bool])
assert_type(User.email.is_not(None), BinaryExpression[bool])
assert_type(User.id.between(1, 2), BooleanClauseList)
assert_type(User.name.label("n"), Label[str])
assert_type((User.id > 1) & (User.name == "a"), BooleanClauseList)
assert_type((User.id > 1) | (User.name == "a"), BooleanClauseList)
assert_type(~(User.id > 1), UnaryExpression[bool])
_ = User.name.nonexistent  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType, reportUnknownVariableType]


def takes_any(value: Any) -> None: ...


takes_any(User.name)
