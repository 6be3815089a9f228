"""Lorenz-96 as in the SSLS paper ("Nonlinear assimilation with score-based sequential Langevin
sampling", arXiv 2411.13443).

Nx = 20, F = 8, RK4 with dt = 0.05 and additive model noise of standard deviation 0.1 sqrt(dt)
per step (covariance 0.01 I per unit time); every variable observed at every step with noise
sigma in {0.5, 1, 2}; truth and ensemble start from N(2, I). 400 observation cycles, the first
100 (5 time units) left out of the time averages.

The paper compares SSLS with an auxiliary particle filter and an EnKF at ensemble sizes 50 to
2000; this repository's figures are in ``benchmarks/README.md`` (``benchmarks/score_filters.py``).
"""

from __future__ import annotations

import numpy as np

from dafilters.hmm import HMM as _HMM
from dafilters.hmm import Chronology, GaussPrior
from dafilters.observations import IdentityObs

from . import Lorenz96

SIGMAS = (0.5, 1.0, 2.0)


def build(sigma: float = 2.0, Nx: int = 20, Ko: int = 399, dt: float = 0.05,
          burn_in_cycles: int = 100) -> _HMM:
    """The setting with observation noise ``sigma`` (the paper's values: :data:`SIGMAS`).

    Args:
        sigma: observation-error standard deviation. Nx: state size. Ko: index of the last
            observation (``Ko + 1`` cycles, one per model step). dt: RK4 step.
        burn_in_cycles: analyses left out of the time averages.
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}")
    return _HMM(
        dyn=Lorenz96(Nx, noise=0.1**2),
        obs=IdentityObs(Nx, noise=sigma**2),
        tseq=Chronology(dt, dko=1, Ko=Ko, BurnIn=dt * (burn_in_cycles + 0.5)),
        prior=GaussPrior(np.full(Nx, 2.0), 1.0),
        name=f"Lorenz96.ssls(sigma={sigma:g})",
    )


HMM = build()
