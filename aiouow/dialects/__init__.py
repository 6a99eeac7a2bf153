"""Database dialects: SQLite (aiosqlite) and PostgreSQL (asyncpg)."""
