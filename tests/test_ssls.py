"""SSLS: the Langevin sampler, the score matching, the filter and the Lorenz-96 SSLS setting."""

import numpy as np
import pytest
import torch

import dafilters as daf
from dafilters.filters.ssls import SSLS, clip_per_sample, dsm_loss, langevin_sample, standardise
from dafilters.nn.nets import train_steps as adam_steps
from mods.Lorenz96 import ssls


def test_langevin_reproduces_a_gaussian_target():
    """Unadjusted Langevin on N(m, diag(v)): the chains' mean and variance match the target up to
    the O(step) bias of the discretisation and the Monte Carlo error."""
    g = torch.Generator().manual_seed(0)
    m = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    v = torch.tensor([0.5, 1.0, 2.0, 0.25], dtype=torch.float64)
    U0 = torch.zeros(4000, 4, dtype=torch.float64)
    U = langevin_sample(U0, lambda U: (m - U) / v, steps=400, step=0.02, generator=g)
    torch.testing.assert_close(U.mean(0), m, atol=0.06, rtol=0)
    # ULA's stationary variance of a Gaussian is v / (1 - step / (2 v)): within 3% here
    torch.testing.assert_close(U.var(0), v, rtol=0.08, atol=0)
    assert torch.equal(U, langevin_sample(U0, lambda U: (m - U) / v, 400, 0.02,
                                          generator=torch.Generator().manual_seed(0)))


def test_clip_per_sample_bounds_each_row_norm():
    G = torch.tensor([[3.0, 4.0], [0.3, 0.4]])
    out = clip_per_sample(G.clone(), bound=1.0)  # limit sqrt(2) per row
    assert torch.isclose(torch.linalg.vector_norm(out[0]), torch.tensor(2.0**0.5))
    torch.testing.assert_close(out[1], G[1])
    torch.testing.assert_close(out[0] / out[0].norm(), G[0] / G[0].norm())
    assert clip_per_sample(G.clone(), None).equal(G)


def test_standardise_gives_zero_mean_unit_variance():
    X = torch.randn(30, 5, dtype=torch.float64) * torch.tensor([1.0, 2, 3, 4, 5]) + 7
    U, mean, sd = standardise(X)
    torch.testing.assert_close(U.mean(0), torch.zeros(5, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(U.std(0), torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close(mean + sd * U, X)


def test_denoising_score_matching_learns_a_smoothed_gaussian_score():
    """On samples of N(0, c^2 I) the minimiser of the DSM loss at noise sigma is the score of
    N(0, (c^2 + sigma^2) I): phi(u)/sigma = -u / (c^2 + sigma^2)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    c, sigma = 1.5, 0.5
    U = c * torch.randn(2000, 3, generator=g)
    net = torch.nn.Linear(3, 3)
    opt, _ = adam_steps(net.parameters(), lambda _: dsm_loss(net, U, sigma, 1000, g), steps=500, lr=1e-2)
    opt.param_groups[0]["lr"] = 1e-3  # warm-started continuation at a smaller step
    adam_steps(opt, lambda _: dsm_loss(net, U, sigma, 1000, g), steps=500)
    # the exact minimiser for the sample's own mean m and covariance C: -(C + sigma^2 I)^{-1}(u - m)
    P = torch.linalg.inv(torch.cov(U.T) + sigma**2 * torch.eye(3))
    with torch.no_grad():
        torch.testing.assert_close(net.weight / sigma, -P, atol=0.03, rtol=0)
        torch.testing.assert_close(net.bias / sigma, P @ U.mean(0), atol=0.03, rtol=0)
    assert torch.allclose(P, torch.eye(3) / (c**2 + sigma**2), atol=0.03)


def test_ssls_setting_matches_the_paper():
    hmm = ssls.build(sigma=0.5)
    assert hmm.Nx == 20 and hmm.tseq.dt == 0.05 and hmm.tseq.dko == 1
    np.testing.assert_allclose(hmm.dyn.noise.full, 0.01 * np.eye(20))  # (0.1 sqrt(dt))^2 per step
    np.testing.assert_allclose(hmm.obs.noise(0).full, 0.25 * np.eye(20))
    np.testing.assert_allclose(hmm.prior.mean, 2.0)
    with pytest.raises(ValueError, match="sigma"):
        ssls.build(sigma=0)


@pytest.fixture(scope="module")
def short_ssls_twin():
    hmm = ssls.build(sigma=1.0, Ko=39, burn_in_cycles=10)
    return hmm, *hmm.simulate(seed=4)


def test_filter_tracks_and_is_reproducible(short_ssls_twin):
    hmm, xx, yy = short_ssls_twin
    flt = SSLS(N=30, first_steps=100, train_steps=10, langevin_steps=50)
    a = flt.assimilate(hmm, xx, yy, seed=2).averages()
    clim = daf.Climatology().assimilate(hmm, xx, yy, seed=2).averages()
    assert np.isfinite(a["rmse.a"]) and a["rmse.a"] < 0.5 * clim["rmse.a"], (a, clim)
    assert a["rmse.a"] < 1.0  # below the observation noise
    assert a["spread.a"] > 0.1
    b = flt.assimilate(hmm, xx, yy, seed=2).averages()
    assert a["rmse.a"] == b["rmse.a"]


def test_mlp_net_on_a_non_periodic_model():
    from mods.Lorenz63 import sakov2012

    hmm = sakov2012.HMM.replace(tseq=daf.Chronology(0.01, dko=25, Ko=20, BurnIn=1.0))
    xx, yy = hmm.simulate(seed=1)
    flt = SSLS(N=20, first_steps=50, train_steps=5, langevin_steps=30, step=0.05)
    assert flt._net_kind(daf.Context(hmm=hmm, rng=np.random.default_rng(0), seed=0)) == "mlp"
    assert np.isfinite(flt.assimilate(hmm, xx, yy, seed=1).averages()["rmse.a"])


def test_validation_names_the_problem():
    with pytest.raises(ValueError, match="sigma"):
        SSLS(sigma=0)
    with pytest.raises(ValueError, match="langevin_steps"):
        SSLS(langevin_steps=-1)
    with pytest.raises(ValueError, match="unknown net"):
        SSLS(net="unet")
    with pytest.raises(ValueError, match="dtype"):
        SSLS(dtype="float16")
    with pytest.raises(ValueError, match="clip"):
        SSLS(clip=0)
    with pytest.raises(ValueError, match="infl_f"):  # forecast inflation (infl is the EnKF's analysis one)
        SSLS(infl_f=0)
    with pytest.raises(TypeError, match="infl"):
        SSLS(infl=1.1)


def test_score_filters_run_beside_classical_ones_in_experiments(short_ssls_twin, tmp_path):
    hmm = short_ssls_twin[0]
    xps = daf.Experiments(
        hmm, [daf.EnKF("Sqrt", N=20, infl=1.02), daf.APF(N=100, reg=0.5),
              daf.EnSF(N=20, steps=50), SSLS(N=20, first_steps=50, train_steps=5, langevin_steps=30)],
        seeds=[1], save_to=tmp_path)
    res = xps.run(progress=False)
    frame = res.frame()
    assert len(frame) == 4 and frame["rmse.a"].notna().all(), frame
