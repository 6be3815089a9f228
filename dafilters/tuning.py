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

import contextlib
import ctypes
import dataclasses
import hashlib
import multiprocessing
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .filters.base import Filter
from .hmm import HMM
from .identity import content_hash
from .stats import Stats

__all__ = ["tune", "TuneResult", "Tuned", "declared_space", "resolve_space", "make_storage",
           "study_key", "default_study_name"]

#: Study user attributes holding the content key of the settings and its parts.
KEY_ATTR, PARTS_ATTR = "dafilters.key", "dafilters.key_parts"

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


def study_key(flt: Filter, hmm: HMM, space: dict[str, tuple], seeds: Sequence[int],
              metric: str) -> dict[str, str]:
    """What the scores of a study's trials depend on, as content hashes (see
    :func:`dafilters.identity.content_hash`): ``hmm`` (``hmm.fingerprint()``), ``filter`` (the class
    and the settings not tuned), ``seeds``, ``metric`` and ``space`` (the resolved search space).

    Equal settings give equal keys (``infl=1`` and ``infl=1.0``, ``seeds=(0, 1)`` and ``[0, 1]``).
    The number of trials, the sampler seed and the pruner are not part of the key: a call with more
    trials continues the study.
    """
    fixed = {f.name: getattr(flt, f.name) for f in dataclasses.fields(flt) if f.name not in space}
    own = flt.identity() if callable(getattr(flt, "identity", None)) else None
    if isinstance(own, dict):  # a filter that identifies itself (e.g. trained weights) by content
        fixed |= {k: v for k, v in own.items() if k not in space}
    return {"hmm": str(hmm.fingerprint()),
            "filter": content_hash([type(flt), fixed], path=type(flt).__name__),
            "seeds": content_hash([int(s) for s in seeds]),
            "metric": metric,
            "space": content_hash(space)}


def default_study_name(flt: Filter, hmm: HMM, metric: str, key: dict[str, str]) -> str:
    """A readable prefix and 16 hex digits of the content key, e.g.
    ``EnKF|Lorenz96.sakov2008|rmse.a|3f09c2e1d4b5a687``."""
    return f"{type(flt).__name__}|{hmm.name}|{metric}|{content_hash(key, length=16)}"


def _check_key(study: Any, key: dict[str, str]) -> None:
    """Record ``key`` on a new study; refuse a stored study whose recorded key differs."""
    digest = content_hash(key)
    stored = study.user_attrs.get(KEY_ATTR)
    if stored == digest:
        return
    if stored is None and not study.trials:
        study.set_user_attr(KEY_ATTR, digest)
        study.set_user_attr(PARTS_ATTR, key)
        return
    if stored is None:
        raise ValueError(f"study {study.study_name!r} holds trials but no record of the settings they "
                         "were run with (made outside dafilters.tune or by an older version); pass "
                         "another study_name, or none to get the study of these settings")
    old = study.user_attrs.get(PARTS_ATTR) or {}
    differ = [part for part, value in key.items() if old.get(part) != value]
    raise ValueError(f"study {study.study_name!r} in this storage was run with other settings "
                     f"({', '.join(differ) or 'key'} differ), so its trials do not score this call; "
                     "pass another study_name, or none to get the study of these settings")


def _trial_seed(seed: int, number: int) -> int:
    """A 32-bit seed from the sampler seed and a trial number."""
    return int.from_bytes(hashlib.sha256(f"{seed}|{number}".encode()).digest()[:4], "little")


class TrialSeededSampler:
    """An Optuna sampler that draws each trial with a fresh sampler seeded from ``(seed, trial
    number)``.

    Trial numbers are handed out by the storage, one per trial, so processes sharing a study never
    draw with the same random stream (two ``TPESampler(seed=0)`` would propose the same start-up
    points), while a single process is reproducible for a given seed. ``make(seed)`` builds the
    sampler of one trial.
    """

    def __init__(self, seed: int, make: Callable[[int], Any]):
        self.seed, self.make = seed, make
        self.current = make(seed)

    def before_trial(self, study: Any, trial: Any) -> None:
        self.current = self.make(_trial_seed(self.seed, trial.number))
        self.current.before_trial(study, trial)

    def infer_relative_search_space(self, study: Any, trial: Any) -> dict:
        return self.current.infer_relative_search_space(study, trial)

    def sample_relative(self, study: Any, trial: Any, search_space: dict) -> dict:
        return self.current.sample_relative(study, trial, search_space)

    def sample_independent(self, study: Any, trial: Any, name: str, distribution: Any) -> Any:
        return self.current.sample_independent(study, trial, name, distribution)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        self.current.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.current.reseed_rng()


