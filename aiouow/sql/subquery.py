"""Statements inside statements: ``.subquery()`` in FROM / JOIN, ``.scalar_subquery()`` as a
value, and the set operations ``union`` / ``union_all`` / ``intersect`` / ``except_``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Generic, Self

from .. import types as sqltypes
from ..exc import ArgumentError
from .elements import BindParameter, ClauseElement, ColumnElement, Label, coerce
from .paging import Paged
from .schema import ColumnCollection

if TYPE_CHECKING:
    from typing_extensions import TypeVar

    from .cte import CTE
    from .selectable import Select

    _TP = TypeVar("_TP", bound=tuple[Any, ...], default=Any)
else:
    from typing import TypeVar

    _TP = TypeVar("_TP", bound=tuple[Any, ...])

_T = TypeVar("_T")



def _first_select(stmt: Select[Any] | CompoundSelect[Any]) -> Select[Any]:
    while isinstance(stmt, CompoundSelect):
        stmt = stmt.selects[0]
    return stmt


def _selected_columns(stmt: Select[Any] | CompoundSelect[Any]) -> list[tuple[str, str, Any]]:
    """``(key, sql name, element)`` of each result column of a SELECT or a set operation."""
    return column_names(_first_select(stmt)._columns)


def _leaf_selects(stmt: Select[Any] | CompoundSelect[Any]) -> list[Select[Any]]:
    if isinstance(stmt, CompoundSelect):
        return [leaf for s in stmt.selects for leaf in _leaf_selects(s)]
    return [stmt]


def compound_types(stmt: CompoundSelect[Any]) -> list[sqltypes.TypeEngine]:
    """The type of each result column of a set operation: the first SELECT's, else (where that
    is a ``null()``) the first typed one of the others, so that ``union(select(null()),
    select(Order.placed_at))`` reads datetimes on SQLite too; integers with decimals or floats
    are decimals or floats, as PostgreSQL's UNION makes them (``select(literal(0))`` first)."""
    types: list[sqltypes.TypeEngine] = []
    for leaf in _leaf_selects(stmt):
        els = [el for item in leaf._columns
               for el in (getattr(item, "columns", ()) if item.visit_name == "entity" else (item,))]
        for i, el in enumerate(els):
            t = getattr(el, "type", sqltypes.NULLTYPE)
            if i == len(types):
                types.append(t)
            elif i < len(types) and (types[i].visit_name == "null" or (
                    isinstance(types[i], sqltypes.Integer) and isinstance(t, (sqltypes.Numeric, sqltypes.Float)))):
                types[i] = t
    return types


def column_names(columns: tuple[ClauseElement, ...]) -> list[tuple[str, str, Any]]:
    """``(key, sql name, element)`` of each column of a column list in a subquery or CTE.

    A name seen before (``select(A.id, B.id)``, two ``count()``) becomes ``<key>_1``, ... in both
    ``sq.c`` and the SQL, as in SQLAlchemy: with two columns of one name, SQLite would silently
    read the first for both. Names compare case-insensitively, as SQLite resolves them.
    """
    out: list[tuple[str, str, Any]] = []
    keys: set[str] = set()
    names: set[str] = set()
    for item in columns:
        els: tuple[Any, ...] = getattr(item, "columns", ()) if item.visit_name == "entity" else (item,)
        for el in els:
            if isinstance(el, Label):
                key = name = el.name
            elif el.visit_name in ("column", "subquery_column"):
                key, name = el.key, el.name
            else:
                # the compiler names it ``AS "<result name>"`` inside the subquery
                key = name = getattr(el, "result_name", "value")
            if key in keys or name.lower() in names:
                n = 1
                while f"{key}_{n}" in keys or f"{key}_{n}".lower() in names:
                    n += 1
                key = name = f"{key}_{n}"
            keys.add(key)
            names.add(name.lower())
            out.append((key, name, el))
    return out


