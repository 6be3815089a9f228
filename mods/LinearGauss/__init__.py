r"""A small linear-Gaussian model, where the Kalman filter is the exact (optimal) filter.

.. math::
    x_k = M x_{k-1} + q_k,\ q_k \sim N(0, Q); \qquad y_{ko} = H x_{k} + r,\ r \sim N(0, R),

with ``Nx = 5``, ``M = 0.95 * (a fixed orthogonal matrix)`` (stable, rotating), ``Q = 0.1 I``,
observations of components 0, 2, 4 with ``R = 0.5 I`` at every step, prior ``N(0, I)``.
Use :func:`build` for other sizes. Expected: ``KalmanFilter`` rmse.a equals its spread.a; an
EnKF with a large ensemble matches the Kalman mean and covariance to sampling error.
"""

from __future__ import annotations

import numpy as np

from dafilters.hmm import HMM as _HMM
from dafilters.hmm import Chronology, GaussPrior, LinearDynamics
from dafilters.observations import PartialObs


def transition_matrix(Nx: int, rho: float = 0.95, seed: int = 7) -> np.ndarray:
    """``rho`` times a fixed random orthogonal ``(Nx, Nx)`` matrix (spectral radius ``rho``)."""
    Q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((Nx, Nx)))
    return rho * Q


def build(Nx: int = 5, obs_every: int = 2, Q: float = 0.1, R: float = 0.5, Ko: int = 1000,
          dko: int = 1, BurnIn: float = 20.0) -> _HMM:
    """The linear-Gaussian HMM with ``Nx`` variables, observing every ``obs_every``-th one."""
    return _HMM(
        dyn=LinearDynamics(transition_matrix(Nx), noise=Q),
        obs=PartialObs(Nx, np.arange(0, Nx, obs_every), noise=R),
        tseq=Chronology(1.0, dko=dko, Ko=Ko, BurnIn=BurnIn),
        prior=GaussPrior(np.zeros(Nx), 1.0),
        name=f"LinearGauss(Nx={Nx})",
    )


HMM = build()
