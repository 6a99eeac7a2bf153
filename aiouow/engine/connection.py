"""Connection: run statements on a pooled driver connection, in a transaction.

All SQL of aiouow, the ORM's flushes included, goes through
:meth:`Connection.fetch_sql` / :meth:`Connection.execute_sql` /
:meth:`Connection.executemany_sql`, so logging (``echo``) and driver-error
translation live in one place.  The :class:`Engine` that makes connections is in
``engine.py`` and the ``async with conn.begin():`` handle in ``transaction.py``; this
module is the connection alone: its state machine and statement execution.

A transaction starts lazily: ``begin()`` (or autobegin) only notes it, and
``BEGIN`` is sent with the first statement that is not a plain read, so
work that never touches the database costs no round trip, and neither do the
reads before a transaction's first write.

Which statements run before BEGIN.  Problem: a small transaction paid round trips its
work does not need (BEGIN and COMMIT around a single INSERT; BEGIN before the SELECT of
``get()`` + change + commit).  The rule, one for both backends (PENDING below is "BEGIN
not sent"):

- A *plain read* (``Compiled.reads_only``: a SELECT aiouow compiled, without FOR UPDATE,
  ``text()`` fragments, DML or functions outside ``sql.compiler.PURE_FUNCTIONS``) runs on
  its own while the transaction is PENDING, and sees the latest committed data.  At READ
  COMMITTED each statement of a transaction takes a new snapshot anyway and a plain SELECT
  takes no lock, so nothing tells it from a read inside the transaction; on SQLite these are
  the reads that run on a pooled reader (``dialects/sqlite_pool.py``).  A stream on
  PostgreSQL begins (its cursor lives in a transaction).
- ``alone``: the one statement of a commit whose whole work it is (the session decides,
  ``session/flush.py``) is sent without BEGIN, autocommitted, and ``commit()`` then has
  nothing to send.  A single statement is atomic, so what it does is all or nothing, as in a
  transaction.
- Anything else (a write, ``text()`` and ``exec_driver_sql()``, which may be ``SET LOCAL`` or
  a transaction-scoped lock, ``with_for_update()``, a SAVEPOINT) sends BEGIN first, and from
  then on every statement is in the transaction, as before.
- Never before BEGIN: with an isolation level other than the default READ COMMITTED, with
  ``create_engine(always_begin=True)``, and on a connection a session handed to user code
  (``session.connection()``, ``after_begin`` listeners), all of which set ``_lazy`` off.

Alternatives: sending BEGIN in the same round trip as the first statement would keep every
statement in the transaction, but asyncpg has no pipelining API (its simple-query protocol
takes several statements only without parameters), and writing protocol messages through
its private ``_protocol`` is not an option; SQLite does it already (the BEGIN runs in the
statement's thread hop).  A connection found dead at such a first statement is replaced as
at BEGIN (``_first_begin``): a read is sent again, an autocommitted write only when the
error shows it never ran (``Dialect.never_ran``).

A :class:`Connection` is in one :class:`ConnState`; every change goes through
:data:`MOVES` (``Connection._set``), and a move not in it raises::

              begin()               first statement
      IDLE -------------> PENDING -----------------> BEGUN
      ^ ^ |  <-------------'                           |
      | | |  commit() / rollback() / release           |
      | | '------------- statement (autobegin) ------->|
      | '------------ commit() / rollback() / release -'
      |
      '-- rollback() --- LOST <--- an interrupted statement (rolled back, released: via IDLE)

      close(): every state -> CLOSED, which is final (no statement, begin() or checkout)

``begin_nested()`` moves IDLE to PENDING too, and joins PENDING or BEGUN.  A failed
COMMIT or ROLLBACK still ends in IDLE (the transaction is over either way), and so does a
failed BEGIN (none began: the next statement sends BEGIN again).  The
misuses the table refuses raise what they always raised: a second ``begin()``
InvalidRequestError, a statement or ``begin()`` when LOST PendingRollbackError (until
``rollback()``), a statement or ``begin()`` on a closed connection InvalidRequestError.

Whether the *driver* connection may go back to the pool (not after an
operational error or a failed ROLLBACK) is a fact about that driver connection,
not about the transaction: it outlives rollback() until the connection is
released, so it is ``Connection._discard``, beside the state.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .. import exc
from ..dialects.base import Dialect, DriverConnection
from ..dialects.value_errors import explain
from ..sql.compiler import Compiled, quote
from ..sql.dml import Insert, Update, attribute_label, refused_value
from ..sql.elements import BindParameter, ClauseElement, TextClause, leading_keyword
from .cancellation import _interrupted, run_shielded
from .result import AsyncResult, Result, _process, make_row_class
from .transaction import Transaction

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("aiouow.engine")

_ROWS_WORDS = frozenset(("select", "with", "values", "show", "pragma", "explain", "table"))
_RETURNING_RE = re.compile(r"\breturning\b", re.I)


def _returns_rows(sql: str) -> bool:
    """Whether literal SQL returns rows: its first word past comments and parentheses (a
    leading ``/* ... */`` or ``-- ...`` must not turn a SELECT into a statement without rows),
    or a RETURNING clause."""
    return leading_keyword(sql) in _ROWS_WORDS or _RETURNING_RE.search(sql) is not None

# tasks returning connections of garbage-collected owners; kept referenced until done
_cleanup_tasks: set[asyncio.Task[Any]] = set()


class ConnState(enum.Enum):
    """Where a :class:`Connection`'s transaction is (see the module docstring)."""

    IDLE = "idle"  # no transaction
    PENDING = "pending"  # begin() noted one; BEGIN not sent yet
    BEGUN = "begun"  # BEGIN sent, or due with the driver's next statement
    LOST = "lost"  # rolled back under an interrupted operation; refuses work until rollback()
    CLOSED = "closed"  # close() ran


