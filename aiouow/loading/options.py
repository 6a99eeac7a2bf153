"""Loader options: ``selectinload``, ``joinedload``, ``raiseload``, ``noload``.

``select(User).options(selectinload(User.posts).selectinload(Post.tags))``
loads the users, then their posts in one query, then those posts' tags in
one more; every path is loaded with a single query per chunk of parents.

``joinedload`` on the selected model loads the relationship in the same
query with a LEFT OUTER JOIN (see ``joined.py``, which also says when it
falls back to a second query); deeper in a path it loads like
``selectinload``.  ``raiseload`` documents that touching the relationship
must raise (it always does when unloaded); ``noload`` makes it read as
empty without loading.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..exc import ArgumentError
from ..mapping.aliased import AliasedRelationship
from ..mapping.collections import make_collection
from ..mapping.relationships import Relationship
from .explicit import load_relationship

if TYPE_CHECKING:
    from typing import TypeAlias

    from ..mapping.model import Model
    from ..sql.schema import TableAlias
    from .protocol import SessionInternals

    RelationshipArg: TypeAlias = Relationship[Any] | list[Any] | Model | None
    """What the loader options take: a relationship attribute such as ``User.posts``.

    To the type checker that is a ``Relationship`` under a ``Mapped[list[Post]]`` annotation, but the
    annotated type itself (``list[Post]``, ``User``, ``User | None``) under a plain one; anything
    else is refused at run time with a clear error.
    """

_STRATEGIES = ("selectin", "joined", "raise", "noload")



class LoaderOption:
    """A path of (strategy, relationship) steps; chain with ``.selectinload(...)`` etc.

    Attributes:
        path: The ``(strategy, relationship)`` steps, from the selected class outwards.
        entity: The alias the path starts from (``selectinload(m.reports)`` for ``m = aliased(Employee)``),
            or ``None`` when it starts from the model itself.
    """

    __slots__ = ("path", "entity")

    def __init__(self, path: tuple[tuple[str, Relationship], ...], entity: TableAlias | None = None) -> None:
        self.path = path
        self.entity = entity

    def _then(self, strategy: str, attr: Any) -> LoaderOption:
        rel, alias = _relationship(attr, f"{strategy}load")
        if alias is not None:
            raise ArgumentError(f"{strategy}load({attr!r}): only the first step of a loader path may start "
                                f"from an alias; use {rel} here")
        last = self.path[-1][1]
        last.resolve()
        if rel.parent is not last.mapper:
            raise ArgumentError(
                f"{strategy}load({rel}) cannot follow {last}: {last} leads to "
                f"{last.mapper.class_.__name__}, not {rel.parent.class_.__name__}"
            )
        return LoaderOption((*self.path, (strategy, rel)), self.entity)

    def selectinload(self, attr: RelationshipArg) -> LoaderOption:
        """Then load ``attr`` of the objects reached so far with one more SELECT (``IN`` their keys).

        Args:
            attr: A relationship of the class the previous step leads to (``Post.tags`` after
                ``selectinload(User.posts)``).

        Raises:
            ArgumentError: ``attr`` is not a relationship of that class, or is reached through an alias
                (only the first step may start from one).
        """
        return self._then("selectin", attr)

    def joinedload(self, attr: RelationshipArg) -> LoaderOption:
        """Then load ``attr`` of the objects reached so far; past the first step this loads like :meth:`selectinload`.

        Args:
            attr: A relationship of the class the previous step leads to (``Post.tags`` after
                ``selectinload(User.posts)``).

        Raises:
            ArgumentError: ``attr`` is not a relationship of that class, or is reached through an alias
                (only the first step may start from one).
        """
        return self._then("joined", attr)

    def raiseload(self, attr: RelationshipArg) -> LoaderOption:
        """Then leave ``attr`` of the objects reached so far unloaded: reading it raises ``NotLoadedError``.

        Args:
            attr: A relationship of the class the previous step leads to (``Post.tags`` after
                ``selectinload(User.posts)``).

        Raises:
            ArgumentError: ``attr`` is not a relationship of that class, or is reached through an alias
                (only the first step may start from one).
        """
        return self._then("raise", attr)

    def noload(self, attr: RelationshipArg) -> LoaderOption:
        """Then make ``attr`` of the objects reached so far read as empty (or ``None``) without loading it.

        Args:
            attr: A relationship of the class the previous step leads to (``Post.tags`` after
                ``selectinload(User.posts)``).

        Raises:
            ArgumentError: ``attr`` is not a relationship of that class, or is reached through an alias
                (only the first step may start from one).
        """
        return self._then("noload", attr)

    def __repr__(self) -> str:
        return ".".join(f"{s}load({r})" for s, r in self.path)


def _relationship(attr: Any, what: str) -> tuple[Relationship, TableAlias | None]:
    """The relationship an option names, and the alias it is reached through (``m.reports``)."""
    if isinstance(attr, Relationship):
        return attr, None
    if isinstance(attr, AliasedRelationship) and attr.target is None and attr.parent is not None:
        return attr.rel, attr.parent
    if isinstance(attr, AliasedRelationship):
        raise ArgumentError(f"{what}({attr!r}): of_type() is for joins; a loader option loads the "
                            f"relationship's own target: {what}({attr.rel})")
    raise ArgumentError(f"{what}() takes a relationship attribute such as User.posts, not {attr!r}")


def _option(strategy: str, attr: Any) -> LoaderOption:
    rel, alias = _relationship(attr, f"{strategy}load")
    return LoaderOption(((strategy, rel),), alias)


def selectinload(attr: RelationshipArg) -> LoaderOption:
    """Load a relationship for all loaded objects in one more query."""
    return _option("selectin", attr)


def joinedload(attr: RelationshipArg) -> LoaderOption:
    """Eager-load a relationship in the same query (LEFT OUTER JOIN); parents are de-duplicated.

    Through an alias (``joinedload(m.reports)``) it loads like ``selectinload``.
    """
    return _option("joined", attr)


def raiseload(attr: RelationshipArg) -> LoaderOption:
    """Leave the relationship unloaded: touching it raises ``NotLoadedError``."""
    return _option("raise", attr)


def noload(attr: RelationshipArg) -> LoaderOption:
    """The relationship reads as empty (or None) without loading."""
    return _option("noload", attr)


def _group_of(opt: LoaderOption, mappers: list[Any], tables: list[Any], objs: list[list[Any]]) -> list[Any] | None:
    """The loaded objects an option applies to: those of its alias, else those of the model
    itself (selected unaliased first, then through any alias)."""
    first = opt.path[0][1]
    candidates = [i for i, m in enumerate(mappers) if m is first.parent]
    if opt.entity is not None:
        candidates = [i for i in candidates if tables[i] is opt.entity]
    else:
        candidates.sort(key=lambda i: tables[i] is not first.parent.table)
    if not candidates:
        return None
    return [o for o in objs[candidates[0]] if o is not None]


async def apply_options(session: SessionInternals, options: Sequence[Any], mappers: list[Any], objs: list[list[Any]],
                        populate: bool, tables: list[Any] | None = None) -> None:
    """Run the loads the options ask for on freshly loaded objects.

    ``tables`` are the FROM items (table or alias) each group of objects was selected from.
    """
    if tables is None:
        tables = [m.table for m in mappers]
    for opt in options:
        if not isinstance(opt, LoaderOption):
            raise ArgumentError(f"unknown loader option {opt!r}; use selectinload(), joinedload(), ...")
        current = _group_of(opt, mappers, tables, objs)
        if current is None:
            through = f" through {opt.entity.name!r}" if opt.entity is not None else ""
            raise ArgumentError(
                f"option {opt!r}{through} does not apply to this query, which loads "
                f"{', '.join(m.class_.__name__ for m in mappers)}"
            )
        last = len(opt.path) - 1
        for step, (strategy, rel) in enumerate(opt.path):
            if not current:
                break
            if strategy in ("selectin", "joined"):
                await load_relationship(session, current, rel, refresh=populate)
            elif strategy == "noload":
                for o in current:
                    if rel.key not in o.__dict__:
                        o.__dict__[rel.key] = make_collection(rel, o, []) if rel.uselist else None
            if step == last:
                break  # no further step needs the objects just loaded
            nxt: dict[int, Any] = {}
            for o in current:
                value = o.__dict__.get(rel.key)
                if isinstance(value, list):
                    for item in value:
                        nxt[id(item)] = item
                elif value is not None:
                    nxt[id(value)] = value
            current = list(nxt.values())
