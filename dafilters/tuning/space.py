"""Search spaces: declared on the filters' fields, overridden per call, drawn by Optuna."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..filters.base import Filter

SPACE_KINDS = ("log", "lin", "int", "cat")


def declared_space(flt: Filter | type[Filter]) -> dict[str, tuple]:
    """The search space a filter class declares: ``{field: (kind, ...)}``."""
    return {f.name: tuple(f.metadata["space"]) for f in dataclasses.fields(flt) if "space" in f.metadata}


def _check_spec(name: str, spec: tuple) -> tuple:
    if not isinstance(spec, (tuple, list)) or not spec or spec[0] not in SPACE_KINDS:
        raise ValueError(f"search space for {name!r} must be (kind, ...) with kind in {SPACE_KINDS}, "
                         f"got {spec!r}")
    if spec[0] == "cat":
        if len(spec) != 2 or not len(spec[1]):
            raise ValueError(f"categorical space for {name!r} must be ('cat', [choices])")
    elif len(spec) != 3 or not spec[1] < spec[2] or (spec[0] == "log" and spec[1] <= 0):
        raise ValueError(f"search space for {name!r} must be (kind, low, high) with 0 < low < high "
                         f"for 'log' and low < high otherwise, got {spec!r}")
    return tuple(spec)


def resolve_space(flt: Filter, space: dict[str, Any] | None = None) -> dict[str, tuple]:
    """The declared space with per-call overrides: ``space={"infl": ("log", 1.0, 1.2),
    "loc_rad": None}`` changes ``infl``'s range and fixes ``loc_rad`` at the filter's value."""
    names = {f.name for f in dataclasses.fields(flt)}
    out = declared_space(flt)
    for name, spec in (space or {}).items():
        if name not in names:
            raise ValueError(f"{type(flt).__name__} has no field {name!r} to tune; fields: {sorted(names)}")
        if spec is None:
            out.pop(name, None)
        else:
            out[name] = spec
    if not out:
        raise ValueError(f"nothing to tune: {type(flt).__name__} declares no search space; pass space=")
    return {name: _check_spec(name, spec) for name, spec in out.items()}


def suggest(trial, name: str, spec: tuple) -> Any:
    """Draw one value for ``name`` from an Optuna trial."""
    kind = spec[0]
    if kind == "log":
        return trial.suggest_float(name, spec[1], spec[2], log=True)
    if kind == "lin":
        return trial.suggest_float(name, spec[1], spec[2])
    if kind == "int":
        return trial.suggest_int(name, spec[1], spec[2])
    return trial.suggest_categorical(name, list(spec[1]))
