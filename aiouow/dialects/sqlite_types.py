"""SQLite's storage forms of the column types, and their conversion both ways.

SQLite has no date, time, interval, UUID, boolean or exact decimal type: values are stored as
text or numbers, in forms chosen so that comparison and ordering in SQL still mean what they
mean on PostgreSQL, and rows other tools wrote are read where that is unambiguous.  Separate
from the dialect because these are data-format decisions, changed for their own reasons.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import uuid
from typing import Any

from .. import exc

#: an Interval is stored as microseconds in a 64-bit INTEGER: about 292 000 years either way
INTERVAL_MAX = dt.timedelta(microseconds=2**63 - 1)


def _interval_to_db(v: dt.timedelta) -> int:
    return v // dt.timedelta(microseconds=1)


def _iso(v: dt.time | dt.datetime) -> str:
    return v.isoformat()  # a time "HH:MM:SS[.ffffff]": SQLite's form


def _date_to_db(v: dt.date) -> str:
    # "YYYY-MM-DD"; a datetime given for a date keeps its date, as PostgreSQL's DATE does (its
    # full text would never read back as a date, nor compare as one)
    if v.__class__ is not dt.date and isinstance(v, dt.datetime):
        v = v.date()
    return v.isoformat()


_EPOCH = dt.datetime(1970, 1, 1)


def _interval_from_db(v: Any) -> dt.timedelta:
    if v.__class__ is int or v.__class__ is float:
        return dt.timedelta(microseconds=v)
    if isinstance(v, str):
        try:
            return dt.timedelta(microseconds=int(v))
        except ValueError:
            pass
        try:
            # SQLAlchemy's form on SQLite: the duration as a datetime after 1970-01-01
            return dt.datetime.fromisoformat(v) - _EPOCH
        except ValueError:
            pass
    raise exc.DataError(f"the database holds {v!r} in an Interval column, which is neither a number of "
                        f"microseconds nor a datetime after 1970-01-01; update the rows")


def _datetime_to_db(v: dt.datetime) -> str:
    # SQLite's own form, the one CURRENT_TIMESTAMP and datetime() write: a space, and a fraction
    # only when there is one, so that text order is time order and equal instants are equal text.
    # An aware value is written as UTC without an offset: SQLite's functions take every time
    # as UTC, and one offset is what makes text compare and sort as instants (as PostgreSQL's
    # TIMESTAMP WITH TIME ZONE does).
    if v.tzinfo is not None:
        offset = v.utcoffset()
        if offset is not None:
            if offset:
                try:
                    v = v.astimezone(_UTC)
                except OverflowError:
                    raise exc.DataError(f"{v!r} is outside the datetimes Python (and aiouow) can hold once "
                                        "converted to UTC (years 1-9999)") from None
            v = v.replace(tzinfo=None)
    return v.isoformat(" ")


def _naive_datetime_to_db(v: dt.datetime) -> str:
    # a DateTime(timezone=False) column: an aware value is refused, as asyncpg refuses it, instead
    # of being stored converted to UTC on one backend only
    if v.tzinfo is not None and v.utcoffset() is not None:
        raise exc.DataError(f"a naive DateTime column cannot take the aware {v!r}; pass "
                            "value.astimezone(UTC).replace(tzinfo=None), or declare it DateTime(timezone=True)")
    return v.isoformat(" ")


def _aware_from_db(v: str) -> dt.datetime:
    # a naive text (CURRENT_TIMESTAMP, aiouow) is UTC; a text with an offset (another tool) is
    # read as that instant, in UTC like PostgreSQL returns it
    d = dt.datetime.fromisoformat(v)
    if d.tzinfo is None:
        return d.replace(tzinfo=_UTC)
    return d if d.utcoffset() == _NO_OFFSET else d.astimezone(_UTC)


def _date_from_db(v: str) -> dt.date:
    try:
        return dt.date.fromisoformat(v)
    except (TypeError, ValueError):
        pass
    try:
        # a datetime at midnight, as some tools write a date
        d = dt.datetime.fromisoformat(v)
    except (TypeError, ValueError):
        d = None
    if d is not None and d.time() == dt.time(0):
        return d.date()
    raise exc.DataError(f"the database holds {v!r} in a Date column, which is not a date (YYYY-MM-DD); "
                        f"update the rows or map the column as DateTime")


def _uuid_from_db(v: Any) -> uuid.UUID:
    if v.__class__ is str:
        return uuid.UUID(v)  # with or without dashes (SQLAlchemy writes 32 hex digits)
    if isinstance(v, (bytes, bytearray, memoryview)) and len(v) == 16:
        return uuid.UUID(bytes=bytes(v))
    raise exc.DataError(f"the database holds {v!r} in a Uuid column, which is not a UUID; update the rows")


class _Booleans(dict[Any, bool]):
    """Stored forms of a boolean; a dict lookup per value, Python code only for odd forms."""

    def __missing__(self, key: Any) -> bool:
        if isinstance(key, (int, float)):
            return key != 0
        if isinstance(key, str) and key.strip().lower() in self:
            return self[key.strip().lower()]
        raise exc.DataError(f"the database holds {key!r} in a Boolean column, which is not a boolean "
                            f"(0/1, true/false); update the rows or map the column with another type")


# 0/1 are what SQLite, aiouow and most tools store; the texts come from other tools
_BOOLEANS = _Booleans({0: False, 1: True, "0": False, "1": True, "false": False, "true": True,
                       "f": False, "t": True, "no": False, "yes": True, "n": False, "y": True,
                       "off": False, "on": True})


#: how a NaN double is stored: sqlite3 binds a NaN as NULL, and a REAL column keeps a text that
#: is no number as text; it compares equal to itself and sorts after every number, as
#: PostgreSQL's NaN does (+/-inf are doubles SQLite keeps as they are)
NAN_TEXT = "NaN"
_NAN = float("nan")


def _float_to_db(v: Any) -> Any:
    # one call per value and None passes (None != None is False): the flush's float columns
    return NAN_TEXT if v != v else v


def _has_nan(values: list[Any]) -> bool:
    # fsum is one C loop; a NaN anywhere makes the sum NaN
    try:
        total = math.fsum(values)
    except (TypeError, ValueError, OverflowError):  # a None, inf + -inf, or a huge sum: look at each
        return any(v != v for v in values)
    return total != total


_float_to_db.needed = _has_nan  # type: ignore[attr-defined]


def _float_from_db(v: Any) -> Any:
    return _NAN if v.__class__ is str and v == NAN_TEXT else v


def _decimal_to_db(v: Any) -> Any:
    # A number, never text: SQLite compares text with numbers as text, so a Decimal bound as
    # text matches "9.00" for "> 10" and never equals sum(price).  An integral value travels
    # as an integer (exact up to 64 bits), any other as a double (15 significant digits).
    if v.__class__ is decimal.Decimal:
        if v.is_nan():  # float() of a signaling NaN raises a bare ValueError
            raise exc.DataError(f"{v!r} cannot be stored on SQLite (it would become NULL); "
                                "use None for a missing value")
        f = float(v)
        if f.is_integer():
            if -_INT53 < f < _INT53:
                return int(f)
            if v.adjusted() <= 18:  # never int() of a Decimal("1E+1000000")
                i = int(v)
                if -_INT64 <= i < _INT64:
                    return i
        elif f in (_INF, -_INF) and v.is_finite():
            raise exc.DataError(f"the Decimal {v} is beyond the range of a double, which SQLite stores a "
                                "Numeric as (it would become Infinity); keep it in a String column, or "
                                "use PostgreSQL's exact NUMERIC")
        return f
    if isinstance(v, int) and not -_INT64 <= v < _INT64:
        return float(v)
    return v


_UTC = dt.UTC
_NO_OFFSET = dt.timedelta(0)
_INT64 = 2**63
_INT53 = 2.0**53  # below it every integral double is exact
_INF = float("inf")
