"""Schema migrations with Alembic (the ``aiouow[alembic]`` extra).

Alembic works on SQLAlchemy's ``MetaData``; aiouow has its own. :func:`to_sqlalchemy` builds the
SQLAlchemy equivalent of an aiouow metadata for one backend: every column carries the exact type
text that ``create_all`` writes there (``DATETIME_TEXT`` on SQLite, ``BIGSERIAL`` for a generated
key on PostgreSQL, ...), so that a migrated database and a ``create_all`` one are the same
schema. :func:`run_migrations` is the whole of a migration environment's ``env.py``::

    from aiouow.alembic import run_migrations
    from myapp.models import Model

    run_migrations(Model.metadata)

It reads the database URL from ``AIOUOW_DATABASE_URL`` or ``sqlalchemy.url`` in ``alembic.ini``
(an aiouow URL: ``sqlite:///app.db``, ``postgresql://...``), and runs online through SQLAlchemy's
asyncio engine on the same drivers (asyncpg, aiosqlite) or offline (``alembic upgrade --sql``).
On SQLite it renders changes as batch operations (copy and move the table), since SQLite's
``ALTER TABLE`` cannot add a foreign key. SQLAlchemy and Alembic are used here only: aiouow's
sessions never import them.

What there is to migrate is what aiouow declares: tables (PostgreSQL schemas included), columns
with their types and nullability, primary keys, foreign keys with ``ondelete`` / ``onupdate``,
``unique=True`` columns (constraint ``uq_<table>_<column>``) and ``index=True`` columns (index
``ix_<table>_<column>``). Defaults are applied by aiouow in Python, so none lives in the
database; an ``Enum`` column is a ``VARCHAR`` of its longest member name, on both backends.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
from typing import TYPE_CHECKING, Any

try:
    import sqlalchemy as sa
    from sqlalchemy.types import UserDefinedType
except ImportError as err:  # pragma: no cover - depends on the installed extras
    raise ImportError("aiouow.alembic needs the 'alembic' extra: pip install 'aiouow[alembic]'") from err

from .engine.url import make_url
from .exc import ArgumentError
from .sql.schema import MetaData, Table

if TYPE_CHECKING:
    from .dialects.base import Dialect

__all__ = ["DDLType", "compare_type", "render_item", "run_migrations", "sqlalchemy_url", "to_sqlalchemy"]


class DDLType(UserDefinedType[Any]):
    """A column type that renders exactly as aiouow's DDL writes it (``DDLType("NUMERIC(10, 2)")``).

    Alembic writes it into revision scripts as ``aiouow.alembic.DDLType('...')``.

    Attributes:
        ddl: The type as the DDL spells it (``"NUMERIC(10, 2)"``).
    """

    cache_ok = True
    """SQLAlchemy may cache statements that use the type: it is fully described by ``ddl``."""

    def __init__(self, ddl: str) -> None:
        self.ddl = ddl

    def get_col_spec(self, **kw: Any) -> str:
        """The DDL text, as given: SQLAlchemy's hook for a user-defined type's column spec."""
        return self.ddl

    def __repr__(self) -> str:
        return f"DDLType({self.ddl!r})"


def _register_sqlite_names() -> None:
    """Teach SQLAlchemy's SQLite reflection aiouow's own type names. Otherwise it reads
    ``DATETIME_TEXT`` back as ``TEXT``, and a batch operation (which copies the table from what it
    reflects) would rewrite the column types of every table it touches."""
    from sqlalchemy.dialects.sqlite.base import SQLiteDialect

    from .dialects.sqlite import SQLiteDialect as AiouowSQLite

    for name in AiouowSQLite.type_names.values():
        if name and name.isidentifier() and name not in SQLiteDialect.ischema_names:
            SQLiteDialect.ischema_names[name] = functools.partial(DDLType, name)  # type: ignore[assignment]


_register_sqlite_names()


def _dialect(backend: str) -> Dialect:
    if backend == "sqlite":
        from .dialects.sqlite import SQLiteDialect

        return SQLiteDialect()
    if backend == "postgresql":
        from .dialects.postgresql import PGDialect

        return PGDialect()
    raise ArgumentError(f"to_sqlalchemy(): backend must be 'sqlite' or 'postgresql', not {backend!r}")


def to_sqlalchemy(metadata: MetaData, backend: str) -> sa.MetaData:
    """The SQLAlchemy ``MetaData`` equal to ``metadata`` as ``create_all`` makes it on ``backend``.

    ``backend`` is ``"sqlite"`` or ``"postgresql"``.
    """
    if not isinstance(metadata, MetaData):
        raise ArgumentError(f"to_sqlalchemy(): expected an aiouow MetaData (Model.metadata), not {metadata!r}")
    dialect = _dialect(backend)
    out = sa.MetaData()
    for table in metadata.sorted_tables():
        dialect.ddl._check_schema(table)
        _table(out, table, dialect)
    return out


def _table(out: sa.MetaData, table: Table, dialect: Dialect) -> sa.Table:
    items: list[Any] = []
    for col in table.columns:
        # named as PostgreSQL names an unnamed one, so that a revision can drop what it created
        fks = [sa.ForeignKey(f"{fk.column.table.fullname}.{fk.column.name}", ondelete=fk.ondelete,
                             onupdate=fk.onupdate, name=f"{table.name}_{col.name}_fkey") for fk in col.foreign_keys]
        items.append(sa.Column(col.name, DDLType(dialect.type_ddl(col, table)), *fks,
                               primary_key=col.primary_key, nullable=col.nullable))
    for col in table.columns:
        if col.unique:
            items.append(sa.UniqueConstraint(col.name, name=f"uq_{table.name}_{col.name}"))
    for ix in table.indexes:
        items.append(sa.Index(ix.name, *(c.name for c in ix.columns), unique=ix.unique))
    return sa.Table(table.name, out, *items, schema=table.schema)


def sqlalchemy_url(url: str) -> str:
    """The SQLAlchemy asyncio URL of an aiouow URL.

    ``postgresql://u@h/db`` -> ``postgresql+asyncpg://u@h/db``, ``sqlite:///app.db`` ->
    ``sqlite+aiosqlite:///app.db``.
    """
    u = make_url(url)
    rest = u.raw.split("://", 1)[1]
    return f"{'sqlite+aiosqlite' if u.backend == 'sqlite' else 'postgresql+asyncpg'}://{rest}"


_SERIALS = {"SERIAL": "INTEGER", "BIGSERIAL": "BIGINT", "SMALLSERIAL": "SMALLINT"}


def _normal(type_text: str) -> str:
    text = re.sub(r"\s+", " ", type_text.upper().strip())
    text = re.sub(r"\s*,\s*", ", ", text)
    text = re.sub(r"\s*\(\s*", "(", text).replace(" )", ")")
    return _SERIALS.get(text, text)


def compare_type(context: Any, inspected_column: Any, metadata_column: Any, inspected_type: Any,
                 metadata_type: Any) -> bool | None:
    """Alembic's ``compare_type`` hook: whether a column's type changed, compared as DDL text.

    On SQLite the declared type text comes from ``PRAGMA table_info`` (SQLAlchemy reads
    ``DATETIME_TEXT`` back as ``TEXT``); on PostgreSQL from the reflected type.
    """
    if not isinstance(metadata_type, DDLType):
        return None  # a column of another metadata: Alembic's own comparison
    dialect = context.dialect
    if dialect.name == "sqlite":
        declared = _sqlite_declared(context.connection, inspected_column.table.name, inspected_column.name)
        if declared is None:
            return None
    else:
        declared = inspected_type.compile(dialect=dialect)
        if declared.startswith("VARCHAR") and metadata_type.ddl.startswith("VARCHAR") and "(" not in declared:
            declared = "VARCHAR"
    return _normal(declared) != _normal(metadata_type.ddl)


def _sqlite_declared(connection: Any, table: str, column: str) -> str | None:
    quoted = table.replace('"', '""')
    for row in connection.exec_driver_sql(f'PRAGMA table_info("{quoted}")'):
        if row[1] == column:
            return str(row[2])
    return None


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Alembic's ``render_item`` hook: write a :class:`DDLType` into a revision script.

    The script gets the import it needs; anything else is left to Alembic.
    """
    if type_ == "type" and isinstance(obj, DDLType):
        autogen_context.imports.add("from aiouow.alembic import DDLType")
        return repr(obj)
    return False


