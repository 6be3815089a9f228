r"""Symmetric eigendecompositions and QR factors of small matrices, by one LAPACK call each.

``numpy.linalg.eigh`` and ``numpy.linalg.qr`` spend 20-60 µs per call in argument checks and
wrappers; on the 3 x 3 to 40 x 40 matrices of an EnKF analysis at small ``Nx`` that is more than
the factorisation. These functions call the same LAPACK routines (``dsyevd``; ``dgeqrf`` and
``dorgqr``) through :mod:`scipy.linalg.lapack` with nothing around them: the same mathematics,
equal to the numpy results to round-off (tests/test_lapack.py).
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import lapack

__all__ = ["eigh", "orthogonal_factor"]


def eigh(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Eigendecomposition :math:`M = V \mathrm{diag}(d) V^T` of a real symmetric ``M`` ``(n, n)``
    (its lower triangle is read, as ``numpy.linalg.eigh`` does).

    Returns ``d`` ``(n,)`` in ascending order and ``V`` ``(n, n)`` with the eigenvectors as columns.

    Raises:
        numpy.linalg.LinAlgError: if LAPACK reports a failure (no convergence, a NaN argument).
    """
    d, V, info = lapack.dsyevd(M, lower=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"dsyevd failed (info={info}) on a {M.shape} matrix")
    return d, V


def orthogonal_factor(Z: np.ndarray) -> np.ndarray:
    r"""The factor ``Q`` ``(m, n)``, ``m >= n``, of the QR decomposition :math:`Z = QR` whose ``R``
    has a non-negative diagonal: Householder QR (``dgeqrf``, ``dorgqr``), then each column of
    ``Q`` times the sign of the diagonal entry of ``R``. For ``Z`` with independent standard normal
    entries and ``m = n``, ``Q`` is Haar-distributed on :math:`O(n)` (Mezzadri 2007, "How to
    generate random matrices from the classical compact groups", arXiv:math-ph/0609050).

    Raises:
        numpy.linalg.LinAlgError: if LAPACK reports an illegal argument.
    """
    qr, tau, _, info = lapack.dgeqrf(Z)
    if info != 0:
        raise np.linalg.LinAlgError(f"dgeqrf failed (info={info}) on a {Z.shape} matrix")
    n = Z.shape[1]
    sign = np.sign(qr.diagonal()[:n])
    Q, _, info = lapack.dorgqr(qr, tau)
    if info != 0:
        raise np.linalg.LinAlgError(f"dorgqr failed (info={info}) on a {Z.shape} matrix")
    Q *= sign
    return Q
