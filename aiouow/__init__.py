"""aiouow: an asyncio ORM session engine with no hidden I/O."""

from . import exc, types
from .engine import URL, AsyncResult, Connection, Engine, Result, Row, ScalarResult, create_engine
from .inspection import inspect
from .loading.options import joinedload, noload, raiseload, selectinload
from .mapping import Mapped, Mapper, Model, Relationship, column, relationship
from .session import AsyncSession, NestedTransaction, SessionTransaction, scoped_session, sessionmaker
from .sql import (
    Column,
    ForeignKey,
    Index,
    MetaData,
    Table,
    and_,
    delete,
    exists,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    text,
    update,
)

__version__ = "0.1.0"

__all__ = [
    "AsyncResult",
    "AsyncSession",
    "Column",
    "Connection",
    "Engine",
    "ForeignKey",
    "Index",
    "Mapped",
    "Mapper",
    "MetaData",
    "Model",
    "NestedTransaction",
    "Relationship",
    "Result",
    "Row",
    "ScalarResult",
    "SessionTransaction",
    "Table",
    "URL",
    "and_",
    "column",
    "create_engine",
    "delete",
    "exc",
    "exists",
    "func",
    "insert",
    "inspect",
    "joinedload",
    "literal",
    "noload",
    "not_",
    "or_",
    "raiseload",
    "relationship",
    "scoped_session",
    "select",
    "selectinload",
    "sessionmaker",
    "text",
    "types",
    "update",
]
