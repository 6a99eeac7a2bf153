"""Turning rows into objects, and loading relationships explicitly or eagerly."""
