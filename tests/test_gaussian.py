import numpy as np
import pytest

from dafilters.gaussian import Covariance, GaussRV


def spd(M, rng):
    A = rng.standard_normal((M, M))
    return A @ A.T + M * np.eye(M)


@pytest.mark.parametrize("kind", ["scalar", "diag", "full"])
def test_factorisations(kind, rng):
    M = 4
    C = {"scalar": 2.0, "diag": np.arange(1.0, M + 1), "full": spd(M, rng)}[kind]
    cov = Covariance(C, M)
    full = cov.full
    assert cov.is_diag == (kind != "full")
    np.testing.assert_allclose(cov.inv @ full, np.eye(M), atol=1e-12)
    np.testing.assert_allclose(cov.sym_sqrt_inv @ full @ cov.sym_sqrt_inv, np.eye(M), atol=1e-12)
    np.testing.assert_allclose(cov.chol @ cov.chol.T, full, atol=1e-12)
    Y = rng.standard_normal((3, M))
    np.testing.assert_allclose(cov.whiten(Y), Y @ cov.sym_sqrt_inv, atol=1e-12)
    np.testing.assert_allclose(cov.solve(Y), Y @ np.linalg.inv(full), atol=1e-12)
    np.testing.assert_allclose(cov.logdet, np.linalg.slogdet(full)[1])
    np.testing.assert_allclose(cov.mahalanobis2(Y), np.einsum("ij,jk,ik->i", Y, np.linalg.inv(full), Y))


def test_sampling_moments(rng):
    C = spd(3, rng)
    X = GaussRV(mu=[1.0, -2.0, 0.5], C=C).sample(200_000, rng)
    np.testing.assert_allclose(X.mean(0), [1.0, -2.0, 0.5], atol=0.05)
    np.testing.assert_allclose(np.cov(X.T), C, rtol=0.03, atol=0.05)


def test_bad_covariances():
    with pytest.raises(ValueError, match="square"):
        Covariance(np.ones((2, 3)))
    with pytest.raises(ValueError, match="symmetric"):
        Covariance(np.array([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="NaN"):
        Covariance(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="negative"):
        Covariance(np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="dimension"):
        Covariance(1.0)
    with pytest.raises(ValueError, match="size 2, expected 3"):
        Covariance(np.eye(2), 3)
    with pytest.raises(ValueError, match="positive definite"):
        _ = Covariance(np.array([[1.0, 2.0], [2.0, 1.0]])).inv
