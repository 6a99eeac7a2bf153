"""Decimals and datetimes on real data: numeric comparisons, aggregates at the declared scale,
SQLite's own datetime text, and tables created and written by other tools (raw SQL), on both backends.

The truth is raw SQL: each query's answer is checked against the same question asked in SQL.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import sqlite3
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aiouow import AsyncSession, Engine, MetaData, Model, column, exc, func, insert, select, text
from aiouow import types as T

D = decimal.Decimal
UTC = dt.UTC


class RdBase(Model):
    metadata = MetaData()


class RdOrder(RdBase):
    """Created by aiouow."""

    __tablename__ = "rd_orders"
    id: int = column(primary_key=True)
    cat: str = column()
    price: D = column(type_=T.Numeric(10, 2))
    qty: int = column()
    loose: D | None = column(default=None)  # Numeric() without a scale
    at: dt.datetime | None = column(default=None)
    at_tz: dt.datetime | None = column(default=None, type_=T.DateTime(timezone=True))


#: (id, cat, price, qty): text order of the prices is not their numeric order
ORDERS = [
    (1, "a", D("9.00"), 1), (2, "a", D("10.00"), 2), (3, "a", D("10.01"), 3), (4, "b", D("100.00"), 1),
    (5, "b", D("0.10"), 7), (6, "c", D("1.05"), 2), (7, "c", D("20.00"), 1), (8, "c", D("25.00"), 1),
]
#: twelve prices whose sum in doubles is 688.8499999999999
NOISY = ["42.49", "90.24", "38.39", "31.41", "77.04", "88.63", "90.05", "78.04", "65.06", "24.67", "37.99", "24.84"]


@pytest.fixture
async def orders(db: Engine) -> AsyncIterator[Engine]:
    await RdBase.metadata.drop_all(db)
    await RdBase.metadata.create_all(db)
    try:
        async with AsyncSession(db) as s:
            s.add_all([RdOrder(id=i, cat=c, price=p, qty=q) for i, c, p, q in ORDERS])
            await s.commit()
        yield db
    finally:
        await RdBase.metadata.drop_all(db)


async def _ids(engine: Engine, stmt: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(stmt)).scalars().all())


async def _raw(engine: Engine, sql: str) -> list[Any]:
    async with engine.connect() as conn:
        return [r[0] for r in (await conn.exec_driver_sql(sql)).all()]


async def test_decimal_comparisons_and_order_are_numeric(orders: Engine) -> None:
    db = orders
    assert await _ids(db, select(RdOrder.id).where(RdOrder.price > 10).order_by(RdOrder.id)) == [3, 4, 7, 8]
    assert await _ids(db, select(RdOrder.id).where(RdOrder.price > D("10.00")).order_by(RdOrder.id)) == [3, 4, 7, 8]
    assert await _ids(db, select(RdOrder.id).where(RdOrder.price == D("10.01"))) == [3]
    assert await _ids(db, select(RdOrder.id).where(RdOrder.price.between(D("9"), D("10")))
                      .order_by(RdOrder.id)) == [1, 2]
    assert await _ids(db, select(RdOrder.id).where(RdOrder.price.in_([D("9.00"), D("100")]))
                      .order_by(RdOrder.id)) == [1, 4]
    by_price = await _ids(db, select(RdOrder.price).order_by(RdOrder.price))
    assert by_price == sorted(p for _, _, p, _ in ORDERS)
    assert [str(p) for p in by_price[:4]] == ["0.10", "1.05", "9.00", "10.00"]  # read at the scale
    # the same questions in raw SQL
    assert await _raw(db, "SELECT id FROM rd_orders WHERE price > 10 ORDER BY id") == [3, 4, 7, 8]
    assert await _raw(db, "SELECT id FROM rd_orders ORDER BY price") == [
        i for i, *_ in sorted(ORDERS, key=lambda o: o[2])]
    if db.dialect.name == "sqlite":
        # stored as numbers, not text
        assert set(await _raw(db, "SELECT typeof(price) FROM rd_orders")) == {"integer", "real"}


async def test_decimal_aggregates_and_expressions(orders: Engine) -> None:
    db = orders
    async with db.connect() as conn:
        row = (await conn.execute(select(func.max(RdOrder.price), func.min(RdOrder.price), func.sum(RdOrder.price),
                                         func.avg(RdOrder.price)))).one()
    assert tuple(row) == (D("100.00"), D("0.10"), D("175.16"), D("21.90"))  # avg 21.895 rounds half up
    assert all(isinstance(v, D) and v.as_tuple().exponent == -2 for v in row)

    async with db.connect() as conn:
        # sum() of a 64-bit integer column is NUMERIC on PostgreSQL: still read as an int
        qty = (await conn.execute(select(func.sum(RdOrder.qty), func.max(RdOrder.qty)))).one()
    assert tuple(qty) == (18, 7) and all(type(v) is int for v in qty)

    having = (select(RdOrder.cat).group_by(RdOrder.cat).having(func.sum(RdOrder.price) > 45).order_by(RdOrder.cat))
    assert await _ids(db, having) == ["b", "c"]
    assert await _raw(db, "SELECT cat FROM rd_orders GROUP BY cat HAVING sum(price) > 45 ORDER BY cat") == ["b", "c"]
    having_dec = select(RdOrder.cat).group_by(RdOrder.cat).having(func.sum(RdOrder.price) > D("46.04"))
    assert sorted(await _ids(db, having_dec)) == ["b", "c"]

    # a Decimal bound against an expression compares as a number
    q = select(RdOrder.id).order_by(RdOrder.id)
    assert await _ids(db, q.where(RdOrder.price * RdOrder.qty > D("30"))) == [3, 4]
    assert await _ids(db, q.where(func.abs(RdOrder.price) > 2)) == [1, 2, 3, 4, 7, 8]
    assert await _ids(db, q.where(-RdOrder.price < D("-20"))) == [4, 8]
    # integer column times a Decimal literal: the literal travels as a number, the result is a Decimal
    assert await _ids(db, q.where(RdOrder.qty * D("1.5") > 4)) == [3, 5]
    # and an integer column compared with a fraction is not compared with the fraction truncated
    assert await _ids(db, q.where(RdOrder.qty >= D("2.5"))) == [3, 5]
    assert await _ids(db, q.where(RdOrder.qty >= 2.5)) == [3, 5]
    async with db.connect() as conn:
        totals = (await conn.execute(select(RdOrder.qty * RdOrder.price).order_by(RdOrder.id))).scalars().all()
        assert totals[:3] == [D("9.00"), D("20.00"), D("30.03")]
        assert all(isinstance(t, D) for t in totals)
        # a text() parameter with no column type, and a function aiouow knows no type of
        found = (await conn.execute(text("SELECT id FROM rd_orders WHERE price * qty > :p ORDER BY id")
                                    .bindparams(p=D("30")))).scalars().all()
        assert found == [3, 4]
        assert (await conn.execute(select(func.count(RdOrder.id))
                                   .where(func.coalesce(RdOrder.loose, RdOrder.price) >= D("25")))).scalar_one() == 2


async def test_sum_reads_at_the_declared_scale(orders: Engine) -> None:
    db = orders
    async with AsyncSession(db) as s:
        s.add_all([RdOrder(id=100 + i, cat="noisy", price=D(p), qty=1, loose=D(p)) for i, p in enumerate(NOISY)])
        await s.commit()
    exact = sum(D(p) for p in NOISY)
    assert exact == D("688.85")
    async with db.connect() as conn:
        where = RdOrder.cat == "noisy"
        got = (await conn.execute(select(func.sum(RdOrder.price)).where(where))).scalar_one()
        assert got == exact and str(got) == "688.85"
        # without a declared scale: 15 significant digits on SQLite, exact on PostgreSQL
        assert (await conn.execute(select(func.sum(RdOrder.loose)).where(where))).scalar_one() == exact
        raw = (await conn.exec_driver_sql("SELECT sum(price) FROM rd_orders WHERE cat = 'noisy'")).scalar_one()
    if db.dialect.name == "postgresql":
        assert raw == exact  # NUMERIC: exact in the database already
    else:
        assert raw != 688.85  # the double SQLite sums to; read as 688.85 above


async def test_decimal_precision_limits(db: Engine) -> None:
    class WideBase(Model):
        metadata = MetaData()

    md = WideBase.metadata

    class RdWide(WideBase):
        __tablename__ = "rd_wide"
        id: int = column(primary_key=True)
        v: D | None = column(default=None, type_=T.Numeric(38, 10))

    await md.create_all(db)
    try:
        async with db.begin() as conn:
            await conn.execute(insert(RdWide).values(id=1, v=D("12345678901234567890.0123456789")))
            await conn.execute(insert(RdWide).values(id=2, v=D("1234567890.12345")))
            await conn.execute(insert(RdWide).values(id=3, v=D("9223372036854775807")))
        got = dict(await _pairs(db, select(RdWide.id, RdWide.v)))
        assert got[2] == D("1234567890.12345") and got[3] == D("9223372036854775807")
        assert all(v.as_tuple().exponent == -10 for v in got.values())
        if db.dialect.name == "postgresql":
            assert str(got[1]) == "12345678901234567890.0123456789"
        else:
            assert got[1] == D("12345678901234600000")  # a double's 15 significant digits
        nan = insert(RdWide).values(id=4, v=D("NaN"))
        if db.dialect.name == "sqlite":
            with pytest.raises(exc.DataError, match="NaN"):
                async with db.begin() as conn:
                    await conn.execute(nan)
        else:
            async with db.begin() as conn:
                await conn.execute(nan)
            assert (await _ids(db, select(RdWide.v).where(RdWide.id == 4)))[0].is_nan()
    finally:
        await md.drop_all(db)


async def _pairs(engine: Engine, stmt: Any) -> list[tuple[Any, Any]]:
    async with engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(stmt)).all()]  # type: ignore[misc]


# -- datetimes -----------------------------------------------------------------------------------
async def test_datetimes_are_stored_in_sqlites_form(orders: Engine) -> None:
    db = orders
    whole = dt.datetime(2021, 1, 1)
    frac = dt.datetime(2021, 1, 1, 0, 0, 0, 500000)
    aware = dt.datetime(2021, 1, 1, 5, 30, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30)))
    async with db.begin() as conn:
        await conn.execute(insert(RdOrder).values(id=20, cat="t", price=1, qty=1, at=whole, at_tz=aware))
        await conn.execute(insert(RdOrder).values(id=21, cat="t", price=1, qty=1, at=frac, at_tz=aware))
    if db.dialect.name == "sqlite":
        raw = await _raw(db, "SELECT at || '|' || at_tz FROM rd_orders WHERE cat = 't' ORDER BY id")
        assert raw == ["2021-01-01 00:00:00|2021-01-01 00:00:00", "2021-01-01 00:00:00.500000|2021-01-01 00:00:00"]
        # the text SQLite's own functions write for the same instant
        assert await _raw(db, "SELECT id FROM rd_orders WHERE at = datetime('2021-01-01') "
                              "AND at_tz = datetime('2021-01-01')") == [20]
    got = await _pairs(db, select(RdOrder.at, RdOrder.at_tz).where(RdOrder.cat == "t").order_by(RdOrder.id))
    assert got == [(whole, aware), (frac, aware)]
    assert got[0][1].utcoffset() == dt.timedelta(0)  # read as UTC, as PostgreSQL returns it
    assert await _ids(db, select(RdOrder.id).where(RdOrder.at > whole)) == [21]
    assert await _ids(db, select(RdOrder.id).where(RdOrder.cat == "t").order_by(RdOrder.at.desc())) == [21, 20]


class Level(enum.Enum):
    low = "L"
    high = "H"


class LegacyBase(Model):
    metadata = MetaData()


class RdLegacy(LegacyBase):
    """Mapped onto a table created by raw SQL (see ``legacy``)."""

    __tablename__ = "rd_legacy"
    id: int = column(primary_key=True)
    price: D | None = column(default=None, type_=T.Numeric(10, 2))
    total: D | None = column(default=None, type_=T.Numeric(10, 2))
    at: dt.datetime | None = column(default=None)
    created: dt.datetime | None = column(default=None)
    day: dt.date | None = column(default=None)
    flag: bool | None = column(default=None)
    token: uuid.UUID | None = column(default=None)
    level: Level | None = column(default=None)
    wait: dt.timedelta | None = column(default=None)


_LEGACY_SQLITE = """CREATE TABLE rd_legacy (id INTEGER PRIMARY KEY, price REAL, total NUMERIC(10, 2),
    at DATETIME, created TIMESTAMP DEFAULT CURRENT_TIMESTAMP, day DATE, flag BOOLEAN, token TEXT,
    level VARCHAR(10), wait INTEGER)"""
_LEGACY_PG = """CREATE TABLE rd_legacy (id INTEGER PRIMARY KEY, price NUMERIC(10, 2), total NUMERIC(10, 2),
    at TIMESTAMP, created TIMESTAMP DEFAULT (CURRENT_TIMESTAMP AT TIME ZONE 'UTC'), day DATE, flag BOOLEAN,
    token UUID, level VARCHAR(10), wait INTERVAL)"""
#: rows as another tool writes them; the prices' text order is not their numeric order
_LEGACY_ROWS = [
    "(1, 9.0, 9, '2020-12-31 23:59:59', '2021-01-01', 0, 'a', 'low')",
    "(2, 10.0, 10.5, '2021-01-01 00:00:00', '2021-01-01', 1, 'b', 'high')",
    "(3, 10.01, 100.25, '2021-01-01 00:00:00.250000', '2021-01-02', 1, 'c', 'low')",
    "(4, 100.0, 0.1, '2021-06-30 12:00:00', '2021-06-30', 0, 'd', 'high')",
]


@pytest.fixture
async def legacy(db: Engine) -> AsyncIterator[Engine]:
    """rd_legacy created and filled by raw SQL: sqlite3 itself on SQLite, SQL on PostgreSQL."""
    await LegacyBase.metadata.drop_all(db)
    uuids = {k: str(uuid.UUID(int=i + 1)) for i, k in enumerate("abcd")}
    rows = []
    for r in _LEGACY_ROWS:
        for k, u in uuids.items():
            r = r.replace(f"'{k}'", f"'{u}'")
        if db.dialect.name == "postgresql":
            r = r.replace(", 0, '", ", false, '").replace(", 1, '", ", true, '")
        rows.append(r)
    insert_sql = ("INSERT INTO rd_legacy (id, price, total, at, day, flag, token, level) VALUES "
                  + ", ".join(rows))
    if db.dialect.name == "sqlite":
        raw = sqlite3.connect(db.url.database)
        try:
            raw.execute(_LEGACY_SQLITE)
            raw.execute(insert_sql)
            raw.commit()
        finally:
            raw.close()
    else:
        async with db.begin() as conn:
            await conn.exec_driver_sql(_LEGACY_PG)
            await conn.exec_driver_sql(insert_sql)
    try:
        yield db
    finally:
        async with db.begin() as conn:
            await conn.exec_driver_sql("DROP TABLE IF EXISTS rd_legacy")


async def test_existing_table_decimals(legacy: Engine) -> None:
    db = legacy
    q = select(RdLegacy.id).order_by(RdLegacy.id)
    for cond, sql in [
        (RdLegacy.price > 10, "price > 10"),
        (RdLegacy.price > D("10.00"), "price > 10.00"),
        (RdLegacy.price == D("10.01"), "price = 10.01"),
        (RdLegacy.total >= D("10.5"), "total >= 10.5"),
        (RdLegacy.price * 2 > D("20.01"), "price * 2 > 20.01"),
        (func.abs(RdLegacy.total) < 1, "abs(total) < 1"),
    ]:
        expected = await _raw(db, f"SELECT id FROM rd_legacy WHERE {sql} ORDER BY id")
        assert expected, sql
        assert await _ids(db, q.where(cond)) == expected, sql
    assert await _ids(db, select(RdLegacy.id).order_by(RdLegacy.price.desc())) == [4, 3, 2, 1]
    async with db.connect() as conn:
        row = (await conn.execute(select(func.max(RdLegacy.price), func.sum(RdLegacy.total),
                                         func.min(RdLegacy.total)))).one()
    assert tuple(row) == (D("100.00"), D("119.85"), D("0.10"))
    async with AsyncSession(db) as s:
        objs = (await s.scalars(select(RdLegacy).order_by(RdLegacy.id))).all()
        assert [o.price for o in objs] == [D("9.00"), D("10.00"), D("10.01"), D("100.00")]
        assert [str(o.total) for o in objs] == ["9.00", "10.50", "100.25", "0.10"]
        # a value aiouow writes compares with the others
        s.add(RdLegacy(id=5, price=D("9.99"), total=D("1234.56")))
        await s.commit()
    assert await _ids(db, q.where(RdLegacy.price < 10)) == [1, 5]
    assert await _raw(db, "SELECT id FROM rd_legacy WHERE price < 10 ORDER BY id") == [1, 5]


async def test_existing_table_datetimes(legacy: Engine) -> None:
    db = legacy
    q = select(RdLegacy.id).order_by(RdLegacy.id)
    start = dt.datetime(2021, 1, 1)
    assert await _ids(db, q.where(RdLegacy.at >= start)) == [2, 3, 4]
    assert await _ids(db, q.where(RdLegacy.at == start)) == [2]
    assert await _ids(db, q.where(RdLegacy.at == dt.datetime(2021, 1, 1, 0, 0, 0, 250000))) == [3]
    assert await _ids(db, q.where(RdLegacy.at.between(start, dt.datetime(2021, 1, 1, 1)))) == [2, 3]
    assert await _ids(db, q.where(RdLegacy.day == dt.date(2021, 1, 1))) == [1, 2]
    assert await _ids(db, q.where(func.date(RdLegacy.at) == dt.date(2021, 1, 1))) == [2, 3]
    async with db.connect() as conn:
        days = (await conn.execute(select(func.date(RdLegacy.at)).order_by(RdLegacy.id))).scalars().all()
        assert days[:2] == [dt.date(2020, 12, 31), dt.date(2021, 1, 1)]
        now = (await conn.execute(select(func.current_timestamp()).where(RdLegacy.id == 1))).scalar_one()
    assert isinstance(now, dt.datetime) and now.utcoffset() == dt.timedelta(0)
    assert abs(now - dt.datetime.now(UTC)) < dt.timedelta(minutes=5)

    # a row aiouow writes lands among the others in time order, and compares with CURRENT_TIMESTAMP
    async with AsyncSession(db) as s:
        s.add(RdLegacy(id=5, at=start, day=dt.date(2021, 1, 1)))
        await s.commit()
        objs = (await s.scalars(select(RdLegacy).order_by(RdLegacy.at, RdLegacy.id))).all()
        assert [o.id for o in objs] == [1, 2, 5, 3, 4]
        # the DEFAULT CURRENT_TIMESTAMP of the table (UTC); aiouow's own row wrote NULL there
        by_id = {o.id: o.created for o in objs}
        assert by_id.pop(5) is None
        assert all(abs(c - dt.datetime.now(UTC).replace(tzinfo=None)) < dt.timedelta(minutes=5)
                   for c in by_id.values())
    assert await _ids(db, q.where(RdLegacy.at == start)) == [2, 5]
    assert await _raw(db, "SELECT id FROM rd_legacy WHERE at = '2021-01-01 00:00:00' ORDER BY id") == [2, 5]
    assert await _ids(db, q.where(RdLegacy.created <= func.current_timestamp())) == [1, 2, 3, 4]
    if db.dialect.name == "sqlite":
        assert await _raw(db, "SELECT at FROM rd_legacy WHERE id = 5") == ["2021-01-01 00:00:00"]


async def test_existing_table_other_columns(legacy: Engine) -> None:
    db = legacy
    async with AsyncSession(db) as s:
        objs = (await s.scalars(select(RdLegacy).order_by(RdLegacy.id))).all()
    assert [o.flag for o in objs] == [False, True, True, False]
    assert [o.token for o in objs] == [uuid.UUID(int=i) for i in range(1, 5)]
    assert [o.level for o in objs] == [Level.low, Level.high, Level.low, Level.high]
    q = select(RdLegacy.id).order_by(RdLegacy.id)
    assert await _ids(db, q.where(RdLegacy.flag == True)) == [2, 3]  # noqa: E712
    assert await _ids(db, q.where(RdLegacy.token == uuid.UUID(int=3))) == [3]
    assert await _ids(db, q.where(RdLegacy.level == Level.high)) == [2, 4]


async def test_other_tools_stored_forms(legacy: Engine) -> None:
    """Forms other tools write for booleans, UUIDs, enums and durations read back as values."""
    db = legacy
    sqlite = db.dialect.name == "sqlite"
    wait = dt.timedelta(seconds=5, microseconds=250)
    rows = {
        # SQLAlchemy: UUID as 32 hex digits, an Interval as a datetime after 1970-01-01
        10: ("'true'", "'0000000000000000000000000000000a'", "'L'", "'1970-01-01 00:00:05.000250'")
        if sqlite else ("true", "'0000000000000000000000000000000a'", "'L'", "'5.00025 seconds'"),
        11: ("'f'", "X'0000000000000000000000000000000B'", "'high'", str(wait // dt.timedelta(microseconds=1)))
        if sqlite else ("false", "'0000000000000000000000000000000b'", "'high'", "'5 seconds 250 microseconds'"),
    }
    async with db.begin() as conn:
        for i, (flag, token, level, w) in rows.items():
            await conn.exec_driver_sql(f"INSERT INTO rd_legacy (id, flag, token, level, wait) "
                                       f"VALUES ({i}, {flag}, {token}, {level}, {w})")
    async with AsyncSession(db) as s:
        a, b = (await s.scalars(select(RdLegacy).where(RdLegacy.id >= 10).order_by(RdLegacy.id))).all()
    assert (a.flag, a.token, a.level, a.wait) == (True, uuid.UUID(int=10), Level.low, wait)
    assert (b.flag, b.token, b.level, b.wait) == (False, uuid.UUID(int=11), Level.high, wait)


async def test_unreadable_stored_values_are_data_errors(legacy: Engine) -> None:
    db = legacy
    async with db.begin() as conn:
        await conn.exec_driver_sql("INSERT INTO rd_legacy (id, level) VALUES (20, 'medium')")
    with pytest.raises(exc.DataError, match=r"'medium'.*Enum\(Level\).*low, high"):
        await _ids(db, select(RdLegacy.level).where(RdLegacy.id == 20))
    if db.dialect.name == "sqlite":
        async with db.begin() as conn:
            await conn.exec_driver_sql("INSERT INTO rd_legacy (id, flag, total) VALUES (21, 'maybe', 'n/a')")
        with pytest.raises(exc.DataError, match="'maybe' in a Boolean column"):
            await _ids(db, select(RdLegacy.flag).where(RdLegacy.id == 21))
        with pytest.raises(exc.DataError, match="'n/a' in a Numeric column"):
            await _ids(db, select(RdLegacy.total).where(RdLegacy.id == 21))


async def test_sqlite_reads_older_aiouow_text_forms(db: Engine) -> None:
    """Values older aiouow versions stored on SQLite ("T" datetimes with "+00:00", Decimals as text
    in a DECIMAL_TEXT column) still read; on PostgreSQL the same text is parsed into native values."""

    class OldBase(Model):
        metadata = MetaData()

    class RdOld(OldBase):
        __tablename__ = "rd_old"
        id: int = column(primary_key=True)
        at: dt.datetime | None = column(default=None)
        at_tz: dt.datetime | None = column(default=None, type_=T.DateTime(timezone=True))
        price: D | None = column(default=None, type_=T.Numeric(10, 2))

    if db.dialect.name == "sqlite":
        async with db.begin() as conn:  # the DDL older aiouow versions emitted
            await conn.exec_driver_sql("CREATE TABLE rd_old (id INTEGER PRIMARY KEY, at DATETIME_TEXT, "
                                       "at_tz DATETIME_TEXT, price DECIMAL_TEXT)")
    else:
        await OldBase.metadata.create_all(db)
    try:
        async with db.begin() as conn:
            await conn.execute(text("INSERT INTO rd_old (id, at, at_tz, price) VALUES "
                                    "(1, '2021-01-01T10:00:00', '2021-01-01T10:00:00+00:00', '9.5')"))
        async with db.connect() as conn:
            row = (await conn.execute(select(RdOld.at, RdOld.at_tz, RdOld.price))).one()
        assert tuple(row) == (dt.datetime(2021, 1, 1, 10), dt.datetime(2021, 1, 1, 10, tzinfo=UTC), D("9.50"))
        assert str(row.price) == "9.50"
    finally:
        await OldBase.metadata.drop_all(db)