_IDLE, _PENDING, _BEGUN, _LOST, _CLOSED = (ConnState.IDLE, ConnState.PENDING, ConnState.BEGUN,
                                           ConnState.LOST, ConnState.CLOSED)

#: the moves a Connection makes, by state it leaves
MOVES: dict[ConnState, frozenset[ConnState]] = {
    _IDLE: frozenset({_PENDING, _BEGUN, _LOST, _CLOSED}),
    _PENDING: frozenset({_BEGUN, _IDLE, _CLOSED}),
    _BEGUN: frozenset({_IDLE, _CLOSED}),
    _LOST: frozenset({_IDLE, _CLOSED}),
    _CLOSED: frozenset(),
}

#: called as ``hook(connection, old, new)`` after every move (tests record transitions with it)
transition_hook: Callable[[Connection, ConnState, ConnState], None] | None = None

_CLOSED_MESSAGE = "this connection is closed; open a new one with engine.connect()"


def _format_params(params: Any) -> str:
    text = repr(params)
    return text if len(text) <= 500 else text[:500] + " ...]"


class Connection:
    """A database connection with a transaction (core level).

    ``async with engine.connect() as conn:``; statements autobegin a
    transaction, ``commit()`` / ``rollback()`` end it, closing rolls back what
    was not committed and returns the connection to the pool.

    Attributes:
        engine: The :class:`Engine` the connection came from.
        dialect: The engine's dialect (SQL spelling and value conversions of its database).
        isolation_level: The level its transactions begin at (``None``: the database's default).
    """

    def __init__(self, engine: Engine, *, isolation_level: str | None = None) -> None:
        self.engine = engine
        self.dialect: Dialect = engine.dialect
        #: the level its transactions begin at (already checked by the dialect)
        self.isolation_level = isolation_level if isolation_level is not None else engine.isolation_level
        self._dc: DriverConnection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state = _IDLE
        self._savepoints: list[str] = []
        self._sp_counter = 0
        #: the driver connection is not given back to the pool for reuse (see the module docstring)
        self._discard = False
        #: why the transaction was lost (an operation cancelled mid-statement), while LOST
        self._lost_reason: BaseException | None = None
        #: no statement has run on the driver connection since it was checked out
        self._untried = False
        #: dead connections replaced under a first statement that ran without BEGIN
        self._replaced = 0
        #: reads may run before BEGIN, and a statement alone may be autocommitted (see the
        #: module docstring); off with create_engine(always_begin=True), an isolation level
        #: other than the default, and for a connection handed to user code by a session
        self._lazy = not engine.always_begin and self.isolation_level in (None, "READ COMMITTED")
        #: the next statement, if nothing has begun the transaction, runs alone in autocommit
        #: (set by the session for a commit whose whole work is that one statement)
        self._alone = False

    # -- state -------------------------------------------------------------------
    def _set(self, new: ConnState) -> None:
        old = self._state
        if new not in MOVES[old]:
            self._refuse(old, new)
        self._state = new
        hook = transition_hook
        if hook is not None:
            hook(self, old, new)

    def _refuse(self, old: ConnState, new: ConnState) -> None:
        """Raise for a move the table does not have: the error each misuse has always raised."""
        if old is _LOST:
            self._check_lost()
        if old is _CLOSED:
            raise exc.InvalidRequestError(_CLOSED_MESSAGE)
        if new is _PENDING:
            raise exc.InvalidRequestError(
                "this connection already has a transaction (statements autobegin one); "
                "commit() or rollback() it first, or use begin_nested() for a SAVEPOINT"
            )
        raise exc.InvalidRequestError(f"a connection cannot go from {old.name} to {new.name}")

    def _end_transaction(self) -> None:
        """The transaction ended (committed, rolled back, or its connection released)."""
        if self._state is _BEGUN or self._state is _PENDING:
            self._set(_IDLE)

    @property
    def _lost(self) -> BaseException | None:
        """Why the transaction was lost, while the connection refuses work until rollback()
        (the session layer reads it to fail its own transaction)."""
        return self._lost_reason if self._state is _LOST else None

    # -- life cycle ----------------------------------------------------------
    async def _driver(self) -> DriverConnection:
        dc = self._dc
        if dc is None:
            if self._state is _CLOSED:
                raise exc.InvalidRequestError(_CLOSED_MESSAGE)
            dc = self._dc = await self.engine.pool.acquire(self.engine.pool_timeout)
            self._loop = asyncio.get_running_loop()
            self._untried = True
            self._replaced = 0
        return dc

    async def acquire(self) -> None:
        """Check a connection out of the pool now, if none is held yet (no transaction begins).

        A large flush waits for one (on SQLite: for the writer) before it pauses the garbage
        collector.
        """
        dc = await self._driver()
        await dc.reserve_writer()

    async def __aenter__(self) -> Connection:
        await self._driver()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def __await__(self) -> Any:
        return self.__aenter__().__await__()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run: the connection is back in the pool and takes no more work."""
        return self._state is _CLOSED

    async def close(self) -> None:
        """Roll back what is not committed and return the connection to the pool."""
        begun = self._state is _BEGUN
        if self._state is not _CLOSED:
            self._set(_CLOSED)
        self._lost_reason = None
        await self._release(rollback=begun)

    async def _release(self, rollback: bool = False) -> None:
        """Roll back, give the driver connection back; runs to the end even if cancelled
        meanwhile (the cancellation is re-raised afterwards); raises nothing else."""
        dc, self._dc = self._dc, None
        if dc is None:
            self._end_transaction()
            return
        if self._loop is not asyncio.get_running_loop():
            self._drop_foreign(dc)
            return
        # the driver's own view too: a COMMIT cancelled before it was sent leaves one open
        rollback = rollback or self._state is _BEGUN or dc.in_transaction
        discard = self._discard or not self.engine.pool.reuses_connections
        self._end_transaction()
        self._savepoints.clear()
        self._discard = False
        if not rollback and not discard:
            dc.cancel_deferred_begin()
            self.engine.pool.release_nowait(dc)
            return
        reusable: list[bool] = []
        try:
            await run_shielded(self._give_back(dc, rollback, discard, reusable))
        finally:
            if reusable:
                # handed over here, not in the helper task, so a waiter gets it in this very step
                self.engine.pool.release_nowait(dc)

    def _drop_foreign(self, dc: DriverConnection) -> None:
        """Give up a driver connection checked out on another event loop (an earlier
        ``asyncio.run()``): it cannot even run ROLLBACK here, so it is closed without I/O,
        which ends its transaction (the server rolls it back)."""
        self._dc = None
        self._end_transaction()
        self._savepoints.clear()
        self._discard = False
        self.engine.pool.discard_nowait(dc)

    def _wrong_loop(self) -> None:
        loop = self._loop
        state = "closed" if loop is not None and loop.is_closed() else "still open"
        raise exc.InvalidRequestError(
            f"this connection was checked out on another event loop (now {state}) and cannot be used "
            "from this one; a connection or session must not outlive the event loop it was used on "
            "(e.g. successive asyncio.run() calls): roll it back or close it, then use a new one here"
        )

    async def _give_back(self, dc: DriverConnection, rollback: bool, discard: bool, reusable: list[bool]) -> None:
        try:
            if rollback and not discard:
                if self.engine.echo:
                    log.info("ROLLBACK")
                async with asyncio.timeout(5):
                    await dc.script("ROLLBACK")
        except BaseException:
            discard = True
        if discard:
            await self.engine.pool.release(dc, discard=True)
        else:
            reusable.append(True)

    async def _abort(self, err: BaseException) -> None:
        """An operation was cancelled mid-statement, so its outcome is unknown: roll the
        transaction back and return the connection now.  Until ``rollback()`` the
        connection refuses work (SQLAlchemy's PendingRollbackError), so the rest of a
        unit of work never runs in a fresh transaction without its first half."""
        had_tx = self._state is _BEGUN or self._state is _PENDING or bool(self._savepoints)
        try:
            await self._release(rollback=True)
        finally:
            if had_tx and self._state is _IDLE:
                self._lost_reason = err
                self._set(_LOST)

    def _check_lost(self) -> None:
        if self._state is _LOST:
            reason = self._lost_reason
            if isinstance(reason, exc.OperationalError):
                raise exc.PendingRollbackError(
                    f"this connection's transaction was lost with its database connection ({reason.orig!r}); "
                    "call rollback() before using it again (a new database connection is used after that)",
                    reason,
                )
            raise exc.PendingRollbackError(
                "this connection's transaction was rolled back because an operation was interrupted "
                f"({type(reason).__name__}) before it finished; call rollback() before using it again",
                reason,
            )

    def __del__(self) -> None:
        dc = self._dc
        if dc is None:
            return
        self._dc = None
        warnings.warn(
            "an aiouow Connection was garbage-collected while holding a database connection; "
            "it was rolled back and returned to the pool. Close connections and sessions explicitly.",
            ResourceWarning,
            stacklevel=2,
        )
        loop = self._loop
        pool = self.engine.pool
        begun = self._state is _BEGUN
        if loop is None or loop.is_closed():
            # nothing can run on that loop any more: close the connection without it, so its
            # slot is not lost for good (the server rolls the transaction back)
            pool.discard_nowait(dc)
            return

        async def cleanup() -> None:
            discard = False
            try:
                if begun:
                    await asyncio.wait_for(dc.script("ROLLBACK"), timeout=5)
            except BaseException:
                discard = True
            await pool.release(dc, discard=discard)

        def start() -> None:
            task = loop.create_task(cleanup())
            _cleanup_tasks.add(task)
            task.add_done_callback(_cleanup_tasks.discard)

        try:
            loop.call_soon_threadsafe(start)
        except RuntimeError:
            pass

    # -- transactions ------------------------------------------------------------
    def in_transaction(self) -> bool:
        """Whether a transaction is open (or begun and waiting for its first statement to send ``BEGIN``)."""
        return self._state is _BEGUN or self._state is _PENDING

    def in_nested_transaction(self) -> bool:
        """Whether a SAVEPOINT of :meth:`begin_nested` is open."""
        return bool(self._savepoints)

    def begin(self) -> Transaction:
        """Start a transaction: ``async with conn.begin():`` commits on success."""
        self._set(_PENDING)
        return Transaction(self, nested=False)

    def begin_nested(self) -> Transaction:
        """A SAVEPOINT: ``async with conn.begin_nested():`` releases it, or rolls back to it on error."""
        if self._state is not _BEGUN and self._state is not _PENDING:
            self._set(_PENDING)
        self._sp_counter += 1
        name = f"aiouow_sp_{self._sp_counter}"
        self._savepoints.append(name)
        return Transaction(self, nested=True, savepoint=name)

    async def _ensure_begun(self, read: bool = False, alone: bool = False) -> DriverConnection:
        """The driver connection, in the transaction; ``read``: the statement only reads (it may
        run before BEGIN), ``alone``: it may be the statement the session autocommits."""
        if self._state is _LOST:
            self._check_lost()
        dc = self._dc or await self._driver()
        if self._loop is not asyncio.get_running_loop():
            self._wrong_loop()
        if self._state is not _BEGUN:
            if (read or (alone and self._alone)) and self._lazy and not self._savepoints:
                # before the transaction's first write: this statement runs on its own (a read
                # sees the latest committed data, as each statement does at READ COMMITTED)
                if alone:
                    self._alone = False
                if self._state is _IDLE:
                    self._set(_PENDING)
                return dc
            self._set(_BEGUN)
            level = self.isolation_level
            if self.engine.echo:
                log.info("BEGIN (implicit)" if level is None else f"BEGIN (implicit; {level})")
            if not dc.defer_begin(level):
                begin = self.dialect.begin_sql(level)
                try:
                    if self._untried:
                        return await self._first_begin(dc, begin)
                    await self._script(dc, begin)
                except Exception:
                    # no transaction began: left BEGUN, the next statements would run outside
                    # one (each committed at once) while the connection believed itself inside;
                    # a connection found gone is LOST already and stays so
                    if self._state is _BEGUN:
                        self._savepoints.clear()
                        self._set(_IDLE)
                    raise
        return dc

    async def _first_begin(self, dc: DriverConnection, begin: str = "BEGIN") -> DriverConnection:
        """BEGIN on a connection just checked out; one the server has dropped meanwhile (restart,
        ``pg_terminate_backend``, a network cut the driver has not seen yet) is discarded and
        replaced, so its next user never sees the failure.

        Safe to retry because nothing of this transaction has run: BEGIN is its first statement,
        and the server ends whatever a dead connection had open.  Free when the connection is
        alive: the check is the BEGIN this transaction sends anyway, where ``pool_pre_ping``
        costs a round trip of its own.  Bounded: each retry takes another idle connection
        (finitely many) or opens a new one, whose failure to connect is raised.
        """
        pool = self.engine.pool
        for attempt in range(self.engine.pool_size + 2):
            try:
                await dc.script(begin)
                self._untried = False
                return dc
            except Exception as err:
                if attempt > self.engine.pool_size or not self.dialect.is_disconnect(err, dc):
                    self._untried = False
                    raise self._translate(err, begin, None) from err
                log.log(logging.INFO if self.engine.echo else logging.DEBUG,
                        "a pooled connection was found dead at BEGIN (%s: %s); replacing it",
                        type(err).__name__, err)
            except BaseException as err:
                await self._abort(err)
                raise
            self._dc = None
            try:
                await run_shielded(pool.release(dc, discard=True))
                dc = self._dc = await pool.acquire(self.engine.pool_timeout)
            except BaseException as err:
                if _interrupted(err):
                    await self._abort(err)
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def commit(self) -> None:
        """Commit the transaction (nothing is sent if no statement ran)."""
        self._check_lost()
        if self._savepoints:
            raise exc.InvalidRequestError("a SAVEPOINT is still open; release or roll it back before commit()")
        dc = self._dc
        if dc is not None and self._loop is not asyncio.get_running_loop():
            self._wrong_loop()
        try:
            # PENDING and yet in a transaction: the driver began one for a statement sent as a
            # plain read that turned out to write (SQLite's query_only refused it on a reader)
            if dc is not None and (self._state is _BEGUN or dc.in_transaction):
                if self.engine.echo:
                    log.info("COMMIT")
                await self._script(dc, "COMMIT")
            elif dc is not None:
                dc.cancel_deferred_begin()
        finally:
            self._end_transaction()

    async def rollback(self) -> None:
        """Roll the transaction back."""
        dc = self._dc
        self._savepoints.clear()
        if self._state is _LOST:
            self._lost_reason = None
            self._set(_IDLE)
        if dc is not None and self._loop is not asyncio.get_running_loop():
            self._drop_foreign(dc)  # closing it rolls back; the next statement checks out anew
            return
        try:
            if dc is not None and (self._state is _BEGUN or dc.in_transaction):
                if self.engine.echo:
                    log.info("ROLLBACK")
                try:
                    await run_shielded(dc.script("ROLLBACK"))
                except BaseException as err:
                    if _interrupted(err):
                        raise  # ROLLBACK itself ran to its end
                    # a connection that cannot roll back is not reused
                    self._discard = True
                    translated = self.dialect.translate_error(err, "ROLLBACK", None)
                    if translated is None:
                        raise
                    if not isinstance(translated, exc.OperationalError) and "no transaction" not in str(err):
                        raise translated from err
            elif dc is not None:
                dc.cancel_deferred_begin()
        finally:
            self._end_transaction()

    async def _savepoint(self, name: str) -> None:
        try:
            await self._ensure_begun()
            await self._run_script(f"SAVEPOINT {quote(name)}")
        except Exception:
            self._pop_savepoint(name)  # it was never made: commit() must not wait for its release
            raise

    async def _release_savepoint(self, name: str) -> None:
        await self._run_script(f"RELEASE SAVEPOINT {quote(name)}")
        self._pop_savepoint(name)

    async def _rollback_to_savepoint(self, name: str) -> None:
        try:
            if self._state is not _LOST:  # else the whole transaction is gone already
                await run_shielded(self._run_script(f"ROLLBACK TO SAVEPOINT {quote(name)}"))
        finally:
            self._pop_savepoint(name)

    def _pop_savepoint(self, name: str) -> None:
        if name in self._savepoints:
            del self._savepoints[self._savepoints.index(name):]

    async def _run_script(self, sql: str) -> None:
        dc = await self._ensure_begun()
        if self.engine.echo:
            log.info("%s", sql)
        await self._script(dc, sql)

    # -- statement execution -----------------------------------------------------
    async def _script(self, dc: DriverConnection, sql: str) -> None:
        try:
            await dc.script(sql)
        except Exception as err:
            raise self._translate(err, sql, None) from err
        except BaseException as err:
            await self._abort(err)
            raise

    async def fetch_sql(self, sql: str, params: Sequence[Any], read: bool = False) -> list[Any]:
        """Run SQL that returns rows; the driver's rows.

        ``read``: a statement aiouow compiled as a plain read (``Compiled.reads_only``), which may
        run before the transaction's BEGIN.
        """
        dc = await self._ensure_begun(read, True)
        if self.engine.echo:
            log.info("%s\n[parameters: %s]", sql, _format_params(params))
        try:
            rows: list[Any] = await dc.fetch(sql, params)
        except Exception as err:
            if self._state is not _BEGUN and self._untried and await self._replace_dead(err, dc, not read):
                return await self.fetch_sql(sql, params, read)
            raise self._translate(err, sql, params) from err
        except BaseException as err:
            await self._abort(err)
            raise
        if self._untried and self._state is not _BEGUN:
            self._untried = False
        return rows

    async def execute_sql(self, sql: str, params: Sequence[Any]) -> int:
        """Run SQL that returns no rows; rows affected."""
        dc = await self._ensure_begun(False, True)
        if self.engine.echo:
            log.info("%s\n[parameters: %s]", sql, _format_params(params))
        try:
            count: int = await dc.execute(sql, params)
        except Exception as err:
            if self._state is not _BEGUN and self._untried and await self._replace_dead(err, dc, True):
                return await self.execute_sql(sql, params)
            raise self._translate(err, sql, params) from err
        except BaseException as err:
            await self._abort(err)
            raise
        if self._untried and self._state is not _BEGUN:
            self._untried = False
        return count

    async def _replace_dead(self, err: Exception, dc: DriverConnection, write: bool) -> bool:
        """A statement that ran without BEGIN on a connection just checked out failed because the
        connection was dead (``_first_begin``'s case, without the BEGIN): replace it and say so,
        so the caller runs the statement again on the new one.  A read is always safe to run
        again; an autocommitted write only when the error shows it never ran."""
        if not self.dialect.is_disconnect(err, dc) or (write and not self.dialect.never_ran(err, dc)):
            return False
        if self._replaced > self.engine.pool_size:
            return False
        self._replaced += 1
        log.log(logging.INFO if self.engine.echo else logging.DEBUG,
                "a pooled connection was found dead at its first statement (%s: %s); replacing it",
                type(err).__name__, err)
        pool = self.engine.pool
        self._dc = None
        try:
            await run_shielded(pool.release(dc, discard=True))
            self._dc = await pool.acquire(self.engine.pool_timeout)
        except BaseException as err2:
            if _interrupted(err2):
                await self._abort(err2)
            raise
        self._untried = True
        if write:
            self._alone = True  # still the transaction's only statement
        return True

    async def executemany_sql(self, sql: str, seq: Sequence[Sequence[Any]]) -> int:
        """Run SQL once per parameter set; total rows affected (-1 if the driver cannot tell)."""
        dc = await self._ensure_begun()
        if self.engine.echo:
            log.info("%s\n[%d parameter sets: %s]", sql, len(seq), _format_params(list(seq[:3])))
        try:
            return await dc.executemany(sql, seq)
        except Exception as err:
            raise self._translate(err, sql, seq) from err
        except BaseException as err:
            await self._abort(err)
            raise

    async def copy_records(self, table: str, columns: Sequence[str], records: Sequence[Sequence[Any]],
                           schema: str | None = None) -> None:
        """PostgreSQL COPY of many rows (the dialect must support it)."""
        dc = await self._ensure_begun()
        if self.engine.echo:
            log.info("COPY %s (%s) FROM STDIN\n[%d rows]", table if schema is None else f"{schema}.{table}",
                     ", ".join(columns), len(records))
        try:
            await dc.copy_records(table, columns, records, schema)
        except Exception as err:
            raise self._translate(err, f"COPY {table}", None) from err
        except BaseException as err:
            await self._abort(err)
            raise

    def _translate(self, err: Exception, sql: str, params: Any) -> Exception:
        translated = self.dialect.translate_error(err, sql, params)
        if translated is None:
            return err
        if isinstance(translated, exc.OperationalError):
            self._discard = True
            if self.dialect.is_disconnect(err, self._dc):
                self._lose_connection(translated, sql)
        return translated

    def _lose_connection(self, err: exc.OperationalError, sql: str) -> None:
        """The database connection is gone (the server ended it, the network dropped it): it is
        given up now (terminated, its pool slot freed; nothing to roll back, the server ended
        the transaction), and a transaction it carried is LOST: later statements raise
        PendingRollbackError until ``rollback()``, after which a new connection is checked out.
        A COMMIT or ROLLBACK that failed so ends the transaction as any failed one does."""
        dc, self._dc = self._dc, None
        if dc is not None:
            self.engine.pool.discard_nowait(dc)
        had_tx = self._state is _BEGUN or self._state is _PENDING or bool(self._savepoints)
        self._end_transaction()
        self._savepoints.clear()
        self._discard = False
        if had_tx and sql != "COMMIT" and sql != "ROLLBACK" and self._state is _IDLE:
            self._lost_reason = err
            self._set(_LOST)

    async def stream_sql(self, sql: str, params: Sequence[Any], chunk: int, read: bool = False
                         ) -> AsyncIterator[list[Any]]:
        """Run SQL in the driver's parameter style and yield its rows in lists of up to ``chunk``.

        A server-side cursor on PostgreSQL; the rows are the driver's (records or tuples), not
        :class:`Row` objects. Driver errors are raised as ``aiouow.exc`` errors.

        Args:
            sql: The SQL text, with ``$1`` (asyncpg) or ``?`` (SQLite) placeholders.
            params: The values of the placeholders, in order.
            chunk: How many rows to fetch at a time.
            read: True for a plain read, which may run before BEGIN where the driver allows it.
        """
        # a server-side cursor lives in a transaction (PostgreSQL): such a stream begins it
        dc = await self._ensure_begun(read and not self.dialect.cursors_need_transaction)
        if self.engine.echo:
            log.info("%s\n[parameters: %s]", sql, _format_params(params))
        chunks = dc.stream(sql, params, chunk)
        try:
            async for rows in chunks:
                yield rows
        except Exception as err:
            raise self._translate(err, sql, params) from err
        except BaseException as err:
            if _interrupted(err):
                await self._abort(err)
            raise
        finally:
            # closed with this one, not whenever the collector finalizes it: the driver's
            # stream may hold a connection of the pool (SQLite's readers) until it ends
            await chunks.aclose()

    async def exec_driver_sql(self, sql: str, params: Sequence[Any] = ()) -> Result:
        """Run SQL in the driver's own parameter style (``$1`` / ``?``)."""
        if _returns_rows(sql):
            rows = await self.fetch_sql(sql, params)
            return Result(rows, make_row_class(self._column_names(rows)))
        return Result([], None, rowcount=await self.execute_sql(sql, params))

    def compile(self, stmt: ClauseElement, params: dict[str, Any] | None = None) -> tuple[Compiled, list[Any]]:
        """The compiled statement and its driver-ready parameters."""
        if isinstance(stmt, (Insert, Update)):
            refused = refused_value(stmt)
            if refused is not None:
                raise exc.DataError(refused)  # before any SQL is sent (asyncpg: client-side, too)
            if isinstance(stmt, Insert):
                stmt = stmt._with_defaults()
        compiled, binds = self.dialect.compile(stmt)
        extra = params
        if isinstance(stmt, TextClause):
            extra = {**stmt.binds, **(params or {})}
        return compiled, self.dialect.params_for(compiled, binds, extra)

    async def execute(self, stmt: ClauseElement, params: dict[str, Any] | Sequence[dict[str, Any]] | None = None
                      ) -> Result:
        """Execute a statement and return its buffered :class:`Result`.

        ``params`` fills ``text()`` parameters, or, as a list of dicts, runs an ``insert()`` once
        per dict.
        """
        if isinstance(stmt, str):
            raise exc.ArgumentError("execute() takes a statement; wrap literal SQL in text()")
        if isinstance(params, (list, tuple)):
            return await self._execute_many(stmt, params)
        try:
            compiled, args = self.compile(stmt, params)  # type: ignore[arg-type]
            return await self.run_compiled(compiled, args)
        except exc.DataError as err:
            if not isinstance(stmt, (Insert, Update)):
                raise
            raise explain(err, self.dialect.name, _statement_values(stmt)) from err.__cause__

    async def run_compiled(self, compiled: Compiled, args: list[Any]) -> Result:
        """Run a statement :meth:`compile` returned, with its parameters, and buffer the result.

        Returns:
            The rows (converted by the statement's result processors), or for a statement that
            returns none an empty :class:`Result` whose ``rowcount`` is the number of rows it
            changed.
        """
        sql = compiled.sql
        returns_rows = compiled.returns_rows
        if compiled.text_names is not None:
            returns_rows = _returns_rows(sql)
        if not returns_rows:
            return Result([], None, rowcount=await self.execute_sql(sql, args))
        rows = await self.fetch_sql(sql, args, compiled.reads_only)
        procs = compiled.result_procs
        if procs:
            rows = _process(rows, procs)
        if compiled.text_names is not None:
            return Result(rows, make_row_class(self._column_names(rows)))
        return Result(rows, compiled.row_class(), rowcount=len(rows))

    async def _execute_many(self, stmt: ClauseElement, rows: Sequence[dict[str, Any]]) -> Result:
        if not isinstance(stmt, Insert) or stmt._rows:
            raise exc.ArgumentError("a list of parameter dicts is only accepted with a bare insert(Model)")
        if not rows:
            return Result([], None, rowcount=0)
        compiled = None
        seq = []
        for row in rows:
            c, args = self.compile(stmt.values(**row))
            if compiled is None:
                compiled = c
            elif c is not compiled:
                raise exc.ArgumentError("every parameter dict of an executemany insert must name the same columns")
            seq.append(args)
        assert compiled is not None
        return Result([], None, rowcount=await self.executemany_sql(compiled.sql, seq))

    async def stream(self, stmt: ClauseElement, params: dict[str, Any] | None = None,
                     chunk_size: int = 1000) -> AsyncResult:
        """Rows fetched in chunks (a server-side cursor on PostgreSQL)."""
        compiled, args = self.compile(stmt, params)
        procs = compiled.result_procs

        def convert(rows: list[Any]) -> list[Any]:
            return _process(rows, procs) if procs else rows

        if compiled.text_names is not None:
            return AsyncResult(self.stream_sql(compiled.sql, args, chunk_size), convert, None,
                               names_from=self._column_names)
        return AsyncResult(self.stream_sql(compiled.sql, args, chunk_size, compiled.reads_only), convert,
                           compiled.row_class())

    def _column_names(self, rows: list[Any]) -> list[str]:
        return self._dc.column_names(rows) if self._dc is not None else []


def _statement_values(stmt: Insert | Update) -> Iterator[tuple[str, Any, Any]]:
    """(label, column, value) of the values an INSERT or UPDATE binds, for ``explain``."""
    pairs = [p for row in stmt._rows for p in row] if isinstance(stmt, Insert) else list(stmt._values)
    for col, el in pairs:
        if isinstance(el, BindParameter):
            yield attribute_label(stmt, col), col, el.value
