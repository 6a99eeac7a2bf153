"""SQL expression objects: columns, bound values, operators, functions, text.

Every element can do two things:

* ``_ck(binds)`` returns a hashable *cache key* describing its shape and
  appends its bound parameters to ``binds`` in a fixed traversal order.  Two
  statements with the same key compile to the same SQL, so compiled SQL is
  cached by key (see ``compiler.py``) and values never take part in it.
* ``_compile(compiler)`` hands itself to the compiler's ``visit_*`` method.

Elements are immutable once built; builder methods return new objects.
"""

from __future__ import annotations

import decimal
import itertools
import math
import re
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Generic, overload

from .. import types as sqltypes
from ..exc import ArgumentError

if TYPE_CHECKING:
    # a default (PEP 696) keeps a bare ``ColumnElement`` meaning ``ColumnElement[Any]``;
    # typing.TypeVar takes one only from Python 3.13
    from typing_extensions import TypeVar

    from .compiler import Compiler
    from .expressions import Distinct, Over

    _T = TypeVar("_T", default=Any)
else:
    from typing import TypeVar

    _T = TypeVar("_T")

_ids = itertools.count(1)


class ClauseElement:
    """Base of every SQL expression element."""

    __slots__ = ()
    visit_name = "element"
    """Which ``visit_<name>`` method of the compiler turns the element into SQL."""

    def _ck(self, binds: list[BindParameter]) -> Any:
        raise NotImplementedError

    def _compile(self, compiler: Compiler) -> str:
        visit: Callable[[ClauseElement], str] = getattr(compiler, "visit_" + self.visit_name)
        return visit(self)

    def _tables(self) -> Iterable[Any]:
        return ()


def coerce(value: Any, type_: sqltypes.TypeEngine | None = None) -> ClauseElement:
    """Turn a Python value (or something with ``__clause_element__``) into an element."""
    if isinstance(value, ClauseElement):
        return value
    ce: Callable[[], ClauseElement] | None = getattr(value, "__clause_element__", None)
    if ce is not None:
        return ce()
    return BindParameter(value, type_ if type_ is not None else sqltypes.type_for_value(value))


def _compared(value: Any, type_: sqltypes.TypeEngine) -> ClauseElement:
    """``value`` compared with (or combined with) an expression of ``type_``.

    A plain value takes the expression's type when that type holds such values
    (``price > 10`` binds 10 as the Numeric column's value); otherwise its own
    (``qty * Decimal("1.5")``, ``func.total(x) > Decimal("2")``), so that it is
    converted for the driver as what it is.
    """
    if value is None or isinstance(value, ClauseElement) or hasattr(value, "__clause_element__"):
        return coerce(value, type_)
    if type_.visit_name != "null" and type_.accepts(value):
        return BindParameter(value, type_)
    if isinstance(value, float) and type_.visit_name == "numeric" and math.isfinite(value):
        # ``price * 1.1`` stays NUMERIC, as in SQLAlchemy: bound as a double, PostgreSQL computed a
        # double (and round(x, 2) of it does not exist); the shortest repr is the value meant
        return BindParameter(decimal.Decimal(repr(value)), type_)
    own = sqltypes.type_for_value(value)
    return BindParameter(value, type_ if own.visit_name == "null" else own)


