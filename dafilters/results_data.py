"""Results as data: the runs of a :class:`~dafilters.results.Results` as an ``xarray.Dataset``.

>>> ds = Results.load("results/l63").to_xarray()
>>> ds["rmse.a"].sel(seed=0).isel(run=2).plot()          # one run's analysis RMSE per cycle
>>> ds["rmse.a.mean"].mean("seed")                       # the table's averages
>>> ds.to_netcdf("l63.nc")                               # or: dafilters export results/l63 l63.nc

**Dimensions.** ``run``: one entry per (HMM, filter setting), the rows of
:meth:`~dafilters.results.Results.frame` in the same order. ``seed``: every seed that appears
(sorted); a (run, seed) that did not run has NaN numbers and an empty ``status``. ``ko``: the
observation cycles ``0..Ko``. One Dataset holds every HMM: HMMs with shorter chronologies are
padded with NaN (their ``time`` is NaN and ``scored`` false there).

**Coordinates.** Along ``run``: ``hmm`` (the table label), ``hmm_id``, ``filter`` (the class),
``name``, ``tuned`` and every setting (hyper-parameter) of the filters. Settings become netCDF
types: numbers stay numbers (``None`` is NaN), booleans stay booleans, text stays text, anything
else (lists, dicts, settings mixing types or ``None`` with text) is text (``None`` is ``""``, lists
and dicts are JSON). A setting named like a dimension, coordinate or variable is called
``param.<name>``. Along (``run``, ``ko``): ``time``, the observation times, and ``scored``, the
cycles that enter the time averages (after the burn-in); series saved before the times were saved
with them have NaN times and no scored cycles.

**Variables.** The names are those of the records, dots included (``ds["rmse.a"]``; netCDF allows
them). Per cycle (``run, seed, ko``): ``rmse.a``, ``rmse.f``, ``spread.a``, ... (NaN where none
were kept: runs that failed, and a ``Results`` made of records only). Per run (``run, seed``):
the time averages ``rmse.a.mean`` and their ``rmse.a.ci``, ..., ``status``, ``error`` (text, ``""``
for none) and every other number of the records (``s_per_cycle``, ``wall_s``, ``n_scored``,
``rmse_spread_ratio.a``, ``diverged_at``, ...; other record values are text, lists and dicts as
JSON). Attributes are text and numbers, so the Dataset is written by ``to_netcdf`` as it is.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from .runs import AVERAGES
from .store import jsonable, load_series

if TYPE_CHECKING:
    from .results import Results

__all__ = ["to_dataset"]

#: Record keys that are coordinates, handled apart, or not per-run numbers.
_SKIP = {"hmm", "hmm_id", "filter", "name", "params", "seed", "tuned", "traceback"}
_STAGE = {"a": "analysis", "f": "forecast"}


def _series(src: Any) -> dict[str, np.ndarray] | None:
    """The per-cycle series of one record: kept in memory, read from its ``.npz``, or none."""
    return src if isinstance(src, dict) or src is None else load_series(src)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _as_netcdf(values: list[Any], text: bool = False) -> np.ndarray:
    """Values of one setting or record field as one netCDF-able array (see the module docstring);
    ``text``: always as text."""
    present = [v for v in values if v is not None]
    if not text and present and all(isinstance(v, (bool, np.bool_)) for v in values):
        return np.array(values, dtype=bool)
    if not text and all(_is_number(v) for v in present):
        ints = len(present) == len(values) and all(isinstance(v, (int, np.integer)) for v in values)
        if ints and all(abs(int(v)) < 2**31 for v in values):  # netCDF-3 has no 64-bit integers
            return np.array(values, dtype=np.int64)
        return np.array([np.nan if v is None else float(v) for v in values])
    return np.array(["" if v is None else v if isinstance(v, str)
                     else json.dumps(jsonable(v), default=repr) if isinstance(v, (list, tuple, dict))
                     else str(v) for v in values], dtype=object)


def _long_name(name: str) -> str:
    """``"rmse.a" -> "analysis rmse"``."""
    metric, _, stage = name.rpartition(".")
    return f"{_STAGE[stage]} {metric}" if metric and stage in _STAGE else name


def _cycles(results: Results, groups: list[list[int]], seeds: list[int]) -> tuple[dict, dict]:
    """The per-cycle variables ``(run, seed, ko)`` and the ``time``/``scored`` coordinates."""
    loaded = {i: _series(results.series[i]) for idx in groups for i in idx}
    n_ko = max([len(next(iter(s.values()))) for s in loaded.values() if s] +
               [int(results.records[i].get("n_cycles") or 0) for i in loaded] + [0])
    names = list(AVERAGES) + sorted({k for s in loaded.values() if s for k in s} - set(AVERAGES)
                                    - {"tto", "masko"})
    shape = (len(groups), len(seeds), n_ko)
    cube = {m: np.full(shape, np.nan) for m in names}
    time, scored = np.full(shape[::2], np.nan), np.zeros(shape[::2], dtype=bool)
    where = {s: j for j, s in enumerate(seeds)}
    for r, idx in enumerate(groups):
        for i in idx:
            data = loaded[i] or {}
            for m, v in data.items():
                if m in cube and np.ndim(v) == 1:
                    cube[m][r, where[int(results.records[i]["seed"])], : len(v)] = v
            if "tto" in data and "masko" in data:
                time[r, : len(data["tto"])] = data["tto"]
                scored[r, : len(data["masko"])] = data["masko"]
    variables = {m: (("run", "seed", "ko"), a, {"long_name": f"{_long_name(m)} per cycle"})
                 for m, a in cube.items()}
    coords = {"time": (("run", "ko"), time, {"long_name": "observation time (NaN: none)"}),
              "scored": (("run", "ko"), scored,
                         {"long_name": "cycle enters the time averages (after the burn-in)"})}
    return variables, coords


def _per_run(results: Results, groups: list[list[int]], seeds: list[int]) -> dict:
    """The variables ``(run, seed)``: time averages (``<metric>.mean``, ``.ci``), status, error
    and every other field of the records."""
    keys: list[str] = []
    for idx in groups:
        for i in idx:
            keys += [k for k in results.records[i] if k not in keys and k not in _SKIP
                     and not k.startswith("rank_hist")]
    where = {s: j for j, s in enumerate(seeds)}
    out = {}
    for k in keys:
        table: list[list[Any]] = [[None] * len(seeds) for _ in groups]
        for r, idx in enumerate(groups):
            for i in idx:
                table[r][where[int(results.records[i]["seed"])]] = results.records[i].get(k)
        flat = _as_netcdf([v for row in table for v in row], text=k in ("status", "error"))
        name = f"{k}.mean" if k in AVERAGES else k
        attrs = {"long_name": f"{_long_name(k)}, time average"} if k in AVERAGES else {}
        out[name] = (("run", "seed"), flat.reshape(len(groups), len(seeds)), attrs)
    return out


def to_dataset(results: Results) -> xr.Dataset:
    """The runs of ``results`` as an ``xarray.Dataset`` (layout: see the module docstring)."""
    from . import __version__

    groups = results.groups()
    frame = results.frame()
    seeds = sorted({int(results.records[i]["seed"]) for idx in groups for i in idx})
    variables = _per_run(results, groups, seeds)
    cycles, coords = _cycles(results, groups, seeds)
    variables.update(cycles)
    firsts = [results.records[idx[0]] for idx in groups]
    coords.update({"run": ("run", np.arange(len(groups))), "seed": ("seed", np.array(seeds)),
                   "ko": ("ko", np.arange(next(iter(cycles.values()))[1].shape[2]))})
    coords["hmm"] = ("run", _as_netcdf(list(frame["hmm"])))
    for k in ("hmm_id", "filter", "name"):
        coords[k] = ("run", _as_netcdf([str(r.get(k) or "") for r in firsts]))
    coords["tuned"] = ("run", np.array(list(frame["tuned"]), dtype=bool))
    for p in results.param_names():
        name = f"param.{p}" if p in coords or p in variables else p
        coords[name] = ("run", _as_netcdf([r["params"].get(p) for r in firsts]),
                        {"long_name": f"filter setting {p}"})
    attrs = {"title": "dafilters runs", "dafilters_version": __version__,
             "layout": "run: (HMM, filter setting), as Results.frame() rows; seed; "
                           "ko: observation cycle (NaN-padded to the longest chronology)"}
    return xr.Dataset(variables, coords=coords, attrs=attrs)
