"""Distributions of the initial state: :class:`Prior` and :class:`GaussPrior`.

Part of the hidden Markov model (:mod:`dafilters.hmm`, which re-exports every name here).
"""

from __future__ import annotations

import numpy as np

from .gaussian import Covariance, GaussRV
from .identity import Identified

__all__ = ["Prior", "GaussPrior"]


class Prior(Identified):
    """Distribution of the initial state ``x_0``. Subclasses set ``Nx`` (the state size) and
    implement :meth:`sample`; their attributes define their identity, as for :class:`Dynamics`."""

    Nx: int

    def sample(self, N: int, rng: np.random.Generator) -> np.ndarray:
        """``N`` draws, shape ``(N, Nx)``."""
        raise NotImplementedError

    @property
    def mean(self) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} has no closed-form mean")

    @property
    def cov(self) -> Covariance:
        raise NotImplementedError(f"{type(self).__name__} has no closed-form covariance")


class GaussPrior(Prior):
    """Gaussian prior ``N(mu, C)``; ``mu`` of shape ``(Nx,)``, ``C`` as for :class:`Covariance`."""

    def __init__(self, mu, C=1.0, Nx: int | None = None):
        """``C`` may be singular (a prior that fixes some components exactly), not indefinite.

        Raises:
            ValueError: naming ``GaussPrior`` if ``mu`` or ``C`` does not have size ``Nx`` (or
                each other's size), or ``C`` is not a covariance (see :class:`Covariance`).
        """
        self.rv = GaussRV(mu, C, Nx, name="GaussPrior", semidefinite=True)
        self.Nx = self.rv.M

    def sample(self, N: int, rng: np.random.Generator) -> np.ndarray:
        return self.rv.sample(N, rng)

    @property
    def mean(self) -> np.ndarray:
        return self.rv.mu

    @property
    def cov(self) -> Covariance:
        return self.rv.C
