"""kcc's version, in a module of its own so that backends can stamp it into the models they write
without importing the package's API (``kcc/__init__.py`` imports every layer)."""
from __future__ import annotations

__version__ = "0.1.0"
