"""The connections of a multi-engine transaction: a replica's, other engines', and how they end.

A session with a ``Router`` (``binds.py``) keeps its primary connection where
every session keeps it (``session._conn``, ``connection.py``); the others live
in a :class:`RoutedTx` made on demand and dropped when the transaction ends.
Commit commits the other engines' connections first, then the primary's: it is
not two-phase, so a failure between two commits leaves the earlier ones
committed.  A replica's connection only reads and is rolled back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from .. import exc
from ..engine.connection import Connection
from ..engine.engine import Engine
from .binds import Bind, Router, bind_for, engine_name, statement_bind, table_bind, writes
from .connection import autobegin, connection, require_usable

if TYPE_CHECKING:
    from ..mapping.mapper import Mapper
    from ..sql.schema import Table
    from .session import AsyncSession
    from .unitofwork import FlushPlan, Step


class RoutedTx:
    """One transaction's connections besides the primary's."""

    __slots__ = ("conns", "replica", "wrote")

    def __init__(self) -> None:
        #: other engines' connections (``binds``), by engine, in the order first used
        self.conns: dict[Engine, Connection] = {}
        #: the replica connection reads use until the transaction writes
        self.replica: Connection | None = None
        #: the transaction wrote (or asked for the primary): the rest of it runs there
        self.wrote = False


def _routed(session: AsyncSession) -> RoutedTx:
    r = session._routed
    if r is None:
        r = session._routed = RoutedTx()
    return r


async def connection_to(session: AsyncSession, bind: Bind, write: bool) -> Connection:
    """The transaction's connection to ``bind`` (checked out if needed); for the session's own
    bind with replicas, a replica's unless the transaction has written (or ``write``)."""
    autobegin(session)
    router: Router = session._router  # type: ignore[assignment]
    if bind is session.bind:
        if router.replicas is None or isinstance(bind, Connection):
            return await connection(session)
        r = _routed(session)
        if write or r.wrote:
            if not r.wrote:
                r.wrote = True
                await _drop_replica(r)
            return await connection(session)
        if r.replica is None:
            r.replica = await _replica_connection(router)
        return r.replica if r.replica is not None else await connection(session)
    if isinstance(bind, Connection):
        raise exc.ArgumentError(
            f"get_bind() / binds= gave a Connection ({bind!r}) that is not the session's bind: other engines "
            "of a session are given as Engines (the session checks their connections out itself)"
        )
    if in_savepoint(session):
        raise exc.InvalidRequestError(
            f"a SAVEPOINT (begin_nested()) is open on this session's primary engine and this work goes to "
            f"engine {engine_name(bind)}: SAVEPOINTs cover one engine only; leave the begin_nested() block first"
        )
    r = _routed(session)
    conn = r.conns.get(bind)
    if conn is None:
        conn = r.conns[bind] = Connection(bind)
    return conn


def in_savepoint(session: AsyncSession) -> bool:
    return len(session._levels) > 1


async def _replica_connection(router: Router) -> Connection | None:
    """A checked-out connection to the next replica that accepts one (round robin); None when
    none does (reads then go to the primary)."""
    assert router.replicas is not None
    for engine in router.replicas.order():
        conn = Connection(engine)
        try:
            await conn.acquire()
        except (exc.OperationalError, exc.PoolTimeoutError, OSError):
            await conn._release()
            continue
        return conn
    return None


async def _drop_replica(r: RoutedTx) -> None:
    conn, r.replica = r.replica, None
    if conn is not None:
        await conn._release(rollback=True)


# -- what the session and the loaders ask for ------------------------------------------
async def connection_for_statement(session: AsyncSession, stmt: Any) -> Connection:
    router: Router = session._router  # type: ignore[assignment]
    return await connection_to(session, statement_bind(session, router, stmt), writes(stmt))


async def connection_for_mapper(session: AsyncSession, mapper: Mapper, write: bool) -> Connection:
    router: Router = session._router  # type: ignore[assignment]
    return await connection_to(session, bind_for(session, router, mapper, None), write)


