"""``Mapped[X]`` annotations map exactly like the plain annotation ``X``: schema, nullability,
defaults, relationships (back_populates included), loading and flush, on both backends.

``Mf*``/``Pf*`` (tests/mapped_models.py) have text annotations (``from __future__ import
annotations``, forward references by name); the ``Mr*`` models here have evaluated ones
(``Mapped[list["MrPost"]]``, ``Mapped[Optional["MrUser"]]``)."""

from decimal import Decimal
from typing import Optional

import pytest

from aiouow import (
    AsyncSession,
    Engine,
    ForeignKey,
    Mapped,
    Model,
    column,
    inspect,
    relationship,
    select,
    selectinload,
    text,
)
from aiouow.exc import ArgumentError, InvalidRequestError
from aiouow.mapping.relationships import MANYTOONE, ONETOMANY

from .mapped_models import MfPost, MfUser, PfPost, PfUser


class MrUser(Model):
    __tablename__ = "mr_users"
    id: Mapped[int] = column(primary_key=True)
    name: Mapped[str] = column(index=True)
    email: Mapped[str | None] = column(default=None, unique=True)
    nick: Mapped[Optional[str]] = column()  # noqa: UP045 - the spelling under test
    score: Mapped[Decimal] = column(default=Decimal("0"))
    version: Mapped[int] = column(version=True)
    posts: Mapped[list["MrPost"]] = relationship(back_populates="author", order_by="MrPost.id",
                                                 cascade="all, delete-orphan")


class MrPost(Model):
    __tablename__ = "mr_posts"
    id: Mapped[int] = column(primary_key=True)
    author_id: Mapped["int | None"] = column(ForeignKey("mr_users.id"))
    title: Mapped[str] = column()
    author: Mapped[Optional["MrUser"]] = relationship(back_populates="posts")  # noqa: UP045


TWINS = [(MfUser, MfPost, "mf_"), (MrUser, MrPost, "mr_")]


def _columns(cls: type, prefix: str) -> list[tuple[object, ...]]:
    return [(c.key, repr(c.type), c.nullable, c.primary_key, c.unique, c.index, c.version, c.autoincrement,
             c.default, c.default_is_callable, [fk.column.table.name.removeprefix(prefix) for fk in c.foreign_keys])
            for c in inspect(cls).table.columns]


def _relationships(cls: type) -> list[tuple[object, ...]]:
    out = []
    for key, rel in inspect(cls).relationships.items():
        rel.resolve()
        out.append((key, rel.direction, rel.uselist, rel.back_populates, sorted(rel.cascade),
                    rel.mapper.class_.__name__[2:]))
    return out


@pytest.mark.parametrize(("user", "post", "prefix"), TWINS)
def test_mapping_is_the_plain_annotations_mapping(user: type, post: type, prefix: str) -> None:
    assert _columns(user, prefix) == _columns(PfUser, "pf_")
    assert _columns(post, prefix) == _columns(PfPost, "pf_")
    assert _relationships(user) == _relationships(PfUser)
    assert _relationships(post) == _relationships(PfPost)
    assert [r[1] for r in _relationships(user) + _relationships(post)] == [ONETOMANY, MANYTOONE]
    nullable = {c.key: c.nullable for c in inspect(user).table.columns}
    assert nullable == {"id": False, "name": False, "email": True, "nick": True, "score": False, "version": False}
    assert user.name is inspect(user).table.c.name  # class access: the Column, as for plain annotations


async def _catalog(db: Engine, table: str, prefix: str) -> list[tuple[object, ...]]:
    """The table as the database describes it, its name prefix replaced."""
    if db.dialect.name == "sqlite":
        sql = "SELECT sql FROM sqlite_master WHERE tbl_name = :t ORDER BY name"
    else:
        sql = ("SELECT column_name, data_type, numeric_precision, is_nullable, column_default "
               "FROM information_schema.columns WHERE table_name = :t ORDER BY ordinal_position")
    async with db.connect() as conn:
        rows = (await conn.execute(text(sql), {"t": table})).all()
    assert rows
    return [tuple(str(v).replace(prefix, "X_") for v in row) for row in rows]


@pytest.mark.parametrize(("user", "post", "prefix"), TWINS)
async def test_ddl_is_the_plain_annotations_ddl(db: Engine, user: type, post: type, prefix: str) -> None:
    assert await _catalog(db, f"{prefix}users", prefix) == await _catalog(db, "pf_users", "pf_")
    assert await _catalog(db, f"{prefix}posts", prefix) == await _catalog(db, "pf_posts", "pf_")


@pytest.mark.parametrize(("user", "post", "prefix"), [*TWINS, (PfUser, PfPost, "pf_")])
async def test_objects_flush_load_and_relate(db: Engine, user: type, post: type, prefix: str) -> None:
    async with AsyncSession(db, expire_on_commit=False) as session:
        ann = user(name="ann")
        assert ann.email is None and ann.score == Decimal("0") and ann.posts == []
        p1 = post(title="one", author=ann)
        assert ann.posts == [p1]  # back_populates, in memory
        p2 = post(title="two")
        ann.posts.append(p2)
        assert p2.author is ann
        session.add(ann)
        await session.flush()
        assert isinstance(ann.id, int) and p1.author_id == ann.id == p2.author_id and ann.version == 1
        ann.nick = "a"
        await session.commit()
        assert ann.version == 2
        with pytest.raises(ArgumentError, match="NOT NULL"):
            ann.name = None
        with pytest.raises(ArgumentError):
            ann.name = 3
        session.add(user())  # construction requires nothing; NOT NULL is checked at flush
        with pytest.raises(InvalidRequestError, match=r"\.name is NOT NULL"):
            await session.flush()
        await session.rollback()

    async with AsyncSession(db) as session:
        loaded = (await session.scalars(
            select(user).where(user.name == "ann").options(selectinload(user.posts)))).one()
        assert [p.title for p in loaded.posts] == ["one", "two"] and loaded.nick == "a"
        posts = (await session.scalars(select(post).order_by(post.title.desc()))).all()
        assert [p.title for p in posts] == ["two", "one"]
        assert await session.load(posts[0], post.author) is loaded
        assert (await session.execute(select(user.id, user.name))).one()._tuple() == (loaded.id, "ann")

    async with AsyncSession(db) as session:
        again = await session.get_one(user, loaded.id)
        assert [p.title for p in await session.load(again, user.posts)] == ["one", "two"]
        again.posts.remove(again.posts[0])  # delete-orphan
        await session.commit()
        assert [p.title for p in (await session.scalars(select(post))).all()] == ["two"]
