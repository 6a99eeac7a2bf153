"""Declaring models: Model, column(), relationship(), and their mapping to tables."""

from .attributes import Mapped
from .mapper import Mapper
from .model import Model, column, relationship
from .relationships import Relationship

__all__ = ["Mapped", "Mapper", "Model", "Relationship", "column", "relationship"]
