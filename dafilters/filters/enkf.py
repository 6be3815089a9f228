r"""The ensemble Kalman filter family: stochastic (perturbed observations), square-root (ETKF) and
deterministic (DEnKF) analyses, multiplicative inflation and random rotations.

Notation (one analysis): ensemble ``E`` ``(N, Nx)`` with mean :math:`\bar x` and anomalies
:math:`A = E - \bar x`; observed ensemble ``Eo = h(E)`` ``(N, Ny)`` with anomalies ``Y``;
innovation :math:`\delta = y - \bar y`; :math:`S = Y R^{-1/2}` and the ensemble-space matrix

.. math::  G = S S^T + (N-1) I_N \quad (N \times N).

The Kalman gain in ensemble space is :math:`K = A^T Y C^{-1}` with
:math:`C = Y^T Y + (N-1) R`, and :math:`Y C^{-1} = G^{-1} Y R^{-1}` (Woodbury).

Two equal forms of each global update: the ensemble-space form factorises the ``(N, N)`` matrix
:math:`G`; the observation-space form factorises :math:`K_y = S^T S + (N-1) I_{N_y}`
(``(Ny, Ny)``, :func:`obs_space_factor`) and never forms an ``(N, N)`` matrix, using
:math:`G^{-1} S = S K_y^{-1}` and, for the square root,
:math:`\sqrt{N-1}\, G^{-1/2} = I_N + S\, W g(\Lambda) W^T S^T` with
:math:`S^T S = W \Lambda W^T` (see :func:`sqrt_update`). The cheaper one is taken: the
observation-space form when :math:`N_y < N` (``space=None``); ``space='ensemble'`` or ``'obs'``
forces one (the two agree to round-off, tests/test_enkf.py).

References: Evensen 2009, "Data Assimilation: The Ensemble Kalman Filter"; Sakov & Oke 2008,
"A deterministic formulation of the ensemble Kalman filter" (DEnKF); Hunt, Kostelich & Szunyogh
2007 (ETKF transform); Sakov, Oliver & Bertino 2012 (random rotations).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from .. import lapack
from ..gaussian import Covariance
from ..localization import TAPERS, pairwise_distances, taper
from .base import Context, Filter, check_ensemble_size

__all__ = [
    "EnKF", "UPDATES", "sqrt_update", "pertobs_update", "denkf_update", "ensemble_gain_factor",
    "obs_space_factor", "use_obs_space", "random_rotation", "rotate_anomalies", "post_process",
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
    d, V = lapack.eigh(G)
    return d, V, R.solve(Y)


#: Force the analysis form of the global updates: ``None`` (automatic: observation space when
#: ``Ny < N``), ``"ensemble"`` or ``"obs"``. For benchmarks and tests; a ``space`` argument wins.
FORCE_SPACE: str | None = None


def use_obs_space(N: int, Ny: int, space: str | None = None) -> bool:
    """Whether a global update of ``N`` members and ``Ny`` observations takes the
    observation-space form: ``space`` (or :data:`FORCE_SPACE`) if given, else ``Ny < N``."""
    space = space or FORCE_SPACE
    if space is None:
        return Ny < N
    if space not in ("ensemble", "obs"):
        raise ValueError(f"space must be 'ensemble', 'obs' or None, got {space!r}")
    return space == "obs"


def obs_space_factor(Y: np.ndarray, R: Covariance) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Eigen-decomposition of :math:`S^T S` ``(Ny, Ny)`` with :math:`S = Y R^{-1/2}`.

    Returns ``S`` ``(N, Ny)``, ``lam`` ``(Ny,)`` (clipped at 0) and ``W`` ``(Ny, Ny)`` with
    :math:`S^T S = W \mathrm{diag}(\lambda) W^T`; then
    :math:`K_y^{-1} = (S^T S + (N-1) I)^{-1} = W \mathrm{diag}(1/(\lambda + N - 1)) W^T`.
    """
    S = R.whiten(Y)
    lam, W = lapack.eigh(S.T @ S)
    return S, np.maximum(lam, 0.0), W


