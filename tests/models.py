"""Models shared by the test suite (the schema of API.md, plus type and key fixtures)."""

from __future__ import annotations

import datetime
import decimal
import enum
import uuid

from aiouow import Column, ForeignKey, Model, Table, column, relationship
from aiouow import types as T


class User(Model):
    __tablename__ = "users"
    id: int = column(primary_key=True)
    name: str = column()
    email: str | None = column(default=None, unique=True, index=True)
    created_at: datetime.datetime = column(default_factory=datetime.datetime.now)
    posts: list[Post] = relationship(back_populates="author", cascade="all, delete-orphan", order_by="Post.id")


class Post(Model):
    __tablename__ = "posts"
    id: int = column(primary_key=True)
    author_id: int = column(ForeignKey("users.id", ondelete="CASCADE"))
    title: str = column()
    version: int = column(version=True)
    author: User = relationship(back_populates="posts")
    tags: list[Tag] = relationship(secondary="post_tags", back_populates="posts")


class Tag(Model):
    __tablename__ = "tags"
    id: int = column(primary_key=True)
    name: str = column(unique=True)
    posts: list[Post] = relationship(secondary="post_tags", back_populates="tags")


post_tags = Table(
    "post_tags",
    Column("post_id", int, ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", int, ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True),
)


class Mood(enum.Enum):
    happy = "h"
    sad = "s"


class AllTypes(Model):
    __tablename__ = "all_types"
    id: int = column(primary_key=True)
    i: int | None = column(default=None)
    s: str | None = column(default=None)
    f: float | None = column(default=None)
    b: bool | None = column(default=None)
    raw: bytes | None = column(default=None)
    dec: decimal.Decimal | None = column(default=None)
    dt: datetime.datetime | None = column(default=None)
    dt_tz: datetime.datetime | None = column(default=None, type_=T.DateTime(timezone=True))
    d: datetime.date | None = column(default=None)
    t: datetime.time | None = column(default=None)
    td: datetime.timedelta | None = column(default=None)
    u: uuid.UUID | None = column(default=None)
    mood: Mood | None = column(default=None)
    doc: dict | None = column(default=None)
    items: list | None = column(default=None)
    short: str | None = column(default=None, type_=T.String(20))


class Membership(Model):
    """Composite primary key, no autoincrement."""

    __tablename__ = "memberships"
    org: str = column(primary_key=True)
    user_no: int = column(primary_key=True)
    role: str = column(default="member")


class Node(Model):
    """Self-referential."""

    __tablename__ = "nodes"
    id: int = column(primary_key=True)
    parent_id: int | None = column(ForeignKey("nodes.id"), default=None)
    name: str = column()
    parent: Node | None = relationship(remote_side="Node.id", back_populates="children")
    children: list[Node] = relationship(back_populates="parent")


class Account(Model):
    """Explicit (non-generated) primary key and a version counter."""

    __tablename__ = "accounts"
    code: str = column(primary_key=True)
    balance: int = column(default=0)
    version: int = column(version=True)
