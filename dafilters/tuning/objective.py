"""The objective of a study (a filter run on the tuning seeds) and the loop that runs trials."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..filters.base import Filter
from ..hmm import HMM
from ..stats import Stats
from .space import suggest


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


def _result(flt: Filter, study: Any) -> TuneResult:
    import optuna

    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not completed:
        raise RuntimeError(f"no trial of {flt.name} completed (all diverged or were pruned)")
    return TuneResult(dataclasses.replace(flt, **study.best_params), float(study.best_value), study)
