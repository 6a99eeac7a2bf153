"""The SQL expression layer: elements, schema, statements and the compiler."""

from .dml import Delete, Insert, Update, delete, insert, update
from .elements import and_, func, literal, not_, or_, text
from .schema import Column, ForeignKey, Index, MetaData, Table
from .selectable import Select, exists, select
from .subquery import CompoundSelect, ScalarSelect, Subquery, except_, intersect, union, union_all

__all__ = [
    "Column", "CompoundSelect", "Delete", "ForeignKey", "Index", "Insert", "MetaData", "ScalarSelect", "Select",
    "Subquery", "Table", "Update", "and_", "delete", "except_", "exists", "func", "insert", "intersect", "literal",
    "not_", "or_", "select", "text", "union", "union_all", "update",
]