def run_migrations(metadata: MetaData, *, url: str | None = None, **configure: Any) -> None:
    """Run Alembic's migrations for ``metadata``: the body of ``env.py``.

    ``url`` (else ``AIOUOW_DATABASE_URL``, else ``sqlalchemy.url`` of the Alembic config) is an
    aiouow URL. Further keywords go to ``context.configure()`` (``include_object=...``,
    ``compare_server_default=...``). Online it starts an event loop of its own: from async code,
    run Alembic's commands in a thread (``await asyncio.to_thread(command.upgrade, cfg, "head")``).
    """
    from alembic import context

    config = context.config
    url = url or os.environ.get("AIOUOW_DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise ArgumentError("run_migrations(): no database URL; set AIOUOW_DATABASE_URL, sqlalchemy.url "
                            "in alembic.ini, or pass url=")
    backend = make_url(url).backend
    target = to_sqlalchemy(metadata, backend)
    schemas = {t.schema for t in target.tables.values() if t.schema is not None}

    def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
        # with schemas, Alembic reflects every schema of the database: look at the metadata's only
        return type_ != "schema" or name is None or name in schemas

    options: dict[str, Any] = {
        "target_metadata": target,
        "compare_type": compare_type,
        "render_item": render_item,
        "render_as_batch": backend == "sqlite",
        "include_schemas": bool(schemas),
        "include_name": include_name,
        **configure,
    }
    if context.is_offline_mode():
        context.configure(url=sqlalchemy_url(url), literal_binds=True, dialect_opts={"paramstyle": "named"},
                          **options)
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_online(sqlalchemy_url(url), options))


async def _run_online(url: str, options: dict[str, Any]) -> None:
    from alembic import context
    from sqlalchemy.ext.asyncio import create_async_engine

    def migrate(connection: Any) -> None:
        context.configure(connection=connection, **options)
        with context.begin_transaction():
            context.run_migrations()

    engine = create_async_engine(url, poolclass=sa.pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(migrate)
            await connection.commit()
    finally:
        await engine.dispose()
