"""Engine, connections and results."""

from .connection import Connection
from .engine import Engine, create_engine
from .result import AsyncResult, Result, Row, ScalarResult
from .transaction import Transaction
from .url import URL, make_url

__all__ = ["URL", "AsyncResult", "Connection", "Engine", "Result", "Row", "ScalarResult", "Transaction",
           "create_engine", "make_url"]
