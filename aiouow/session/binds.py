"""Routing decisions of a session with several engines: pure functions, no I/O.

A session made with ``replicas=[...]``, ``binds={...}`` or a ``get_bind`` hook
(an override in a subclass, or ``get_bind=`` given to the session) has a
:class:`Router`; a plain single-engine session has none and never calls into
this module.  ``routed.py`` holds the connections these decisions pick.

* Which engine: the entities (and tables) a statement selects or writes, looked
  up in ``binds`` (model class, mapper or table), else the session's ``bind``.
  A statement whose tables live on different engines is refused: no database
  can join across engines.
* Primary or replica: only the session's own ``bind`` has replicas.  Reads go
  to a replica until the transaction writes (a flush, a DML statement, literal
  SQL that is not a plain read, ``FOR UPDATE``, a SAVEPOINT); the rest of the
  transaction then runs on the primary, so it reads its own writes.
  ``execution_options(bind="primary")`` sends one statement to the primary.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .. import exc
from ..engine.connection import Connection
from ..engine.engine import Engine
from ..mapping.mapper import Mapper
from ..sql.dml import DMLStatement
from ..sql.elements import TextClause, leading_keyword
from ..sql.schema import Table
from ..sql.selectable import Select
from ..sql.subquery import CompoundSelect

if TYPE_CHECKING:
    from .session import AsyncSession

Bind = Engine | Connection
#: ``get_bind(mapper, clause)``: the engine for this work, or None for the default
GetBind = Callable[[Mapper | None, Any], Bind | None]

#: literal SQL starting with one of these words reads (anything else may write)
_READ_WORDS = frozenset(("select", "values", "show", "table", "explain"))


class ReplicaSet:
    """The read replicas of one primary, shared by every session of a ``sessionmaker`` so
    that round robin spans sessions."""

    __slots__ = ("engines", "_next")

    def __init__(self, engines: Iterable[Engine]) -> None:
        self.engines: tuple[Engine, ...] = tuple(engines)
        for e in self.engines:
            if not isinstance(e, Engine):
                raise exc.ArgumentError(f"replicas= takes engines (create_engine(url)), not {e!r}")
        self._next = 0

    def __len__(self) -> int:
        return len(self.engines)

    def __contains__(self, engine: object) -> bool:
        return any(e is engine for e in self.engines)

    def order(self) -> list[Engine]:
        """The replicas to try for the next transaction: round robin, then the others as
        fallbacks (one that fails to connect is skipped)."""
        n = len(self.engines)
        start = self._next % n
        self._next = start + 1
        return [*self.engines[start:], *self.engines[:start]]

    def __repr__(self) -> str:
        return f"ReplicaSet({list(self.engines)!r})"


def replica_set(replicas: ReplicaSet | Sequence[Engine] | bool | None) -> ReplicaSet | None:
    """What ``replicas=`` says: a shared set, a list of engines, or False/None for none."""
    if replicas is None or replicas is False:
        return None
    if replicas is True:
        raise exc.ArgumentError("replicas=True: give the replica engines (replicas=[engine, ...]) "
                                "or replicas=False to read from the primary")
    if isinstance(replicas, ReplicaSet):
        return replicas if len(replicas) else None
    if isinstance(replicas, Engine) or not isinstance(replicas, Iterable):
        raise exc.ArgumentError(f"replicas= takes a list of engines, not {replicas!r}")
    rs = ReplicaSet(replicas)
    return rs if len(rs) else None


def normalize_binds(binds: Mapping[Any, Bind] | None) -> dict[Any, Bind]:
    """``binds={User: engine, Post.__table__: engine}`` keyed by mapper and by table."""
    out: dict[Any, Bind] = {}
    for key, bind in (binds or {}).items():
        if not isinstance(bind, Engine):
            raise exc.ArgumentError(f"binds={{{key!r}: ...}}: the value must be an Engine, not {bind!r}")
        mapper = getattr(key, "__aiouow_mapper__", None)
        if mapper is not None:
            out[mapper] = bind
        elif isinstance(key, (Mapper, Table)):
            out[key] = bind
        else:
            raise exc.ArgumentError(f"binds= keys are model classes, mappers or tables, not {key!r}")
    return out


class Router:
    """What a multi-engine session routes by; None on a plain session."""

    __slots__ = ("binds", "replicas", "hook")

    def __init__(self, binds: dict[Any, Bind], replicas: ReplicaSet | None, hook: bool) -> None:
        self.binds = binds
        self.replicas = replicas
        #: ``session.get_bind`` decides (a subclass override or ``get_bind=``), not the plain lookup;
        #: a flag, not the bound method, so that the session holds no reference cycle
        self.hook = hook


def bind_for(session: AsyncSession, router: Router, mapper: Mapper | None, clause: Any) -> Bind:
    """The engine for work on ``mapper`` (None: no entity) and ``clause``."""
    if router.hook:
        return session.get_bind(mapper, clause)
    return default_bind(session, router.binds, mapper)


def default_bind(session: AsyncSession, binds: dict[Any, Bind], mapper: Mapper | None) -> Bind:
    """``binds`` by mapper, then by table, else the session's ``bind``."""
    if mapper is not None and binds:
        b = binds.get(mapper)
        if b is None:
            b = binds.get(mapper.table)
        if b is not None:
            return b
    if session.bind is None:
        what = f" for {mapper.class_.__name__}" if mapper is not None else ""
        raise exc.InvalidRequestError(
            f"this session has no engine{what}: give sessionmaker(engine) a default engine, or name "
            "the class in binds={Model: engine}"
        )
    return session.bind


