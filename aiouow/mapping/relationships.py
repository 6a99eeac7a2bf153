"""Relationship configuration and its resolution against foreign keys.

``relationship()`` only records what the user wrote; the target class, the
direction and the column pairs are worked out on first use, once every
model is defined (targets are often named by string before they exist).
"""

from __future__ import annotations

import re
import typing
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..exc import ArgumentError
from ..sql.elements import ClauseElement, and_
from ..sql.schema import Column, Table
from . import state as _state
from .state import History

if TYPE_CHECKING:
    from .mapper import Mapper

MANYTOONE = "many-to-one"
ONETOMANY = "one-to-many"
MANYTOMANY = "many-to-many"

_CASCADE_WORDS = {"save-update", "merge", "expunge", "delete", "delete-orphan", "refresh-expire", "all"}
_ALL = {"save-update", "merge", "expunge", "delete", "refresh-expire"}


def parse_cascade(text: str) -> frozenset[str]:
    words = {w.strip() for w in text.split(",") if w.strip()}
    bad = words - _CASCADE_WORDS
    if bad:
        raise ArgumentError(f"unknown cascade {sorted(bad)}; valid: {sorted(_CASCADE_WORDS)}")
    if "all" in words:
        words = (words - {"all"}) | _ALL
    return frozenset(words)