class ColumnElement(ClauseElement, Generic[_T]):
    """An expression that yields a value: comparisons and operators build on it.

    ``_T`` is the Python type of the value it yields, for the type checker only
    (``User.name`` is a ``ColumnElement[str]``); comparisons are
    ``ColumnElement[bool]``, arithmetic with an operand of the same type or an integer keeps
``_T`` (``Any`` otherwise: ``int_col * decimal_col`` is a decimal).
    """

    __slots__ = ()
    type: sqltypes.TypeEngine = sqltypes.NULLTYPE
    """The column type of the value the expression yields.

    It decides how plain values compared with the expression are bound and how the
    result is read back; ``NullType`` when it is not known.
    """

    # -- operators ---------------------------------------------------------
    def _bin(self, op: str, other: Any, type_: sqltypes.TypeEngine | None = None) -> BinaryExpression[bool]:
        return BinaryExpression(self, op, _compared(other, self.type), type_ or _BOOLEAN)

    # arithmetic keeps the left operand's type when the other has it too or is an integer; other
    # mixes promote at run time (integer * decimal is a decimal), so the checker gets Any for them
    def _math(self, op: str, other: Any) -> BinaryExpression[Any]:
        right = _compared(other, self.type)
        type_ = self.type
        other_type = getattr(right, "type", sqltypes.NULLTYPE)
        # integer * decimal is a decimal, as in SQL (and SQLAlchemy): read it as one
        if isinstance(other_type, (sqltypes.Numeric, sqltypes.Float)) and (
            isinstance(type_, (sqltypes.Integer, sqltypes.NullType))
        ):
            type_ = other_type
        return BinaryExpression(self, op, right, type_)

    def __eq__(self, other: Any) -> BinaryExpression[bool]:  # type: ignore[override]
        if other is None:
            return BinaryExpression(self, "IS", NULL, _BOOLEAN)
        return self._bin("=", other)

    def __ne__(self, other: Any) -> BinaryExpression[bool]:  # type: ignore[override]
        if other is None:
            return BinaryExpression(self, "IS NOT", NULL, _BOOLEAN)
        return self._bin("!=", other)

    __hash__ = ClauseElement.__hash__

    def __lt__(self, other: Any) -> BinaryExpression[bool]:
        return self._bin("<", other)

    def __le__(self, other: Any) -> BinaryExpression[bool]:
        return self._bin("<=", other)

    def __gt__(self, other: Any) -> BinaryExpression[bool]:
        return self._bin(">", other)

    def __ge__(self, other: Any) -> BinaryExpression[bool]:
        return self._bin(">=", other)

    @overload
    def __add__(self, other: ColumnElement[_T] | _T | ColumnElement[int] | int) -> BinaryExpression[_T]: ...
    @overload
    def __add__(self, other: Any) -> BinaryExpression[Any]: ...
    def __add__(self, other: Any) -> BinaryExpression[Any]:
        return self._math("+", other)

    @overload
    def __sub__(self, other: ColumnElement[_T] | _T | ColumnElement[int] | int) -> BinaryExpression[_T]: ...
    @overload
    def __sub__(self, other: Any) -> BinaryExpression[Any]: ...
    def __sub__(self, other: Any) -> BinaryExpression[Any]:
        return self._math("-", other)

    @overload
    def __mul__(self, other: ColumnElement[_T] | _T | ColumnElement[int] | int) -> BinaryExpression[_T]: ...
    @overload
    def __mul__(self, other: Any) -> BinaryExpression[Any]: ...
    def __mul__(self, other: Any) -> BinaryExpression[Any]:
        return self._math("*", other)

    # ``/`` is true division, as in Python and SQLAlchemy 2.x: integer / integer is a Decimal
    # (the SQL would truncate); ``//`` is floor division, an integer for integers
    @overload
    def __truediv__(self: ColumnElement[int], other: ColumnElement[int] | int) -> BinaryExpression[Decimal]: ...
    @overload
    def __truediv__(self, other: ColumnElement[_T] | _T | ColumnElement[int] | int) -> BinaryExpression[_T]: ...
    @overload
    def __truediv__(self, other: Any) -> BinaryExpression[Any]: ...
    def __truediv__(self, other: Any) -> BinaryExpression[Any]:
        expr = self._math("/", other)
        if _integral(self.type) and _integral(getattr(expr.right, "type", None)):
            expr.op, expr.type = "TRUEDIV", _DIVISION
        return expr

    @overload
    def __floordiv__(self: ColumnElement[int], other: ColumnElement[int] | int) -> BinaryExpression[int]: ...
    @overload
    def __floordiv__(self, other: Any) -> BinaryExpression[Any]: ...
    def __floordiv__(self, other: Any) -> BinaryExpression[Any]:
        expr = self._math("/", other)
        if not (_integral(self.type) and _integral(getattr(expr.right, "type", None))):
            expr.op = "FLOORDIV"
        return expr

    @overload
    def __mod__(self: ColumnElement[int], other: ColumnElement[int] | int) -> BinaryExpression[int]: ...
    @overload
    def __mod__(self, other: Any) -> BinaryExpression[Any]: ...
    def __mod__(self, other: Any) -> BinaryExpression[Any]:
        return self._math("%", other)

    def __neg__(self) -> UnaryExpression[_T]:
        return UnaryExpression(self, "-", prefix=True)

    def __invert__(self) -> UnaryExpression[bool]:
        return not_(self)

    def __and__(self, other: Any) -> BooleanClauseList:
        return and_(self, other)

    def __or__(self, other: Any) -> BooleanClauseList:
        return or_(self, other)

    def __bool__(self) -> bool:
        raise TypeError(
            "a SQL expression has no truth value; combine conditions with and_() / or_() "
            "or the & and | operators, not 'and' / 'or'"
        )

    def is_(self, other: Any) -> BinaryExpression[bool]:
        """``self IS other``: the comparison to use for ``None`` (``IS NULL``).

        Args:
            other: ``None``, a value or an expression.
        """
        return BinaryExpression(self, "IS", NULL if other is None else coerce(other, self.type), _BOOLEAN)

    def is_not(self, other: Any) -> BinaryExpression[bool]:
        """``self IS NOT other``; ``is_not(None)`` is ``IS NOT NULL``.

        Args:
            other: ``None``, a value or an expression.
        """
        return BinaryExpression(self, "IS NOT", NULL if other is None else coerce(other, self.type), _BOOLEAN)

    def in_(self, values: Any) -> BinaryExpression[bool]:
        """``self IN (...)``: true when the value is one of ``values``.

        Args:
            values: A list (or other iterable) of values, each sent as a bound parameter; or a
                ``select()`` of one column, for ``IN (SELECT ...)``.

        Raises:
            ArgumentError: ``values`` is neither (a subquery is a FROM item: pass the statement
                itself, or ``select(sq.c.name)``).
        """
        return self._in("IN", values)

    def not_in(self, values: Any) -> BinaryExpression[bool]:
        """``self NOT IN (...)``, the negation of :meth:`in_`, taking the same arguments.

        Args:
            values: A list of values, or a ``select()`` of one column.

        Raises:
            ArgumentError: ``values`` is neither.
        """
        return self._in("NOT IN", values)

    def _in(self, op: str, values: Any) -> BinaryExpression[bool]:
        if isinstance(values, ClauseElement) or hasattr(values, "__clause_element__"):
            return BinaryExpression(self, op, coerce(values), _BOOLEAN)
        if getattr(values, "visit_name", None) in ("subquery", "cte"):
            # a FROM item, not a value list (it was iterated as one: "not iterable")
            raise ArgumentError(f"{'in_' if op == 'IN' else 'not_in'}({values!r}): pass a SELECT, "
                                f"not a subquery: select(sq.c.<column>), or the statement before .subquery()")
        try:
            items = list(values)
        except TypeError:
            raise ArgumentError(f"{'in_' if op == 'IN' else 'not_in'}() takes a list of values or a "
                                f"select(), not {values!r}") from None
        return BinaryExpression(self, op, ExpandingBind(items, self.type), _BOOLEAN)

    def like(self, pattern: Any) -> BinaryExpression[bool]:
        """``self LIKE pattern``: ``%`` matches any run of characters, ``_`` any one.

        Args:
            pattern: The pattern, a string (bound as a parameter) or an expression.
        """
        return self._bin("LIKE", pattern)

    def ilike(self, pattern: Any) -> BinaryExpression[bool]:
        """``self ILIKE pattern``: :meth:`like`, ignoring case.

        ``ILIKE`` on PostgreSQL, ``lower(self) LIKE lower(pattern)`` on SQLite.

        Args:
            pattern: The pattern, a string or an expression.
        """
        return self._bin("ILIKE", pattern)

    def contains(self, other: str) -> BinaryExpression[bool]:
        """``LIKE '%other%'`` (``%`` and ``_`` in ``other`` keep their LIKE meaning)."""
        return self._bin("LIKE", f"%{other}%")

    def startswith(self, other: str) -> BinaryExpression[bool]:
        """``LIKE 'other%'``: the value begins with ``other`` (whose ``%`` and ``_`` keep their LIKE meaning)."""
        return self._bin("LIKE", f"{other}%")

    def endswith(self, other: str) -> BinaryExpression[bool]:
        """``LIKE '%other'``: the value ends with ``other`` (whose ``%`` and ``_`` keep their LIKE meaning)."""
        return self._bin("LIKE", f"%{other}")

    def between(self, low: Any, high: Any) -> BooleanClauseList:
        """``low <= self AND self <= high``, both bounds included.

        Args:
            low: The lower bound, a value or an expression.
            high: The upper bound, a value or an expression.
        """
        return and_(self >= low, self <= high)

    def desc(self) -> UnaryExpression[_T]:
        """Descending order, for ``order_by()``: ``User.name.desc()``."""
        return UnaryExpression(self, "DESC")

    def asc(self) -> UnaryExpression[_T]:
        """Ascending order, for ``order_by()`` (the default; spelled out for clarity)."""
        return UnaryExpression(self, "ASC")

    def label(self, name: str) -> Label[_T]:
        """The expression under a name: ``AS name`` in the SELECT list.

        The label names the result column (``row.name``), and ``order_by()`` / ``group_by()``
        take it (or the name as a string) to refer to the expression again.

        Args:
            name: The column name in the result.
        """
        return Label(name, self)

    def distinct(self) -> Distinct[_T]:
        """``DISTINCT self``, inside an aggregate: ``func.count(Order.customer_id.distinct())``."""
        from .expressions import Distinct

        return Distinct(self)

    @property
    def result_name(self) -> str:
        """The key of the expression's column in result rows, when it has no label."""
        return "value"


