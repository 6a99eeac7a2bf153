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
    counts = select(*[select(func.count()).select_from(t).scalar_subquery() for t, _, _ in TABLES])
    async with engine.connect() as conn:
        got = (await conn.execute(counts)).one()
    return tuple(got) == tuple(len(rows) for _, _, rows in TABLES)


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


def engine_sql(engine: Engine, stmt: Any) -> str:
    """The SQL text ``stmt`` compiles to on ``engine``'s dialect."""
    return engine.dialect.compile(stmt)[0].sql


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


async def test_names_given_by_keyword_and_an_anonymous_alias(music: Engine) -> None:
    # MediaType's columns are column(name="..."); the anonymous alias renders "mcMediaType_alias_<n>"
    other = aliased(MediaType)
    stmt = (select(MediaType.name, other.name, func.count(Track.track_id).label("n"))
            .join(Track, Track.media_type_id == MediaType.media_type_id)
            .join(other, other.media_type_id == (MediaType.media_type_id % 4) + 1)
            .group_by(MediaType.name, other.name).order_by(MediaType.name))
    assert 'JOIN "mcMediaType" AS "mcMediaType_alias_1" ON' in engine_sql(music, stmt)
    got = await same(music, stmt, 'SELECT m."Name", o."Name", count(t."TrackId") AS n FROM "mcMediaType" m '
                                  'JOIN "mcTrack" t ON t."MediaTypeId" = m."MediaTypeId" '
                                  'JOIN "mcMediaType" o ON o."MediaTypeId" = (m."MediaTypeId" % 4) + 1 '
                                  'GROUP BY m."Name", o."Name" ORDER BY m."Name"', at_least=4)
    assert sum(n for _, _, n in got) == 1500 and all(a != b for a, b, _ in got)
    async with AsyncSession(music) as s:
        row = (await s.execute(select(MediaType, other).join(other, other.media_type_id == 2)
                               .where(MediaType.media_type_id == 1))).one()
        assert (row[0].name, row[1].name) == (MEDIA[0], MEDIA[1]) and row[1] is await s.get(MediaType, 2)


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


# -- CTEs -------------------------------------------------------------------------------------------

RAW_TREE = ('WITH RECURSIVE tree(id, depth) AS (SELECT "EmployeeId", 0 FROM "mcEmployee" WHERE "ReportsTo" IS NULL '
            'UNION ALL SELECT e."EmployeeId", t.depth + 1 FROM "mcEmployee" e JOIN tree t ON e."ReportsTo" = t.id) ')


def _tree() -> Any:
    tree = (select(Employee.employee_id.label("id"), literal(0).label("depth")).where(Employee.reports_to.is_(None))
            .cte("tree", recursive=True))
    return tree.union_all(select(Employee.employee_id, (tree.c.depth + 1).label("depth"))
                          .join(tree, Employee.reports_to == tree.c.id))


async def test_recursive_cte_employee_hierarchy_returns_objects(music: Engine) -> None:
    tree = _tree()
    stmt = select(Employee, tree.c.depth).join(tree, Employee.employee_id == tree.c.id).order_by(tree.c.depth,
                                                                                                  Employee.employee_id)
    raw = await raw_sql(music, RAW_TREE + 'SELECT e."EmployeeId", e."LastName", t.depth FROM "mcEmployee" e '
                                          'JOIN tree t ON e."EmployeeId" = t.id ORDER BY t.depth, e."EmployeeId"')
    async with AsyncSession(music) as s:
        rows = (await s.execute(stmt)).all()
        assert [(e.employee_id, e.last_name, d) for e, d in rows] == raw and len(raw) == 30
        assert max(d for _, d in rows) >= 3 and all(type(d) is int for _, d in rows)
        depth = {e.employee_id: d for e, d in rows}
        for e, d in rows:
            assert d == 0 if e.reports_to is None else d == depth[e.reports_to] + 1
        assert rows[0][0] is await s.get(Employee, 1)


async def test_recursive_cte_walks_up_to_the_root(music: Engine) -> None:
    chain = (select(Employee.employee_id.label("id"), Employee.reports_to.label("up"), literal(0).label("hops"))
             .where(Employee.employee_id == 30).cte("chain", recursive=True))
    chain = chain.union_all(select(Employee.employee_id, Employee.reports_to, (chain.c.hops + 1).label("hops"))
                            .join(chain, Employee.employee_id == chain.c.up))
    stmt = select(Employee).join(chain, chain.c.id == Employee.employee_id).order_by(chain.c.hops.desc())
    raw = await raw_sql(music, 'WITH RECURSIVE chain(id, up, hops) AS (SELECT "EmployeeId", "ReportsTo", 0 '
                               'FROM "mcEmployee" WHERE "EmployeeId" = 30 UNION ALL SELECT e."EmployeeId", '
                               'e."ReportsTo", c.hops + 1 FROM "mcEmployee" e JOIN chain c ON e."EmployeeId" = c.up) '
                               'SELECT id FROM chain ORDER BY hops DESC')
    async with AsyncSession(music) as s:
        bosses = (await s.scalars(stmt)).all()
    assert [(e.employee_id,) for e in bosses] == raw and raw[0] == (1,) and raw[-1] == (30,)


async def test_plain_cte_used_twice(music: Engine) -> None:
    sales = (select(Track.genre_id, func.sum(InvoiceLine.unit_price * InvoiceLine.quantity).label("revenue"))
             .join(Track, Track.track_id == InvoiceLine.track_id).group_by(Track.genre_id).cte("sales"))
    best = select(func.max(sales.c.revenue)).scalar_subquery()
    stmt = (select(Genre.name, sales.c.revenue, (sales.c.revenue == best).label("top"))
            .join(sales, sales.c.genre_id == Genre.genre_id).order_by(sales.c.revenue.desc()))
    got = await same(music, stmt, 'WITH sales AS (SELECT t."GenreId" AS genre_id, sum(l."UnitPrice" * l."Quantity") '
                                  'AS revenue FROM "mcInvoiceLine" l JOIN "mcTrack" t ON t."TrackId" = l."TrackId" '
                                  'GROUP BY t."GenreId") SELECT g."Name", s.revenue, s.revenue = (SELECT '
                                  'max(revenue) FROM sales) AS top FROM "mcGenre" g JOIN sales s ON s.genre_id = '
                                  'g."GenreId" ORDER BY s.revenue DESC', at_least=10, as_money=True)
    assert got[0][2] is True and all(r[2] is False for r in got[1:]) and type(got[0][1]) is D


