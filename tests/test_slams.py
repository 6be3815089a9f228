"""SLAMS: encoder inputs, the latent likelihood, training, saving, loading, missing modalities."""

import numpy as np
import pytest
import torch

import dafilters as daf
from dafilters.filters.base import Context
from dafilters.filters.sda import GridDenoiser, LocalDenoiser
from dafilters.filters.slams import SLAMS, ConvAutoencoder, encoder_input, latent_loglik
from mods.Lorenz96 import qu2024

TRAINING = dict(latent_dim=8, ae_width=32, width=32, depth=2, n_traj=2, epochs=2, batch_size=128)
TINY = dict(N=6, k=1, window=3, steps=4, training=TRAINING)


def test_encoder_input_channels():
    bg, spread = torch.ones(2, 5), torch.full((2, 5), 0.5)
    g, c = torch.full((2, 5), 3.0), torch.tensor([1.0, 0, 1, 0, 0])
    u = encoder_input(bg, spread, [g, None], [c, torch.zeros(5)])
    assert u.shape == (2, 6, 5)
    assert u[0, 2].tolist() == [3, 0, 3, 0, 0] and u[0, 3].tolist() == c.tolist()
    assert not u[:, 4:].any()


def test_latent_loglik_is_a_gaussian_in_the_window():
    z0 = torch.zeros(2, 3, 4)
    zo, vo = torch.ones(4), torch.full((4,), 0.5)
    ll = latent_loglik(z0, [2], [zo], [vo], gamma=0.0, sigma=0.1, mu=1.0)
    assert float(ll) == pytest.approx(-0.5 * 2 * 4 * 1 / 0.5)
    assert float(latent_loglik(z0, [], [], [], 0.1, 0.1, 1.0)) == 0


def test_conv_autoencoder_shapes():
    ae = ConvAutoencoder((8, 8), channels=6, latent_channels=2, width=4)
    mu, logv = ae.encode(torch.zeros(3, 6, 64))
    assert ae.latent_dim == 8 and mu.shape == logv.shape == (3, 8)
    assert ae.decode(mu).shape == (3, 64) and ae.encode_state(torch.zeros(3, 64)).shape == (3, 8)
    with pytest.raises(ValueError, match="divisible by 4"):
        ConvAutoencoder((6, 8), 6, 2)


@pytest.fixture(scope="module")
def trained():
    hmm = qu2024.build(Nx=12, Ko=39)
    torch.manual_seed(0)
    return hmm, SLAMS(**TINY).fit(hmm, progress=False)


def test_tiny_training_save_load_assimilate(trained, tmp_path):
    hmm, flt = trained
    assert flt.spec["modalities"] == {"sparse": 3, "coarse": 3} and flt.spec["grid"] is None
    assert len(flt.training_log["ae_train_loss"]) == 2 and np.isfinite(flt.training_log["val_loss"]).all()
    xx, yy = hmm.simulate(3)
    a = flt.assimilate(hmm, xx, yy, seed=3).averages()
    assert np.isfinite(a["rmse.a"]) and np.isfinite(a["crps.a"])
    flt.save(tmp_path / "slams.pt")
    loaded = daf.Filter.load(tmp_path / "slams.pt")
    assert loaded.assimilate(hmm, xx, yy, seed=3).averages()["rmse.a"] == a["rmse.a"]
    loaded.pixel_guidance = True
    assert np.isfinite(loaded.assimilate(hmm, xx, yy, seed=3).averages()["rmse.a"])


def test_missing_modalities(trained):
    hmm, flt = trained
    dropped = hmm.replace(obs=hmm.obs.without("coarse"))
    xx, yy = dropped.simulate(4)
    assert np.isfinite(flt.assimilate(dropped, xx, yy, seed=4).averages()["rmse.a"])
    sometimes = qu2024.build(Nx=12, Ko=39, coarse_every=3)  # the coarse field every third time
    xx, yy = sometimes.simulate(4)
    assert isinstance(yy, list)
    assert np.isfinite(flt.assimilate(sometimes, xx, yy, seed=4).averages()["rmse.a"])


def test_clear_errors(trained):
    hmm, flt = trained
    only_sparse = qu2024.build(Nx=12, Ko=39, modalities=("sparse",))
    small = SLAMS(**TINY).fit(only_sparse, progress=False)
    with pytest.raises(ValueError, match="trained with the modalities \\['sparse'\\].*'coarse'"):
        small.assimilate(hmm, *hmm.simulate(0))
    other = daf.HMM(dyn=hmm.dyn, obs=daf.MultiObs({"sparse": daf.PartialObs(12, [0, 6], 1.0)}),
                    tseq=hmm.tseq, prior=hmm.prior)
    with pytest.raises(ValueError, match="'sparse' has Ny=2 here but Ny=3"):
        flt.assimilate(other, *other.simulate(0))
    bigger = qu2024.build(Nx=16, Ko=39)
    with pytest.raises(ValueError, match="Nx=12.*Nx=16"):
        flt.assimilate(bigger, *bigger.simulate(0))
    with pytest.raises(RuntimeError, match="not trained"):
        SLAMS(**TINY).assimilate(hmm, *hmm.simulate(0))


def test_grid_denoiser_shapes_and_periodic_equivariance():
    torch.manual_seed(0)
    net = GridDenoiser((2, 8, 4), k=1, width=8, depth=2)
    w, t = torch.randn(5, 3, 64), torch.rand(5)
    out = net(w, t)
    assert out.shape == (5, 3, 64) and net(w[None], t[None]).shape == (1, 5, 3, 64)

    def roll(v):  # shift every field by (3, 1) cells on its periodic 8 x 4 grid
        return v.unflatten(-1, (2, 8, 4)).roll((3, 1), (-2, -1)).flatten(-3)

    torch.testing.assert_close(net(roll(w), t), roll(out), rtol=1e-5, atol=1e-5)


