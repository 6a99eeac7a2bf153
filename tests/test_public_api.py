"""``aiouow.__all__`` is the public API: this pins it, so adding or dropping a name is a decision."""

from __future__ import annotations

import importlib

import pytest

import aiouow

PUBLIC = [
    "AsyncResult", "AsyncSession", "Column", "Connection", "Engine", "ForeignKey", "Index", "Mapped", "Mapper",
    "MetaData", "Model", "NestedTransaction", "Relationship", "Result", "Row", "ScalarResult", "SessionTransaction",
    "Table", "URL", "aliased", "and_", "case", "cast", "column", "create_engine", "delete", "distinct", "events", "exc",
    "except_", "exists", "extract", "false", "func", "insert", "inspect", "intersect", "joinedload", "literal",
    "noload", "not_", "null", "or_", "raiseload", "relationship", "run_transaction", "scoped_session", "select",
    "selectinload", "sessionmaker", "text", "true", "types", "union", "union_all", "update",
]


def test_all_is_the_pinned_sorted_list() -> None:
    assert aiouow.__all__ == PUBLIC
    assert PUBLIC == sorted(PUBLIC)


@pytest.mark.parametrize("name", PUBLIC)
def test_each_name_is_importable_and_documented(name: str) -> None:
    module = importlib.import_module("aiouow")
    value = getattr(module, name)
    exec(f"from aiouow import {name}", {})  # noqa: S102 - the import statement users write
    doc = getattr(value, "__doc__", None)
    assert doc and doc.strip(), f"aiouow.{name} has no docstring"


def test_star_import_gives_exactly_the_public_names() -> None:
    namespace: dict[str, object] = {}
    exec("from aiouow import *", namespace)  # noqa: S102
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(PUBLIC)
