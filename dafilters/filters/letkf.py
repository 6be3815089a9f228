r"""The local ensemble transform Kalman filter (LETKF), all local analyses batched.

At every grid point :math:`i` an ETKF analysis uses the observations :math:`j` near it, each
weighted by the localization taper :math:`\rho_{ij}` (R-localization: :math:`R_{jj} \to
R_{jj}/\rho_{ij}`). With :math:`S^{(i)} = Y R^{-1/2} \mathrm{diag}(\sqrt{\rho_{i\cdot}})` and
:math:`\delta^{(i)} = \mathrm{diag}(\sqrt{\rho_{i\cdot}}) R^{-1/2}(y - \bar y)`:

.. math::
    G_i = S^{(i)} S^{(i)T} + (N-1) I,\quad w_i = G_i^{-1} S^{(i)} \delta^{(i)},\quad
    T_i = \sqrt{N-1}\, G_i^{-1/2},\quad E^a_{:,i} = \bar x_i + (w_i + T_i) A_{:,i}.

The ``Nx`` small ``(N, N)`` inverse square roots are computed in batched calls, with the local
observations padded to a common count (padding has zero weight), so the cost grows linearly in
``Nx`` with no Python loop over points. Where the spectrum of :math:`M = G/(N-1)` is narrow (the
usual case) :math:`M^{-1/2}` is a polynomial of :math:`M` exact to round-off, evaluated with about
:math:`2\sqrt d` matrix products (:func:`inv_sqrt_shift_poly`); elsewhere Newton–Schulz products
or LAPACK eigendecompositions (:mod:`dafilters.spd`). With an infinite radius every point uses all
observations with weight 1 and the LETKF is the global ETKF (``EnKF('Sqrt')``).

Reference: Hunt, Kostelich & Szunyogh (2007), "Efficient data assimilation for spatiotemporal
chaos: a local ensemble transform Kalman filter", Physica D 230.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache
from typing import ClassVar

import numpy as np
from threadpoolctl import threadpool_info

from ..localization import TAPERS, local_observations
from ..spd import inv_sqrt_psd_shift, threaded_map
from .base import Context, Filter, check_ensemble_size
from .enkf import post_process

__all__ = ["LETKF", "letkf_update", "local_analysis_anomalies", "inv_sqrt_shift_poly"]


#: Local domains analysed together (small enough for their arrays to stay in cache).
BLOCK = 32
#: Largest :math:`r = f/(2+f)` (``f`` the Frobenius norm of ``C``, ``M = I + C``) handled by the
#: polynomial, here f <= 2 (beyond, its monomial coefficients grow and cancel; the Newton–Schulz or
#: eigendecomposition path of :mod:`dafilters.spd` takes over).
POLY_R_MAX = 0.5
#: Polynomial degrees are tabulated for radii ``POLY_R_MAX * 2**(-i / POLY_LEVELS)``.
POLY_LEVELS = 8
#: Truncation error of the polynomial, relative to :math:`x^{-1/2}` (float64 round-off).
POLY_TOL = 2.0**-53
#: Use the polynomial (False: always :func:`dafilters.spd.inv_sqrt_psd_shift`, the form before
#: 2026-11-29; for tests and benchmarks).
USE_POLY = True


def blas_threads() -> int:
    """The number of threads the BLAS in use may take now (1 inside ``threadpool_limits(1)``)."""
    info = threadpool_info()
    return max([i.get("num_threads", 1) for i in info if i.get("user_api") == "blas"] or [1])


def letkf_update(E: np.ndarray, Eo: np.ndarray, y: np.ndarray, R_diag: np.ndarray, idx: np.ndarray,
                 coeff: np.ndarray, batch: int = 1, threads: int = 1, infl: float = 1.0) -> np.ndarray:
    r"""Batched R-localized ETKF analysis.

    Args:
        E: forecast ensemble ``(N, Nx)``. Eo: observed ensemble ``(N, Ny)``. y: observation ``(Ny,)``.
        R_diag: observation-error variances ``(Ny,)`` (R must be diagonal).
        idx, coeff: local observation indices and taper weights ``(B, L)`` of the ``B`` local
            domains (see :func:`dafilters.localization.local_observations`).
        batch: state points per local domain (consecutive blocks; ``B = ceil(Nx / batch)``).
        threads: threads over which the local domains are split (in blocks of ``BLOCK``; the
            result does not depend on the split).
        infl: multiplicative inflation of the analysis anomalies (applied to the transformed
            anomalies of each domain; equal to inflating about the analysis mean afterwards, as
            :func:`~dafilters.filters.enkf.post_process` does, to round-off).

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
    Ny = Eo.shape[1]
    mu = E.mean(axis=0)
    pad = B * batch - Nx
    A = np.pad(E - mu, ((0, 0), (0, pad))) if pad else E - mu
    A = np.transpose(A.reshape(N, B, batch), (1, 0, 2))  # (B, N, batch)
    yo = Eo.mean(axis=0)
    Yd = np.empty((Ny, N + 1))  # [Y^T | dy], whitened, one row per observation
    np.subtract(Eo.T, yo[:, None], out=Yd[:, :N])
    np.subtract(y, yo, out=Yd[:, N])
    Yd /= np.sqrt(R_diag)[:, None]
    sq = np.sqrt(coeff / (N - 1))  # (B, L)

    def analyse(idx: np.ndarray, sq: np.ndarray, A: np.ndarray) -> np.ndarray:
        blocks = [slice(s, s + BLOCK) for s in range(0, len(idx), BLOCK)]  # one thread's share
        out = [_local_block(Yd, idx[b], sq[b], A[b], infl) for b in blocks]
        return out[0] if len(out) == 1 else np.concatenate(out)

    A = threaded_map(analyse, (idx, sq, A), threads, align=BLOCK)
    Ea = np.empty((N, B, batch))
    np.add(np.transpose(A, (1, 0, 2)), (np.pad(mu, (0, pad)) if pad else mu).reshape(B, batch), out=Ea)
    Ea = Ea.reshape(N, B * batch)
    return Ea[:, :Nx] if pad else Ea


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
    Yd = np.concatenate([Y.T, dy[:, None]], axis=1)
    return _local_block(Yd, idx, np.sqrt(coeff / (Y.shape[0] - 1)), A)


