r"""The local ensemble transform Kalman filter (LETKF), all local analyses batched.

At every grid point :math:`i` an ETKF analysis uses the observations :math:`j` near it, each
weighted by the localization taper :math:`\rho_{ij}` (R-localization: :math:`R_{jj} \to
R_{jj}/\rho_{ij}`). With :math:`S^{(i)} = Y R^{-1/2} \mathrm{diag}(\sqrt{\rho_{i\cdot}})` and
:math:`\delta^{(i)} = \mathrm{diag}(\sqrt{\rho_{i\cdot}}) R^{-1/2}(y - \bar y)`:

.. math::
    G_i = S^{(i)} S^{(i)T} + (N-1) I,\quad w_i = G_i^{-1} S^{(i)} \delta^{(i)},\quad
    T_i = \sqrt{N-1}\, G_i^{-1/2},\quad E^a_{:,i} = \bar x_i + (w_i + T_i) A_{:,i}.

The ``Nx`` small ``(N, N)`` inverse square roots are computed in batched calls (Newton–Schulz
products where they converge fast, LAPACK eigendecompositions elsewhere; :mod:`dafilters.spd`),
with the local observations padded to a common count (padding has zero weight), so the cost grows
linearly in ``Nx`` with no Python loop over points. With an infinite radius every point uses all
observations with weight 1 and the LETKF is the global ETKF (``EnKF('Sqrt')``).

Reference: Hunt, Kostelich & Szunyogh (2007), "Efficient data assimilation for spatiotemporal
chaos: a local ensemble transform Kalman filter", Physica D 230.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from threadpoolctl import threadpool_info

from ..localization import TAPERS, local_observations
from ..spd import inv_sqrt_psd_shift, threaded_map
from .base import Context, Filter, check_ensemble_size
from .enkf import post_process

__all__ = ["LETKF", "letkf_update", "local_analysis_anomalies"]


#: Local domains analysed together (small enough for their arrays to stay in cache).
BLOCK = 32


def blas_threads() -> int:
    """The number of threads the BLAS in use may take now (1 inside ``threadpool_limits(1)``)."""
    info = threadpool_info()
    return max([i.get("num_threads", 1) for i in info if i.get("user_api") == "blas"] or [1])


def letkf_update(E: np.ndarray, Eo: np.ndarray, y: np.ndarray, R_diag: np.ndarray, idx: np.ndarray,
                 coeff: np.ndarray, batch: int = 1, threads: int = 1) -> np.ndarray:
    r"""Batched R-localized ETKF analysis.

    Args:
        E: forecast ensemble ``(N, Nx)``. Eo: observed ensemble ``(N, Ny)``. y: observation ``(Ny,)``.
        R_diag: observation-error variances ``(Ny,)`` (R must be diagonal).
        idx, coeff: local observation indices and taper weights ``(B, L)`` of the ``B`` local
            domains (see :func:`dafilters.localization.local_observations`).
        batch: state points per local domain (consecutive blocks; ``B = ceil(Nx / batch)``).
        threads: threads over which the local domains are split (in blocks of ``BLOCK``; the
            result does not depend on the split).

    Returns:
        The analysis ensemble ``(N, Nx)``.

    The transform of domain :math:`b` acts on the anomalies of its points without being formed:
    with :math:`M_b = G_b / (N-1) = I + S_b S_b^T / (N-1)` and :math:`Z_b = M_b^{-1/2}`,
    :math:`(w_b \mathbf 1^T + T_b) A_b = w_b (\mathbf 1^T A_b) + Z_b A_b`, :math:`w_b = Z_b^2 S_b
    \delta_b / (N-1)`, :math:`A_b` ``(N, batch)``.
    """
    N, Nx = E.shape
    B = idx.shape[0]
    if B != -(-Nx // batch):
        raise ValueError(f"{B} local domains do not cover {Nx} state points in batches of {batch}")
    mu = E.mean(axis=0)
    pad = B * batch - Nx
    A = np.pad(E - mu, ((0, 0), (0, pad))) if pad else E - mu
    A = np.transpose(A.reshape(N, B, batch), (1, 0, 2))  # (B, N, batch)
    yo = Eo.mean(axis=0)
    scale = 1 / np.sqrt(R_diag)
    Y = (Eo - yo) * scale  # (N, Ny), whitened
    dy = (y - yo) * scale  # (Ny,)

    def analyse(idx: np.ndarray, coeff: np.ndarray, A: np.ndarray) -> np.ndarray:  # one thread's share
        blocks = [slice(s, s + BLOCK) for s in range(0, len(idx), BLOCK)]
        return np.concatenate([local_analysis_anomalies(Y, dy, idx[b], coeff[b], A[b]) for b in blocks])

    A = threaded_map(analyse, (idx, coeff, A), threads, align=BLOCK)
    return mu + np.transpose(A, (1, 0, 2)).reshape(N, B * batch)[:, :Nx]


def local_analysis_anomalies(Y: np.ndarray, dy: np.ndarray, idx: np.ndarray, coeff: np.ndarray,
                             A: np.ndarray) -> np.ndarray:
    r"""The ETKF transforms of local domains applied to their anomalies (the part of
    :func:`letkf_update` that is done per domain).

    Args:
        Y: whitened observed anomalies ``(N, Ny)``. dy: whitened innovation ``(Ny,)``.
        idx, coeff: local observations and tapers of the domains ``(b, L)``.
        A: forecast anomalies of the domains' points ``(b, N, batch)``.

    Returns:
        ``(b, N, batch)``: member ``n`` of point ``p`` of domain ``b`` is
        :math:`\sum_m (w_b + T_b)_{mn} A_{b,m,p}`.
    """
    N = Y.shape[0]
    sq = np.sqrt(coeff / (N - 1))  # (b, L)
    S = np.transpose(Y[:, idx], (1, 0, 2)) * sq[:, None, :]  # (b, N, L): S_b / sqrt(N-1)
    M = S @ np.transpose(S, (0, 2, 1))  # (b, N, N)
    M[:, np.arange(N), np.arange(N)] += 1
    Z = inv_sqrt_psd_shift(M)  # (b, N, N): M^{-1/2}
    w = Z @ (Z @ (S @ (dy[idx] * sq)[:, :, None]))  # (b, N, 1): G^{-1} S dy
    TA = Z @ A
    TA += np.transpose(w, (0, 2, 1)) @ A  # the mean update w^T A, the same for every member
    return TA


@dataclass
class LETKF(Filter):
    """Local ETKF with R-localization.

    Args:
        N: ensemble size. infl: multiplicative inflation of the analysis anomalies.
        loc_rad: localization radius in grid units (taper = exp(-1/2) there; ``inf``: global).
        taper: ``'GC'`` (Gaspari–Cohn), ``'Step'`` or ``'Gauss'``.
        rot: random mean-preserving rotation of the analysis anomalies.
        batch: state points that share one local analysis (consecutive blocks, their distance to
            an observation the mean of their points' distances, as DAPPER's localization batches;
            its ``sakov2008`` uses 2). 1: one analysis per point.
        threads: threads over which the local analyses are split (not a hyper-parameter; results
            do not depend on it). ``None``: as many as the BLAS may use when the run starts (one inside a
            worker of ``Experiments.run(workers=k)``, which pins one BLAS thread per process).

    Needs a diagonal observation-error covariance and observations that say where they sit
    (``Observation.locations``).
    """

    N: int = 20
    infl: float = field(default=1.0, metadata={"space": ("log", 1.0, 1.5)})
    loc_rad: float = field(default=4.0, metadata={"space": ("log", 0.5, 40.0)})
    taper: str = "GC"
    rot: bool = False
    batch: int = 1
    threads: int | None = None
    non_hyper: ClassVar[tuple[str, ...]] = ("threads",)

    def __post_init__(self):
        check_ensemble_size(self.N)
        if not (isinstance(self.batch, (int, np.integer)) and self.batch >= 1):
            raise ValueError(f"batch must be a positive integer, got batch={self.batch!r}")
        if self.taper not in TAPERS:
            raise ValueError(f"unknown taper {self.taper!r}; choose one of {TAPERS}")
        if not self.loc_rad > 0:
            raise ValueError(f"loc_rad must be positive, got {self.loc_rad}")
        if not self.infl > 0:
            raise ValueError(f"inflation must be positive, got infl={self.infl!r}")

    def initialize(self, ctx: Context) -> np.ndarray:
        ctx.cache["letkf-threads"] = self.threads or blas_threads()
        return ctx.hmm.prior.sample(self.N, ctx.rng)

    def _local(self, ctx: Context, ko: int) -> tuple[np.ndarray, np.ndarray]:
        """Local observation sets, cached per observation layout."""
        dyn, obs = ctx.hmm.dyn, ctx.hmm.obs
        where = obs.locations(ko, dyn.coords)
        key = ("letkf-local", where.shape, where.tobytes())
        cache = ctx.cache.setdefault("letkf", {})
        if key not in cache:
            if len(cache) > 64:
                cache.clear()
            cache[key] = local_observations(dyn.coords, where, dyn.domain, self.loc_rad, self.taper,
                                            batch=self.batch)
        return cache[key]

    def analysis(self, E: np.ndarray, y: np.ndarray, ko: int, ctx: Context) -> np.ndarray:
        obs = ctx.hmm.obs
        R = obs.noise(ko)
        if not R.is_diag:
            raise ValueError("LETKF (R-localization) needs a diagonal observation-error covariance")
        idx, coeff = self._local(ctx, ko)
        E = letkf_update(E, obs(E, ko), y, R.diag, idx, coeff, self.batch, ctx.cache["letkf-threads"])
        return post_process(E, self.infl, self.rot, ctx.rng)
