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


# 2-D operators: fields on an n0 x n1 grid flattened row-major.


def grid_coords(n0, n1):
    X, Y = np.meshgrid(np.arange(n0, dtype=float), np.arange(n1, dtype=float), indexing="ij")
    return np.stack([X.ravel(), Y.ravel()], axis=1)


def test_grid_mask(rng):
    obs = daf.GridMaskObs(8, 4, noise=0.01)
    assert obs.Ny(0) == 4 and obs.noise(0).M == 4
    E = rng.standard_normal((3, 64))
    np.testing.assert_array_equal(obs(E, 0), E.reshape(3, 8, 8)[:, ::4, ::4].reshape(3, 4))
    np.testing.assert_array_equal(obs.locations(0, grid_coords(8, 8)), [[0, 0], [0, 4], [4, 0], [4, 4]])
    rect = daf.GridMaskObs((6, 9), (2, 3), noise=1.0, offset=(1, 2))
    F = rng.standard_normal((2, 54))
    np.testing.assert_array_equal(rect(F, 0), F.reshape(2, 6, 9)[:, 1::2, 2::3].reshape(2, 9))
    np.testing.assert_array_equal(rect.linear(F[0], 0) @ F[0], rect(F[0], 0))
    with pytest.raises(ValueError):
        daf.GridMaskObs(8, 4, noise=1.0, offset=4)


def test_random_mask_is_reproducible(rng):
    a = daf.RandomMaskObs(10, noise=0.1, frac=0.2, seed=7)
    b = daf.RandomMaskObs(10, noise=0.1, count=20, seed=7)
    c = daf.RandomMaskObs(10, noise=0.1, count=20, seed=8)
    idx = a.indices(0)
    assert len(idx) == 20 and len(np.unique(idx)) == 20 and np.all(np.diff(idx) > 0)
    np.testing.assert_array_equal(idx, b.indices(5))
    assert not np.array_equal(idx, c.indices(0))
    E = rng.standard_normal((2, 100))
    np.testing.assert_array_equal(a(E, 0), E[:, idx])
    np.testing.assert_array_equal(a.locations(0, grid_coords(10, 10)), grid_coords(10, 10)[idx])
    moving = daf.RandomMaskObs(10, noise=0.1, count=20, seed=7, resample=True)
    assert moving.Ny(3) == 20 and not np.array_equal(moving.indices(0), moving.indices(1))
    np.testing.assert_array_equal(
        moving.indices(1), daf.RandomMaskObs(10, noise=0.1, count=20, seed=7, resample=True).indices(1))
    with pytest.raises(ValueError, match="exactly one"):
        daf.RandomMaskObs(10, noise=0.1)


def test_centre_patch(rng):
    obs = daf.CentrePatchObs(8, 2, noise=0.5)
    E = rng.standard_normal((3, 64))
    np.testing.assert_array_equal(obs(E, 0), E.reshape(3, 8, 8)[:, 3:5, 3:5].reshape(3, 4))
    np.testing.assert_array_equal(obs.locations(0, grid_coords(8, 8)), [[3, 3], [3, 4], [4, 3], [4, 4]])
    odd = daf.CentrePatchObs((7, 7), 3, noise=0.5)
    np.testing.assert_array_equal(odd.locations(0, grid_coords(7, 7))[[0, -1]], [[2, 2], [4, 4]])
    with pytest.raises(ValueError, match="does not fit"):
        daf.CentrePatchObs(8, 9, noise=0.5)


def test_average_pooling(rng):
    obs = daf.AvgPoolObs((8, 12), 4, noise=0.1)
    assert obs.Ny(0) == 6
    E = rng.standard_normal((5, 96))
    blocks = E.reshape(5, 2, 4, 3, 4).mean(axis=(2, 4)).reshape(5, 6)
    np.testing.assert_allclose(obs(E, 0), blocks)
    np.testing.assert_allclose(obs(E[0], 0), blocks[0])
    np.testing.assert_allclose(E @ obs.linear(E[0], 0).T, blocks)
    assert obs.linear(E[0], 0).sum(axis=1).tolist() == [1.0] * 6
    loc = obs.locations(0, grid_coords(8, 12))
    np.testing.assert_allclose(loc, [[1.5, 1.5], [1.5, 5.5], [1.5, 9.5], [5.5, 1.5], [5.5, 5.5], [5.5, 9.5]])
    with pytest.raises(ValueError, match="divide"):
        daf.AvgPoolObs(10, 4, noise=0.1)


@pytest.mark.parametrize("obs", [
    daf.GridMaskObs(6, 3, noise=0.3),
    daf.RandomMaskObs(6, noise=np.linspace(0.1, 1.0, 9), count=9, seed=1),
    daf.CentrePatchObs(6, 2, noise=0.3),
    daf.AvgPoolObs(6, 2, noise=np.linspace(0.1, 1.0, 9)),
], ids=["grid", "random", "centre", "pool"])
def test_2d_scores_are_linear_gaussian(obs, rng):
    """The likelihood score is ``H^T R^{-1} (y - H x)`` (numpy and torch, any leading shape)."""
    import torch

    H = obs.linear(None, 0)
    Rinv = np.linalg.inv(obs.noise(0).full)
    y = rng.standard_normal(obs.Ny(0))
    X = rng.standard_normal((2, 3, 36))
    ref = (y - X @ H.T) @ Rinv @ H
    np.testing.assert_allclose(obs.grad_loglik(y, X, 0), ref, atol=1e-12)
    G = obs.grad_loglik(torch.as_tensor(y), torch.as_tensor(X), 0)
    assert isinstance(G, torch.Tensor)
    np.testing.assert_allclose(G.numpy(), ref, atol=1e-12)
    np.testing.assert_allclose(obs.h_torch(torch.as_tensor(X), 0).numpy(), X @ H.T, atol=1e-12)