class SubqueryColumn(ColumnElement[Any]):
    """A column of a :class:`Subquery`: ``sq.c.name``, compiled as ``"sq"."name"``."""

    __slots__ = ("name", "key", "type", "table")
    visit_name = "subquery_column"

    def __init__(self, sq: Subquery, key: str, name: str, type_: sqltypes.TypeEngine) -> None:
        self.key = key
        self.name = name
        self.type = type_
        self.table = sq

    def _ck(self, binds: list[BindParameter]) -> Any:
        # the subquery's own shape (and its bound values) come with its columns: a statement may
        # reach the subquery through them only (``select(sq.c.total)``)
        return ("sc", self.table._ck(binds), self.name)

    def _tables(self) -> Iterable[Any]:
        yield self.table

    @property
    def result_name(self) -> str:
        return self.key

    def __repr__(self) -> str:
        return f"SubqueryColumn({self.table.name}.{self.name})"


class Subquery:
    """A SELECT (or a set operation) in FROM or JOIN under a name: ``stmt.subquery("totals")``.

    Its columns are ``sq.c.<name>``: a label's name, a column's attribute name, a function's
    name. Without a name it compiles as ``anon_1``, ``anon_2``, ... in order of appearance.

    Attributes:
        element: The SELECT (or set operation) inside.
        name: The name given, or ``None`` for an anonymous one (``anon_1`` ...).
        columns: Its columns, in order, as :class:`SubqueryColumn` objects.
        c: The same columns by name: ``sq.c.total`` or ``sq.c["total"]``.
    """

    __slots__ = ("element", "name", "columns", "c", "_marker")
    visit_name = "subquery"
    """Which ``visit_<name>`` method of the compiler turns it into SQL."""

    def __init__(self, element: Select[Any] | CompoundSelect[Any], name: str | None = None) -> None:
        if name is not None and (not isinstance(name, str) or not name):
            raise ArgumentError(f"subquery(name=...): a non-empty string or None, not {name!r}")
        self.element = element
        self.name = name
        types = compound_types(element) if isinstance(element, CompoundSelect) else None
        self.columns = tuple(SubqueryColumn(self, key, sql, getattr(el, "type", sqltypes.NULLTYPE)
                                            if types is None else types[i])
                             for i, (key, sql, el) in enumerate(_selected_columns(element)))
        self.c = ColumnCollection(self.columns)
        # never compiled: its place in the bound values tells one subquery named twice from two
        # alike ones (the cache key sees repeats), which compile as anon_1 and anon_2, or, when
        # both have one name, as two FROM entries (refused by the database; two CTEs of one
        # name are refused by the compiler) instead of silently sharing one's SQL and values
        self._marker: BindParameter[None] = BindParameter(None, sqltypes.NULLTYPE)

    def _ck(self, binds: list[BindParameter]) -> Any:
        binds.append(self._marker)
        return ("subq", self.name, self.element._ck(binds))

    def _tables(self) -> Iterable[Any]:
        yield self

    def __repr__(self) -> str:
        return f"Subquery({self.name or 'anon'})"


class ScalarSelect(ColumnElement[_T]):
    """A one-column SELECT used as a value: ``(SELECT count(*) FROM posts WHERE ...)``.

    Attributes:
        element: The one-column SELECT inside.
    """

    __slots__ = ("element",)
    visit_name = "scalar_select"

    def __init__(self, element: Select[Any]) -> None:
        self.element = element

    @property
    def type(self) -> sqltypes.TypeEngine:  # type: ignore[override]
        return self.element.type

    @property
    def result_name(self) -> str:
        return getattr(self.element._columns[0], "result_name", "value")

    def _ck(self, binds: list[BindParameter]) -> Any:
        return ("scalar", self.element._ck(binds))


_SET_OPS = ("UNION", "UNION ALL", "INTERSECT", "EXCEPT")