def test_latent_denoiser_choice():
    spec = {"Nx": 64, "grid": [8, 8], "modalities": {"coarse": 4}}
    assert isinstance(SLAMS(training={"latent_channels": 2}).build(spec)["denoiser"], GridDenoiser)
    mlp = SLAMS(training={"latent_channels": 2, "denoiser": "mlp"})
    assert isinstance(mlp.build(spec)["denoiser"], LocalDenoiser)
    assert isinstance(SLAMS().build({**spec, "grid": None})["denoiser"], LocalDenoiser)
    with pytest.raises(ValueError, match="needs a 2-D field state"):
        SLAMS(training={"denoiser": "conv"}).build({**spec, "grid": None})
    with pytest.raises(ValueError, match="unknown denoiser 'unet'"):
        SLAMS(training={"denoiser": "unet"})


def test_validation():
    with pytest.raises(ValueError, match="window >= 2k\\+1"):
        SLAMS(k=2, window=4)
    with pytest.raises(ValueError, match="p_drop"):
        SLAMS(training={"p_drop": 1.0})
    with pytest.raises(ValueError, match="ae_share"):
        SLAMS(training={"ae_share": 0.0})
    with pytest.raises(TypeError, match="SLAMSTraining or a dict"):
        SLAMS(training=daf.filters.learned.TrainConfig())
    with pytest.raises(ValueError, match="unknown background scheme 'all'"):
        SLAMS(background="all")
    with pytest.raises(ValueError, match="unknown corrector 'global'"):
        SLAMS(corrector="global")
    with pytest.raises(ValueError, match="clip must be positive"):
        SLAMS(clip=0.0)
    with pytest.raises(ValueError, match="unknown schedule 'lin'"):
        SLAMS(training={"schedule": "lin"})
    with pytest.raises(ValueError, match="p_clim"):
        SLAMS(training={"p_clim": 1.0})


def test_hyper_parameters_are_the_run_time_settings():
    flt = SLAMS(training={"minutes": 1.0, "latent_dim": 8})
    assert list(flt.params()) == ["N", "k", "window", "gamma", "steps", "corrections", "tau",
                                  "corrector", "clip", "background", "spread_infl", "spread_min",
                                  "pixel_guidance"]
    assert flt.training.latent_dim == 8 and flt.training.ae_share == 0.6 and len(flt.name) < 130


def test_denoiser_validation_loss_is_deterministic():
    # the latent denoiser's validation loss drives its early stopping: with (almost) frozen
    # weights it must not change from epoch to epoch (fixed levels and noises)
    hmm = qu2024.build(Nx=12, Ko=39)
    flt = SLAMS(**{**TINY, "training": {**TRAINING, "epochs": 3, "lr": 1e-12}}).fit(hmm, progress=False)
    val = flt.training_log["val_loss"]
    assert len(val) == 3 and max(val) - min(val) < 1e-5 * max(val)


@pytest.mark.parametrize("background, free", [("current", {0, 1}), ("first", {1, 2}), ("every", set())])
def test_background_enters_the_window_once(trained, background, free):
    """The latent observations of a window of 3 times: with ``"current"`` those of the past times
    do not depend on the forecasts at those times (encoded from the observations alone), with
    ``"first"`` only the oldest time's forecast enters, with the former ``"every"`` each does."""
    hmm, flt = trained
    xx, yy = hmm.simulate(5)
    rng = np.random.default_rng(1)
    forecasts = [xx[hmm.tseq.kko[j]] + rng.standard_normal((6, hmm.Nx)) for j in range(3)]

    def window_observations(E):
        ctx = Context(hmm=hmm, rng=np.random.default_rng(0), seed=0)
        for j in range(3):
            flt.analysis(E[j], yy[j], j, ctx)
        pos, zo, vo = flt.window_observations(ctx.cache["obs_history"], 0)
        assert pos == [0, 1, 2]
        return torch.stack(zo), torch.stack(vo)

    old = flt.background
    flt.background = background
    try:
        base = window_observations(forecasts)
        for j in range(3):
            other = [E + 3.0 if i == j else E for i, E in enumerate(forecasts)]  # another forecast at j
            got = window_observations(other)
            unchanged = torch.equal(got[0], base[0]) and torch.equal(got[1], base[1])
            assert unchanged == (j in free), f"forecast at time {j}"
    finally:
        flt.background = old


def test_counting_the_background_once_widens_the_ensemble():
    """A short L96 run (qu2024, Nx=40, 40 cycles) of a small SLAMS trained for 100 epochs: the
    spread/error ratio with the background encoded once (``"current"``, the default, and
    ``"first"``) is larger than with the former scheme (``"every"``, each time of the window
    encoded with its own forecast). Measured on this seed: 0.098 (every), 0.119 (current), 0.381
    (first). Deterministic: fixed seeds, one torch thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train = qu2024.build(Ko=299)
        torch.manual_seed(0)
        flt = SLAMS(N=10, k=1, window=3, steps=16,
                    training=dict(latent_dim=16, ae_width=64, width=64, depth=2, n_traj=8, epochs=100,
                                  batch_size=128, minutes=60.0)).fit(train, progress=False)
        hmm = qu2024.build(Ko=39)
        xx, yy = hmm.simulate(1)
        ratio = {}
        for background in ("every", "current", "first"):
            flt.background = background
            a = flt.assimilate(hmm, xx, yy, seed=1).averages()
            ratio[background] = a["spread.a"] / a["rmse.a"]
    finally:
        torch.set_num_threads(threads)
    assert ratio["current"] > 1.1 * ratio["every"], ratio
    assert ratio["first"] > 2 * ratio["every"], ratio
