"""MultiObs: stacking, noise, locations, time sampling, scores, and classical filters on it."""

import numpy as np
import pytest

import dafilters as daf
from dafilters.multimodal import BlockMeanObs, Modality, MultiObs, regrid_matrix, stack_noise
from mods.Lorenz96 import qu2024

NX = 12


def two_modalities(coarse_every: int = 1) -> MultiObs:
    return MultiObs({"sparse": daf.PartialObs(NX, [0, 4, 8], 1.0),
                     "coarse": Modality(BlockMeanObs(NX, 4, np.array([0.25, 0.5, 0.75])),
                                        every=coarse_every)})


def test_stacking_split_and_noise(rng):
    obs = two_modalities()
    E = rng.standard_normal((5, NX))
    Y = obs(E, 0)
    assert obs.names == ("sparse", "coarse") and obs.Ny(0) == 6 and Y.shape == (5, 6)
    np.testing.assert_allclose(Y[:, :3], E[:, [0, 4, 8]])
    np.testing.assert_allclose(Y[:, 3:], E.reshape(5, 3, 4).mean(-1))
    parts = obs.split(Y, 0)
    np.testing.assert_array_equal(obs.stack(parts, 0), Y)
    R = obs.noise(0)
    assert R.is_diag and np.allclose(R.diag, [1, 1, 1, 0.25, 0.5, 0.75]) and obs.noise(0) is R
    np.testing.assert_allclose(obs.linear(E[0], 0) @ E[0], Y[0])
    with pytest.raises(ValueError, match="size 5 at ko=0, expected 6"):
        obs.split(Y[:, :5], 0)


def test_full_noise_blocks():
    R = stack_noise([daf.Covariance(np.array([[2.0, 0.5], [0.5, 1.0]])), daf.Covariance(np.ones(2))])
    assert not R.is_diag and R.full[0, 1] == 0.5 and R.full[2, 2] == 1 and R.full[0, 2] == 0


def test_sampling_matches_the_modalities_own_draws():
    obs, x = two_modalities(), np.arange(NX, dtype=float)
    y = obs.sample(x, 0, np.random.default_rng(3))
    rng = np.random.default_rng(3)
    expect = np.concatenate([obs["sparse"].sample(x, 0, rng), obs["coarse"].sample(x, 0, rng)])
    np.testing.assert_array_equal(y, expect)


def test_time_sampling_and_missing_modalities():
    obs = two_modalities(coarse_every=2)
    assert obs.present(0) == ("sparse", "coarse") and obs.present(1) == ("sparse",)
    assert obs.Ny(1) == 3 and obs.noise(1).M == 3
    when = MultiObs({"a": Modality(daf.PartialObs(NX, [1], 1.0), when=lambda ko: ko in (2, 5))})
    assert when.present(2) == ("a",) and when.present(3) == () and when.Ny(3) == 0
    assert when.h(np.zeros((4, NX)), 3).shape == (4, 0)
    hmm = qu2024.build(Nx=NX, Ko=9, coarse_every=3)
    xx, yy = hmm.simulate(0)
    assert isinstance(yy, list) and [len(y) for y in yy[:4]] == [6, 3, 3, 6]


def test_locations_and_likelihood_score(rng):
    obs = two_modalities()
    coords = np.arange(NX, dtype=float)[:, None]
    np.testing.assert_allclose(obs.locations(0, coords)[:, 0], [0, 4, 8, 1.5, 5.5, 9.5])
    X, y = rng.standard_normal((3, NX)), rng.standard_normal(6)
    H, R = obs.linear(X[0], 0), obs.noise(0)
    np.testing.assert_allclose(obs.grad_loglik(y, X, 0), R.solve(y - X @ H.T) @ H)
    import torch

    Xt = torch.as_tensor(X)
    np.testing.assert_allclose(obs.grad_loglik(torch.as_tensor(y), Xt, 0).numpy(),
                               obs.grad_loglik(y, X, 0))
    np.testing.assert_allclose(obs.h_torch(Xt, 0).numpy(), obs.h(X, 0))


def test_select_without_always_and_errors():
    obs = two_modalities(coarse_every=2)
    assert obs.without("coarse").names == ("sparse",) and obs.select("coarse").names == ("coarse",)
    assert obs.always().present(1) == ("sparse", "coarse")
    with pytest.raises(KeyError, match="unknown modality 'radar'"):
        obs.without("radar")
    with pytest.raises(ValueError, match="cannot drop every modality"):
        obs.without("sparse", "coarse")
    with pytest.raises(ValueError, match="every >= 1"):
        Modality(daf.PartialObs(NX, [0], 1.0), every=0)
    with pytest.raises(TypeError, match="needs an Observation"):
        MultiObs({"a": np.eye(3)})
    with pytest.raises(ValueError, match="must divide"):
        BlockMeanObs(10, 4, 1.0)


def test_regrid_onto_the_state_grid():
    G, mask = regrid_matrix(BlockMeanObs(NX, 4, 1.0), NX)
    np.testing.assert_allclose(np.array([1.0, 2.0, 3.0]) @ G, np.repeat([1.0, 2.0, 3.0], 4))
    assert mask.all()
    G, mask = regrid_matrix(daf.PartialObs(NX, [0, 4], 1.0), NX)
    np.testing.assert_allclose(np.array([5.0, 7.0]) @ G, [5, 0, 0, 0, 7] + [0] * 7)
    np.testing.assert_array_equal(mask, [1, 0, 0, 0, 1] + [0] * 7)


@pytest.mark.parametrize("flt", [daf.EnKF("Sqrt", N=10, infl=1.02), daf.LETKF(N=10, infl=1.04, loc_rad=4),
                                 daf.PartFilt(N=100, reg=1.0)])
def test_classical_filters_run_on_the_stacked_operator(flt):
    hmm = qu2024.build(Ko=39, coarse_every=2)
    xx, yy = hmm.simulate(1)
    a = flt.assimilate(hmm, xx, yy, seed=1).averages()
    assert np.isfinite(a["rmse.a"]) and a["rmse.a"] < 6


def test_letkf_gains_from_the_second_modality():
    both = qu2024.build(Ko=99)
    xx, _ = both.simulate(2)
    rmse = {}
    for name, hmm in {"both": both, "sparse": both.replace(obs=both.obs.select("sparse"))}.items():
        _, yy = hmm.simulate(2)
        stats = daf.LETKF(N=20, infl=1.04, loc_rad=4).assimilate(hmm, xx, yy, seed=2)
        rmse[name] = stats.averages()["rmse.a"]
    assert rmse["both"] < rmse["sparse"]


@pytest.mark.parametrize("flt", [daf.EnKF("Sqrt", N=10, infl=1.02),
                                 daf.EnKF("PertObs", N=10, infl=1.02, loc_rad=4),
                                 daf.LETKF(N=10, infl=1.04, loc_rad=4), daf.PartFilt(N=100, reg=1.0),
                                 daf.EnSF(N=10)])
def test_filters_pass_over_times_without_any_observation(flt):
    """Where no modality is observed (y of size 0) the analysis leaves the forecast unchanged."""
    base = qu2024.build(Ko=19)
    obs = MultiObs({name: Modality(base.obs[name], every=2, offset=0) for name in base.obs.names})
    hmm = base.replace(obs=obs)
    xx, yy = hmm.simulate(1)
    assert [len(y) for y in yy[:3]] == [20, 0, 20]
    stats = flt.assimilate(hmm, xx, yy, seed=1)
    assert stats.error is None and np.isfinite(stats.averages()["rmse.a"])
    assert stats.series["rmse.a"][1] == stats.series["rmse.f"][1]
