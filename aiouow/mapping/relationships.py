"""Relationship configuration and its resolution against foreign keys.

``relationship()`` only records what the user wrote; the target class, the
direction and the column pairs are worked out on first use, once every
model is defined (targets are often named by string before they exist).
"""

from __future__ import annotations

import re
import typing
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Generic, overload

from ..exc import ArgumentError
from ..sql.elements import BinaryExpression, BindParameter, BooleanClauseList, ClauseElement, and_
from ..sql.schema import Column, Table
from . import state as _state
from .state import History

if TYPE_CHECKING:
    from typing_extensions import TypeVar

    from .aliased import AliasedRelationship
    from .mapper import Mapper

    # a bare ``Relationship`` is ``Relationship[Any]``
    _T = TypeVar("_T", default=Any)
else:
    from typing import TypeVar

    _T = TypeVar("_T")

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


class Relationship(Generic[_T]):
    """A relationship between two mapped classes (``User.posts``).

    On the class it stands for the relationship itself (``.join(User.posts)``,
    ``selectinload(User.posts)``); on an instance it is the loaded value, a ``_T``
    (``list[Post]``, ``User | None``) for the type checker.

    Attributes:
        argument: The target as given: a class, or its name as a string.
        key: The attribute name on the declaring class.
        parent: The :class:`Mapper` of the declaring class.
        mapper: The target class's :class:`Mapper` (set by :meth:`resolve`).
        direction: ``"many-to-one"``, ``"one-to-many"`` or ``"many-to-many"`` (set by :meth:`resolve`).
        back_populates: The name of the relationship on the other side kept in step, if any.
        cascade: The cascade words in effect (``"all"`` expanded).
        lazy: The loading strategy when nothing else is asked for (``"raise"``: reading it unloaded raises).
        passive_deletes: Whether deleting a parent leaves its children's rows to the database's ON DELETE.
        viewonly: Whether the relationship is read only: changes to it are never flushed.
        order_by: The ORDER BY of the loaded collection (expressions, resolved).
        secondary: The association table of a many-to-many relationship.
        pairs: ``(parent column, target column)`` pairs that join the two sides.
        secondary_parent: For a many-to-many: ``(parent column, association column)`` pairs.
        secondary_target: For a many-to-many: ``(target column, association column)`` pairs.
    """

    def __init__(
        self,
        argument: Any = None,
        *,
        back_populates: str | None = None,
        cascade: str = "save-update, merge",
        order_by: Any = None,
        secondary: Any = None,
        uselist: bool | None = None,
        remote_side: Any = None,
        foreign_keys: Any = None,
        primaryjoin: Any = None,
        secondaryjoin: Any = None,
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
        self._primaryjoin = primaryjoin
        self._secondaryjoin = secondaryjoin
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

    @overload
    def __get__(self, obj: None, cls: type | None = None) -> Relationship[_T]: ...
    @overload
    def __get__(self, obj: object, cls: type | None = None) -> _T: ...
    def __get__(self, obj: object | None, cls: type | None = None) -> Relationship[_T] | _T:
        if obj is None:
            return self
        value: _T = _state.missing_relationship(obj, self)
        return value

    @property
    def uselist(self) -> bool:
        """Whether the attribute holds a collection (resolved once)."""
        if not self._resolved:
            self.resolve()
        return self._is_list

    @property
    def class_(self) -> type:
        """The class that declares the relationship (``User`` for ``User.posts``)."""
        return self.parent.class_

    def empty_value(self, obj: Any) -> Any:
        """What the relationship reads as on ``obj`` before anything is loaded or set (``[]`` or ``None``)."""
        if self.uselist:
            from .collections import make_collection

            return make_collection(self, obj, [])
        return None

    def history(self, old: Any, current: Any) -> History:
        """The change from ``old`` to ``current``, objects compared by identity.

        This is what ``inspect(obj).attrs[name].history`` reports for a relationship.

        Args:
            old: The value as last loaded or flushed.
            current: The value now.
        """
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
        """Find the target class and the join columns, once the classes it names all exist.

        Called on first use; returns the relationship itself.

        Raises:
            ArgumentError: The target class or the secondary table cannot be found, or the join
                cannot be worked out from the foreign keys (the message says what to pass).
        """
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
        elif self._primaryjoin is not None or self._secondaryjoin is not None:
            raise ArgumentError(
                f"relationship {self}: primaryjoin=/secondaryjoin= are supported only with secondary= "
                f"(many-to-many); for a one-to-many or many-to-one say which foreign key it follows "
                f"with foreign_keys=[Model.column]"
            )
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
        if _is_lambda(sec):
            sec = sec()  # secondary=lambda: table, as in SQLAlchemy
        if isinstance(sec, str):
            table = self.parent.table.metadata.tables.get(sec)
            if table is None:
                raise ArgumentError(f"relationship {self}: secondary table {sec!r} is not defined")
            sec = table
        if not isinstance(sec, Table):
            raise ArgumentError(f"relationship {self}: secondary= takes a Table or a table name, not {sec!r}")
        self.secondary = sec
        self.direction = MANYTOMANY
        ptable, ttable = self.parent.table, self.mapper.table
        named = self._columns_arg(self._foreign_keys, "foreign_keys")
        for col in named:
            if col.table is not sec:
                raise ArgumentError(
                    f"relationship {self}: foreign_keys= names {col.table.name}.{col.name}, which is not a "
                    f"column of the secondary table {sec.name!r}; name the association column(s) that "
                    f"point at {self.parent.class_.__name__}, e.g. foreign_keys=\"{sec.name}.c.<column>\""
                )
        pj = self._join_arg(self._primaryjoin, "primaryjoin", ptable, sec)
        sj = self._join_arg(self._secondaryjoin, "secondaryjoin", ttable, sec)
        taken = {id(c) for _, c in (pj or []) + (sj or [])}  # association columns already placed
        if pj is None:
            pj = self._secondary_side(sec, ptable, taken, named, "parent")
            taken.update(id(c) for _, c in pj)
        if sj is None:
            # in a self-referential many-to-many foreign_keys= names the parent side only;
            # the target side is the other foreign key
            sj = self._secondary_side(sec, ttable, taken, named if ptable is not ttable else [], "target")
        self.secondary_parent = pj
        self.secondary_target = sj

    def _secondary_side(self, sec: Table, table: Table, taken: set[int], named: list[Column],
                        side: str) -> list[tuple[Column, Column]]:
        """(column of ``table``, association column) pairs for one side of a many-to-many, from the
        association table's foreign keys to ``table``."""
        who = (self.parent if side == "parent" else self.mapper).class_.__name__
        cands = [fk for fk in sec.foreign_keys if fk.column.table is table and id(fk.parent) not in taken]
        if named:
            chosen = [fk for fk in cands if any(fk.parent is c for c in named)]
            if chosen:
                cands = chosen
        if not cands:
            raise ArgumentError(
                f"relationship {self}: secondary table {sec.name!r} needs a foreign key to {table.name!r} "
                f"for the {side} side ({who})"
            )
        if len({id(fk.column) for fk in cands}) < len(cands):
            # two association columns refer to the same column: which one is this side's?
            cols = ", ".join(f"{sec.name}.{fk.parent.name}" for fk in cands)  # type: ignore[union-attr]
            first = cands[0].parent.name  # type: ignore[union-attr]
            join = "primaryjoin" if side == "parent" else "secondaryjoin"
            raise ArgumentError(
                f"relationship {self}: secondary table {sec.name!r} has several foreign keys to "
                f"{table.name!r} ({cols}), so which one links the {side} ({who}) is ambiguous; say which "
                f"with foreign_keys=\"{sec.name}.c.{first}\" (the association column that points at the "
                f"{side}) or {join}={who}.{cands[0].column.key} == {sec.name}.c.{first}"
            )
        return [(fk.column, fk.parent) for fk in cands]  # type: ignore[misc]

    def _join_arg(self, value: Any, what: str, table: Table, sec: Table) -> list[tuple[Column, Column]] | None:
        """``primaryjoin=`` / ``secondaryjoin=`` as (column of ``table``, association column) pairs.

        Accepted: ``a == b`` or ``and_(a == b, ...)`` (``&`` too) over columns, a lambda
        returning one, or its string form (``"User.id == follower_user.c.follower_id"``)."""
        if value is None:
            return None
        if _is_lambda(value):
            value = value()
        terms: list[tuple[Column, Column]] = []
        if isinstance(value, str):
            for term in _split_join(value):
                if len(term) != 2:
                    raise ArgumentError(
                        f"relationship {self}: {what}={value!r} should read "
                        f"'Model.column == {sec.name}.c.column' (several joined with ' and ')"
                    )
                terms.append((self._lookup_column(term[0], what), self._lookup_column(term[1], what)))
        else:
            terms = [(self._join_column(a, what), self._join_column(b, what))
                     for a, b in _equalities(value, self, what)]
        if not terms:
            raise ArgumentError(f"relationship {self}: {what}={value!r} compares no columns")
        out: list[tuple[Column, Column]] = []
        for a, b in terms:
            if b.table is sec and a.table is table:
                out.append((a, b))
            elif a.table is sec and b.table is table:
                out.append((b, a))
            else:
                raise ArgumentError(
                    f"relationship {self}: {what}= must compare columns of {table.name!r} with columns of "
                    f"the secondary table {sec.name!r}; got {a.table.name}.{a.name} == {b.table.name}.{b.name}"
                )
        return out

    def _join_column(self, el: Any, what: str) -> Column:
        if isinstance(el, Column):
            return el
        if isinstance(el, BindParameter):
            # `id == table.c.x` inside the class body compares with the column() spec
            for m in (self.parent, self.mapper):
                col = m.column_specs.get(id(el.value))
                if col is not None:
                    return col
        raise ArgumentError(f"relationship {self}: {what}= compares columns only, not {el!r}")

    def _columns_arg(self, value: Any, what: str) -> list[Column]:
        if value is None:
            return []
        if _is_lambda(value):
            value = value()  # foreign_keys=lambda: [...], as in SQLAlchemy
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
        """A column named ``"Model.attr"``, ``"table.c.column"`` or ``"table.column"`` (a Table's)."""
        parts = text.strip().split(".")
        if len(parts) == 3 and parts[1] == "c":
            parts = [parts[0], parts[2]]
        if len(parts) != 2 or not all(parts):
            raise ArgumentError(
                f"relationship {self}: {what}={text!r} should read 'Model.column' or 'table.c.column'"
            )
        name, attr = parts
        from .mapper import is_mapped_name, mapper_for_name

        tables = self.parent.table.metadata.tables
        if is_mapped_name(name) or name not in tables:
            m = mapper_for_name(name, self)
            col = m.columns.get(attr)
            if col is None:
                raise ArgumentError(f"relationship {self}: {what}={text!r}: {name} has no column {attr!r}")
            return col
        tcol = tables[name].c.get(attr)
        if tcol is None:
            raise ArgumentError(f"relationship {self}: {what}={text!r}: table {name!r} has no column {attr!r}")
        return tcol

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
                if "." in name:
                    col = self._lookup_column(name, "order_by")
                elif name in self.mapper.columns:
                    col = self.mapper.columns[name]
                else:
                    raise ArgumentError(
                        f"relationship {self}: order_by={item!r} names no column of "
                        f"{self.mapper.class_.__name__} (it has {', '.join(self.mapper.columns)})")
                out.append(col.desc() if desc else col)
            else:
                out.append(item)
        return out

    def of_type(self, entity: Any) -> AliasedRelationship:
        """This relationship to an alias of its target: ``.join(Employee.manager.of_type(m))``.

        ``entity`` is an ``aliased()`` model of the target (or the target itself); anything else
        raises ``ArgumentError``. The result goes in ``join()`` / ``outerjoin()``.
        """
        from .aliased import AliasedRelationship

        return AliasedRelationship(self, None, None).of_type(entity)

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


def _is_lambda(value: Any) -> bool:
    """A deferred argument (``lambda: ...``, as SQLAlchemy allows), not a class or an element."""
    return callable(value) and not isinstance(value, (type, ClauseElement, Table))


def _equalities(expr: Any, rel: Relationship, what: str) -> list[tuple[Any, Any]]:
    """The (left, right) sides of ``a == b`` terms joined by AND."""
    if isinstance(expr, BooleanClauseList) and expr.op == "AND":
        return [pair for clause in expr.clauses for pair in _equalities(clause, rel, what)]
    if isinstance(expr, BinaryExpression) and expr.op == "=":
        return [(expr.left, expr.right)]
    raise ArgumentError(
        f"relationship {rel}: {what}= takes column == column comparisons (joined with and_() or &), "
        f"not {expr!r}"
    )


_AND_RE = re.compile(r"\s+and\s+|\s*&\s*|\s*,\s*")


def _split_join(text: str) -> list[list[str]]:
    """``"a == b and c == d"`` (or ``"and_(a == b, c == d)"``) -> [["a", "b"], ["c", "d"]]."""
    text = text.strip()
    if text.startswith("and_(") and text.endswith(")"):
        text = text[5:-1]
    return [[side.strip().strip("()").strip() for side in term.strip().strip("()").split("==")]
            for term in _AND_RE.split(text) if term.strip()]


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
