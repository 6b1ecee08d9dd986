"""The extension objects views import, as `cache = Cache()` in the Flask tutorial."""

from .cache import Cache

cache = Cache()
