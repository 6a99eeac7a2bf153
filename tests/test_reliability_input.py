"""Reliability (issue 13): bad input gets a clear ``aiouow.exc`` error naming what is wrong, and
writes nothing; huge IN lists, injection-shaped strings and odd identifiers just work.

Every test runs on SQLite and PostgreSQL and checks the table afterwards with raw SQL.  Where a
backend can hold what the other refuses (SQLite keeps NUL characters, over-long VARCHARs and any
64-bit integer in a SmallInteger), the test says which and checks that the value round-trips
unchanged there and is refused, naming the attribute, on the other.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import pytest

from aiouow import (
    AsyncSession,
    Engine,
    ForeignKey,
    Mapped,
    MetaData,
    Model,
    column,
    delete,
    exc,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from aiouow import types as T

from .conftest import StatementLog
from .query_support import raw_sql
from .reliability import ReliabilityLog

pytestmark = pytest.mark.reliability

md = MetaData()


class _Base(Model):
    metadata = md


class Gadget(_Base):
    __tablename__ = "rel_gadgets"
    id: Mapped[int] = column(primary_key=True)
    n: Mapped[int] = column(default=0)
    small: Mapped[int | None] = column(default=None, type_=T.SmallInteger())
    f: Mapped[float | None] = column(default=None)
    s: Mapped[str | None] = column(default=None)
    code: Mapped[str | None] = column(default=None, type_=T.String(8))
    day: Mapped[dt.date | None] = column(default=None)
    blob: Mapped[bytes | None] = column(default=None)
    dec: Mapped[Decimal | None] = column(default=None, type_=T.Numeric(6, 2))
    doc: Mapped[dict[str, Any] | None] = column(default=None)


class Key(_Base):
    __tablename__ = "rel_keys"
    id: Mapped[int] = column(primary_key=True, autoincrement=False)
    v: Mapped[int] = column()


class OddOrder(_Base):
    """Reserved words, mixed case, spaces and quotes as table and column names."""

    __tablename__ = "order"
    id: Mapped[int] = column(primary_key=True)
    user: Mapped[str] = column("user")
    mixed: Mapped[str | None] = column("Mixed Case", default=None)
    spaced: Mapped[str | None] = column("with space", default=None)
    quoted: Mapped[str | None] = column('say "hi"', default=None)
    select_: Mapped[int | None] = column("select", default=None)


class OddUser(_Base):
    __tablename__ = "User Table"
    id: Mapped[int] = column("Id", primary_key=True)
    order_id: Mapped[int | None] = column("order", ForeignKey("order.id"), default=None)
    group: Mapped[str] = column("group")


_created: set[int] = set()


@pytest.fixture
async def idb(engine: Engine) -> AsyncIterator[Engine]:
    """The engine with this module's tables created (once) and emptied."""
    if id(engine) not in _created:
        await md.drop_all(engine)
        await md.create_all(engine)
        _created.add(id(engine))
    async with engine.begin() as conn:
        for t in reversed(md.sorted_tables()):
            await conn.exec_driver_sql(f'DELETE FROM "{t.name}"')
    yield engine
    assert engine.pool.checked_out == 0, "a test left a connection checked out"


async def gadget_rows(engine: Engine) -> list[tuple[Any, ...]]:
    return await raw_sql(engine, 'SELECT id, n, s, f FROM "rel_gadgets" ORDER BY id')


