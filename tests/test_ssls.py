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
    flt = SSLS.cheap(N=30, first_steps=100, train_steps=10, langevin_steps=50)
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
    flt = SSLS.cheap(N=20, first_steps=50, train_steps=5, langevin_steps=30, step=0.05)
    assert flt._net_kind(daf.Context(hmm=hmm, rng=np.random.default_rng(0), seed=0)) == "mlp"
    assert np.isfinite(flt.assimilate(hmm, xx, yy, seed=1).averages()["rmse.a"])


def test_validation_names_the_problem():
    with pytest.raises(ValueError, match="sigma"):
        SSLS(sigma=0)
    with pytest.raises(ValueError, match="langevin_steps"):
        SSLS(langevin_steps=-1)
    with pytest.raises(ValueError, match="unknown net"):
        SSLS(net="resnet")
    with pytest.raises(ValueError, match="unknown space"):
        SSLS(space="latent")
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
              daf.EnSF(N=20, steps=50), SSLS.cheap(N=20, first_steps=50, train_steps=5, langevin_steps=30)],
        seeds=[1], save_to=tmp_path)
    res = xps.run(progress=False)
    frame = res.frame()
    assert len(frame) == 4 and frame["rmse.a"].notna().all(), frame


def test_defaults_are_the_reference_codes_and_cheap_keeps_the_earlier_ones():
    """configs/lorenz96.json of github.com/burning489/SSLS: denoising sigma 0.1, 200 epochs of
    500 members in batches of 200 (600 steps) at lr 1e-3, U-Net (32, 64, 128), 500 Langevin steps
    of 1e-3 in the state, gradient RMS clipped at 10."""
    f = SSLS()
    assert (f.sigma, f.train_steps, f.first_steps, f.batch, f.lr) == (0.1, 600, 600, 200, 1e-3)
    assert (f.langevin_steps, f.step, f.clip, f.space, f.fresh_optimizer) == (500, 1e-3, 10.0, "state", True)
    c = SSLS.cheap(N=7)
    assert (c.N, c.sigma, c.train_steps, c.first_steps, c.batch, c.lr) == (7, 0.3, 20, 200, 256, 2e-3)
    assert ((c.langevin_steps, c.step, c.net, c.space, c.fresh_optimizer)
            == (100, 0.1, "auto-conv", "standardised", False))
    ctx = daf.Context(hmm=ssls.HMM, rng=np.random.default_rng(0), seed=0)
    assert f._net_kind(ctx) == "unet"  # Nx = 20 on a ring
    ctx42 = daf.Context(hmm=ssls.build(Nx=42), rng=np.random.default_rng(0), seed=0)
    assert f._net_kind(ctx42) == "conv"  # not a multiple of 4
    assert c._net_kind(ctx) == "conv"


def test_unet_shapes_and_reference_parameter_count():
    from dafilters.filters.ssls_unet import UNet1D

    net = UNet1D()
    x = torch.randn(5, 20)
    assert net(x).shape == (5, 20) and net(x[0:1]).shape == (1, 20)
    # as many parameters as the reference's UNet1D(channels=[32, 64, 128]) (counted on its code)
    n = sum(p.numel() for p in net.parameters())
    assert n == 163_297, n
    with pytest.raises(ValueError, match="multiple of 4"):
        net(torch.randn(2, 22))


def test_reference_regime_truth_starts_near_the_fixed_point():
    hmm = ssls.reference(sigma=1.0)
    assert hmm.tseq.Ko == 100 and hmm.tseq.BurnIn == 0.0 and hmm.Nx == 20
    np.testing.assert_allclose(hmm.prior.mean, 2.0)
    xx, yy = hmm.simulate(seed=3)
    np.testing.assert_allclose(xx[0], np.r_[8.01, np.full(19, 8.0)])
    assert xx.shape == (102, 20) and yy.shape == (101, 20)
    assert hmm.fingerprint() != ssls.build(sigma=1.0, Ko=100, burn_in_cycles=0).fingerprint()
    assert hmm.fingerprint() != ssls.reference(sigma=1.0, steps=50).fingerprint()
    assert hmm.replace(tseq=dict(Ko=10)).truth_x0[0] == 8.01


def test_reference_settings_run_a_few_cycles():
    hmm = ssls.reference(sigma=1.0, steps=2)
    xx, yy = hmm.simulate(seed=0)
    st = SSLS(N=20, train_steps=3, first_steps=3, langevin_steps=5).assimilate(hmm, xx, yy, seed=0)
    assert np.isfinite(st.series["rmse.a"]).all()


def test_cheap_ssls_approaches_the_kalman_filter_on_a_linear_gaussian_model():
    from mods.LinearGauss import build as linear_gauss

    hmm = linear_gauss(Ko=30, BurnIn=3)
    xx, yy = hmm.simulate(2)
    kf = daf.KalmanFilter().assimilate(hmm, xx, yy).averages()["rmse.a"]
    a = SSLS.cheap(N=100, langevin_steps=100, step=0.05).assimilate(hmm, xx, yy, seed=1).averages()
    assert a["rmse.a"] < 1.3 * kf, (a, kf)