class BindParameter(ColumnElement[_T]):
    """A value sent to the database as a bound parameter, never spliced into SQL.

    Attributes:
        value: The Python value sent to the database.
        type: How the value is converted for the driver.
        name: The parameter's name, when it has one (``None`` for a positional value).
    """

    __slots__ = ("value", "type", "name")
    visit_name = "bind"

    def __init__(self, value: Any, type_: sqltypes.TypeEngine, name: str | None = None) -> None:
        self.value = value
        self.type = type_
        self.name = name

    def _ck(self, binds: list[BindParameter]) -> Any:
        binds.append(self)
        return ("b", self.type)


def literal(value: _T, type_: Any = None) -> BindParameter[_T]:
    """A Python value as a SQL expression (a bound parameter), e.g. ``select(literal(1))``.

    ``type_`` (an ``aiouow.types`` type, class or Python type) says how the value
    is sent and read back; by default it follows the value's Python type.
    """
    if isinstance(value, ClauseElement) or hasattr(value, "__clause_element__"):
        raise ArgumentError(f"literal() takes a Python value, not the SQL expression {value!r}")
    if type_ is None:
        t = sqltypes.type_for_value(value)
    elif isinstance(type_, sqltypes.TypeEngine):
        t = type_
    elif isinstance(type_, type) and issubclass(type_, sqltypes.TypeEngine):
        t = type_()
    else:
        found = sqltypes.from_python(type_)
        if found is None:
            raise ArgumentError(f"literal({value!r}, type_={type_!r}): not a column type; pass an aiouow.types type")
        t = found
    return BindParameter(value, t)


