"""Lazy package exports (PEP 562, module ``__getattr__``): a package's names imported on first use.

Every package's ``__init__`` lists its public names in ``__all__``. Most import them outright; a
package whose modules are slow to import (plotting libraries, many architectures, torch for a
NumPy-only store) maps each name to its module instead, and :func:`lazy_exports` gives it the
``__getattr__`` that imports that module when the name is first asked for::

    _HOME = {"VectorStore": "store", "HNSWIndex": "hnsw"}
    __all__ = sorted(_HOME)
    __getattr__ = lazy_exports(__name__, _HOME)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module


def lazy_exports(package: str, home: Mapping[str, str]) -> Callable[[str], object]:
    """The module ``__getattr__`` of ``package``: ``name`` -> ``package.<home[name]>.name``, imported when first used.

    A home ``"module:attr"`` exports ``package.module.attr`` under another name (``"tasks:load"`` for ``load_tasks``).
    """

    def __getattr__(name: str):
        if name not in home:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attr = home[name].partition(":")
        return getattr(import_module(f"{package}.{module}"), attr or name)

    return __getattr__