# -- set operations -------------------------------------------------------------------------------

async def test_union_ordered_and_limited(music: Engine) -> None:
    stmt = union(select(Customer.country.label("country")), select(Employee.country)).order_by("country").limit(5)
    await same(music, stmt, 'SELECT "Country" AS country FROM "mcCustomer" UNION SELECT "Country" FROM "mcEmployee" '
                            "ORDER BY country LIMIT 5", at_least=5)


async def test_union_all_counts_every_row(music: Engine) -> None:
    people = union_all(select(Customer.last_name, literal("customer").label("kind")),
                       select(Employee.last_name, literal("employee").label("kind"))).subquery("people")
    stmt = select(people.c.kind, func.count().label("n")).group_by(people.c.kind).order_by(people.c.kind)
    got = await same(music, stmt, "SELECT kind, count(*) AS n FROM (SELECT \"LastName\", 'customer' AS kind "
                                  "FROM \"mcCustomer\" UNION ALL SELECT \"LastName\", 'employee' "
                                  "FROM \"mcEmployee\") p "
                                  "GROUP BY kind ORDER BY kind", at_least=2)
    assert got == [("customer", 200), ("employee", 30)]


async def test_intersect_and_except(music: Engine) -> None:
    bought = select(InvoiceLine.track_id)
    listed = select(playlist_track.c.TrackId.label("track_id"))
    both = intersect(bought, listed).order_by("track_id").limit(20).offset(5)
    await same(music, both, 'SELECT "TrackId" FROM "mcInvoiceLine" INTERSECT SELECT "TrackId" AS track_id FROM '
                            '"mcPlaylistTrack" ORDER BY 1 LIMIT 20 OFFSET 5', at_least=20)
    never_bought = except_(select(Track.track_id), bought).order_by(Track.track_id.desc()).limit(10)
    await same(music, never_bought, 'SELECT "TrackId" FROM "mcTrack" EXCEPT SELECT "TrackId" FROM "mcInvoiceLine" '
                                    'ORDER BY 1 DESC LIMIT 10', at_least=10)
    # as a method, and of objects: artists whose every album is short, minus those with no album at all
    stmt = select(Artist).except_(select(Artist).join(Album, Album.artist_id == Artist.artist_id)
                                  .where(Album.album_id < 60)).order_by(Artist.artist_id)
    raw = await raw_sql(music, 'SELECT "ArtistId" FROM "mcArtist" EXCEPT SELECT a."ArtistId" FROM "mcArtist" a '
                               'JOIN "mcAlbum" al ON al."ArtistId" = a."ArtistId" WHERE al."AlbumId" < 60 ORDER BY 1')
    async with AsyncSession(music) as s:
        rows = (await s.execute(stmt)).all()
        assert [(r[0].artist_id,) for r in rows] == raw and raw
        assert rows[0][0] is await s.get(Artist, raw[0][0])


# -- expressions ----------------------------------------------------------------------------------

async def test_case_buckets_grouped_by_their_label(music: Engine) -> None:
    length = case((Track.milliseconds < 180_000, "short"), (Track.milliseconds < 360_000, "medium"),
                  else_="long").label("length")
    stmt = select(length, func.count(Track.track_id).label("n")).group_by(length).order_by(length)
    got = await same(music, stmt, 'SELECT CASE WHEN "Milliseconds" < 180000 THEN \'short\' WHEN "Milliseconds" < '
                                  '360000 THEN \'medium\' ELSE \'long\' END AS length, count("TrackId") AS n '
                                  'FROM "mcTrack" GROUP BY length ORDER BY length', at_least=3)
    assert sum(n for _, n in got) == 1500


async def test_case_inside_sum_reads_money(music: Engine) -> None:
    cheap = func.sum(case((InvoiceLine.unit_price < 1, InvoiceLine.unit_price * InvoiceLine.quantity), else_=0))
    stmt = (select(Invoice.billing_country, cheap.label("cheap"))
            .join(InvoiceLine, InvoiceLine.invoice_id == Invoice.invoice_id)
            .group_by(Invoice.billing_country).order_by(Invoice.billing_country))
    got = await same(music, stmt, 'SELECT i."Billing Country", sum(CASE WHEN l."UnitPrice" < 1 THEN l."UnitPrice" * '
                                  'l."Quantity" ELSE 0 END) AS cheap FROM "mcInvoice" i JOIN "mcInvoiceLine" l ON '
                                  'l."InvoiceId" = i."InvoiceId" GROUP BY i."Billing Country" '
                                  'ORDER BY i."Billing Country"', at_least=8, as_money=True)
    assert all(type(v) is D for _, v in got)


async def test_cast_literal_null_true_false(music: Engine) -> None:
    stmt = (select(Track.track_id, cast(Track.milliseconds, str), cast(Track.genre_id, T.Numeric(10, 2)),
                   literal("track").label("kind"), null().label("empty"), true(), false())
            .where(Track.track_id <= 40).order_by(Track.track_id))
    got = await same(music, stmt, 'SELECT "TrackId", CAST("Milliseconds" AS VARCHAR), '
                                  'CAST("GenreId" AS NUMERIC(10, 2)), '
                                  "'track' AS kind, NULL AS empty, "
                                  + ("true, false" if pg(music) else "1, 0")
                                  + ' FROM "mcTrack" WHERE "TrackId" <= 40 ORDER BY "TrackId"', at_least=40,
                     as_money=True)
    for _, ms, genre, kind, empty, yes, no in got:
        assert type(ms) is str and (genre is None or type(genre) is D) and kind == "track"
        assert empty is None and yes is True and no is False
    stmt2 = select(Track.track_id).where(or_(Track.genre_id == null(), false())).order_by(Track.track_id)
    assert await orm_rows(music, stmt2) == []  # = NULL is never true
    stmt3 = select(Track.track_id).where(and_(Track.genre_id.is_(null()), true())).order_by(Track.track_id)
    await same(music, stmt3, 'SELECT "TrackId" FROM "mcTrack" WHERE "GenreId" IS NULL ORDER BY "TrackId"',
               at_least=20)


