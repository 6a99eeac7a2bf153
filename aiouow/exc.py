"""Exceptions raised by aiouow.

Every class derives from :class:`AiouowError`.  Driver exceptions never leak
unwrapped: they become a :class:`DBAPIError` subclass chosen by SQLSTATE class
(the same class whichever driver raised it), with the driver's own exception
kept as ``.orig``.

Every class has a short, stable ``code``; the text of a raised error ends with a link to the entry
for that code on the errors page of the documentation (``ERRORS_URL`` followed by ``#`` and the
code), which says what causes the error and how to fix it.  A code never changes once published,
and a code is never reused, even if its class is renamed or removed.
"""

from __future__ import annotations

from typing import Any, ClassVar

#: the errors page of the documentation; ``site_url`` in mkdocs.yml plus ``errors/``
ERRORS_URL = "https://aiouow.readthedocs.io/en/latest/errors/"


class AiouowError(Exception):
    """Base class of every aiouow error.

    ``code`` names the entry of this class on the errors page; ``str(err)`` is the message followed
    by a line with the link to that entry.

    Attributes:
        code: The short code of the class's entry on the errors page (``errors/#<code>``).
    """

    code: ClassVar[str] = "ga7c"

    def _message(self) -> str:
        """The message alone, without the link (what another message quotes)."""
        return Exception.__str__(self)  # not KeyError's, which would quote it

    def __str__(self) -> str:
        return f"{self._message()}\n(aiouow error {self.code}: {ERRORS_URL}#{self.code})"


def message_of(err: BaseException | None) -> str:
    """``str(err)``, but without the link line for an aiouow error: for quoting one error in
    another's message, which carries its own link."""
    return err._message() if isinstance(err, AiouowError) else str(err)


class ArgumentError(AiouowError):
    """A function or constructor was given an argument it cannot use."""

    code: ClassVar[str] = "fpbd"


class NoSuchColumnError(ArgumentError, KeyError, AttributeError):
    """A name that is no column of the table (``table.c["nope"]``, ``table.c.nope``, ``filter_by(nope=1)``).

    Also a ``KeyError``, which a mapping lookup raises, and an ``AttributeError``, which an
    attribute lookup raises (so ``hasattr(table.c, name)`` and ``getattr(table.c, name, None)`` work).
    """

    code: ClassVar[str] = "zjxp"


class UnknownAttributeError(ArgumentError, TypeError):
    """A model constructor was given a keyword that is no mapped attribute.

    Also the ``TypeError`` Python raises for an unexpected keyword argument.
    """

    code: ClassVar[str] = "dv3w"


class InvalidRequestError(AiouowError):
    """The operation is not valid in the current state."""

    code: ClassVar[str] = "izqw"


class PendingRollbackError(InvalidRequestError):
    """A previous flush failed; the session must be rolled back first.

    ``.orig`` holds the error that failed the flush.

    Attributes:
        orig: The error that failed the flush.
    """

    code: ClassVar[str] = "hnwu"

    def __init__(self, message: str, orig: BaseException | None = None) -> None:
        super().__init__(message)
        self.orig = orig


class NotLoadedError(InvalidRequestError):
    """An attribute that is not loaded was read; aiouow never loads it implicitly.

    Deliberately not an ``AttributeError``: ``hasattr()`` and ``getattr(obj, name,
    default)`` must not silently swallow a missing load.
    """

    code: ClassVar[str] = "ht60"


class DetachedInstanceError(NotLoadedError):
    """An unloaded attribute of an object that belongs to no session was read."""

    code: ClassVar[str] = "h305"


class ObjectDeletedError(InvalidRequestError):
    """The row behind an object no longer exists."""

    code: ClassVar[str] = "c3x2"


class NoResultFound(InvalidRequestError):
    """A result expected to hold exactly one row held none."""

    code: ClassVar[str] = "su2z"


class MultipleResultsFound(InvalidRequestError):
    """A result expected to hold at most one row held several."""

    code: ClassVar[str] = "ye5b"


class StaleDataError(AiouowError):
    """An UPDATE or DELETE matched a different number of rows than expected."""

    code: ClassVar[str] = "gi8l"


class ConcurrentSessionUseError(InvalidRequestError):
    """One session was used by two tasks at the same time."""

    code: ClassVar[str] = "tbs7"


