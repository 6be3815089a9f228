import numpy as np
import pytest

import dafilters as daf


def test_partial_and_linear_agree(rng):
    Nx = 6
    idx = [0, 2, 5]
    part = daf.PartialObs(Nx, idx, noise=0.5)
    lin = daf.LinearObs(np.eye(Nx)[idx], noise=0.5)
    E = rng.standard_normal((4, Nx))
    np.testing.assert_array_equal(part(E, 0), lin(E, 0))
    np.testing.assert_array_equal(part.linear(E[0], 0), lin.linear(E[0], 0))
    assert part.Ny(0) == 3 and part.noise(0).M == 3
    np.testing.assert_allclose(part(E[0], 0), E[0, idx])


def test_arctan_jacobian(rng):
    obs = daf.ArctanObs(5, noise=0.01, idx=[1, 3])
    x = rng.standard_normal(5)
    eps = 1e-6
    fd = np.stack([(obs(x + eps * e, 0) - obs(x - eps * e, 0)) / (2 * eps) for e in np.eye(5)], 1)
    np.testing.assert_allclose(obs.linear(x, 0), fd, atol=1e-8)
    np.testing.assert_allclose(obs(x, 0), np.arctan(x[[1, 3]]))


def test_loglik_is_gaussian(rng):
    obs = daf.IdentityObs(3, noise=np.array([1.0, 2.0, 4.0]))
    E = rng.standard_normal((5, 3))
    y = rng.standard_normal(3)
    from scipy.stats import multivariate_normal

    ref = [multivariate_normal(E[n], np.diag([1.0, 2.0, 4.0])).logpdf(y) for n in range(5)]
    np.testing.assert_allclose(obs.loglik(y, E, 0), ref)


def test_time_varying_noise():
    obs = daf.PartialObs(4, [0, 1], noise=lambda ko: 1.0 + ko)
    assert obs.noise(3).diag.tolist() == [4.0, 4.0]


def test_bad_observations():
    with pytest.raises(ValueError, match="indices"):
        daf.PartialObs(4, [0, 7], noise=1.0)
    with pytest.raises(ValueError, match="noise must be given"):
        daf.PartialObs(4, [0], noise=None)
    obs = daf.PartialObs(4, [0, 1], noise=lambda ko: np.eye(3))
    with pytest.raises(ValueError, match="size 3, expected 2"):
        obs.noise(0)
