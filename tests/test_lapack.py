"""The small-matrix LAPACK calls (dafilters.lapack) against numpy.linalg, and the Haar law of the
sign-corrected QR factor."""

import numpy as np
import pytest

from dafilters import lapack


@pytest.mark.parametrize("n", [1, 3, 10, 40])
def test_eigh_equals_numpy(rng, n):
    B = rng.standard_normal((n, n + 2))
    M = B @ B.T
    d, V = lapack.eigh(M)
    d0, V0 = np.linalg.eigh(M)
    scale = np.abs(d0).max()
    np.testing.assert_allclose(d, d0, rtol=0, atol=1e-13 * scale)
    np.testing.assert_allclose((V * d) @ V.T, M, rtol=0, atol=1e-13 * scale)
    np.testing.assert_allclose(V.T @ V, np.eye(n), rtol=0, atol=1e-13)
    assert np.all(np.diff(d) >= 0)


def test_eigh_reads_the_lower_triangle_and_raises_on_nan(rng):
    M = rng.standard_normal((4, 4))
    d, _ = lapack.eigh(M)
    np.testing.assert_allclose(d, np.linalg.eigh(M)[0], rtol=0, atol=1e-12)  # numpy's UPLO='L'
    M[1, 0] = M[0, 1] = np.nan
    with pytest.raises(np.linalg.LinAlgError, match="dsyevd"):
        lapack.eigh(M)


@pytest.mark.parametrize("shape", [(1, 1), (9, 9), (12, 5)])
def test_orthogonal_factor_is_the_qr_factor_with_positive_diagonal(rng, shape):
    Z = rng.standard_normal(shape)
    Q = lapack.orthogonal_factor(Z)
    R = Q.T @ Z
    np.testing.assert_allclose(Q.T @ Q, np.eye(shape[1]), rtol=0, atol=1e-13)
    np.testing.assert_allclose(np.tril(R, -1), 0, atol=1e-13)
    assert np.all(np.diag(R) > 0)
    Q0, R0 = np.linalg.qr(Z)
    np.testing.assert_allclose(Q, Q0 * np.sign(np.diag(R0)), rtol=0, atol=1e-13)


def test_orthogonal_factor_is_haar(rng):
    """Haar on O(n): the trace has mean 0 and variance 1, and the (1, 1) entry has variance 1/n.
    The unsigned Householder factor fails this (its R has a negative diagonal)."""
    n, draws = 4, 4000
    Q = np.stack([lapack.orthogonal_factor(rng.standard_normal((n, n))) for _ in range(draws)])
    tr = np.trace(Q, axis1=1, axis2=2)
    assert abs(tr.mean()) < 4 / np.sqrt(draws)
    assert tr.var() == pytest.approx(1.0, abs=0.1)
    assert Q[:, 0, 0].var() == pytest.approx(1 / n, rel=0.1)
    unsigned = np.stack([np.linalg.qr(rng.standard_normal((n, n)))[0] for _ in range(draws)])
    assert abs(np.trace(unsigned, axis1=1, axis2=2).mean()) > 0.5