class Relationship:
    """A relationship between two mapped classes (``User.posts``).

    On the class it stands for the relationship itself (``.join(User.posts)``,
    ``selectinload(User.posts)``); on an instance it is the loaded value.
    """

    def __init__(
        self,
        argument: Any = None,
        *,
        back_populates: str | None = None,
        cascade: str = "save-update, merge",
        order_by: Any = None,
        secondary: str | Table | None = None,
        uselist: bool | None = None,
        remote_side: Any = None,
        foreign_keys: Any = None,
        passive_deletes: bool = False,
        viewonly: bool = False,
        lazy: str = "raise",
    ) -> None:
        self.argument = argument
        self.back_populates = back_populates
        self.cascade = parse_cascade(cascade)
        self._order_by = order_by
        self._secondary = secondary
        self._uselist = uselist
        self._remote_side = remote_side
        self._foreign_keys = foreign_keys
        self.passive_deletes = passive_deletes
        self.viewonly = viewonly
        self.lazy = lazy
        self.key = ""
        self.parent: Mapper = None  # type: ignore[assignment]
        self._annotation_uselist: bool | None = None
        self._resolved = False
        self._is_list = False
        self._back: Relationship | None = None
        # filled by resolve()
        self.mapper: Mapper = None  # type: ignore[assignment]
        self.direction = ""
        self.secondary: Table | None = None
        #: (parent column, target column) pairs: parent.a == target.b
        self.pairs: list[tuple[Column, Column]] = []
        #: for many-to-many: (parent column, secondary column), (target column, secondary column)
        self.secondary_parent: list[tuple[Column, Column]] = []
        self.secondary_target: list[tuple[Column, Column]] = []
        self.order_by: tuple[ClauseElement, ...] = ()

    # -- descriptor ----------------------------------------------------------
    def __set_name__(self, owner: type, name: str) -> None:
        self.key = name

    def __get__(self, obj: Any, cls: type | None = None) -> Any:
        if obj is None:
            return self
        return _state.missing_relationship(obj, self)

    @property
    def uselist(self) -> bool:
        """Whether the attribute holds a collection (resolved once)."""
        if not self._resolved:
            self.resolve()
        return self._is_list

    @property
    def class_(self) -> type:
        return self.parent.class_

    def empty_value(self, obj: Any) -> Any:
        if self.uselist:
            from .collections import make_collection

            return make_collection(self, obj, [])
        return None

    def history(self, old: Any, current: Any) -> History:
        if current is _state.NO_VALUE:
            return History((), (), ())
        if self.uselist:
            old_ids = {id(x) for x in (old or ())}
            cur_ids = {id(x) for x in current}
            return History(
                tuple(x for x in current if id(x) not in old_ids),
                tuple(x for x in current if id(x) in old_ids),
                tuple(x for x in (old or ()) if id(x) not in cur_ids),
            )
        if old is current:
            return History((), () if current is None else (current,), ())
        return History(() if current is None else (current,), (), () if old is None else (old,))

    # -- resolution ------------------------------------------------------------
    def resolve(self) -> Relationship:
        if self._resolved:
            return self
        from .mapper import mapper_for_name

        target = self.argument
        if isinstance(target, str):
            target = mapper_for_name(target, self)
        elif isinstance(target, type) and hasattr(target, "__aiouow_mapper__"):
            target = target.__aiouow_mapper__
        else:
            raise ArgumentError(f"relationship {self}: cannot tell the target class from {self.argument!r}")
        self.mapper = target
        if self._secondary is not None:
            self._resolve_secondary()
        else:
            self._resolve_direct()
        if self._order_by is not None:
            self.order_by = tuple(self._resolve_order_by(self._order_by))
        if self._uselist is not None:
            self._is_list = self._uselist
        elif self._annotation_uselist is not None:
            self._is_list = self._annotation_uselist
        else:
            self._is_list = self.direction != MANYTOONE
        self._resolved = True
        return self

    def _resolve_secondary(self) -> None:
        sec = self._secondary
        if isinstance(sec, str):
            table = self.parent.table.metadata.tables.get(sec)
            if table is None:
                raise ArgumentError(f"relationship {self}: secondary table {sec!r} is not defined")
            sec = table
        assert isinstance(sec, Table)
        self.secondary = sec
        self.direction = MANYTOMANY
        ptable, ttable = self.parent.table, self.mapper.table
        to_parent = [fk for fk in sec.foreign_keys if fk.column.table is ptable]
        to_target = [fk for fk in sec.foreign_keys if fk.column.table is ttable]
        if ptable is ttable or not to_parent or not to_target:
            raise ArgumentError(
                f"relationship {self}: secondary table {sec.name!r} needs one foreign key to "
                f"{ptable.name!r} and one to {ttable.name!r}"
            )
        self.secondary_parent = [(fk.column, fk.parent) for fk in to_parent]  # type: ignore[misc]
        self.secondary_target = [(fk.column, fk.parent) for fk in to_target]  # type: ignore[misc]

    def _columns_arg(self, value: Any, what: str) -> list[Column]:
        if value is None:
            return []
        items = value if isinstance(value, (list, tuple, set)) else [value]
        out = []
        for item in items:
            if isinstance(item, str):
                item = self._lookup_column(item, what)
            elif not isinstance(item, Column):
                # `remote_side=id` inside the class body names the column() spec
                item = self.parent.column_specs.get(id(item), item)
            if not isinstance(item, Column):
                raise ArgumentError(f"relationship {self}: {what} takes columns like Model.col, not {item!r}")
            out.append(item)
        return out

    def _lookup_column(self, text: str, what: str) -> Column:
        cls_name, _, attr = text.partition(".")
        if not attr:
            raise ArgumentError(f"relationship {self}: {what}={text!r} should read 'Model.column'")
        from .mapper import mapper_for_name

        m = mapper_for_name(cls_name, self)
        col = m.columns.get(attr)
        if col is None:
            raise ArgumentError(f"relationship {self}: {what}={text!r}: {cls_name} has no column {attr!r}")
        return col

    def _resolve_direct(self) -> None:
        ptable, ttable = self.parent.table, self.mapper.table
        fks = self._columns_arg(self._foreign_keys, "foreign_keys")
        remote = self._columns_arg(self._remote_side, "remote_side")
        m2o = [fk for fk in ptable.foreign_keys if fk.column.table is ttable]
        o2m = [fk for fk in ttable.foreign_keys if fk.column.table is ptable]
        if fks:
            m2o = [fk for fk in m2o if any(fk.parent is c for c in fks)]
            o2m = [fk for fk in o2m if any(fk.parent is c for c in fks)]
        if ptable is ttable:
            # self-referential: the same foreign keys serve both directions
            if remote:
                direction = ONETOMANY if any(fk.parent is c for fk in m2o for c in remote) else MANYTOONE
            elif self._annotation_uselist is False or self._uselist is False:
                direction = MANYTOONE
            else:
                direction = ONETOMANY
            chosen = m2o
        elif m2o and o2m:
            if self._annotation_uselist or self._uselist:
                direction, chosen = ONETOMANY, o2m
            else:
                direction, chosen = MANYTOONE, m2o
        elif m2o:
            direction, chosen = MANYTOONE, m2o
        elif o2m:
            direction, chosen = ONETOMANY, o2m
        else:
            raise ArgumentError(
                f"relationship {self}: no foreign key links {ptable.name!r} and {ttable.name!r}; "
                f"add a ForeignKey column or use secondary= for many-to-many"
            )
        if len(chosen) > 1:
            raise ArgumentError(
                f"relationship {self}: several foreign keys link {ptable.name!r} and {ttable.name!r} "
                f"({', '.join(fk.parent.name for fk in chosen)}); "  # type: ignore[union-attr]
                f"say which with foreign_keys=[{self.mapper.class_.__name__}.column]"
            )
        fk = chosen[0]
        self.direction = direction
        if direction == MANYTOONE:
            self.pairs = [(fk.parent, fk.column)]  # type: ignore[list-item]
        else:
            self.pairs = [(fk.column, fk.parent)]  # type: ignore[list-item]

    def _resolve_order_by(self, value: Any) -> list[ClauseElement]:
        items = value if isinstance(value, (list, tuple)) else [value]
        out: list[ClauseElement] = []
        for item in items:
            if isinstance(item, str):
                desc = item.strip().lower().endswith(" desc")
                name = item.strip().split()[0]
                col = self._lookup_column(name, "order_by") if "." in name else self.mapper.columns[name]
                out.append(col.desc() if desc else col)
            else:
                out.append(item)
        return out

    def _join_path(self) -> list[tuple[Table, Table, ClauseElement]]:
        self.resolve()
        ptable, ttable = self.parent.table, self.mapper.table
        if self.secondary is not None:
            sec = self.secondary
            return [
                (ptable, sec, and_(*[a == b for a, b in self.secondary_parent])),
                (sec, ttable, and_(*[a == b for a, b in self.secondary_target])),
            ]
        return [(ptable, ttable, and_(*[a == b for a, b in self.pairs]))]

    @property
    def back(self) -> Relationship | None:
        """The relationship on the other side named by back_populates (looked up once)."""
        back = self._back
        if back is not None or not self.back_populates:
            return back
        self.resolve()
        other = self.mapper.relationships.get(self.back_populates)
        if other is None:
            raise ArgumentError(
                f"relationship {self}: back_populates={self.back_populates!r} but "
                f"{self.mapper.class_.__name__} has no relationship of that name"
            )
        self._back = other
        return other

    def __repr__(self) -> str:
        owner = self.parent.class_.__name__ if self.parent is not None else "?"
        return f"{owner}.{self.key}"


