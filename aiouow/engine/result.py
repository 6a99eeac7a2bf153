"""Results: buffered (:class:`Result`) and streamed (:class:`AsyncResult`).

Rows are kept as the driver (or the ORM loader) produced them and wrapped
in :class:`Row` objects only when a caller asks for rows; ``scalars()`` never
builds them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, overload

from .._gc import gc_paused
from ..exc import MultipleResultsFound, NoResultFound

# The type parameters exist for the checker only (nothing is checked or converted at run time):
# ``Result[tuple[int, str]]`` yields ``Row[tuple[int, str]]``, ``ScalarResult[User]`` yields users.
# Their defaults keep a bare ``Result`` meaning ``Result[Any]``.
if TYPE_CHECKING:
    from typing_extensions import TypeVar

    _TP = TypeVar("_TP", bound=tuple[Any, ...], default=Any)
    _T_co = TypeVar("_T_co", covariant=True, default=Any)
    _R_co = TypeVar("_R_co", covariant=True, default=Any)
else:
    from typing import TypeVar

    _TP = TypeVar("_TP", bound=tuple[Any, ...])
    _T_co = TypeVar("_T_co", covariant=True)
    _R_co = TypeVar("_R_co", covariant=True)

_T = TypeVar("_T")


class Row(tuple[Any, ...], Generic[_TP]):
    """A result row: a tuple that also exposes its columns by name.

    ``row.name``, ``row[0]``, ``a, b = row``, ``row._mapping["name"]``;
    ``row._tuple()`` (or ``row._t``) is the row typed as its columns' tuple for the checker
    (``tuple[int, str]`` for ``select(User.id, User.name)``).
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
    def _t(self) -> _TP:
        return tuple(self)  # type: ignore[return-value]  # the row's values are what _TP says

    def _tuple(self) -> _TP:
        """The row itself, typed as the tuple of its columns (SQLAlchemy's ``Row._tuple()``)."""
        return self  # type: ignore[return-value]  # a Row is that tuple

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


class ScalarResult(Generic[_T_co]):
    """The first column of every row."""

    __slots__ = ("_items",)

    def __init__(self, items: list[_T_co]) -> None:
        self._items = items

    def all(self) -> list[_T_co]:
        """Every value, as a list."""
        return list(self._items)

    def first(self) -> _T_co | None:
        """The first value, or ``None`` when there is none."""
        return self._items[0] if self._items else None

    def one(self) -> _T_co:
        """Exactly one value.

        Raises:
            NoResultFound: There is none.
            MultipleResultsFound: There are several.
        """
        one: _T_co = _one(self._items, "row")
        return one

    def one_or_none(self) -> _T_co | None:
        """The only value, or ``None`` when there is none.

        Raises:
            MultipleResultsFound: There are several.
        """
        found: _T_co | None = _one_or_none(self._items, "row")
        return found

    def unique(self) -> ScalarResult[_T_co]:
        """Drop repeated objects (by identity for mapped objects), keeping order."""
        seen: set[int] = set()
        out: list[_T_co] = []
        for x in self._items:
            k = id(x)
            if k not in seen:
                seen.add(k)
                out.append(x)
        return ScalarResult(out)

    def __iter__(self) -> Iterator[_T_co]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


class MappingResult(list[dict[str, Any]]):
    """Rows as dicts: a list that also has SQLAlchemy's ``.all() .first() .one() .one_or_none()``."""

    def all(self) -> list[dict[str, Any]]:
        """Every row, as a list of dicts."""
        return list(self)

    def first(self) -> dict[str, Any] | None:
        """The first row's dict, or ``None`` when there is none."""
        return self[0] if self else None

    def one(self) -> dict[str, Any]:
        """The only row's dict.

        Raises:
            NoResultFound: There is no row.
            MultipleResultsFound: There are several.
        """
        one: dict[str, Any] = _one(self, "row")
        return one

    def one_or_none(self) -> dict[str, Any] | None:
        """The only row's dict, or ``None`` when there is no row.

        Raises:
            MultipleResultsFound: There are several.
        """
        found: dict[str, Any] | None = _one_or_none(self, "row")
        return found