def sqrt_update(E: np.ndarray, Eo: np.ndarray, y: np.ndarray, R: Covariance,
                space: str | None = None) -> np.ndarray:
    r"""Symmetric square-root (ETKF) analysis.

    .. math::
        w = G^{-1} Y R^{-1} \delta, \qquad T = \sqrt{N-1}\, G^{-1/2}, \qquad
        E^a = \bar x + (w + T) A,

    where :math:`G^{-1/2}` is the symmetric inverse square root, so the analysis anomalies
    :math:`T A` have the Kalman analysis covariance and zero mean.

    Observation-space form (``Ny < N``): with :math:`c = N-1`, :math:`S^T S = W\Lambda W^T`
    and the thin SVD :math:`S = U \Sigma W^T` (:math:`\Sigma^2 = \Lambda`),
    :math:`G = U(\Lambda + c)U^T + c(I - UU^T)`, so
    :math:`\sqrt c\, G^{-1/2} = I + U f(\Lambda) U^T = I + S\, W g(\Lambda) W^T S^T` with
    :math:`f(\lambda) = \sqrt{c/(\lambda+c)} - 1` and
    :math:`g(\lambda) = f(\lambda)/\lambda = -1/\big(\sqrt{\lambda+c}\,(\sqrt c + \sqrt{\lambda+c})\big)`
    (finite at :math:`\lambda = 0`, so rank-deficient ``S`` needs no care), and
    :math:`w = S K_y^{-1} R^{-1/2}\delta`. The same ensemble to round-off, in
    :math:`O(N N_y (N_x + N_y))` instead of :math:`O(N^2 (N + N_x + N_y))`.

    Args: ``E`` ``(N, Nx)``, ``Eo`` ``(N, Ny)``, ``y`` ``(Ny,)``, ``R`` ``(Ny, Ny)``;
    ``space``: see :func:`use_obs_space`.
    """
    N = E.shape[0]
    mu = E.sum(axis=0) / N  # = E.mean(axis=0) bit for bit, without np.mean's overhead
    A = E - mu
    yo = Eo.sum(axis=0) / N
    Y = Eo - yo
    if use_obs_space(N, Y.shape[1], space):
        c = N - 1.0
        S, lam, W = obs_space_factor(Y, R)
        r = np.sqrt(lam + c)
        w = S @ (W @ ((W.T @ R.whiten(y - yo)) / (lam + c)))
        g = -1.0 / (r * (np.sqrt(c) + r))
        SA = S.T @ A
        return (mu + w @ A) + A + S @ ((W * g) @ (W.T @ SA))
    d, V, YRi = ensemble_gain_factor(Y, R)
    w = V @ ((V.T @ (YRi @ (y - yo))) / d)
    T = (V * (np.sqrt(N - 1) / np.sqrt(d))) @ V.T
    T += w
    return mu + T @ A


def pertobs_update(E: np.ndarray, Eo: np.ndarray, y: np.ndarray, R: Covariance,
                   rng: np.random.Generator, space: str | None = None) -> np.ndarray:
    r"""Stochastic EnKF with perturbed observations (Burgers et al. 1998).

    .. math::
        E^a_n = E_n + K (y - D_n - h(E_n)), \qquad K = A^T Y C^{-1},\quad
        C = Y^T Y + (N-1)R,

    with perturbations :math:`D_n \sim N(0, R)`, centred so that they do not shift the mean and
    rescaled by :math:`\sqrt{N/(N-1)}` so that centring does not shrink their expected covariance
    below ``R`` (as DAPPER does). In observation space (``Ny < N``)
    :math:`Y C^{-1} = S K_y^{-1} R^{-1/2}`, so the innovations are whitened and multiplied by
    :math:`K_y^{-1} S^T A` (``(Ny, Nx)``).

    Args: as :func:`sqrt_update`, and the random stream ``rng`` (drawn from identically in both
    forms).
    """
    N = E.shape[0]
    D = R.sample(N, rng)
    D -= D.sum(axis=0) / N
    D *= np.sqrt(N / (N - 1))
    A = E - E.sum(axis=0) / N
    Y = Eo - Eo.sum(axis=0) / N
    if use_obs_space(N, Y.shape[1], space):
        S, lam, W = obs_space_factor(Y, R)
        KSA = W @ ((W.T @ (S.T @ A)) / (lam + (N - 1))[:, None])  # K_y^{-1} S^T A, (Ny, Nx)
        return E + R.whiten(y - D - Eo) @ KSA
    d, V, YRi = ensemble_gain_factor(Y, R)
    YC = V @ ((V.T @ YRi) / d[:, None])  # Y C^{-1}, (N, Ny)
    return E + ((y - D - Eo) @ YC.T) @ A


