r"""The ensemble Kalman filter family: stochastic (perturbed observations), square-root (ETKF) and
deterministic (DEnKF) analyses, multiplicative inflation and random rotations.

Notation (one analysis): ensemble ``E`` ``(N, Nx)`` with mean :math:`\bar x` and anomalies
:math:`A = E - \bar x`; observed ensemble ``Eo = h(E)`` ``(N, Ny)`` with anomalies ``Y``;
innovation :math:`\delta = y - \bar y`; :math:`S = Y R^{-1/2}` and the ensemble-space matrix

.. math::  G = S S^T + (N-1) I_N \quad (N \times N).

The Kalman gain in ensemble space is :math:`K = A^T Y C^{-1}` with
:math:`C = Y^T Y + (N-1) R`, and :math:`Y C^{-1} = G^{-1} Y R^{-1}` (Woodbury), so no
``(Ny, Ny)`` system is ever solved.

References: Evensen 2009, "Data Assimilation: The Ensemble Kalman Filter"; Sakov & Oke 2008,
"A deterministic formulation of the ensemble Kalman filter" (DEnKF); Hunt, Kostelich & Szunyogh
2007 (ETKF transform); Sakov, Oliver & Bertino 2012 (random rotations).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..gaussian import Covariance
from .base import Context, Filter, check_ensemble_size

__all__ = [
    "EnKF", "UPDATES", "sqrt_update", "pertobs_update", "denkf_update", "ensemble_gain_factor",
    "random_rotation", "post_process",
]


def ensemble_gain_factor(Y: np.ndarray, R: Covariance) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Eigen-decomposition of :math:`G = S S^T + (N-1) I` with :math:`S = Y R^{-1/2}`.

    Args:
        Y: observed anomalies ``(N, Ny)``. R: observation-error covariance ``(Ny, Ny)``.

    Returns:
        ``d`` ``(N,)`` and ``V`` ``(N, N)`` with :math:`G = V \mathrm{diag}(d) V^T`, and
        :math:`Y R^{-1}` ``(N, Ny)``.
    """
    N = Y.shape[0]
    S = R.whiten(Y)
    G = S @ S.T
    G[np.diag_indices(N)] += N - 1
    d, V = np.linalg.eigh(G)
    return d, V, R.solve(Y)


def sqrt_update(E: np.ndarray, Eo: np.ndarray, y: np.ndarray, R: Covariance) -> np.ndarray:
    r"""Symmetric square-root (ETKF) analysis.

    .. math::
        w = G^{-1} Y R^{-1} \delta, \qquad T = \sqrt{N-1}\, G^{-1/2}, \qquad
        E^a = \bar x + (w + T) A,

    where :math:`G^{-1/2}` is the symmetric inverse square root, so the analysis anomalies
    :math:`T A` have the Kalman analysis covariance and zero mean.

    Args: ``E`` ``(N, Nx)``, ``Eo`` ``(N, Ny)``, ``y`` ``(Ny,)``, ``R`` ``(Ny, Ny)``.
    """
    N = E.shape[0]
    mu = E.mean(axis=0)
    A = E - mu
    yo = Eo.mean(axis=0)
    Y = Eo - yo
    d, V, YRi = ensemble_gain_factor(Y, R)
    w = V @ ((V.T @ (YRi @ (y - yo))) / d)
    T = (V * (np.sqrt(N - 1) / np.sqrt(d))) @ V.T
    T += w
    return mu + T @ A


def pertobs_update(E: np.ndarray, Eo: np.ndarray, y: np.ndarray, R: Covariance,
                   rng: np.random.Generator) -> np.ndarray:
    r"""Stochastic EnKF with perturbed observations (Burgers et al. 1998).

    .. math::
        E^a_n = E_n + K (y - D_n - h(E_n)), \qquad K = A^T Y C^{-1},\quad
        C = Y^T Y + (N-1)R,

    with perturbations :math:`D_n \sim N(0, R)`, centred so that they do not shift the mean and
    rescaled by :math:`\sqrt{N/(N-1)}` so that centring does not shrink their expected covariance
    below ``R`` (as DAPPER does).

    Args: as :func:`sqrt_update`, and the random stream ``rng``.
    """
    N = E.shape[0]
    D = R.sample(N, rng)
    D -= D.mean(axis=0)
    D *= np.sqrt(N / (N - 1))
    A = E - E.mean(axis=0)
    Y = Eo - Eo.mean(axis=0)
    d, V, YRi = ensemble_gain_factor(Y, R)
    YC = V @ ((V.T @ YRi) / d[:, None])  # Y C^{-1}, (N, Ny)
    return E + ((y - D - Eo) @ YC.T) @ A