class Result(Generic[_TP]):
    """Rows of one execution, all fetched.

    ``data`` holds tuples/records, or bare values when ``scalar_rows`` is set
    (a single-column ORM result keeps its objects unwrapped).

    Attributes:
        rowcount: The number of rows an INSERT, UPDATE or DELETE matched; for a SELECT the number
            of rows fetched; ``-1`` when not known.
    """

    __slots__ = ("_data", "_row_class", "_scalar_rows", "rowcount")

    def __init__(self, data: list[Any], row_class: type[Row] | None, *, scalar_rows: bool = False,
                 rowcount: int = -1) -> None:
        self._data = data
        self._row_class = row_class
        self._scalar_rows = scalar_rows
        self.rowcount = rowcount

    def keys(self) -> list[str]:
        """The names of the result's columns, in order (empty for a statement that returns no rows)."""
        return list(self._row_class._fields) if self._row_class is not None else []

    def _rows(self) -> list[Row[_TP]]:
        rc = self._row_class
        if rc is None:
            return []
        if self._scalar_rows:
            return [rc((x,)) for x in self._data]
        return [rc(r) for r in self._data]

    def all(self) -> list[Row[_TP]]:
        """Every row, as a list of :class:`Row`."""
        return self._rows()

    fetchall = all
    """Alias of :meth:`all`: every row, as a list."""

    def __iter__(self) -> Iterator[Row[_TP]]:
        return iter(self._rows())

    def first(self) -> Row[_TP] | None:
        """The first row, or ``None`` when there is none (the other rows are ignored)."""
        if not self._data or self._row_class is None:
            return None
        r = self._data[0]
        return self._row_class((r,) if self._scalar_rows else r)

    def one(self) -> Row[_TP]:
        """Exactly one row.

        Raises:
            NoResultFound: There is none.
            MultipleResultsFound: There are several.
        """
        _one(self._data, "row")
        return self.first()  # type: ignore[return-value]  # not None: _one() found the row

    def one_or_none(self) -> Row[_TP] | None:
        """The only row, or ``None`` when there is none.

        Raises:
            MultipleResultsFound: There are several.
        """
        _one_or_none(self._data, "row")
        return self.first()

    def _first_column(self) -> list[Any]:
        if self._scalar_rows:
            return self._data
        return [r[0] for r in self._data]

    # the first column's type is known to the checker for a one-column Select (the common case)
    @overload
    def scalars(self: Result[tuple[_T]]) -> ScalarResult[_T]: ...
    @overload
    def scalars(self) -> ScalarResult[Any]: ...
    def scalars(self) -> ScalarResult[Any]:
        """The first column of every row: mapped objects for ``select(User)``, values otherwise.

        ``(await session.execute(select(User))).scalars().all()`` is a list of users.
        """
        return ScalarResult(self._first_column())

    @overload
    def scalar(self: Result[tuple[_T]]) -> _T | None: ...
    @overload
    def scalar(self) -> Any: ...
    def scalar(self) -> Any:
        """The first column of the first row, or ``None`` when there is no row."""
        if not self._data:
            return None
        r = self._data[0]
        return r if self._scalar_rows else r[0]

    @overload
    def scalar_one(self: Result[tuple[_T]]) -> _T: ...
    @overload
    def scalar_one(self) -> Any: ...
    def scalar_one(self) -> Any:
        """The first column of the only row.

        Raises:
            NoResultFound: There is no row.
            MultipleResultsFound: There are several.
        """
        return _one(self._first_column(), "row")

    @overload
    def scalar_one_or_none(self: Result[tuple[_T]]) -> _T | None: ...
    @overload
    def scalar_one_or_none(self) -> Any: ...
    def scalar_one_or_none(self) -> Any:
        """The first column of the only row, or ``None`` when there is no row.

        Raises:
            MultipleResultsFound: There are several.
        """
        return _one_or_none(self._first_column(), "row")

    def mappings(self) -> MappingResult:
        """Every row as a dict of column name to value."""
        return MappingResult(r._asdict() for r in self._rows())

    def unique(self) -> Result[_TP]:
        """Drop repeated rows (mapped objects compare by identity)."""
        seen: set[Any] = set()
        out: list[Any] = []
        for r in self._data:
            k = id(r) if self._scalar_rows else tuple(id(x) if hasattr(x, "__aiouow_mapper__") else x for x in r)
            if k not in seen:
                seen.add(k)
                out.append(r)
        return Result(out, self._row_class, scalar_rows=self._scalar_rows, rowcount=self.rowcount)

    def __len__(self) -> int:
        return len(self._data)


class AsyncResult(Generic[_R_co]):
    """Rows fetched in chunks as the caller iterates (``stream()``).

    ``_R_co`` is what iterating yields, for the checker: ``Row[tuple[...]]`` from ``stream()``,
    the objects or values from ``stream_scalars()`` and ``scalars()``.
    """

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

    @overload
    def scalars(self: AsyncResult[Row[tuple[_T]]]) -> AsyncResult[_T]: ...
    @overload
    def scalars(self) -> AsyncResult[Any]: ...
    def scalars(self) -> AsyncResult[Any]:
        """Stream the first column of each row."""
        return AsyncResult(self._chunks, self._convert, self._row_class, scalar_rows=self._scalar_rows,
                           scalars=True, close=self._close, names_from=self._names_from)

    async def partitions(self) -> AsyncIterator[list[_R_co]]:
        """Yield the result chunk by chunk, as the database sends it: lists of rows (or values).

        Only one chunk is held in memory at a time.
        """
        async for chunk in self._chunks:
            if self._row_class is None and self._names_from is not None:
                self._row_class = make_row_class(self._names_from(chunk))
            data = self._convert(chunk)
            if self._scalars:
                yield data if self._scalar_rows else [r[0] for r in data]
            elif self._row_class is not None:
                # rows are what a stream() result (an AsyncResult[Row[...]]) yields
                rc: Callable[[Any], Any] = self._row_class
                yield [rc((x,)) for x in data] if self._scalar_rows else [rc(r) for r in data]

    async def __aiter__(self) -> AsyncIterator[_R_co]:
        async for part in self.partitions():
            for item in part:
                yield item

    async def all(self) -> list[_R_co]:
        """Fetch what is left of the result and return it as a list (the whole result in memory)."""
        return [x async for x in self]

    async def first(self) -> _R_co | None:
        """The first row (or value), or ``None``; the stream is closed afterwards."""
        async for x in self:
            await self.close()
            return x
        return None

    async def close(self) -> None:
        """Close the stream before its end: the server-side cursor and its connection are freed.

        Iterating to the end closes it too; closing twice does nothing.
        """
        aclose = getattr(self._chunks, "aclose", None)
        if aclose is not None:
            await aclose()


def _process(rows: list[Any], procs: tuple[tuple[int, Any], ...]) -> list[Any]:
    """Rows with driver values converted (e.g. SQLite text to datetime)."""
    with gc_paused(len(rows)):
        out = []
        for r in rows:
            vals = list(r)
            for i, p in procs:
                vals[i] = p(vals[i])
            out.append(vals)
        return out
