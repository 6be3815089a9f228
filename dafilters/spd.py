r"""Inverse square roots of stacks of symmetric positive-definite matrices ``I + C``.

The LETKF needs :math:`M_b^{-1/2}` for many small matrices :math:`M_b = I + C_b` (``C_b`` symmetric
positive semi-definite). A LAPACK eigendecomposition of a 20 x 20 matrix costs about as much as
20 matrix products of that size, so where :math:`C_b` is small this module uses the coupled
Newton–Schulz iteration instead (Higham, *Functions of Matrices*, 2008, eq. 6.35), which needs
only matrix products and converges quadratically:

.. math::
    Y_0 = M / c,\quad Z_0 = I,\quad T_k = \tfrac12 (3 I - Z_k Y_k),\quad
    Y_{k+1} = Y_k T_k,\quad Z_{k+1} = T_k Z_k \;\to\; (M / c)^{-1/2}.

On an eigenvalue :math:`\lambda` of :math:`M / c` the product :math:`p_k = z_k y_k` starts at
:math:`\lambda` and its error :math:`e = 1 - p` obeys :math:`e_{k+1} = (3 e_k^2 + e_k^3) / 4`.
With :math:`f \ge \|C\|_2` (the Frobenius norm) the eigenvalues of :math:`M` lie in
:math:`[1, 1 + f]`; scaling by :math:`c = 1 + f/2` puts :math:`|e_0| \le f / (2 + f)`, from which the
number of iterations to reach round-off is known before iterating. Matrices that would need more
than ``max_iter`` iterations are decomposed with ``numpy.linalg.eigh`` instead, so the result is
exact to round-off either way.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import numpy as np

__all__ = ["newton_schulz_iterations", "inv_sqrt_psd_shift", "threaded_map"]

#: Fewer matrices than this are processed on one thread (threads would cost more).
THREADED_MIN = 256
#: Larger matrices always go to ``eigh`` (at N = 80 its cost is below that of 10-13 products;
#: at N = 40 the iteration is 1.7x faster: ``benchmarks/letkf_scaling.py``).
NS_MAX_N = 48
#: Matrices iterated together (small enough for their iterates to stay in cache).
BLOCK = 32
#: The error in the eigenvalues of ``Z_k Y_k`` at which the iteration stops.
TOL = 1e-15
_POOL: tuple[int, int, ThreadPoolExecutor] | None = None  # (process id, threads, pool)


def _iterations(r: float, cap: int) -> int:
    r"""Newton–Schulz iterations (at most ``cap + 1``) until both :math:`e_0 = \pm r` reach ``TOL``."""
    hi, lo, k = r, -r, 0
    while (abs(hi) > TOL or abs(lo) > TOL) and k <= cap:
        hi, lo, k = (3 * hi**2 + hi**3) / 4, (3 * lo**2 + lo**3) / 4, k + 1
    return k


@cache
def _thresholds(max_iter: int) -> np.ndarray:
    r"""``t[k]``: the largest :math:`\|C\|` bound ``f`` that ``k`` iterations cover (by bisection
    on :math:`r = f/(2+f)`; the iteration count grows with ``r``)."""
    t = np.empty(max_iter + 1)
    for k in range(max_iter + 1):
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if _iterations(mid, max_iter) <= k else (lo, mid)
        t[k] = 2 * lo / (1 - lo)
    return t


def newton_schulz_iterations(f: np.ndarray | float, max_iter: int = 64) -> np.ndarray:
    r"""Iterations the scaled coupled Newton–Schulz iteration needs for :math:`(I + C)^{-1/2}`
    when :math:`\|C\|_2 \le f` (elementwise over an array ``f``; ``max_iter + 1`` where it needs more).

    Follows the error recursion :math:`e_{k+1} = (3 e_k^2 + e_k^3)/4` from both ends of the
    scaled spectrum, :math:`e_0 = \pm f / (2 + f)`, until both are below ``TOL``.
    """
    return np.searchsorted(_thresholds(max_iter), np.asarray(f, dtype=float), side="left")


def _newton_schulz(M: np.ndarray, c: np.ndarray, iters: int) -> np.ndarray:
    """``iters`` coupled Newton–Schulz iterations on ``M / c`` ``(B, N, N)``; returns ``M^{-1/2}``."""
    N = M.shape[-1]
    Y = M / c[:, None, None]
    if iters == 0:
        return np.broadcast_to(np.eye(N), M.shape) / np.sqrt(c)[:, None, None]
    diag = np.arange(N)
    T = -0.5 * Y  # first step with Z_0 = I: no product needed
    T[:, diag, diag] += 1.5
    Y, Z = Y @ T, T
    for _ in range(iters - 1):
        T = Z @ Y
        T *= -0.5
        T[:, diag, diag] += 1.5
        Y, Z = Y @ T, T @ Z
    Z = 0.5 * (Z + np.transpose(Z, (0, 2, 1)))  # symmetric to round-off; make it exactly so
    return Z / np.sqrt(c)[:, None, None]


def _eigh_inv_sqrt(M: np.ndarray) -> np.ndarray:
    d, V = np.linalg.eigh(M)
    return (V / np.sqrt(d)[:, None, :]) @ np.transpose(V, (0, 2, 1))


def _inv_sqrt(M: np.ndarray, f: np.ndarray, max_iter: int) -> np.ndarray:
    """Serial :func:`inv_sqrt_psd_shift` of one part of the stack, in blocks of ``BLOCK``
    consecutive matrices (the iterates of a block stay in cache; each block takes as many
    iterations as its slowest matrix needs)."""
    k = newton_schulz_iterations(f, max_iter)
    Z = np.empty_like(M)
    slow = k > max_iter
    if slow.any():
        Z[slow] = _eigh_inv_sqrt(M[slow])
    for start in range(0, len(M), BLOCK):
        part = slice(start, start + BLOCK)
        fast = ~slow[part]
        if fast.all():
            Z[part] = _newton_schulz(M[part], 1 + f[part] / 2, int(k[part].max()))
        elif fast.any():
            Z[part][fast] = _newton_schulz(M[part][fast], 1 + f[part][fast] / 2, int(k[part][fast].max()))
    return Z


def threaded_map(fn: Callable[..., np.ndarray], arrays: tuple[np.ndarray, ...], threads: int,
                 align: int = 1) -> np.ndarray:
    """``fn(*arrays)`` with the stacks in ``arrays`` (same leading length) split over ``threads``
    threads (numpy's linear algebra releases the GIL) at multiples of ``align``; the result does
    not depend on the split when ``fn`` works in blocks of ``align`` items."""
    global _POOL
    if threads <= 1 or len(arrays[0]) < THREADED_MIN:
        return fn(*arrays)
    if _POOL is None or _POOL[:2] != (os.getpid(), threads):  # none yet, forked, or resized
        _POOL = (os.getpid(), threads, ThreadPoolExecutor(threads, thread_name_prefix="dafilters-spd"))
    n = len(arrays[0])
    cuts = [align * round(n * t / threads / align) for t in range(1, threads)]
    parts = zip(*(np.split(a, cuts) for a in arrays))
    return np.concatenate(list(_POOL[2].map(lambda p: fn(*p), parts)))


def inv_sqrt_psd_shift(M: np.ndarray, threads: int = 1, max_iter: int = 8) -> np.ndarray:
    r""":math:`M_b^{-1/2}` (symmetric) for a stack ``M`` ``(B, N, N)`` of matrices :math:`I + C_b`
    with :math:`C_b` symmetric positive semi-definite.

    Newton–Schulz where at most ``max_iter`` iterations reach round-off (bound from
    :math:`\|C_b\|_F`), ``eigh`` elsewhere and for ``N > NS_MAX_N``; ``max_iter=0`` decomposes
    every matrix. Work is split over ``threads`` threads for large stacks.
    """
    if M.ndim != 3 or M.shape[1] != M.shape[2]:
        raise ValueError(f"expected a stack of square matrices (B, N, N), got shape {M.shape}")
    N = M.shape[-1]
    if N > NS_MAX_N:
        max_iter = 0
    f = np.linalg.norm(M - np.eye(N), axis=(1, 2))  # Frobenius norm of C_b >= its 2-norm
    return threaded_map(lambda m, g: _inv_sqrt(m, g, max_iter), (M, f), threads, align=BLOCK)
