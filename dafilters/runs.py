"""One run: a filter on one twin experiment, as a record that never raises for a failing filter.

A *record* is a flat dict: the HMM, the filter, its settings, the seed, the status (``ok``,
``lost``, ``diverged``, ``error``), the time averages of every metric with their ``.ci``, the
numbers of the lost-track test and the timing.
"""

from __future__ import annotations

import traceback
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from .filters.base import Filter
from .hmm import HMM
from .stats import METRICS

__all__ = ["AVERAGES", "TwinError", "TwinCache", "new_record", "error_record", "run_one", "execute",
           "execute_in_worker"]

#: Time averages reported for every run (each with its ``.ci``).
AVERAGES = tuple(f"{m}.{fa}" for fa in "af" for m in METRICS)


def new_record(hmm: HMM, flt: Filter, seed: int) -> dict[str, Any]:
    """The record of a run before it runs: HMM (name and ``hmm_id``, the start of its content
    hash), filter, settings, seed, status ``'ok'``."""
    return {"hmm": hmm.name, "hmm_id": hmm.fingerprint()[:16], "filter": type(flt).__name__,
            "name": flt.name, "params": flt.params(),
            "seed": int(seed), "status": "ok", "error": None, "diverged_at": None,
            "n_cycles": hmm.tseq.Ko + 1}


def error_record(record: dict[str, Any], error: str, tb: str | None = None) -> dict[str, Any]:
    """Mark ``record`` as failed with ``error``: status ``'error'`` and NaN statistics."""
    record.update(status="error", error=error, s_per_cycle=np.nan)
    if tb is not None:
        record["traceback"] = tb
    record.update({name: np.nan for name in AVERAGES})
    record.update({name + ".ci": np.nan for name in AVERAGES})
    return record


def run_one(hmm: HMM, flt: Filter, seed: int, xx: np.ndarray, yy, progress: bool = False,
            ) -> tuple[dict, dict[str, np.ndarray]]:
    """Run one filter on one twin experiment; never raises for a failing filter.

    Returns the record (a flat dict: settings, status, time averages, timing) and the per-cycle
    series (``{"rmse.a": (Ko+1,), ...}``).

    Status: ``"error"`` (the filter raised; NaN averages), ``"diverged"`` (see
    :class:`~dafilters.stats.Diverged`; NaN averages), ``"lost"`` (it ran to the end but lost track
    of the truth, :meth:`~dafilters.stats.Stats.lost_track`; its averages are kept) or ``"ok"``.
    ``error`` says why the status is not ``ok``. The record also holds the numbers of the
    lost-track test (:meth:`~dafilters.stats.Stats.tracking`): ``rmse_spread_ratio.a``,
    ``rmse_clim_ratio.a``, ``clim_std`` and ``n_scored``.
    """
    record = new_record(hmm, flt, seed)
    series: dict[str, np.ndarray] = {}
    try:
        stats = flt.assimilate(hmm, xx, yy, seed=seed, progress=progress)
    except Exception as err:  # a crashing filter is recorded, and the table goes on
        return error_record(record, f"{type(err).__name__}: {err}", traceback.format_exc(limit=-4)), series
    if stats.diverged:
        record["status"] = "diverged"
        record["diverged_at"] = stats.diverged_at
        record["error"] = stats.error
    elif (lost := stats.lost_track()) is not None:
        record["status"] = "lost"
        record["error"] = lost
    record.update(stats.averages())
    record.update(stats.tracking())
    record["s_per_cycle"] = stats.s_per_cycle
    record["wall_s"] = stats.wall_s
    if stats.rank_hist is not None:
        record["rank_hist.a"] = stats.rank_hist["a"].tolist()
        record["rank_hist.f"] = stats.rank_hist["f"].tolist()
    series = dict(stats.series)
    return record, series


class TwinError(RuntimeError):
    """The twin experiment of an (HMM, seed) could not be simulated (e.g. a non-finite truth)."""


class TwinCache:
    """Twin experiments ``(xx, yy)`` by (HMM fingerprint, seed), each simulated once (at most
    ``size`` kept, the oldest dropped first): the filters of one (HMM, seed) share their truth and
    observations. A serial run holds one for its jobs; each pool or MPI worker holds its own,
    made by the executor's initializer (:mod:`dafilters.parallel`): nothing is shared between
    processes or kept between runs."""

    def __init__(self, size: int = 4):
        self.size = int(size)
        self._items: dict[tuple[str, int], tuple | str] = {}

    def get(self, hmm: HMM, seed: int) -> tuple:
        """The twin experiment of (hmm, seed); a :class:`TwinError` naming the seed and the cause
        if it cannot be simulated (the failure is kept too, so the filters of that seed do not
        simulate it again)."""
        key = (hmm.fingerprint(), int(seed))
        if key not in self._items:
            if len(self._items) >= self.size:
                self._items.pop(next(iter(self._items)))
            try:
                self._items[key] = hmm.simulate(seed)
            except Exception as err:  # any failure of the model: reported per run, not raised
                self._items[key] = (f"seed {seed}: the twin experiment of {hmm.name} could not be "
                                    f"simulated: {type(err).__name__}: {err}")
        value = self._items[key]
        if isinstance(value, str):
            raise TwinError(value)
        return value


def execute(task: tuple[HMM, Filter, int, bool], twins: TwinCache | None = None) -> tuple[dict, dict]:
    """Run one task in this process, its twin experiment from ``twins`` (default: simulated for
    this task alone); a twin experiment that cannot be simulated gives an error record (status
    ``'error'``, the error naming the seed and the cause), not an exception."""
    hmm, flt, seed, progress = task
    try:
        xx, yy = (TwinCache(1) if twins is None else twins).get(hmm, seed)
    except TwinError as err:
        return error_record(new_record(hmm, flt, seed), str(err)), {}
    return run_one(hmm, flt, seed, xx, yy, progress=progress)


def execute_in_worker(task: tuple[HMM, Filter, int, bool], twins: TwinCache | None = None,
                      ) -> tuple[dict, dict]:
    """Run one task in a pool or MPI worker (:func:`execute`): one BLAS thread per worker."""
    with threadpool_limits(limits=1):
        return execute(task, twins)
