"""Fault injection for the reliability tests: driver errors and cancellations at a chosen statement.

:class:`FaultInjector` wraps the statement methods of a dialect's driver connection class (the
real one: every statement that is not faulted runs on the real database) for as long as it is
entered.  An armed :class:`Fault` fires once, at the ``at``-th driver call made by its task, so
the library's own cleanup (which runs in tasks of its own) is never faulted:

- ``kind="error"``: the driver's exception is raised before the call reaches the driver (the
  server never sees the statement);
- ``kind="cancel"``: the task is cancelled and the call then runs, so the ``CancelledError``
  lands inside the driver's await, as a real cancellation mid-statement does.

Usage::

    with FaultInjector.for_engine(engine) as faults:
        task = asyncio.ensure_future(session.flush())
        faults.arm(Fault(task, at=2, kind="cancel"))
        ...
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from aiouow import Engine
from aiouow.dialects.postgresql import PGConnection
from aiouow.dialects.sqlite_connection import SQLiteConnection

#: driver exceptions raised as if the driver had (all translate to OperationalError)
DRIVER_ERRORS: dict[str, list[Callable[[], Exception]]] = {
    "postgresql": [
        lambda: asyncpg.exceptions.SerializationError("could not serialize access (injected)"),
        lambda: asyncpg.exceptions.DeadlockDetectedError("deadlock detected (injected)"),
        # a lost connection gives the whole transaction up (LOST), whatever SAVEPOINT is open: that
        # is tested with real terminations in test_reliability_connections, not injected here
        lambda: asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout (injected)"),
    ],
    "sqlite": [
        lambda: sqlite3.OperationalError("disk I/O error (injected)"),
        lambda: sqlite3.OperationalError("database is locked (injected)"),
    ],
}
STATEMENT_METHODS = ("fetch", "execute", "executemany", "script", "copy_records")


@dataclass
class Fault:
    task: asyncio.Task[Any]
    at: int  # the at-th driver call of the task
    kind: str  # "error" or "cancel"
    error: Callable[[], Exception] | None = None
    calls: int = 0


class FaultInjector:
    """Wraps the statement methods of a driver connection class; an armed :class:`Fault` fires
    at its call (once), on its task only: the library's own cleanup tasks are never faulted."""

    def __init__(self, cls: type) -> None:
        self.cls = cls
        self.fault: Fault | None = None
        self.fired: list[tuple[str, str, str]] = []  # (kind, method, SQL)
        #: for each fault fired: whether its call ran outside a transaction block (a plain read
        #: or a commit's single statement sent alone, autocommitted)
        self.outside: list[bool] = []
        self._saved: dict[str, Any] = {}

    @classmethod
    def for_engine(cls, engine: Engine) -> FaultInjector:
        return cls(PGConnection if engine.dialect.name == "postgresql" else SQLiteConnection)

    def __enter__(self) -> FaultInjector:
        for name in STATEMENT_METHODS:
            orig = self.cls.__dict__.get(name)
            if orig is not None:
                self._saved[name] = orig
                setattr(self.cls, name, self._wrap(name, orig))
        return self

    def __exit__(self, *args: Any) -> None:
        for name, orig in self._saved.items():
            setattr(self.cls, name, orig)

    def _wrap(self, name: str, orig: Any) -> Any:
        injector = self

        async def method(conn: Any, *args: Any, **kw: Any) -> Any:
            fault = injector.fault
            if fault is not None and asyncio.current_task() is fault.task:
                fault.calls += 1
                if fault.calls == fault.at:
                    injector.fault = None
                    injector.fired.append((fault.kind, name, str(args[0])[:60] if args else ""))
                    injector.outside.append(not _in_transaction(conn))
                    if fault.kind == "error":
                        assert fault.error is not None
                        raise fault.error()
                    fault.task.cancel()  # lands inside the real call, at its first await
            return await orig(conn, *args, **kw)

        return method

    def arm(self, fault: Fault) -> None:
        self.fault = fault

    def disarm(self) -> bool:
        """Disarm; True if the fault fired."""
        fired = self.fault is None
        self.fault = None
        return fired


def _in_transaction(conn: Any) -> bool:
    """Whether a call on this driver connection runs in a transaction block: one is open, or
    (SQLite) a deferred BEGIN rides with it."""
    if isinstance(conn, SQLiteConnection):
        return bool(conn._raw.in_transaction or conn._begin is not None)
    return bool(conn.in_transaction)
