"""The sampler: TPE whose trial ``i`` is drawn with the seed ``(seed, i)``."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from typing import Any


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
