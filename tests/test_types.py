"""Every column type of API section 1 reads back equal to what was written, on both backends."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Any

import pytest

from aiouow import (
    AsyncSession,
    Column,
    Engine,
    MetaData,
    Model,
    Table,
    column,
    exc,
    insert,
    inspect,
    select,
    text,
    update,
)
from aiouow import types as T

from .models import AllTypes, Mood

UTC = dt.UTC
PLUS_5 = dt.timezone(dt.timedelta(hours=5, minutes=30))

#: (column, values written and read back)
CASES: list[tuple[str, list[Any]]] = [
    ("i", [0, -1, 2**31, 2**40 + 7, -(2**62), 2**63 - 1]),
    ("s", ["", "plain", "héllo ✓ 日本", "quote ' and \" and \\", "x" * 5000]),
    ("f", [0.0, 1.5, -2.25, 1e300, 0.1]),
    ("b", [True, False]),
    ("raw", [b"", b"\x00\x01\xff", bytes(range(256)) * 4]),
    # at most 15 significant digits, or an integer of 64 bits: what SQLite keeps exactly (see below)
    ("dec", [decimal.Decimal("1234567890.12345"), decimal.Decimal("-0.000000000000000001"),
             decimal.Decimal("0"), decimal.Decimal("1.10"), decimal.Decimal("999999999999999"),
             decimal.Decimal("-9223372036854775808"), decimal.Decimal("0.1")]),
    ("dt", [dt.datetime(2024, 2, 29, 23, 59, 59, 999999), dt.datetime(1970, 1, 1), dt.datetime(1, 1, 1, 0, 0),
            dt.datetime(9999, 12, 31, 12, 30)]),
    ("dt_tz", [dt.datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=UTC),
               dt.datetime(2020, 6, 1, 8, 0, tzinfo=PLUS_5),
               dt.datetime(1999, 12, 31, 23, 0, tzinfo=dt.timezone(-dt.timedelta(hours=8)))]),
    ("d", [dt.date(2024, 2, 29), dt.date(1, 1, 1), dt.date(9999, 12, 31)]),
    ("t", [dt.time(0, 0), dt.time(23, 59, 59, 999999), dt.time(12, 30, 0, 5)]),
    ("td", [dt.timedelta(0), dt.timedelta(days=3, seconds=5, microseconds=7), dt.timedelta(days=-2, hours=3),
            dt.timedelta(days=4000, microseconds=1), dt.timedelta(microseconds=-1)]),
    ("u", [uuid.UUID("12345678-1234-5678-1234-567812345678"), uuid.uuid4(), uuid.UUID(int=0)]),
    ("mood", [Mood.happy, Mood.sad]),
    ("doc", [{}, {"a": 1, "b": [1, 2.5, None, True], "c": {"d": "é"}}, {"n": None}, {"123": "456"}]),
    ("items", [[], [1, "two", None, {"three": 3}], ["123"], [[[]]]]),
    ("short", ["", "exactly twenty chars"]),
]


async def roundtrip(engine: Engine, column: str, value: Any) -> tuple[Any, Any]:
    """Insert ``value`` into ``column`` of a new row; (value read by select, value from RETURNING)."""
    col = getattr(AllTypes, column)
    async with engine.begin() as conn:
        returned = (await conn.execute(insert(AllTypes).values(**{column: value}).returning(AllTypes.id, col))).one()
    async with engine.connect() as conn:
        got = (await conn.execute(select(col).where(AllTypes.id == returned.id))).scalar_one()
    return got, returned[1]


@pytest.mark.parametrize(("column", "values"), CASES, ids=[c for c, _ in CASES])
async def test_roundtrip(db: Engine, column: str, values: list[Any]) -> None:
    for value in values:
        got, returned = await roundtrip(db, column, value)
        assert got == value, f"{column}: wrote {value!r}, read {got!r}"
        assert returned == value, f"{column}: wrote {value!r}, RETURNING gave {returned!r}"
        # equal and of the same kind: no 1 for True, no float for Decimal, no str for UUID
        assert isinstance(got, type(value)), f"{column}: wrote {type(value).__name__}, read {type(got).__name__}"


async def test_decimal_keeps_every_digit_on_postgresql_15_on_sqlite(db: Engine) -> None:
    value = decimal.Decimal("12345678901234567890.123456789")
    got, returned = await roundtrip(db, "dec", value)
    if db.dialect.name == "postgresql":
        assert str(got) == str(returned) == "12345678901234567890.123456789"
    else:
        # SQLite has no decimal type: stored as a double, read back at 15 significant digits
        assert got == returned == decimal.Decimal("12345678901234600000")


async def test_datetimes_keep_awareness(db: Engine) -> None:
    naive = dt.datetime(2021, 3, 4, 5, 6, 7, 8)
    got, _ = await roundtrip(db, "dt", naive)
    assert got == naive and got.tzinfo is None

    aware = dt.datetime(2021, 3, 4, 5, 6, 7, 8, tzinfo=PLUS_5)
    got, _ = await roundtrip(db, "dt_tz", aware)
    assert got == aware  # the same instant
    assert got.tzinfo is not None and got.utcoffset() is not None
    assert got.astimezone(UTC) == dt.datetime(2020 + 1, 3, 3, 23, 36, 7, 8, tzinfo=UTC)


async def test_enum_is_stored_by_name(db: Engine) -> None:
    # the member values ("h", "s") differ from the names: only the name may reach the table
    async with db.begin() as conn:
        await conn.execute(insert(AllTypes).values(id=1, mood=Mood.sad))
        await conn.execute(insert(AllTypes).values(id=2, mood=Mood.happy))
    async with db.connect() as conn:
        raw = (await conn.execute(text('SELECT "mood" FROM "all_types" ORDER BY "id"'))).scalars().all()
        assert raw == ["sad", "happy"]
        got = (await conn.execute(select(AllTypes.mood).order_by(AllTypes.id))).scalars().all()
        assert got == [Mood.sad, Mood.happy]


async def test_json_is_stored_as_json(db: Engine) -> None:
    async with db.begin() as conn:
        await conn.execute(insert(AllTypes).values(id=1, doc={"k": [1, 2]}, items=["a", 1]))
    async with db.connect() as conn:
        if db.dialect.name == "postgresql":
            row = (await conn.execute(text("SELECT jsonb_typeof(doc) AS d, jsonb_typeof(items) AS i, "
                                           "doc->'k'->>1 AS k1 FROM all_types"))).one()
            assert (row.d, row.i, row.k1) == ("object", "array", "2")
        else:
            row = (await conn.execute(text("SELECT json_type(doc) AS d, json_type(items) AS i, "
                                           "json_extract(doc, '$.k[1]') AS k1 FROM all_types"))).one()
            assert (row.d, row.i, row.k1) == ("object", "array", 2)


async def test_none_in_nullable_columns(db: Engine) -> None:
    columns = [c for c, _ in CASES]
    async with db.begin() as conn:
        await conn.execute(insert(AllTypes).values(id=1, **{c: None for c in columns}))
        await conn.execute(insert(AllTypes).values(id=2))  # columns not given at all
    async with db.connect() as conn:
        rows = (await conn.execute(select(AllTypes).order_by(AllTypes.id))).all()
    for row in rows:
        assert all(getattr(row, c) is None for c in columns), row
    # and a value set back to NULL
    async with db.begin() as conn:
        await conn.execute(update(AllTypes).where(AllTypes.id == 1).values(doc={"a": 1}, mood=Mood.happy))
        await conn.execute(update(AllTypes).where(AllTypes.id == 1).values(doc=None, mood=None))
        row = (await conn.execute(select(AllTypes.doc, AllTypes.mood).where(AllTypes.id == 1))).one()
    assert tuple(row) == (None, None)


async def test_every_type_in_one_row(db: Engine) -> None:
    values = {c: vs[-1] for c, vs in CASES}
    async with db.begin() as conn:
        await conn.execute(insert(AllTypes).values(id=7, **values))
    async with db.connect() as conn:
        row = (await conn.execute(select(AllTypes).where(AllTypes.id == 7))).one()
        mapping = (await conn.execute(select(AllTypes).where(AllTypes.id == 7))).mappings()[0]
    for c, v in values.items():
        assert getattr(row, c) == v
        assert mapping[c] == v


async def test_typed_values_compare_in_where(db: Engine) -> None:
    """Values in conditions are converted like stored ones, so they match."""
    u = uuid.uuid4()
    when = dt.datetime(2022, 1, 2, 3, 4, 5)
    when_tz = dt.datetime(2022, 1, 2, 3, 4, 5, tzinfo=UTC)
    row = dict(id=3, i=2**40, dec=decimal.Decimal("1.25"), dt=when, dt_tz=when_tz, d=when.date(), t=when.time(),
               td=dt.timedelta(hours=5), u=u, mood=Mood.sad, b=True, raw=b"\x01\x02", s="s")
    async with db.begin() as conn:
        await conn.execute(insert(AllTypes).values(**row))
        await conn.execute(insert(AllTypes).values(id=4, mood=Mood.happy, u=uuid.uuid4()))
    conditions = [
        AllTypes.i == 2**40, AllTypes.dec == decimal.Decimal("1.25"), AllTypes.dt == when, AllTypes.dt_tz == when_tz,
        AllTypes.d == when.date(), AllTypes.t == when.time(), AllTypes.td == dt.timedelta(hours=5), AllTypes.u == u,
        AllTypes.mood == Mood.sad, AllTypes.mood.in_([Mood.sad]), AllTypes.mood.not_in([Mood.happy]),
        AllTypes.u.in_([u, uuid.uuid4()]), AllTypes.b == True, AllTypes.raw == b"\x01\x02",  # noqa: E712
        AllTypes.dt > dt.datetime(2022, 1, 1), AllTypes.d.between(dt.date(2022, 1, 1), dt.date(2022, 1, 3)),
    ]
    async with db.connect() as conn:
        for cond in conditions:
            ids = (await conn.execute(select(AllTypes.id).where(cond))).scalars().all()
            assert ids == [3], cond


async def test_explicit_types(db: Engine) -> None:
    """``column(type_=...)`` types: a bounded String and a time-zone aware DateTime."""
    assert AllTypes.short.type == T.String(20)
    assert AllTypes.dt_tz.type == T.DateTime(timezone=True)
    assert AllTypes.i.type == T.BigInteger()
    assert AllTypes.mood.type == T.Enum(Mood)
    got, _ = await roundtrip(db, "short", "twenty characters!!!")
    assert got == "twenty characters!!!"


async def test_aware_datetimes_compare_and_sort_as_instants(db: Engine) -> None:
    """The same instant written with different offsets is one value to the database."""
    base = dt.datetime(2023, 5, 1, 12, 0, tzinfo=UTC)
    # ids in chronological order; offsets chosen so that local clock times sort the other way
    written = {
        1: base.astimezone(dt.timezone(dt.timedelta(hours=-10))),  # 02:00 local
        2: (base + dt.timedelta(hours=1)).astimezone(dt.timezone(dt.timedelta(hours=-12))),  # 01:00 local
        3: (base + dt.timedelta(hours=2)).astimezone(dt.timezone(dt.timedelta(hours=-14))),  # 00:00 local
    }
    async with db.begin() as conn:
        for i, value in written.items():
            await conn.execute(insert(AllTypes).values(id=i, dt_tz=value))
    async with db.connect() as conn:
        ordered = (await conn.execute(select(AllTypes.id).order_by(AllTypes.dt_tz))).scalars().all()
        assert ordered == [1, 2, 3]
        same_instant = (await conn.execute(select(AllTypes.id).where(AllTypes.dt_tz == base.astimezone(PLUS_5))
                                           )).scalars().all()
        assert same_instant == [1]
        later = (await conn.execute(select(AllTypes.id).where(AllTypes.dt_tz > base + dt.timedelta(minutes=30))
                                    .order_by(AllTypes.id))).scalars().all()
        assert later == [2, 3]
        read = (await conn.execute(select(AllTypes.dt_tz).order_by(AllTypes.id))).scalars().all()
    assert read == list(written.values())


async def test_aiouow_types_for_column_type_(db: Engine) -> None:
    """Every type ``aiouow.types`` exports works as an explicit column type."""
    md = MetaData()
    values: dict[str, tuple[Any, Any]] = {
        "c_int": (T.Integer(), 2**31 - 1),
        "c_big": (T.BigInteger(), 2**62),
        "c_small": (T.SmallInteger(), -(2**15)),
        "c_str": (T.String(5), "abcde"),
        "c_text": (T.Text(), "t" * 10000),
        "c_float": (T.Float(), 2.5),
        "c_num": (T.Numeric(10, 2), decimal.Decimal("12345678.90")),
        "c_bool": (T.Boolean(), False),
        "c_dt": (T.DateTime(timezone=True), dt.datetime(2020, 1, 1, tzinfo=UTC)),
        "c_date": (T.Date(), dt.date(2020, 1, 1)),
        "c_time": (T.Time(), dt.time(1, 2, 3)),
        "c_interval": (T.Interval(), dt.timedelta(seconds=90)),
        "c_bin": (T.LargeBinary(), b"\x00bin"),
        "c_uuid": (T.Uuid(), uuid.UUID(int=12345)),
        "c_json": (T.JSON(), {"j": [1]}),
        "c_enum": (T.Enum(Mood), Mood.happy),
    }
    table = Table("tty_explicit", Column("id", int, primary_key=True),
                  *[Column(name, type_) for name, (type_, _) in values.items()], metadata=md)
    await md.create_all(db)
    try:
        async with db.begin() as conn:
            await conn.execute(insert(table).values(id=1, **{k: v for k, (_, v) in values.items()}))
        async with db.connect() as conn:
            row = (await conn.execute(select(table))).one()
            for name, (_, value) in values.items():
                assert getattr(row, name) == value, name
            if db.dialect.name == "postgresql":
                found = dict((await conn.execute(text(
                    "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'tty_explicit'"
                ))).all())
                assert (found["c_int"], found["c_big"], found["c_small"]) == ("integer", "bigint", "smallint")
                assert found["c_num"] == "numeric" and found["c_text"] == "text"
                assert found["c_dt"] == "timestamp with time zone"
    finally:
        await md.drop_all(db)


# -- loading objects: values are converted as the objects are built -------------------------------
async def test_loaded_objects_read_back_every_type(db: Engine) -> None:
    """The ORM load converts driver values while it fills each object: equal values of the
    same kind, the object's attributes in column order, and unchanged by a second load."""
    with_values = {column: values[0] for column, values in CASES}
    async with AsyncSession(db) as s:
        s.add_all([AllTypes(id=1, **with_values), AllTypes(id=2)])
        await s.commit()
    async with AsyncSession(db) as s:
        full, empty = (await s.scalars(select(AllTypes).order_by(AllTypes.id))).all()
        for column, value in with_values.items():
            got = getattr(full, column)
            assert got == value and isinstance(got, type(value)), f"{column}: wrote {value!r}, read {got!r}"
            assert getattr(empty, column) is None, column
        assert list(vars(full)) == list(AllTypes.__aiouow_mapper__.column_keys)
        assert not inspect(full).modified
        # rows for objects already loaded: the same objects, their values kept
        again = (await s.scalars(select(AllTypes).order_by(AllTypes.id))).all()
        assert again[0] is full and again[1] is empty


