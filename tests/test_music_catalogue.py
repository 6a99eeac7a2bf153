"""The acceptance test of the query language: one realistic schema, many queries, each asked
through aiouow and as hand-written raw SQL, compared row for row on SQLite and PostgreSQL.

The schema (tests/music_models.py) is a music shop mapped as an existing database: PascalCase
table and column names behind snake_case attributes, a reserved word and a name with a space,
a self-referential employee hierarchy, playlists and tracks many-to-many, money in
Numeric(10, 2).  It is seeded once per backend with a few thousand deterministic rows; the
tests only read, so a check of the row counts before each test is enough to reseed after another
module's ``db`` fixture emptied every table.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from aiouow import (
    AsyncSession,
    Engine,
    ForeignKey,
    Mapped,
    Model,
    aliased,
    and_,
    case,
    cast,
    column,
    delete,
    distinct,
    except_,
    exists,
    extract,
    false,
    func,
    insert,
    intersect,
    literal,
    null,
    or_,
    relationship,
    select,
    true,
    union,
    union_all,
)
from aiouow import types as T

from .music_models import (
    Album,
    Artist,
    Customer,
    Employee,
    Genre,
    Invoice,
    InvoiceLine,
    MediaType,
    Playlist,
    Track,
    playlist_track,
)
from .query_support import money, orm_rows, raw_sql

D = Decimal
CENT = D("0.01")
COUNTRIES = ["Brazil", "Canada", "France", "Germany", "India", "Norway", "Portugal", "USA"]
GENRES = ["Rock", "Jazz", "Metal", "Alternative", "Blues", "Latin", "Reggae", "Pop", "Soundtrack", "Classical"]
MEDIA = ["MPEG audio file", "Protected AAC audio file", "AAC audio file", "Purchased AAC audio file"]
PRICES = [D("0.99"), D("0.99"), D("0.99"), D("1.99"), D("1.29"), D("9.99"), D("10.00"), D("0.50")]
TITLES = ["General Manager", "Sales Manager", "IT Manager", "Sales Support Agent", "IT Staff"]
BASE = dt.datetime(2021, 1, 1)


class Seed:
    """The seeded rows as plain tuples in attribute order (also the truth some checks use)."""

    def __init__(self) -> None:
        rnd = random.Random(20261207)
        self.genres = [(i, n) for i, n in enumerate(GENRES, 1)]
        self.media = [(i, n) for i, n in enumerate(MEDIA, 1)]
        # artists 36..40 have no album (NOT EXISTS, outer joins)
        self.artists = [(i, f"Artist {i:02}") for i in range(1, 41)]
        self.albums = [(i, f"Album {i:03}", rnd.randint(1, 35)) for i in range(1, 121)]
        self.tracks: list[tuple[Any, ...]] = []
        for i in range(1, 1501):
            genre = None if rnd.random() < 0.05 else rnd.randint(1, len(GENRES))
            composer = None if rnd.random() < 0.3 else rnd.choice(["Angus Young", "Miles Davis", "Bach", "Björk"])
            ms = rnd.randint(60_000, 600_000)
            price = rnd.choice(PRICES) if i > 3 else [D("0.99"), D("1.99"), D("10.00")][i - 1]
            self.tracks.append((i, f"Track {i:04}", rnd.randint(1, 120), rnd.randint(1, 4), genre, composer,
                                ms, ms * rnd.randint(28, 40), price))
        self.playlists = [(i, f"Playlist {i:02}") for i in range(1, 13)]  # playlist 12 stays empty
        self.playlist_track = sorted({(p, rnd.randint(1, 1500)) for p in range(1, 12)
                                      for _ in range(rnd.randint(20, 300))})
        self.employees: list[tuple[Any, ...]] = []
        for i in range(1, 31):
            boss = None if i == 1 else rnd.randint(1, min(i - 1, 1 + (i - 1) // 3))
            title = TITLES[0] if i == 1 else rnd.choice(TITLES[1:])
            hired = BASE - dt.timedelta(days=rnd.randint(0, 3000), seconds=rnd.randint(0, 86_399))
            self.employees.append((i, f"Last{i:02}", f"First{i:02}", title, boss, hired, rnd.choice(COUNTRIES)))
        reps = [e[0] for e in self.employees if e[3] == "Sales Support Agent"]
        self.customers: list[tuple[Any, ...]] = []
        for i in range(1, 201):
            rep = None if i % 17 == 0 else rnd.choice(reps)
            email = None if i % 11 == 0 else f"c{i}@example.com"
            self.customers.append((i, f"First{i:03}", f"Last{i:03}", f"user{i:03}", rnd.choice(COUNTRIES),
                                   email, rep))
        self.invoices: list[tuple[Any, ...]] = []
        self.lines: list[tuple[Any, ...]] = []
        for i in range(1, 1001):
            cust = self.customers[rnd.randint(1, 190) - 1]  # customers 191..200 never buy
            at = BASE + dt.timedelta(minutes=rnd.randint(0, 60 * 24 * 365 * 3))
            country = cust[4] if rnd.random() < 0.9 else rnd.choice(COUNTRIES)
            total = D(0)
            for _ in range(rnd.randint(1, 5)):
                track = self.tracks[rnd.randint(1, 1500) - 1]
                qty = rnd.randint(1, 3)
                self.lines.append((len(self.lines) + 1, i, track[0], track[8], qty))
                total += track[8] * qty
            self.invoices.append((i, cust[0], at, country, total))


SEED = Seed()
TABLES: list[tuple[Any, list[str], list[tuple[Any, ...]]]] = [
    (Genre, ["genre_id", "name"], SEED.genres),
    (MediaType, ["media_type_id", "name"], SEED.media),
    (Artist, ["artist_id", "name"], SEED.artists),
    (Album, ["album_id", "title", "artist_id"], SEED.albums),
    (Track, ["track_id", "name", "album_id", "media_type_id", "genre_id", "composer", "milliseconds", "bytes",
             "unit_price"], SEED.tracks),
    (Playlist, ["playlist_id", "name"], SEED.playlists),
    (playlist_track, ["PlaylistId", "TrackId"], SEED.playlist_track),
    (Employee, ["employee_id", "last_name", "first_name", "title", "reports_to", "hire_date", "country"],
     SEED.employees),
    (Customer, ["customer_id", "first_name", "last_name", "user_name", "country", "email", "support_rep_id"],
     SEED.customers),
    (Invoice, ["invoice_id", "customer_id", "invoice_date", "billing_country", "total"], SEED.invoices),
    (InvoiceLine, ["invoice_line_id", "invoice_id", "track_id", "unit_price", "quantity"], SEED.lines),
]


async def _seeded(engine: Engine) -> bool:
    async with engine.connect() as conn:
        got = [(await conn.execute(select(func.count()).select_from(t))).scalar() for t, _, _ in TABLES]
    return got == [len(rows) for _, _, rows in TABLES]


async def _seed(engine: Engine) -> None:
    async with engine.begin() as conn:
        for target, _, _ in reversed(TABLES):
            await conn.execute(delete(target))
        for target, keys, rows in TABLES:
            for start in range(0, len(rows), 500):
                chunk = [dict(zip(keys, r)) for r in rows[start:start + 500]]
                await conn.execute(insert(target).values(chunk))


@pytest.fixture
async def music(engine: Engine) -> Engine:
    """The seeded catalogue: seeded on first use per backend and again only if another test's
    ``db`` fixture emptied the tables meanwhile (these tests never write)."""
    if not await _seeded(engine):
        await _seed(engine)
    return engine


def pg(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


async def same(engine: Engine, stmt: Any, sql: str, *, at_least: int = 1,
               as_money: bool = False) -> list[tuple[Any, ...]]:
    """The ORM statement's rows, asserted equal to the raw SQL's (and not trivially empty)."""
    got = await orm_rows(engine, stmt)
    want = await raw_sql(engine, sql)
    if as_money:
        assert money(got) == money(want)
    else:
        assert got == want
    assert len(got) >= at_least, f"only {len(got)} rows: the comparison proves little"
    return got


# -- the seed itself and column name mapping ---------------------------------------------------

async def test_seed_is_what_was_planned(music: Engine) -> None:
    assert await _seeded(music)
    assert sum(len(rows) for _, _, rows in TABLES) > 5000


async def test_mapped_names_in_select_where_and_results(music: Engine) -> None:
    stmt = (select(Album.album_id, Album.artist_id, Album.title).where(Album.artist_id.in_([3, 5, 7]))
            .order_by(Album.artist_id, Album.album_id))
    await same(music, stmt, 'SELECT "AlbumId", "ArtistId", "Title" FROM "mcAlbum" WHERE "ArtistId" IN (3, 5, 7) '
                            'ORDER BY "ArtistId", "AlbumId"')
    async with AsyncSession(music) as s:
        row = (await s.execute(stmt)).first()
        assert row is not None and row.artist_id == 3 and row.title.startswith("Album ")
        assert list((await s.execute(stmt)).mappings().first() or {}) == ["album_id", "artist_id", "title"]


async def test_reserved_word_and_space_in_column_names(music: Engine) -> None:
    stmt = (select(Customer.user_name, Invoice.billing_country, Invoice.total)
            .join(Invoice, Invoice.customer_id == Customer.customer_id)
            .where(Invoice.billing_country != Customer.country).order_by(Invoice.invoice_id))
    await same(music, stmt, 'SELECT c."User", i."Billing Country", i."Total" FROM "mcCustomer" c '
                            'JOIN "mcInvoice" i ON i."CustomerId" = c."CustomerId" '
                            'WHERE i."Billing Country" <> c."Country" ORDER BY i."InvoiceId"', at_least=20,
               as_money=True)
    async with AsyncSession(music) as s:
        c = await s.get_one(Customer, 7)
        assert c.user_name == "user007"  # not current_user: the reserved word is quoted


async def test_join_along_relationships_with_mapped_foreign_keys(music: Engine) -> None:
    stmt = (select(Artist.name, func.count(Track.track_id).label("n"))
            .join(Album, Album.artist_id == Artist.artist_id).join(Album.tracks)
            .group_by(Artist.name).order_by("n", Artist.name))
    await same(music, stmt, 'SELECT ar."Name", count(t."TrackId") AS n FROM "mcArtist" ar '
                            'JOIN "mcAlbum" al ON al."ArtistId" = ar."ArtistId" '
                            'JOIN "mcTrack" t ON t."AlbumId" = al."AlbumId" GROUP BY ar."Name" ORDER BY n, ar."Name"',
               at_least=30)


async def test_result_types_of_columns(music: Engine) -> None:
    async with AsyncSession(music) as s:
        row = (await s.execute(select(Invoice.invoice_date, Invoice.total, Employee.hire_date)
                               .join(Customer, Customer.customer_id == Invoice.customer_id)
                               .join(Employee, Employee.employee_id == Customer.support_rep_id)
                               .where(Invoice.invoice_id == 1))).one()
        assert type(row.invoice_date) is dt.datetime and type(row.hire_date) is dt.datetime
        assert row.total == SEED.invoices[0][4] and type(row.total) is D
        first, last = (await s.execute(select(func.min(Invoice.invoice_date), func.max(Invoice.invoice_date)))).one()
        assert (first, last) == (min(i[2] for i in SEED.invoices), max(i[2] for i in SEED.invoices))
        assert type(first) is dt.datetime


# -- aliases -----------------------------------------------------------------------------------

RAW_PAIRS = ('SELECT e."EmployeeId", m."EmployeeId" FROM "mcEmployee" e JOIN "mcEmployee" m '
             'ON e."ReportsTo" = m."EmployeeId" ORDER BY e."EmployeeId"')


async def test_employee_manager_pairs_are_identity_mapped(music: Engine) -> None:
    m = aliased(Employee, name="manager")
    stmt = select(Employee, m).join(m, Employee.reports_to == m.employee_id).order_by(Employee.employee_id)
    raw = await raw_sql(music, RAW_PAIRS)
    async with AsyncSession(music) as s:
        pairs = (await s.execute(stmt)).all()
        assert [(e.employee_id, b.employee_id) for e, b in pairs] == raw and len(raw) == 29
        as_employee = {e.employee_id: e for e, _ in pairs}
        for e, boss in pairs:
            assert type(boss) is Employee and e.reports_to == boss.employee_id
            assert boss is await s.get(Employee, boss.employee_id)
            if boss.employee_id in as_employee:
                assert as_employee[boss.employee_id] is boss  # one row, one object, whichever side
        assert pairs[0][1].title == "General Manager"


async def test_relationship_join_to_an_alias_both_spellings(music: Engine) -> None:
    m = aliased(Employee, name="m")
    raw = await raw_sql(music, 'SELECT e."LastName", m."LastName" FROM "mcEmployee" e JOIN "mcEmployee" m '
                               'ON e."ReportsTo" = m."EmployeeId" WHERE m."Title" LIKE \'%Manager\' '
                               'ORDER BY m."LastName", e."EmployeeId"')
    for stmt in (select(Employee.last_name, m.last_name).join(Employee.manager.of_type(m)),
                 select(Employee.last_name, m.last_name).join(m, Employee.manager)):
        stmt = stmt.where(m.title.like("%Manager")).order_by(m.last_name, Employee.employee_id)
        assert await orm_rows(music, stmt) == raw and len(raw) >= 5


async def test_reports_per_manager_along_the_one_to_many_side(music: Engine) -> None:
    r = aliased(Employee, name="r")
    stmt = (select(Employee.employee_id, func.count(r.employee_id).label("n")).join(Employee.reports.of_type(r))
            .group_by(Employee.employee_id).order_by(func.count(r.employee_id).desc(), Employee.employee_id))
    await same(music, stmt, 'SELECT m."EmployeeId", count(r."EmployeeId") AS n FROM "mcEmployee" m '
                            'JOIN "mcEmployee" r ON r."ReportsTo" = m."EmployeeId" GROUP BY m."EmployeeId" '
                            'ORDER BY count(r."EmployeeId") DESC, m."EmployeeId"', at_least=5)


async def test_self_referential_join_without_an_alias(music: Engine) -> None:
    stmt = (select(Employee).join(Employee.manager).where(Employee.country.in_(["USA", "Canada"]))
            .order_by(Employee.employee_id))
    raw = await raw_sql(music, 'SELECT e."EmployeeId" FROM "mcEmployee" e JOIN "mcEmployee" m '
                               'ON e."ReportsTo" = m."EmployeeId" WHERE e."Country" IN (\'USA\', \'Canada\') '
                               'ORDER BY e."EmployeeId"')
    async with AsyncSession(music) as s:
        got = (await s.scalars(stmt)).all()
        assert [(e.employee_id,) for e in got] == raw and raw
        assert got[0] is await s.get(Employee, got[0].employee_id)


async def test_one_table_joined_twice(music: Engine) -> None:
    rep = aliased(Employee, name="rep")
    boss = aliased(Employee, name="boss")
    stmt = (select(Customer.user_name, rep.last_name, boss.last_name)
            .join(rep, Customer.support_rep_id == rep.employee_id)
            .outerjoin(boss, rep.reports_to == boss.employee_id)
            .where(rep.country != Customer.country).order_by(Customer.customer_id))
    await same(music, stmt, 'SELECT c."User", r."LastName", b."LastName" FROM "mcCustomer" c '
                            'JOIN "mcEmployee" r ON c."SupportRepId" = r."EmployeeId" '
                            'LEFT OUTER JOIN "mcEmployee" b ON r."ReportsTo" = b."EmployeeId" '
                            'WHERE r."Country" <> c."Country" ORDER BY c."CustomerId"', at_least=50)


async def test_two_aliases_of_one_model_in_select_objects(music: Engine) -> None:
    rep = aliased(Employee, name="rep")
    boss = aliased(Employee, name="boss")
    stmt = (select(Customer, rep, boss).join(Customer.support_rep.of_type(rep)).join(rep.manager.of_type(boss))
            .order_by(Customer.customer_id))
    raw = await raw_sql(music, 'SELECT c."CustomerId", r."EmployeeId", b."EmployeeId" FROM "mcCustomer" c '
                               'JOIN "mcEmployee" r ON c."SupportRepId" = r."EmployeeId" '
                               'JOIN "mcEmployee" b ON r."ReportsTo" = b."EmployeeId" ORDER BY c."CustomerId"')
    async with AsyncSession(music) as s:
        rows = (await s.execute(stmt)).all()
        assert [(c.customer_id, r.employee_id, b.employee_id) for c, r, b in rows] == raw and len(raw) > 100
        assert all(r.reports_to == b.employee_id for _, r, b in rows)
        assert rows[0][2] is await s.get(Employee, rows[0][2].employee_id)


# -- subqueries -----------------------------------------------------------------------------------

async def test_subquery_in_from_filtered_outside(music: Engine) -> None:
    per_album = (select(Track.album_id, func.sum(Track.milliseconds).label("ms"), func.count().label("n"))
                 .group_by(Track.album_id).subquery("per_album"))
    stmt = (select(per_album.c.album_id, per_album.c.ms, per_album.c.n).select_from(per_album)
            .where(per_album.c.n >= 15).order_by(per_album.c.ms.desc(), per_album.c.album_id))
    got = await same(music, stmt, 'SELECT album_id, ms, n FROM (SELECT "AlbumId" AS album_id, '
                                  'sum("Milliseconds") AS ms, count(*) AS n FROM "mcTrack" GROUP BY "AlbumId") pa '
                                  'WHERE n >= 15 ORDER BY ms DESC, album_id', at_least=5)
    assert all(type(ms) is int and type(n) is int for _, ms, n in got)


async def test_subquery_joined_to_a_model_returns_objects_and_money(music: Engine) -> None:
    spent = (select(Invoice.customer_id, func.sum(Invoice.total).label("spent"))
             .group_by(Invoice.customer_id).subquery("spent"))
    stmt = (select(Customer, spent.c.spent).join(spent, spent.c.customer_id == Customer.customer_id)
            .order_by(spent.c.spent.desc(), Customer.customer_id).limit(15))
    raw = await raw_sql(music, 'SELECT c."CustomerId", s.spent FROM "mcCustomer" c JOIN (SELECT "CustomerId", '
                               'sum("Total") AS spent FROM "mcInvoice" GROUP BY "CustomerId") s '
                               'ON s."CustomerId" = c."CustomerId" ORDER BY s.spent DESC, c."CustomerId" LIMIT 15')
    truth: dict[int, Decimal] = defaultdict(D)
    for inv in SEED.invoices:
        truth[inv[1]] += inv[4]
    async with AsyncSession(music) as s:
        rows = (await s.execute(stmt)).all()
        assert money([(c.customer_id, v) for c, v in rows]) == money(raw) and len(rows) == 15
        for c, v in rows:
            assert type(v) is D and v == truth[c.customer_id]  # exact, on both backends
            assert c is await s.get(Customer, c.customer_id)


async def test_correlated_scalar_subquery_in_select_where_and_order_by(music: Engine) -> None:
    n = select(func.count(Invoice.invoice_id)).where(Invoice.customer_id == Customer.customer_id).scalar_subquery()
    stmt = (select(Customer.customer_id, n.label("n")).where(n > 6).order_by(n.desc(), Customer.customer_id))
    got = await same(music, stmt, 'SELECT c."CustomerId", (SELECT count(i."InvoiceId") FROM "mcInvoice" i '
                                  'WHERE i."CustomerId" = c."CustomerId") AS n FROM "mcCustomer" c '
                                  'WHERE (SELECT count(i."InvoiceId") FROM "mcInvoice" i '
                                  'WHERE i."CustomerId" = c."CustomerId") > 6 ORDER BY n DESC, c."CustomerId"',
                     at_least=10)
    assert all(type(v) is int for _, v in got)


async def test_uncorrelated_scalar_subquery_in_where(music: Engine) -> None:
    avg_price = select(func.avg(Track.unit_price)).scalar_subquery()
    stmt = select(Track.track_id, Track.unit_price).where(Track.unit_price > avg_price).order_by(Track.track_id)
    await same(music, stmt, 'SELECT "TrackId", "UnitPrice" FROM "mcTrack" WHERE "UnitPrice" > '
                            '(SELECT avg("UnitPrice") FROM "mcTrack") ORDER BY "TrackId"', at_least=100,
               as_money=True)


async def test_explicit_correlate(music: Engine) -> None:
    # the last invoice date of each customer, correlated to the customer on purpose
    last = (select(func.max(Invoice.invoice_date)).where(Invoice.customer_id == Customer.customer_id)
            .correlate(Customer).scalar_subquery())
    stmt = (select(Customer.customer_id, Customer.country).where(last >= dt.datetime(2023, 10, 1))
            .order_by(Customer.customer_id))
    await same(music, stmt, 'SELECT c."CustomerId", c."Country" FROM "mcCustomer" c WHERE (SELECT '
                            'max(i."InvoiceDate") FROM "mcInvoice" i WHERE i."CustomerId" = c."CustomerId") '
                            ">= '2023-10-01 00:00:00' ORDER BY c.\"CustomerId\"", at_least=20)


async def test_exists_and_not_exists(music: Engine) -> None:
    no_album = ~exists(select(Album.album_id).where(Album.artist_id == Artist.artist_id))
    got = await same(music, select(Artist.artist_id).where(no_album).order_by(Artist.artist_id),
                     'SELECT a."ArtistId" FROM "mcArtist" a WHERE NOT EXISTS (SELECT al."AlbumId" FROM "mcAlbum" al '
                     'WHERE al."ArtistId" = a."ArtistId") ORDER BY a."ArtistId"', at_least=5)
    assert {r[0] for r in got} >= {36, 37, 38, 39, 40}
    sold = exists(select(InvoiceLine.invoice_line_id).where(InvoiceLine.track_id == Track.track_id))
    stmt = select(func.count()).select_from(Track).where(sold, Track.genre_id.is_not(None))
    await same(music, stmt, 'SELECT count(*) FROM "mcTrack" t WHERE EXISTS (SELECT 1 FROM "mcInvoiceLine" l '
                            'WHERE l."TrackId" = t."TrackId") AND t."GenreId" IS NOT NULL')


async def test_in_and_not_in_a_select(music: Engine) -> None:
    jazz_buyers = (select(Invoice.customer_id).join(InvoiceLine, InvoiceLine.invoice_id == Invoice.invoice_id)
                   .join(Track, Track.track_id == InvoiceLine.track_id).join(Genre, Genre.genre_id == Track.genre_id)
                   .where(Genre.name == "Jazz"))
    stmt = select(Customer.customer_id).where(Customer.customer_id.in_(jazz_buyers)).order_by(Customer.customer_id)
    await same(music, stmt, 'SELECT "CustomerId" FROM "mcCustomer" WHERE "CustomerId" IN (SELECT i."CustomerId" '
                            'FROM "mcInvoice" i JOIN "mcInvoiceLine" l ON l."InvoiceId" = i."InvoiceId" '
                            'JOIN "mcTrack" t ON t."TrackId" = l."TrackId" JOIN "mcGenre" g ON g."GenreId" = '
                            't."GenreId" WHERE g."Name" = \'Jazz\') ORDER BY "CustomerId"', at_least=50)
    listed = select(playlist_track.c.TrackId)
    stmt2 = select(func.count(Track.track_id)).where(Track.track_id.not_in(listed))
    got = await same(music, stmt2, 'SELECT count("TrackId") FROM "mcTrack" WHERE "TrackId" NOT IN '
                                   '(SELECT "TrackId" FROM "mcPlaylistTrack")')
    assert got[0][0] == 1500 - len({t for _, t in SEED.playlist_track})


# -- regressions found by this file ----------------------------------------------------------------

class McRegFolder(Model):
    """Its relationships are used only below, so of_type() is the first thing to resolve them."""

    __tablename__ = "mcRegFolder"
    folder_id: Mapped[int] = column("FolderId", primary_key=True)
    parent_id: Mapped[int | None] = column("ParentId", ForeignKey("mcRegFolder.FolderId"))
    parent: Mapped[McRegFolder | None] = relationship(remote_side="McRegFolder.folder_id", back_populates="children")
    children: Mapped[list[McRegFolder]] = relationship(back_populates="parent")


async def test_of_type_on_a_relationship_not_resolved_yet(engine: Engine) -> None:
    # of_type() read the relationship's target before resolving it: AttributeError on None
    up = aliased(McRegFolder, name="up")
    down = aliased(McRegFolder, name="down")
    stmt = (select(McRegFolder.folder_id, up.folder_id).join(McRegFolder.parent.of_type(up))
            .join(McRegFolder.children.of_type(down)))
    sql = engine.dialect.compile(stmt)[0].sql
    assert 'JOIN "mcRegFolder" AS "up" ON "mcRegFolder"."ParentId" = "up"."FolderId"' in sql
    assert 'JOIN "mcRegFolder" AS "down" ON "mcRegFolder"."FolderId" = "down"."ParentId"' in sql
    assert await orm_rows(engine, stmt) == []
