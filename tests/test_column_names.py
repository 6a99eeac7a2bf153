"""Mapping an existing schema: attribute names differ from the database's column names.

A small Chinook-like catalogue whose tables and columns are spelled the database's way
(``"ArtistId"``, ``"Title"``, a column named ``order``, one with a space in its name), mapped with
snake_case attributes.  Everything written through the ORM is read back with raw SQL in the
database's names, and rows written by raw SQL are read through the ORM.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from aiouow import (
    AsyncSession,
    Column,
    Engine,
    ForeignKey,
    Model,
    Table,
    column,
    delete,
    exc,
    insert,
    joinedload,
    relationship,
    select,
    selectinload,
    text,
    update,
)
from aiouow import types as T

from .test_schema import columns, foreign_keys, primary_key

D = Decimal


class CnArtist(Model):
    __tablename__ = "cnArtist"
    artist_id: int = column("ArtistId", primary_key=True)
    name: str | None = column("Name", default=None)
    albums: list[CnAlbum] = relationship(back_populates="artist", order_by="CnAlbum.album_id")


class CnAlbum(Model):
    __tablename__ = "cnAlbum"
    album_id: int = column("AlbumId", primary_key=True)
    title: str = column("Title")
    artist_id: int = column("ArtistId", ForeignKey("cnArtist.ArtistId"))
    artist: CnArtist = relationship(back_populates="albums")
    tracks: list[CnTrack] = relationship(back_populates="album", order_by="CnTrack.track_id")


cn_playlist_track = Table(
    "cnPlaylistTrack",
    Column("PlaylistId", int, ForeignKey("cnPlaylist.PlaylistId"), primary_key=True),
    Column("TrackId", int, ForeignKey("cnTrack.TrackId"), primary_key=True),
)


class CnTrack(Model):
    __tablename__ = "cnTrack"
    track_id: int = column(name="TrackId", primary_key=True)
    name: str = column("Name")
    album_id: int | None = column("AlbumId", ForeignKey("cnAlbum.AlbumId"), default=None)
    order: int = column("order", default=0)
    unit_price: Decimal = column("Unit Price", type_=T.Numeric(10, 2), default=D("0.99"))
    row_version: int = column("RowVersion", version=True)
    album: CnAlbum | None = relationship(back_populates="tracks")


class CnPlaylist(Model):
    __tablename__ = "cnPlaylist"
    playlist_id: int = column("PlaylistId", primary_key=True)
    name: str = column("Name")
    tracks: list[CnTrack] = relationship(secondary=cn_playlist_track, order_by="CnTrack.track_id")


class CnGenre(Model):
    """A natural (not generated) key under another name, and a column named by ``name=`` only."""
    __tablename__ = "cnGenre"
    code: str = column("GenreCode", primary_key=True)
    label: str = column(name="Genre Label")


async def raw(db: Engine, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    async with db.connect() as conn:
        return [tuple(r) for r in (await conn.execute(text(sql), params)).all()]


def money(v: Any) -> Decimal:
    """A money value as raw SQL returns it (SQLite's driver gives a float) compared as a Decimal."""
    return D(str(v))


async def seed_raw(db: Engine) -> None:
    async with db.begin() as conn:
        await conn.execute(text('INSERT INTO "cnArtist" ("ArtistId", "Name") VALUES (1, \'AC/DC\'), (2, \'Accept\')'))
        await conn.execute(text('INSERT INTO "cnAlbum" ("AlbumId", "Title", "ArtistId") VALUES '
                                "(10, 'Back in Black', 1), (11, 'Highway to Hell', 1), (20, 'Restless', 2)"))
        await conn.execute(text('INSERT INTO "cnTrack" ("TrackId", "Name", "AlbumId", "order", "Unit Price", '
                                '"RowVersion") VALUES '
                                "(100, 'Hells Bells', 10, 1, 0.99, 1), (101, 'Shoot to Thrill', 10, 2, 1.29, 1), "
                                "(102, 'Highway to Hell', 11, 1, 0.99, 1), (200, 'Fast as a Shark', 20, 1, 0.99, 1)"))
        if db.dialect.name == "postgresql":
            for table, col in (("cnArtist", "ArtistId"), ("cnAlbum", "AlbumId"), ("cnTrack", "TrackId")):
                await conn.execute(text(f"SELECT setval(pg_get_serial_sequence('\"{table}\"', '{col}'), 1000)"))


def test_mapper_keeps_attribute_and_column_names_apart() -> None:
    c = CnAlbum.__aiouow_mapper__.columns  # type: ignore[attr-defined]
    assert (c["artist_id"].key, c["artist_id"].name) == ("artist_id", "ArtistId")
    assert CnTrack.__aiouow_mapper__.table.c.unit_price.name == "Unit Price"  # type: ignore[attr-defined]
    assert CnGenre.__aiouow_mapper__.columns["label"].name == "Genre Label"  # type: ignore[attr-defined]


def test_column_name_given_twice_or_wrongly_is_an_error() -> None:
    with pytest.raises(exc.ArgumentError, match="once"):
        column("A", name="B")
    with pytest.raises(exc.ArgumentError, match="non-empty"):
        column(name="")
    with pytest.raises(exc.ArgumentError, match="ForeignKey"):
        column(ForeignKey("cnArtist.ArtistId"), "ArtistId")


async def test_ddl_uses_database_names(db: Engine) -> None:
    async with db.connect() as conn:
        track = await columns(conn, "cnTrack")
        assert set(track) == {"TrackId", "Name", "AlbumId", "order", "Unit Price", "RowVersion"}
        assert set(await columns(conn, "cnGenre")) == {"GenreCode", "Genre Label"}
        assert await primary_key(conn, "cnAlbum") == ["AlbumId"]
        assert await primary_key(conn, "cnPlaylistTrack") == ["PlaylistId", "TrackId"]
        assert {fk[:3] for fk in await foreign_keys(conn, "cnAlbum")} == {("ArtistId", "cnArtist", "ArtistId")}
        assert {fk[:3] for fk in await foreign_keys(conn, "cnTrack")} == {("AlbumId", "cnAlbum", "AlbumId")}


async def test_orm_writes_read_by_raw_sql(db: Engine) -> None:
    async with AsyncSession(db, expire_on_commit=False) as s:
        artist = CnArtist(name="Aerosmith")
        album = CnAlbum(title="Big Ones", artist=artist)
        s.add_all([artist, album, CnTrack(name="Walk On Water", album=album, order=3, unit_price=D("1.99")),
                   CnGenre(code="RK", label="Rock")])
        await s.commit()
        # generated keys came back (RETURNING / reserved sequence values) under the attribute names
        assert artist.artist_id is not None and album.artist_id == artist.artist_id
        assert album.album_id is not None
    assert await raw(db, 'SELECT "ArtistId", "Name" FROM "cnArtist"') == [(artist.artist_id, "Aerosmith")]
    assert await raw(db, 'SELECT "AlbumId", "Title", "ArtistId" FROM "cnAlbum"') == [
        (album.album_id, "Big Ones", artist.artist_id)]
    got = await raw(db, 'SELECT "Name", "AlbumId", "order", "Unit Price", "RowVersion" FROM "cnTrack"')
    assert [(*r[:3], money(r[3]), r[4]) for r in got] == [("Walk On Water", album.album_id, 3, D("1.99"), 1)]
    assert await raw(db, 'SELECT "GenreCode", "Genre Label" FROM "cnGenre"') == [("RK", "Rock")]


async def test_raw_rows_read_through_the_orm(db: Engine) -> None:
    await seed_raw(db)
    async with AsyncSession(db) as s:
        album = await s.get(CnAlbum, 10)
        assert album is not None and (album.album_id, album.title, album.artist_id) == (10, "Back in Black", 1)
        tracks = (await s.scalars(select(CnTrack).where(CnTrack.album_id == 10, CnTrack.order >= 1)
                                  .order_by(CnTrack.order.desc()))).all()
        assert [(t.track_id, t.name, t.order, t.unit_price) for t in tracks] == [
            (101, "Shoot to Thrill", 2, D("1.29")), (100, "Hells Bells", 1, D("0.99"))]
        assert await s.get(CnTrack, 101) is tracks[0]


async def test_rows_of_columns_are_keyed_by_attribute_name(db: Engine) -> None:
    await seed_raw(db)
    async with AsyncSession(db) as s:
        rows = (await s.execute(select(CnAlbum.artist_id, CnAlbum.title).order_by(CnAlbum.title))).all()
        assert [(r.artist_id, r.title) for r in rows] == [(1, "Back in Black"), (1, "Highway to Hell"),
                                                          (2, "Restless")]
        assert list(rows[0]._mapping) == ["artist_id", "title"]
        maps = (await s.execute(select(CnTrack.unit_price, CnTrack.order).where(CnTrack.track_id == 101))).mappings()
        assert maps.all() == [{"unit_price": D("1.29"), "order": 2}]


async def test_relationships_load_both_ways(db: Engine) -> None:
    await seed_raw(db)
    async with AsyncSession(db) as s:
        artists = (await s.scalars(select(CnArtist).options(selectinload(CnArtist.albums)
                                                            .selectinload(CnAlbum.tracks))
                                   .order_by(CnArtist.artist_id))).all()
        assert [[a.title for a in ar.albums] for ar in artists] == [["Back in Black", "Highway to Hell"],
                                                                   ["Restless"]]
        assert [t.name for t in artists[0].albums[0].tracks] == ["Hells Bells", "Shoot to Thrill"]
    async with AsyncSession(db) as s:
        tracks = (await s.scalars(select(CnTrack).options(joinedload(CnTrack.album).joinedload(CnAlbum.artist))
                                  .order_by(CnTrack.track_id))).all()
        assert [(t.name, t.album.title, t.album.artist.name) for t in tracks if t.album] == [
            ("Hells Bells", "Back in Black", "AC/DC"), ("Shoot to Thrill", "Back in Black", "AC/DC"),
            ("Highway to Hell", "Highway to Hell", "AC/DC"), ("Fast as a Shark", "Restless", "Accept")]
        rows = (await s.execute(select(CnAlbum.title, CnArtist.name).join(CnAlbum.artist)
                                .where(CnArtist.name == "Accept"))).all()
        assert [(r.title, r.name) for r in rows] == [("Restless", "Accept")]
    async with AsyncSession(db) as s:
        album = await s.get(CnAlbum, 20)
        assert album is not None
        await s.load(album, "artist")
        await s.load(album, "tracks")
        assert album.artist.name == "Accept" and [t.track_id for t in album.tracks] == [200]


async def test_many_to_many_through_database_names(db: Engine) -> None:
    await seed_raw(db)
    async with AsyncSession(db) as s:
        t100, t200 = await s.get(CnTrack, 100), await s.get(CnTrack, 200)
        pl = CnPlaylist(name="Heavy", tracks=[t100, t200])
        s.add(pl)
        await s.commit()
        pid = pl.playlist_id
    assert await raw(db, 'SELECT "PlaylistId", "TrackId" FROM "cnPlaylistTrack" ORDER BY "TrackId"') == [
        (pid, 100), (pid, 200)]
    async with AsyncSession(db) as s:
        pl2 = (await s.scalars(select(CnPlaylist).options(selectinload(CnPlaylist.tracks)))).one()
        assert [t.track_id for t in pl2.tracks] == [100, 200]
        pl2.tracks.pop(0)
        await s.commit()
    assert await raw(db, 'SELECT "TrackId" FROM "cnPlaylistTrack"') == [(200,)]


async def test_updates_and_deletes(db: Engine) -> None:
    await seed_raw(db)
    async with AsyncSession(db, expire_on_commit=False) as s:
        track = await s.get(CnTrack, 101)
        assert track is not None
        track.unit_price, track.order = D("2.49"), 7
        album = await s.get(CnAlbum, 11)
        assert album is not None
        album.artist_id = 2
        await s.commit()
        assert track.row_version == 2
        await s.refresh(track)
        assert (track.order, track.unit_price) == (7, D("2.49"))
    got = await raw(db, 'SELECT "order", "Unit Price", "RowVersion" FROM "cnTrack" WHERE "TrackId" = 101')
    assert [(r[0], money(r[1]), r[2]) for r in got] == [(7, D("2.49"), 2)]
    assert await raw(db, 'SELECT "ArtistId" FROM "cnAlbum" WHERE "AlbumId" = 11') == [(2,)]
    async with AsyncSession(db, expire_on_commit=False) as s:
        for t in (await s.scalars(select(CnTrack).where(CnTrack.album_id == 10))).all():
            await s.delete(t)
        merged = await s.merge(CnTrack(track_id=102, name="Highway to Hell (live)", album_id=11, row_version=1))
        await s.commit()
        assert merged.name == "Highway to Hell (live)"
    assert await raw(db, 'SELECT "TrackId", "Name" FROM "cnTrack" ORDER BY "TrackId"') == [
        (102, "Highway to Hell (live)"), (200, "Fast as a Shark")]
    async with AsyncSession(db) as s:
        await s.execute(update(CnTrack).where(CnTrack.track_id == 200).values(order=9, unit_price=D("0.5")))
        await s.execute(delete(CnTrack).where(CnTrack.name.like("Highway%")))
        await s.execute(insert(CnGenre).values(code="MT", label="Metal"))
        await s.commit()
        rows = (await s.execute(select(CnGenre.code, CnGenre.label))).all()
        assert [(r.code, r.label) for r in rows] == [("MT", "Metal")]
    got = await raw(db, 'SELECT "TrackId", "order", "Unit Price" FROM "cnTrack"')
    assert [(r[0], r[1], money(r[2])) for r in got] == [(200, 9, D("0.50"))]


async def test_bulk_insert_update_delete(db: Engine) -> None:
    """2000 rows: PostgreSQL's COPY (insert) and unnest (update, delete) paths, SQLite's multi-row insert."""
    async with AsyncSession(db, expire_on_commit=False) as s:
        artist = CnArtist(name="Many")
        album = CnAlbum(title="Everything", artist=artist)
        tracks = [CnTrack(name=f"t{i}", album=album, order=i, unit_price=D(i % 100) / 100) for i in range(2000)]
        s.add_all([artist, album, *tracks])
        await s.commit()
        assert len({t.track_id for t in tracks}) == 2000
        got = await raw(db, 'SELECT count(*), sum("order"), min("AlbumId"), max("AlbumId") FROM "cnTrack"')
        assert got == [(2000, sum(range(2000)), album.album_id, album.album_id)]
        for t in tracks:
            t.order += 1
        await s.commit()
        assert await raw(db, 'SELECT sum("order"), min("RowVersion") FROM "cnTrack"') == [(sum(range(1, 2001)), 2)]
        for t in tracks[:1500]:
            await s.delete(t)
        await s.commit()
    assert await raw(db, 'SELECT count(*) FROM "cnTrack"') == [(500,)]


async def test_insert_returning_is_keyed_by_attribute_name(db: Engine) -> None:
    async with AsyncSession(db) as s:
        stmt = insert(CnArtist).values(name="Queen").returning(CnArtist.artist_id, CnArtist.name)
        row = (await s.execute(stmt)).one()
        assert row.name == "Queen" and isinstance(row.artist_id, int)
        await s.commit()
    assert await raw(db, 'SELECT "ArtistId", "Name" FROM "cnArtist"') == [(row.artist_id, "Queen")]