class ExpandingBind(BindParameter[Any]):
    """A list of values for ``IN``; its length is part of the statement's shape."""

    __slots__ = ()
    visit_name = "expanding_bind"

    def _ck(self, binds: list[BindParameter]) -> Any:
        binds.append(self)
        # the length joins the key only for dialects that spell one placeholder per value
        # (Dialect.compile adds it); PostgreSQL sends the list as one array
        return ("xb", self.type)


class Null(ColumnElement[None]):
    """SQL ``NULL``, as ``null()`` returns it and ``== None`` compares with it."""
    __slots__ = ()
    visit_name = "null"

    def _ck(self, binds: list[BindParameter]) -> Any:
        return "NULL"


NULL = Null()
_BOOLEAN = sqltypes.Boolean()
_DIVISION = sqltypes.Numeric()


def _integral(type_: object) -> bool:
    return isinstance(type_, sqltypes.Integer)


class BinaryExpression(ColumnElement[_T]):
    """Two operands and an operator: ``User.id == 1``, ``Order.total * 2``.

    Comparisons are boolean expressions for ``where()``; arithmetic yields a value typed
    after its operands.

    Attributes:
        left: The left operand.
        op: The SQL operator (``"="``, ``"IS"``, ``"LIKE"``, ``"+"`` ...).
        right: The right operand (a plain value is a bound parameter here).
        type: The type of the result.
    """
    __slots__ = ("left", "op", "right", "type")
    visit_name = "binary"

    def __init__(self, left: ClauseElement, op: str, right: ClauseElement, type_: sqltypes.TypeEngine) -> None:
        self.left = left
        self.op = op
        self.right = right
        self.type = type_

    def _ck(self, binds: list[BindParameter]) -> Any:
        return (self.op, self.left._ck(binds), self.right._ck(binds))

    def _tables(self) -> Iterable[Any]:
        yield from self.left._tables()
        yield from self.right._tables()


