"""Tables in a PostgreSQL schema (``__table_args__ = {"schema": ...}``, ``Table(..., schema=)``):
every statement, the DDL, foreign keys, the flush's batch SQL (unnest, COPY, the key sequence) and
the loaders name them schema-qualified. SQLite has no schemas: creating such a table there is
an ArgumentError. The tables live in a metadata of their own, created per test module."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from aiouow import (
    AsyncSession,
    Column,
    Engine,
    ForeignKey,
    MetaData,
    Model,
    Table,
    column,
    delete,
    func,
    insert,
    joinedload,
    relationship,
    select,
    selectinload,
    update,
)
from aiouow import types as T
from aiouow.exc import ArgumentError

from .conftest import capture_sql

music = MetaData()


class MusicBase(Model):
    metadata = music


class MsArtist(MusicBase):
    __tablename__ = "artists"
    __table_args__ = {"schema": "music"}
    id: int = column(primary_key=True)
    name: str = column(index=True)
    albums: list[MsAlbum] = relationship(back_populates="artist", order_by="id", cascade="all, delete-orphan")


class MsAlbum(MusicBase):
    __tablename__ = "albums"
    __table_args__ = {"schema": "music"}
    id: int = column(primary_key=True)
    artist_id: int = column(ForeignKey("music.artists.id", ondelete="CASCADE"))
    title: str = column()
    price: Decimal = column(type_=T.Numeric(8, 2))
    artist: MsArtist | None = relationship(back_populates="albums")


class PublicAlbum(MusicBase):
    """The same table name outside the schema: a second, unrelated table."""

    __tablename__ = "albums"
    id: int = column(primary_key=True)
    title: str = column()


album_tags = Table(
    "album_tags",
    Column("album_id", T.Integer(), ForeignKey("music.albums.id", ondelete="CASCADE"), primary_key=True),
    Column("tag", T.String(), primary_key=True),
    metadata=music,
    schema="music",
)


playlist_albums = Table(
    "playlist_albums",
    Column("playlist_id", T.Integer(), ForeignKey("music.playlists.id", ondelete="CASCADE"), primary_key=True),
    Column("album_id", T.Integer(), ForeignKey("music.albums.id", ondelete="CASCADE"), primary_key=True),
    metadata=music,
    schema="music",
)


class MsPlaylist(MusicBase):
    """A many-to-many through a schema table named by its full name, as in SQLAlchemy."""

    __tablename__ = "playlists"
    __table_args__ = {"schema": "music"}
    id: int = column(primary_key=True)
    name: str = column()
    albums: list[MsAlbum] = relationship(secondary="music.playlist_albums", order_by="id")


@pytest.fixture
async def pg(engine: Engine) -> AsyncIterator[Engine]:
    if engine.dialect.name != "postgresql":
        pytest.skip("schemas are PostgreSQL-only (on SQLite a schema is an ATTACHed database)")
    async with engine.begin() as conn:
        await conn.exec_driver_sql('DROP SCHEMA IF EXISTS "music" CASCADE')
        await conn.exec_driver_sql('CREATE SCHEMA "music"')
    await music.drop_all(engine)
    await music.create_all(engine)
    yield engine
    await music.drop_all(engine)
    async with engine.begin() as conn:
        await conn.exec_driver_sql('DROP SCHEMA IF EXISTS "music" CASCADE')


async def _raw(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        return [tuple(r) for r in await conn.exec_driver_sql(sql)]


def test_fullname_and_metadata_keys() -> None:
    assert music.tables["music.albums"].fullname == "music.albums"
    assert set(music.tables) == {"music.artists", "music.albums", "albums", "music.album_tags",
                                 "music.playlist_albums", "music.playlists"}
    assert music.tables["music.albums"].schema == "music" and music.tables["albums"].schema is None


def test_bad_table_args() -> None:
    other = MetaData()
    with pytest.raises(ArgumentError, match="only"):
        class Bad(Model):  # noqa: F841
            metadata = other
            __tablename__ = "bad"
            __table_args__ = {"schema": "music", "comment": "x"}
            id: int = column(primary_key=True)


async def test_sqlite_refuses_a_schema(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("the SQLite error; PostgreSQL supports schemas")
    with pytest.raises(ArgumentError, match="schemas are PostgreSQL-only"):
        await music.create_all(engine)
    with pytest.raises(ArgumentError, match="schemas are PostgreSQL-only"):
        await music.drop_all(engine)


async def test_ddl_creates_the_tables_inside_the_schema(pg: Engine) -> None:
    rows = await _raw(pg, "SELECT table_schema, table_name FROM information_schema.tables "
                          "WHERE table_name IN ('artists', 'albums', 'album_tags') ORDER BY 1, 2")
    assert ("music", "albums") in rows and ("music", "artists") in rows and ("music", "album_tags") in rows
    assert ("public", "albums") in rows and ("public", "artists") not in rows
    fk = await _raw(pg, "SELECT ccu.table_schema, ccu.table_name FROM information_schema.table_constraints tc "
                        "JOIN information_schema.constraint_column_usage ccu USING (constraint_name) "
                        "WHERE tc.table_schema = 'music' AND tc.table_name = 'albums' "
                        "AND tc.constraint_type = 'FOREIGN KEY'")
    assert fk == [("music", "artists")]
    ix = await _raw(pg, "SELECT schemaname FROM pg_indexes WHERE indexname = 'ix_artists_name'")
    assert ix == [("music",)]


async def test_flush_queries_and_loaders_use_the_qualified_name(pg: Engine) -> None:
    n_artists, per = 1200, 3  # over COPY_MIN_ROWS: the albums go through COPY, the artists' keys
    with capture_sql(pg) as log:  # come from the sequence (pg_get_serial_sequence)
        async with AsyncSession(pg) as s:
            artists = [MsArtist(name=f"artist{i:04}") for i in range(n_artists)]
            s.add_all(artists)
            await s.flush()
            s.add_all([MsAlbum(artist_id=a.id, title=f"{a.name}-{j}", price=Decimal(10 + j) + Decimal("0.99"))
                       for a in artists for j in range(per)])
            s.add(PublicAlbum(title="not in music"))
            await s.commit()
    sql = "\n".join(log.statements)
    assert '"music"."artists"' in sql and '"music"."albums"' in sql
    assert "COPY music.albums (id, artist_id, title, price)" in sql  # the batch took the COPY path
    assert 'pg_get_serial_sequence' in sql
    assert await _raw(pg, 'SELECT count(*) FROM "music"."albums"') == [(n_artists * per,)]
    assert await _raw(pg, 'SELECT title FROM "public"."albums"') == [("not in music",)]

    async with AsyncSession(pg) as s:
        stmt = (select(MsArtist.name, func.count(MsAlbum.id), func.sum(MsAlbum.price))
                .join(MsAlbum, MsAlbum.artist_id == MsArtist.id)
                .where(MsArtist.name < "artist0005").group_by(MsArtist.name).order_by(MsArtist.name))
        got = [tuple(r) for r in await s.execute(stmt)]
        raw = await _raw(pg, 'SELECT a.name, count(b.id), sum(b.price) FROM "music"."artists" a '
                             'JOIN "music"."albums" b ON b.artist_id = a.id WHERE a.name < \'artist0005\' '
                             'GROUP BY a.name ORDER BY a.name')
        assert got == raw and len(raw) == 5
        # the join along the relationship infers the ON clause through the schema's foreign key
        inferred = await s.execute(select(MsAlbum.title).join(MsAlbum.artist).where(MsArtist.name == "artist0007")
                                   .order_by(MsAlbum.title))
        assert inferred.scalars().all() == ["artist0007-0", "artist0007-1", "artist0007-2"]

        loaded = (await s.scalars(select(MsArtist).options(selectinload(MsArtist.albums))
                                  .where(MsArtist.name.in_(["artist0001", "artist0002"])).order_by(MsArtist.id))).all()
        assert [[b.title for b in a.albums] for a in loaded] == [
            [f"artist0001-{j}" for j in range(per)], [f"artist0002-{j}" for j in range(per)]]
        assert loaded[0].albums[0].artist is loaded[0]
        joined = (await s.scalars(select(MsAlbum).options(joinedload(MsAlbum.artist))
                                  .where(MsAlbum.title == "artist0003-1"))).all()
        assert [(b.title, b.artist.name if b.artist else None) for b in joined] == [("artist0003-1", "artist0003")]

        # the unnest UPDATE and DELETE of the flush
        for b in loaded[0].albums:
            b.price = Decimal("1.00")
        await s.delete(loaded[1])
        await s.commit()
    assert await _raw(pg, 'SELECT DISTINCT b.price FROM "music"."albums" b JOIN "music"."artists" a '
                          "ON a.id = b.artist_id WHERE a.name = 'artist0001'") == [(Decimal("1.00"),)]
    assert await _raw(pg, "SELECT count(*) FROM \"music\".\"artists\" WHERE name = 'artist0002'") == [(0,)]
    assert await _raw(pg, 'SELECT count(*) FROM "music"."albums"') == [((n_artists - 1) * per,)]


async def test_core_statements_on_a_schema_table(pg: Engine) -> None:
    async with AsyncSession(pg) as s:
        s.add(MsArtist(id=1, name="ann"))
        await s.flush()
        s.add_all([MsAlbum(id=i, artist_id=1, title=f"t{i}", price=Decimal("9.99")) for i in range(1, 4)])
        await s.commit()
    async with pg.begin() as conn:
        await conn.execute(insert(album_tags).values([{"album_id": 1, "tag": "jazz"}, {"album_id": 2, "tag": "jazz"},
                                                      {"album_id": 2, "tag": "live"}]))
        await conn.execute(update(MsAlbum).where(MsAlbum.id == 3).values(title="renamed"))
        await conn.execute(delete(album_tags).where(album_tags.c.tag == "live"))
    async with AsyncSession(pg) as s:
        stmt = (select(MsAlbum.title, album_tags.c.tag).join(album_tags, album_tags.c.album_id == MsAlbum.id)
                .order_by(MsAlbum.id))
        assert [tuple(r) for r in await s.execute(stmt)] == await _raw(
            pg, 'SELECT b.title, t.tag FROM "music"."albums" b JOIN "music"."album_tags" t ON t.album_id = b.id '
                "ORDER BY b.id") == [("t1", "jazz"), ("t2", "jazz")]
        sq = select(MsAlbum.artist_id, func.count().label("n")).group_by(MsAlbum.artist_id).subquery()
        assert (await s.execute(select(MsArtist.name, sq.c.n).join(sq, sq.c.artist_id == MsArtist.id))).all() == [
            ("ann", 3)]
        assert await s.scalar(select(MsAlbum.title).where(MsAlbum.id == 3)) == "renamed"
        got = await s.get(MsAlbum, 2)
        assert got is not None and got.title == "t2"


async def test_many_to_many_through_a_schema_table(pg: Engine) -> None:
    async with AsyncSession(pg) as s:
        s.add(MsArtist(id=1, name="ann"))
        await s.flush()
        albums = [MsAlbum(id=i, artist_id=1, title=f"t{i}", price=Decimal("5.00")) for i in range(1, 6)]
        s.add_all([MsPlaylist(name="odd", albums=albums[::2]), MsPlaylist(name="two", albums=albums[3:])])
        await s.commit()
    assert await _raw(pg, 'SELECT p.name, pa.album_id FROM "music"."playlist_albums" pa JOIN "music"."playlists" p '
                          "ON p.id = pa.playlist_id ORDER BY p.name, pa.album_id") == [
        ("odd", 1), ("odd", 3), ("odd", 5), ("two", 4), ("two", 5)]
    async with AsyncSession(pg) as s:
        lists = (await s.scalars(select(MsPlaylist).options(selectinload(MsPlaylist.albums))
                                 .order_by(MsPlaylist.name))).all()
        assert [[b.id for b in p.albums] for p in lists] == [[1, 3, 5], [4, 5]]
        assert lists[0].albums[2] is lists[1].albums[1]
        lists[1].albums.remove(lists[1].albums[0])
        await s.commit()
    assert await _raw(pg, 'SELECT album_id FROM "music"."playlist_albums" WHERE playlist_id = 2') == [(5,)]


async def test_aliases_and_subqueries_of_a_schema_table(pg: Engine) -> None:
    """aliased() of a schema table renders "music"."albums" AS alias; its columns use the alias."""
    from aiouow import aliased

    async with AsyncSession(pg) as s:
        a1, a2 = MsArtist(name="one"), MsArtist(name="two")
        s.add_all([a1, a2])
        await s.flush()
        s.add_all([MsAlbum(artist_id=a.id, title=f"{a.name}-{j}", price=Decimal(j)) for a in (a1, a2)
                   for j in range(3)])
        await s.commit()
    cheap, dear = aliased(MsAlbum, name="cheap"), aliased(MsAlbum, name="dear")
    stmt = (select(cheap.title, dear.title).join(dear, (dear.artist_id == cheap.artist_id) & (dear.price > cheap.price))
            .where(cheap.price == 0).order_by(cheap.title, dear.title))
    with capture_sql(pg) as log:
        async with AsyncSession(pg) as s:
            got = [tuple(r) for r in await s.execute(stmt)]
            albums = (await s.scalars(select(cheap).join(MsArtist, MsArtist.id == cheap.artist_id)
                                      .where(MsArtist.name == "two").order_by(cheap.id))).all()
            per = select(MsAlbum.artist_id, func.max(MsAlbum.price).label("top")).group_by(MsAlbum.artist_id).subquery()
            tops = [tuple(r) for r in await s.execute(
                select(MsArtist.name, per.c.top).join(per, per.c.artist_id == MsArtist.id).order_by(MsArtist.name))]
    raw = await _raw(pg, 'SELECT c.title, d.title FROM "music"."albums" c JOIN "music"."albums" d '
                         "ON d.artist_id = c.artist_id AND d.price > c.price WHERE c.price = 0 ORDER BY 1, 2")
    assert got == raw and len(raw) == 4
    assert '"music"."albums" AS "cheap"' in log.statements[0]
    assert [b.title for b in albums] == ["two-0", "two-1", "two-2"]
    assert tops == [("one", Decimal("2.00")), ("two", Decimal("2.00"))]
