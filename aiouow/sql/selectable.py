"""SELECT statements."""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Generic, Self, cast, overload

from .. import types as sqltypes
from ..exc import ArgumentError, InvalidRequestError
from .cte import CTE
from .elements import BindParameter, ClauseElement, ColumnElement, Label, UnaryExpression, and_, coerce
from .paging import Paged
from .schema import Column, Table, TableAlias
from .subquery import CompoundSelect, ScalarSelect, Subquery

if TYPE_CHECKING:
    from typing_extensions import TypeVar

    #: the row type of a SELECT, for the checker: ``select(User.id, User.name)`` is a
    #: ``Select[tuple[int, str]]`` (a bare ``Select`` is ``Select[Any]``)
    _TP = TypeVar("_TP", bound=tuple[Any, ...], default=Any)
else:
    from typing import TypeVar

    _TP = TypeVar("_TP", bound=tuple[Any, ...])

_BOOLEAN = sqltypes.Boolean()
_T0 = TypeVar("_T0")
_T1 = TypeVar("_T1")
_T2 = TypeVar("_T2")
_T3 = TypeVar("_T3")
_T4 = TypeVar("_T4")
_T5 = TypeVar("_T5")

#: what a FROM clause or JOIN names: a table, or a table under an alias
FromItem = Table | TableAlias | Subquery



class EntityClause(ClauseElement):
    """A mapped class in a column list: ``select(User)`` selects all its columns.

    ``entity`` is the mapping layer's object; this layer only carries it.

    Attributes:
        table: The table (or alias) the class's columns come from.
        columns: The columns selected for it.
        entity: The mapper (or alias) the rows are turned into objects by.
    """

    __slots__ = ("table", "columns", "entity")
    visit_name = "entity"

    def __init__(self, table: FromItem, columns: tuple[Any, ...], entity: Any) -> None:
        self.table = table
        self.columns = columns
        self.entity = entity

    def _ck(self, binds: list[BindParameter]) -> Any:
        return ("e", self.table._ck(binds))

    def _tables(self) -> Iterable[FromItem]:
        yield self.table


def _table_of(target: Any) -> FromItem:
    if isinstance(target, (Table, TableAlias, Subquery)):
        return target
    el = coerce(target)
    if isinstance(el, EntityClause):
        return el.table
    raise ArgumentError(f"cannot join to {target!r}: expected a model class, a Table or a relationship")


class Join:
    """One ``JOIN right ON onclause`` step of a SELECT."""

    __slots__ = ("left", "right", "onclause", "isouter")

    def __init__(self, left: FromItem | None, right: FromItem, onclause: ClauseElement, isouter: bool) -> None:
        self.left = left
        self.right = right
        self.onclause = onclause
        self.isouter = isouter

    def _ck(self, binds: list[BindParameter]) -> Any:
        return ("j", self.left._ck(binds) if self.left is not None else None, self.right._ck(binds), self.isouter,
                self.onclause._ck(binds))


def _infer_onclause(froms: list[FromItem], right: FromItem) -> tuple[FromItem, ClauseElement]:
    if isinstance(right, Subquery):
        raise ArgumentError(f"join({right!r}): a subquery is joined with an ON clause: .join(sq, sq.c.x == ...)")
    if isinstance(right, TableAlias):
        raise ArgumentError(f"join({right!r}): an alias is joined with an ON clause: .join(alias, alias.c.x == ...)")
    for left in reversed(froms):
        if isinstance(left, (TableAlias, Subquery)):
            continue
        # a foreign key listed by a table has its parent column set
        pairs = [(cast(Column, fk.parent), fk.column) for fk in right.foreign_keys if fk.column.table is left]
        pairs += [(fk.column, cast(Column, fk.parent)) for fk in left.foreign_keys if fk.column.table is right]
        if len(pairs) == 1:
            a, b = pairs[0]
            return left, a == b
        if len(pairs) > 1:
            raise ArgumentError(
                f"more than one foreign key links {left.name!r} and {right.name!r}; "
                "give the ON clause: .join(Target, Target.x == Source.y)"
            )
    raise ArgumentError(
        f"no foreign key links {right.name!r} to {[t.name for t in froms]}; "
        "give the ON clause: .join(Target, Target.x == Source.y)"
    )