async def test_count_distinct_both_spellings(music: Engine) -> None:
    stmt = (select(Invoice.billing_country, func.count(distinct(Invoice.customer_id)).label("buyers"),
                   func.count(Invoice.customer_id.distinct()).label("again"), func.count().label("invoices"))
            .group_by(Invoice.billing_country).order_by(Invoice.billing_country))
    got = await same(music, stmt, 'SELECT "Billing Country", count(DISTINCT "CustomerId") AS buyers, '
                                  'count(DISTINCT "CustomerId") AS again, count(*) AS invoices FROM "mcInvoice" '
                                  'GROUP BY "Billing Country" ORDER BY "Billing Country"', at_least=8)
    assert all(type(b) is int and b == a and b < n for _, b, a, n in got)


async def test_extract_year_and_month(music: Engine) -> None:
    year = extract("year", Invoice.invoice_date).label("y")
    stmt = (select(year, extract("month", Invoice.invoice_date).label("m"), func.sum(Invoice.total).label("revenue"))
            .group_by(year, extract("month", Invoice.invoice_date)).order_by("y", "m"))
    if pg(music):
        y, m = 'CAST(EXTRACT(YEAR FROM "InvoiceDate") AS INTEGER)', 'CAST(EXTRACT(MONTH FROM "InvoiceDate") AS INTEGER)'
    else:
        y, m = "CAST(strftime('%Y', \"InvoiceDate\") AS INTEGER)", "CAST(strftime('%m', \"InvoiceDate\") AS INTEGER)"
    got = await same(music, stmt, f'SELECT {y} AS y, {m} AS m, sum("Total") AS revenue FROM "mcInvoice" '
                                  f"GROUP BY {y}, {m} ORDER BY y, m", at_least=36, as_money=True)
    truth: dict[tuple[int, int], Decimal] = defaultdict(D)
    for inv in SEED.invoices:
        truth[inv[2].year, inv[2].month] += inv[4]
    assert {(yy, mm): v for yy, mm, v in got} == truth  # exact Decimals on both backends
    assert all(type(yy) is int and type(v) is D for yy, _, v in got)


async def test_coalesce_and_string_concatenation(music: Engine) -> None:
    who = func.coalesce(Track.composer, "unknown").label("who")
    stmt = select(who, func.count().label("n")).group_by(who).order_by(func.count().desc(), who)
    await same(music, stmt, 'SELECT coalesce("Composer", \'unknown\') AS who, count(*) AS n FROM "mcTrack" '
                            'GROUP BY who ORDER BY count(*) DESC, who', at_least=5)
    full = (Customer.last_name + ", " + Customer.first_name + " <" + func.coalesce(Customer.email, "-") + ">")
    stmt2 = (select(Customer.customer_id, full.label("full")).where(Customer.customer_id.between(5, 25))
             .order_by(Customer.customer_id))
    got = await same(music, stmt2, 'SELECT "CustomerId", "LastName" || \', \' || "FirstName" || \' <\' || '
                                   'coalesce("Email", \'-\') || \'>\' AS full FROM "mcCustomer" '
                                   'WHERE "CustomerId" BETWEEN 5 AND 25 ORDER BY "CustomerId"', at_least=21)
    assert got[6] == (11, "Last011, First011 <->")