class UnaryExpression(ColumnElement[_T]):
    """An operator applied to one expression: ``NOT x``, ``-x``, ``x DESC``.

    Attributes:
        element: The operand.
        op: The SQL operator or modifier (``"NOT"``, ``"-"``, ``"DESC"``, ``"ASC"``).
        prefix: Whether the operator comes before the operand (``NOT x``) or after (``x DESC``).
        type: The operand's type.
    """
    __slots__ = ("element", "op", "prefix", "type")
    visit_name = "unary"

    def __init__(self, element: ClauseElement, op: str, prefix: bool = False) -> None:
        self.element = element
        self.op = op
        self.prefix = prefix
        self.type = getattr(element, "type", sqltypes.NULLTYPE)

    def _ck(self, binds: list[BindParameter]) -> Any:
        return ("u", self.op, self.prefix, self.element._ck(binds))

    def _tables(self) -> Iterable[Any]:
        return self.element._tables()

    @property
    def result_name(self) -> str:
        """The operand's result name (``-x`` reads back under the name of ``x``)."""
        return getattr(self.element, "result_name", "value")


class BooleanClauseList(ColumnElement[bool]):
    """Conditions joined by one operator, as ``and_()`` and ``or_()`` build them.

    Nested lists with the same operator are flattened: ``and_(a, and_(b, c))`` is
    ``a AND b AND c``.

    Attributes:
        op: ``"AND"`` or ``"OR"``.
        clauses: The conditions, in order.
    """
    __slots__ = ("op", "clauses")
    visit_name = "boolean_list"
    type = _BOOLEAN

    def __init__(self, op: str, clauses: Sequence[ClauseElement]) -> None:
        self.op = op
        self.clauses = tuple(clauses)

    def _ck(self, binds: list[BindParameter]) -> Any:
        return (self.op, *[c._ck(binds) for c in self.clauses])

    def _tables(self) -> Iterable[Any]:
        for c in self.clauses:
            yield from c._tables()


def _boolean(op: str, clauses: tuple[Any, ...]) -> BooleanClauseList:
    items: list[ClauseElement] = []
    for c in clauses:
        el = coerce(c)
        if isinstance(el, BooleanClauseList) and el.op == op:
            items.extend(el.clauses)
        else:
            items.append(el)
    return BooleanClauseList(op, items)


def and_(*clauses: Any) -> BooleanClauseList:
    """Conditions joined with AND."""
    return _boolean("AND", clauses)


def or_(*clauses: Any) -> BooleanClauseList:
    """Conditions joined with OR."""
    return _boolean("OR", clauses)


def not_(clause: Any) -> UnaryExpression[bool]:
    """``NOT clause``."""
    return UnaryExpression(coerce(clause), "NOT", prefix=True)


class Label(ColumnElement[_T]):
    """An expression under a name, as :meth:`ColumnElement.label` makes it.

    Attributes:
        name: The name of the result column.
        element: The labelled expression.
        type: The expression's type.
    """
    __slots__ = ("name", "element", "type")
    visit_name = "label"

    def __init__(self, name: str, element: ClauseElement) -> None:
        self.name = name
        self.element = element
        self.type = getattr(element, "type", sqltypes.NULLTYPE)

    def _ck(self, binds: list[BindParameter]) -> Any:
        return ("l", self.name, self.element._ck(binds))

    def _tables(self) -> Iterable[Any]:
        return self.element._tables()

    @property
    def result_name(self) -> str:
        """The label's name: the result column is called that."""
        return self.name