def pg(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


# -- wrong Python types ---------------------------------------------------------------------------

#: (attribute, a value of the wrong type); a float for an integer (1.7 or even 2.0) is refused, never
#: truncated: the caller decides how to round
WRONG_TYPES: list[tuple[str, Any]] = [
    ("n", 1.7), ("n", 2.0), ("n", "1"), ("n", b"1"), ("n", Decimal("1.5")), ("small", 1.0),
    ("f", "1.5"), ("f", b"x"), ("f", Decimal("1.5")), ("s", 1), ("s", b"bytes"), ("code", 12),
    ("day", dt.datetime(2024, 1, 1)), ("day", "2024-01-01"), ("blob", "text"), ("dec", 1.5),
    ("dec", "1.5"), ("doc", {1, 2}), ("doc", object()),
]


async def test_wrong_python_type_is_refused_before_any_sql(idb: Engine, sql: Callable[..., Any],
                                                           reliability: ReliabilityLog) -> None:
    async with AsyncSession(idb, expire_on_commit=False) as s:
        kept = Gadget(n=1, s="kept")
        s.add(kept)
        await s.commit()
        refused = 0
        for attr, bad in WRONG_TYPES:
            pattern = rf"Gadget\.{attr} .*takes .*not {type(bad).__name__}"
            with pytest.raises(exc.ArgumentError, match=pattern):
                Gadget(**{attr: bad})
            with pytest.raises(exc.ArgumentError, match=pattern):  # on a persistent object
                setattr(kept, attr, bad)
            assert not s.dirty and kept.n == 1
            if attr == "day" and isinstance(bad, dt.datetime):
                refused += 2
                continue  # core statements store a datetime's date, as PostgreSQL's DATE does
            log: StatementLog
            with sql(idb) as log:
                core = rf"Gadget\.{attr} \(column rel_gadgets\.{attr}\) takes .*not {type(bad).__name__}"
                with pytest.raises(exc.DataError, match=core):
                    await s.execute(insert(Gadget).values(**{attr: bad}))
                with pytest.raises(exc.DataError, match=core):
                    await s.execute(insert(Gadget), [{"n": 5}, {attr: bad} if attr != "n" else {"n": bad}])
                with pytest.raises(exc.DataError, match=core):
                    await s.execute(update(Gadget).where(Gadget.id == kept.id).values(**{attr: bad}))
            assert log.count("INSERT") == 0 and log.count("UPDATE") == 0, log.statements
            refused += 5
        await s.commit()
    assert await gadget_rows(idb) == [(kept.id, 1, "kept", None)]
    reliability.record("Bad input", "wrong Python type for a column: constructor, attribute set, core "
                       "insert()/executemany/update().values()", cases=refused,
                       held="ArgumentError (ORM) / DataError (core) naming model.attribute, column, value type "
                            "and the fix; no INSERT/UPDATE sent; table unchanged")


async def test_a_float_is_never_truncated_into_an_integer(idb: Engine, reliability: ReliabilityLog) -> None:
    """Regression: asyncpg sent int(1.7) == 1 for a BIGINT parameter (core values() and get())."""
    async with AsyncSession(idb) as s:
        s.add(Gadget(id=1, n=1))
        await s.commit()
        with pytest.raises(exc.DataError, match=r"not float 1\.7; convert it \(int\(value\)"):
            await s.execute(insert(Gadget).values(id=2, n=1.7))
        with pytest.raises(exc.ArgumentError, match=r"primary key Gadget\.id .*not float 1\.5"):
            await s.get(Gadget, 1.5)
        # compared, a float is a float: 1.7 matches no integer, 1.0 matches 1
        assert (await s.scalars(select(Gadget.id).where(Gadget.n == 1.7))).all() == []
        assert (await s.scalars(select(Gadget.id).where(Gadget.n == 1.0))).all() == [1]
        await s.rollback()
    assert await gadget_rows(idb) == [(1, 1, None, None)]
    reliability.record("Bad input", "a float (1.7, 1.5) for an integer column in core values() and get(), and "
                       "compared in WHERE", cases=4,
                       held="DataError / ArgumentError naming the attribute and the fix, nothing stored (asyncpg "
                            "used to truncate 1.7 to 1); WHERE n = 1.7 matches no integer, n = 1.0 matches 1")


async def test_get_with_a_key_of_the_wrong_type(idb: Engine, sql: Callable[..., Any],
                                                reliability: ReliabilityLog) -> None:
    """Regression: SQLite returned None for get(Model, b"1") (and found the row for "1");
    PostgreSQL raised asyncpg's error."""
    async with AsyncSession(idb) as s:
        s.add(Gadget(id=1))
        await s.commit()
        keys: list[Any] = [b"1", "1", 1.0, 1.5, Decimal(1), (1,) * 2, {"nope": 1}]
        log: StatementLog
        with sql(idb) as log:
            for key in keys:
                with pytest.raises(exc.ArgumentError, match=r"Gadget"):
                    await s.get(Gadget, key)
        assert log.count("SELECT") == 0
        assert (await s.get_one(Gadget, 1)).id == 1
    reliability.record("Bad input", "get() with a key of the wrong type or shape", cases=len(keys),
                       held="ArgumentError naming Gadget.id and the value's type; no SELECT sent")


# -- NULL, unknown names ------------------------------------------------------------------------------

async def test_none_for_a_not_null_column(idb: Engine, reliability: ReliabilityLog) -> None:
    with pytest.raises(exc.ArgumentError, match=r"OddOrder\.user is NOT NULL"):
        OddOrder(user=None)  # type: ignore[arg-type]
    async with AsyncSession(idb) as s:
        s.add(OddOrder())  # never set
        with pytest.raises(exc.InvalidRequestError, match=r"OddOrder\.user is NOT NULL but is not set"):
            await s.flush()
        await s.rollback()
        o = OddOrder(user="ann")
        s.add(o)
        await s.commit()
        await s.refresh(o)
        with pytest.raises(exc.ArgumentError, match=r"OddOrder\.user is NOT NULL"):
            o.user = None  # type: ignore[assignment]
        # core: NULL is the database's to refuse, with the column's name (as in SQLAlchemy)
        with pytest.raises(exc.IntegrityError, match=r"user"):
            await s.execute(insert(OddOrder).values(user=None))
        await s.rollback()
    assert await raw_sql(idb, 'SELECT "user" FROM "order"') == [("ann",)]
    reliability.record("Bad input", "None for a NOT NULL column (constructor, set, flush, core insert)", cases=4,
                       held="ArgumentError / InvalidRequestError naming OddOrder.user before SQL; core: "
                            "IntegrityError naming the column; nothing written")


async def test_unknown_names(idb: Engine, reliability: ReliabilityLog) -> None:
    checks: list[tuple[type[BaseException], str, Callable[[], Any]]] = [
        (exc.UnknownAttributeError, r"Gadget\(\) got an unexpected keyword argument 'nope'",
         lambda: Gadget(nope=1)),  # type: ignore[call-arg]
        (exc.ArgumentError, r"table 'rel_gadgets' has no column 'nope'", lambda: insert(Gadget).values(nope=1)),
        (exc.ArgumentError, r"has no column 'nope'", lambda: insert(Gadget).values([{"nope": 1}])),
        (exc.ArgumentError, r"has no column 'nope'", lambda: update(Gadget).values(nope=1)),
        (exc.NoSuchColumnError, r"table 'rel_gadgets' has no column 'nope'; its columns: id, n",
         lambda: select(Gadget).filter_by(nope=1)),
        (exc.NoSuchColumnError, r"has no column 'nope'", lambda: Gadget.__table__.c["nope"]),
        (exc.NoSuchColumnError, r"has no column 'nope'", lambda: Gadget.__table__.c.nope),
        (exc.NoSuchColumnError, r"table 'rel_gadgets' has no column 'nope'",
         lambda: select(Gadget.id).where(Gadget.__table__.c.nope == 1)),
    ]
    for cls, pattern, fn in checks:
        with pytest.raises(cls, match=pattern):
            fn()
    # the TypeError Python raises for an unknown keyword, and a KeyError for a mapping miss
    assert issubclass(exc.UnknownAttributeError, TypeError) and issubclass(exc.NoSuchColumnError, KeyError)
    assert issubclass(exc.NoSuchColumnError, AttributeError) and not hasattr(Gadget.__table__.c, "nope")
    # a model attribute that does not exist is Python's AttributeError naming it, as in SQLAlchemy
    with pytest.raises(AttributeError, match=r"'Gadget' has no attribute 'nope'"):
        select(Gadget.id).where(Gadget.nope == 1)  # type: ignore[attr-defined]
    async with AsyncSession(idb) as s:
        g = Gadget()
        s.add(g)
        await s.commit()
        with pytest.raises(exc.AiouowError, match="nope"):
            await s.refresh(g, ["nope"])
        with pytest.raises(exc.AiouowError, match="nope"):
            s.expire(g, ["nope"])
        with pytest.raises(exc.AiouowError, match="nope"):
            await s.load(g, "nope")
    reliability.record("Bad input", "unknown column / attribute names in constructors, values(), filter_by, "
                       "table.c, refresh/expire/load", cases=len(checks) + 3,
                       held="aiouow.exc errors naming the table or model, the name and the valid names")


# -- values a backend cannot hold -------------------------------------------------------------------

async def _refused_flush(engine: Engine, bad: dict[str, Any], pattern: str) -> None:
    """Ten new rows, the fifth holding ``bad``: DataError naming the attribute, nothing written."""
    async with AsyncSession(engine) as s:
        s.add_all([Gadget(id=i, **(bad if i == 5 else {})) for i in range(1, 11)])
        with pytest.raises(exc.DataError, match=pattern):
            await s.flush()
        with pytest.raises(exc.PendingRollbackError):
            await s.flush()
        await s.rollback()
    async with AsyncSession(engine) as s:
        with pytest.raises(exc.DataError, match=pattern):
            await s.execute(insert(Gadget).values(id=1, **bad))
        await s.rollback()
    assert await gadget_rows(engine) == []


async def _kept(engine: Engine, attr: str, value: Any) -> None:
    async with AsyncSession(engine) as s:
        s.add(Gadget(id=1, **{attr: value}))
        await s.commit()
    async with AsyncSession(engine) as s:
        assert getattr(await s.get_one(Gadget, 1), attr) == value
        await s.execute(delete(Gadget))
        await s.commit()


async def test_values_the_backend_cannot_store(idb: Engine, reliability: ReliabilityLog) -> None:
    cases = 0
    # a lone surrogate: no backend can encode it (regression: a bare UnicodeEncodeError on SQLite)
    for value in ("a\ud800b", "\udfff", "ok" * 10 + "\ud83d"):
        await _refused_flush(idb, {"s": value}, r"Gadget\.s \(column rel_gadgets\.s\): .*lone surrogate")
        cases += 1
    # an integer beyond 64 bits
    for value in (2**63, -(2**63) - 1, 10**30):
        await _refused_flush(idb, {"n": value}, r"Gadget\.n .*out of the range of a 64-bit integer")
        cases += 1
    backend_specific = [
        ({"s": "nul\x00inside"}, r"Gadget\.s .*NUL character .* at index 3, which PostgreSQL text cannot store"),
        ({"code": "x" * 9}, r"Gadget\.code .*9 characters is longer than String\(8\)"),
        ({"small": 40000}, r"Gadget\.small .*out of the range of a 16-bit integer"),
        ({"dec": Decimal("123456.5")}, r"Gadget\.dec .*6 digit\(s\) before the point; Numeric"),
        ({"doc": {"k": "a\x00b"}}, r"Gadget\.doc .*NUL character"),
    ]
    for bad, pattern in backend_specific:
        if pg(idb):
            await _refused_flush(idb, bad, pattern)
        else:
            # SQLite stores them as given (it enforces no VARCHAR length and has 64-bit integers)
            (attr, value), = bad.items()
            await _kept(idb, attr, value)
        cases += 1
    reliability.record(
        "Bad input", "values the backend cannot hold (lone surrogates, >64-bit ints; on PostgreSQL also NUL in "
        "text and JSON, over-long VARCHAR, SMALLINT and NUMERIC overflow), ORM flush of 10 rows with the 5th bad "
        "and core insert", cases=cases,
        held="DataError naming Model.attribute, column, why and the fix; the flush wrote nothing and asked for "
             "rollback(); SQLite kept NUL, long strings, wide integers unchanged" if not pg(idb) else
             "DataError naming Model.attribute, column, why and the fix; the flush wrote nothing and asked for "
             "rollback()")


async def test_special_floats_round_trip(idb: Engine, reliability: ReliabilityLog) -> None:
    """Regression: SQLite stored NaN as NULL."""
    values = [math.nan, math.inf, -math.inf, 5e-324, -1.5e308]
    async with AsyncSession(idb) as s:
        s.add_all([Gadget(id=i, f=v) for i, v in enumerate(values, 1)])
        await s.commit()
        await s.execute(insert(Gadget).values(id=10, f=math.nan))
        await s.commit()
    async with AsyncSession(idb) as s:
        got = {g.id: g.f for g in (await s.scalars(select(Gadget).order_by(Gadget.id))).all()}
        assert math.isnan(got.pop(1)) and math.isnan(got.pop(10))
        assert got == {i: v for i, v in enumerate(values, 1) if i != 1}
        # NaN equals NaN and sorts above every number on both backends, as PostgreSQL defines it
        assert (await s.scalars(select(Gadget.id).where(Gadget.f == math.nan).order_by(Gadget.id))).all() == [1, 10]
        assert (await s.scalars(select(Gadget.id).where(Gadget.f == math.inf))).all() == [2]
        top = (await s.scalars(select(Gadget.id).where(Gadget.f.is_not(None)).order_by(Gadget.f.desc(), Gadget.id)
                               )).all()
        assert top[:3] == [1, 10, 2]
        assert (await s.scalar(select(func.count(Gadget.id)).where(Gadget.f.is_(None)))) == 0
    reliability.record("Bad input", "NaN, +/-infinity, the smallest subnormal and a huge negative float through "
                       "the ORM and core insert", cases=len(values) + 1,
                       held="read back exactly (SQLite used to store NaN as NULL); NaN equals NaN and sorts "
                            "above every number; no NULL stored")


async def test_decimals_a_numeric_column_cannot_hold(idb: Engine, reliability: ReliabilityLog) -> None:
    """Regression: on SQLite a Decimal beyond a double's range was stored as Infinity, and a signaling
    NaN raised a bare ValueError; PostgreSQL's overflow for an infinity in Numeric(6, 2) did not name
    the attribute."""
    if pg(idb):
        refused = [(Decimal("Infinity"), r"cannot be stored in Numeric\(6, 2\)"),
                   (Decimal("-Infinity"), r"cannot be stored in Numeric\(6, 2\)"),
                   (Decimal("1E+400"), r"401 digit\(s\) before the point")]
        kept = [Decimal("NaN"), Decimal("9999.99")]
    else:
        refused = [(Decimal("NaN"), r"Decimal\('NaN'\) cannot be stored on SQLite"),
                   (Decimal("sNaN"), r"Decimal\('sNaN'\) cannot be stored on SQLite"),
                   (Decimal("1E+400"), r"beyond the range of a double"),
                   (Decimal("-2E+308"), r"beyond the range of a double")]
        kept = [Decimal("Infinity"), Decimal("-Infinity"), Decimal("1E+300")]
    for value, why in refused:
        await _refused_flush(idb, {"dec": value}, rf"Gadget\.dec \(column rel_gadgets\.dec\): .*{why}")
    for value in kept:
        if not value.is_nan():
            await _kept(idb, "dec", value)
        else:  # NaN never equals itself: checked by is_nan()
            async with AsyncSession(idb) as s:
                s.add(Gadget(id=1, dec=value))
                await s.commit()
            async with AsyncSession(idb) as s:
                got = (await s.get_one(Gadget, 1)).dec
                assert isinstance(got, Decimal) and got.is_nan()
                await s.execute(delete(Gadget))
                await s.commit()
    what = ("an infinity in Numeric(6, 2), 401 digits before the point" if pg(idb) else
            "NaN, signaling NaN, beyond a double's range (SQLite's Numeric is a double)")
    reliability.record("Bad input", f"Decimals a Numeric column cannot hold ({what}), ORM flush of 10 rows with "
                       "the 5th bad and core insert", cases=len(refused) + len(kept),
                       held="DataError naming Gadget.dec, the column and why; nothing written; the values the "
                            "backend holds (" + ", ".join(str(v) for v in kept) + ") read back")


# -- object state misuse ------------------------------------------------------------------------------

async def test_primary_key_changes_of_persistent_objects(idb: Engine, sql: Callable[..., Any],
                                                         reliability: ReliabilityLog) -> None:
    async with AsyncSession(idb, expire_on_commit=False) as s:
        a, b = Gadget(id=1, s="a"), Gadget(id=2, s="b")
        s.add_all([a, b])
        await s.commit()
        log: StatementLog
        with sql(idb) as log:
            with pytest.raises(exc.ArgumentError, match=r"Gadget\.id is part of the primary key .* cannot be set"):
                a.id = None  # type: ignore[assignment]
            with pytest.raises(exc.ArgumentError, match=r"Gadget\.id takes .* not str"):
                a.id = "3"  # type: ignore[assignment]
        assert log.statements == [] and a.id == 1
        a.id = 2  # taken
        with pytest.raises(exc.IntegrityError):
            await s.commit()
        await s.rollback()
        assert await gadget_rows(idb) == [(1, 0, "a", None), (2, 0, "b", None)]
        await s.refresh(a)
        a.id = 7  # a new key: an UPDATE of the key, as in SQLAlchemy, and the identity map follows
        await s.commit()
        assert await s.get(Gadget, 7) is a
        assert await s.get(Gadget, 1) is None
    assert await gadget_rows(idb) == [(2, 0, "b", None), (7, 0, "a", None)]
    reliability.record("Bad input", "primary-key changes of persistent objects (None, wrong type, taken, new)",
                       cases=4, held="None / wrong type: ArgumentError, no SQL; taken: IntegrityError, nothing "
                                     "changed; new key: UPDATE, identity map re-keyed")


async def test_deleting_what_is_not_persisted(idb: Engine, sql: Callable[..., Any],
                                              reliability: ReliabilityLog) -> None:
    async with AsyncSession(idb) as s:
        log: StatementLog
        with sql(idb) as log:
            with pytest.raises(exc.InvalidRequestError, match=r"not persisted \(transient\): there is no row"):
                await s.delete(Gadget(id=1))
            g = Gadget(id=2)
            s.add(g)
            with pytest.raises(exc.InvalidRequestError, match=r"\(pending\).*session\.expunge\(obj\)"):
                await s.delete(g)
        assert log.statements == []
        await s.commit()
    assert await gadget_rows(idb) == [(2, 0, None, None)]
    reliability.record("Bad input", "delete() of a transient and of a pending object", cases=2,
                       held="InvalidRequestError naming the state and the fix (session.expunge(obj)); no SQL "
                            "sent; the pending object was still inserted at commit")


async def test_objects_of_a_closed_session(idb: Engine, reliability: ReliabilityLog) -> None:
    s = AsyncSession(idb)
    g = Gadget(id=1, s="before")
    s.add(g)
    await s.commit()  # expires g
    await s.close()
    assert inspect(g).detached
    assert g.id == 1  # the key stays readable
    with pytest.raises(exc.DetachedInstanceError, match=r"Gadget\.s"):
        g.s  # noqa: B018
    with pytest.raises(exc.InvalidRequestError, match="detached"):
        await s.refresh(g)
    with pytest.raises(exc.DetachedInstanceError):
        await g.awaitable_attrs.s
    g.s = "changed while detached"  # nobody writes it ...
    await s.commit()  # ... the closed session (usable again) has nothing to flush
    assert await gadget_rows(idb) == [(1, 0, "before", None)]
    async with AsyncSession(idb) as other:
        merged = await other.merge(g)
        await other.commit()
        assert merged is not g
    assert await gadget_rows(idb) == [(1, 0, "changed while detached", None)]
    reliability.record("Bad input", "using a closed session's objects (read, refresh, load, modify, merge)",
                       cases=5, held="DetachedInstanceError / InvalidRequestError naming the object; nothing "
                                     "written until merged into a live session")


# -- huge IN lists ------------------------------------------------------------------------------------------

async def _seed_keys(engine: Engine, n: int) -> None:
    """Rows 1..n of rel_keys (v = id % 7), through the driver: seeding is not what is tested."""
    async with engine.begin() as conn:
        if pg(engine):
            await conn.exec_driver_sql(f'INSERT INTO "rel_keys" (id, v) SELECT i, i % 7 FROM generate_series(1, {n}) i')
        else:
            await conn.exec_driver_sql(
                f'WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < {n}) '
                'INSERT INTO "rel_keys" (id, v) SELECT i, i % 7 FROM k')


async def test_huge_in_lists(idb: Engine, sql: Callable[..., Any], reliability: ReliabilityLog) -> None:
    await _seed_keys(idb, 60_000)
    keys = list(range(1, 100_001))  # 100 000 keys, 60 000 of them present
    started = time.perf_counter()
    log: StatementLog
    async with AsyncSession(idb) as s:
        with sql(idb) as log:
            assert await s.scalar(select(func.count(Key.id)).where(Key.id.in_(keys))) == 60_000
            assert await s.scalar(select(func.count(Key.id)).where(Key.id.not_in(keys[:50_000]))) == 10_000
            loaded = (await s.scalars(select(Key).where(Key.id.in_(keys)))).all()
            assert len(loaded) == 60_000
        # one statement each, whatever the number of keys (one array / JSON parameter)
        assert log.count("SELECT") == 3, log.statements[:5]
        assert await s.get(Key, 59_999) is loaded[59_998]
        result = await s.execute(update(Key).where(Key.id.in_(keys)).values(v=100))
        assert result.rowcount == 60_000
        assert loaded[0].v == 100  # synchronized in the identity map
        result = await s.execute(delete(Key).where(Key.id.in_(keys[::2])))
        assert result.rowcount == 30_000
        await s.commit()
    async with AsyncSession(idb) as s:
        objs = (await s.scalars(select(Key).where(Key.id.in_(keys[1:40_000:2])))).all()
        assert len(objs) == 20_000
        for o in objs:
            await s.delete(o)
        await s.commit()  # 20 000 deletes by key in one flush
    elapsed = time.perf_counter() - started
    assert await raw_sql(idb, 'SELECT count(*), min(v), max(v) FROM "rel_keys"') == [(10_000, 100, 100)]
    figures: dict[str, float | int | str] = {"seconds": round(elapsed, 2)}
    if not pg(idb):
        # more keys than the running SQLite's SQLITE_MAX_VARIABLE_NUMBER (250 000 on Debian's build)
        import sqlite3

        limit = sqlite3.connect(":memory:").getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        many = list(range(1, limit + 2))
        async with AsyncSession(idb) as s:
            with sql(idb) as log:
                assert await s.scalar(select(func.count(Key.id)).where(Key.id.in_(many))) == 10_000
            assert "json_each" in log.statements[0]
        figures["sqlite_variable_limit"] = limit
    reliability.record("Huge IN lists", "in_()/not_in() of 100 000 keys in select (count and objects), "
                       "update, delete; get(); ORM delete of 20 000 loaded objects in one flush", cases=7,
                       held="every statement correct, one statement per query (PostgreSQL: = ANY($1) array; "
                            "SQLite: IN (SELECT value FROM json_each(?)) above half the parameter limit)",
                       figures=figures)


# -- injection-shaped strings and odd identifiers ----------------------------------------------------------

NASTY = [
    "'; DROP TABLE rel_gadgets; --", "Robert'); DROP TABLE \"order\";--", "' OR '1'='1", '" OR ""="',
    "back\\slash\\", "\\'", "$1", "$2::text", "?", "??", ":name", ":id", "%s", "%(name)s", "%%", "_%",
    "--", "/* comment */", "E'\\x41'", "\ttab\nnewline\r", "ünïcødé ✓ 日本語", "\U0001f600", "",
]


async def test_injection_shaped_strings_are_stored_and_queried_verbatim(idb: Engine,
                                                                        reliability: ReliabilityLog) -> None:
    async with AsyncSession(idb) as s:
        s.add_all([Gadget(id=i, s=v, code=v[:8]) for i, v in enumerate(NASTY, 1)])
        s.add_all([OddOrder(id=i, user=v, quoted=v) for i, v in enumerate(NASTY, 1)])
        await s.commit()
        for i, v in enumerate(NASTY, 1):
            await s.execute(insert(Gadget).values(id=1000 + i, s=v))
        await s.commit()
    async with AsyncSession(idb) as s:
        for i, v in enumerate(NASTY, 1):
            assert (await s.scalars(select(Gadget.id).where(Gadget.s == v).order_by(Gadget.id))).all() == [i, 1000 + i]
            assert (await s.scalars(select(OddOrder.id).where(OddOrder.user.in_([v, "x"])))).all() == [i]
            found = (await s.execute(text('SELECT id FROM "order" WHERE "user" = :v'), {"v": v})).scalars().all()
            assert found == [i]
            await s.execute(update(OddOrder).where(OddOrder.quoted == v).values(mixed=v))
        await s.commit()
    assert await raw_sql(idb, 'SELECT s FROM "rel_gadgets" WHERE id < 1000 ORDER BY id') == [(v,) for v in NASTY]
    assert await raw_sql(idb, 'SELECT "user", "Mixed Case" FROM "order" ORDER BY id') == [(v, v) for v in NASTY]
    reliability.record("Bad input", "SQL-injection-shaped strings (quotes, backslashes, $1, ?, :name, %s, "
                       "comments, control characters) through ORM, core, in_(), text() and update",
                       cases=len(NASTY) * 6, held="stored and found verbatim; no table dropped")


async def test_odd_identifiers(idb: Engine, reliability: ReliabilityLog) -> None:
    async with AsyncSession(idb) as s:
        order = OddOrder(user="ann", mixed="M", spaced="a b", quoted='q"q', select_=1)
        s.add(order)
        await s.flush()
        s.add_all([OddUser(id=1, order_id=order.id, group="g1"), OddUser(id=2, group="g2")])
        oid = order.id
        await s.commit()
    async with AsyncSession(idb) as s:
        rows = (await s.execute(
            select(OddUser.group, OddOrder.user, OddOrder.mixed, OddOrder.spaced, OddOrder.quoted)
            .join(OddOrder, OddOrder.id == OddUser.order_id).where(OddOrder.select_ == 1)
            .order_by(OddOrder.spaced.desc()))).all()
        assert [tuple(r) for r in rows] == [("g1", "ann", "M", "a b", 'q"q')]
        await s.execute(update(OddOrder).where(OddOrder.user == "ann").values(select_=OddOrder.select_ + 1))
        got = await s.scalar(select(func.max(OddOrder.select_)).group_by(OddOrder.user))
        assert got == 2
        u = await s.get_one(OddUser, 2)
        await s.delete(u)
        await s.commit()
    assert await raw_sql(idb, 'SELECT "Id", "order", "group" FROM "User Table"') == [(1, oid, "g1")]
    assert await raw_sql(idb, 'SELECT "user", "select", "with space", "say ""hi""" FROM "order"') == \
        [("ann", 2, "a b", 'q"q')]
    reliability.record("Bad input", "reserved words (order, user, select, group), mixed case, spaces and quotes "
                       "as table and column names: create, insert, join, group by, update, delete",
                       cases=6, held="every statement quoted; raw SQL reads what was written")
