"""Two versions of one schema for the Alembic tests, each in a metadata of its own (never created
by the suite's ``engine`` fixture). Version 2 adds a nullable column with an index, a table, and a
foreign key to it; new columns come last, where ``ALTER TABLE ... ADD COLUMN`` puts them."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from decimal import Decimal

from aiouow import ForeignKey, MetaData, Model, column
from aiouow import types as T

V1 = MetaData()
V2 = MetaData()


class Tier(enum.Enum):
    free = 1
    premium = 2


class _V1(Model):
    metadata = V1


class _V2(Model):
    metadata = V2


class V1Author(_V1):
    __tablename__ = "mig_authors"
    id: int = column(primary_key=True)
    email: str = column(type_=T.String(120), unique=True)
    name: str = column(index=True)
    joined: dt.datetime = column()
    seen: dt.datetime | None = column(type_=T.DateTime(timezone=True))
    born: dt.date | None = column()
    wakes: dt.time | None = column()
    streak: dt.timedelta | None = column()
    score: float | None = column()
    balance: Decimal = column(type_=T.Numeric(10, 2))
    active: bool = column(default=True)
    prefs: dict | None = column()
    avatar: bytes | None = column()
    token: uuid.UUID | None = column()
    tier: Tier | None = column()
    bio: str | None = column(type_=T.Text())


class V1Post(_V1):
    __tablename__ = "mig_posts"
    id: int = column(primary_key=True)
    author_id: int = column(ForeignKey("mig_authors.id", ondelete="CASCADE"))
    title: str = column()


class V2Author(_V2):
    __tablename__ = "mig_authors"
    id: int = column(primary_key=True)
    email: str = column(type_=T.String(120), unique=True)
    name: str = column(index=True)
    joined: dt.datetime = column()
    seen: dt.datetime | None = column(type_=T.DateTime(timezone=True))
    born: dt.date | None = column()
    wakes: dt.time | None = column()
    streak: dt.timedelta | None = column()
    score: float | None = column()
    balance: Decimal = column(type_=T.Numeric(10, 2))
    active: bool = column(default=True)
    prefs: dict | None = column()
    avatar: bytes | None = column()
    token: uuid.UUID | None = column()
    tier: Tier | None = column()
    bio: str | None = column(type_=T.Text())
    nickname: str | None = column(type_=T.String(40), index=True)  # new: nullable, indexed


class V2Tag(_V2):  # new table
    __tablename__ = "mig_tags"
    id: int = column(primary_key=True)
    label: str = column(unique=True)


class V2Post(_V2):
    __tablename__ = "mig_posts"
    id: int = column(primary_key=True)
    author_id: int = column(ForeignKey("mig_authors.id", ondelete="CASCADE"))
    title: str = column()
    tag_id: int | None = column(ForeignKey("mig_tags.id", ondelete="SET NULL"))  # new: a foreign key
