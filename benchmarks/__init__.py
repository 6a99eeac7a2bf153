"""Benchmarks: aiouow against the raw drivers and SQLAlchemy (``python -m benchmarks --help``)."""
