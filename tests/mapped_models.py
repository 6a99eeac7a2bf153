"""Twin models for tests/test_mapped_annotations.py, with ``from __future__ import annotations``
(every annotation is text): ``Mf*`` annotated with ``Mapped[...]``, ``Pf*`` with plain types."""

from __future__ import annotations

from decimal import Decimal
from typing import Optional

import aiouow
from aiouow import ForeignKey, Mapped, Model, column, relationship


class MfUser(Model):
    __tablename__ = "mf_users"
    id: Mapped[int] = column(primary_key=True)
    name: Mapped[str] = column(index=True)
    email: Mapped[str | None] = column(default=None, unique=True)
    nick: Mapped[Optional[str]] = column()  # noqa: UP045 - the spelling under test
    score: aiouow.Mapped[Decimal] = column(default=Decimal("0"))
    version: Mapped[int] = column(version=True)
    posts: Mapped[list[MfPost]] = relationship(back_populates="author", order_by="MfPost.id",
                                               cascade="all, delete-orphan")


class MfPost(Model):
    __tablename__ = "mf_posts"
    id: Mapped[int] = column(primary_key=True)
    author_id: Mapped[int | None] = column(ForeignKey("mf_users.id"))
    title: Mapped[str] = column()
    author: Mapped[MfUser | None] = relationship(back_populates="posts")


class PfUser(Model):
    __tablename__ = "pf_users"
    id: int = column(primary_key=True)
    name: str = column(index=True)
    email: str | None = column(default=None, unique=True)
    nick: Optional[str] = column()  # noqa: UP045 - the spelling under test
    score: Decimal = column(default=Decimal("0"))
    version: int = column(version=True)
    posts: list[PfPost] = relationship(back_populates="author", order_by="PfPost.id",
                                       cascade="all, delete-orphan")


class PfPost(Model):
    __tablename__ = "pf_posts"
    id: int = column(primary_key=True)
    author_id: int | None = column(ForeignKey("pf_users.id"))
    title: str = column()
    author: PfUser | None = relationship(back_populates="posts")
