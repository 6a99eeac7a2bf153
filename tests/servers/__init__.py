"""Database servers the tests start themselves (a streaming replica of the local PostgreSQL)."""