def _local_block(Yd: np.ndarray, idx: np.ndarray, sq: np.ndarray, A: np.ndarray,
                 infl: float = 1.0) -> np.ndarray:
    r""":func:`local_analysis_anomalies` from ``Yd = [Y^T | dy]`` ``(Ny, N + 1)`` (contiguous) and
    the square roots of the tapers over ``N - 1``, ``sq`` ``(b, L)``; the transformed anomalies
    are inflated by ``infl`` (not the mean update).

    One product gives both :math:`S_b S_b^T` and :math:`S_b \delta_b` (over ``N - 1``). The
    products take contiguous operands: numpy's batched matmul does not call the BLAS on a
    transposed view and is then 2-3 times slower."""
    N = Yd.shape[1] - 1
    St = np.take(Yd, idx, axis=0)  # (b, L, N + 1)
    St *= sq[:, :, None]  # [S_b^T | delta_b] / sqrt(N-1)
    G = np.ascontiguousarray(np.transpose(St[:, :, :N], (0, 2, 1))) @ St  # (b, N, N + 1)
    C, d = G[:, :, :N], G[:, :, N:]  # M_b - I, S_b delta_b / (N-1)
    poly = inv_sqrt_shift_poly(C) if USE_POLY else None
    if poly is None:
        C = C + np.eye(N)
        Z, scale = inv_sqrt_psd_shift(C), 1.0  # (b, N, N): M^{-1/2}
    else:
        Z, scale = poly  # M^{-1/2} = scale * Z
    w = Z @ (Z @ d)  # (b, N, 1): G^{-1} S dy, over scale^2
    w *= scale * scale
    TA = Z @ A
    if scale * infl != 1.0:
        TA *= scale * infl
    TA += np.transpose(w, (0, 2, 1)) @ A  # the mean update w^T A, the same for every member
    return TA


def _chebyshev_coefficients(rho: float, n: int, terms: int = 40) -> np.ndarray:
    r"""The first ``n`` Chebyshev coefficients of :math:`(1 - \rho u)^{-1/2}` on :math:`[-1, 1]`
    (:math:`0 < \rho < 1`).

    With :math:`u = \cos\theta` and :math:`\beta = \rho / (1 + \sqrt{1 - \rho^2})`,
    :math:`1 - \rho\cos\theta = \tfrac{\rho}{2\beta} |1 - \beta e^{i\theta}|^2`, and
    :math:`(1 - \beta e^{i\theta})^{-1/2} = \sum_k a_k \beta^k e^{ik\theta}`,
    :math:`a_k = \binom{2k}{k}/4^k`, so

    .. math:: c_m = (2 - \delta_{m0}) \sqrt{2\beta/\rho}\, \sum_k a_k a_{k+m} \beta^{2k+m},

    sums of positive terms: each coefficient, however small, is accurate to round-off (the
    ``terms`` kept leave out less than :math:`\beta^{80} < 10^{-45}` of each).
    """
    beta = rho / (1 + math.sqrt(1 - rho * rho))
    j = np.arange(terms + n - 1)
    a = np.concatenate([[1.0], np.cumprod((2 * j + 1) / (2 * j + 2))])  # a_0 .. a_{terms+n-1}
    k, m = np.arange(terms)[:, None], np.arange(n)[None, :]
    c = (a[k] * a[k + m] * beta ** (2 * k + m)).sum(axis=0) * math.sqrt(2 / (1 + math.sqrt(1 - rho * rho)))
    c[1:] *= 2
    return c


