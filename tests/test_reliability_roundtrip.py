"""Reliability (issue 13): a fuzz of the statement layer.

Hypothesis draws values of every column type of ``aiouow.types`` (bounds, unicode edge cases,
special floats, precision edges, far dates, NUL bytes, nested JSON), writes them through the ORM
(flush) and through core ``insert()`` (executemany), reads them back in a fresh session (the identity
map bypassed) and through a core ``select()``, and looks each one up as a bound parameter in a
``WHERE``; every value must come back exactly (same type, same value).  A second test draws values a
backend cannot hold (a lone surrogate, an integer beyond 64 bits, NUL in PostgreSQL text, ...): the
contract is an ``aiouow.exc`` error before or at flush naming the attribute, and nothing written,
never a silent change.

Deterministic (``derandomize=True``, no example database), one table per type, a few dozen values
per type and backend.

Where the backends legitimately differ (each is in docs/models.md): SQLite keeps NUL characters, over-long
VARCHARs and 64-bit integers in any integer column; SQLite does not keep the sign of a zero float;
SQLite's Numeric is a double (15 significant digits, so ``Numeric(15, 4)`` is fuzzed there);
PostgreSQL's JSONB stores numbers as NUMERIC, so an integral float of 1e16 or more reads back as an
int and -0.0 as 0.0 (those are left out of its JSON values); an aware datetime reads back in UTC.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiouow import AsyncSession, Engine, MetaData, Model, column, exc, insert, select
from aiouow import types as T

from .query_support import raw_sql
from .reliability import ReliabilityLog

pytestmark = pytest.mark.reliability

md = MetaData()


class _Base(Model):
    metadata = md


class Colour(enum.Enum):
    red = "r"
    green = "g"
    blue_ish = "b"


SQLITE, PG = "sqlite", "postgresql"
UTC = dt.UTC
I64 = 2**63
WIDEST = Decimal("9" * 28 + "." + "9" * 10)  # NUMERIC(38, 10)'s largest value
LEAST = Decimal("-" + "9" * 28 + "." + "9" * 10)  # (not -WIDEST: Decimal arithmetic rounds to 28 digits)

no_surrogates = st.characters(exclude_categories=["Cs"])
no_surrogates_no_nul = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
#: characters that break naive code: NUL, BOM, line/paragraph separators, RTL mark, combining marks,
#: a non-character, the last code point, an emoji with a skin tone modifier
EDGE_TEXT = ["", "\x00", "\ufeff", "\u2028\u2029", "\u200f", "e\u0301", "\uffff", "\U0010ffff", "\U0001f44d\U0001f3fd",
             "'", '"', "\\", "%_", "\r\n"]


def texts(backend: str, max_size: int | None = None) -> st.SearchStrategy[str]:
    chars = no_surrogates if backend == SQLITE else no_surrogates_no_nul
    edge = [t for t in EDGE_TEXT if backend == SQLITE or "\x00" not in t]
    return st.text(chars, max_size=max_size if max_size is not None else 60) | st.sampled_from(edge)


def floats(backend: str) -> st.SearchStrategy[float]:
    special = st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308,
                               1.7976931348623157e308, -1.7976931348623157e308, 0.1, 1 / 3])
    return st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True) | special


def json_docs(backend: str) -> st.SearchStrategy[Any]:
    text = texts(backend, 12)
    if backend == PG:  # JSONB keeps numbers as NUMERIC: see the module docstring
        num = st.floats(allow_nan=False, allow_infinity=False).filter(
            lambda f: abs(f) < 1e16 and not (f == 0 and math.copysign(1, f) < 0))
    else:
        num = st.floats(allow_nan=False, allow_infinity=False)
    leaf = st.none() | st.booleans() | st.integers(-(10**30), 10**30) | num | text
    return st.recursive(leaf, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(text, kids, max_size=4),
                        max_leaves=12)


def aware_datetimes() -> st.SearchStrategy[dt.datetime]:
    offsets = st.builds(dt.timezone, st.timedeltas(min_value=-dt.timedelta(hours=23, minutes=59),
                                                    max_value=dt.timedelta(hours=23, minutes=59)))
    # a day from the bounds, so that the instant exists in UTC too (the bounds are refused: below)
    return st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30), timezones=offsets)


def same(a: Any, b: Any) -> bool:
    """Exactly equal: the same type all the way down (True is not 1), NaN equals NaN, -0.0 is not 0.0."""
    if isinstance(a, uuid.UUID):  # asyncpg returns its own (faster) subclass of uuid.UUID
        return isinstance(b, uuid.UUID) and a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, dt.datetime):
        return a == b and a.utcoffset() == b.utcoffset()
    return bool(a == b)


def same_float(backend: str) -> Callable[[Any, Any], bool]:
    if backend == PG:
        return same
    return lambda a, b: same(a, b) or (a == 0 and b == 0 and type(b) is float)  # SQLite keeps no sign of zero


def same_instant(a: Any, b: Any) -> bool:
    # read back in UTC on both backends (PostgreSQL returns TIMESTAMPTZ so): the same instant
    return type(b) is dt.datetime and a == b and b.utcoffset() == dt.timedelta(0)


def same_decimal(a: Any, b: Any) -> bool:
    return type(b) is Decimal and a == b


@dataclass(frozen=True)
class Case:
    name: str
    type_: T.TypeEngine
    #: values every backend must store exactly, by backend
    values: Callable[[str], st.SearchStrategy[Any]]
    equal: Callable[[str], Callable[[Any, Any], bool]] = lambda _backend: same
    #: values a backend cannot hold, and what the error must say (a regex, or one by backend)
    refused: Callable[[str], st.SearchStrategy[Any] | None] = lambda _backend: None
    refusal: str | Callable[[str], str] = ""

    def refusal_for(self, backend: str) -> str:
        return self.refusal(backend) if callable(self.refusal) else self.refusal


def _ints(bits: int) -> Callable[[str], st.SearchStrategy[int]]:
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return lambda _b: st.integers(lo, hi) | st.sampled_from([lo, hi, 0, -1, 1])


def _wide_ints(bits: int) -> Callable[[str], st.SearchStrategy[int] | None]:
    def bad(backend: str) -> st.SearchStrategy[int] | None:
        # SQLite's INTEGER holds 64 bits whatever the declared type (a wider value of the declared
        # range is stored unchanged), so there only what 64 bits cannot hold is refused
        least = 64 if backend == SQLITE else bits
        return (st.integers(2 ** (least - 1), 2**80) | st.integers(-(2**80), -(2 ** (least - 1)) - 1)
                | st.sampled_from([2 ** (least - 1), -(2 ** (least - 1)) - 1]))
    return bad


def _range_refusal(bits: int) -> Callable[[str], str]:
    return lambda backend: rf"out of the range of a {64 if backend == SQLITE else bits}-bit integer"


CASES = [
    Case("integer", T.Integer(), _ints(32), refused=_wide_ints(32), refusal=_range_refusal(32)),
    Case("big_integer", T.BigInteger(), _ints(64), refused=_wide_ints(64), refusal=_range_refusal(64)),
    Case("small_integer", T.SmallInteger(), _ints(16), refused=_wide_ints(16), refusal=_range_refusal(16)),
    Case("string", T.String(16), lambda b: texts(b, 16),
         refused=lambda b: (st.text(no_surrogates, min_size=17, max_size=40) if b == PG else
                            st.text(no_surrogates, max_size=5).map(lambda s: s + "\ud800")),
         refusal=r"longer than String\(16\)|lone surrogate|NUL character"),
    Case("text", T.Text(), lambda b: texts(b, 200),
         refused=lambda b: (st.text(no_surrogates, max_size=5).map(lambda s: s + "\x00") if b == PG else
                            st.text(no_surrogates, max_size=5).map(lambda s: "\udfff" + s)),
         refusal=r"NUL character|lone surrogate"),
    Case("float", T.Float(), floats, equal=same_float),
    Case("numeric", T.Numeric(15, 4),
         lambda _b: st.decimals(min_value=Decimal("-99999999999.9999"), max_value=Decimal("99999999999.9999"),
                                places=4, allow_nan=False, allow_infinity=False)
         | st.sampled_from([Decimal("99999999999.9999"), Decimal("-99999999999.9999"), Decimal("0.0001"),
                            Decimal("-0.0001"), Decimal(0)]),
         equal=lambda _b: same_decimal,
         refused=lambda b: st.decimals(min_value=Decimal("100000000000"), max_value=Decimal("1e20"), places=0)
         | st.sampled_from([Decimal("Infinity"), Decimal("-Infinity")]) if b == PG else
         # SQLite's Numeric is a double: no NaN (it would be NULL), nothing beyond a double's range
         st.sampled_from([Decimal("NaN"), Decimal("-NaN"), Decimal("sNaN"), Decimal("1E+400"),
                          Decimal("-1.8E+308")])
         | st.integers(309, 5000).map(lambda e: Decimal(f"1E+{e}")),
         refusal=r"digit\(s\) before the point|cannot be stored in Numeric|cannot be stored on SQLite"
                 r"|beyond the range of a double"),
    # at PostgreSQL's precision edge: 28 integer digits and 10 decimals (SQLite: a double, see above)
    Case("numeric_wide", T.Numeric(38, 10),
         lambda b: st.decimals(min_value=LEAST, max_value=WIDEST, places=10, allow_nan=False, allow_infinity=False)
         | st.sampled_from([WIDEST, LEAST, Decimal("-0.0000000001"), Decimal("1E-10")])
         if b == PG else st.decimals(min_value=-10**10, max_value=10**10, places=4, allow_nan=False,
                                     allow_infinity=False),
         equal=lambda _b: same_decimal),
    Case("boolean", T.Boolean(), lambda _b: st.booleans()),
    Case("datetime", T.DateTime(), lambda _b: st.datetimes() | st.sampled_from([dt.datetime.min, dt.datetime.max]),
         refused=lambda _b: aware_datetimes(), refusal=r"takes naive datetimes"),
    Case("datetime_tz", T.DateTime(timezone=True), lambda _b: aware_datetimes(), equal=lambda _b: same_instant,
         refused=lambda _b: st.sampled_from([
             dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))),
             dt.datetime(9999, 12, 31, 23, tzinfo=dt.timezone(-dt.timedelta(hours=2)))]),
         refusal=r"outside years 1-9999 once converted to UTC"),
    Case("date", T.Date(), lambda _b: st.dates() | st.sampled_from([dt.date.min, dt.date.max])),
    Case("time", T.Time(), lambda _b: st.times() | st.sampled_from([dt.time.min, dt.time.max]),
         refused=lambda _b: st.times(timezones=st.just(UTC)), refusal=r"takes times of day without time zone"),
    Case("interval", T.Interval(),
         lambda b: st.timedeltas(min_value=-dt.timedelta(days=106_751_991), max_value=dt.timedelta(days=106_751_991))
         if b == SQLITE else st.timedeltas() | st.sampled_from([dt.timedelta.max, dt.timedelta.min]),
         refused=lambda b: st.sampled_from([dt.timedelta.max, dt.timedelta.min]) if b == SQLITE else None,
         refusal=r"longer than SQLite's Interval holds"),
    Case("binary", T.LargeBinary(), lambda _b: st.binary(max_size=300) | st.sampled_from([b"", b"\x00", b"\x00" * 9])),
    Case("uuid", T.Uuid(), lambda _b: st.uuids() | st.sampled_from([uuid.UUID(int=0), uuid.UUID(int=2**128 - 1)])),
    Case("json", T.JSON(), json_docs,
         refused=lambda b: st.sampled_from([{"x": math.nan}, [math.inf], {"s": "a\ud800"}]
                                           + ([{"nul": "\x00"}] if b == PG else [])),
         refusal=r"NaN or infinite|lone surrogate|NUL character"),
    Case("enum", T.Enum(Colour), lambda _b: st.sampled_from(Colour)),
]


def _model(case: Case) -> type[Any]:
    return type(f"Fz_{case.name}", (_Base,), {
        "__tablename__": f"fz_{case.name}",
        "__annotations__": {"id": "int", "v": "object | None"},
        "__module__": __name__,
        "id": column(primary_key=True, autoincrement=False),
        "v": column(type_=case.type_, default=None),
    })


MODELS = {case.name: _model(case) for case in CASES}
_created: set[int] = set()


@pytest.fixture
async def fdb(engine: Engine) -> AsyncIterator[Engine]:
    if id(engine) not in _created:
        await md.drop_all(engine)
        await md.create_all(engine)
        _created.add(id(engine))
    yield engine
    assert engine.pool.checked_out == 0


@pytest.fixture
def tally(reliability: ReliabilityLog, request: pytest.FixtureRequest) -> Any:
    """Counts what the examples of one test tried; recorded once, when the test ends."""
    counts = {"examples": 0, "values": 0}
    yield counts
    if counts["examples"] == 0:
        return  # skipped (or failed at once: the report lists failures) - no row claiming it held
    case = request.node.callspec.params["case"]
    kind = request.node.originalname
    if kind == "test_values_round_trip_exactly":
        reliability.record("Statement fuzz", f"{case.name} ({case.type_!r}): ORM flush + core executemany, "
                           "read back fresh and by core select, found by WHERE v = value",
                           cases=counts["values"], held="every value came back exactly and was found",
                           figures={"examples": counts["examples"]})
    else:
        reliability.record("Statement fuzz", f"{case.name} ({case.type_!r}): values the backend cannot hold",
                           cases=counts["values"], held="aiouow.exc error naming the attribute before or at "
                           "flush (and on core insert); nothing written", figures={"examples": counts["examples"]})


FUZZ = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


async def _clear(engine: Engine, model: type[Any]) -> None:
    async with engine.begin() as conn:
        await conn.exec_driver_sql(f'DELETE FROM "{model.__tablename__}"')


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@FUZZ
@given(data=st.data())
async def test_values_round_trip_exactly(fdb: Engine, case: Case, data: st.DataObject, tally: dict[str, int]) -> None:
    backend = fdb.dialect.name
    values = data.draw(st.lists(case.values(backend), min_size=1, max_size=10), label="values")
    equal = case.equal(backend)
    M = MODELS[case.name]
    await _clear(fdb, M)
    async with AsyncSession(fdb) as s:
        s.add_all([M(id=i, v=v) for i, v in enumerate(values)])
        await s.commit()
        await s.execute(insert(M), [{"id": 1000 + i, "v": v} for i, v in enumerate(values)])
        await s.commit()
    async with AsyncSession(fdb) as s:  # fresh: nothing comes from the identity map
        objs = {o.id: o.v for o in (await s.scalars(select(M))).all()}
        for i, v in enumerate(values):
            for key in (i, 1000 + i):
                assert equal(v, objs[key]), (key, v, objs[key])
            found = set((await s.scalars(select(M.id).where(M.v == v))).all())
            assert {i, 1000 + i} <= found, (v, found)
    async with fdb.connect() as conn:  # core select, no ORM
        rows = dict(tuple(r) for r in (await conn.execute(select(M.id, M.v))).all())
    for i, v in enumerate(values):
        assert equal(v, rows[i]) and equal(v, rows[1000 + i]), (v, rows[i])
    tally["examples"] += 1
    tally["values"] += len(values)


REFUSABLE = [c for c in CASES if c.refusal]


@pytest.mark.parametrize("case", REFUSABLE, ids=[c.name for c in REFUSABLE])
@FUZZ
@given(data=st.data())
async def test_values_a_backend_cannot_hold_are_refused(fdb: Engine, case: Case, data: st.DataObject,
                                                        tally: dict[str, int]) -> None:
    backend = fdb.dialect.name
    strategy = case.refused(backend)
    if strategy is None:
        pytest.skip(f"{backend} holds every {case.name} value Python has (see the module docstring)")
    bad = data.draw(strategy, label="bad")
    good = data.draw(case.values(backend), label="good")
    M = MODELS[case.name]
    await _clear(fdb, M)
    pattern = rf"Fz_{case.name}\.v .*(?:{case.refusal_for(backend)})"
    async with AsyncSession(fdb) as s:
        try:
            s.add_all([M(id=1, v=good), M(id=2, v=bad), M(id=3, v=good)])
        except exc.ArgumentError as err:  # refused when set: before any flush
            assert re.search(pattern, str(err)), err
        else:
            with pytest.raises(exc.DataError, match=pattern):
                await s.flush()
            await s.rollback()
        with pytest.raises(exc.DataError, match=pattern):
            await s.execute(insert(M).values(id=4, v=bad))
        await s.rollback()
    assert await raw_sql(fdb, f'SELECT count(*) FROM "{M.__tablename__}"') == [(0,)]
    tally["examples"] += 1
    tally["values"] += 1
