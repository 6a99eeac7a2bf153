"""Declaring models: Model, column(), relationship(), and their mapping to tables."""

from .mapper import Mapper
from .model import Model, column, relationship
from .relationships import Relationship

__all__ = ["Mapper", "Model", "Relationship", "column", "relationship"]
