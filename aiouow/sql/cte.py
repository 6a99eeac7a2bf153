"""Common table expressions: ``stmt.cte("tree")`` names a SELECT in a ``WITH`` clause at the top
of the outermost statement; ``recursive=True`` with ``.union_all(...)`` lets it refer to itself."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..exc import ArgumentError
from .elements import BindParameter
from .subquery import CompoundSelect, Subquery

if TYPE_CHECKING:
    from .selectable import Select


class CTE(Subquery):
    """A named SELECT (or set operation) in ``WITH``, used in FROM / JOIN like a subquery.

    Its columns are ``cte.c.<name>``. A statement that refers to it (once or more, also from
    inside a subquery or another CTE) renders it once in its ``WITH``.

    Attributes:
        recursive: Whether it renders as ``WITH RECURSIVE`` (it may refer to itself).
    """

    __slots__ = ("recursive", "_restates")
    visit_name = "cte"

    def __init__(self, element: Select[Any] | CompoundSelect[Any], name: str | None = None,
                 recursive: bool = False, _restates: CTE | None = None) -> None:
        super().__init__(element, name)
        self.recursive = recursive
        #: the anchor CTE this one completes (``anchor.union_all(...)``): one WITH entry for both
        self._restates = _restates

    @property
    def _root(self) -> CTE:
        cte = self
        while cte._restates is not None:
            cte = cte._restates
        return cte

    def _completes(self, other: CTE) -> bool:
        """Whether this CTE is ``other`` with more set-operation members (``other.union_all(...)``)."""
        cte = self._restates
        while cte is not None:
            if cte is other:
                return True
            cte = cte._restates
        return False

    def _set_op(self, keyword: str, others: tuple[Select[Any], ...]) -> CTE:
        if isinstance(self.element, CompoundSelect) and self._restates is not None:
            raise ArgumentError(f"{keyword.lower()}(): this CTE is already a set operation; "
                                "pass every recursive member in one call")
        return CTE(CompoundSelect(keyword, (self.element, *others)), self.name, self.recursive, self)

    def union_all(self, *others: Select[Any]) -> CTE:
        """This CTE as ``anchor UNION ALL others``: the recursive part of a tree walk.

        With ``recursive=True`` the others may join this CTE itself.
        """
        return self._set_op("UNION ALL", others)

    def union(self, *others: Select[Any]) -> CTE:
        """As :meth:`union_all`, duplicates removed (which also stops a walk around a cycle)."""
        return self._set_op("UNION", others)

    def _ck(self, binds: list[BindParameter]) -> Any:
        binds.append(self._root._marker)
        if self._restates is not None:
            # the element refers to the anchor CTE, whose key holds the anchor SELECT
            return ("cte", self.name, self.recursive, "restated", self.element._ck(binds))
        return ("cte", self.name, self.recursive, self.element._ck(binds))

    def __repr__(self) -> str:
        return f"CTE({self.name or 'anon'})"


__all__ = ["CTE"]
