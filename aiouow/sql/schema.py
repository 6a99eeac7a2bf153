"""Tables, columns, foreign keys and the metadata that collects them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .. import types as sqltypes
from ..exc import ArgumentError, NoSuchColumnError
from .elements import BindParameter, ColumnElement, next_id

if TYPE_CHECKING:
    from ..engine import Engine


class ForeignKey:
    """A reference from a column to ``"table.column"`` (or a ``Column``).

    Attributes:
        target: The referenced column, as given: ``"table.column"``, ``"schema.table.column"``
            or a ``Column``.
        ondelete: The ``ON DELETE`` action (upper case: ``"CASCADE"``, ``"SET NULL"`` ...) or ``None``.
        onupdate: The ``ON UPDATE`` action, likewise.
        parent: The column holding the foreign key, once it is given to one.
    """

    __slots__ = ("target", "ondelete", "onupdate", "parent", "_column")

    def __init__(self, target: str | Column, *, ondelete: str | None = None, onupdate: str | None = None) -> None:
        if isinstance(target, str) and target.count(".") not in (1, 2):
            raise ArgumentError(f"ForeignKey({target!r}): expected 'table.column' or 'schema.table.column'")
        self.target = target
        self.ondelete = _check_action(ondelete, "ondelete")
        self.onupdate = _check_action(onupdate, "onupdate")
        self.parent: Column | None = None
        self._column: Column | None = target if isinstance(target, Column) else None

    @property
    def column(self) -> Column:
        """The referenced column (resolved through the metadata on first use)."""
        if self._column is None:
            assert self.parent is not None
            table_name, col_name = str(self.target).rsplit(".", 1)
            metadata = self.parent.table.metadata
            table = metadata.tables.get(table_name)
            if table is None:
                raise ArgumentError(
                    f"foreign key {self.parent.table.name}.{self.parent.name} -> {self.target}: "
                    f"no table named {table_name!r} in the metadata"
                )
            # "table.column" names the database column; the Python key is accepted too
            col = next((c for c in table.columns if c.name == col_name), None)
            if col is None:
                col = table.c.get(col_name)
            if col is None:
                raise ArgumentError(
                    f"foreign key {self.parent.table.name}.{self.parent.name} -> {self.target}: "
                    f"table {table_name!r} has no column {col_name!r}"
                )
            self._column = col
        return self._column

    def __repr__(self) -> str:
        return f"ForeignKey({self.target!r})"


_ACTIONS = {"CASCADE", "SET NULL", "SET DEFAULT", "RESTRICT", "NO ACTION"}


def _check_action(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    v = value.upper()
    if v not in _ACTIONS:
        raise ArgumentError(f"ForeignKey({what}={value!r}): expected one of {sorted(_ACTIONS)}")
    return v


class Column(ColumnElement):
    """A table column.

    ``Column(name, type, *foreign_keys, primary_key=..., nullable=..., key=..., ...)``;
    ``name`` is the database's, ``key`` (default: the name) the Python one.  The type may be a
    Python type (``int``) or an ``aiouow.types`` instance.
    ``default`` is the value a core ``insert()`` sends when the column is not
    given; a callable default is called once per inserted row, as in SQLAlchemy.

    Attributes:
        name: The column's name in the database.
        key: The column's name in Python: ``table.c.<key>``, the mapped attribute, the result row's field.
        type: Its column type (an ``aiouow.types`` instance).
        primary_key: Whether it is part of the table's primary key.
        nullable: Whether it accepts NULL (by default: any column that is not part of the primary key).
        unique: Whether it has a UNIQUE constraint of its own.
        index: Whether an index is created on it.
        foreign_keys: Its :class:`ForeignKey` objects.
        autoincrement: Whether the database generates the value: ``"auto"`` (the default) for the
            sole integer primary-key column of a table unless it is a foreign key, ``True`` for it
            even then, ``False`` never.
        table: The :class:`Table` it belongs to.
        default: The Python-side default an INSERT that omits the column sends (a callable is called
            once per row).
        default_is_callable: Whether ``default`` is called for each row rather than sent as it is.
        version: Whether it is the optimistic-concurrency counter of its model (``version=True``).
    """

    __slots__ = (
        "name", "key", "type", "primary_key", "nullable", "unique", "index",
        "foreign_keys", "autoincrement", "table", "_ckid", "default", "default_is_callable", "version",
    )
    visit_name = "column"

    def __init__(
        self,
        name: str,
        type_: Any,
        *args: ForeignKey,
        primary_key: bool = False,
        nullable: bool | None = None,
        unique: bool = False,
        index: bool = False,
        autoincrement: bool | str = "auto",
        default: Any = None,
        version: bool = False,
        key: str | None = None,
    ) -> None:
        self.name = name
        #: the name in Python: ``table.c.<key>``, the mapped attribute, the result row's field
        self.key = name if key is None else key
        self.type = _coerce_type(type_, name)
        self.primary_key = primary_key
        self.nullable = (not primary_key) if nullable is None else nullable
        self.unique = unique
        self.index = index
        self.autoincrement = autoincrement
        self.default = default
        #: the mapping layer clears it for a plain ``column(default=...)`` value
        self.default_is_callable = callable(default)
        self.version = version
        self.foreign_keys: list[ForeignKey] = []
        for fk in args:
            if not isinstance(fk, ForeignKey):
                raise ArgumentError(f"Column({name!r}): unexpected positional argument {fk!r}")
            fk.parent = self
            self.foreign_keys.append(fk)
        self.table: Table = None  # type: ignore[assignment]
        self._ckid = next_id()

    def _ck(self, binds: list[BindParameter]) -> Any:
        return self._ckid

    def _tables(self) -> Iterable[Any]:
        yield self.table

    @property
    def result_name(self) -> str:
        return self.key

    def __repr__(self) -> str:
        t = self.table.name if self.table is not None else "?"
        return f"Column({t}.{self.name}, {self.type!r})"

    def default_value(self) -> Any:
        """The value an INSERT that omits this column sends (a fresh one for a callable)."""
        return self.default() if self.default_is_callable else self.default


def _coerce_type(type_: Any, name: str) -> sqltypes.TypeEngine:
    if isinstance(type_, sqltypes.TypeEngine):
        return type_
    if isinstance(type_, type) and issubclass(type_, sqltypes.TypeEngine):
        return type_()
    t = sqltypes.from_python(type_)
    if t is None:
        raise ArgumentError(f"column {name!r}: no column type for {type_!r}; pass an aiouow.types type")
    return t


_C = TypeVar("_C", bound=ColumnElement[Any])


class ColumnCollection(Generic[_C]):
    r"""Columns by name, in order: ``table.c.name`` or ``table.c["name"]``; a table's hold
    ``Column``\ s, an alias's ``AliasColumn``\ s, a subquery's ``SubqueryColumn``\ s."""

    __slots__ = ("_cols",)
    _cols: dict[str, _C]

    def __init__(self, cols: Iterable[_C]) -> None:
        object.__setattr__(self, "_cols", {c.key: c for c in cols})  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> _C:
        try:
            return self._cols[name]
        except KeyError:
            if name.startswith("__"):
                raise AttributeError(name) from None
            raise NoSuchColumnError(self._unknown(name)) from None

    def __getitem__(self, name: str) -> _C:
        try:
            return self._cols[name]
        except KeyError:
            raise NoSuchColumnError(self._unknown(name)) from None

    def _unknown(self, name: str) -> str:
        table = getattr(next(iter(self._cols.values())), "table", None) if self._cols else None
        if table is None:
            where = "this column collection"
        elif getattr(table, "visit_name", "") in ("subquery", "cte"):
            # an anonymous one has no name until a statement compiles (anon_1, ...)
            kind = "CTE" if table.visit_name == "cte" else "subquery"
            where = f"{kind} {table.name!r}" if table.name is not None else f"the anonymous {kind}"
        else:
            where = f"table {table.name!r}"
        return f"{where} has no column {name!r}; its columns: {', '.join(self._cols) or '(none)'}"

    def get(self, name: str) -> _C | None:
        return self._cols.get(name)

    def __iter__(self) -> Iterator[_C]:
        return iter(self._cols.values())

    def __len__(self) -> int:
        return len(self._cols)

    def __contains__(self, name: object) -> bool:
        return name in self._cols

    def keys(self) -> list[str]:
        return list(self._cols)


class Index:
    """An index over columns of one table.

    Attributes:
        name: The index's name.
        columns: The indexed columns, in order.
        unique: Whether it is a UNIQUE index.
    """

    __slots__ = ("name", "columns", "unique")

    def __init__(self, name: str, *columns: Column, unique: bool = False) -> None:
        self.name = name
        self.columns = columns
        self.unique = unique


class Table:
    """A table: ``Table("post_tags", Column(...), Column(...))``.

    Tables register in ``Model.metadata`` unless another ``metadata=`` is given.

    Attributes:
        name: The table's name.
        schema: The PostgreSQL schema it lives in (``None``: the search path's).
        fullname: ``schema.name``, or ``name``: its key in ``MetaData.tables`` and in ``ForeignKey("s.t.c")``.
        columns: Its columns, in order.
        c: The same columns by key: ``table.c.id`` or ``table.c["id"]``.
        primary_key: Its primary-key columns, in order.
        foreign_keys: Every foreign key of its columns.
        indexes: The indexes of its ``index=True`` columns (``ix_<table>_<column>``).
        metadata: The :class:`MetaData` it is registered in.
        mapper: The mapper of the model mapped to it (``None`` for a plain ``Table``).
    """

    visit_name = "table"
    """Which ``visit_<name>`` method of the compiler turns it into SQL."""

    def __init__(self, name: str, *columns: Column, metadata: MetaData | None = None,
                 schema: str | None = None) -> None:
        if not columns:
            raise ArgumentError(f"Table({name!r}) needs at least one Column")
        self.name = name
        #: a PostgreSQL schema the table lives in (None: the search path's)
        self.schema = schema
        #: ``schema.name`` or ``name``: the key in ``MetaData.tables`` and in ``ForeignKey("s.t.c")``
        self.fullname = name if schema is None else f"{schema}.{name}"
        self.columns: tuple[Column, ...] = columns
        for col in columns:
            if not isinstance(col, Column):
                raise ArgumentError(f"Table({name!r}): {col!r} is not a Column")
            if col.table is not None:
                raise ArgumentError(f"Column {col.name!r} already belongs to table {col.table.name!r}")
            col.table = self
        self.c = ColumnCollection(columns)
        self.primary_key: tuple[Column, ...] = tuple(c for c in columns if c.primary_key)
        self.foreign_keys: list[ForeignKey] = [fk for c in columns for fk in c.foreign_keys]
        self.indexes: list[Index] = [Index(f"ix_{name}_{c.name}", c) for c in columns if c.index]
        self.mapper: Any = None  # set by the mapping layer for model tables
        self._ckid = next_id()
        self.metadata = metadata if metadata is not None else default_metadata
        self.metadata._add(self)

    @property
    def autoincrement_column(self) -> Column | None:
        """The integer primary key the database generates, if there is one."""
        pk = self.primary_key
        if len(pk) != 1:
            return None
        col = pk[0]
        if col.autoincrement is False or not isinstance(col.type, sqltypes.Integer):
            return None
        if col.autoincrement == "auto" and col.foreign_keys:
            return None
        return col

    @property
    def insert_defaults(self) -> tuple[Column, ...]:
        """Columns with a Python-side default, which a core ``insert()`` fills in when not given."""
        found = self.__dict__.get("_insert_defaults")
        if found is None:
            found = self.__dict__["_insert_defaults"] = tuple(c for c in self.columns if c.default is not None)
        return found

    def alias(self, name: str) -> TableAlias:
        """This table under another name in a FROM clause (``FROM users AS users_1``)."""
        return TableAlias(self, name)

    def dependencies(self) -> set[Table]:
        """Tables this one refers to through foreign keys (itself excluded)."""
        out = set()
        for fk in self.foreign_keys:
            t = fk.column.table
            if t is not self:
                out.add(t)
        return out

    def _ck(self, binds: list[BindParameter]) -> Any:
        return self._ckid

    def _tables(self) -> Iterable[Table]:
        yield self

    def __repr__(self) -> str:
        return f"Table({self.fullname!r})"


class AliasColumn(ColumnElement):
    """A column of a :class:`TableAlias`: compiles as ``"alias"."column"``.

    Attributes:
        name: The column's name in the database.
        key: Its name in Python, as for the aliased column.
        type: Its column type.
        table: The :class:`TableAlias` it belongs to.
        element: The column of the aliased table it stands for.
        primary_key: Whether that column is part of the primary key.
        nullable: Whether that column accepts NULL.
    """

    __slots__ = ("name", "key", "type", "table", "element", "primary_key", "nullable")
    visit_name = "column"

    def __init__(self, alias: TableAlias, element: Column) -> None:
        self.name = element.name
        self.key = element.key
        self.type = element.type
        self.table = alias
        self.element = element
        self.primary_key = element.primary_key
        self.nullable = element.nullable

    def _ck(self, binds: list[BindParameter]) -> Any:
        marker = self.table._marker
        if marker is not None:
            binds.append(marker)
            return ("ac", None, self.element._ckid)
        return ("ac", self.table.name, self.element._ckid)

    def _tables(self) -> Iterable[Any]:
        yield self.table

    @property
    def result_name(self) -> str:
        return self.key

    def __repr__(self) -> str:
        return f"AliasColumn({self.table.name}.{self.name})"


class TableAlias:
    """A table under another name, so that one query can name it more than once.

    Its columns (``alias.c.name``) compile as ``"alias"."name"`` and it renders
    as ``"table" AS "alias"`` in FROM / JOIN.  Two aliases of one table with one
    name are the same FROM entry.

    Attributes:
        element: The aliased :class:`Table`.
        name: The alias's name.
        columns: Its columns, in order, as :class:`AliasColumn` objects.
        c: The same columns by key: ``alias.c.name``.
        primary_key: Its primary-key columns.
        mapper: The mapper of the aliased table's model (``None`` for a plain ``Table``).
    """

    __slots__ = ("element", "name", "columns", "c", "primary_key", "mapper", "_by_column", "_ckid", "_marker")
    visit_name = "table_alias"
    """Which ``visit_<name>`` method of the compiler turns it into SQL."""
    schema: str | None = None
    """Always ``None``: an alias is never schema-qualified (its columns are ``"alias"."name"``)."""

    def __init__(self, table: Table, name: str, anonymous: bool = False) -> None:
        if not isinstance(table, Table):
            raise ArgumentError(f"alias: expected a Table, not {table!r}")
        if not isinstance(name, str) or not name:
            raise ArgumentError(f"alias of {table.name!r}: the name must be a non-empty string, not {name!r}")
        self.element = table
        self.name = name
        self.columns: tuple[AliasColumn, ...] = tuple(AliasColumn(self, c) for c in table.columns)
        self.c = ColumnCollection(self.columns)
        self.primary_key = tuple(c for c in self.columns if c.primary_key)
        #: the mapper of the aliased table's model (None for a plain Table)
        self.mapper = table.mapper
        self._by_column = {id(c.element): c for c in self.columns}
        #: the cache key, as a Table's is its _ckid: statements key FROM items by it
        self._ckid = ("alias", table._ckid, None if anonymous else name)
        #: an anonymous alias (``aliased(Model)``) is named in order of appearance when a statement
        #: compiles, as an anonymous subquery is, so that a statement built per call with a new
        #: alias keeps one cache entry; its place in the bound values (never compiled) tells one
        #: alias named twice from two
        self._marker: BindParameter[None] | None = BindParameter(None, sqltypes.NULLTYPE) if anonymous else None

    def corresponding_column(self, col: Any) -> AliasColumn | None:
        """This alias's column for a column of the aliased table (None for any other)."""
        return self._by_column.get(id(col)) if getattr(col, "table", None) is self.element else None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TableAlias) and other.element is self.element and other.name == self.name

    def __hash__(self) -> int:
        return hash((id(self.element), self.name))

    def _ck(self, binds: list[BindParameter]) -> Any:
        if self._marker is not None:
            binds.append(self._marker)
        return self._ckid

    def _tables(self) -> Iterable[Any]:
        yield self

    def __repr__(self) -> str:
        return f"TableAlias({self.element.name!r} AS {self.name!r})"