class CompoundSelect(Paged, ColumnElement[Any], Generic[_TP]):
    """``union(a, b)`` and friends: orderable, limitable, executable, usable as a subquery.

    ``order_by`` takes the first SELECT's columns or labels (or their names as strings): a set
    operation's result is ordered by its result columns.

    Attributes:
        keyword: The set operator: ``"UNION"``, ``"UNION ALL"``, ``"INTERSECT"`` or ``"EXCEPT"``.
        selects: The SELECTs combined, in order.
    """

    __slots__ = ("keyword", "selects", "_order_by", "_options", "_execution_options")
    visit_name = "compound_select"

    def __init__(self, keyword: str, selects: tuple[Select[Any] | CompoundSelect[Any], ...]) -> None:
        from .selectable import Select

        if len(selects) < 2:
            raise ArgumentError(f"{keyword.lower()}() needs at least two SELECTs")
        for s in selects:
            if not isinstance(s, (Select, CompoundSelect)):
                raise ArgumentError(f"{keyword.lower()}(): expected select() statements, not {s!r}")
        widths = {len(_selected_columns(s)) for s in selects}
        if len(widths) > 1:
            raise ArgumentError(f"{keyword.lower()}(): every SELECT must have the same number of columns")
        self.keyword = keyword
        self.selects = selects
        self._order_by: tuple[ClauseElement, ...] = ()
        super().__init__()
        # what the ORM execution path reads of a SELECT
        self._options: tuple[Any, ...] = ()
        self._execution_options: dict[str, Any] = {}

    @property
    def _columns(self) -> tuple[ClauseElement, ...]:
        first = self.selects[0]
        return first._columns

    @property
    def type(self) -> sqltypes.TypeEngine:  # type: ignore[override]
        return self.selects[0].type

    def _copy(self) -> Self:
        new = super()._copy()
        for name in CompoundSelect.__slots__:
            setattr(new, name, getattr(self, name))
        return new

    def order_by(self, *clauses: Any) -> Self:
        """A copy ordered by result columns.

        Each is a selected column or label of the first SELECT, or its name; ``order_by(None)``
        removes the ORDER BY.
        """
        first = _first_select(self)
        new = self._copy()
        if len(clauses) == 1 and clauses[0] is None:
            new._order_by = ()
            return new
        new._order_by = self._order_by + tuple(
            first._by_item(c, "order_by") if isinstance(c, str) else coerce(c) for c in clauses)
        return new

    def subquery(self, name: str | None = None) -> Subquery:
        """This set operation in FROM / JOIN, its columns named after the first SELECT's."""
        return Subquery(self, name)

    def cte(self, name: str | None = None, recursive: bool = False) -> CTE:
        """This set operation as a common table expression, as ``Select.cte()``."""
        from .cte import CTE

        return CTE(self, name, recursive)

    def _ck(self, binds: list[BindParameter]) -> Any:
        return (
            "compound", self.keyword,
            tuple(s._ck(binds) for s in self.selects),
            tuple(o._ck(binds) for o in self._order_by),
            self._limit._ck(binds) if self._limit is not None else None,
            self._offset._ck(binds) if self._offset is not None else None,
        )


def union(*selects: Select[_TP] | CompoundSelect[_TP]) -> CompoundSelect[_TP]:
    """``a UNION b ...``: the rows of all, duplicates removed."""
    return CompoundSelect("UNION", selects)


def union_all(*selects: Select[_TP] | CompoundSelect[_TP]) -> CompoundSelect[_TP]:
    """``a UNION ALL b ...``: the rows of all, duplicates kept."""
    return CompoundSelect("UNION ALL", selects)


def intersect(*selects: Select[_TP] | CompoundSelect[_TP]) -> CompoundSelect[_TP]:
    """``a INTERSECT b ...``: the rows in every one."""
    return CompoundSelect("INTERSECT", selects)


def except_(*selects: Select[_TP] | CompoundSelect[_TP]) -> CompoundSelect[_TP]:
    """``a EXCEPT b ...``: the rows of the first that no other has."""
    return CompoundSelect("EXCEPT", selects)


__all__ = ["CompoundSelect", "ScalarSelect", "Subquery", "SubqueryColumn", "except_", "intersect", "union",
           "union_all"]
