"""Lorenz-96 as in the SSLS paper ("Nonlinear assimilation with score-based sequential Langevin
sampling", arXiv 2411.13443).

Nx = 20, F = 8, RK4 with dt = 0.05 and additive model noise of standard deviation 0.1 sqrt(dt)
per step (covariance 0.01 I per unit time); every variable observed at every step with noise
sigma in {0.5, 1, 2}; truth and ensemble start from N(2, I). 400 observation cycles, the first
100 (5 time units) left out of the time averages.

The paper compares SSLS with an auxiliary particle filter and an EnKF at ensemble sizes 50 to
2000; this repository's figures are in ``benchmarks/README.md`` (``benchmarks/score_filters.py``).

**The reference code's regime** (:func:`reference`; ``configs/lorenz96.json`` and ``main.py
lorenz96`` of github.com/burning489/SSLS): the truth starts near the unstable fixed point,
``x = 8`` with ``0.01`` added to ``x_0``, while the filters' prior stays the badly biased
``N(2, I)``; 100 model steps of dt = 0.05 with noise ``0.1 sqrt(dt)``; every variable observed
with sigma_obs 0.5, 1 or 2; ensemble sizes 50 to 2000; the paper's "Average RMSE" is the mean over
all analyses (no burn-in). Differences: the reference observes the initial state too and analyses
the prior ensemble at ``t = 0``; here (no observation at ``t = 0`` in a dafilters chronology) the
101 observations are at steps 1..101 and the ensemble takes one forecast step from ``N(2, I)``
first. Its APF (``notebooks/LorenzAuxiliaryParticleFilter.ipynb``) adds ``N(0, 0.5^2 I)`` to
every forecast particle before the likelihood resampling.
"""

from __future__ import annotations

import numpy as np

from dafilters.hmm import HMM as _HMM
from dafilters.hmm import Chronology, GaussPrior
from dafilters.observations import IdentityObs

from . import Lorenz96
from .twin import TwinHMM

SIGMAS = (0.5, 1.0, 2.0)
#: Model noise standard deviation per unit time (``0.1 sqrt(dt)`` per step).
MODEL_NOISE = 0.1


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
        dyn=Lorenz96(Nx, noise=MODEL_NOISE**2),
        obs=IdentityObs(Nx, noise=sigma**2),
        tseq=Chronology(dt, dko=1, Ko=Ko, BurnIn=dt * (burn_in_cycles + 0.5)),
        prior=GaussPrior(np.full(Nx, 2.0), 1.0),
        name=f"Lorenz96.ssls(sigma={sigma:g})",
    )


def reference(sigma: float = 0.5, steps: int = 100, Nx: int = 20, dt: float = 0.05) -> TwinHMM:
    """The reference code's regime (see the module docstring): truth from ``8 + 0.01 e_0``,
    filters' prior ``N(2, I)``, ``steps + 1`` observations (one per model step), all averaged.

    Args:
        sigma: observation-error standard deviation (reference: 0.5, 1, 2). steps: model steps
            of the reference (100). Nx: state size (20). dt: RK4 step (0.05).
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}")
    x0 = np.full(Nx, 8.0)
    x0[0] += 0.01
    return TwinHMM(
        dyn=Lorenz96(Nx, noise=MODEL_NOISE**2),
        obs=IdentityObs(Nx, noise=sigma**2),
        tseq=Chronology(dt, dko=1, Ko=steps, BurnIn=0.0),
        prior=GaussPrior(np.full(Nx, 2.0), 1.0),
        name=f"Lorenz96.ssls.reference(sigma={sigma:g})",
        truth_x0=x0,
    )


HMM = build()
