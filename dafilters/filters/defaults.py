"""Class defaults of filter settings: which settings of a filter differ from its class's defaults.

Filter names (:attr:`~dafilters.filters.base.Filter.name`) and tables show only those settings.
Two values are *the same setting* as :mod:`dafilters.identity` would judge them for the common
cases: ``1`` and ``1.0`` are one value, ``True`` and ``1`` are not, arrays compare by shape and
content, lists and tuples by their items.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

__all__ = ["ALWAYS_SHOWN", "same_setting", "field_defaults", "non_default"]

#: Settings that say what a filter is (its variant, its ensemble size): shown in names and
#: tables even at their default, so ``EnKF("Sqrt", N=10)`` is named ``EnKF(upd_a='Sqrt', N=10)``.
ALWAYS_SHOWN = ("upd_a", "N")

_BOOLS = (bool, np.bool_)
_NUMBERS = (int, float, np.integer, np.floating)


def same_setting(a: Any, b: Any) -> bool:
    """Whether two setting values are the same (see the module docstring); never raises."""
    if isinstance(a, _BOOLS) or isinstance(b, _BOOLS):
        return isinstance(a, _BOOLS) and isinstance(b, _BOOLS) and bool(a) == bool(b)
    if isinstance(a, _NUMBERS) and isinstance(b, _NUMBERS):
        return float(a) == float(b)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and a.dtype.kind == b.dtype.kind and bool(np.array_equal(a, b))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_setting(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_setting(a[k], b[k]) for k in a)
    if type(a) is not type(b):
        return False
    try:
        return bool(a == b)
    except Exception:  # a value whose comparison raises is never taken for a default
        return False


def field_defaults(cls: type) -> dict[str, Any]:
    """The default of every dataclass field of ``cls`` that has one (``default_factory`` called)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def non_default(params: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The items of ``params`` that differ from ``defaults`` (settings without a default, and those
    of :data:`ALWAYS_SHOWN`, are kept)."""
    return {k: v for k, v in params.items()
            if k in ALWAYS_SHOWN or k not in defaults or not same_setting(v, defaults[k])}