class FunctionCall(ColumnElement[Any]):
    """A call of a SQL function, as ``func.<name>(...)`` makes it.

    Its type is inferred from the function and its arguments where that is known
    (``count`` is an integer, ``max``/``min``/``sum``/``coalesce`` keep their argument's type);
    pass ``type_=`` to ``func.<name>()`` otherwise.

    Attributes:
        name: The function's name, as written.
        args: The arguments, as expressions (plain values become bound parameters).
        type: The type of the function's result.
    """
    __slots__ = ("name", "args", "type")
    visit_name = "function"

    def __init__(self, name: str, args: Sequence[Any], type_: sqltypes.TypeEngine | None = None) -> None:
        self.name = name
        self.args = tuple(coerce(a) for a in args)
        if type_ is None:
            lower = name.lower()
            # the first argument with a known type (coalesce(None, x) is typed by x)
            first = next((t for t in (getattr(a, "type", sqltypes.NULLTYPE) for a in self.args)
                          if t.visit_name != "null"), sqltypes.NULLTYPE)
            if lower == "count":
                type_ = sqltypes.Integer()
            elif self.args and lower in _TYPE_PRESERVING:
                type_ = first
            elif lower == "avg" and isinstance(first, sqltypes.Numeric):
                type_ = first  # read at the column's scale, like sum()
            elif lower == "avg" and isinstance(first, (sqltypes.Integer, sqltypes.Float)):
                type_ = _FLOAT  # PostgreSQL's NUMERIC average of integers reads as SQLite's float
            else:
                type_ = _RESULT_TYPES.get(lower, sqltypes.NULLTYPE)
        self.type = type_

    def _ck(self, binds: list[BindParameter]) -> Any:
        return ("f", self.name, self.type, *[a._ck(binds) for a in self.args])

    def over(self, partition_by: Any = None, order_by: Any = None) -> Over[Any]:
        """The function over a window: ``func.rank().over(partition_by=..., order_by=...)``.

        ``func.rank().over(partition_by=Customer.country, order_by=Order.total.desc())``; each
        argument takes one expression or a list.
        """
        from .expressions import Over

        return Over(self, partition_by, order_by)

    def _tables(self) -> Iterable[Any]:
        for a in self.args:
            yield from a._tables()

    @property
    def result_name(self) -> str:
        """The function's name in lower case: ``func.count(x)`` reads back as ``count``."""
        return self.name.lower()


_TYPE_PRESERVING = {"max", "min", "sum", "coalesce", "lower", "upper", "abs", "trim", "round",
                    # window functions that return one of the rows' values
                    "lag", "lead", "first_value", "last_value", "nth_value"}
_FLOAT = sqltypes.Float()

#: functions whose result has one type whatever their arguments: SQLite returns text for them
_RESULT_TYPES: dict[str, sqltypes.TypeEngine] = {
    "date": sqltypes.Date(),
    "datetime": sqltypes.DateTime(),
    "current_date": sqltypes.Date(),
    # ranking window functions (a BIGINT on PostgreSQL)
    "row_number": sqltypes.Integer(),
    "rank": sqltypes.Integer(),
    "dense_rank": sqltypes.Integer(),
    "ntile": sqltypes.Integer(),
    # UTC on SQLite, a TIMESTAMP WITH TIME ZONE on PostgreSQL: aware on both
    "current_timestamp": sqltypes.DateTime(timezone=True),
}


class _FunctionFactory:
    """``func.count(User.id)``, ``func.lower(User.name)``: any SQL function by name."""

    def __getattr__(self, name: str) -> Callable[..., FunctionCall]:
        if name.startswith("__"):
            raise AttributeError(name)

        def make(*args: Any, type_: sqltypes.TypeEngine | None = None) -> FunctionCall:
            return FunctionCall(name, args, type_)

        return make


func = _FunctionFactory()
"""Any SQL function by name: ``func.count(User.id)``, ``func.lower(User.name)``.

Every attribute is a function of that name; calling it gives a :class:`FunctionCall`
whose arguments are expressions or plain values (bound as parameters).
"""


#: a ``:name`` parameter of text() (not ``::cast``, not ``\\:``, not inside a word)
NAMED_PARAM = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")