class Select(Paged, ColumnElement[Any], Generic[_TP]):
    """``select(User)``, ``select(User.id, User.name)``: build with chained methods.

    ``_TP`` is the row type for the checker; every builder returns a ``Select`` of the same one.
    """

    __slots__ = (
        "_columns", "_where", "_joins", "_order_by", "_group_by", "_having",
        "_distinct", "_for_update", "_options",
        "_execution_options", "_select_from", "_correlate",
    )
    visit_name = "select"

    def __init__(self, *columns: Any) -> None:
        if len(columns) == 1 and isinstance(columns[0], (list, tuple)):
            columns = tuple(columns[0])
        if not columns:
            raise ArgumentError("select() needs at least one column or model")
        self._columns = _column_list(columns)
        self._where: tuple[ClauseElement, ...] = ()
        self._joins: tuple[Join, ...] = ()
        self._order_by: tuple[ClauseElement, ...] = ()
        self._group_by: tuple[ClauseElement, ...] = ()
        self._having: tuple[ClauseElement, ...] = ()
        super().__init__()
        self._distinct = False
        self._for_update = False
        self._options: tuple[Any, ...] = ()
        self._execution_options: dict[str, Any] = {}
        self._select_from: tuple[FromItem, ...] = ()
        #: () correlates automatically, None never, else only these tables
        self._correlate: tuple[FromItem, ...] | None = ()

    def _copy(self) -> Self:
        new = super()._copy()
        for name in Select.__slots__:
            setattr(new, name, getattr(self, name))
        return new

    @property
    def type(self) -> sqltypes.TypeEngine:  # type: ignore[override]
        first = self._columns[0]
        return getattr(first, "type", sqltypes.NULLTYPE)

    # -- builders ----------------------------------------------------------
    def where(self, *clauses: Any) -> Self:
        """Add WHERE conditions; several are ANDed."""
        new = self._copy()
        new._where = self._where + tuple(coerce(c) for c in clauses)
        return new

    filter = where
    """Alias of :meth:`where`: WHERE conditions added, several ANDed."""

    def filter_by(self, **kw: Any) -> Self:
        """``where(Entity.name == value, ...)`` for keyword arguments.

        The entity is the last join's target, else the first ``select_from()`` item, else the first
        selected model or column's table (SQLAlchemy's rule).
        """
        first = self._columns[0]
        target: Any = (self._joins[-1].right if self._joins else self._select_from[0] if self._select_from
                       else first.table if isinstance(first, EntityClause) else getattr(first, "table", None))
        cols = getattr(target, "c", None)
        if cols is None:
            raise ArgumentError("filter_by() needs a model, a table or one of their columns to filter on: "
                                "select one first, or use where()")
        # a typo raises NoSuchColumnError (an ArgumentError) naming the table and its columns
        clauses = [cols[k] == v for k, v in kw.items()]
        return self.where(*clauses)

    def join(self, target: Any, onclause: Any = None, *, isouter: bool = False) -> Self:
        """``JOIN`` a relationship (``User.posts``) or a model/table with an optional ON clause."""
        new = self._copy()
        froms = self._from_tables()
        # tables already placed in the JOIN chain: naming one again needs an alias
        joined = {t for j in self._joins for t in (j.left, j.right) if t is not None}
        if onclause is not None and hasattr(onclause, "of_type"):
            # .join(m, Employee.manager) is .join(Employee.manager.of_type(m))
            target, onclause = onclause.of_type(target), None
        path = getattr(target, "_join_path", None)
        if path is not None and onclause is None:
            steps = []
            auto = _auto_aliased(target, path(), joined, froms)
            if auto is not None:
                target, path = auto, auto._join_path
            for left, right, on in path():
                if right is left or right in joined:
                    _self_join_error(target, right)
                joined.update((left, right))
                steps.append(Join(left, right, on, isouter))
        else:
            right = _table_of(target)
            if right in joined or (froms and not any(t != right for t in froms)):
                _self_join_error(target, right)
            if onclause is None:
                left, on = _infer_onclause(froms, right)
            else:
                left, on = None, coerce(onclause)
            steps = [Join(left, right, on, isouter)]
        new._joins = self._joins + tuple(steps)
        return new

    def outerjoin(self, target: Any, onclause: Any = None) -> Self:
        """``LEFT OUTER JOIN``."""
        return self.join(target, onclause, isouter=True)

    def select_from(self, *froms: Any) -> Self:
        """A copy with FROM items added explicitly: models, tables, aliases or subqueries.

        They come first in FROM (joins then start from the first), for a statement whose columns
        do not name the table to select from (``select(func.count()).select_from(User)``).

        Raises:
            ArgumentError: An item is not a model class, table, alias or subquery.
        """
        new = self._copy()
        new._select_from = self._select_from + tuple(_table_of(f) for f in froms)
        return new

    def order_by(self, *clauses: Any) -> Self:
        """A copy with ORDER BY expressions added.

        A ``.label()`` of the selected columns (or its name as a string) orders by that result
        column. ``order_by(None)`` removes the ORDER BY.
        """
        new = self._copy()
        new._order_by = () if len(clauses) == 1 and clauses[0] is None else \
            self._order_by + tuple(self._by_item(c, "order_by") for c in clauses)
        return new

    def group_by(self, *clauses: Any) -> Self:
        """A copy with GROUP BY expressions added.

        Labels and label names work as in :meth:`order_by`; ``group_by(None)`` removes the GROUP BY.
        """
        new = self._copy()
        new._group_by = () if len(clauses) == 1 and clauses[0] is None else \
            self._group_by + tuple(self._by_item(c, "group_by") for c in clauses)
        return new

    def _by_item(self, item: Any, what: str) -> ClauseElement:
        if not isinstance(item, str):
            return coerce(item)
        # a string names a label of the column list, else a selected column, as in SQLAlchemy;
        # never a bound value (ORDER BY 'n' would order by a constant)
        for c in self._columns:
            if isinstance(c, Label) and c.name == item:
                return c
        for c in self._columns:
            cols = c.columns if isinstance(c, EntityClause) else (c,)
            for col in cols:
                if isinstance(col, ColumnElement) and getattr(col, "key", None) == item and \
                        getattr(col, "visit_name", "") == "column":
                    return col
        raise ArgumentError(
            f"{what}({item!r}): no label or selected column is named {item!r}; "
            f"select expr.label({item!r}), pass the column itself, or write text({item!r})"
        )

    def having(self, *clauses: Any) -> Self:
        """A copy with HAVING conditions (on the groups of ``group_by()``) added; several are ANDed."""
        new = self._copy()
        new._having = self._having + tuple(coerce(c) for c in clauses)
        return new

    def distinct(self) -> Self:  # type: ignore[override]  # SELECT DISTINCT, not DISTINCT expr
        """A copy that selects distinct rows: ``SELECT DISTINCT``."""
        new = self._copy()
        new._distinct = True
        return new

    def with_for_update(self) -> Self:
        """``FOR UPDATE`` (ignored on SQLite, whose writers are serialized anyway)."""
        new = self._copy()
        new._for_update = True
        return new

    def options(self, *options: Any) -> Self:
        """Loader options (``selectinload(...)`` and friends)."""
        new = self._copy()
        new._options = self._options + options
        return new

    def execution_options(self, **kw: Any) -> Self:
        """Options read at execution, e.g. ``populate_existing=True``."""
        new = self._copy()
        new._execution_options = {**self._execution_options, **kw}
        return new

    def scalar_subquery(self: Select[tuple[_T0]]) -> ScalarSelect[_T0]:
        """This one-column SELECT as a value, in the column list, WHERE or ORDER BY.

        It correlates automatically: a table of the enclosing statement it refers to is the
        enclosing row, not a FROM entry of its own (see :meth:`correlate`).
        """
        return ScalarSelect(self)

    def subquery(self, name: str | None = None) -> Subquery:
        """This SELECT in FROM or JOIN, its columns reachable as ``sq.c.<name>``.

        Labels name the columns; without a name it is ``anon_1``, ... Count a query's rows with
        ``select(func.count()).select_from(stmt.subquery())``.
        """
        return Subquery(self, name)

    def cte(self, name: str | None = None, recursive: bool = False) -> CTE:
        """This SELECT as a common table expression, in ``WITH`` at the top of the statement using it.

        It is used in FROM / JOIN, its columns as ``cte.c.<name>``. With ``recursive=True``,
        ``cte.union_all(select(...).join(cte, ...))`` walks a tree.
        """
        return CTE(self, name, recursive)

    def exists(self) -> Exists:
        """``EXISTS (this SELECT)``, as :func:`exists`."""
        return exists(self)

    def correlate(self, *froms: Any) -> Self:
        """As a subquery, take these tables (models, aliases) from the enclosing statement, and only these.

        ``correlate(None)`` correlates nothing.
        """
        new = self._copy()
        new._correlate = None if froms == (None,) else (self._correlate or ()) + tuple(_table_of(f) for f in froms)
        return new

    def union(self, *others: Select[_TP]) -> CompoundSelect[_TP]:
        """``self UNION others``."""
        return CompoundSelect("UNION", (self, *others))

    def union_all(self, *others: Select[_TP]) -> CompoundSelect[_TP]:
        """``self UNION ALL others``."""
        return CompoundSelect("UNION ALL", (self, *others))

    def intersect(self, *others: Select[_TP]) -> CompoundSelect[_TP]:
        """``self INTERSECT others``."""
        return CompoundSelect("INTERSECT", (self, *others))

    def except_(self, *others: Select[_TP]) -> CompoundSelect[_TP]:
        """``self EXCEPT others``."""
        return CompoundSelect("EXCEPT", (self, *others))

    # -- replacing the column list -------------------------------------------
    def add_columns(self, *columns: Any) -> Select[Any]:
        """A copy that selects these columns (models, expressions) after the selected ones.

        A model's tables join the FROM list as the first ones did.
        """
        new: Select[Any] = self._copy()
        new._columns = self._columns + _column_list(columns)
        return new

    @overload
    def with_only_columns(self, e0: builtins.type[_T0] | ColumnElement[_T0], /, *,
                          maintain_column_froms: bool = False) -> Select[tuple[_T0]]: ...
    @overload
    def with_only_columns(self, e0: builtins.type[_T0] | ColumnElement[_T0],
                          e1: builtins.type[_T1] | ColumnElement[_T1], /, *,
                          maintain_column_froms: bool = False) -> Select[tuple[_T0, _T1]]: ...
    @overload
    def with_only_columns(self, e0: builtins.type[_T0] | ColumnElement[_T0],
                          e1: builtins.type[_T1] | ColumnElement[_T1],
                          e2: builtins.type[_T2] | ColumnElement[_T2], /, *,
                          maintain_column_froms: bool = False) -> Select[tuple[_T0, _T1, _T2]]: ...
    @overload
    def with_only_columns(self, *columns: Any, maintain_column_froms: bool = False) -> Select[Any]: ...
    def with_only_columns(self, *columns: Any, maintain_column_froms: bool = False) -> Select[Any]:
        """The same statement selecting only ``columns``.

        As in SQLAlchemy 2.x the FROM list follows the new columns (plus ``select_from()`` and the
        joins); ``maintain_column_froms`` keeps the tables of the old columns in it too.
        """
        if len(columns) == 1 and isinstance(columns[0], (list, tuple)):
            columns = tuple(columns[0])
        if not columns:
            raise ArgumentError("with_only_columns() needs at least one column or model")
        new: Select[Any] = self._copy()
        if maintain_column_froms:
            new._select_from = tuple(dict.fromkeys(
                (*self._select_from, *(t for c in self._columns for t in c._tables()))))
        new._columns = _column_list(columns)
        return new

    # -- introspection -----------------------------------------------------
    def _from_tables(self) -> list[FromItem]:
        seen: dict[FromItem, None] = {}
        for t in self._select_from:
            seen[t] = None
        for c in self._columns:
            for t in c._tables():
                seen[t] = None
        for j in self._joins:
            if j.left is not None:
                seen[j.left] = None
            seen[j.right] = None
        return list(seen)

    def _ck(self, binds: list[BindParameter]) -> Any:
        return (
            "select",
            tuple(c._ck(binds) for c in self._columns),
            tuple(j._ck(binds) for j in self._joins),
            tuple(t._ck(binds) for t in self._select_from),
            tuple(w._ck(binds) for w in self._where),
            tuple(g._ck(binds) for g in self._group_by),
            tuple(h._ck(binds) for h in self._having),
            tuple(o._ck(binds) for o in self._order_by),
            self._limit._ck(binds) if self._limit is not None else None,
            self._offset._ck(binds) if self._offset is not None else None,
            self._distinct,
            self._for_update,
            self._correlate and tuple(t._ck(binds) for t in self._correlate),
        )

    def _tables(self) -> Iterable[Table]:
        return ()