@cache
def _poly_coefficients(level: int) -> tuple[np.ndarray, int, int]:
    r"""The polynomial :math:`p(x) \approx (1 - x)^{-1/2}` on :math:`[-\rho, \rho]`,
    :math:`\rho = ` ``POLY_R_MAX * 2**(-level / POLY_LEVELS)``: the truncated Chebyshev series of
    the lowest degree ``d`` whose tail (the truncation error) is within ``POLY_TOL`` of
    :math:`\min (1-x)^{-1/2}`, as monomial coefficients ``(q, s)`` in the Paterson–Stockmeyer
    layout (row ``j``: the coefficients of :math:`x^{js}, \dots, x^{js+s-1}`), ``s >= 2`` chosen for
    the fewest matrix products (:math:`x^2 \dots x^s`, then ``q - 1`` Horner steps in
    :math:`x^s`), ties to fewer chunks.
    """
    rho = POLY_R_MAX * 2.0 ** (-level / POLY_LEVELS)
    c = _chebyshev_coefficients(rho, 48)
    tail = np.cumsum(c[::-1])[::-1]  # tail[k] = sum_{j >= k} c_j (all positive)
    deg = max(int(np.flatnonzero(tail <= POLY_TOL * (1 + rho) ** -0.5)[0]) - 1, 0)
    m = (c[: deg + 1] @ _chebyshev_to_monomial(48)[: deg + 1, : deg + 1]) / rho ** np.arange(deg + 1)

    def products(s: int) -> tuple[int, int]:
        q = -(-(deg + 1) // s)
        return (s - 2) + (q > 1) + (q - 1), q

    s = min(range(2, deg + 3), key=products)
    q = products(s)[1]
    out = np.zeros(q * s)
    out[: deg + 1] = m
    return out.reshape(q, s), s, q


@cache
def _chebyshev_to_monomial(n: int) -> np.ndarray:
    """``T[j, i]``: the coefficient of :math:`u^i` in :math:`T_j(u)`, ``j, i < n`` (integers,
    exact in float64 for ``n <= 48``)."""
    T = np.zeros((n, n))
    T[0, 0] = 1
    T[1, 1] = 1
    for j in range(2, n):
        T[j, 1:] = 2 * T[j - 1, :-1]
        T[j] -= T[j - 2]
    return T


@cache
def _identity_stack(b: int, N: int) -> np.ndarray:
    eye = np.zeros((b, N, N))
    eye.reshape(b, N * N)[:, :: N + 1] = 1
    eye.flags.writeable = False
    return eye


def inv_sqrt_shift_poly(C: np.ndarray) -> tuple[np.ndarray, float] | None:
    r""":math:`(I + C_b)^{-1/2}` for a stack ``C`` ``(b, N, N)`` of symmetric positive
    semi-definite matrices, as ``(Z, scale)`` with :math:`(I + C_b)^{-1/2} =` ``scale * Z[b]``;
    ``None`` where the spectrum is too wide for the polynomial (``f > 2`` below).

    With :math:`f = \max_b \|C_b\|_F \ge \|C_b\|_2` and :math:`c = 1 + f/2`, the matrices
    :math:`X_b = I - (I + C_b)/c` have their eigenvalues in :math:`[-r, r]`, :math:`r = f/(2 + f)`,
    and :math:`(I + C_b)^{-1/2} = c^{-1/2} (I - X_b)^{-1/2} = c^{-1/2}\, p(X_b)` to round-off,
    with :math:`p` the truncated Chebyshev series of :func:`_poly_coefficients`: degree 10-24 for
    :math:`f` = 0.1-1.2, evaluated by Paterson–Stockmeyer with 5-8 products (against 10-13 for the
    four or five Newton–Schulz iterations of :mod:`dafilters.spd` at those norms).
    """
    b, N, _ = C.shape
    f = math.sqrt(np.einsum("bij,bij->b", C, C).max()) if b else 0.0
    ic = 1 / (1 + 0.5 * f)
    r = 0.5 * f * ic
    if not r <= POLY_R_MAX:  # also NaN
        return None
    level = min(math.floor(-POLY_LEVELS * math.log2(max(r, 1e-300) / POLY_R_MAX)), 200)
    m, s, q = _poly_coefficients(level)
    powers = np.empty((s, b, N, N))  # I, X, X^2, ..., X^(s-1)
    powers[0] = _identity_stack(b, N)
    X = powers[1]
    np.multiply(C, -ic, out=X)
    X.reshape(b, N * N)[:, :: N + 1] += 1 - ic
    for i in range(2, s):
        np.matmul(powers[i - 1], X, out=powers[i])
    B = (m @ powers.reshape(s, -1)).reshape(q, b, N, N)  # B_j = sum_i m[j, i] X^i
    if q == 1:
        return B[0], math.sqrt(ic)
    Xs = np.matmul(powers[s - 1], X)
    Z, tmp = B[q - 1], powers[0]  # (the identity is no longer needed)
    for j in range(q - 2, -1, -1):  # Horner in X^s
        np.matmul(Xs, Z, out=tmp)
        tmp += B[j]
        Z, tmp = tmp, Z
    return Z, math.sqrt(ic)


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
        if self.rot:  # inflation and rotation about the analysis mean
            E = letkf_update(E, obs(E, ko), y, R.diag, idx, coeff, self.batch, ctx.cache["letkf-threads"])
            return post_process(E, self.infl, self.rot, ctx.rng)
        return letkf_update(E, obs(E, ko), y, R.diag, idx, coeff, self.batch, ctx.cache["letkf-threads"],
                            self.infl)
