"""SDA: the schedule, the composed denoiser, the guided sampler, training, smoothing, filtering."""

import numpy as np
import pytest
import torch

import dafilters as daf
from dafilters.filters.sda import (
    ETA,
    MU_MIN,
    SDA,
    GridDenoiser,
    LocalDenoiser,
    compose_windows,
    denoising_loss,
    guided_sample,
    langevin_step_size,
    schedule,
)
from mods.Lorenz63 import rozet2023


def reference_cos(t: float, eta: float = 1e-3) -> tuple[float, float]:
    """francois-rozet/sda, sda/score.py, VPSDE(alpha="cos", eta=1e-3): mu = alpha(t)
    = cos(acos(sqrt(eta)) t)^2, sigma = sqrt(1 - alpha^2 + eta^2)."""
    mu = np.cos(np.arccos(np.sqrt(eta)) * t) ** 2
    return mu, np.sqrt(1 - mu**2 + eta**2)


def test_schedule_matches_the_reference_formula():
    t = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64)
    mu, sigma = schedule(t)  # "cos", the default
    for i, ti in enumerate(t.tolist()):
        assert (float(mu[i]), float(sigma[i])) == pytest.approx(reference_cos(ti), rel=1e-12, abs=1e-15)
    assert float(mu[0]) == 1 and float(sigma[0]) == pytest.approx(ETA, rel=1e-6)  # t = 0: sigma = eta
    assert float(mu[-1]) == pytest.approx(ETA, rel=1e-6) and float(sigma[-1]) == pytest.approx(1.0)
    tt = torch.linspace(0, 1, 11, dtype=torch.float64)
    mu, sigma = schedule(tt)
    torch.testing.assert_close(mu**2 + sigma**2, 1 + ETA**2 + 0 * tt)  # VP, up to eta^2
    assert bool((mu[1:] < mu[:-1]).all())


def test_former_schedule_is_kept():
    t = torch.linspace(0, 1, 11)
    mu, sigma = schedule(t, "sin", floor=0.0)
    torch.testing.assert_close(mu**2 + sigma**2, torch.ones(11))
    assert mu[0] == 1 and abs(float(mu[-1]) - MU_MIN) < 1e-6 and bool((mu[1:] < mu[:-1]).all())
    assert float(schedule(torch.zeros(1), "sin")[1]) == pytest.approx(1e-3)  # its floor
    with pytest.raises(ValueError, match="unknown schedule 'lin'"):
        schedule(t, "lin")


def test_corrector_step_size_per_sample():
    # two samples whose scores differ in scale by 10: the reference's corrector (one delta per
    # sample, tau / mean of the sample's own s^2) gives steps 100 times apart; the former batch
    # mode gives one step for both
    score = torch.stack([torch.ones(5, 3), 10 * torch.ones(5, 3)])
    delta = langevin_step_size(score, tau=0.25, corrector="sample")
    assert delta.shape == (2, 1, 1)
    assert delta.flatten().tolist() == pytest.approx([0.25, 0.0025])
    batch = langevin_step_size(score, tau=0.25, corrector="batch")
    assert isinstance(batch, float) and batch == pytest.approx(0.25 / 50.5)


def test_corrector_runs_at_the_last_step_in_sample_mode():
    calls = {"n": 0}

    def counting(x, t):
        calls["n"] += 1
        return gaussian_denoiser(x, t)

    for corrector, expect in (("sample", 4 * (1 + 2)), ("batch", 4 * (1 + 2) - 2)):
        calls["n"] = 0
        guided_sample(counting, (3, 8), None, steps=4, corrections=2, tau=0.1,
                      generator=torch.Generator().manual_seed(0), corrector=corrector)
        assert calls["n"] == expect, corrector
    with pytest.raises(ValueError, match="unknown corrector 'global'"):
        guided_sample(counting, (3, 8), None, 4, 1, 0.1, corrector="global")