def _tpe(seed: int, n_trials: int, shared: bool) -> Any:
    import optuna

    with warnings.catch_warnings():  # multivariate TPE and constant_liar are marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True,
                                          n_startup_trials=min(10, max(4, n_trials // 4)),
                                          constant_liar=shared)


def make_sampler(seed: int, n_trials: int, shared: bool = False) -> Any:
    """The sampler of :func:`tune`: TPE, multivariate (inflation and radius interact), with a
    quarter of the budget (4 to 10 trials) as random start-up instead of Optuna's fixed 10, which
    would leave a 16-trial study only 6 guided trials; in a study ``shared`` by several workers,
    running trials count as their worst (``constant_liar``). Each trial is drawn with the seed
    ``(seed, trial number)`` (see :class:`TrialSeededSampler`)."""
    import optuna

    class _Sampler(TrialSeededSampler, optuna.samplers.BaseSampler):
        pass

    return _Sampler(seed, lambda s: _tpe(s, n_trials, shared))


@dataclass
class _Job:
    """What a tuning worker process needs (passed as its argument, so it works under ``spawn``)."""

    storage: Any
    study_name: str
    objective: Objective
    n_trials: int
    seed: int
    parent: int
    tmpdir: str | None


PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
#: The signal a worker gets when its parent ends (``SIGTERM`` could come from the parent itself).
ORPHAN_SIGNAL = signal.SIGUSR1 if hasattr(signal, "SIGUSR1") else None


def _remove_if_orphaned(parent: int, tmpdir: str | None) -> None:
    """Remove the temporary journal folder if ``parent`` (which would remove it) has ended."""
    if tmpdir is not None and os.getppid() != parent:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _follow_parent(parent: int, tmpdir: str | None) -> None:
    """End this worker when ``parent`` ends: Linux sends :data:`ORPHAN_SIGNAL` then
    (``PR_SET_PDEATHSIG``), and a thread that watches ``os.getppid()`` sends it everywhere.

    Its handler removes the temporary journal folder and ends the worker. It runs in the main
    thread, so no journal write of this worker can recreate a file after the removal; the last
    worker to end leaves nothing behind. (At that signal ``os.getppid()`` may still name the dead
    parent, so the handler does not check it.)"""

    def orphaned(*_: Any) -> None:
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
        os._exit(1)

    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler (see _sigterm_exits)
    if ORPHAN_SIGNAL is not None:
        signal.signal(ORPHAN_SIGNAL, orphaned)
    if sys.platform.startswith("linux") and ORPHAN_SIGNAL is not None:
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(ORPHAN_SIGNAL), 0, 0, 0)
        except (OSError, AttributeError):  # no libc symbol: the watchdog alone
            pass
    if os.getppid() != parent:  # the parent ended before the death signal was armed
        orphaned()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        if ORPHAN_SIGNAL is not None:
            os.kill(os.getpid(), ORPHAN_SIGNAL)
            time.sleep(10.0)  # the main thread is stuck in a long call: end from here
        orphaned()

    threading.Thread(target=watch, name="dafilters-parent-watch", daemon=True).start()


@contextlib.contextmanager
def _sigterm_exits() -> Iterator[None]:
    """While workers run, a ``SIGTERM`` to this process raises ``SystemExit`` (where its action is
    the default one, which would end the process at once), so the workers are stopped and the
    temporary journal is removed."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def exit_(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, exit_)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _worker(job: _Job) -> None:
    """A tuning worker process: load the shared study and run trials until the total is reached."""
    import optuna

    _follow_parent(job.parent, job.tmpdir)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=job.study_name, storage=make_storage(job.storage),
                                  sampler=make_sampler(job.seed, job.n_trials, shared=True))
        _optimize(study, job.objective, job.n_trials)
    finally:  # e.g. a journal error because another orphaned worker removed the folder
        _remove_if_orphaned(job.parent, job.tmpdir)


def default_start_method() -> str:
    """``fork`` on Linux (workers start at once), ``spawn`` elsewhere or once jax is loaded (jax
    does not survive ``fork``)."""
    return "fork" if sys.platform.startswith("linux") and "jax" not in sys.modules else "spawn"


def _run_workers(job: _Job, workers: int, start_method: str | None) -> None:
    """Run ``workers`` processes on the study; stop them all if this process is interrupted."""
    ctx = multiprocessing.get_context(start_method or default_start_method())
    procs = [ctx.Process(target=_worker, args=(job,), daemon=True, name=f"dafilters-tune-{i}")
             for i in range(workers)]
    try:
        with _sigterm_exits():
            for p in procs:
                p.start()
            for p in procs:
                p.join()
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            if p.pid is not None:
                p.join(5)
                if p.is_alive():
                    p.kill()
                    p.join()
    failed = [p.exitcode for p in procs if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"{len(failed)} tuning worker(s) failed (exit codes {failed})")


def _in_memory(study: Any, storage: Any) -> Any:
    """A copy of ``study`` (held in ``storage``) in an in-memory storage, readable once its
    temporary journal is gone."""
    import optuna

    memory = optuna.storages.InMemoryStorage()
    optuna.copy_study(from_study_name=study.study_name, from_storage=storage, to_storage=memory)
    return optuna.load_study(study_name=study.study_name, storage=memory)


def _result(flt: Filter, study: Any) -> TuneResult:
    import optuna

    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not completed:
        raise RuntimeError(f"no trial of {flt.name} completed (all diverged or were pruned)")
    return TuneResult(dataclasses.replace(flt, **study.best_params), float(study.best_value), study)


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
    """

    filter: Filter
    n_trials: int = 40
    tune_seeds: Sequence[int] = (10_000, 10_001)
    space: dict[str, Any] | None = None
    metric: str = "rmse.a"
    storage: Any = None

    def tune(self, hmm: HMM) -> TuneResult:
        """Tune the filter on ``hmm`` (see :func:`tune`)."""
        return tune(self.filter, hmm, space=self.space, n_trials=self.n_trials,
                    seeds=self.tune_seeds, metric=self.metric, storage=self.storage)

    @property
    def name(self) -> str:
        return f"Tuned({self.filter.name}, n_trials={self.n_trials})"
