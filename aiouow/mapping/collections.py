"""Collections held by one-to-many and many-to-many relationship attributes.

An :class:`InstrumentedList` is a ``list`` that, when items come and go,

* remembers its contents before the first change (the relationship's history,
  which the flush turns into foreign-key updates and association rows),
* keeps the ``back_populates`` side in step in memory, without I/O,
* adds new items to the owner's session (``save-update`` cascade).

It refers to its owner through a weak reference, so an object and its
collections form no reference cycle.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, SupportsIndex

from ..exc import ArgumentError

if TYPE_CHECKING:
    from .relationships import Relationship


class InstrumentedList(list[Any]):
    """A relationship collection; behaves as a plain list."""

    __slots__ = ("_owner", "_rel")
    _owner: weakref.ReferenceType[Any] | None
    _rel: Relationship

    def _owner_obj(self) -> Any:
        ref = self._owner
        return ref() if ref is not None else None

    # -- hooks -----------------------------------------------------------------
    def _check(self, item: Any) -> None:
        target = self._rel.mapper.class_
        if not isinstance(item, target):
            raise ArgumentError(
                f"{self._rel} holds {target.__name__} objects, not {type(item).__name__} {item!r}"
            )

    def _will_change(self) -> None:
        owner = self._owner_obj()
        if owner is not None:
            _events.record_change(self._rel, owner)

    def _added(self, item: Any) -> None:
        owner = self._owner_obj()
        if owner is not None:
            _events.on_collection_add(self._rel, owner, item)

    def _removed(self, item: Any) -> None:
        owner = self._owner_obj()
        if owner is not None:
            _events.on_collection_remove(self._rel, owner, item)

    # -- quiet operations used by the other side of a back_populates pair ----------
    def _append_quiet(self, item: Any) -> None:
        if not any(x is item for x in self):
            self._will_change()
            list.append(self, item)

    def _remove_quiet(self, item: Any) -> None:
        for i, x in enumerate(self):
            if x is item:
                self._will_change()
                list.__delitem__(self, i)
                return

    # -- list API ----------------------------------------------------------------
    def append(self, item: Any) -> None:
        self._check(item)
        self._will_change()
        list.append(self, item)
        self._added(item)

    def extend(self, items: Iterable[Any]) -> None:
        for item in list(items):
            self.append(item)

    def __iadd__(self, items: Iterable[Any]) -> InstrumentedList:  # type: ignore[misc]
        self.extend(items)
        return self

    def insert(self, index: SupportsIndex, item: Any) -> None:
        self._check(item)
        self._will_change()
        list.insert(self, index, item)
        self._added(item)

    def remove(self, item: Any) -> None:
        for i, x in enumerate(self):
            if x is item:
                self._will_change()
                list.__delitem__(self, i)
                self._removed(item)
                return
        raise ValueError(f"{item!r} is not in {self._rel}")

    def pop(self, index: SupportsIndex = -1) -> Any:
        self._will_change()
        item = list.pop(self, index)
        self._removed(item)
        return item

    def clear(self) -> None:
        if not self:
            return
        self._will_change()
        items = list(self)
        list.clear(self)
        for item in items:
            self._removed(item)

    def __setitem__(self, index: Any, value: Any) -> None:
        self._will_change()
        old = self[index]
        olds = old if isinstance(index, slice) else [old]
        news = list(value) if isinstance(index, slice) else [value]
        for item in news:
            self._check(item)
        list.__setitem__(self, index, value)
        for item in olds:
            if not any(x is item for x in self):
                self._removed(item)
        for item in news:
            self._added(item)

    def __delitem__(self, index: Any) -> None:
        self._will_change()
        old = self[index]
        list.__delitem__(self, index)
        for item in (old if isinstance(index, slice) else [old]):
            self._removed(item)

    def __reduce_ex__(self, protocol: SupportsIndex) -> Any:
        return (list, (list(self),))

    def __copy__(self) -> list[Any]:
        return list(self)


def make_collection(rel: Relationship, owner: Any, items: Iterable[Any]) -> InstrumentedList:
    """The list stored in ``owner.__dict__[rel.key]``."""
    coll = InstrumentedList(items)
    coll._owner = weakref.ref(owner)
    coll._rel = rel
    return coll


# imported last: relationship_events builds on the names above (a deliberate import cycle)
from . import relationship_events as _events  # noqa: E402