# whitespace, comments and opening parentheses, one per repetition (no nested quantifier to
# backtrack through), then the statement's first word
_LEADING = re.compile(r"(?:\s|--[^\n]*(?:\n|$)|/\*.*?\*/|\()*(\w+)", re.S)


def leading_keyword(sql: str) -> str:
    """The first word of a SQL statement, lowercased, past comments and parentheses ('' if none)."""
    m = _LEADING.match(sql)
    return m.group(1).lower() if m else ""


class TextClause(ClauseElement):
    """Literal SQL with ``:name`` parameters: ``text("select * from t where id = :id")``.

    Attributes:
        text: The SQL text, with its ``:name`` parameters.
        binds: The values given with :meth:`bindparams`, by parameter name.
    """

    __slots__ = ("text", "binds", "_bound")
    visit_name = "text"

    def __init__(self, text: str, binds: dict[str, Any] | None = None) -> None:
        self.text = text
        self.binds = binds or {}
        self._bound: tuple[BindParameter, ...] | None = None

    def bindparams(self, **values: Any) -> TextClause:
        """A copy with values for the named parameters."""
        return TextClause(self.text, {**self.binds, **values})

    def bound_values(self) -> tuple[BindParameter | str, ...]:
        """Per ``:name`` occurrence, for a text() fragment inside a statement, where its value comes from.

        A bound parameter for a name given to bindparams(), else the name, whose value comes with
        execute()'s params (a whole text() statement takes all its values by name instead).
        """
        bound = self._bound
        if bound is None:
            values = self.binds
            bound = self._bound = tuple(
                BindParameter(values[n], sqltypes.type_for_value(values[n])) if n in values else n
                for n in NAMED_PARAM.findall(self.text))
        return bound

    def _ck(self, binds: list[BindParameter]) -> Any:
        if not self.binds:
            return ("t", self.text)
        # values a fragment inside a statement sends (a text() statement ignores them); which
        # names are bound shapes the SQL's parameters, so it is part of the key
        binds.extend(b for b in self.bound_values() if isinstance(b, BindParameter))
        return ("t", self.text, tuple(sorted(self.binds)))


def text(sql: str) -> TextClause:
    """A literal SQL statement or fragment; values go in ``:name`` parameters."""
    if not isinstance(sql, str):
        raise ArgumentError(f"text() takes a string, not {type(sql).__name__}")
    return TextClause(sql)


class ColumnClause(ColumnElement[_T]):
    """A named column of a table (``Column`` in ``schema.py`` is the real thing)."""

    __slots__ = ()


def next_id() -> int:
    return next(_ids)


def adapt_columns(element: Any, replace: Any) -> Any:
    """``element`` rebuilt with each column ``c`` for which ``replace(c)`` is not None swapped
    for that result (how an expression on a table is moved onto an alias of it).

    Elements with no columns inside come back as they are.
    """
    if isinstance(element, BinaryExpression):
        left, right = adapt_columns(element.left, replace), adapt_columns(element.right, replace)
        if left is element.left and right is element.right:
            return element
        return BinaryExpression(left, element.op, right, element.type)
    if isinstance(element, UnaryExpression):
        inner = adapt_columns(element.element, replace)
        return element if inner is element.element else UnaryExpression(inner, element.op, element.prefix)
    if isinstance(element, BooleanClauseList):
        clauses = [adapt_columns(c, replace) for c in element.clauses]
        if all(a is b for a, b in zip(clauses, element.clauses)):
            return element
        return BooleanClauseList(element.op, clauses)
    if isinstance(element, Label):
        inner = adapt_columns(element.element, replace)
        return element if inner is element.element else Label(element.name, inner)
    if isinstance(element, FunctionCall):
        args = [adapt_columns(a, replace) for a in element.args]
        if all(a is b for a, b in zip(args, element.args)):
            return element
        return FunctionCall(element.name, args, element.type)
    if isinstance(element, (BindParameter, Null, TextClause)):
        return element
    adapt: Callable[[Any], Any] | None = getattr(element, "_adapt", None)
    if adapt is not None:  # the constructs of expressions.py rebuild themselves
        return adapt(replace)
    found = replace(element) if getattr(element, "visit_name", None) == "column" else None
    return element if found is None else found
