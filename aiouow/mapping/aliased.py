"""``aliased(Model)``: a model under another name, for self-joins and joining one table twice."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ..exc import ArgumentError
from ..sql.elements import ClauseElement, and_
from ..sql.schema import Table, TableAlias
from ..sql.selectable import EntityClause

if TYPE_CHECKING:
    from .mapper import Mapper
    from .relationships import Relationship

_M = TypeVar("_M")

# anonymous aliases get a unique name when made (they are told apart by it), but compile as
# <table>_alias_<n> in order of appearance, so a statement built per call keeps one cache entry
_anon_numbers = itertools.count(1)


class AliasedClass:
    """What ``aliased(Employee)`` returns: ``m.id``, ``m.name`` are the alias's columns and
    ``select(m)`` loads ``Employee`` objects (identity-mapped with the unaliased ones)."""

    def __init__(self, mapper: Mapper, name: str, anonymous: bool = False) -> None:
        alias = TableAlias(mapper.table, name, anonymous)
        self._aiouow_mapper = mapper
        self._aiouow_alias = alias
        self._aiouow_clause = EntityClause(alias, alias.columns, mapper)
        for key, col in mapper.columns.items():
            self.__dict__[key] = alias.corresponding_column(col)

    def __clause_element__(self) -> EntityClause:
        return self._aiouow_clause

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_aiouow_"):
            raise AttributeError(key)
        rel = self._aiouow_mapper.relationships.get(key)
        if rel is not None:
            return AliasedRelationship(rel, self._aiouow_alias, None)
        raise AttributeError(f"{self!r} has no attribute {key!r}")

    def __repr__(self) -> str:
        return f"aliased({self._aiouow_mapper.class_.__name__}, name={self._aiouow_alias.name!r})"


class AliasInspection:
    """What ``inspect(m)`` returns for ``m = aliased(Employee, name="manager")``."""

    __slots__ = ("mapper", "table")
    is_aliased_class = True

    def __init__(self, mapper: Mapper, table: TableAlias) -> None:
        self.mapper = mapper
        #: the ``employees AS manager`` FROM item (SQLAlchemy calls it ``selectable``)
        self.table = table

    @property
    def class_(self) -> type[Any]:
        """The aliased model class."""
        return self.mapper.class_

    @property
    def name(self) -> str:
        """The alias name used in SQL."""
        return self.table.name

    @property
    def selectable(self) -> TableAlias:
        return self.table

    @property
    def columns(self) -> dict[str, Any]:
        """Attribute name -> the alias's column, in mapping order."""
        return {key: self.table.corresponding_column(col) for key, col in self.mapper.columns.items()}

    def __repr__(self) -> str:
        return f"<AliasInspection {self.class_.__name__} AS {self.name!r}>"


def inspect_alias(subject: object) -> AliasInspection | None:
    """The inspection of an ``aliased()`` class; None for anything else."""
    if isinstance(subject, AliasedClass):
        return AliasInspection(subject._aiouow_mapper, subject._aiouow_alias)
    return None


def aliased(element: type[_M], name: str | None = None) -> type[_M]:
    """``m = aliased(Employee, name="manager")``: ``employees AS manager`` in a statement.

    Typed as the model class itself (as SQLAlchemy does), so ``m.id`` is a column expression
    and ``select(e, m)`` a ``Select[tuple[Employee, Employee]]``.  Without a name the alias
    is ``<table>_alias_<n>`` in SQL, numbered in order of appearance per statement (not
    ``<table>_<n>``, the names of automatic and eager-join aliases).
    """
    mapper = element.__dict__.get("__aiouow_mapper__") if isinstance(element, type) else None
    if mapper is None:
        raise ArgumentError(f"aliased(): expected a mapped model class, not {element!r}")
    if name is not None and not isinstance(name, str):
        # SQLAlchemy's aliased(Model, subquery) maps the model onto a subquery or CTE
        raise ArgumentError(
            f"aliased({mapper.class_.__name__}, {name!r}): the second argument is the alias's name; a "
            f"model over a subquery or CTE is not supported: join the model to it instead, "
            f"select({mapper.class_.__name__}).join(sq, sq.c.id == {mapper.class_.__name__}.id), or "
            f"select its columns (sq.c.<name>)"
        )
    if name is None:
        return cast("type[_M]", AliasedClass(mapper, f"{mapper.table.name}_alias_{next(_anon_numbers)}", True))
    return cast("type[_M]", AliasedClass(mapper, name))