async def test_reload_fills_expired_and_overwrites_with_populate_existing(db: Engine) -> None:
    """Rows for objects the session holds go through the same conversion as new ones."""
    when = dt.datetime(2021, 3, 4, 5, 6, 7, 8)
    when_tz = dt.datetime(2021, 3, 4, 5, 6, 7, 8, tzinfo=PLUS_5)
    async with AsyncSession(db) as s:
        s.add(AllTypes(id=1, dt=when, dt_tz=when_tz, u=uuid.UUID(int=7)))
        await s.commit()
    async with AsyncSession(db, expire_on_commit=False) as s:
        obj = (await s.scalars(select(AllTypes))).one()
        s.expire(obj, ["dt", "u"])
        with pytest.raises(exc.NotLoadedError):
            _ = obj.dt
        assert (await s.scalars(select(AllTypes))).one() is obj
        assert obj.dt == when and isinstance(obj.dt, dt.datetime) and obj.dt.tzinfo is None
        assert obj.u == uuid.UUID(int=7) and isinstance(obj.u, uuid.UUID)
        await s.commit()
        later = when_tz + dt.timedelta(days=1)
        async with db.begin() as conn:
            await conn.execute(update(AllTypes).where(AllTypes.id == 1).values(dt_tz=later))
        assert obj.dt_tz == when_tz  # loaded values are kept by a plain query ...
        assert (await s.scalars(select(AllTypes))).one().dt_tz == when_tz
        await s.commit()
        stmt = select(AllTypes).execution_options(populate_existing=True)
        assert (await s.scalars(stmt)).one() is obj  # ... and overwritten with populate_existing
        assert obj.dt_tz == later and obj.dt_tz.utcoffset() is not None
        assert obj.dt == when and not inspect(obj).modified


