"""Which value made the database (or its driver) refuse a statement, said in the user's terms.

A driver reports a refused value by parameter number (asyncpg: "invalid input for query argument
$3"), by byte ("invalid byte sequence for encoding UTF8: 0x00") or not at all (sqlite3's
``UnicodeEncodeError``).  Checking every value before it is sent would cost the flush a Python
call per value for what is rare, so the values are examined only after a ``DataError``: the first
one that explains it is named (model attribute, column, value, why, what to do) in front of the
driver's message.  Nothing here runs unless a statement already failed.
"""

from __future__ import annotations

import datetime as _dt
import decimal
from collections.abc import Iterable
from typing import Any

from .. import exc
from .. import types as sqltypes
from ..sql.schema import Column
from .base import json_dumps
from .sqlite_types import INTERVAL_MAX

#: integer ranges by type visit name, per dialect (SQLite's INTEGER holds 64 bits for every one)
_BITS = {"small_integer": 16, "integer": 32, "big_integer": 64}


def _surrogate(text: str) -> int:
    """Index of the first lone surrogate of ``text`` (which UTF-8 cannot encode), or -1."""
    try:
        text.encode("utf-8")
        return -1
    except UnicodeEncodeError as err:
        return err.start


def problem(dialect: str, column: Column, value: Any) -> str | None:
    """Why ``dialect`` cannot store ``value`` in ``column``, or None if nothing is known to be wrong."""
    type_ = column.type
    if isinstance(value, str):
        at = _surrogate(value)
        if at >= 0:
            return (f"the str {value!r:.60} holds a lone surrogate {value[at]!r} at index {at}, which UTF-8 "
                    "cannot encode; remove it, or repair the text where it was decoded "
                    "(e.g. bytes.decode('utf-8', 'replace') instead of 'surrogateescape')")
        if dialect == "postgresql" and "\x00" in value:
            return (f"the str {value!r:.60} holds a NUL character ('\\x00') at index {value.index(chr(0))}, "
                    "which PostgreSQL text cannot store; remove it (value.replace('\\x00', '')) or keep "
                    "such data in a LargeBinary column")
        length = getattr(type_, "length", None)
        if dialect == "postgresql" and isinstance(type_, sqltypes.String) and length and len(value) > length:
            return (f"the str of {len(value)} characters is longer than {type_!r} allows; shorten it, or "
                    f"widen the column (String({len(value)}) or Text)")
    elif isinstance(value, int) and not isinstance(value, bool) and isinstance(type_, sqltypes.Integer):
        bits = 64 if dialect == "sqlite" else _BITS.get(type_.visit_name, 64)
        if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
            return (f"the int {value} is out of the range of a {bits}-bit integer ({type_!r} on {dialect}); "
                    "use a wider type (BigInteger, or Numeric for more than 64 bits)")
    elif isinstance(value, decimal.Decimal) and isinstance(type_, sqltypes.Numeric):
        if dialect == "sqlite" and value.is_nan():
            return f"{value!r} cannot be stored on SQLite (it would become NULL); use None for a missing value"
        if dialect == "sqlite" and value.is_finite() and abs(float(value)) == float("inf"):
            return (f"the Decimal {value} is beyond the range of a double, which SQLite stores a Numeric as "
                    "(it would become Infinity); keep it in a String column, or use PostgreSQL's exact NUMERIC")
        if dialect == "postgresql" and type_.precision is not None and value.is_infinite():
            return (f"{value!r} cannot be stored in {type_!r} (PostgreSQL keeps an infinity only in a Numeric "
                    "without precision); use None, or Numeric() without precision")
        if type_.precision is not None and value.is_finite():
            digits = value.adjusted() + 1
            room = type_.precision - (type_.scale or 0)
            if dialect == "postgresql" and digits > room:
                return (f"the Decimal {value} has {digits} digit(s) before the point; {type_!r} holds "
                        f"{room}; widen the precision")
    elif isinstance(value, (dict, list)) and isinstance(type_, sqltypes.JSON):
        try:
            text = json_dumps(value)
        except exc.DataError as err:
            return str(err)
        if dialect == "postgresql" and "\\u0000" in text:
            return ("the JSON document holds a NUL character ('\\u0000') in a string, which PostgreSQL's "
                    "JSONB cannot store; remove it")
    elif isinstance(type_, sqltypes.DateTime) and type_.refuses_aware(value):
        return sqltypes.refusal(type_, value)
    elif isinstance(value, _dt.datetime) and isinstance(type_, sqltypes.DateTime) and value.utcoffset():
        try:
            value.astimezone(_dt.UTC)
        except OverflowError:
            return (f"the aware datetime {value!r} is outside years 1-9999 once converted to UTC, as a "
                    "TIMESTAMP WITH TIME ZONE is stored; keep such instants away from the bounds")
    elif isinstance(value, _dt.timedelta) and dialect == "sqlite" and isinstance(type_, sqltypes.Interval):
        if abs(value) > INTERVAL_MAX:
            return (f"the timedelta {value!r} is longer than SQLite's Interval holds (microseconds in a 64-bit "
                    f"integer: {INTERVAL_MAX.days} days either way)")
    return None


def explain(err: exc.DBAPIError, dialect: str, items: Iterable[tuple[str, Column, Any]]) -> exc.DBAPIError:
    """``err`` with the first of ``items`` (label, column, value) that explains it named in front;
    ``err`` itself if none does."""
    for label, column, value in items:
        why = problem(dialect, column, value)
        if why is not None:
            original = exc.AiouowError.__str__(err)
            head = f"{label} (column {column.table.name}.{column.name}): "
            # an aiouow refusal (no driver error behind it) already says why: only the names are new
            message = head + original if err.orig is None and why in original else f"{head}{why}\n{original}"
            new = type(err)(message, err.orig, err.statement, err.params)
            new.__cause__ = err.__cause__
            return new
    return err


def row_items(mapper: Any, keys: Iterable[str], rows: Iterable[Iterable[Any]]) -> Iterable[tuple[str, Column, Any]]:
    """The (label, column, value) of a flush batch's rows, lazily (only as far as an error needs)."""
    name = mapper.class_.__name__
    cols = [(f"{name}.{k}", mapper.columns[k]) for k in keys]
    for row in rows:
        for (label, col), value in zip(cols, row):
            yield label, col, value
