"""Transaction: the handle ``conn.begin()`` / ``conn.begin_nested()`` return.

The transaction's state is the connection's (``connection.py``); this is only the
``async with`` object that commits or rolls back through it, the whole transaction or one
SAVEPOINT.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .connection import Connection


class Transaction:
    """``async with conn.begin():`` / ``async with conn.begin_nested():``.

    Attributes:
        conn: The :class:`Connection` the transaction runs on.
        nested: Whether it is a SAVEPOINT (``begin_nested()``) rather than the whole transaction.
        savepoint: The SAVEPOINT's name, for a nested one.
    """

    def __init__(self, conn: Connection, *, nested: bool, savepoint: str | None = None) -> None:
        self.conn = conn
        self.nested = nested
        self.savepoint = savepoint
        self._started = False

    async def _start(self) -> None:
        if self.savepoint is not None and not self._started:
            self._started = True
            await self.conn._savepoint(self.savepoint)

    async def __aenter__(self) -> Transaction:
        await self._start()
        return self

    def __await__(self) -> Any:
        return self.__aenter__().__await__()

    async def commit(self) -> None:
        """Commit the transaction, or release the SAVEPOINT for a nested one."""
        if self.savepoint is not None:  # nested
            await self.conn._release_savepoint(self.savepoint)
        else:
            await self.conn.commit()

    async def rollback(self) -> None:
        """Roll the transaction back, or roll back to the SAVEPOINT (keeping the transaction) for a nested one."""
        if self.savepoint is not None:  # nested
            await self.conn._rollback_to_savepoint(self.savepoint)
        else:
            await self.conn.rollback()

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        if et is None:
            await self.commit()
        else:
            await self.rollback()
