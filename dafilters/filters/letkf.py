r"""The local ensemble transform Kalman filter (LETKF), all local analyses batched.

At every grid point :math:`i` an ETKF analysis uses the observations :math:`j` near it, each
weighted by the localization taper :math:`\rho_{ij}` (R-localization: :math:`R_{jj} \to
R_{jj}/\rho_{ij}`). With :math:`S^{(i)} = Y R^{-1/2} \mathrm{diag}(\sqrt{\rho_{i\cdot}})` and
:math:`\delta^{(i)} = \mathrm{diag}(\sqrt{\rho_{i\cdot}}) R^{-1/2}(y - \bar y)`:

.. math::
    G_i = S^{(i)} S^{(i)T} + (N-1) I,\quad w_i = G_i^{-1} S^{(i)} \delta^{(i)},\quad
    T_i = \sqrt{N-1}\, G_i^{-1/2},\quad E^a_{:,i} = \bar x_i + (w_i + T_i) A_{:,i}.

The ``Nx`` small ``(N, N)`` eigenproblems are solved in one batched call, with the local
observations padded to a common count (padding has zero weight), so the cost grows linearly in
``Nx`` with no Python loop over points. With an infinite radius every point uses all
observations with weight 1 and the LETKF is the global ETKF (``EnKF('Sqrt')``).

Reference: Hunt, Kostelich & Szunyogh (2007), "Efficient data assimilation for spatiotemporal
chaos: a local ensemble transform Kalman filter", Physica D 230.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from threadpoolctl import threadpool_info

from ..localization import TAPERS, local_observations
from .base import Context, Filter, check_ensemble_size
from .enkf import post_process

__all__ = ["LETKF", "letkf_update", "local_analysis_anomalies", "batched_eigh"]


#: Local domains analysed together (bounds the memory: about CHUNK * N * (L + 3 N) numbers).
CHUNK = 4096
#: Fewer local domains than this are decomposed on one thread (threads would cost more).
THREADED_MIN = 256
_POOL: tuple[int, int, ThreadPoolExecutor] | None = None  # (process id, threads, pool)


def batched_eigh(G: np.ndarray, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Eigendecompositions of a stack ``G`` ``(B, N, N)`` of symmetric matrices (ascending
    eigenvalues ``(B, N)``, eigenvectors ``(B, N, N)``), split over ``threads`` threads when
    ``B >= THREADED_MIN`` (LAPACK releases the GIL; the results do not depend on the split)."""
    global _POOL
    if threads <= 1 or len(G) < THREADED_MIN:
        return np.linalg.eigh(G)
    if _POOL is None or _POOL[:2] != (os.getpid(), threads):  # none yet, forked, or resized
        _POOL = (os.getpid(), threads, ThreadPoolExecutor(threads, thread_name_prefix="dafilters-eigh"))
    parts = list(_POOL[2].map(np.linalg.eigh, np.array_split(G, threads)))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


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
        threads: threads for the eigendecompositions (:func:`batched_eigh`).

    Returns:
        The analysis ensemble ``(N, Nx)``.

    The transform of domain :math:`b` acts on the anomalies of its points without being formed:
    :math:`(w_b \mathbf 1^T + T_b) A_b = w_b (\mathbf 1^T A_b) + V_b\, \mathrm{diag}(\sqrt{(N-1)/d_b})\,
    V_b^T A_b` with :math:`G_b = V_b \mathrm{diag}(d_b) V_b^T`, :math:`A_b` ``(N, batch)``.
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
    for start in range(0, B, CHUNK):  # bounded memory: CHUNK domains at a time
        part = slice(start, start + CHUNK)
        A[part] = local_analysis_anomalies(Y, dy, idx[part], coeff[part], A[part], threads)
    return mu + np.transpose(A, (1, 0, 2)).reshape(N, B * batch)[:, :Nx]


def local_analysis_anomalies(Y: np.ndarray, dy: np.ndarray, idx: np.ndarray, coeff: np.ndarray,
                             A: np.ndarray, threads: int = 1) -> np.ndarray:
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
    sq = np.sqrt(coeff)  # (b, L)
    S = np.transpose(Y[:, idx], (1, 0, 2)) * sq[:, None, :]  # (b, N, L)
    G = S @ np.transpose(S, (0, 2, 1))  # (b, N, N)
    G[:, np.arange(N), np.arange(N)] += N - 1
    d, V = batched_eigh(G, threads)
    Vt = np.transpose(V, (0, 2, 1))
    Sd = S @ (dy[idx] * sq)[:, :, None]  # (b, N, 1)
    w = V @ ((Vt @ Sd) / d[:, :, None])  # (b, N, 1): G^{-1} S dy
    TA = V @ ((Vt @ A) * np.sqrt((N - 1) / d)[:, :, None])
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
        threads: threads for the local eigenproblems (not a hyper-parameter; results do not
            depend on it). ``None``: as many as the BLAS may use when the run starts (one inside a
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