def _auto_aliased(target: Any, path: list[tuple[Any, Any, Any]], joined: set[FromItem],
                  froms: list[FromItem]) -> Any:
    """A relationship join whose target table the query already names (``join(Employee.manager)``)
    goes to an alias of it, ``<table>_<n>``, as in SQLAlchemy; None when no alias is needed, the
    target is an alias already (``of_type(m)``), or none would do (the association table of a
    many-to-many is joined already: the join is refused)."""
    last = path[-1][1]
    if not isinstance(last, Table) or not hasattr(target, "of_type"):
        return None
    if last is not path[0][0] and last not in joined:
        return None
    if any(right in joined for _, right, _ in path[:-1]):
        return None
    used = {t.name for t in (*froms, *joined) if t.name is not None}
    n = 1
    while f"{last.name}_{n}" in used:
        n += 1
    return target.of_type(last.alias(f"{last.name}_{n}"))


def _column_list(columns: tuple[Any, ...]) -> tuple[ClauseElement, ...]:
    # a Table (an association table) selects its columns; coerce() would make it a bound value
    return tuple(
        col for c in columns
        for col in (c.columns if isinstance(c, (Table, TableAlias, Subquery)) else (coerce(c),))
    )


def _self_join_error(target: Any, table: FromItem) -> None:
    what = target.__name__ if isinstance(target, type) else repr(target)
    raise InvalidRequestError(
        f"join({what}): the query already names the table {table.name!r}, and a self-referential "
        f"join (or any second join to one table) needs an alias of it: m = aliased(Model), then "
        f".join(m, onclause) or .join(Model.relationship.of_type(m))"
    )