class MetaData:
    """A collection of tables, created and dropped together.

    Attributes:
        tables: Every table, by full name (``schema.name`` or ``name``).
    """

    def __init__(self) -> None:
        self.tables: dict[str, Table] = {}

    def _add(self, table: Table) -> None:
        if table.fullname in self.tables:
            raise ArgumentError(
                f"a table named {table.fullname!r} is already defined in this metadata; "
                "choose another __tablename__"
            )
        self.tables[table.fullname] = table

    def remove(self, table: Table) -> None:
        """Forget a table (for tests that define throwaway models)."""
        self.tables.pop(table.fullname, None)

    def sorted_tables(self, tables: Iterable[Table] | None = None) -> list[Table]:
        """Tables ordered so that every table comes after the tables it refers to."""
        return sort_tables(self.tables.values() if tables is None else tables)

    async def create_all(self, engine: Engine, tables: Iterable[Table] | None = None) -> None:
        """Create every table (or the given ones) that does not exist yet, with indexes."""
        async with engine.begin() as conn:
            for table in self.sorted_tables(tables):
                for stmt in engine.dialect.ddl.create_table(table):
                    await conn.exec_driver_sql(stmt)

    async def drop_all(self, engine: Engine, tables: Iterable[Table] | None = None) -> None:
        """Drop every table (or the given ones) that exists, dependents first."""
        async with engine.begin() as conn:
            for table in reversed(self.sorted_tables(tables)):
                await conn.exec_driver_sql(engine.dialect.ddl.drop_table(table))


_sorted_cache: dict[frozenset[Table], list[Table]] = {}


def sort_tables(tables: Iterable[Table]) -> list[Table]:
    """Topological order by foreign key; ties keep definition order.

    A cycle between tables cannot be ordered; its tables come last in
    definition order (the database may then refuse the DDL or a flush).
    Every flush asks this for the tables it touches: answers are cached.
    """
    tables = list(tables)
    key = frozenset(tables)
    hit = _sorted_cache.get(key)
    if hit is not None and len(hit) == len(tables):
        return list(hit)
    out = _sort_tables(tables)
    if len(_sorted_cache) > 1000:
        _sorted_cache.clear()
    _sorted_cache[key] = out
    return list(out)


def _sort_tables(tables: list[Table]) -> list[Table]:
    pending = list(tables)
    wanted = set(pending)
    done: list[Table] = []
    placed: set[Table] = set()
    while pending:
        progress = False
        rest = []
        for t in pending:
            if all(d in placed or d not in wanted for d in t.dependencies()):
                done.append(t)
                placed.add(t)
                progress = True
            else:
                rest.append(t)
        pending = rest
        if not progress:
            done.extend(pending)
            break
    return done


default_metadata = MetaData()
