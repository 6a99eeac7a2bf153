"""Engine: the pool of connections to one database, and create_engine() that makes one.

Separate from ``connection.py``: this is configuration (URL, dialect, pool, ``echo``) checked
once, where the connection is the per-use state machine.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from .. import exc
from ..dialects.base import Dialect, Pool
from ..dialects.pool import NullPool
from .connection import Connection
from .url import URL, make_url

log = logging.getLogger("aiouow.engine")


class Engine:
    """Connections to one database.  Make one with :func:`create_engine`.

    Attributes:
        url: The parsed database URL.
        dialect: The database's dialect: how SQL is spelled and values are converted for it.
        isolation_level: The isolation level every transaction of the engine begins at (``None``: the
            database's default).
        prepared_statements: ``False`` when no prepared statement may outlive the round trip that uses
            it (PgBouncer in transaction mode).
        pool_size: How many connections may be open at once.
        pool_timeout: Seconds to wait for a free connection before ``PoolTimeoutError``.
        pool_pre_ping: Whether a pooled connection is checked (``SELECT 1``) as it is checked out.
        poolclass: ``"queue"`` (the pool) or ``"null"`` (no idle connections: each checkout opens one).
        pool: The connection pool.
    """

    def __init__(self, url: URL, dialect: Dialect, pool_size: int, pool_timeout: float, echo: bool,
                 connect_args: dict[str, Any], pool_pre_ping: bool = False, poolclass: str = "queue",
                 isolation_level: str | None = None, prepared_statements: bool = True,
                 always_begin: bool = False) -> None:
        self.url = url
        self.dialect = dialect
        #: the isolation level every transaction of this engine begins with (None: the database's default)
        self.isolation_level = isolation_level
        #: False: no prepared statement outlives the round trip that uses it (PgBouncer's transaction mode)
        self.prepared_statements = prepared_statements
        #: True: every transaction sends BEGIN before its first statement (no read runs before it,
        #: no single statement is autocommitted); see create_engine()
        self.always_begin = always_begin
        """True: every transaction sends BEGIN before its first statement (see ``create_engine()``)."""
        self.pool_size = pool_size
        self.pool_timeout = pool_timeout
        self.pool_pre_ping = pool_pre_ping
        self.poolclass = poolclass
        self.echo = echo
        pool = dialect.create_pool(url, pool_size, connect_args)
        pool.pre_ping = pool_pre_ping
        self.pool: Pool = NullPool(pool) if poolclass == "null" else pool
        self._trips = pool.trips

    @property
    def round_trips(self) -> int:
        """Calls made to the database so far (to the worker thread on SQLite).

        Each statement, stream chunk, BEGIN, COMMIT, ROLLBACK, SAVEPOINT and ping counts one;
        opening a connection does not.  Read it before and after some work to see what it cost.
        """
        return self._trips.count

    @property
    def echo(self) -> bool:
        """Log every statement through the ``aiouow.engine`` logger at INFO."""
        return self._echo

    @echo.setter
    def echo(self, value: bool) -> None:
        self._echo = bool(value)
        if value and log.level == logging.NOTSET:
            log.setLevel(logging.INFO)
            if not logging.getLogger().handlers and not log.handlers:
                handler = logging.StreamHandler()
                handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
                log.addHandler(handler)

    def connect(self, *, isolation_level: str | None = None) -> Connection:
        """A connection: ``async with engine.connect() as conn:``.

        ``isolation_level`` overrides the engine's for its transactions.
        """
        return Connection(self, isolation_level=self.dialect.check_isolation_level(
            isolation_level, "engine.connect()"))

    def begin(self) -> _EngineBegin:
        """A connection in a transaction: ``async with engine.begin() as conn:``.

        The transaction is committed on success and rolled back on error.
        """
        return _EngineBegin(self)

    async def dispose(self) -> None:
        """Close every pooled connection not in use."""
        await self.pool.dispose()

    def __repr__(self) -> str:
        return f"Engine({self.url.raw!r})"


class _EngineBegin:
    def __init__(self, engine: Engine) -> None:
        self.conn = Connection(engine)

    async def __aenter__(self) -> Connection:
        await self.conn._driver()
        self.conn.begin()
        return self.conn

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            if et is None:
                await self.conn.commit()
        finally:
            await self.conn.close()


def create_engine(
    url: str | URL,
    *,
    echo: bool = False,
    pool_size: int = 10,
    pool_timeout: float = 30.0,
    pool_pre_ping: bool = False,
    poolclass: str = "queue",
    connect_args: dict[str, Any] | None = None,
    isolation_level: str | None = None,
    prepared_statements: bool = True,
    always_begin: bool = False,
) -> Engine:
    """An engine for ``sqlite:///file.db``, ``sqlite:///:memory:`` or ``postgresql://...``.

    ``pool_size`` caps the connections open at once.  ``pool_pre_ping=True`` runs ``SELECT 1``
    on each pooled connection as it is checked out and replaces it if that fails (a server
    restart, a terminated backend).  ``poolclass="null"`` keeps no idle connections: each
    checkout opens one and its release closes it (SQLAlchemy's ``NullPool``), for tests that
    run several event loops and for serverless code.  ``connect_args`` go to the driver's
    connect call unchanged.

    ``isolation_level`` starts every transaction at that level: on PostgreSQL ``"READ COMMITTED"``
    (its default), ``"REPEATABLE READ"`` or ``"SERIALIZABLE"``; on SQLite ``"READ COMMITTED"`` (the
    default routing) or ``"SERIALIZABLE"`` (the whole transaction on the writer).
    ``prepared_statements=False`` is for a pooler in transaction mode (PgBouncer before 1.21):
    no named prepared statement is kept on the server, the same as
    ``connect_args={"statement_cache_size": 0}``; SQLite has no server and ignores it.

    By default a transaction sends BEGIN only with its first statement that is not a plain read,
    and a commit whose whole work is one statement sends that statement alone, autocommitted
    (docs/sessions.md, "Round trips"; ``engine/connection.py``).  ``always_begin=True`` sends BEGIN before the
    first statement of every transaction, whatever it is, and COMMIT after the last, as before
    this optimisation: for code that relies on every statement of a transaction sharing its start
    time or running on one server session (on SQLite a BEGIN still waits for the first write, as
    SQLite's routing always did; a whole-transaction snapshot there is ``isolation_level="SERIALIZABLE"``).
    """
    u = make_url(url)
    _check_pool_args(u, pool_size, pool_timeout, pool_pre_ping, poolclass, connect_args)
    if not isinstance(always_begin, bool):
        raise exc.ArgumentError(f"create_engine(always_begin=...) must be True or False, got {always_begin!r}")
    args = dict(connect_args or {})
    prepared_statements = _prepared_statements(u, prepared_statements, args)
    if u.backend == "sqlite":
        from ..dialects.sqlite import SQLiteDialect

        dialect: Dialect = SQLiteDialect()
    else:
        from ..dialects.postgresql import PGDialect

        dialect = PGDialect()
    level = dialect.check_isolation_level(isolation_level, "create_engine()")
    return Engine(u, dialect, pool_size, float(pool_timeout), echo, args, pool_pre_ping=pool_pre_ping,
                  poolclass=poolclass, isolation_level=level, prepared_statements=prepared_statements,
                  always_begin=always_begin)


def _prepared_statements(url: URL, prepared: Any, args: dict[str, Any]) -> bool:
    """Reconcile ``prepared_statements`` with asyncpg's ``statement_cache_size`` in ``args``
    (updated in place): either spelling of "no prepared statements" gives the other."""
    if not isinstance(prepared, bool):
        raise exc.ArgumentError(f"create_engine(prepared_statements=...) must be True or False, got {prepared!r}")
    if url.backend != "postgresql":
        return prepared
    size = args.get("statement_cache_size")
    if size == 0:
        return False
    if not prepared:
        if size is not None:
            raise exc.ArgumentError(
                f"create_engine(prepared_statements=False, connect_args={{'statement_cache_size': {size!r}}}): "
                "the two contradict each other; statement_cache_size=0 is what prepared_statements=False "
                "means, so give one of them"
            )
        args["statement_cache_size"] = 0
    return prepared


_POOLCLASSES = ("queue", "null")


def _check_pool_args(url: URL, pool_size: Any, pool_timeout: Any, pool_pre_ping: Any, poolclass: Any,
                     connect_args: Any) -> None:
    if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
        # pool_size=0 is not "no pool": SQLAlchemy reads it as "no limit", so it would mislead
        raise exc.ArgumentError(
            f"create_engine(pool_size=...) must be an int of at least 1, got {pool_size!r}; "
            "to keep no idle connections use poolclass='null'"
        )
    if (isinstance(pool_timeout, bool) or not isinstance(pool_timeout, (int, float))
            or not pool_timeout > 0):
        raise exc.ArgumentError(f"create_engine(pool_timeout=...) must be a positive number of seconds, "
                                f"got {pool_timeout!r}")
    if not isinstance(pool_pre_ping, bool):
        raise exc.ArgumentError(f"create_engine(pool_pre_ping=...) must be True or False, got {pool_pre_ping!r}")
    if poolclass not in _POOLCLASSES:
        raise exc.ArgumentError(
            f"create_engine(poolclass=...) must be one of {', '.join(map(repr, _POOLCLASSES))}, got {poolclass!r}"
        )
    if poolclass == "null" and url.backend == "sqlite" and url.database == ":memory:":
        raise exc.ArgumentError(
            f"create_engine({url.raw!r}, poolclass='null'): every new connection to an SQLite :memory: "
            "database is a new, empty database; use a database file, or the default poolclass"
        )
    if connect_args is not None and not isinstance(connect_args, Mapping):
        raise exc.ArgumentError(f"create_engine(connect_args=...) must be a dict, got {type(connect_args).__name__}")
