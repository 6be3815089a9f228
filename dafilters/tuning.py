"""Hyper-parameter tuning with Optuna, over search spaces declared on the filters themselves.

A filter declares the range of each tunable field in its dataclass metadata::

    infl: float = field(default=1.0, metadata={"space": ("log", 1.0, 1.5)})

with kinds ``("log", lo, hi)`` (log-uniform), ``("lin", lo, hi)`` (uniform), ``("int", lo, hi)``
(integers, inclusive) and ``("cat", [choices])``. :func:`tune` minimises a time-averaged metric
(``rmse.a`` by default) averaged over tuning seeds. Each trial reports running averages to Optuna's
pruner, so hopeless trials stop early; a diverging trial is pruned as soon as it diverges. With a
``storage`` (SQLite file, journal file or RDB URL) the study is persistent: several processes or
machines can work on it at once, and a killed run resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import random
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .filters.base import Filter
from .hmm import HMM
from .stats import Stats

__all__ = ["tune", "TuneResult", "Tuned", "declared_space", "resolve_space", "make_storage"]

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


def make_storage(storage: Any):
    """An Optuna storage from a spec: ``None`` (in memory), ``"study.db"`` or ``"sqlite:///x.db"``
    or any RDB URL (with heartbeats, so a killed worker's trial is marked failed), ``"x.log"`` or
    ``"journal:x.log"`` (a journal file, safe for several processes on one file system), or an
    Optuna storage object."""
    import optuna

    if storage is None or not isinstance(storage, (str, os.PathLike)):
        return storage
    spec = os.fspath(storage)
    if spec.startswith("journal:") or spec.endswith((".log", ".journal")):
        path = spec.removeprefix("journal:")
        backend = optuna.storages.journal.JournalFileBackend(path)
        return optuna.storages.JournalStorage(backend)
    if spec.endswith(".db") and "://" not in spec:
        spec = f"sqlite:///{os.path.abspath(spec)}"
    from sqlalchemy.exc import IntegrityError, OperationalError

    for attempt in range(10):  # processes starting together race to create the schema (a locked
        # database, or the other process's schema version row inserted first)
        try:
            with warnings.catch_warnings():  # heartbeats are marked experimental in Optuna
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(spec, heartbeat_interval=30, grace_period=90)
        except (OperationalError, IntegrityError):
            if attempt == 9:
                raise
            time.sleep(0.2 + 0.3 * random.random())
    raise AssertionError("unreachable")


@dataclass
class TuneResult:
    """The outcome of :func:`tune`: the best filter, its score and the Optuna study.

    Unpacks as ``best, study = tune(...)``.
    """

    filter: Filter
    value: float
    study: Any

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.study.best_params)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.filter, self.study))


class Objective:
    """Optuna objective: run a filter setting on the tuning seeds, report running averages."""

    def __init__(self, flt: Filter, hmm: HMM, seeds: Sequence[int], metric: str,
                 space: dict[str, tuple], reports: int = 10):
        if metric not in Stats.metric_names():
            raise ValueError(f"unknown metric {metric!r}; choose one of {Stats.metric_names()}")
        self.flt, self.hmm, self.seeds, self.metric, self.space = flt, hmm, list(seeds), metric, space
        self.reports = reports
        self._twins: dict[int, tuple] = {}

    def twin(self, seed: int):
        if seed not in self._twins:
            self._twins[seed] = self.hmm.simulate(seed)
        return self._twins[seed]

    def __call__(self, trial) -> float:
        import optuna

        params = {name: suggest(trial, name, spec) for name, spec in self.space.items()}
        try:
            candidate = dataclasses.replace(self.flt, **params)
        except ValueError as err:  # an infeasible combination of settings
            raise optuna.TrialPruned(f"invalid settings: {err}") from None
        masko = self.hmm.tseq.masko
        nobs = len(masko)
        values: list[float] = []
        for i, seed in enumerate(self.seeds):

            def report(ko: int, stats: Stats, i=i, seed=seed) -> None:
                series = stats.series[self.metric][: ko + 1][masko[: ko + 1]]
                if len(series):
                    running = (sum(values) + float(np.mean(series))) / (len(values) + 1)
                    trial.report(running, step=i * nobs + ko)
                    if trial.should_prune():
                        raise optuna.TrialPruned(f"pruned at seed {seed}, cycle {ko}")

            stats = candidate.assimilate(self.hmm, *self.twin(seed), seed=seed, callback=report,
                                         callback_every=max(1, nobs // self.reports))
            if stats.diverged:
                trial.set_user_attr("diverged", f"seed {seed}, cycle {stats.diverged_at}")
                raise optuna.TrialPruned(f"diverged at seed {seed}, cycle {stats.diverged_at}")
            values.append(stats.averages()[self.metric])
        return float(np.mean(values))


def _finished(study) -> int:
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


def _optimize(study, objective: Objective, n_trials: int, progress: bool = False) -> None:
    """Run trials until the study holds ``n_trials`` finished (complete or pruned) trials."""
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    remaining = n_trials - _finished(study)
    if remaining > 0:
        study.optimize(objective, n_trials=remaining, show_progress_bar=progress,
                       callbacks=[optuna.study.MaxTrialsCallback(n_trials, states=states)])


_WORKER_JOB: tuple | None = None


def make_sampler(seed: int, n_trials: int, shared: bool = False) -> Any:
    """The TPE sampler of :func:`tune`: multivariate (inflation and radius interact), with a
    quarter of the budget (4 to 10 trials) as random start-up instead of Optuna's fixed 10, which
    would leave a 16-trial study only 6 guided trials; in a study ``shared`` by several workers,
    running trials count as their worst (``constant_liar``) so that workers do not sample the same
    point."""
    import optuna

    with warnings.catch_warnings():  # multivariate TPE and constant_liar are marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True,
                                          n_startup_trials=min(10, max(4, n_trials // 4)),
                                          constant_liar=shared)


def _worker(index: int) -> None:
    """A forked tuning worker: load the shared study and run trials until the total is reached."""
    import optuna

    storage, study_name, objective, n_trials, seed = _WORKER_JOB
    sampler = make_sampler(seed + index, n_trials, shared=True)
    study = optuna.load_study(study_name=study_name, storage=make_storage(storage), sampler=sampler)
    _optimize(study, objective, n_trials)


def tune(flt: Filter, hmm: HMM, space: dict[str, Any] | None = None, n_trials: int = 40,
         seeds: Sequence[int] = (0,), metric: str = "rmse.a", storage: Any = None,
         study_name: str | None = None, workers: int = 1, seed: int = 0, pruner: Any = None,
         progress: bool = False) -> TuneResult:
    """Tune a filter's hyper-parameters on an HMM with Optuna (TPE sampler, median pruner).

    Args:
        flt: the filter; fields not tuned keep its values.
        hmm: the model. seeds: tuning seeds (the score is the mean over them).
        space: overrides of the declared search space (see :func:`resolve_space`).
        n_trials: total number of finished (complete or pruned) trials in the study.
        metric: the time average to minimise (``"rmse.a"``, ``"crps.a"``, ...).
        storage: ``None`` (in memory) or a persistent storage (see :func:`make_storage`); with one,
            the study can be shared by processes and machines, and resumes after a kill.
        study_name: name of the study in the storage (default: from the filter and the HMM).
        workers: processes on this machine working on the study (a journal file in a temporary
            folder is used when ``storage`` is ``None``).
        seed: seed of the sampler (worker ``i`` uses ``seed + i``).
        pruner: an Optuna pruner (default ``MedianPruner(n_startup_trials=5)``).

    Returns:
        A :class:`TuneResult` with the best filter, its score and the study.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = resolve_space(flt, space)
    objective = Objective(flt, hmm, seeds, metric, space)
    study_name = study_name or f"{type(flt).__name__}|{hmm.name}|{metric}"
    tmpdir = None
    if workers > 1 and storage is None:
        tmpdir = tempfile.TemporaryDirectory(prefix="dafilters-tune-")
        storage = os.path.join(tmpdir.name, "study.log")
    study = optuna.create_study(
        storage=make_storage(storage), study_name=study_name, load_if_exists=True,
        direction="minimize", sampler=make_sampler(seed, n_trials, shared=workers > 1 or storage is not None),
        pruner=pruner or optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1))
    try:
        if workers <= 1:
            _optimize(study, objective, n_trials, progress)
        else:
            global _WORKER_JOB
            _WORKER_JOB = (storage, study_name, objective, n_trials, seed)
            ctx = multiprocessing.get_context("fork")
            procs = [ctx.Process(target=_worker, args=(i,)) for i in range(workers)]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
            _WORKER_JOB = None
            failed = [p.exitcode for p in procs if p.exitcode != 0]
            if failed:
                raise RuntimeError(f"{len(failed)} tuning worker(s) failed (exit codes {failed})")
        completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if not completed:
            raise RuntimeError(f"no trial of {flt.name} completed (all diverged or were pruned)")
        best = dataclasses.replace(flt, **study.best_params)
        return TuneResult(best, float(study.best_value), study)
    finally:
        if tmpdir is not None:
            tmpdir.cleanup()


@dataclass
class Tuned:
    """An entry of :class:`~dafilters.Experiments` that is tuned before it is evaluated.

    The filter is tuned on ``tune_seeds`` (which must differ from the experiment's seeds), and the
    best setting is then run on the evaluation seeds, so a table never reports a score on the seeds
    it was tuned on.

    Args:
        filter: the filter to tune. n_trials: Optuna trials. tune_seeds: the tuning seeds.
        space: search-space overrides. metric: the metric minimised. storage: Optuna storage.
    """

    filter: Filter
    n_trials: int = 40
    tune_seeds: Sequence[int] = (10_000, 10_001)
    space: dict[str, Any] | None = None
    metric: str = "rmse.a"
    storage: Any = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    def tune(self, hmm: HMM) -> TuneResult:
        return tune(self.filter, hmm, space=self.space, n_trials=self.n_trials,
                    seeds=self.tune_seeds, metric=self.metric, storage=self.storage, **self.kwargs)

    @property
    def name(self) -> str:
        return f"Tuned({self.filter.name}, n_trials={self.n_trials})"
