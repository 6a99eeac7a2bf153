"""Sessions: instance book-keeping, identity map, unit of work, transactions."""

from .maker import sessionmaker
from .scoping import scoped_session
from .session import AsyncSession, NestedTransaction, SessionTransaction

__all__ = ["AsyncSession", "NestedTransaction", "SessionTransaction", "scoped_session", "sessionmaker"]
