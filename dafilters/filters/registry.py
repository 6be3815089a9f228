"""Registries behind ``Filter.load``: the learned-filter classes a model file may name, and the
function that reads model files.

A model file names its class as ``"module:QualName"``. Loading never imports that module: the
name must be one that was registered when its class statement ran (every subclass of
:class:`~dafilters.filters.learned.LearnedFilter` registers itself), so a crafted file cannot make
``Filter.load`` run code. :mod:`dafilters.filters.learned` registers the loader; this module
imports nothing from the package, so :mod:`dafilters.filters.base` can use it without a cycle.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

__all__ = ["class_key", "register_class", "registered_classes", "set_loader", "load"]

_CLASSES: dict[str, type] = {}
_LOADER: list[Callable[..., Any]] = []


def class_key(cls: type) -> str:
    """The name a model file stores for ``cls``: ``"module:QualName"``."""
    return f"{cls.__module__}:{cls.__qualname__}"


def register_class(cls: type) -> None:
    """Allow model files naming ``cls`` to be loaded (a class defined again replaces the old one)."""
    _CLASSES[class_key(cls)] = cls


def registered_classes() -> dict[str, type]:
    """The registered classes by name (a copy)."""
    return dict(_CLASSES)


def set_loader(loader: Callable[..., Any]) -> None:
    """Make ``loader(path, device=None)`` the function :func:`load` calls."""
    _LOADER[:] = [loader]


def load(path: str | os.PathLike, device: str | None = None) -> Any:
    """Read the model file ``path`` with the registered loader."""
    if not _LOADER:  # the model-file module registers itself; imported here, not at the top,
        # so that this module imports nothing from the package (no cycle with filters.base)
        import importlib

        importlib.import_module(f"{__package__}.model_files")
    return _LOADER[0](path, device=device)
