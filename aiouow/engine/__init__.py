"""Engine, connections and results."""

from .base import Connection, Engine, Transaction, create_engine
from .result import AsyncResult, Result, Row, ScalarResult
from .url import URL, make_url

__all__ = ["URL", "AsyncResult", "Connection", "Engine", "Result", "Row", "ScalarResult", "Transaction",
           "create_engine", "make_url"]