async def test_objects_keyed_by_a_converted_primary_key(db: Engine) -> None:
    """A primary key the driver returns in another form (a UUID stored as text on SQLite):
    the identity map is keyed by the converted value, so get() and later queries find the object."""

    class TtBase(Model):
        metadata = MetaData()

    class TtToken(TtBase):
        __tablename__ = "tt_tokens"
        key: uuid.UUID = column(primary_key=True)
        issued: dt.datetime = column()

    keys = [uuid.UUID(int=1), uuid.UUID(int=2)]
    issued = dt.datetime(2020, 1, 2, 3, 4, 5)
    await TtBase.metadata.drop_all(db)
    await TtBase.metadata.create_all(db)
    try:
        async with AsyncSession(db) as s:
            s.add_all([TtToken(key=k, issued=issued) for k in keys])
            await s.commit()
        async with AsyncSession(db) as s:
            objs = (await s.scalars(select(TtToken).order_by(TtToken.key))).all()
            assert [o.key for o in objs] == keys and all(isinstance(o.key, uuid.UUID) for o in objs)
            assert all(o.issued == issued for o in objs)
            assert await s.get(TtToken, keys[0]) is objs[0]
            assert (await s.scalars(select(TtToken).order_by(TtToken.key))).all() == objs
    finally:
        await TtBase.metadata.drop_all(db)