class PoolTimeoutError(AiouowError):
    """No connection became free within ``pool_timeout`` seconds."""

    code: ClassVar[str] = "pjgh"


class DBAPIError(AiouowError):
    """An error raised by the database driver.

    ``.orig`` is the driver's exception, ``.statement`` and ``.params`` what was
    being executed when it was raised.

    Attributes:
        orig: The driver's own exception (``None`` for an error aiouow raised before sending SQL).
        statement: The SQL being executed, if any.
        params: Its parameters, if any.
    """

    code: ClassVar[str] = "mde3"

    def __init__(
        self,
        message: str,
        orig: BaseException | None = None,
        statement: str | None = None,
        params: Any = None,
    ) -> None:
        super().__init__(message)
        self.orig = orig
        self.statement = statement
        self.params = params

    @property
    def sqlstate(self) -> str | None:
        """The five-character SQLSTATE the server reported (``"40001"``, ``"23505"``), or None.

        SQLite has no SQLSTATE, and a lost connection or a client-side error carries none.
        """
        state = getattr(self.orig, "sqlstate", None)
        return state if isinstance(state, str) and state else None

    def _message(self) -> str:
        text = super()._message()
        if self.statement:
            text = f"{text}\n[SQL: {self.statement}]"
        return text


class IntegrityError(DBAPIError):
    """A constraint was violated (SQLSTATE class 23)."""

    code: ClassVar[str] = "x9sz"


class DataError(DBAPIError):
    """A value could not be stored or converted (SQLSTATE class 22)."""

    code: ClassVar[str] = "qol8"


class ProgrammingError(DBAPIError):
    """The SQL or the schema is wrong (SQLSTATE class 42)."""

    code: ClassVar[str] = "qwfp"


class OperationalError(DBAPIError):
    """The connection or the server failed (SQLSTATE classes 08 and 57).

    Class 40, the server rolling a transaction back, is one too, as :class:`SerializationError`
    / :class:`DeadlockError` for 40001 / 40P01.
    """

    code: ClassVar[str] = "jtku"


class SerializationError(OperationalError):
    """The database rolled this transaction back as not serializable (SQLSTATE 40001).

    It conflicted with a concurrent one; running it again from the start can succeed
    (``aiouow.run_transaction``).
    """

    code: ClassVar[str] = "m4v2"


class DeadlockError(OperationalError):
    """The database broke a deadlock by rolling this transaction back (SQLSTATE 40P01).

    Running it again from the start can succeed (``aiouow.run_transaction``).
    """

    code: ClassVar[str] = "zer4"


class CommitOutcomeUnknownError(OperationalError):
    """The connection was lost while COMMIT was under way: the outcome is unknown.

    The transaction may or may not have been committed, so it is not retried.  ``.orig`` is the
    driver's error; check the data (or make the transaction idempotent) before running it again.
    """

    code: ClassVar[str] = "eh5y"


class StaleSnapshotError(SerializationError):
    """SQLite refused a write because the transaction reads an old snapshot (SQLITE_BUSY_SNAPSHOT).

    Another connection (a second engine or process on the same file) committed after this
    transaction began reading; the transaction can never write.  Roll it back and run it
    again: a ``run_transaction``-style retry, or ``rollback()`` then redo the work.
    """

    code: ClassVar[str] = "maqf"


class NPlusOneWarning(AiouowError, UserWarning):
    """Many single-object loads of one relationship were issued in one session."""

    code: ClassVar[str] = "jec2"


class NPlusOneError(InvalidRequestError):
    """The N+1 guard of a session created with ``n_plus_one="raise"`` tripped."""

    code: ClassVar[str] = "bqk5"


__all__ = [
    "AiouowError",
    "ArgumentError",
    "CommitOutcomeUnknownError",
    "ConcurrentSessionUseError",
    "DBAPIError",
    "DataError",
    "DeadlockError",
    "DetachedInstanceError",
    "IntegrityError",
    "InvalidRequestError",
    "MultipleResultsFound",
    "NPlusOneError",
    "NPlusOneWarning",
    "NoResultFound",
    "NoSuchColumnError",
    "NotLoadedError",
    "ObjectDeletedError",
    "OperationalError",
    "PendingRollbackError",
    "PoolTimeoutError",
    "ProgrammingError",
    "SerializationError",
    "StaleDataError",
    "StaleSnapshotError",
    "UnknownAttributeError",
]
