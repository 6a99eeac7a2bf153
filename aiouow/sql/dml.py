"""INSERT, UPDATE and DELETE statements."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from typing import Any, Self

from ..exc import ArgumentError
from ..types import refusal
from .elements import BindParameter, ClauseElement, coerce
from .schema import Column, Table
from .selectable import EntityClause


def _target(target: Any, what: str) -> tuple[Table, Any]:
    if isinstance(target, Table):
        return target, None
    el = coerce(target) if not isinstance(target, ClauseElement) else target
    if isinstance(el, EntityClause) and isinstance(el.table, Table):
        return el.table, el.entity
    raise ArgumentError(f"{what}() takes a model class or a Table, not {target!r}")


def _column(table: Table, key: Any, what: str) -> Column:
    if isinstance(key, Column):
        if key.table is not table:
            raise ArgumentError(f"{what}: column {key!r} is not a column of table {table.name!r}")
        return key
    col = table.c.get(key)
    if col is None:
        raise ArgumentError(f"{what}: table {table.name!r} has no column {key!r}")
    return col


def refused_value(stmt: Insert | Update) -> str | None:
    """What is wrong with the first value of the statement its column cannot hold, or None.

    Checked when the statement runs, before any SQL is sent: asyncpg would truncate a float given
    for an integer (1.7 -> 1) and SQLite would store a str there; the ORM refuses such a value
    when the attribute is set.  NULL for a NOT NULL column stays the database's to refuse (an
    IntegrityError naming the column), as in SQLAlchemy.
    """
    pairs = [p for row in stmt._rows for p in row] if isinstance(stmt, Insert) else stmt._values
    for col, el in pairs:
        type_ = col.type
        # a plain value given to values() (a literal() of the caller's own type is not checked)
        if isinstance(el, BindParameter) and el.type is type_:
            value = el.value
            if value is not None and type_.visit_name != "null" and not type_.accepts(value) and not (
                    # a datetime for a Date keeps its date in core statements, as PostgreSQL's DATE does
                    type_.visit_name == "date" and isinstance(value, _dt.datetime)):
                what = "insert().values()" if isinstance(stmt, Insert) else "update().values()"
                return (f"{what}: {attribute_label(stmt, col)} (column {col.table.name}.{col.name}) "
                        f"{refusal(type_, value)}")
    return None


def attribute_label(stmt: DMLStatement, col: Column) -> str:
    """``Model.attr`` for a column of a model's table, else ``table.column``."""
    cls = getattr(stmt.entity, "class_", None)  # the entity is the mapper
    if isinstance(cls, type):
        return f"{cls.__name__}.{col.key}"
    return f"{col.table.name}.{col.key}"


class DMLStatement(ClauseElement):
    """What ``insert()``, ``update()`` and ``delete()`` share: a target table and ``RETURNING``.

    Builder methods return a new statement; the one they are called on is left as it was.

    Attributes:
        table: The table written to.
        entity: The mapper of the model the statement was built from (``None`` for a plain
            ``Table``): an ORM-enabled statement keeps the session's objects in step.
    """
    __slots__ = ("table", "entity", "_returning", "_execution_options")

    def __init__(self, target: Any) -> None:
        self.table, self.entity = _target(target, type(self).__name__.lower())
        self._returning: tuple[ClauseElement, ...] = ()
        self._execution_options: dict[str, Any] = {}

    def _copy(self) -> Self:
        new = type(self).__new__(type(self))
        for cls in type(self).__mro__:
            for name in getattr(cls, "__slots__", ()):
                setattr(new, name, getattr(self, name))
        return new

    def returning(self, *cols: Any) -> Self:
        """``RETURNING`` these columns (or every column of a model)."""
        new = self._copy()
        new._returning = self._returning + tuple(coerce(c) for c in cols)
        return new

    def execution_options(self, **kw: Any) -> Self:
        """A copy with options the session reads when it runs the statement.

        ``bind="primary"`` is the one a write statement takes (it always runs on the primary);
        the keywords are kept as given, so that options of a :class:`Select` can be passed too.

        Returns:
            A new statement with ``kw`` merged into its options.
        """
        new = self._copy()
        new._execution_options = {**self._execution_options, **kw}
        return new

    def _returning_ck(self, binds: list[BindParameter]) -> Any:
        return tuple(c._ck(binds) for c in self._returning)