def denkf_update(E: np.ndarray, Eo: np.ndarray, y: np.ndarray, R: Covariance,
                 space: str | None = None) -> np.ndarray:
    r"""Deterministic EnKF (Sakov & Oke 2008): Kalman mean update, half-gain anomaly update.

    .. math::
        \bar x^a = \bar x + K\delta, \qquad A^a = A - \tfrac12 K Y  \quad
        (\text{rows: } A^a = A - \tfrac12\, Y C^{-1} Y^T A).

    In observation space (``Ny < N``) :math:`Y C^{-1} Y^T = S K_y^{-1} S^T`.

    Args: as :func:`sqrt_update`.
    """
    N = E.shape[0]
    mu = E.sum(axis=0) / N  # = E.mean(axis=0) bit for bit, without np.mean's overhead
    A = E - mu
    yo = Eo.sum(axis=0) / N
    Y = Eo - yo
    if use_obs_space(N, Y.shape[1], space):
        S, lam, W = obs_space_factor(Y, R)
        KSA = W @ ((W.T @ (S.T @ A)) / (lam + (N - 1))[:, None])  # K_y^{-1} S^T A, (Ny, Nx)
        return (mu + R.whiten(y - yo) @ KSA) + A - 0.5 * (S @ KSA)
    d, V, YRi = ensemble_gain_factor(Y, R)
    YC = V @ ((V.T @ YRi) / d[:, None])
    T = -0.5 * (Y @ YC.T)
    T[np.diag_indices(E.shape[0])] += 1
    T += YC @ (y - yo)
    return mu + T @ A


def localized_gain(A: np.ndarray, Y: np.ndarray, R: Covariance, rho_xy: np.ndarray,
                   rho_yy: np.ndarray) -> np.ndarray:
    r"""Kalman gain with covariance localization in observation space (Houtekamer & Mitchell 2001):

    .. math:: K = (\rho_{xy} \circ P_{xy})(\rho_{yy} \circ P_{yy} + R)^{-1},\qquad
        P_{xy} = \frac{A^T Y}{N-1},\ P_{yy} = \frac{Y^T Y}{N-1}.

    Args: anomalies ``A`` ``(N, Nx)`` and ``Y`` ``(N, Ny)``; tapers ``rho_xy`` ``(Nx, Ny)`` and
    ``rho_yy`` ``(Ny, Ny)``. Returns ``K`` ``(Nx, Ny)``.
    """
    N = A.shape[0]
    Pxy = rho_xy * (A.T @ Y) / (N - 1)
    C = rho_yy * (Y.T @ Y) / (N - 1) + R.full
    return np.linalg.solve(C, Pxy.T).T  # C is symmetric


def localized_update(E: np.ndarray, Eo: np.ndarray, y: np.ndarray, R: Covariance, rho_xy: np.ndarray,
                     rho_yy: np.ndarray, kind: str, rng: np.random.Generator | None = None) -> np.ndarray:
    r"""Localized ``'PertObs'`` or ``'DEnKF'`` analysis with the gain of :func:`localized_gain`:
    :math:`E^a_n = E_n + K(y - D_n - h(E_n))` (perturbations as in :func:`pertobs_update`), or
    :math:`\bar x^a = \bar x + K\delta`, :math:`A^a = A - \tfrac12 K Y`. With tapers of ones
    these are :func:`pertobs_update` and :func:`denkf_update`."""
    N = E.shape[0]
    mu, yo = E.mean(axis=0), Eo.mean(axis=0)
    A, Y = E - mu, Eo - yo
    K = localized_gain(A, Y, R, rho_xy, rho_yy)
    if kind == "PertObs":
        D = R.sample(N, rng)
        D -= D.mean(axis=0)
        D *= np.sqrt(N / (N - 1))
        return E + (y - D - Eo) @ K.T
    return mu + (y - yo) @ K.T + A - 0.5 * Y @ K.T


@lru_cache(maxsize=32)
def _mean_free_basis(N: int) -> tuple[np.ndarray, np.ndarray]:
    """An orthonormal basis ``V1`` ``(N, N-1)`` of the vectors of R^N that sum to zero (the
    complement of ``1/sqrt(N)``), and its transpose, both C-ordered and read-only."""
    M = np.eye(N)
    M[:, 0] = 1.0
    V1 = np.ascontiguousarray(np.linalg.qr(M)[0][:, 1:])
    V1T = np.ascontiguousarray(V1.T)
    V1.flags.writeable = V1T.flags.writeable = False
    return V1, V1T


def random_rotation(N: int, rng: np.random.Generator) -> np.ndarray:
    r"""A Haar-random orthogonal ``(N, N)`` matrix that preserves the ensemble mean
    (:math:`\Omega 1 = 1`): :math:`\Omega = \tfrac1N 1 1^T + V_1 Q V_1^T` with ``V_1`` ``(N, N-1)``
    an orthonormal basis of the vectors orthogonal to ``1`` and ``Q`` Haar-distributed on
    ``O(N-1)`` (:func:`~dafilters.lapack.orthogonal_factor` of an ``(N-1, N-1)`` standard normal
    draw); that is :math:`V \mathrm{diag}(1, Q) V^T` with :math:`V = [1/\sqrt N, V_1]`."""
    V1, V1T = _mean_free_basis(N)
    return V1 @ lapack.orthogonal_factor(rng.standard_normal((N - 1, N - 1))) @ V1T + 1.0 / N


