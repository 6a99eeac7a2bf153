"""Test-suite support: a transactional session and a pytest plugin."""