class Insert(DMLStatement):
    """``insert(User).values(name="a")`` or ``.values([{...}, {...}])`` for many rows."""

    __slots__ = ("_rows",)
    visit_name = "insert"

    def __init__(self, target: Any) -> None:
        super().__init__(target)
        self._rows: tuple[tuple[tuple[Column, ClauseElement], ...], ...] = ()

    def values(self, *args: Any, **kw: Any) -> Insert:
        """A copy that inserts these values: keywords for one row, or one list of dicts for many.

        ``insert(User).values(name="a")``, ``insert(User).values([{"name": "a"}, {"name": "b"}])``.
        Keys are column keys (attribute names) or ``Column`` objects; values are bound as parameters
        (or are SQL expressions). Calling it again adds rows.

        Raises:
            ArgumentError: Both a list and keywords are given, the rows name different columns, or a
                key is not a column of the table.
        """
        if args and kw:
            raise ArgumentError("insert().values() takes a list of dicts or keywords, not both")
        rows: Sequence[Mapping[str, Any]]
        if args:
            if len(args) != 1:
                raise ArgumentError("insert().values() takes one list of dicts")
            rows = args[0] if isinstance(args[0], (list, tuple)) else [args[0]]
        else:
            rows = [kw]
        built = []
        keys = None
        for row in rows:
            if keys is None:
                keys = list(row)
            elif list(row) != keys:
                raise ArgumentError("insert().values(): every row must name the same columns in the same order")
            built.append(tuple((c := _column(self.table, k, "insert().values()"), coerce(v, c.type))
                               for k, v in row.items()))
        new = self._copy()
        new._rows = self._rows + tuple(built)
        return new

    def _with_defaults(self) -> Insert:
        """This statement with the Python-side defaults of the columns it does not name, taken
        now (once per row for a callable), as SQLAlchemy does when it executes an INSERT."""
        defaults = self.table.insert_defaults
        if not defaults:
            return self
        rows = self._rows or ((),)
        given = {id(c) for c, _ in rows[0]}
        missing = [c for c in defaults if id(c) not in given]
        if not missing:
            return self
        new = self._copy()
        new._rows = tuple(
            row + tuple((c, BindParameter(c.default_value(), c.type)) for c in missing) for row in rows
        )
        return new

    def _ck(self, binds: list[BindParameter]) -> Any:
        return (
            "insert", self.table._ckid,
            tuple(tuple((c._ckid, v._ck(binds)) for c, v in row) for row in self._rows),
            self._returning_ck(binds),
        )


class Update(DMLStatement):
    """``update(User).where(User.id == 1).values(name="b")``."""

    __slots__ = ("_where", "_values")
    visit_name = "update"

    def __init__(self, target: Any) -> None:
        super().__init__(target)
        self._where: tuple[ClauseElement, ...] = ()
        self._values: tuple[tuple[Column, ClauseElement], ...] = ()

    def where(self, *clauses: Any) -> Update:
        """A copy with WHERE conditions added; several (and repeated calls) are ANDed."""
        new = self._copy()
        new._where = self._where + tuple(coerce(c) for c in clauses)
        return new

    def values(self, mapping: Mapping[Any, Any] | None = None, **kw: Any) -> Update:
        """A copy that sets these columns: ``values(name="b")`` or ``values({User.name: "b"})``.

        Values are bound as parameters or are SQL expressions (``values(n=User.n + 1)``); keys are
        column keys (attribute names) or ``Column`` objects.

        Args:
            mapping: Column (or key) to value; merged with the keywords.
            **kw: Column key to value.

        Raises:
            ArgumentError: A key is not a column of the table.
        """
        items = {**(mapping or {}), **kw}
        new = self._copy()
        new._values = self._values + tuple(
            (c := _column(self.table, k, "update().values()"), coerce(v, c.type)) for k, v in items.items()
        )
        return new

    def _ck(self, binds: list[BindParameter]) -> Any:
        return (
            "update", self.table._ckid,
            tuple((c._ckid, v._ck(binds)) for c, v in self._values),
            tuple(w._ck(binds) for w in self._where),
            self._returning_ck(binds),
        )


class Delete(DMLStatement):
    """``delete(User).where(User.id == 1)``."""

    __slots__ = ("_where",)
    visit_name = "delete"

    def __init__(self, target: Any) -> None:
        super().__init__(target)
        self._where: tuple[ClauseElement, ...] = ()

    def where(self, *clauses: Any) -> Delete:
        """A copy with WHERE conditions added; several (and repeated calls) are ANDed."""
        new = self._copy()
        new._where = self._where + tuple(coerce(c) for c in clauses)
        return new

    def _ck(self, binds: list[BindParameter]) -> Any:
        return ("delete", self.table._ckid, tuple(w._ck(binds) for w in self._where), self._returning_ck(binds))


def insert(target: Any) -> Insert:
    """An INSERT into a model's table or a Table."""
    return Insert(target)


def update(target: Any) -> Update:
    """An UPDATE of a model's table or a Table."""
    return Update(target)


def delete(target: Any) -> Delete:
    """A DELETE from a model's table or a Table."""
    return Delete(target)
