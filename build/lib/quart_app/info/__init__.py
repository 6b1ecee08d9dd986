"""The info table's HTTP API and what its changes owe the caches, kept together.

`routes` is the blueprint (`/api/info`: read, list, insert, update, delete, bulk); `invalidation`
connects the receivers that make cached reads true again after every change, before the
change is answered. As Django keeps a model's receivers in the app that owns the model.
"""

from .invalidation import connect as connect_invalidation
from .routes import info_api

__all__ = ["connect_invalidation", "info_api"]
