"""The SQL expression layer: elements, schema, statements and the compiler."""

from .dml import Delete, Insert, Update, delete, insert, update
from .elements import and_, func, literal, not_, or_, text
from .expressions import case, cast, distinct, extract, false, null, true
from .schema import Column, ForeignKey, Index, MetaData, Table
from .selectable import Select, exists, select

__all__ = [
    "Column", "Delete", "ForeignKey", "Index", "Insert", "MetaData", "Select", "Table", "Update",
    "and_", "case", "cast", "delete", "distinct", "exists", "extract", "false", "func", "insert", "literal",
    "not_", "null", "or_", "select", "text", "true", "update",
]
