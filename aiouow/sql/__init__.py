"""The SQL expression layer: elements, schema, statements and the compiler."""

from .cte import CTE
from .dml import Delete, Insert, Update, delete, insert, update
from .elements import and_, func, literal, not_, or_, text
from .expressions import case, cast, distinct, extract, false, null, true
from .schema import Column, ForeignKey, Index, MetaData, Table
from .selectable import Select, exists, select
from .subquery import CompoundSelect, ScalarSelect, Subquery, except_, intersect, union, union_all

__all__ = [
    "CTE", "Column", "CompoundSelect", "Delete", "ForeignKey", "Index", "Insert", "MetaData", "ScalarSelect", "Select",
    "Subquery", "Table", "Update", "and_", "case", "cast", "delete", "distinct", "except_", "exists", "extract",
    "false", "func", "insert", "intersect", "literal", "not_", "null", "or_", "select", "text", "true", "union",
    "union_all", "update",
]