# a model class selects its objects, a column expression its values; overloads up to six of them
# type the rows (as SQLAlchemy 2.x does), more, a list, a Table or text() give Select[Any]
@overload
def select(e0: type[_T0] | ColumnElement[_T0], /) -> Select[tuple[_T0]]: ...
@overload
def select(e0: type[_T0] | ColumnElement[_T0], e1: type[_T1] | ColumnElement[_T1], /) -> Select[tuple[_T0, _T1]]: ...
@overload
def select(e0: type[_T0] | ColumnElement[_T0], e1: type[_T1] | ColumnElement[_T1],
           e2: type[_T2] | ColumnElement[_T2], /) -> Select[tuple[_T0, _T1, _T2]]: ...
@overload
def select(e0: type[_T0] | ColumnElement[_T0], e1: type[_T1] | ColumnElement[_T1],
           e2: type[_T2] | ColumnElement[_T2], e3: type[_T3] | ColumnElement[_T3], /
           ) -> Select[tuple[_T0, _T1, _T2, _T3]]: ...
@overload
def select(e0: type[_T0] | ColumnElement[_T0], e1: type[_T1] | ColumnElement[_T1],
           e2: type[_T2] | ColumnElement[_T2], e3: type[_T3] | ColumnElement[_T3],
           e4: type[_T4] | ColumnElement[_T4], /) -> Select[tuple[_T0, _T1, _T2, _T3, _T4]]: ...
