"""One SQL compiler; dialects override a handful of hooks.

Compiling walks a statement once and produces a :class:`Compiled`: the SQL
text, where each placeholder's value comes from (an index into the bound
parameters collected by the statement's cache-key walk) and how it is
converted for the driver, plus what the result columns are.  ``compile()``
caches Compiled objects by cache key, so a statement shape is compiled once
per dialect and later executions only walk the key.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from .. import types as sqltypes
from ..exc import ArgumentError, InvalidRequestError
from .cte import CTE
from .elements import (
    NAMED_PARAM,
    BinaryExpression,
    BindParameter,
    BooleanClauseList,
    ClauseElement,
    ExpandingBind,
    FunctionCall,
    Label,
    TextClause,
    UnaryExpression,
)
from .expressions import ExpressionCompiler
from .schema import Column, Table, TableAlias
from .selectable import EntityClause, FromItem, Select
from .subquery import CompoundSelect, ScalarSelect, Subquery, SubqueryColumn, column_names, compound_types

if TYPE_CHECKING:
    from .dml import Delete, Insert, Update

Processor = Callable[[Any], Any] | None

def quote(name: str) -> str:
    """An SQL identifier, double-quoted (embedded quotes doubled): the one spelling of table,
    column, index and constraint names, for statements, DDL and the flush's batch SQL alike."""
    return '"' + name.replace('"', '""') + '"'


def quote_table(table: Any) -> str:
    """A table's name as SQL, schema-qualified when it has a schema (``"music"."albums"``)."""
    schema = table.schema
    return quote(table.name) if schema is None else f"{quote(schema)}.{quote(table.name)}"


def _one_entry_per_cte(items: list[FromItem]) -> Callable[[FromItem], FromItem]:
    """A map from each FROM item to the one FROM entry it stands for.

    A recursive CTE and its anchor (``anchor.union_all(...)``) are one ``WITH`` entry under one
    name, so a statement naming both (``anchor.c.depth`` beside ``tree.c.id``) has one FROM entry
    for them, the completed CTE: listed twice, PostgreSQL refuses the name as given more than
    once and SQLite cross-joins the CTE with itself. Every other item stands for itself."""
    fullest: dict[int, CTE] = {}
    for t in items:
        if isinstance(t, CTE):
            known = fullest.get(id(t._root))
            if known is None or t._completes(known):
                fullest[id(t._root)] = t

    def canon(t: FromItem) -> FromItem:
        if isinstance(t, CTE):
            full = fullest.get(id(t._root))
            # two different completions of one anchor stay apart (visit_cte_from reports them)
            if full is not None and full._completes(t):
                return full
        return t

    return canon


class CompilerDialect(Protocol):
    """What the compiler asks of its dialect (``dialects.base.Dialect`` provides it; sql/ does
    not import dialects/, which build on it)."""

    def bind_processor(self, type_: sqltypes.TypeEngine) -> Processor: ...

    def result_processor(self, type_: sqltypes.TypeEngine) -> Processor: ...

    def computed_result_processor(self, type_: sqltypes.TypeEngine) -> Processor: ...

    def sql_type(self, type_: sqltypes.TypeEngine) -> str: ...

    def array_cast(self, type_: sqltypes.TypeEngine) -> str: ...

    def cast_type(self, type_: sqltypes.TypeEngine) -> str: ...


#: the ANSI "functions" spelled without parentheses
_NILADIC = frozenset({"current_timestamp", "current_date", "current_time"})

#: functions a read may call and still run outside a transaction block (``Compiled.reads_only``):
#: their result depends on their arguments alone.  Any other function may depend on the
#: transaction (``now()`` is its start time on PostgreSQL) or act in it (``pg_advisory_xact_lock``,
#: ``set_config(..., true)``, ``nextval``), so a statement calling one begins the transaction first.
PURE_FUNCTIONS = frozenset({
    "count", "sum", "avg", "min", "max", "total", "group_concat", "string_agg", "array_agg", "json_agg",
    "jsonb_agg", "json_group_array", "bool_and", "bool_or", "every",
    "lower", "upper", "length", "char_length", "octet_length", "trim", "ltrim", "rtrim", "substr",
    "substring", "replace", "concat", "instr", "strpos", "position", "left", "right", "lpad", "rpad",
    "coalesce", "nullif", "ifnull", "greatest", "least", "abs", "round", "floor", "ceil", "ceiling",
    "sign", "mod", "power", "sqrt", "exp", "ln", "log", "cast",
    "row_number", "rank", "dense_rank", "lag", "lead", "first_value", "last_value",
})

