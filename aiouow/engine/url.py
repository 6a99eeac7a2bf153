"""Database URLs: ``sqlite:///path.db``, ``sqlite:///:memory:``, ``postgresql://user@host/db``."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from ..exc import ArgumentError

_BACKENDS = {
    "sqlite": "sqlite",
    "sqlite+aiosqlite": "sqlite",
    "postgresql": "postgresql",
    "postgresql+asyncpg": "postgresql",
    "postgres": "postgresql",
}


@dataclass(frozen=True)
class URL:
    """A parsed database URL."""

    raw: str
    backend: str
    database: str
    #: for PostgreSQL: the URL as asyncpg takes it (query parameters included)
    driver_dsn: str

    def __str__(self) -> str:
        return self.raw


def make_url(url: str | URL) -> URL:
    """Parse a URL; raise ``ArgumentError`` naming what is wrong."""
    if isinstance(url, URL):
        return url
    if not isinstance(url, str) or "://" not in url:
        raise ArgumentError(
            f"not a database URL: {url!r}; expected e.g. 'sqlite:///app.db' or 'postgresql://user@host/db'"
        )
    scheme, rest = url.split("://", 1)
    backend = _BACKENDS.get(scheme.lower())
    if backend is None:
        raise ArgumentError(
            f"unsupported database URL scheme {scheme!r} in {url!r}; "
            f"supported: {', '.join(sorted(_BACKENDS))}"
        )
    if backend == "sqlite":
        if rest and not rest.startswith("/"):
            raise ArgumentError(f"sqlite URL {url!r} has a host part; use sqlite:///relative.db or sqlite:////abs.db")
        database = rest[1:] if rest else ":memory:"
        return URL(url, backend, database or ":memory:", "")
    parts = urlsplit("postgresql://" + rest)
    return URL(url, backend, parts.path.lstrip("/"), "postgresql://" + rest)