def table_bind(session: AsyncSession, router: Router, table: Table) -> Bind:
    """The engine of a table's rows (an association table: by ``binds``, else by its mapper, else
    the default)."""
    if not router.hook and table in router.binds:
        return router.binds[table]
    return bind_for(session, router, table.mapper, table)


def _base_tables(item: Any, out: dict[Any, None]) -> None:
    if isinstance(item, Table):
        out[item] = None
    elif isinstance(item, Select):
        for t in item._from_tables():
            _base_tables(t, out)
    elif isinstance(item, CompoundSelect):
        for s in item.selects:
            _base_tables(s, out)
    else:
        inner = getattr(item, "element", None)  # an alias, a subquery, a CTE
        if inner is not None:
            _base_tables(inner, out)


def statement_tables(stmt: Any) -> list[Table]:
    """The tables in a statement's FROM list (through aliases, subqueries and CTEs), or its DML
    target; literal SQL has none."""
    out: dict[Any, None] = {}
    if isinstance(stmt, DMLStatement):
        _base_tables(stmt.table, out)
    else:
        _base_tables(stmt, out)
        if isinstance(stmt, Select):
            for opt in stmt._options:
                for _strategy, rel in getattr(opt, "path", ())[:1]:
                    if _strategy == "joined":
                        rel.resolve()
                        _base_tables(rel.mapper.table, out)
    return list(out)


def statement_bind(session: AsyncSession, router: Router, stmt: Any) -> Bind:
    """The one engine a statement runs on; a statement over tables of different engines is
    refused (a JOIN cannot span databases)."""
    tables = statement_tables(stmt)
    first_mapper = next((t.mapper for t in tables if t.mapper is not None), None)
    if router.hook:
        return session.get_bind(first_mapper, stmt)
    if len(tables) <= 1 or not router.binds:
        return table_bind(session, router, tables[0]) if tables else default_bind(session, router.binds, None)
    chosen: Bind | None = None
    chosen_table: Table | None = None
    for t in tables:
        b = table_bind(session, router, t)
        if chosen is None:
            chosen, chosen_table = b, t
        elif b is not chosen:
            assert chosen_table is not None
            raise exc.InvalidRequestError(
                f"this statement uses table {chosen_table.name!r} (engine {engine_name(chosen)}) and table "
                f"{t.name!r} (engine {engine_name(b)}): a query cannot join tables of different engines; "
                "query each engine on its own and load relationships across engines with selectinload() "
                "or session.load()"
            )
    assert chosen is not None
    return chosen


def engine_name(bind: Bind) -> str:
    """The engine's URL without its password, for messages."""
    engine = bind.engine if isinstance(bind, Connection) else bind
    return re.sub(r"(//[^:/@]*):[^@/]*@", r"\1:***@", str(engine.url))


def writes(stmt: Any) -> bool:
    """Whether a statement must run on the primary: DML, ``FOR UPDATE``, literal SQL that is not a
    plain read, or ``execution_options(bind="primary")``."""
    if isinstance(stmt, Select):
        return stmt._for_update or stmt._execution_options.get("bind") == "primary"
    if isinstance(stmt, CompoundSelect):
        return stmt._execution_options.get("bind") == "primary"
    if isinstance(stmt, TextClause):
        return leading_keyword(stmt.text) not in _READ_WORDS
    return True