async def default_connection(session: AsyncSession) -> Connection:
    """For work that names no entity: the session's bind (a replica's while only reading)."""
    if session.bind is None:
        raise exc.InvalidRequestError(
            "this session has no default engine: give sessionmaker(engine, binds=...) one"
        )
    return await connection_to(session, session.bind, False)


async def primary_connection(session: AsyncSession) -> Connection:
    """``session.connection()``, a SAVEPOINT: the primary, and the transaction counts as writing."""
    if session.bind is None:
        raise exc.InvalidRequestError(
            "this session has no default engine: give sessionmaker(engine, binds=...) one"
        )
    return await connection_to(session, session.bind, True)


async def savepoint_connection(session: AsyncSession) -> Connection:
    """The connection a SAVEPOINT is begun on: the primary's, and only while no other engine
    has one in this transaction (a SAVEPOINT covers one engine)."""
    r = session._routed
    if r is not None and r.conns:
        names = ", ".join(engine_name(e) for e in r.conns)
        raise exc.InvalidRequestError(
            f"begin_nested(): this transaction also has connections to other engines ({names}); a SAVEPOINT "
            "covers one engine only, so it cannot undo their work: begin it before using the other engines"
        )
    return await primary_connection(session)


async def ready_for(session: AsyncSession, stmt: Any) -> Connection:
    from .flush import autoflush

    require_usable(session)
    autobegin(session)
    await autoflush(session)
    return await connection_for_statement(session, stmt)


# -- flush ---------------------------------------------------------------------------
def _step_table(step: Step) -> Table:
    mapper = getattr(step, "mapper", None)
    if mapper is not None:
        return mapper.table  # type: ignore[no-any-return]
    table = getattr(step, "table", None)
    if table is not None:
        return table  # type: ignore[no-any-return]
    rel = step.rel  # type: ignore[union-attr]
    table_: Table = rel.secondary if step.purge else rel.mapper.table  # type: ignore[union-attr,assignment]
    return table_


async def plan_connections(session: AsyncSession, plan: FlushPlan) -> list[Connection]:
    """The connection of each step of a flush plan (the rows of each engine on its own)."""
    router: Router = session._router  # type: ignore[assignment]
    by_bind: dict[int, Connection] = {}
    out = []
    for step in plan.steps:
        bind = table_bind(session, router, _step_table(step))
        conn = by_bind.get(id(bind))
        if conn is None:
            conn = by_bind[id(bind)] = await connection_to(session, bind, True)
        out.append(conn)
    return out


# -- the end of the transaction --------------------------------------------------------
async def commit_others(session: AsyncSession) -> None:
    """Commit the other engines' connections (before the primary's) and give every one back.
    A failure leaves those committed before it committed: this is not two-phase."""
    r = session._routed
    if r is None:
        return
    try:
        await _drop_replica(r)
        while r.conns:
            engine = next(iter(r.conns))
            conn = r.conns[engine]
            try:
                conn._savepoints.clear()
                await conn.commit()
            finally:
                del r.conns[engine]
                await conn._release()
    except BaseException:
        await release_others(session)
        raise
    session._routed = None


async def release_others(session: AsyncSession) -> None:
    """Roll back and give back every connection but the primary's (shielded; raises nothing but
    a cancellation that arrived meanwhile)."""
    r = session._routed
    if r is None:
        return
    session._routed = None
    with anyio.CancelScope(shield=True):
        conns = [c for c in (r.replica, *r.conns.values()) if c is not None]
        r.conns.clear()
        r.replica = None
        for conn in conns:
            try:
                await conn._release(rollback=True)
            except Exception:
                pass


def lost(session: AsyncSession) -> BaseException | None:
    """Why a statement on another engine's connection was interrupted, if one was."""
    r = session._routed
    if r is None:
        return None
    for conn in (r.replica, *r.conns.values()):
        if conn is not None and conn._lost is not None:
            return conn._lost
    return None