_LIST_RE = re.compile(r"^\s*(?:typing\.)?(list|List|set|Set|Sequence|typing\.List)\s*\[\s*(.+?)\s*\]\s*$")


def parse_annotation(ann: Any) -> tuple[Any, bool | None]:
    """(target class or name, uselist) from a relationship annotation."""
    if ann is None:
        return None, None
    if isinstance(ann, str):
        text = ann.strip()
        m = _LIST_RE.match(text)
        if m:
            return _strip_name(m.group(2)), True
        return _strip_name(text), False
    if isinstance(ann, typing.ForwardRef):
        return parse_annotation(ann.__forward_arg__)
    origin = typing.get_origin(ann)
    if origin in (list, set, Sequence) or origin is typing.Sequence:
        (arg,) = typing.get_args(ann)
        target, _ = parse_annotation(arg)
        return target, True
    from ..types import unwrap_optional

    inner, _ = unwrap_optional(ann)
    if inner is not ann:
        return parse_annotation(inner)
    return ann, False


def _strip_name(text: str) -> str:
    text = text.strip()
    for prefix in ("Optional[", "typing.Optional["):
        if text.startswith(prefix) and text.endswith("]"):
            text = text[len(prefix):-1]
    parts = [p.strip().strip("'\"") for p in text.split("|")]
    parts = [p for p in parts if p and p != "None"]
    return parts[0] if parts else text
