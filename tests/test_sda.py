"""SDA: the schedule, the composed denoiser, the guided sampler, training, smoothing, filtering."""

import numpy as np
import pytest
import torch

import dafilters as daf
from dafilters.filters.sda import MU_MIN, SDA, compose_windows, denoising_loss, guided_sample, schedule
from mods.Lorenz63 import rozet2023


def test_schedule_is_variance_preserving():
    t = torch.linspace(0, 1, 11)
    mu, sigma = schedule(t, floor=0.0)
    torch.testing.assert_close(mu**2 + sigma**2, torch.ones(11))
    assert mu[0] == 1 and abs(float(mu[-1]) - MU_MIN) < 1e-6 and bool((mu[1:] < mu[:-1]).all())


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


def gaussian_denoiser(x, t):
    """The exact denoiser of N(0, I) data: E[eps | x_t] = sigma_t x_t."""
    _, sigma = schedule(t)
    return sigma.view(-1, *[1] * (x.dim() - 1)) * x


def test_guided_sampler_on_a_gaussian_prior():
    g = torch.Generator().manual_seed(0)
    prior = guided_sample(gaussian_denoiser, (4000, 3), None, steps=32, corrections=1, tau=0.1, generator=g)
    torch.testing.assert_close(prior.mean(0), torch.zeros(3), atol=0.06, rtol=0)
    torch.testing.assert_close(prior.var(0), torch.ones(3), atol=0.1, rtol=0)
    # observe the first coordinate, y = 1.5 with noise variance 0.25: exact posterior N(1.2, 0.2)
    y, r = 1.5, 0.25

    def log_lik(x0, t, mu, sigma):
        return -0.5 * ((y - x0[:, 0]) ** 2 / (r + (sigma / mu) ** 2)).sum()

    post = guided_sample(gaussian_denoiser, (4000, 3), log_lik, steps=64, corrections=1, tau=0.1, generator=g)
    assert abs(float(post[:, 0].mean()) - 1.2) < 0.1
    assert 0.1 < float(post[:, 0].var()) < 0.3
    torch.testing.assert_close(post[:, 1:].mean(0), torch.zeros(2), atol=0.06, rtol=0)


def test_denoising_loss_of_the_exact_gaussian_denoiser():
    # unit-variance data: x_t ~ N(0, 1), E[eps | x_t] = sigma_t x_t, residual variance 1 - sigma_t^2
    g = torch.Generator().manual_seed(0)
    w, eps = torch.randn(20000, 3, 2, generator=g), torch.randn(20000, 3, 2, generator=g)
    t = torch.rand(20000, generator=g)
    expect = float((1 - schedule(t)[1] ** 2).mean())
    loss = denoising_loss(lambda x, t: gaussian_denoiser(x, t), w, t, eps)
    assert abs(float(loss) - expect) < 0.02


@pytest.fixture(scope="module")
def trained():
    hmm = rozet2023.build(Ko=79, burn_in_cycles=5)
    sda = SDA(N=8, k=2, window_steps=9, steps=8,
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