@overload
def select(e0: type[_T0] | ColumnElement[_T0], e1: type[_T1] | ColumnElement[_T1],
           e2: type[_T2] | ColumnElement[_T2], e3: type[_T3] | ColumnElement[_T3],
           e4: type[_T4] | ColumnElement[_T4], e5: type[_T5] | ColumnElement[_T5], /
           ) -> Select[tuple[_T0, _T1, _T2, _T3, _T4, _T5]]: ...
@overload
def select(*columns: Any) -> Select[Any]: ...
def select(*columns: Any) -> Select[Any]:
    """A SELECT of models and/or column expressions."""
    return Select(*columns)


class _Star(ColumnElement[Any]):
    """``*`` in the column list of ``exists()`` without columns: ``EXISTS (SELECT * FROM ...)``."""

    __slots__ = ()
    visit_name = "star"

    def _ck(self, binds: list[BindParameter]) -> Any:
        return "*"


_STAR = _Star()


class Exists(UnaryExpression[bool]):
    """``EXISTS (SELECT ...)``, as :func:`exists` returns it; ``~`` makes it ``NOT EXISTS``.

    As SQLAlchemy's ``Exists``, it is built on further with ``where()`` (also ``filter()``),
    ``select_from()``, ``join()`` / ``outerjoin()`` and ``correlate()``, each returning a new
    ``Exists`` around the SELECT so changed: ``exists().where(Post.author_id == User.id)``.

    Attributes:
        element: The SELECT inside.
    """

    __slots__ = ()

    def __init__(self, stmt: Select[Any] | CompoundSelect[Any]) -> None:
        super().__init__(stmt, "EXISTS", prefix=True)
        self.type = _BOOLEAN  # not the SELECT's first column's: SQLite read 0 / 1 as integers

    def _select(self, what: str) -> Select[Any]:
        stmt = self.element
        if not isinstance(stmt, Select):
            raise ArgumentError(f"exists(...).{what}(): the EXISTS is of a set operation, which has no "
                                f"{what}(); build the SELECTs first, then pass the set operation to exists()")
        return stmt

    def where(self, *clauses: Any) -> Exists:
        """``EXISTS`` of the SELECT with these WHERE conditions added (ANDed)."""
        return Exists(self._select("where").where(*clauses))

    filter = where
    """Alias of :meth:`where`."""

    def select_from(self, *froms: Any) -> Exists:
        """``EXISTS`` of the SELECT with these FROM items added."""
        return Exists(self._select("select_from").select_from(*froms))

    def join(self, target: Any, onclause: Any = None, *, isouter: bool = False) -> Exists:
        """``EXISTS`` of the SELECT with this JOIN added, as :meth:`Select.join`."""
        return Exists(self._select("join").join(target, onclause, isouter=isouter))

    def outerjoin(self, target: Any, onclause: Any = None) -> Exists:
        """``EXISTS`` of the SELECT with this LEFT OUTER JOIN added."""
        return Exists(self._select("outerjoin").join(target, onclause, isouter=True))

    def correlate(self, *froms: Any) -> Exists:
        """``EXISTS`` of the SELECT correlated to these tables only, as :meth:`Select.correlate`."""
        return Exists(self._select("correlate").correlate(*froms))


def exists(*what: Any) -> Exists:
    """``EXISTS (subquery)``, correlated to the enclosing statement as a scalar subquery is.

    As in SQLAlchemy: ``exists(select(Post.id).where(...))``, ``exists().where(Post.author_id ==
    User.id)`` (``SELECT *``), or ``exists(Post.id).where(...)`` (those columns).
    ``~exists(...)`` is ``NOT EXISTS``.
    """
    if len(what) == 1 and isinstance(what[0], (Select, CompoundSelect)):
        return Exists(what[0])
    return Exists(Select(*what) if what else Select(_STAR))


__all__ = ["EntityClause", "Exists", "Join", "Select", "and_", "exists", "select"]