def test_composed_denoiser_takes_window_centres_and_ends():
    class Marker(torch.nn.Module):  # returns, for each window, the position of each state in it
        def forward(self, w, t):
            pos = torch.arange(w.shape[-2], dtype=w.dtype)[:, None].expand(w.shape[-2:])
            return w * 0 + 100 * w[..., :1, :1] + pos  # window start value * 100 + position

    x = torch.arange(9, dtype=torch.float32)[None, :, None].repeat(2, 1, 2)  # state i has value i
    eps = compose_windows(Marker(), x, torch.zeros(2), k=2)
    # state i < 2 from the first window (start 0, position i); 2 <= i < 7 from the window starting
    # at i-2 (centre, position 2); i >= 7 from the last window (start 4, position i-4)
    expect = [0, 1] + [100 * (i - 2) + 2 for i in range(2, 7)] + [400 + 3, 400 + 4]
    assert eps[0, :, 0].tolist() == expect and eps.shape == x.shape


def gaussian_denoiser(x, t, kind="cos"):
    """The exact denoiser of N(0, I) data: E[eps | x_t] = sigma_t x_t / (mu_t^2 + sigma_t^2)."""
    mu, sigma = schedule(t, kind)
    shape = (-1, *[1] * (x.dim() - 1))
    return (sigma / (mu**2 + sigma**2)).view(shape) * x


@pytest.mark.parametrize("kind, corrector, clip", [("cos", "sample", None), ("sin", "batch", 5.0)])
def test_guided_sampler_on_a_gaussian_prior(kind, corrector, clip):
    # samples of 128 entries (the corrector's step is set per sample from their mean square; with
    # few entries per sample that step is noisy and the samples come out too wide: variance 1.05
    # with 32 entries at tau = 0.02). The Langevin steps' own bias is about tau / 2.
    g = torch.Generator().manual_seed(0)
    kw = dict(generator=g, schedule=kind, corrector=corrector, x0_clip=clip)

    def den(x, t):
        return gaussian_denoiser(x, t, kind)

    prior = guided_sample(den, (400, 128), None, steps=32, corrections=1, tau=0.1, **kw)
    assert abs(float(prior.mean())) < 0.02 and abs(float(prior.var()) - 1) < 0.08
    # observe the first coordinate, y = 1.5 with noise variance 0.25: exact posterior N(1.2, 0.2)
    y, r = 1.5, 0.25

    def log_lik(x0, t, mu, sigma):
        return -0.5 * ((y - x0[:, 0]) ** 2 / (r + (sigma / mu) ** 2)).sum()

    post = guided_sample(den, (400, 128), log_lik, steps=32, corrections=1, tau=0.1, **kw)
    assert abs(float(post[:, 0].mean()) - 1.2) < 0.1
    assert 0.1 < float(post[:, 0].var()) < 0.35  # 0.28 here (both): the guidance approximation
    assert abs(float(post[:, 1:].mean())) < 0.02 and abs(float(post[:, 1:].var()) - 1) < 0.08


def test_denoising_loss_of_the_exact_gaussian_denoiser():
    # unit-variance data: x_t ~ N(0, 1), E[eps | x_t] = sigma_t x_t, residual variance 1 - sigma_t^2
    g = torch.Generator().manual_seed(0)
    w, eps = torch.randn(20000, 3, 2, generator=g), torch.randn(20000, 3, 2, generator=g)
    t = torch.rand(20000, generator=g)
    mu, sigma = schedule(t)
    expect = float((1 - sigma**2 / (mu**2 + sigma**2)).mean())
    loss = denoising_loss(lambda x, t: gaussian_denoiser(x, t), w, t, eps)
    assert abs(float(loss) - expect) < 0.02


@pytest.fixture(scope="module")
def trained():
    hmm = rozet2023.build(Ko=79, burn_in_cycles=5)
    # 8 steps: with the reference's schedule (mu_1 = 1e-3) the first DDIM step multiplies the
    # denoiser's error by mu(7/8) / mu(1) = 50, which a network trained for 3 epochs does not
    # survive without clipping x0 (the reference's 256 steps: a factor 1.4)
    sda = SDA(N=8, k=2, window_steps=9, steps=8, clip=5.0,
              training=dict(n_traj=1, epochs=3, batch_size=128, width=32, depth=2, lr_stages=2))
    return hmm, sda.fit(hmm, progress=False)