def denkf_update(E: np.ndarray, Eo: np.ndarray, y: np.ndarray, R: Covariance) -> np.ndarray:
    r"""Deterministic EnKF (Sakov & Oke 2008): Kalman mean update, half-gain anomaly update.

    .. math::
        \bar x^a = \bar x + K\delta, \qquad A^a = A - \tfrac12 K Y  \quad
        (\text{rows: } A^a = A - \tfrac12\, Y C^{-1} Y^T A).

    Args: as :func:`sqrt_update`.
    """
    mu = E.mean(axis=0)
    A = E - mu
    yo = Eo.mean(axis=0)
    Y = Eo - yo
    d, V, YRi = ensemble_gain_factor(Y, R)
    YC = V @ ((V.T @ YRi) / d[:, None])
    T = -0.5 * (Y @ YC.T)
    T[np.diag_indices(E.shape[0])] += 1
    T += YC @ (y - yo)
    return mu + T @ A


@lru_cache(maxsize=32)
def _basis_with_ones(N: int) -> np.ndarray:
    """An orthonormal basis ``(N, N)`` of R^N whose first column is ``1/sqrt(N)``."""
    M = np.eye(N)
    M[:, 0] = 1.0
    Q, _ = np.linalg.qr(M)
    return Q


def random_rotation(N: int, rng: np.random.Generator) -> np.ndarray:
    r"""A Haar-random orthogonal ``(N, N)`` matrix that preserves the ensemble mean
    (:math:`\Omega 1 = 1`): :math:`\Omega = V\,\mathrm{diag}(1, Q)\,V^T` with ``V`` a basis whose
    first vector is :math:`1/\sqrt N` and ``Q`` Haar-distributed on ``O(N-1)``."""
    Z = rng.standard_normal((N - 1, N - 1))
    Q, Rq = np.linalg.qr(Z)
    Q *= np.sign(np.diag(Rq))
    V = _basis_with_ones(N)
    B = np.eye(N)
    B[1:, 1:] = Q
    return V @ B @ V.T


def post_process(E: np.ndarray, infl: float, rot: bool, rng: np.random.Generator) -> np.ndarray:
    r"""Multiplicative inflation and random rotation of the anomalies:
    :math:`E \leftarrow \bar x + \Omega\, \lambda A` (:math:`\Omega = I` without ``rot``)."""
    if infl == 1.0 and not rot:
        return E
    mu = E.mean(axis=0)
    A = E - mu
    if rot:
        A = random_rotation(E.shape[0], rng) @ A
    return mu + infl * A


#: The analysis updates ``EnKF`` accepts.
UPDATES = ("Sqrt", "PertObs", "DEnKF")


@dataclass
class EnKF(Filter):
    """Ensemble Kalman filter.

    Args:
        upd_a: analysis update: ``'Sqrt'`` (ETKF, symmetric square root), ``'PertObs'``
            (perturbed observations) or ``'DEnKF'`` (deterministic EnKF).
        N: ensemble size (>= 2).
        infl: multiplicative inflation of the analysis anomalies (1 = none).
        rot: apply a random mean-preserving rotation to the analysis anomalies.

    The ensemble starts as ``N`` draws from the prior and is propagated with the model noise.
    """

    upd_a: str = "Sqrt"
    N: int = 10
    infl: float = field(default=1.0, metadata={"space": ("log", 1.0, 1.5)})
    rot: bool = False

    def __post_init__(self):
        if self.upd_a not in UPDATES:
            raise ValueError(f"unknown EnKF update upd_a={self.upd_a!r}; choose one of {UPDATES}")
        check_ensemble_size(self.N)
        if not self.infl > 0:
            raise ValueError(f"inflation must be positive, got infl={self.infl!r}")

    def initialize(self, ctx: Context) -> np.ndarray:
        return ctx.hmm.prior.sample(self.N, ctx.rng)

    def analysis(self, E: np.ndarray, y: np.ndarray, ko: int, ctx: Context) -> np.ndarray:
        obs = ctx.hmm.obs
        Eo = obs(E, ko)
        R = obs.noise(ko)
        if self.upd_a == "Sqrt":
            E = sqrt_update(E, Eo, y, R)
        elif self.upd_a == "PertObs":
            E = pertobs_update(E, Eo, y, R, ctx.rng)
        else:
            E = denkf_update(E, Eo, y, R)
        return post_process(E, self.infl, self.rot, ctx.rng)