async def test_arithmetic_and_aggregate_result_types(music: Engine) -> None:
    stmt = select(func.sum(InvoiceLine.unit_price * InvoiceLine.quantity), func.sum(InvoiceLine.quantity),
                  func.count(), func.avg(InvoiceLine.unit_price), func.avg(InvoiceLine.quantity),
                  func.max(InvoiceLine.unit_price), func.min(Track.milliseconds // 1000).label("secs"))
    stmt = stmt.select_from(InvoiceLine).join(Track, Track.track_id == InvoiceLine.track_id)
    (revenue, qty, n, avg_price, avg_qty, top, secs), = await orm_rows(music, stmt)
    raw, = await raw_sql(music, 'SELECT sum(l."UnitPrice" * l."Quantity"), sum(l."Quantity"), count(*), '
                                'avg(l."UnitPrice"), avg(l."Quantity"), max(l."UnitPrice"), '
                                'min(t."Milliseconds" / 1000) '
                                'FROM "mcInvoiceLine" l JOIN "mcTrack" t ON t."TrackId" = l."TrackId"')
    assert revenue == sum(inv[4] for inv in SEED.invoices) and type(revenue) is D
    assert money([raw[:1]]) == [(revenue,)]  # SQLite's driver sums doubles: equal at cents
    assert (qty, n, secs) == (raw[1], raw[2], raw[6]) and type(qty) is int and type(n) is int and type(secs) is int
    # avg of Numeric(10, 2): a Decimal at the column's scale on both backends; of integers: a float
    exact = D(sum(line[3] for line in SEED.lines)) / len(SEED.lines)
    assert type(avg_price) is D and avg_price == exact.quantize(CENT, ROUND_HALF_UP)
    assert type(avg_qty) is float and avg_qty == pytest.approx(float(raw[4]))
    assert top == D("10.00") and type(top) is D


# -- window functions ------------------------------------------------------------------------------

async def test_ranking_functions_per_genre(music: Engine) -> None:
    order = (Track.unit_price.desc(), Track.milliseconds.desc())
    stmt = (select(Track.track_id,
                   func.row_number().over(partition_by=Track.genre_id, order_by=[*order, Track.track_id]).label("rn"),
                   func.rank().over(partition_by=Track.genre_id, order_by=Track.unit_price.desc()).label("rk"),
                   func.dense_rank().over(partition_by=Track.genre_id, order_by=Track.unit_price.desc()).label("dr"))
            .where(Track.genre_id.is_not(None)).order_by(Track.genre_id, "rn"))
    got = await same(music, stmt, 'SELECT "TrackId", row_number() OVER (PARTITION BY "GenreId" ORDER BY "UnitPrice" '
                                  'DESC, "Milliseconds" DESC, "TrackId") AS rn, rank() OVER (PARTITION BY "GenreId" '
                                  'ORDER BY "UnitPrice" DESC) AS rk, dense_rank() OVER (PARTITION BY "GenreId" ORDER '
                                  'BY "UnitPrice" DESC) AS dr FROM "mcTrack" WHERE "GenreId" IS NOT NULL '
                                  'ORDER BY "GenreId", rn', at_least=1000)
    assert any(rk != dr for _, _, rk, dr in got) and all(type(v) is int for r in got for v in r)


async def test_running_total_lag_and_lead(music: Engine) -> None:
    w = {"partition_by": Invoice.customer_id, "order_by": [Invoice.invoice_date, Invoice.invoice_id]}
    stmt = (select(Invoice.invoice_id, func.sum(Invoice.total).over(**w).label("running"),
                   func.lag(Invoice.total).over(**w).label("before"), func.lead(Invoice.total).over(**w).label("after"),
                   func.count().over(partition_by=Invoice.customer_id).label("n"))
            .where(Invoice.customer_id <= 20).order_by(Invoice.customer_id, Invoice.invoice_date, Invoice.invoice_id))
    o = 'OVER (PARTITION BY "CustomerId" ORDER BY "InvoiceDate", "InvoiceId")'
    got = await same(music, stmt, f'SELECT "InvoiceId", sum("Total") {o} AS running, lag("Total") {o} AS before, '
                                  f'lead("Total") {o} AS after, count(*) OVER (PARTITION BY "CustomerId") AS n '
                                  'FROM "mcInvoice" WHERE "CustomerId" <= 20 '
                                  'ORDER BY "CustomerId", "InvoiceDate", "InvoiceId"', at_least=80, as_money=True)
    totals = {inv[0]: inv[4] for inv in SEED.invoices}
    running: dict[int, Decimal] = {}
    for inv in sorted((i for i in SEED.invoices if i[1] <= 20), key=lambda i: (i[1], i[2], i[0])):
        running[inv[0]] = running.get(-inv[1], D(0)) + inv[4]
        running[-inv[1]] = running[inv[0]]
    for iid, run, before, after, n in got:
        assert run == running[iid] and type(run) is D and type(n) is int  # exact running sums
        assert before is None or type(before) is D
        assert after is None or after in totals.values()


async def test_best_customer_per_country(music: Engine) -> None:
    spent = func.sum(Invoice.total)
    ranked = (select(Customer.country, Customer.customer_id.label("customer_id"), spent.label("spent"),
                     func.row_number().over(partition_by=Customer.country,
                                            order_by=(spent.desc(), Customer.customer_id)).label("rn"))
              .join(Invoice, Invoice.customer_id == Customer.customer_id)
              .group_by(Customer.country, Customer.customer_id).subquery("ranked"))
    stmt = (select(Customer, ranked.c.spent).join(ranked, ranked.c.customer_id == Customer.customer_id)
            .where(ranked.c.rn == 1).order_by(Customer.country))
    raw = await raw_sql(music, 'SELECT customer_id, spent FROM (SELECT c."Country" AS country, c."CustomerId" AS '
                               'customer_id, sum(i."Total") AS spent, row_number() OVER (PARTITION BY c."Country" '
                               'ORDER BY sum(i."Total") DESC, c."CustomerId") AS rn FROM "mcCustomer" c JOIN '
                               '"mcInvoice" i ON i."CustomerId" = c."CustomerId" GROUP BY c."Country", '
                               'c."CustomerId") r WHERE rn = 1 ORDER BY country')
    async with AsyncSession(music) as s:
        rows = (await s.execute(stmt)).all()
        assert money([(c.customer_id, v) for c, v in rows]) == money(raw) and len(raw) == len(COUNTRIES)
        assert [c.country for c, _ in rows] == COUNTRIES
        assert all(type(v) is D for _, v in rows)


# -- labels, changing the column list, pagination ---------------------------------------------------

async def test_labels_reused_in_order_by_and_group_by(music: Engine) -> None:
    revenue = func.sum(Invoice.total).label("revenue")
    country = Invoice.billing_country.label("country")
    stmt = select(country, revenue, func.count().label("n")).group_by(country).order_by(revenue.desc()).limit(3)
    await same(music, stmt, 'SELECT "Billing Country" AS country, sum("Total") AS revenue, count(*) AS n '
                            'FROM "mcInvoice" GROUP BY country ORDER BY revenue DESC LIMIT 3', at_least=3,
               as_money=True)
    by_name = select(country, func.count().label("n")).group_by(country).order_by("n", "country")
    await same(music, by_name, 'SELECT "Billing Country" AS country, count(*) AS n FROM "mcInvoice" '
                               'GROUP BY country ORDER BY n, country', at_least=8)


async def test_add_columns_and_with_only_columns(music: Engine) -> None:
    base = (select(Track.track_id).join(Album, Album.album_id == Track.album_id)
            .where(Album.artist_id == 4, Track.milliseconds > 200_000).order_by(Track.track_id))
    wider = base.add_columns(Album.title, (Track.bytes // 1024).label("kb"))
    await same(music, wider, 'SELECT t."TrackId", a."Title", t."Bytes" / 1024 AS kb FROM "mcTrack" t JOIN "mcAlbum" a '
                             'ON a."AlbumId" = t."AlbumId" WHERE a."ArtistId" = 4 AND t."Milliseconds" > 200000 '
                             'ORDER BY t."TrackId"', at_least=5)
    names = base.with_only_columns(Track.name)
    await same(music, names, 'SELECT t."Name" FROM "mcTrack" t JOIN "mcAlbum" a ON a."AlbumId" = t."AlbumId" '
                             'WHERE a."ArtistId" = 4 AND t."Milliseconds" > 200000 ORDER BY t."TrackId"', at_least=5)
    async with AsyncSession(music) as s:
        tracks = (await s.scalars(base.with_only_columns(Track))).all()
        with_album = (await s.execute(base.add_columns(Album))).all()
        assert [t.track_id for t in tracks] == [tid for tid, _ in with_album]
        for t, (tid, album) in zip(tracks, with_album):
            assert tid == t.track_id and album.album_id == t.album_id
            assert album is await s.get(Album, t.album_id)


async def test_where_and_order_by_on_select_from_a_subquery(music: Engine) -> None:
    stats = (select(Album.album_id, Album.title, func.avg(Track.milliseconds).label("avg_ms"),
                    func.max(Track.unit_price).label("top"))
             .join(Track, Track.album_id == Album.album_id).group_by(Album.album_id, Album.title).subquery("stats"))
    stmt = (select(stats.c.title, stats.c.top).select_from(stats).where(stats.c.avg_ms > 330_000)
            .order_by(stats.c.top.desc(), stats.c.title))
    got = await same(music, stmt, 'SELECT title, top FROM (SELECT a."AlbumId" AS album_id, a."Title" AS title, '
                                  'avg(t."Milliseconds") AS avg_ms, max(t."UnitPrice") AS top FROM "mcAlbum" a JOIN '
                                  '"mcTrack" t ON t."AlbumId" = a."AlbumId" GROUP BY a."AlbumId", a."Title") s '
                                  'WHERE avg_ms > 330000 ORDER BY top DESC, title', at_least=10, as_money=True)
    assert all(type(top) is D for _, top in got)


@pytest.mark.parametrize("page", [0, 3, 40])
async def test_page_and_total_count(music: Engine, page: int) -> None:
    query = (select(Track.track_id, Track.name, Album.title).join(Album, Album.album_id == Track.album_id)
             .where(Track.unit_price < 1).order_by(Album.title, Track.track_id))
    rows = await same(music, query.limit(25).offset(page * 25),
                      'SELECT t."TrackId", t."Name", a."Title" FROM "mcTrack" t JOIN "mcAlbum" a '
                      'ON a."AlbumId" = t."AlbumId" WHERE t."UnitPrice" < 1 ORDER BY a."Title", t."TrackId" '
                      f"LIMIT 25 OFFSET {page * 25}", at_least=0)
    async with AsyncSession(music) as s:
        total = await s.scalar(select(func.count()).select_from(query.subquery()))
    assert total == sum(1 for t in SEED.tracks if t[8] < 1) and type(total) is int
    assert len(rows) == max(0, min(25, total - page * 25))


# -- many-to-many -----------------------------------------------------------------------------------

async def test_many_to_many_join_through_playlist_track(music: Engine) -> None:
    stmt = (select(Playlist.name, func.count(Track.track_id).label("n"), func.sum(Track.milliseconds).label("ms"))
            .join(Playlist.tracks).group_by(Playlist.name).order_by(Playlist.name))
    got = await same(music, stmt, 'SELECT p."Name", count(t."TrackId") AS n, sum(t."Milliseconds") AS ms '
                                  'FROM "mcPlaylist" p JOIN "mcPlaylistTrack" pt ON pt."PlaylistId" = p."PlaylistId" '
                                  'JOIN "mcTrack" t ON t."TrackId" = pt."TrackId" GROUP BY p."Name" ORDER BY p."Name"',
                     at_least=11)
    assert "Playlist 12" not in {r[0] for r in got}
    # the other way round and explicitly through the table, with an outer join keeping the empty one
    stmt2 = (select(Playlist.playlist_id, func.count(playlist_track.c.TrackId))
             .outerjoin(playlist_track, playlist_track.c.PlaylistId == Playlist.playlist_id)
             .group_by(Playlist.playlist_id).order_by(Playlist.playlist_id))
    got2 = await same(music, stmt2, 'SELECT p."PlaylistId", count(pt."TrackId") FROM "mcPlaylist" p LEFT OUTER JOIN '
                                    '"mcPlaylistTrack" pt ON pt."PlaylistId" = p."PlaylistId" GROUP BY p."PlaylistId" '
                                    'ORDER BY p."PlaylistId"', at_least=12)
    assert got2[-1] == (12, 0)
    stmt3 = (select(Track.track_id, Playlist.name).join(Track.playlists).where(Track.track_id < 60)
             .order_by(Track.track_id, Playlist.name))
    await same(music, stmt3, 'SELECT t."TrackId", p."Name" FROM "mcTrack" t JOIN "mcPlaylistTrack" pt ON '
                             'pt."TrackId" = t."TrackId" JOIN "mcPlaylist" p ON p."PlaylistId" = pt."PlaylistId" '
                             'WHERE t."TrackId" < 60 ORDER BY t."TrackId", p."Name"', at_least=10)


async def test_many_to_many_loaded_as_collections(music: Engine) -> None:
    from aiouow import selectinload

    raw = await raw_sql(music, 'SELECT "PlaylistId", "TrackId" FROM "mcPlaylistTrack" ORDER BY 1, 2')
    async with AsyncSession(music) as s:
        playlists = (await s.scalars(select(Playlist).options(selectinload(Playlist.tracks))
                                     .order_by(Playlist.playlist_id))).all()
        got = sorted((p.playlist_id, t.track_id) for p in playlists for t in p.tracks)
        assert got == raw and playlists[-1].tracks == []
        a_track = playlists[0].tracks[0]
        assert a_track is await s.get(Track, a_track.track_id)


async def test_who_bought_from_which_playlist(music: Engine) -> None:
    # customers, the genre, and the money they spent on tracks of playlist 1: five tables, a m2m hop
    stmt = (select(Customer.customer_id, Genre.name, func.sum(InvoiceLine.unit_price * InvoiceLine.quantity))
            .join(Invoice, Invoice.customer_id == Customer.customer_id)
            .join(InvoiceLine, InvoiceLine.invoice_id == Invoice.invoice_id)
            .join(Track, Track.track_id == InvoiceLine.track_id).join(Track.playlists).join(Track.genre)
            .where(Playlist.playlist_id == 1).group_by(Customer.customer_id, Genre.name)
            .having(func.count() > 1).order_by(Customer.customer_id, Genre.name))
    await same(music, stmt, 'SELECT c."CustomerId", g."Name", sum(l."UnitPrice" * l."Quantity") FROM "mcCustomer" c '
                            'JOIN "mcInvoice" i ON i."CustomerId" = c."CustomerId" JOIN "mcInvoiceLine" l ON '
                            'l."InvoiceId" = i."InvoiceId" JOIN "mcTrack" t ON t."TrackId" = l."TrackId" JOIN '
                            '"mcPlaylistTrack" pt ON pt."TrackId" = t."TrackId" JOIN "mcPlaylist" p ON '
                            'p."PlaylistId" = pt."PlaylistId" JOIN "mcGenre" g ON g."GenreId" = t."GenreId" '
                            'WHERE p."PlaylistId" = 1 GROUP BY c."CustomerId", g."Name" HAVING count(*) > 1 '
                            'ORDER BY c."CustomerId", g."Name"', at_least=1, as_money=True)


# -- money ------------------------------------------------------------------------------------------

async def test_money_totals_are_exact_decimals(music: Engine) -> None:
    line_sum = func.sum(InvoiceLine.unit_price * InvoiceLine.quantity)
    stmt = (select(Invoice.invoice_id, Invoice.total, line_sum.label("lines"))
            .join(InvoiceLine, InvoiceLine.invoice_id == Invoice.invoice_id)
            .group_by(Invoice.invoice_id, Invoice.total).order_by(Invoice.invoice_id))
    got = await same(music, stmt, 'SELECT i."InvoiceId", i."Total", sum(l."UnitPrice" * l."Quantity") AS lines '
                                  'FROM "mcInvoice" i JOIN "mcInvoiceLine" l ON l."InvoiceId" = i."InvoiceId" '
                                  'GROUP BY i."InvoiceId", i."Total" ORDER BY i."InvoiceId"', at_least=1000,
                     as_money=True)
    assert [(iid, total, lines) for iid, total, lines in got] == [(i[0], i[4], i[4]) for i in SEED.invoices]
    assert all(type(t) is D and type(v) is D for _, t, v in got)
    per_country = (select(Customer.country, func.sum(Invoice.total).label("revenue"))
                   .join(Invoice, Invoice.customer_id == Customer.customer_id)
                   .group_by(Customer.country).order_by(Customer.country))
    truth: dict[str, Decimal] = defaultdict(D)
    country = {c[0]: c[4] for c in SEED.customers}
    for inv in SEED.invoices:
        truth[country[inv[1]]] += inv[4]
    assert await orm_rows(music, per_country) == sorted(truth.items())
    cents = D(str(sum(inv[4] for inv in SEED.invoices)))
    async with AsyncSession(music) as s:
        assert await s.scalar(select(func.sum(Invoice.total))) == cents


# -- database names that differ from attribute names, through every construct ------------------

async def test_subquery_and_cte_columns_keep_attribute_names(music: Engine) -> None:
    sq = select(Album.album_id, Album.artist_id).where(Album.album_id < 30).subquery("sq")
    stmt = select(sq.c.artist_id, func.count(sq.c.album_id).label("n")).group_by(sq.c.artist_id).order_by(
        sq.c.artist_id)
    await same(music, stmt, 'SELECT "ArtistId", count("AlbumId") AS n FROM (SELECT "AlbumId", "ArtistId" FROM '
                            '"mcAlbum" WHERE "AlbumId" < 30) sq GROUP BY "ArtistId" ORDER BY "ArtistId"', at_least=10)
    async with AsyncSession(music) as s:
        row = (await s.execute(stmt)).first()
        assert row is not None and row.artist_id == row[0]
        everything = (await s.execute(select(sq).order_by(sq.c.album_id))).first()
        assert everything is not None and (everything.album_id, everything.artist_id) == (1, SEED.albums[0][2])
    cte = select(Track.track_id, Track.album_id).where(Track.unit_price > 5).cte("pricey")
    stmt2 = (select(Album.title, cte.c.track_id).join(cte, cte.c.album_id == Album.album_id)
             .order_by(cte.c.track_id))
    await same(music, stmt2, 'WITH pricey AS (SELECT "TrackId", "AlbumId" FROM "mcTrack" WHERE "UnitPrice" > 5) '
                             'SELECT a."Title", p."TrackId" FROM "mcAlbum" a JOIN pricey p ON p."AlbumId" = '
                             'a."AlbumId" ORDER BY p."TrackId"', at_least=50)


async def test_recursive_cte_of_unlabelled_mapped_columns(music: Engine) -> None:
    tree = (select(Employee.employee_id, Employee.reports_to).where(Employee.employee_id == 2)
            .cte("below", recursive=True))
    tree = tree.union_all(select(Employee.employee_id, Employee.reports_to)
                          .join(tree, Employee.reports_to == tree.c.employee_id))
    stmt = select(tree.c.employee_id, tree.c.reports_to).order_by(tree.c.employee_id)
    await same(music, stmt, 'WITH RECURSIVE below(id, up) AS (SELECT "EmployeeId", "ReportsTo" FROM "mcEmployee" '
                            'WHERE "EmployeeId" = 2 UNION ALL SELECT e."EmployeeId", e."ReportsTo" FROM "mcEmployee" e '
                            'JOIN below b ON e."ReportsTo" = b.id) SELECT id, up FROM below ORDER BY id', at_least=2)


async def test_set_operation_of_mapped_columns_ordered_by_attribute(music: Engine) -> None:
    raw = ('SELECT "CustomerId", "Country" FROM "mcCustomer" WHERE "CustomerId" < 20 UNION SELECT "EmployeeId", '
           '"Country" FROM "mcEmployee" ORDER BY 2 DESC, 1 LIMIT 12')
    a = select(Customer.customer_id, Customer.country).where(Customer.customer_id < 20)
    b = select(Employee.employee_id, Employee.country)
    for stmt in (union(a, b).order_by(Customer.country.desc(), Customer.customer_id),
                 union(a, b).order_by("country DESC" if False else Customer.country.desc(), "customer_id")):
        await same(music, stmt.limit(12), raw, at_least=12)
    sq = union(a, b).subquery("everyone")
    stmt2 = select(sq.c.country, func.count()).group_by(sq.c.country).order_by(sq.c.country)
    await same(music, stmt2, 'SELECT "Country", count(*) FROM (SELECT "CustomerId", "Country" FROM "mcCustomer" '
                             'WHERE "CustomerId" < 20 UNION SELECT "EmployeeId", "Country" FROM "mcEmployee") e '
                             'GROUP BY "Country" ORDER BY "Country"', at_least=5)


async def test_alias_columns_in_filter_by_exists_extract_and_scalar_subqueries(music: Engine) -> None:
    m = aliased(Employee, name="m")
    r = aliased(Employee, name="r")
    n_reports = select(func.count(r.employee_id)).where(r.reports_to == m.employee_id).scalar_subquery()
    stmt = (select(m.employee_id, n_reports.label("n"), extract("year", m.hire_date).label("y"))
            .filter_by(title="Sales Manager").where(exists(select(r.employee_id).where(r.reports_to == m.employee_id)))
            .order_by(m.employee_id))
    y = ('CAST(EXTRACT(YEAR FROM m."HireDate") AS INTEGER)' if pg(music)
         else "CAST(strftime('%Y', m.\"HireDate\") AS INTEGER)")
    await same(music, stmt, f'SELECT m."EmployeeId", (SELECT count(r."EmployeeId") FROM "mcEmployee" r WHERE '
                            f'r."ReportsTo" = m."EmployeeId") AS n, {y} AS y FROM "mcEmployee" m WHERE '
                            f'm."Title" = \'Sales Manager\' AND EXISTS (SELECT r."EmployeeId" FROM "mcEmployee" r '
                            f'WHERE r."ReportsTo" = m."EmployeeId") ORDER BY m."EmployeeId"', at_least=1)


async def test_distinct_select_and_window_over_mapped_columns(music: Engine) -> None:
    stmt = select(Track.composer).distinct().where(Track.composer.is_not(None)).order_by(Track.composer)
    await same(music, stmt, 'SELECT DISTINCT "Composer" FROM "mcTrack" WHERE "Composer" IS NOT NULL '
                            'ORDER BY "Composer"', at_least=4)
    share = (Track.unit_price * 100 / func.sum(Track.unit_price).over(partition_by=Track.album_id)).label("share")
    stmt2 = (select(Track.track_id, cast(share, T.Numeric(10, 2))).where(Track.album_id == 7)
             .order_by(Track.track_id))
    await same(music, stmt2, 'SELECT "TrackId", CAST("UnitPrice" * 100 / sum("UnitPrice") OVER (PARTITION BY '
                             '"AlbumId") AS NUMERIC(10, 2)) FROM "mcTrack" WHERE "AlbumId" = 7 ORDER BY "TrackId"',
               at_least=5, as_money=True)


async def test_stream_a_cte_and_joinedload_with_a_self_join(music: Engine) -> None:
    from aiouow import joinedload

    tree = _tree()
    async with AsyncSession(music) as s:
        streamed = [(e.employee_id, d) async for e, d in await s.stream(
            select(Employee, tree.c.depth).join(tree, tree.c.id == Employee.employee_id)
            .order_by(tree.c.depth, Employee.employee_id))]
    raw = await raw_sql(music, RAW_TREE + "SELECT id, depth FROM tree ORDER BY depth, id")
    assert streamed == raw
    m = aliased(Employee, name="m")
    stmt = (select(Employee).join(m, Employee.reports_to == m.employee_id).where(m.employee_id == 1)
            .options(joinedload(Employee.manager)).order_by(Employee.employee_id))
    async with AsyncSession(music) as s:
        direct = (await s.scalars(stmt)).all()
        assert direct and all(e.manager is not None and e.manager.employee_id == 1 for e in direct)
        assert direct[0].manager is await s.get(Employee, 1)
    raw2 = await raw_sql(music, 'SELECT "EmployeeId" FROM "mcEmployee" WHERE "ReportsTo" = 1 ORDER BY 1')
    assert [(e.employee_id,) for e in direct] == raw2


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


async def test_filter_by_follows_sqlalchemys_entity(music: Engine) -> None:
    # filter_by() refused a select whose first item is a column, ignored the last join's target
    # (filtering the first model instead), and raised a bare KeyError for an unknown name
    m = aliased(Employee, name="m")
    stmt = select(m.employee_id, m.last_name).filter_by(title="Sales Manager").order_by(m.employee_id)
    await same(music, stmt, 'SELECT "EmployeeId", "LastName" FROM "mcEmployee" WHERE "Title" = \'Sales Manager\' '
                            'ORDER BY "EmployeeId"')
    joined = (select(Album.title, Track.name).join(Album.tracks).filter_by(name="Track 0007")
              .order_by(Album.album_id))
    await same(music, joined, 'SELECT a."Title", t."Name" FROM "mcAlbum" a JOIN "mcTrack" t ON t."AlbumId" = '
                              'a."AlbumId" WHERE t."Name" = \'Track 0007\'')
    counted = select(func.count()).select_from(Customer).filter_by(country="Norway")
    await same(music, counted, 'SELECT count(*) FROM "mcCustomer" WHERE "Country" = \'Norway\'')
    from aiouow.exc import ArgumentError

    with pytest.raises(ArgumentError, match="'mcAlbum' has no column 'nope'"):
        select(Album).filter_by(nope=1)
    with pytest.raises(ArgumentError, match="use where"):
        select(func.count()).filter_by(title="x")


async def test_exists_in_the_column_list_reads_a_bool(music: Engine) -> None:
    # EXISTS took its SELECT's first column's type: SQLite's 0/1 came back as int, PostgreSQL's as bool
    has_album = exists(select(Album.album_id).where(Album.artist_id == Artist.artist_id))
    stmt = (select(Artist.artist_id, has_album.label("has_album"), (~has_album).label("none"))
            .where(Artist.artist_id > 30).order_by(Artist.artist_id))
    got = await same(music, stmt, 'SELECT a."ArtistId", EXISTS (SELECT 1 FROM "mcAlbum" al WHERE al."ArtistId" = '
                                  'a."ArtistId"), NOT EXISTS (SELECT 1 FROM "mcAlbum" al WHERE al."ArtistId" = '
                                  'a."ArtistId") FROM "mcArtist" a WHERE a."ArtistId" > 30 ORDER BY a."ArtistId"',
                     at_least=10)
    assert all(type(h) is bool and type(n) is bool and h is not n for _, h, n in got)
    assert {a for a, h, _ in got if not h} == {36, 37, 38, 39, 40}


async def test_cast_of_a_datetime_to_date(music: Engine) -> None:
    # SQLite's CAST(x AS <text type>) kept the time of day, which a date cannot be read from
    day = cast(Invoice.invoice_date, dt.date).label("day")
    stmt = select(day, func.count().label("n")).group_by(day).having(func.count() > 2).order_by(day)
    as_date = 'CAST("InvoiceDate" AS DATE)' if pg(music) else 'date("InvoiceDate")'
    got = await orm_rows(music, stmt)
    raw = await raw_sql(music, f'SELECT {as_date} AS day, count(*) AS n FROM "mcInvoice" GROUP BY {as_date} '
                               "HAVING count(*) > 2 ORDER BY day")
    assert [(d.isoformat(), n) for d, n in got] == [(str(d), n) for d, n in raw] and got
    per_day: dict[dt.date, int] = defaultdict(int)
    for inv in SEED.invoices:
        per_day[inv[2].date()] += 1
    assert got == sorted((d, n) for d, n in per_day.items() if n > 2)
    assert all(type(d) is dt.date for d, _ in got)


async def test_subquery_with_two_columns_of_one_name(music: Engine) -> None:
    # the second "LastName" was dropped from sq.c and rendered unlabelled: PostgreSQL called it
    # ambiguous, SQLite silently gave the employee's name as the manager's
    m = aliased(Employee, name="m")
    pairs = (select(Employee.employee_id, Employee.last_name, m.last_name)
             .join(m, Employee.reports_to == m.employee_id).subquery("pairs"))
    assert [c.key for c in pairs.c] == ["employee_id", "last_name", "last_name_1"]
    stmt = select(pairs).where(pairs.c.last_name_1 == "Last01").order_by(pairs.c.employee_id)
    await same(music, stmt, 'SELECT e."EmployeeId", e."LastName", m."LastName" FROM "mcEmployee" e JOIN "mcEmployee" m '
                            'ON e."ReportsTo" = m."EmployeeId" WHERE m."LastName" = \'Last01\' ORDER BY e."EmployeeId"')
    # two whole entities, and a CTE: every repeated column gets its suffix
    both = select(Employee, m).join(m, Employee.manager).cte("both")
    assert len(both.c) == 14 and both.c.employee_id_1.name == "employee_id_1"
    stmt2 = (select(both.c.employee_id, both.c.first_name_1, both.c.country_1)
             .where(both.c.country != both.c.country_1).order_by(both.c.employee_id))
    await same(music, stmt2, 'SELECT e."EmployeeId", m."FirstName", m."Country" FROM "mcEmployee" e '
                             'JOIN "mcEmployee" m ON e."ReportsTo" = m."EmployeeId" WHERE e."Country" <> m."Country" '
                             'ORDER BY e."EmployeeId"', at_least=20)


async def test_set_operation_ordered_by_a_column_its_first_select_labels(music: Engine) -> None:
    # ORDER BY named the column ("FirstName"), which a set operation's result does not have when the
    # first SELECT labels it: PostgreSQL refused, SQLite happened to accept
    names = union(select(Customer.first_name.label("first")), select(Employee.first_name))
    stmt = names.order_by(Customer.first_name.desc()).limit(4)
    await same(music, stmt, 'SELECT "FirstName" AS first FROM "mcCustomer" UNION SELECT "FirstName" FROM "mcEmployee" '
                            "ORDER BY first DESC LIMIT 4", at_least=4)


async def test_anchor_and_completed_recursive_cte_are_one_from_entry(music: Engine) -> None:
    # the anchor's columns beside the completed CTE's listed "tree" twice in FROM: PostgreSQL
    # refused the name as specified more than once, SQLite cross-joined the tree with itself
    anchor = (select(Employee.employee_id.label("id"), literal(0).label("depth"))
              .where(Employee.reports_to.is_(None)).cte("tree", recursive=True))
    tree = anchor.union_all(select(Employee.employee_id, (anchor.c.depth + 1).label("depth"))
                            .join(anchor, Employee.reports_to == anchor.c.id))
    pairs = select(tree.c.id, anchor.c.depth).order_by(tree.c.id)
    assert engine_sql(music, pairs).endswith('SELECT "tree"."id", "tree"."depth" FROM "tree" ORDER BY "tree"."id"')
    await same(music, pairs, RAW_TREE + "SELECT id, depth FROM tree ORDER BY id", at_least=30)
    deep = (select(Employee.employee_id, tree.c.depth).join(tree, tree.c.id == Employee.employee_id)
            .where(anchor.c.depth >= 2).order_by(Employee.employee_id))
    await same(music, deep, RAW_TREE + 'SELECT e."EmployeeId", t.depth FROM "mcEmployee" e JOIN tree t '
                                       'ON t.id = e."EmployeeId" WHERE t.depth >= 2 ORDER BY e."EmployeeId"',
               at_least=5)
    # joined as the anchor, its depth selected through the completed CTE: the walk still recurses
    joined = (select(Employee.employee_id, tree.c.depth).join(anchor, anchor.c.id == Employee.employee_id)
              .order_by(Employee.employee_id))
    got = await same(music, joined, RAW_TREE + 'SELECT e."EmployeeId", t.depth FROM "mcEmployee" e JOIN tree t '
                                               'ON t.id = e."EmployeeId" ORDER BY e."EmployeeId"', at_least=30)
    assert max(d for _, d in got) >= 3


async def test_float_operand_of_money_stays_numeric(music: Engine) -> None:
    # ``price * 1.2`` bound 1.2 as a double: PostgreSQL computed a double, and round(double, int)
    # does not exist there (SQLite took it)
    gross = func.round(Track.unit_price * 1.2, 2).label("gross")
    stmt = select(Track.track_id, gross).where(Track.track_id <= 50).order_by(Track.track_id)
    got = await same(music, stmt, 'SELECT "TrackId", round("UnitPrice" * 1.2, 2) AS gross FROM "mcTrack" '
                                  'WHERE "TrackId" <= 50 ORDER BY "TrackId"', at_least=50, as_money=True)
    prices = {t[0]: t[8] for t in SEED.tracks}
    assert all(type(g) is D and g == (prices[i] * D("1.2")).quantize(CENT, ROUND_HALF_UP) for i, g in got)
    for bound in (0.99, 1.99, 9.99):  # compared as the decimal written, not as its binary double
        n = await orm_rows(music, select(func.count()).select_from(Track).where(Track.unit_price > bound))
        assert n == [(sum(1 for p in prices.values() if p > D(repr(bound))),)]