_DML_WORD = re.compile(r"\b(?:insert|update|delete|merge)\b", re.I)


class Compiled:
    """The compiled form of one statement shape for one dialect.

    ``params`` entries are ``(bind_index, processor, expand)``; ``text_names``
    replaces them for ``text()`` statements, whose values arrive by name.
    ``items`` describes the result: ``("entity", entity, start, stop)`` or
    ``("column", None, index, index + 1)`` per selected item.

    Attributes:
        sql: The SQL text in the dialect's parameter style.
        params: Per placeholder, where its value comes from: ``(bind_index, processor, expand)``.
        text_names: For a ``text()`` statement, the parameter names, in order (its values arrive by name).
        named: Names of ``text()`` fragment parameters whose values come with ``execute()``'s params.
        names: The result's column names, in order.
        result_procs: ``(column index, converter)`` pairs that turn driver values into Python ones.
        items: What each selected item is: ``("entity", entity, start, stop)`` or
            ``("column", None, index, index + 1)``.
        returns_rows: Whether the statement returns rows (a SELECT, or a statement with RETURNING).
        is_select: Whether it is a SELECT (or a set operation of SELECTs).
        reads_only: Whether it is a plain read (a SELECT with no FOR UPDATE, ``text()`` fragment,
            DML or impure function), which the engine may run before the transaction's BEGIN.
    """

    __slots__ = ("sql", "params", "text_names", "names", "result_procs", "items", "returns_rows",
                 "_row_class", "is_select", "_orm_row_class", "named", "reads_only")

    def __init__(self) -> None:
        self.sql = ""
        self.params: list[tuple[int, Processor, bool]] = []
        self.text_names: list[str] | None = None
        #: names of text() fragment parameters whose values come with execute()'s params
        self.named: list[str] = []
        self.names: list[str] = []
        self.result_procs: tuple[tuple[int, Callable[[Any], Any]], ...] = ()
        self.items: list[tuple[str, Any, int, int]] = []
        self.returns_rows = False
        self.is_select = False
        #: a SELECT that only reads: no FOR UPDATE, no text() fragment, no DML, and no function
        #: outside PURE_FUNCTIONS; the engine may run it before the transaction's BEGIN
        self.reads_only = False
        self._row_class: type | None = None
        self._orm_row_class: type | None = None  # set by the session layer

    def row_class(self) -> type:
        """A tuple subclass whose instances expose columns by name."""
        if self._row_class is None:
            from ..engine.result import make_row_class

            self._row_class = make_row_class(self.names)
        return self._row_class


