"""Sessions: instance book-keeping, identity map, unit of work, transactions."""

from .maker import sessionmaker
from .retry import run_transaction
from .scoping import scoped_session
from .session import AsyncSession, NestedTransaction, SessionTransaction

__all__ = ["AsyncSession", "NestedTransaction", "SessionTransaction", "run_transaction", "scoped_session",
           "sessionmaker"]
