"""Hyper-parameter tuning with Optuna, over search spaces declared on the filters themselves.

A filter declares the range of each tunable field in its dataclass metadata::

    infl: float = field(default=1.0, metadata={"space": ("log", 1.0, 1.5)})

with kinds ``("log", lo, hi)`` (log-uniform), ``("lin", lo, hi)`` (uniform), ``("int", lo, hi)``
(integers, inclusive) and ``("cat", [choices])``. :func:`tune` minimises a time-averaged metric
(``rmse.a`` by default) averaged over tuning seeds. Each trial reports running averages to Optuna's
pruner, so hopeless trials stop early; a diverging trial is pruned as soon as it diverges. With a
``storage`` (SQLite file, journal file or RDB URL) the study is persistent: several processes or
machines can work on it at once, and a killed run resumes where it stopped.

A study is named and keyed by content (:func:`study_key`): the HMM's identity, the filter class and
its fixed settings, the tuning seeds, the metric and the search space. A call with other settings
gets another study, and an explicit ``study_name`` whose stored key differs is refused.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..filters.base import Filter
from ..hmm import HMM
from .objective import Objective, TuneResult, _optimize, _result
from .sampling import make_sampler
from .space import SPACE_KINDS, declared_space, resolve_space, suggest
from .storage import _check_key, _in_memory, default_study_name, make_storage, study_key
from .workers import _Job, _run_workers, default_start_method

__all__ = ["tune", "TuneResult", "Tuned", "declared_space", "resolve_space", "make_storage",
           "study_key", "default_study_name", "suggest", "make_sampler", "Objective", "SPACE_KINDS",
           "default_start_method"]


def tune(flt: Filter, hmm: HMM, space: dict[str, Any] | None = None, n_trials: int = 40,
         seeds: Sequence[int] = (0,), metric: str = "rmse.a", storage: Any = None,
         study_name: str | None = None, workers: int = 1, seed: int = 0, pruner: Any = None,
         progress: bool = False, start_method: str | None = None) -> TuneResult:
    """Tune a filter's hyper-parameters on an HMM with Optuna (TPE sampler, median pruner).

    Args:
        flt: the filter; fields not tuned keep its values.
        hmm: the model. seeds: tuning seeds (the score is the mean over them).
        space: overrides of the declared search space (see :func:`resolve_space`).
        n_trials: total number of finished (complete or pruned) trials in the study.
        metric: the time average to minimise (``"rmse.a"``, ``"crps.a"``, ...).
        storage: ``None`` (in memory) or a persistent storage (see :func:`make_storage`); with one,
            the study can be shared by processes and machines, and resumes after a kill.
        study_name: name of the study in the storage (default :func:`default_study_name`: the
            filter class, the HMM name, the metric and a hash of :func:`study_key`). A stored study
            of that name run with other settings is refused with a ``ValueError``.
        workers: processes on this machine working on the study (a journal file in a temporary
            folder is used when ``storage`` is ``None``; it is removed when ``tune`` ends, and the
            returned study is an in-memory copy). Workers end when this process ends.
        seed: seed of the sampler; trial ``i`` is drawn with the seed ``(seed, i)``, so a run is
            reproducible and processes sharing a study draw different points.
        pruner: an Optuna pruner (default ``MedianPruner(n_startup_trials=5)``).
        start_method: how workers start (default :func:`default_start_method`).

    Returns:
        A :class:`TuneResult` with the best filter, its score and the study.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = resolve_space(flt, space)
    objective = Objective(flt, hmm, seeds, metric, space)
    key = study_key(flt, hmm, space, seeds, metric)
    study_name = study_name or default_study_name(flt, hmm, metric, key)
    tmpdir = None
    try:
        if workers > 1 and storage is None:
            tmpdir = tempfile.mkdtemp(prefix="dafilters-tune-")
            storage = os.path.join(tmpdir, "study.log")
        store = make_storage(storage)
        study = optuna.create_study(
            storage=store, study_name=study_name, load_if_exists=True,
            direction="minimize", sampler=make_sampler(seed, n_trials, shared=storage is not None),
            pruner=pruner or optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1))
        _check_key(study, key)
        if workers <= 1:
            _optimize(study, objective, n_trials, progress)
        else:
            _run_workers(_Job(storage, study_name, objective, n_trials, seed, os.getpid(), tmpdir),
                         workers, start_method)
        return _result(flt, _in_memory(study, store) if tmpdir is not None else study)
    finally:
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)


@dataclass
class Tuned:
    """An entry of :class:`~dafilters.Experiments` that is tuned before it is evaluated.

    The filter is tuned on ``tune_seeds`` (which must differ from the experiment's seeds), and the
    best setting is then run on the evaluation seeds, so a table never reports a score on the seeds
    it was tuned on. Entries sharing a ``storage`` get one study each (see :func:`study_key`).

    Args:
        filter: the filter to tune. n_trials: Optuna trials. tune_seeds: the tuning seeds.
        space: search-space overrides. metric: the metric minimised. storage: Optuna storage.
        workers: processes working on the study (see :func:`tune`).
    """

    filter: Filter
    n_trials: int = 40
    tune_seeds: Sequence[int] = (10_000, 10_001)
    space: dict[str, Any] | None = None
    metric: str = "rmse.a"
    storage: Any = None
    workers: int = 1

    def tune(self, hmm: HMM) -> TuneResult:
        """Tune the filter on ``hmm`` (see :func:`tune`)."""
        return tune(self.filter, hmm, space=self.space, n_trials=self.n_trials,
                    seeds=self.tune_seeds, metric=self.metric, storage=self.storage,
                    workers=self.workers)

    @property
    def name(self) -> str:
        return f"Tuned({self.filter.name}, n_trials={self.n_trials})"