class Compiler(ExpressionCompiler):
    """Turns statements into SQL.  Dialect subclasses override the hooks."""

    # -- hooks -------------------------------------------------------------
    def placeholder(self, position: int) -> str:
        raise NotImplementedError

    quote = staticmethod(quote)

    def bind_processor(self, type_: sqltypes.TypeEngine) -> Processor:
        return self.dialect.bind_processor(type_)

    def visit_expanding_in(self, left: str, op: str, bind: ExpandingBind) -> str:
        if not bind.value:
            return "1 != 1" if op == "IN" else "1 = 1"
        marks = ", ".join(self._add_param(bind, self.bind_processor(bind.type), expand_index=i)
                          for i in range(len(bind.value)))
        return f"{left} {op} ({marks})"

    def visit_ilike(self, left: str, right: str) -> str:
        return f"lower({left}) LIKE lower({right})"

    def visit_true_division(self, left: str, right: str) -> str:
        """integer / integer without truncation (NUMERIC on PostgreSQL, REAL on SQLite)."""
        return f"{left} / CAST({right} AS NUMERIC)"

    def limit_clause(self, limit: str | None, offset: str | None) -> str:
        out = ""
        if limit is not None:
            out += " LIMIT " + limit
        if offset is not None:
            out += " OFFSET " + offset
        return out

    def for_update_clause(self) -> str:
        return " FOR UPDATE"

    def typed_bind(self, bind: BindParameter) -> str:
        """A bound value whose type the database cannot infer from where it stands
        (``SELECT $1``, ``$1 + $2``); PostgreSQL adds a cast."""
        return self.visit_bind(bind)

    # -- machinery ---------------------------------------------------------
    def __init__(self, dialect: CompilerDialect, binds: list[BindParameter]) -> None:
        self.dialect = dialect
        self._positions = {id(b): i for i, b in enumerate(binds)}
        self.compiled = Compiled()
        self._placeholders: dict[Any, str] = {}
        self._n = 0
        self._depth = 0
        self._in_dml = False
        #: tables of the statements being compiled, outermost first (for correlation)
        self._enclosing: list[set[FromItem]] = []
        #: while ORDER BY compiles: the labels of that SELECT's column list by name
        self._label_refs: dict[str, Label] | None = None
        #: names of anonymous subqueries, given in order of appearance
        self._anon: dict[int, str] = {}
        #: names of anonymous aliases by table name, then by alias (its marker)
        self._alias_names: dict[str, dict[int, str]] = {}
        #: set while the next SELECT compiles as a subquery in FROM: every column gets a name
        self._name_columns = False
        #: set while a set operation's first SELECT compiles: the result columns' types
        self._column_types: list[sqltypes.TypeEngine] | None = None
        self._binds = binds
        #: the CTEs a statement refers to, by their anchor, in the order WITH lists them
        self._ctes: dict[int, CTE] = {}
        #: set on the pass that renders WITH: every CTE is known, a reference is its name only
        self._ctes_known = False
        #: something in the statement may act in, or depend on, its transaction (see PURE_FUNCTIONS)
        self._acts = False

    def _add_param(self, bind: BindParameter, proc: Processor, expand_index: int = -1) -> str:
        index = self._positions[id(bind)]
        return self._placeholder((index, expand_index), (index, proc, expand_index))

    def _add_named(self, name: str) -> str:
        """A parameter whose value comes by name with execute()'s params (expand marker -3)."""
        named = self.compiled.named
        if name not in named:
            named.append(name)
        return self._placeholder(("named", name), (named.index(name), None, -3))

    def _placeholder(self, slot: tuple[Any, Any], param: tuple[int, Processor, int]) -> str:
        """The mark of one parameter; a dialect that reuses placeholders ($n) sends a value once."""
        existing = self._placeholders.get(slot)
        if existing is not None and self.reuses_placeholders:
            return existing
        self._n += 1
        mark = self.placeholder(self._n)
        self._placeholders[slot] = mark
        self.compiled.params.append(param)  # type: ignore[arg-type]
        return mark

    reuses_placeholders = False

    def process(self, stmt: ClauseElement) -> Compiled:
        if isinstance(stmt, TextClause):
            self.compiled.sql = self._text_statement(stmt)
            return self.compiled
        self.compiled.sql = stmt._compile(self)
        compiled = self._with_statement(stmt) if self._ctes and not self._ctes_known else self.compiled
        sql = compiled.sql
        compiled.reads_only = (compiled.is_select and not self._acts and not self._in_dml
                               and (sql.startswith("SELECT") or _DML_WORD.search(sql) is None))
        return compiled

    # -- expressions -------------------------------------------------------
    def visit_column(self, col: Column) -> str:
        table = col.table
        if isinstance(table, TableAlias) and table._marker is not None:
            return f"{self.quote(self._alias_name(table))}.{self.quote(col.name)}"
        return f"{quote_table(table)}.{self.quote(col.name)}"

    def visit_bind(self, bind: BindParameter) -> str:
        return self._add_param(bind, self.bind_processor(bind.type))

    def visit_expanding_bind(self, bind: ExpandingBind) -> str:
        raise ArgumentError("a list of values can only be used with in_() / not_in()")

    def visit_null(self, _: Any) -> str:
        return "NULL"

    def visit_star(self, _: Any) -> str:
        return "*"

    def _operand(self, el: ClauseElement) -> str:
        sql = el._compile(self)
        if isinstance(el, (BinaryExpression, BooleanClauseList, Select, CompoundSelect)) or (
            isinstance(el, UnaryExpression) and el.prefix and el.op != "-"
        ):
            return f"({sql})"
        return sql

    def visit_binary(self, b: BinaryExpression) -> str:
        if _bare_bind(b.left) and _bare_bind(b.right):
            # neither side tells the database the other's type
            left, right = self.typed_bind(b.left), self.typed_bind(b.right)  # type: ignore[arg-type]
        else:
            left = self._operand(b.left)
            if isinstance(b.right, ExpandingBind):
                return self.visit_expanding_in(left, b.op, b.right)
            right = self._operand(b.right)
        if b.op == "ILIKE":
            return self.visit_ilike(left, right)
        if b.op == "+" and isinstance(getattr(b.left, "type", None), sqltypes.String):
            return f"{left} || {right}"  # string concatenation, as in SQLAlchemy
        if b.op == "TRUEDIV":
            return self.visit_true_division(left, right)
        if b.op == "FLOORDIV":
            return f"FLOOR({left} / {right})"
        return f"{left} {b.op} {right}"

    def visit_unary(self, u: UnaryExpression) -> str:
        # ``-literal(5)``: PostgreSQL cannot choose among the "-" operators for an untyped $1
        el = u.element
        inner = self.typed_bind(el) if u.op == "-" and isinstance(el, BindParameter) and _bare_bind(el) \
            else self._operand(el)
        return f"{u.op} {inner}" if u.prefix else f"{inner} {u.op}"

    def visit_boolean_list(self, b: BooleanClauseList) -> str:
        if not b.clauses:
            return "1 = 1" if b.op == "AND" else "1 != 1"
        # comparisons bind tighter than AND / OR: only nested lists need parentheses
        return f" {b.op} ".join(
            f"({c._compile(self)})" if isinstance(c, BooleanClauseList) else c._compile(self)
            for c in b.clauses
        )

    def visit_label(self, lbl: Label) -> str:
        # "expr AS name" belongs to the column list only (see _result_columns); in ORDER BY a
        # label of the column list is referred to by its name, elsewhere the expression itself
        # stands
        refs = self._label_refs
        if refs is not None:
            own = refs.get(lbl.name)
            if own is not None and (own is lbl or _same_shape_no_values(own.element, lbl.element)):
                return self.quote(lbl.name)
        return self._operand(lbl.element)

    def _named_column_sql(self, item: ClauseElement, name: str) -> str:
        """One column of a subquery's (or CTE's) column list, under the name its ``sq.c``
        column has (see ``subquery.column_names``)."""
        if getattr(item, "visit_name", "") in ("column", "subquery_column") and \
                item.name == name:  # type: ignore[attr-defined]
            return item._compile(self)
        inner = item.element if isinstance(item, Label) else item
        return f"{self._column_sql(inner)} AS {self.quote(name)}"

    def _column_sql(self, item: ClauseElement) -> str:
        """One item of a column list."""
        if isinstance(item, Label):
            inner = item.element
            sql = self.typed_bind(inner) if isinstance(inner, BindParameter) and _bare_bind(inner) \
                else self._operand(inner)
            return f"{sql} AS {self.quote(item.name)}"
        if _bare_bind(item):
            return self.typed_bind(item)  # type: ignore[arg-type]
        return self._operand(item) if isinstance(item, Select) else item._compile(self)

    def visit_function(self, f: FunctionCall) -> str:
        if f.name.lower() not in PURE_FUNCTIONS:
            self._acts = True
        if not f.args:
            name = f.name.lower()
            if name == "count":
                return "count(*)"
            if name in _NILADIC:
                return name.upper()  # SQL keywords, not functions: "current_timestamp()" is an error
        return f"{f.name}({', '.join(a._compile(self) for a in f.args)})"

    def visit_entity(self, e: EntityClause) -> str:
        return ", ".join(self.visit_column(c) for c in e.columns)

    def _text_statement(self, t: TextClause) -> str:
        """A whole text() statement: its values arrive by name at execution."""
        names: list[str] = []

        def repl(m: re.Match[str]) -> str:
            names.append(m.group(1))
            self._n += 1
            return self.placeholder(self._n)

        sql = NAMED_PARAM.sub(repl, t.text)
        self.compiled.text_names = names
        self.compiled.returns_rows = True
        return sql

    def visit_text(self, t: TextClause) -> str:
        # a fragment inside a statement (``where(text("a = :a").bindparams(a=1))``): its values
        # are bound parameters like any other, and the statement stays a statement
        self._acts = True  # literal SQL may call anything
        bound = iter(t.bound_values())

        def repl(m: re.Match[str]) -> str:
            bind = next(bound)
            if isinstance(bind, str):
                return self._add_named(bind)
            return self._add_param(bind, self.bind_processor(bind.type))

        return NAMED_PARAM.sub(repl, t.text)

    # -- statements --------------------------------------------------------
    def _result_columns(self, cols: tuple[ClauseElement, ...]) -> str:
        named, self._name_columns = self._name_columns, False
        types, self._column_types = self._column_types, None
        c = self.compiled
        parts = []
        procs = []
        pos = 0
        # in a subquery or CTE, every column has the name its sq.c column has
        sq_names = iter(column_names(cols)) if named else None
        for item in cols:
            if isinstance(item, EntityClause):
                start = pos
                for col in item.columns:
                    c.names.append(col.key)
                    proc = self.dialect.result_processor(col.type)
                    if proc is not None:
                        procs.append((pos, proc))
                    pos += 1
                c.items.append(("entity", item.entity, start, pos))
                parts.append(self.visit_entity(item) if sq_names is None else ", ".join(
                    self._named_column_sql(col, next(sq_names)[1]) for col in item.columns))
            else:
                c.names.append(getattr(item, "result_name", "value"))
                type_ = getattr(item, "type", sqltypes.NULLTYPE) if types is None else types[pos]
                proc = (self.dialect.result_processor(type_) if isinstance(item, Column)
                        else self.dialect.computed_result_processor(type_))
                if proc is not None:
                    procs.append((pos, proc))
                c.items.append(("column", None, pos, pos + 1))
                pos += 1
                parts.append(self._column_sql(item) if sq_names is None
                             else self._named_column_sql(item, next(sq_names)[1]))
        c.result_procs = tuple(procs)
        c.returns_rows = True
        return ", ".join(parts)

    def visit_select(self, s: Select) -> str:
        self._depth += 1
        try:
            if self._depth == 1 and not self._in_dml:
                return self._select_sql(s)
            # a subquery: its columns are not the statement's result columns
            outer = self.compiled
            self.compiled = Compiled()
            self.compiled.params = outer.params
            self.compiled.named = outer.named
            try:
                return self._select_sql(s)
            finally:
                self.compiled = outer
        finally:
            self._depth -= 1

    def _select_sql(self, s: Select) -> str:
        # known before the column list compiles, so subqueries anywhere in it correlate
        own = set(self._select_tables(s))
        own.update(t for j in s._joins for t in (j.left, j.right) if t is not None)
        self._enclosing.append(own)
        try:
            return self._select_body(s)
        finally:
            self._enclosing.pop()

    def _select_body(self, s: Select) -> str:
        outer_refs, self._label_refs = self._label_refs, None
        try:
            return self._select_parts(s)
        finally:
            self._label_refs = outer_refs

    def _select_parts(self, s: Select) -> str:
        self.compiled.is_select = True
        sql = "SELECT "
        if s._distinct:
            sql += "DISTINCT "
        sql += self._result_columns(s._columns)
        froms = self._from_clause(s)
        if froms:  # a SELECT of expressions only has no FROM (``SELECT lower('A')``)
            sql += " FROM " + froms
        if s._where:
            sql += " WHERE " + self.visit_boolean_list(BooleanClauseList("AND", s._where))
        if s._group_by:
            # GROUP BY repeats a label's expression: PostgreSQL reads a GROUP BY name as an input
            # column first, so a label named like a column would group by that column instead
            sql += " GROUP BY " + ", ".join(g._compile(self) for g in s._group_by)
        if s._having:
            sql += " HAVING " + self.visit_boolean_list(BooleanClauseList("AND", s._having))
        if s._order_by:
            self._label_refs = {c.name: c for c in s._columns if isinstance(c, Label)}
            sql += " ORDER BY " + ", ".join(o._compile(self) for o in s._order_by)
            self._label_refs = None
        if s._limit is not None or s._offset is not None:
            sql += self.limit_clause(
                s._limit._compile(self) if s._limit is not None else None,
                s._offset._compile(self) if s._offset is not None else None,
            )
        if s._for_update:
            self._acts = True
            sql += self.for_update_clause()
        return sql

    def _select_tables(self, s: Select) -> dict[FromItem, None]:
        """Tables a SELECT names outside its joins (select_from, columns, WHERE), in order."""
        tables: dict[FromItem, None] = {}
        for t in s._select_from:
            tables[t] = None
        for c in s._columns:
            for t in c._tables():
                tables[t] = None
        for w in s._where:
            for t in w._tables():
                tables[t] = None
        return tables

    def _from_clause(self, s: Select) -> str:
        canon = _one_entry_per_cte([*self._select_tables(s), *(t for j in s._joins for t in (j.left, j.right)
                                                               if t is not None)])
        tables = {canon(t): None for t in self._select_tables(s)}
        outer = set().union(*self._enclosing[:-1])
        if s._correlate is None:
            outer = set()
        elif s._correlate:
            outer &= set(s._correlate)
        if outer:
            # a subquery correlates: a table of an enclosing statement it refers to
            # (``WHERE posts.author_id = users.id``) is the outer row, not a new FROM entry;
            # as in SQLAlchemy, only while the subquery keeps a FROM of its own. A subquery with
            # select_from() correlates too (``select(func.count()).select_from(Post).where(
            # Post.author_id == User.id)``): left in its FROM, users would count every post.
            inner = {t: None for t in tables if t not in outer}
            if inner:
                tables = inner
            elif len(tables) > 1 and s._correlate == ():
                # every table would be the enclosing row's: SQLAlchemy refuses it; keeping them all
                # instead cross-joins them again inside and silently drops the correlation
                names = ", ".join(repr(getattr(t, "name", None) or "anon") for t in tables)
                raise InvalidRequestError(
                    f"a subquery names only tables of the enclosing statement ({names}), so auto-"
                    f"correlation leaves it no FROM of its own: for the subquery's own rows of one of "
                    f"them, select from an alias (o2 = aliased(Order)); or say which tables are the "
                    f"enclosing row's with .correlate(...), .correlate(None) for none"
                )
        if not s._joins:
            return ", ".join(self._from_item(t) for t in tables)
        first = s._joins[0]
        head = canon(first.left) if first.left is not None else None
        if head is None:
            joined = {canon(j.right) for j in s._joins}
            head = next((t for t in tables if t not in joined), None)
            if head is None:
                raise ArgumentError("cannot tell the left side of the JOIN; use select_from()")
        # the FROM entries outside the JOIN chain come first in the text, so they compile first:
        # SQLite's "?" placeholders take their values in the order they are compiled
        in_chain = {head, *(canon(j.right) for j in s._joins)}
        others = [self._from_item(t) for t in tables if t not in in_chain]
        chain = self._from_item(head)
        in_chain = {head}
        for j in s._joins:
            if canon(j.right) in in_chain:
                # the database would refuse it with "ambiguous column name" (or not at all, silently
                # joining the wrong rows): say what is wrong and what to do instead
                raise ArgumentError(
                    f"the JOIN reaches table {j.right.name!r} a second time (a self-referential "
                    f"relationship?); joining one table twice needs an alias, which this statement "
                    f"cannot express: load the relationship with selectinload()/session.load(), or "
                    f"join the association table only and filter on its columns"
                )
            kind = " LEFT OUTER JOIN " if j.isouter else " JOIN "
            right = canon(j.right)
            chain += f"{kind}{self._from_item(right)} ON {j.onclause._compile(self)}"
            in_chain.add(right)
        return ", ".join([*others, chain])

    def _from_item(self, t: FromItem) -> str:
        if isinstance(t, CTE):
            return self.visit_cte_from(t)
        if isinstance(t, Subquery):
            return self.visit_subquery_from(t)
        if isinstance(t, TableAlias):
            return f"{quote_table(t.element)} AS {self.quote(self._alias_name(t))}"
        return quote_table(t)

    # -- subqueries and set operations ---------------------------------------
    def _subquery_name(self, sq: Subquery) -> str:
        if sq.name is not None:
            return sq.name
        key = id(sq._root) if isinstance(sq, CTE) else id(sq)
        name = self._anon.get(key)
        if name is None:
            name = self._anon[key] = f"anon_{len(self._anon) + 1}"
        return name

    def _alias_name(self, t: TableAlias) -> str:
        """An alias's name in SQL; an anonymous one's is ``<table>_alias_<n>`` by appearance."""
        if t._marker is None:
            return t.name
        names = self._alias_names.setdefault(t.element.name, {})
        name = names.get(id(t._marker))
        if name is None:
            name = names[id(t._marker)] = f"{t.element.name}_alias_{len(names) + 1}"
        return name

    def visit_subquery_column(self, col: SubqueryColumn) -> str:
        return f"{self.quote(self._subquery_name(col.table))}.{self.quote(col.name)}"

    def visit_subquery_from(self, sq: Subquery) -> str:
        # a subquery in FROM is not correlated (that would need LATERAL): it starts afresh
        enclosing, self._enclosing = self._enclosing, []
        self._name_columns = True
        try:
            inner = self._nested(sq.element)
        finally:
            self._enclosing = enclosing
            self._name_columns = False
        return f"({inner}) AS {self.quote(self._subquery_name(sq))}"

    def visit_scalar_select(self, s: ScalarSelect[Any]) -> str:
        return f"({self.visit_select(s.element)})"

    def _nested(self, stmt: Select | CompoundSelect) -> str:
        """A statement inside another: its columns are not the statement's result columns."""
        outer = self.compiled
        self.compiled = Compiled()
        self.compiled.params = outer.params
        self.compiled.named = outer.named
        self._depth += 1
        try:
            return self._select_sql(stmt) if isinstance(stmt, Select) else self._compound_sql(stmt)
        finally:
            self._depth -= 1
            self.compiled = outer

    def compound_member(self, sql: str, s: Select | CompoundSelect) -> str:
        """One SELECT of a UNION / INTERSECT / EXCEPT (SQLite takes no parentheses there)."""
        return f"({sql})"

    def visit_compound_select(self, cs: CompoundSelect) -> str:
        if self._depth == 0 and not self._in_dml:
            self._depth += 1
            try:
                return self._compound_sql(cs)
            finally:
                self._depth -= 1
        return self._nested(cs)

    def _compound_sql(self, cs: CompoundSelect) -> str:
        named = self._name_columns
        parts = []
        for i, s in enumerate(cs.selects):
            # the first SELECT gives the result columns (and their names, in a subquery)
            self._name_columns = named and i == 0
            if i == 0:
                if self._column_types is None:  # the outermost set operation's
                    self._column_types = compound_types(cs)
                sql = self._select_sql(s) if isinstance(s, Select) else self._compound_sql(s)
            else:
                sql = self._nested(s)
            parts.append(self.compound_member(sql, s))
        self._name_columns = False
        sql = f" {cs.keyword} ".join(parts)
        if cs._order_by:
            # a column the first SELECT labels is ordered by by its label: the result has no other name
            first = cs.selects[0]
            while isinstance(first, CompoundSelect):
                first = first.selects[0]
            labels = {id(lbl.element): lbl.name for lbl in first._columns if isinstance(lbl, Label)}
            sql += " ORDER BY " + ", ".join(self._result_ref(o, labels) for o in cs._order_by)
        if cs._limit is not None or cs._offset is not None:
            sql += self.limit_clause(
                cs._limit._compile(self) if cs._limit is not None else None,
                cs._offset._compile(self) if cs._offset is not None else None,
            )
        return sql

    def _result_ref(self, el: ClauseElement, labels: dict[int, str]) -> str:
        """An ORDER BY item of a set operation: the result column's name, not a table's column."""
        if isinstance(el, UnaryExpression) and not el.prefix:
            return f"{self._result_ref(el.element, labels)} {el.op}"
        if isinstance(el, Label):
            return self.quote(el.name)
        if getattr(el, "visit_name", "") in ("column", "subquery_column"):
            return self.quote(labels.get(id(el)) or el.name)  # type: ignore[attr-defined]
        return el._compile(self)

    # -- common table expressions --------------------------------------------
    def visit_cte_from(self, cte: CTE) -> str:
        name = self.quote(self._subquery_name(cte))
        if self._ctes_known:
            return name
        key = id(cte._root)
        known = self._ctes.get(key)
        if known is not None and not cte._completes(known):
            return name
        # a first pass finds the CTEs (and the CTEs theirs refer to, which WITH lists before
        # them); a second renders WITH ahead of the statement, so that the placeholders come in
        # text order on both dialects. Of an anchor and its union_all(), WITH holds the latter.
        self._ctes[key] = cte
        self._cte_body(cte)
        del self._ctes[key]
        if cte.name is not None and any(c.name == cte.name for c in self._ctes.values()):
            raise ArgumentError(f"two different CTEs are named {cte.name!r} in one statement")
        self._ctes[key] = cte
        return name

    def _cte_body(self, cte: CTE) -> str:
        # a CTE's SELECT starts afresh, as a subquery in FROM does: nothing to correlate to
        enclosing, self._enclosing = self._enclosing, []
        self._name_columns = True
        try:
            return self._nested(cte.element)
        finally:
            self._enclosing = enclosing
            self._name_columns = False

    def _with_statement(self, stmt: ClauseElement) -> Compiled:
        again = type(self)(self.dialect, self._binds)
        again._ctes = self._ctes
        again._ctes_known = True
        again._in_dml = False
        entries = []
        for cte in self._ctes.values():
            cols = ", ".join(self.quote(c.name) for c in cte.columns)
            entries.append(f"{self.quote(again._subquery_name(cte))}({cols}) AS ({again._cte_body(cte)})")
        recursive = any(c.recursive for c in self._ctes.values())
        head = ("WITH RECURSIVE " if recursive else "WITH ") + ", ".join(entries) + " "
        again.compiled.sql = head + stmt._compile(again)
        self._acts = self._acts or again._acts
        self._in_dml = self._in_dml or again._in_dml
        return again.compiled

    def _returning(self, cols: tuple[ClauseElement, ...]) -> str:
        if not cols:
            return ""
        return " RETURNING " + self._result_columns(cols)

    def visit_insert(self, stmt: Insert) -> str:
        self._in_dml = True
        table = stmt.table
        sql = f"INSERT INTO {quote_table(table)}"
        if not stmt._rows:
            sql += self.default_values()
        else:
            cols = [c for c, _ in stmt._rows[0]]
            sql += " (" + ", ".join(self.quote(c.name) for c in cols) + ") VALUES "
            sql += ", ".join(
                "(" + ", ".join(v._compile(self) for _, v in row) + ")" for row in stmt._rows
            )
        return sql + self._returning(stmt._returning)

    def default_values(self) -> str:
        return " DEFAULT VALUES"

    def visit_update(self, stmt: Update) -> str:
        self._in_dml = True
        self._enclosing.append({stmt.table})
        if not stmt._values:
            raise ArgumentError("update() needs .values(...)")
        sets = ", ".join(f"{self.quote(c.name)} = {v._compile(self)}" for c, v in stmt._values)
        sql = f"UPDATE {quote_table(stmt.table)} SET {sets}"
        if stmt._where:
            sql += " WHERE " + self.visit_boolean_list(BooleanClauseList("AND", stmt._where))
        return sql + self._returning(stmt._returning)

    def visit_delete(self, stmt: Delete) -> str:
        self._in_dml = True
        self._enclosing.append({stmt.table})
        sql = f"DELETE FROM {quote_table(stmt.table)}"
        if stmt._where:
            sql += " WHERE " + self.visit_boolean_list(BooleanClauseList("AND", stmt._where))
        return sql + self._returning(stmt._returning)

    def visit_table(self, t: Table) -> str:
        return quote_table(t)


def _same_shape_no_values(a: ClauseElement, b: ClauseElement) -> bool:
    """Whether two expressions are the same one: same shape and no bound values (which the cache
    key leaves out: ``case(..., "a")`` and ``case(..., "b")`` have one shape)."""
    binds: list[BindParameter] = []
    return a._ck(binds) == b._ck(binds) and not binds


def _bare_bind(el: ClauseElement) -> bool:
    return isinstance(el, BindParameter) and not isinstance(el, ExpandingBind)


class StatementCache:
    """Compiled statements by cache key, evicting the oldest past ``size``."""

    __slots__ = ("_data", "size", "compilations")

    def __init__(self, size: int = 1000) -> None:
        self._data: dict[Any, Compiled] = {}
        self.size = size
        #: how many statements were compiled (cache misses); tests read it
        self.compilations = 0

    def get(self, key: Any) -> Compiled | None:
        return self._data.get(key)

    def put(self, key: Any, compiled: Compiled) -> None:
        data = self._data
        if len(data) >= self.size:
            del data[next(iter(data))]
        data[key] = compiled
        self.compilations += 1

    def clear(self) -> None:
        self._data.clear()
