"""Distributions of the initial state: :class:`Prior` and :class:`GaussPrior`.

Part of the hidden Markov model (:mod:`dafilters.hmm`, which re-exports every name here).
"""

from __future__ import annotations

import numpy as np

from .gaussian import Covariance, GaussRV
from .identity import Identified

__all__ = ["Prior", "GaussPrior"]


class Prior(Identified):
    """Distribution of the initial state ``x_0``.

    A subclass sets ``Nx``, the state size (which :class:`~dafilters.hmm.HMM` checks against the
    dynamics), and implements :meth:`sample`; :attr:`mean` and :attr:`cov` where they have a
    closed form. Its attributes define its identity, as for :class:`~dafilters.dynamics.Dynamics`
    (draw from the ``rng`` passed to :meth:`sample`, never from a generator kept on the object)::

        class UniformPrior(Prior):
            def __init__(self, low, high):
                self.low, self.high = np.asarray(low, float), np.asarray(high, float)
                super().__init__(Nx=len(self.low))      # or: self.Nx = len(self.low)

            def sample(self, N, rng):
                return rng.uniform(self.low, self.high, size=(N, self.Nx))

    Args:
        Nx: the state size (a subclass may set ``self.Nx`` itself instead).
    """

    #: The state size; every prior must have it.
    Nx: int

    def __init__(self, Nx: int | None = None):
        if Nx is not None:
            self.Nx = int(Nx)

    def __getattr__(self, name: str):
        if name == "Nx":
            raise AttributeError(f"{type(self).__name__} has no attribute 'Nx': a Prior subclass must "
                                 "set Nx, the state size (self.Nx = ... or super().__init__(Nx) in "
                                 "its __init__)")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def sample(self, N: int, rng: np.random.Generator) -> np.ndarray:
        """``N`` draws, shape ``(N, Nx)``, from the random stream ``rng``."""
        raise NotImplementedError(f"{type(self).__name__} must implement sample(N, rng)")

    @property
    def mean(self) -> np.ndarray:
        """The mean ``(Nx,)``, where known in closed form."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form mean")

    @property
    def cov(self) -> Covariance:
        """The covariance, where known in closed form."""
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
