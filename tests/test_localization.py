import numpy as np
import pytest

from dafilters.localization import gaspari_cohn, local_observations, pairwise_distances, taper


def test_periodic_distances():
    A = np.array([[0.0], [1.0], [9.0]])
    D = pairwise_distances(A, A, domain=(10,))
    np.testing.assert_allclose(D, [[0, 1, 1], [1, 0, 2], [1, 2, 0]])
    D2 = pairwise_distances(np.array([[0.0, 0.0]]), np.array([[7.0, 9.0]]), domain=(8, 10))
    np.testing.assert_allclose(D2, [[np.sqrt(2)]])
    assert pairwise_distances(A, A)[0, 2] == 9  # not periodic
    assert pairwise_distances(A, np.zeros((0,))).shape == (3, 0)  # no observations
    idx, coeff = local_observations(np.zeros((4, 2)), np.zeros((0, 2)), None, 1.0)
    assert idx.shape == coeff.shape == (4, 0)


def test_gaspari_cohn_shape():
    r = np.linspace(0, 2.5, 251)
    g = gaspari_cohn(r)
    assert g[0] == 1 and np.all(g[r >= 2] == 0) and np.all(np.diff(g) <= 1e-12)
    # continuous at r = 1 and smooth at r = 2
    assert gaspari_cohn(np.array([1 - 1e-9]))[0] == pytest.approx(gaspari_cohn(np.array([1 + 1e-9]))[0])
    assert gaspari_cohn(np.array([1.0]))[0] == pytest.approx(5 / 24)


def test_radius_convention():
    """DAPPER's convention: the taper is about exp(-1/2) at the radius (GC half-width 1.82 r)."""
    assert taper(np.array([4.0]), 4.0, "Gauss")[0] == pytest.approx(np.exp(-0.5))
    assert taper(np.array([4.0]), 4.0, "GC")[0] == pytest.approx(np.exp(-0.5), abs=0.03)
    assert taper(np.array([3.64 * 4.0]), 4.0, "GC")[0] == 0.0


def test_step_and_infinite_radius():
    np.testing.assert_array_equal(taper(np.array([1.0, 3.0, 3.1]), 3.0, "Step"), [1, 1, 0])
    np.testing.assert_array_equal(taper(np.array([1e9]), np.inf), [1.0])
    with pytest.raises(ValueError, match="unknown taper"):
        taper(np.array([1.0]), 1.0, "Box")


def test_local_observations_on_a_ring():
    coords = np.arange(40.0)[:, None]
    idx, coeff = local_observations(coords, coords[::4], (40,), radius=2.0)
    assert idx.shape == coeff.shape and idx.shape[0] == 40
    # support is 3.64 * radius = 7.28: observations within 7 grid points of point 0
    assert set(idx[0][coeff[0] > 0]) == {0, 1, 9}  # obs at 0, 4 and 36
    assert np.all(coeff <= 1) and np.all(coeff >= 0)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("kind", ["GC", "Step"])
def test_tree_search_finds_what_all_pairs_find(rng, batch, kind):
    """Local sets from the k-d tree equal those from all state-observation distances (2-D, periodic)."""
    state = rng.uniform(0, 10, (50, 2))
    obs = rng.uniform(0, 10, (30, 2))
    domain = (10.0, 10.0)
    idx, coeff = local_observations(state, obs, domain, radius=0.8, kind=kind, batch=batch)
    D = pairwise_distances(state, obs, domain)
    D = np.array([D[i:i + batch].mean(axis=0) for i in range(0, len(D), batch)])
    dense = taper(D, 0.8, kind)
    got = np.zeros_like(dense)
    for b in range(len(idx)):
        np.add.at(got[b], idx[b], coeff[b])
    np.testing.assert_allclose(got, dense, atol=1e-12)
    assert idx.shape[1] == (dense > 0).sum(axis=1).max()
