"""Expression constructs beyond operators and functions: CASE, CAST, constants, DISTINCT,
window functions (``OVER``) and EXTRACT.

Each element follows ``elements.py``'s contract (``_ck`` describes the shape and collects the
bound values, ``_compile`` dispatches to a ``visit_*`` method).  Their ``visit_*`` methods live
in :class:`ExpressionCompiler` here, which the compiler inherits, so the SQL of these constructs
sits next to the constructs; dialects override the hooks that differ (EXTRACT on SQLite, the
boolean constants, the name of a CAST's type).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, overload

from .. import types as sqltypes
from ..exc import ArgumentError
from .elements import _T, NULL, BindParameter, ClauseElement, ColumnElement, Null, adapt_columns, coerce

if TYPE_CHECKING:
    from .compiler import CompilerDialect


class Case(ColumnElement[_T]):
    """``CASE WHEN cond THEN value ... ELSE else_ END``; its type is that of its first typed value.

    Attributes:
        whens: The ``(condition, value)`` pairs, in order.
        else_: The value when no condition holds (``None``: SQL's NULL).
    """

    __slots__ = ("whens", "else_", "type")
    visit_name = "case"

    def __init__(self, whens: Sequence[tuple[ClauseElement, ClauseElement]], else_: ClauseElement | None) -> None:
        self.whens = tuple(whens)
        self.else_ = else_
        values = [v for _, v in self.whens] + ([else_] if else_ is not None else [])
        self.type = next((t for t in (getattr(v, "type", sqltypes.NULLTYPE) for v in values)
                          if t.visit_name != "null"), sqltypes.NULLTYPE)

    def _ck(self, binds: list[BindParameter]) -> Any:
        return ("case", tuple((c._ck(binds), v._ck(binds)) for c, v in self.whens),
                self.else_._ck(binds) if self.else_ is not None else None)

    def _tables(self) -> Iterable[Any]:
        for c, v in self.whens:
            yield from c._tables()
            yield from v._tables()
        if self.else_ is not None:
            yield from self.else_._tables()

    def _adapt(self, replace: Any) -> Case[_T]:
        return Case([(adapt_columns(c, replace), adapt_columns(v, replace)) for c, v in self.whens],
                    None if self.else_ is None else adapt_columns(self.else_, replace))

    @property
    def result_name(self) -> str:
        return "case"


@overload
def case(*whens: tuple[Any, ColumnElement[_T]], else_: ColumnElement[_T] | _T | None = None) -> Case[_T]: ...
@overload
def case(*whens: tuple[Any, _T], else_: _T | ColumnElement[_T] | None = None) -> Case[_T]: ...
def case(*whens: tuple[Any, Any], else_: Any = None) -> Case[Any]:
    """``CASE``: ``case((Order.total > 100, "big"), (Order.total > 10, "mid"), else_="small")``.

    Each ``when`` is a ``(condition, value)`` pair; values (and ``else_``) are bound
    parameters or expressions. Without ``else_`` an unmatched row gives NULL.
    """
    if not whens:
        raise ArgumentError("case() needs at least one (condition, value) pair")
    pairs = []
    for w in whens:
        if not isinstance(w, tuple) or len(w) != 2:
            raise ArgumentError(f"case() takes (condition, value) pairs, not {w!r}")
        pairs.append((coerce(w[0]), coerce(w[1])))
    return Case(pairs, None if else_ is None else coerce(else_))


def _to_type(type_: Any, what: str) -> sqltypes.TypeEngine:
    if isinstance(type_, sqltypes.TypeEngine):
        return type_
    if isinstance(type_, type) and issubclass(type_, sqltypes.TypeEngine):
        return type_()
    found = sqltypes.from_python(type_)
    if found is None:
        raise ArgumentError(f"{what}: {type_!r} is not a column type; pass a Python type or an aiouow.types type")
    return found


class Cast(ColumnElement[_T]):
    """``CAST(expr AS type)``: read back as ``type``.

    Attributes:
        element: The expression converted.
        type: The type converted to.
    """

    __slots__ = ("element", "type")
    visit_name = "cast"

    def __init__(self, element: ClauseElement, type_: sqltypes.TypeEngine) -> None:
        self.element = element
        self.type = type_

    def _ck(self, binds: list[BindParameter]) -> Any:
        return ("cast", self.type, self.element._ck(binds))

    def _adapt(self, replace: Any) -> Cast[_T]:
        return Cast(adapt_columns(self.element, replace), self.type)

    def _tables(self) -> Iterable[Any]:
        return self.element._tables()

    @property
    def result_name(self) -> str:
        return getattr(self.element, "result_name", "value")


@overload
def cast(expr: Any, type_: type[_T]) -> Cast[_T]: ...
@overload
def cast(expr: Any, type_: sqltypes.TypeEngine) -> Cast[Any]: ...
def cast(expr: Any, type_: Any) -> Cast[Any]:
    """``CAST(expr AS type)``; the value reads back as that type on every backend.

    ``cast(Order.total, int)``, ``cast(User.id, str)``, ``cast(x, types.Numeric(10, 2))``.
    """
    return Cast(coerce(expr), _to_type(type_, f"cast({expr!r}, ...)"))


def null() -> Null:
    """The SQL ``NULL`` constant (``update(...).values(x=null())``, ``case(..., else_=null())``)."""
    return NULL


class BooleanConstant(ColumnElement[bool]):
    """The SQL constant ``TRUE`` or ``FALSE``, as ``true()`` and ``false()`` return it.

    Attributes:
        value: ``True`` or ``False``.
    """
    __slots__ = ("value",)
    visit_name = "boolean_constant"
    type = sqltypes.Boolean()

    def __init__(self, value: bool) -> None:
        self.value = value

    def _ck(self, binds: list[BindParameter]) -> Any:
        return ("bool", self.value)

    @property
    def result_name(self) -> str:
        return "true" if self.value else "false"


_TRUE = BooleanConstant(True)
_FALSE = BooleanConstant(False)


def true() -> BooleanConstant:
    """The SQL ``TRUE`` constant (``1`` on SQLite, which reads it back as ``True``)."""
    return _TRUE


def false() -> BooleanConstant:
    """The SQL ``FALSE`` constant (``0`` on SQLite, which reads it back as ``False``)."""
    return _FALSE


class Distinct(ColumnElement[_T]):
    """``DISTINCT expr``, inside an aggregate: ``func.count(distinct(Order.customer_id))``.

    Attributes:
        element: The expression made distinct.
    """

    __slots__ = ("element", "type")
    visit_name = "distinct"

    def __init__(self, element: ClauseElement) -> None:
        self.element = element
        self.type = getattr(element, "type", sqltypes.NULLTYPE)

    def _ck(self, binds: list[BindParameter]) -> Any:
        return ("distinct", self.element._ck(binds))

    def _adapt(self, replace: Any) -> Distinct[_T]:
        return Distinct(adapt_columns(self.element, replace))

    def _tables(self) -> Iterable[Any]:
        return self.element._tables()

    @property
    def result_name(self) -> str:
        return getattr(self.element, "result_name", "value")


@overload
def distinct(expr: ColumnElement[_T]) -> Distinct[_T]: ...
@overload
def distinct(expr: Any) -> Distinct[Any]: ...
def distinct(expr: Any) -> Distinct[Any]:
    """``DISTINCT expr`` inside an aggregate: ``func.count(distinct(Order.customer_id))``.

    Also spelled ``func.count(Order.customer_id.distinct())``.
    """
    return Distinct(coerce(expr))


class Over(ColumnElement[_T]):
    """A window function: ``func.row_number().over(partition_by=..., order_by=...)``.

    Attributes:
        element: The function called over the window.
        partition_by: The ``PARTITION BY`` expressions (empty: one window of all rows).
        order_by: The ``ORDER BY`` expressions within each window.
    """

    __slots__ = ("element", "partition_by", "order_by", "type")
    visit_name = "over"

    def __init__(self, element: ClauseElement, partition_by: Any = None, order_by: Any = None) -> None:
        self.element = element
        self.partition_by = _clauses(partition_by)
        self.order_by = _clauses(order_by)
        self.type = getattr(element, "type", sqltypes.NULLTYPE)

    def _ck(self, binds: list[BindParameter]) -> Any:
        return ("over", self.element._ck(binds), tuple(p._ck(binds) for p in self.partition_by),
                tuple(o._ck(binds) for o in self.order_by))

    def _adapt(self, replace: Any) -> Over[_T]:
        return Over(adapt_columns(self.element, replace), [adapt_columns(p, replace) for p in self.partition_by],
                    [adapt_columns(o, replace) for o in self.order_by])

    def _tables(self) -> Iterable[Any]:
        yield from self.element._tables()
        for c in (*self.partition_by, *self.order_by):
            yield from c._tables()

    @property
    def result_name(self) -> str:
        return getattr(self.element, "result_name", "value")


def _clauses(value: Any) -> tuple[ClauseElement, ...]:
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(coerce(v) for v in value)
    return (coerce(value),)


#: EXTRACT fields and the strftime() format SQLite computes each with (same numbering as
#: PostgreSQL: dow 0 = Sunday, doy from 1)
EXTRACT_FIELDS = {
    "year": "%Y", "month": "%m", "day": "%d", "hour": "%H", "minute": "%M", "second": "%S",
    "dow": "%w", "doy": "%j",
}

_INTEGER = sqltypes.Integer()


class Extract(ColumnElement[int]):
    """``EXTRACT(field FROM expr)`` as an integer.

    Attributes:
        field: The part extracted (``"year"``, ``"month"``, ``"day"``, ``"hour"`` ...).
        element: The date or timestamp expression it is extracted from.
    """

    __slots__ = ("field", "element")
    visit_name = "extract"
    type = _INTEGER

    def __init__(self, field: str, element: ClauseElement) -> None:
        self.field = field
        self.element = element

    def _ck(self, binds: list[BindParameter]) -> Any:
        return ("extract", self.field, self.element._ck(binds))

    def _adapt(self, replace: Any) -> Extract:
        return Extract(self.field, adapt_columns(self.element, replace))

    def _tables(self) -> Iterable[Any]:
        return self.element._tables()

    @property
    def result_name(self) -> str:
        return self.field


def extract(field: str, expr: Any) -> Extract:
    """``EXTRACT(field FROM expr)``, an integer: ``extract("year", Order.placed_at)``.

    Fields: ``year month day hour minute second dow doy`` (``dow``: 0 is Sunday; ``second``
    drops the fraction). SQLite has no EXTRACT and computes it with ``strftime()``.
    """
    name = field.lower() if isinstance(field, str) else field
    if name not in EXTRACT_FIELDS:
        raise ArgumentError(f"extract({field!r}, ...): the field is one of {', '.join(EXTRACT_FIELDS)}")
    return Extract(name, coerce(expr))


class ExpressionCompiler:
    """The SQL of this module's constructs; ``Compiler`` inherits it."""

    dialect: CompilerDialect

    if TYPE_CHECKING:
        def typed_bind(self, bind: BindParameter) -> str: ...
        def _operand(self, el: ClauseElement) -> str: ...

    def _sql(self, el: ClauseElement) -> str:
        return el._compile(self)  # type: ignore[arg-type]  # self is always a Compiler

    def _value(self, el: ClauseElement) -> str:
        # a bare value tells the database nothing of its type (CASE WHEN .. THEN $1)
        if isinstance(el, BindParameter) and el.visit_name == "bind":
            return self.typed_bind(el)
        return self._operand(el)

    def visit_case(self, c: Case[Any]) -> str:
        sql = "CASE"
        for cond, value in c.whens:
            sql += f" WHEN {self._sql(cond)} THEN {self._value(value)}"
        if c.else_ is not None:
            sql += f" ELSE {self._value(c.else_)}"
        return sql + " END"

    def visit_cast(self, c: Cast[Any]) -> str:
        return f"CAST({self._value(c.element)} AS {self.dialect.cast_type(c.type)})"

    def visit_boolean_constant(self, b: BooleanConstant) -> str:
        return "true" if b.value else "false"

    def visit_distinct(self, d: Distinct[Any]) -> str:
        return "DISTINCT " + self._operand(d.element)

    def visit_over(self, o: Over[Any]) -> str:
        window = []
        if o.partition_by:
            window.append("PARTITION BY " + ", ".join(self._sql(p) for p in o.partition_by))
        if o.order_by:
            window.append("ORDER BY " + ", ".join(self._sql(p) for p in o.order_by))
        return f"{self._sql(o.element)} OVER ({' '.join(window)})"

    def visit_extract(self, e: Extract) -> str:
        # a bare value is typed: PostgreSQL cannot tell EXTRACT(... FROM $1)'s overloads apart
        inner = self._value(e.element)
        if e.field == "second":  # the fraction would round up in the cast
            return f"CAST(floor(EXTRACT(SECOND FROM {inner})) AS INTEGER)"
        return f"CAST(EXTRACT({e.field.upper()} FROM {inner}) AS INTEGER)"


class SQLiteExpressionCompiler(ExpressionCompiler):
    """SQLite's spelling: no TRUE/FALSE before 3.23, no EXTRACT, no DATE type."""

    def visit_boolean_constant(self, b: BooleanConstant) -> str:
        return "1" if b.value else "0"

    def visit_true_division(self, left: str, right: str) -> str:
        # CAST(... AS NUMERIC) gives an INTEGER back for a whole number in SQLite
        return f"{left} / CAST({right} AS REAL)"

    def visit_cast(self, c: Cast[Any]) -> str:
        if c.type.visit_name == "date":
            # CAST(x AS <a text type>) keeps a datetime's time of day; date() drops it, as PostgreSQL does
            return f"date({self._value(c.element)})"
        return super().visit_cast(c)

    def visit_extract(self, e: Extract) -> str:
        # the format is one of EXTRACT_FIELDS' constants, never a user's value
        return f"CAST(strftime('{EXTRACT_FIELDS[e.field]}', {self._value(e.element)}) AS INTEGER)"
