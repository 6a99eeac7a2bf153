"""Joined eager loading: the relationship's rows come in the same query (LEFT OUTER JOIN).

A one-to-many join repeats each parent once per child; parents are
de-duplicated (by identity) in the result, in the order they first appear.
A join that would change which parents the query returns (a collection with
LIMIT/OFFSET) or that reaches a table the query already uses (self-reference,
an explicit join) is loaded with a second query instead, as ``selectinload``
does, so the result is the same either way.
"""

from __future__ import annotations

from typing import Any

from ..mapping.collections import make_collection
from ..mapping.mapper import Mapper
from ..mapping.relationships import MANYTOMANY, Relationship
from ..sql.selectable import Select
from .explicit import _set_loaded
from .options import LoaderOption
from .rows import instances


def joinable(stmt: Select, rel: Relationship) -> bool:
    rel.resolve()
    tables = set(stmt._from_tables())
    if rel.mapper.table in tables or (rel.secondary is not None and rel.secondary in tables):
        return False
    if rel.uselist and (stmt._limit is not None or stmt._offset is not None):
        return False
    return True


def split_options(stmt: Select, mapper: Mapper) -> tuple[list[LoaderOption], list[Any]]:
    """(joined options this query can join, every other option)."""
    joined, rest = [], []
    seen: set[int] = set()
    for opt in stmt._options:
        if isinstance(opt, LoaderOption) and opt.path[0][0] == "joined":
            rel = opt.path[0][1]
            if rel.parent is mapper and id(rel) not in seen and joinable(stmt, rel):
                seen.add(id(rel))
                joined.append(opt)
                continue
        rest.append(opt)
    return joined, rest


def joined_statement(stmt: Select, joined: list[LoaderOption]) -> Select:
    new = stmt._copy()
    new._options = ()
    for opt in joined:
        rel = opt.path[0][1]
        new = new.outerjoin(rel)
        new._columns = new._columns + (rel.mapper.__clause_element__(),)
        if rel.uselist:
            new = new.order_by(*(rel.order_by or rel.mapper.primary_key))
    return new


def populate_joined(session: Any, mapper: Mapper, rows: list[Any], items: list[Any], joined: list[LoaderOption],
                    populate: bool) -> tuple[list[Any], list[tuple[LoaderOption, list[Any]]]]:
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
