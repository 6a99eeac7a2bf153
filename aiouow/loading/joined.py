"""Joined eager loading: the relationship's rows come in the same query (LEFT OUTER JOIN).

Each eager join goes to an alias of the target table (and of a many-to-many
association table), named as SQLAlchemy names them (``users_1``,
``users_2``), so it never collides with the query's own tables: two options
reaching one table, a self-referential relationship, an explicit join or a
WHERE on that table all stay separate.  A one-to-many join repeats each
parent once per child; parents are de-duplicated (by identity) in the
result, in the order they first appear.  A collection join under
LIMIT/OFFSET would change which parents come back, so it is loaded with a
second query instead, as ``selectinload`` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..mapping.collections import make_collection
from ..mapping.mapper import Mapper
from ..mapping.relationships import MANYTOMANY, Relationship
from ..sql.elements import BinaryExpression, ClauseElement, adapt_columns, and_
from ..sql.schema import Table, TableAlias
from ..sql.selectable import EntityClause, Join, Select
from .explicit import _set_loaded
from .options import LoaderOption
from .rows import instances

if TYPE_CHECKING:
    from .protocol import SessionInternals


def joinable(stmt: Select, rel: Relationship) -> bool:
    rel.resolve()
    if rel.uselist and (stmt._limit is not None or stmt._offset is not None):
        return False
    return True


def split_options(stmt: Select, mapper: Mapper) -> tuple[list[LoaderOption], list[Any]]:
    """(joined options this query can join, every other option)."""
    joined, rest = [], []
    seen: set[int] = set()
    from_model = getattr(stmt._columns[0], "table", None) is mapper.table
    for opt in stmt._options:
        if isinstance(opt, LoaderOption) and opt.path[0][0] == "joined":
            rel = opt.path[0][1]
            # through an alias (``joinedload(m.reports)``, or a plain option on ``select(m)``) the
            # relationship loads like selectinload: the eager join is built from the model's table
            if rel.parent is mapper and opt.entity is None and from_model and id(rel) not in seen \
                    and joinable(stmt, rel):
                seen.add(id(rel))
                joined.append(opt)
                continue
        rest.append(opt)
    return joined, rest


def _alias(table: Table, used: set[str]) -> TableAlias:
    """The next free ``<table>_<n>`` alias of the table (alias objects are kept per table)."""
    n = 1
    while f"{table.name}_{n}" in used:
        n += 1
    name = f"{table.name}_{n}"
    used.add(name)
    cache: dict[str, TableAlias] = table.__dict__.setdefault("_eager_aliases", {})
    alias = cache.get(name)
    if alias is None:
        alias = cache[name] = table.alias(name)
    return alias


def _eq(left: Any, right: Any) -> BinaryExpression:
    return left == right  # type: ignore[no-any-return]


def _eager_join(rel: Relationship, used: set[str]) -> tuple[list[Join], TableAlias, Any]:
    """The LEFT OUTER JOIN steps from the parent's table to an alias of the target, the alias,
    and a function moving the target's (and association table's) columns onto the aliases."""
    parent = rel.parent.table
    target = _alias(rel.mapper.table, used)
    if rel.secondary is not None:
        sec = _alias(rel.secondary, used)
        on_sec: ClauseElement = and_(*[_eq(p, sec.corresponding_column(sc)) for p, sc in rel.secondary_parent])
        on_target: ClauseElement = and_(*[_eq(target.corresponding_column(tc), sec.corresponding_column(sc))
                                          for tc, sc in rel.secondary_target])
        steps = [Join(parent, sec, on_sec, True), Join(sec, target, on_target, True)]

        def replace(col: Any) -> Any:
            found = target.corresponding_column(col)
            return found if found is not None else sec.corresponding_column(col)
    else:
        # pairs are (parent-side column, target-side column), also when both are one table
        on: ClauseElement = and_(*[_eq(p, target.corresponding_column(t)) for p, t in rel.pairs])
        steps = [Join(parent, target, on, True)]
        replace = target.corresponding_column
    return steps, target, replace


def joined_statement(stmt: Select, joined: list[LoaderOption]) -> Select:
    new = stmt._copy()
    new._options = ()
    used = {t.name for t in stmt._from_tables() if t.name is not None}
    used.update(t.name for w in stmt._where for t in w._tables())
    for opt in joined:
        rel = opt.path[0][1]
        steps, target, replace = _eager_join(rel, used)
        new._joins = new._joins + tuple(steps)
        new._columns = new._columns + (EntityClause(target, target.columns, rel.mapper),)
        if rel.uselist:
            order = rel.order_by or rel.mapper.primary_key
            new._order_by = new._order_by + tuple(adapt_columns(o, replace) for o in order)
    return new


def populate_joined(session: SessionInternals, mapper: Mapper, rows: list[Any], items: list[Any],
                    joined: list[LoaderOption], populate: bool
                    ) -> tuple[list[Any], list[tuple[LoaderOption, list[Any]]]]:
    """Parents (de-duplicated) with their joined relationships set, and the children per option."""
    parents = instances(session, mapper, rows, 0, populate)
    unique: dict[int, Any] = {}
    for p in parents:
        unique.setdefault(id(p), p)
    out = []
    for opt, (_, target, start, _stop) in zip(joined, items[1:]):
        rel = opt.path[0][1]
        children = instances(session, target, rows, start, populate)
        key = rel.key
        back = rel.back if rel.direction != MANYTOMANY else None
        loaded: dict[int, Any] = {}
        if rel.uselist:
            groups: dict[int, list[Any]] = {pid: [] for pid in unique}
            members: dict[int, set[int]] = {pid: set() for pid in unique}
            for p, c in zip(parents, children):
                if c is not None and id(c) not in members[id(p)]:
                    members[id(p)].add(id(c))
                    groups[id(p)].append(c)
                    loaded[id(c)] = c
            for pid, p in unique.items():
                if populate or key not in p.__dict__:
                    _set_loaded(p, key, make_collection(rel, p, groups[pid]))
                    if back is not None and not back.uselist:
                        for c in groups[pid]:
                            c.__dict__.setdefault(back.key, p)
        else:
            for p, c in zip(parents, children):
                if populate or key not in p.__dict__:
                    _set_loaded(p, key, c)
                if c is not None:
                    loaded[id(c)] = c
        out.append((opt, list(loaded.values())))
    # the parents' relationships (and the children's back references) came from the database
    session._note_loaded(unique.values())
    session._note_loaded(c for _, cs in out for c in cs)
    return list(unique.values()), out
