"""Results: buffered (:class:`Result`) and streamed (:class:`AsyncResult`).

Rows are kept as the driver (or the ORM loader) produced them and wrapped
in :class:`Row` objects only when a caller asks for rows; ``scalars()`` never
builds them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any

from ..exc import MultipleResultsFound, NoResultFound


class Row(tuple):  # type: ignore[type-arg]
    """A result row: a tuple that also exposes its columns by name.

    ``row.name``, ``row[0]``, ``a, b = row``, ``row._mapping["name"]``.
    """

    __slots__ = ()
    _fields: tuple[str, ...] = ()
    _keymap: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        try:
            return self[self._keymap[name]]
        except KeyError:
            raise AttributeError(f"row has no column {name!r}; columns: {list(self._fields)}") from None

    @property
    def _mapping(self) -> Mapping[str, Any]:
        return dict(zip(self._fields, self))

    def _asdict(self) -> dict[str, Any]:
        return dict(zip(self._fields, self))

    @property
    def _t(self) -> tuple[Any, ...]:
        return tuple(self)

    def __repr__(self) -> str:
        return repr(tuple(self))


def make_row_class(names: Sequence[str]) -> type[Row]:
    keymap: dict[str, int] = {}
    for i, n in enumerate(names):
        keymap.setdefault(n, i)
    return type("Row", (Row,), {"__slots__": (), "_fields": tuple(names), "_keymap": keymap})


def _one(items: list[Any], what: str) -> Any:
    if not items:
        raise NoResultFound(f"no {what} was found, one was required")
    if len(items) > 1:
        raise MultipleResultsFound(f"{len(items)} {what}s were found, exactly one was required")
    return items[0]


def _one_or_none(items: list[Any], what: str) -> Any:
    if len(items) > 1:
        raise MultipleResultsFound(f"{len(items)} {what}s were found, at most one was required")
    return items[0] if items else None


class ScalarResult:
    """The first column of every row."""

    __slots__ = ("_items",)

    def __init__(self, items: list[Any]) -> None:
        self._items = items

    def all(self) -> list[Any]:
        return list(self._items)

    def first(self) -> Any:
        return self._items[0] if self._items else None

    def one(self) -> Any:
        return _one(self._items, "row")

    def one_or_none(self) -> Any:
        return _one_or_none(self._items, "row")

    def unique(self) -> ScalarResult:
        """Drop repeated objects (by identity for mapped objects), keeping order."""
        seen: set[int] = set()
        out = []
        for x in self._items:
            k = id(x)
            if k not in seen:
                seen.add(k)
                out.append(x)
        return ScalarResult(out)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


class MappingResult(list):  # type: ignore[type-arg]
    """Rows as dicts: a list that also has SQLAlchemy's ``.all() .first() .one() .one_or_none()``."""

    def all(self) -> list[dict[str, Any]]:
        return list(self)

    def first(self) -> dict[str, Any] | None:
        return self[0] if self else None

    def one(self) -> dict[str, Any]:
        return _one(self, "row")

    def one_or_none(self) -> dict[str, Any] | None:
        return _one_or_none(self, "row")


class Result:
    """Rows of one execution, all fetched.

    ``data`` holds tuples/records, or bare values when ``scalar_rows`` is set
    (a single-column ORM result keeps its objects unwrapped).
    """

    __slots__ = ("_data", "_row_class", "_scalar_rows", "rowcount")

    def __init__(self, data: list[Any], row_class: type[Row] | None, *, scalar_rows: bool = False,
                 rowcount: int = -1) -> None:
        self._data = data
        self._row_class = row_class
        self._scalar_rows = scalar_rows
        self.rowcount = rowcount

    def keys(self) -> list[str]:
        return list(self._row_class._fields) if self._row_class is not None else []

    def _rows(self) -> list[Row]:
        rc = self._row_class
        if rc is None:
            return []
        if self._scalar_rows:
            return [rc((x,)) for x in self._data]
        return [rc(r) for r in self._data]

    def all(self) -> list[Row]:
        return self._rows()

    fetchall = all

    def __iter__(self) -> Iterator[Row]:
        return iter(self._rows())

    def first(self) -> Row | None:
        if not self._data or self._row_class is None:
            return None
        r = self._data[0]
        return self._row_class((r,) if self._scalar_rows else r)

    def one(self) -> Row:
        _one(self._data, "row")
        return self.first()  # type: ignore[return-value]

    def one_or_none(self) -> Row | None:
        _one_or_none(self._data, "row")
        return self.first()

    def _first_column(self) -> list[Any]:
        if self._scalar_rows:
            return self._data
        return [r[0] for r in self._data]

    def scalars(self) -> ScalarResult:
        return ScalarResult(self._first_column())

    def scalar(self) -> Any:
        if not self._data:
            return None
        r = self._data[0]
        return r if self._scalar_rows else r[0]

    def scalar_one(self) -> Any:
        return _one(self._first_column(), "row")

    def scalar_one_or_none(self) -> Any:
        return _one_or_none(self._first_column(), "row")

    def mappings(self) -> MappingResult:
        """Every row as a dict of column name to value."""
        return MappingResult(r._asdict() for r in self._rows())

    def unique(self) -> Result:
        """Drop repeated rows (mapped objects compare by identity)."""
        seen: set[Any] = set()
        out = []
        for r in self._data:
            k = id(r) if self._scalar_rows else tuple(id(x) if hasattr(x, "__aiouow_mapper__") else x for x in r)
            if k not in seen:
                seen.add(k)
                out.append(r)
        return Result(out, self._row_class, scalar_rows=self._scalar_rows, rowcount=self.rowcount)

    def __len__(self) -> int:
        return len(self._data)


class AsyncResult:
    """Rows fetched in chunks as the caller iterates (``stream()``)."""

    def __init__(self, chunks: AsyncIterator[list[Any]], convert: Callable[[list[Any]], list[Any]],
                 row_class: type[Row] | None, *, scalar_rows: bool = False, scalars: bool = False,
                 close: Callable[[], Any] | None = None,
                 names_from: Callable[[list[Any]], list[str]] | None = None) -> None:
        self._chunks = chunks
        #: for text() statements, whose column names are known only once rows arrive
        self._names_from = names_from
        self._convert = convert
        self._row_class = row_class
        self._scalar_rows = scalar_rows
        self._scalars = scalars
        self._close = close

    def scalars(self) -> AsyncResult:
        """Stream the first column of each row."""
        return AsyncResult(self._chunks, self._convert, self._row_class, scalar_rows=self._scalar_rows,
                           scalars=True, close=self._close, names_from=self._names_from)

    async def partitions(self) -> AsyncIterator[list[Any]]:
        async for chunk in self._chunks:
            if self._row_class is None and self._names_from is not None:
                self._row_class = make_row_class(self._names_from(chunk))
            data = self._convert(chunk)
            if self._scalars:
                yield data if self._scalar_rows else [r[0] for r in data]
            elif self._row_class is not None:
                rc = self._row_class
                yield [rc((x,)) for x in data] if self._scalar_rows else [rc(r) for r in data]

    async def __aiter__(self) -> AsyncIterator[Any]:  # type: ignore[misc]
        async for part in self.partitions():
            for item in part:
                yield item

    async def all(self) -> list[Any]:
        return [x async for x in self]

    async def first(self) -> Any:
        async for x in self:
            await self.close()
            return x
        return None

    async def close(self) -> None:
        aclose = getattr(self._chunks, "aclose", None)
        if aclose is not None:
            await aclose()
