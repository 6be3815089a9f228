"""Where public names live, for content identities, pickles and reprs.

Content identities (:func:`dafilters.identity.canonical`) name classes and functions by
``module.qualname``, so an HMM's fingerprint, and every run, twin, model file and study keyed on
it, would change if a class moved to another file. A package split into modules re-exports its
names and calls :func:`set_public_module` on them: they keep the module they were public in
(``dafilters.hmm.Chronology``, ``dafilters.observations.PartialObs``,
``mods.ShallowWater.ShallowWater``) whichever file defines them.
"""

from __future__ import annotations

import types
from typing import Any

__all__ = ["set_public_module"]


def set_public_module(module: str, *objs: Any) -> None:
    """Set ``__module__`` of each of ``objs`` to ``module``: functions, and classes with the
    functions they define (methods may be identified too, e.g. a bound method an object holds)."""
    for obj in objs:
        obj.__module__ = module
        if isinstance(obj, type):
            for value in vars(obj).values():
                if isinstance(value, (staticmethod, classmethod)):
                    value = value.__func__
                if isinstance(value, types.FunctionType):
                    value.__module__ = module
