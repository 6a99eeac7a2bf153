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
from ..mapping.collections import make_collection
from ..mapping.relationships import Relationship
from .explicit import load_relationship

if TYPE_CHECKING:
    from typing import TypeAlias

    from ..mapping.model import Model
    from .protocol import SessionInternals

    #: what the options take: ``User.posts``, a ``Relationship`` to the checker under a
    #: ``Mapped[list[Post]]`` annotation but the annotated type itself (``list[Post]``, ``User``,
    #: ``User | None``) under a plain one; anything else is refused at run time with a clear error
    RelationshipArg: TypeAlias = Relationship[Any] | list[Any] | Model | None

_STRATEGIES = ("selectin", "joined", "raise", "noload")



class LoaderOption:
    """A path of (strategy, relationship) steps; chain with ``.selectinload(...)`` etc."""

    __slots__ = ("path",)

    def __init__(self, path: tuple[tuple[str, Relationship], ...]) -> None:
        self.path = path

    def _then(self, strategy: str, attr: Any) -> LoaderOption:
        rel = _relationship(attr, f"{strategy}load")
        last = self.path[-1][1]
        last.resolve()
        if rel.parent is not last.mapper:
            raise ArgumentError(
                f"{strategy}load({rel}) cannot follow {last}: {last} leads to "
                f"{last.mapper.class_.__name__}, not {rel.parent.class_.__name__}"
            )
        return LoaderOption((*self.path, (strategy, rel)))

    def selectinload(self, attr: RelationshipArg) -> LoaderOption:
        return self._then("selectin", attr)

    def joinedload(self, attr: RelationshipArg) -> LoaderOption:
        return self._then("joined", attr)

    def raiseload(self, attr: RelationshipArg) -> LoaderOption:
        return self._then("raise", attr)

    def noload(self, attr: RelationshipArg) -> LoaderOption:
        return self._then("noload", attr)

    def __repr__(self) -> str:
        return ".".join(f"{s}load({r})" for s, r in self.path)


def _relationship(attr: Any, what: str) -> Relationship:
    if not isinstance(attr, Relationship):
        raise ArgumentError(f"{what}() takes a relationship attribute such as User.posts, not {attr!r}")
    return attr


def selectinload(attr: RelationshipArg) -> LoaderOption:
    """Load a relationship for all loaded objects in one more query."""
    return LoaderOption((("selectin", _relationship(attr, "selectinload")),))


def joinedload(attr: RelationshipArg) -> LoaderOption:
    """Eager-load a relationship in the same query (LEFT OUTER JOIN); parents are de-duplicated."""
    return LoaderOption((("joined", _relationship(attr, "joinedload")),))


def raiseload(attr: RelationshipArg) -> LoaderOption:
    """Leave the relationship unloaded: touching it raises ``NotLoadedError``."""
    return LoaderOption((("raise", _relationship(attr, "raiseload")),))


def noload(attr: RelationshipArg) -> LoaderOption:
    """The relationship reads as empty (or None) without loading."""
    return LoaderOption((("noload", _relationship(attr, "noload")),))


async def apply_options(session: SessionInternals, options: Sequence[Any], mappers: list[Any], objs: list[list[Any]],
                        populate: bool) -> None:
    """Run the loads the options ask for on freshly loaded objects."""
    for opt in options:
        if not isinstance(opt, LoaderOption):
            raise ArgumentError(f"unknown loader option {opt!r}; use selectinload(), joinedload(), ...")
        first = opt.path[0][1]
        current = None
        for mapper, group in zip(mappers, objs):
            if first.parent is mapper:
                current = [o for o in group if o is not None]
                break
        if current is None:
            raise ArgumentError(
                f"option {opt!r} does not apply to this query, which loads "
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