def _entity_table(entity: Any) -> Any:
    if isinstance(entity, TableAlias):
        return entity
    if isinstance(entity, AliasedClass):
        return entity._aiouow_alias
    mapper = entity.__dict__.get("__aiouow_mapper__") if isinstance(entity, type) else None
    if mapper is None:
        raise ArgumentError(f"of_type(): expected an aliased() model, not {entity!r}")
    return mapper.table


def _adapt(table: Table | TableAlias, col: Any) -> Any:
    """``col`` of the relationship's tables, as a column of ``table`` (an alias) if it is one."""
    if isinstance(table, TableAlias):
        found = table.corresponding_column(col)
        if found is not None:
            return found
    return col


class AliasedRelationship:
    """A relationship whose parent and/or target side is an alias, for ``join()``.

    ``Employee.manager.of_type(m)`` (to the alias ``m``) and ``m.manager`` (from it) are one;
    ``select(...).join(it)`` joins along the relationship between those sides.

    Attributes:
        rel: The relationship followed.
        parent: The alias on the parent side, or None for the parent's own table.
        target: The alias (or table) on the target side, or None for the target's own table.
    """

    def __init__(self, rel: Relationship, parent: TableAlias | None, target: TableAlias | Table | None) -> None:
        self.rel = rel
        self.parent = parent
        self.target = target

    def of_type(self, entity: Any) -> AliasedRelationship:
        """The same relationship to ``entity``, an ``aliased()`` model of its target.

        Anything but an alias of the target (or the target model itself) raises ``ArgumentError``.
        """
        target = _entity_table(entity)
        # the target is known only once the relationship is resolved (a string, a later class)
        table = self.rel.resolve().mapper.table
        if (target.element if isinstance(target, TableAlias) else target) is not table:
            raise ArgumentError(f"{self.rel!r}.of_type(): expected an alias of {table.name!r}, not {entity!r}")
        return AliasedRelationship(self.rel, self.parent, target)

    def _join_path(self) -> list[tuple[Any, Any, ClauseElement]]:
        return relationship_join_path(self.rel, self.parent, self.target)

    def __repr__(self) -> str:
        return f"{self.rel!r}.of_type({self.target!r})" if self.target is not None else repr(self.rel)


def relationship_join_path(rel: Relationship, parent: TableAlias | None,
                           target: TableAlias | Table | None) -> list[tuple[Any, Any, ClauseElement]]:
    """The JOIN steps along ``rel`` from ``parent`` (its table when None) to ``target``
    (its target table when None), each as (left, right, onclause)."""
    rel.resolve()
    ptable: Table | TableAlias = parent if parent is not None else rel.parent.table
    ttable: Table | TableAlias = target if target is not None else rel.mapper.table

    # in a self-referential relationship a column belongs to both sides: the side says which
    def p(col: Any) -> Any:
        return _adapt(ptable, col)

    def t(col: Any) -> Any:
        return _adapt(ttable, col)

    if rel.secondary is not None:
        sec = rel.secondary
        return [
            (ptable, sec, and_(*[p(a) == b for a, b in rel.secondary_parent])),
            (sec, ttable, and_(*[t(a) == b for a, b in rel.secondary_target])),
        ]
    return [(ptable, ttable, and_(*[p(a) == t(b) for a, b in rel.pairs]))]