def rotate_anomalies(A: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    r""":math:`\Omega A` for anomalies ``A`` ``(N, Nx)`` (rows summing to zero) and :math:`\Omega`
    drawn as :func:`random_rotation` draws it (the same draws from ``rng``): since
    :math:`1^T A = 0`, :math:`\Omega A = V_1 (Q (V_1^T A))`, without forming :math:`\Omega`."""
    N = A.shape[0]
    V1, V1T = _mean_free_basis(N)
    Q = lapack.orthogonal_factor(rng.standard_normal((N - 1, N - 1)))
    return V1 @ (Q @ (V1T @ A))


def post_process(E: np.ndarray, infl: float, rot: bool, rng: np.random.Generator) -> np.ndarray:
    r"""Multiplicative inflation and random rotation of the anomalies:
    :math:`E \leftarrow \bar x + \Omega\, \lambda A` (:math:`\Omega = I` without ``rot``;
    :func:`rotate_anomalies`)."""
    if infl == 1.0 and not rot:
        return E
    mu = E.sum(axis=0) / E.shape[0]  # = E.mean(axis=0) bit for bit
    A = E - mu
    if rot:
        A = rotate_anomalies(A, rng)
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
        loc_rad: covariance localization radius for ``'PertObs'`` and ``'DEnKF'`` (tapered
            state-observation and observation-observation covariances, :func:`localized_update`;
            same units and taper convention as the LETKF's); ``None``: no localization. The
            ``'Sqrt'`` update is localized by :class:`~dafilters.LETKF` instead.
        taper: ``'GC'``, ``'Gauss'`` or ``'Step'``.

    The ensemble starts as ``N`` draws from the prior and is propagated with the model noise.
    """

    upd_a: str = "Sqrt"
    N: int = 10
    infl: float = field(default=1.0, metadata={"space": ("log", 1.0, 1.5)})
    rot: bool = False
    loc_rad: float | None = None
    taper: str = "GC"

    def __post_init__(self):
        if self.upd_a not in UPDATES:
            raise ValueError(f"unknown EnKF update upd_a={self.upd_a!r}; choose one of {UPDATES}")
        if self.loc_rad is not None:
            if self.upd_a == "Sqrt":
                raise ValueError("the 'Sqrt' EnKF is not localized here: use LETKF(N, infl, loc_rad) "
                                 "or upd_a='PertObs'/'DEnKF' with loc_rad")
            if not self.loc_rad > 0:
                raise ValueError(f"loc_rad must be positive or None, got {self.loc_rad!r}")
            if self.taper not in TAPERS:
                raise ValueError(f"unknown taper {self.taper!r}; choose one of {TAPERS}")
        check_ensemble_size(self.N)
        if not self.infl > 0:
            raise ValueError(f"inflation must be positive, got infl={self.infl!r}")

    def initialize(self, ctx: Context) -> np.ndarray:
        return ctx.hmm.prior.sample(self.N, ctx.rng)

    def _tapers(self, ctx: Context, ko: int) -> tuple[np.ndarray, np.ndarray]:
        """Tapers of the state-observation and observation-observation distances (cached per
        observation layout)."""
        dyn = ctx.hmm.dyn
        where = ctx.hmm.obs.locations(ko, dyn.coords)
        key = ("enkf-tapers", where.shape, where.tobytes())
        if key not in ctx.cache:
            dom = None if dyn.domain is None else np.asarray(dyn.domain, dtype=float)
            ctx.cache[key] = (taper(pairwise_distances(dyn.coords, where, dom), self.loc_rad, self.taper),
                              taper(pairwise_distances(where, where, dom), self.loc_rad, self.taper))
        return ctx.cache[key]

    def analysis(self, E: np.ndarray, y: np.ndarray, ko: int, ctx: Context) -> np.ndarray:
        obs = ctx.hmm.obs
        Eo = obs(E, ko)
        R = obs.noise(ko)
        if self.loc_rad is not None:
            rho_xy, rho_yy = self._tapers(ctx, ko)
            E = localized_update(E, Eo, y, R, rho_xy, rho_yy, self.upd_a, ctx.rng)
        elif self.upd_a == "Sqrt":
            E = sqrt_update(E, Eo, y, R)
        elif self.upd_a == "PertObs":
            E = pertobs_update(E, Eo, y, R, ctx.rng)
        else:
            E = denkf_update(E, Eo, y, R)
        return post_process(E, self.infl, self.rot, ctx.rng)