def test_tiny_training_save_load_assimilate_and_smooth(trained, tmp_path):
    hmm, sda = trained
    assert len(sda.training_log["train_loss"]) == 6 and np.isfinite(sda.training_log["val_loss"]).all()
    xx, yy = hmm.simulate(seed=2)
    a = sda.assimilate(hmm, xx, yy, seed=2).averages()
    assert np.isfinite(a["rmse.a"]) and np.isfinite(a["crps.a"])
    sda.save(tmp_path / "sda.pt")
    loaded = daf.Filter.load(tmp_path / "sda.pt")
    assert loaded.assimilate(hmm, xx, yy, seed=2).averages()["rmse.a"] == a["rmse.a"]
    X = loaded.smooth(hmm, [0, 8], [yy[0], yy[1]], [0, 1], L=9, N=5,
                      generator=torch.Generator().manual_seed(1))
    assert X.shape == (5, 9, 3) and np.isfinite(X).all()
    other = daf.HMM(dyn=hmm.dyn, obs=daf.IdentityObs(3, 0.1), tseq=hmm.tseq, prior=hmm.prior, name="L63-full")
    with pytest.raises(ValueError, match="Ny=1.*has Ny=3"):
        loaded.assimilate(other, *other.simulate(0))


def test_validation_loss_is_deterministic():
    # with (almost) frozen weights the validation loss must not change from epoch to epoch: it
    # drives early stopping, so it is computed with fixed noise levels and noises
    hmm = rozet2023.build(Ko=19, burn_in_cycles=1)
    sda = SDA(N=4, k=1, window_steps=3,
              training=dict(n_traj=1, epochs=3, width=16, depth=1, lr=1e-12, lr_stages=1))
    val = sda.fit(hmm, progress=False).training_log["val_loss"]
    assert len(val) == 3 and max(val) - min(val) < 1e-5 * max(val)


def test_validation():
    with pytest.raises(ValueError, match="window_steps >= 2k\\+1"):
        SDA(k=3, window_steps=5)
    with pytest.raises(ValueError, match="gamma"):
        SDA(gamma=0)
    with pytest.raises(ValueError, match="lr_stages"):
        SDA(training={"lr_stages": 0})
    with pytest.raises(ValueError, match="width"):
        SDA(training={"width": 0})
    with pytest.raises(ValueError, match="unknown training settings \\['window'\\]"):
        SDA(training={"window": 3})
    with pytest.raises(ValueError, match="unknown corrector 'global'"):
        SDA(corrector="global")
    with pytest.raises(ValueError, match="clip must be positive"):
        SDA(clip=-1.0)
    with pytest.raises(ValueError, match="unknown schedule 'lin'"):
        SDA(training={"schedule": "lin"})
    with pytest.raises(ValueError, match="unknown denoiser 'unet'"):
        SDA(training={"denoiser": "unet"})


def test_defaults_follow_the_reference_sampler():
    sda = SDA()
    assert (sda.steps, sda.corrections, sda.tau, sda.gamma) == (256, 2, 0.25, 0.03)
    assert (sda.corrector, sda.clip, sda.training.schedule) == ("sample", None, "cos")
    # a model file written before the schedule was recorded in the spec was trained with "sin"
    sda.spec = {"Nx": 3}
    assert sda.schedule == "sin"
    sda.spec = {"Nx": 3, "schedule": "cos"}
    assert sda.schedule == "cos"


def test_denoiser_for_two_dimensional_fields():
    spec = {"Nx": 64, "grid": [8, 8]}
    net = SDA(k=1, window_steps=3, training={"conv_width": 8, "depth": 1}).build(spec)["denoiser"]
    assert isinstance(net, GridDenoiser) and net.grid == (1, 8, 8)
    assert net(torch.zeros(2, 3, 64), torch.zeros(2)).shape == (2, 3, 64)
    mlp = SDA(k=1, window_steps=3, training={"denoiser": "mlp", "width": 8}).build(spec)["denoiser"]
    assert isinstance(mlp, LocalDenoiser)
    assert isinstance(SDA(k=1, window_steps=3).build({"Nx": 3, "grid": None})["denoiser"], LocalDenoiser)
    with pytest.raises(ValueError, match="SDA's 'conv' denoiser needs a 2-D field state"):
        SDA(training={"denoiser": "conv"}).build({"Nx": 3, "grid": None})
