"""MNMEF: the update, its symmetries, training, fine-tuning, saving and loading."""

import numpy as np
import pytest
import torch

import dafilters as daf
from dafilters.filters.mnmef import (
    MNMEF,
    Cycle,
    MNMEFTraining,
    ModelForecast,
    TorchObs,
    distance_bins,
    mnmef_update,
    spun_up_ensembles,
)
from dafilters.filters.mnmef.learn import WindowLoss
from dafilters.localization import gaspari_cohn
from dafilters.nn.config import TrainConfig
from mods.Lorenz96 import bach2025


@pytest.fixture(scope="module")
def hmm():
    return bach2025.build(sigma=1.0, Ko=119)


def neutral(flt, hmm):
    """Untrained networks set to no localization, no inflation and no correction."""
    flt.spec = flt.spec_for(hmm)
    flt.nets = flt.build(flt.spec)
    with torch.no_grad():
        flt.nets["heads"].loc.bias.fill_(30.0)
        flt.nets["heads"].infl.bias.copy_(torch.tensor([-30.0, -30.0]))
    return flt


def inputs(hmm, N, seed=0):
    rng = np.random.default_rng(seed)
    E = bach2025.attractor_point() + rng.standard_normal((N, hmm.Nx))
    y = hmm.obs.sample(E[0] + rng.standard_normal(hmm.Nx), 0, rng)
    return E, y, rng.standard_normal((N, len(y))), rng.standard_normal((N, hmm.Nx))


def run_update(flt, hmm, E, y, xi_o, xi_a):
    bxy, byy, r_std = flt.observation_layout(hmm, 0)
    t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    nets = {k: v.double() for k, v in flt.nets.items()}
    with torch.no_grad():
        return mnmef_update(nets, t(E)[None], t(y)[None], TorchObs(hmm.obs, 0), r_std.double(),
                            bxy, byy, flt.spec["scale"], t(xi_o)[None], t(xi_a)[None])[0].numpy()


def test_neutral_update_is_the_perturbed_observation_enkf(hmm):
    N = 12
    flt = neutral(MNMEF(N=N), hmm)
    E, y, xi_o, xi_a = inputs(hmm, N)
    Ea = run_update(flt, hmm, E, y, xi_o, xi_a)
    R = hmm.obs.noise(0).full
    D = xi_o @ np.sqrt(R)
    D = (D - D.mean(0)) * np.sqrt(N / (N - 1))
    Eo = hmm.obs(E, 0)
    A, Y = E - E.mean(0), Eo - Eo.mean(0)
    K = (A.T @ Y / (N - 1)) @ np.linalg.inv(Y.T @ Y / (N - 1) + R)
    np.testing.assert_allclose(Ea, E + (y - D - Eo) @ K.T, atol=1e-9)


def test_update_is_permutation_equivariant(hmm):
    N = 10
    flt = MNMEF(N=N)
    flt.spec = flt.spec_for(hmm)
    flt.nets = flt.build(flt.spec)
    with torch.no_grad():
        torch.nn.init.normal_(flt.nets["heads"].corr[-1].weight, std=0.1)  # the correction acts too
    E, y, xi_o, xi_a = inputs(hmm, N, seed=1)
    perm = np.random.default_rng(2).permutation(N)
    a = run_update(flt, hmm, E, y, xi_o, xi_a)
    b = run_update(flt, hmm, E[perm], y, xi_o[perm], xi_a[perm])
    np.testing.assert_allclose(b, a[perm], atol=1e-9)


def test_untrained_correction_is_zero_and_receives_gradients(hmm):
    """The correction starts at zero (an untrained MNMEF is a localized PertObs EnKF) without
    blocking its own gradients (a zero gate in front of a random MLP would)."""
    N = 8
    flt = MNMEF(N=N)
    flt.spec = flt.spec_for(hmm)
    flt.nets = flt.build(flt.spec)
    E, y, xi_o, xi_a = (torch.as_tensor(a, dtype=torch.float32)[None] for a in inputs(hmm, N))
    bxy, byy, r_std = flt.observation_layout(hmm, 0)
    H, s = flt.nets["summary"](torch.randn(1, N, hmm.Nx + len(y[0])))
    assert not flt.nets["heads"](H, s)[3].any()
    Ea = mnmef_update(flt.nets, E, y, TorchObs(hmm.obs, 0), r_std, bxy, byy,
                      flt.spec["scale"], xi_o, xi_a)
    Ea.mean(1).pow(2).sum().backward()
    assert flt.nets["heads"].corr[-1].weight.grad.abs().sum() > 0


def test_distance_bins_on_the_ring():
    coords = np.arange(8.0)[:, None]
    bxy, byy = distance_bins(coords, coords[::4], (8.0,), 1.0, 4)
    assert bxy[:, 0].tolist() == [0, 1, 2, 3, 3, 3, 2, 1]  # distance 4 capped at bin 3
    assert byy.tolist() == [[0, 3], [3, 0]]


def test_tiny_training_save_load_fine_tune(hmm, tmp_path):
    kw = dict(training=dict(n_traj=1, window=6, warmup=2, stride=6, epochs=2, batch_size=4, d_model=16,
                            heads=2))
    flt = MNMEF(N=8, **kw).fit(hmm, progress=False)
    tr = flt.training_log
    assert len(tr["train_loss"]) == 4 and np.isfinite(tr["train_loss"]).all() and tr["device"] == "cpu"
    assert len(tr["round_val_loss"]) == 2  # two spin-up rounds of two epochs
    xx, yy = hmm.simulate(seed=3)
    a = flt.assimilate(hmm, xx, yy, seed=3).averages()
    assert np.isfinite(a["rmse.a"])
    flt.save(tmp_path / "m.pt")
    loaded = daf.Filter.load(tmp_path / "m.pt")
    assert loaded.assimilate(hmm, xx, yy, seed=3).averages()["rmse.a"] == a["rmse.a"]
    other = bach2025.build(sigma=1.0, Nx=20, Ko=109)
    with pytest.raises(ValueError, match="Nx=40.*has Nx=20"):
        loaded.assimilate(other, *other.simulate(0))
    # fine-tuning at another N: the set summary stays as pretrained, the heads move
    fine = MNMEF(N=12, **kw).fit(hmm, pretrained=loaded, progress=False)
    assert fine.training_log["fine_tuned"] and fine.training_log["summary_frozen"]
    for p, q in zip(fine.nets["summary"].parameters(), loaded.nets["summary"].parameters()):
        assert torch.equal(p, q)
    assert not torch.equal(fine.nets["heads"].loc.weight, loaded.nets["heads"].loc.weight)
    assert np.isfinite(fine.assimilate(hmm, xx, yy, seed=3).averages()["rmse.a"])
    full = MNMEF(N=12, **kw).fit(hmm, pretrained=loaded, freeze_summary=False, progress=False)
    assert not full.training_log["summary_frozen"]
    assert not torch.equal(full.nets["summary"].embed[0].weight, loaded.nets["summary"].embed[0].weight)


def test_spun_up_ensembles_run_the_filter_along_the_trajectory(hmm):
    """The training starts are the analysis ensembles of the filter run from truth + noise: the
    first is the initial draw, each next one the update of the forecast of the previous one."""
    N = 6
    flt = neutral(MNMEF(N=N), hmm)
    xx, yy = hmm.simulate(seed=4)
    truth = torch.as_tensor(xx[hmm.tseq.kko][None, :4], dtype=torch.float32)
    ys = torch.as_tensor(yy[None, :4], dtype=torch.float32)
    bxy, byy, r_std = flt.observation_layout(hmm, 0)
    dko = int(hmm.tseq.kko[1] - hmm.tseq.kko[0])
    forecast, h = ModelForecast(hmm.dyn, dko, hmm.tseq.dt), TorchObs(hmm.obs, 0)
    cycle = Cycle(flt.nets, forecast, h, r_std, bxy, byy, flt.spec["scale"])
    ens = spun_up_ensembles(cycle, truth, ys, N, 1.0, torch.Generator().manual_seed(0))
    assert ens.shape == (1, 4, N, hmm.Nx)
    gen = torch.Generator().manual_seed(0)
    E = truth[:, 0, None] + torch.randn(1, N, hmm.Nx, generator=gen)
    torch.testing.assert_close(ens[:, 0], E)
    xi_o, xi_a = torch.randn(1, N, ys.shape[-1], generator=gen), torch.randn(1, N, hmm.Nx, generator=gen)
    with torch.no_grad():
        E1 = mnmef_update(flt.nets, forecast(E), ys[:, 1], h, r_std, bxy, byy, flt.spec["scale"], xi_o, xi_a)
    torch.testing.assert_close(ens[:, 1], E1)


def test_spin_up_keeps_only_the_window_starts(hmm):
    """The training rounds keep the spun-up ensembles at the windows' first times only (all times
    of 128 trajectories at N = 100 did not fit in memory): the same ensembles, in the order of
    ``windows``, as keeping every time and cutting windows."""
    from dafilters.nn.data import window_starts, windows

    N, W, stride = 5, 6, 4
    flt = neutral(MNMEF(N=N), hmm)
    xx, yy = hmm.simulate(seed=5)
    truth = torch.as_tensor(np.stack([xx[hmm.tseq.kko][:30]] * 3), dtype=torch.float32)
    ys = torch.as_tensor(np.stack([yy[:30]] * 3), dtype=torch.float32)
    bxy, byy, r_std = flt.observation_layout(hmm, 0)
    dko = int(hmm.tseq.kko[1] - hmm.tseq.kko[0])
    cycle = Cycle(flt.nets, ModelForecast(hmm.dyn, dko, hmm.tseq.dt), TorchObs(hmm.obs, 0), r_std, bxy,
                  byy, flt.spec["scale"])
    every = spun_up_ensembles(cycle, truth, ys, N, 1.0, torch.Generator().manual_seed(1))
    starts = window_starts(30, W + 1, stride)
    kept = spun_up_ensembles(cycle, truth, ys, N, 1.0, torch.Generator().manual_seed(1), starts)
    assert list(starts) == list(range(0, 24, 4)) and kept.shape == (3, len(starts), N, hmm.Nx)
    torch.testing.assert_close(kept.reshape(-1, N, hmm.Nx), torch.as_tensor(windows(every.numpy(), W + 1,
                                                                                    stride)[:, 0]))


def test_validation_loss_is_a_function_of_the_weights(hmm):
    """Validation perturbations are drawn once: with (almost) frozen weights the validation loss
    is the same at every epoch (early stopping must not chase fresh noise)."""
    training = dict(n_traj=1, window=4, warmup=1, stride=4, epochs=3, batch_size=8, d_model=16, heads=2,
                    lr=1e-12, skip=60, lr_stages=2)
    val = MNMEF(N=6, training=training).fit(hmm, progress=False).training_log["val_loss"]
    assert len(val) == 6  # 3 epochs in each of 2 learning-rate stages
    np.testing.assert_allclose(val, val[0], rtol=1e-6)


def test_hyper_parameters_and_training_settings():
    """The table columns are the filter's hyper-parameters; how it is trained is its
    ``training`` (an MNMEFTraining: data, windows, spin-up, budget, optimiser, seed)."""
    flt = MNMEF(N=10, training={"minutes": 8, "window": 12})
    assert flt.params() == {"N": 10, "bin_width": 1.0, "form": "increment"}
    assert isinstance(flt.training, MNMEFTraining)
    assert (flt.training.minutes, flt.training.window, flt.training.n_traj) == (8, 12, 8)
    assert (flt.training.patience, flt.training.batch_size, flt.training.spinup_rounds) == (15, 16, 2)
    assert (flt.training.d_model, flt.training.heads, flt.training.loc_init) == (64, 4, 3.0)
    assert flt.settings()["training"]["detach_every"] == 5
    assert MNMEF.TRAINING.minutes == 25.0  # the class defaults are not changed by an instance


def test_clear_errors():
    from mods.LinearGauss import build

    lg = build(Nx=5, Ko=10, BurnIn=1.0)
    with pytest.raises(NotImplementedError, match="no torch step"):
        MNMEF(N=5, training={"n_traj": 1, "window": 3, "warmup": 1, "epochs": 1}).fit(lg)
    with pytest.raises(ValueError, match="warmup"):
        MNMEF(training={"window": 5, "warmup": 5})
    with pytest.raises(ValueError, match="N >= 3"):
        MNMEF(N=2)
    with pytest.raises(ValueError, match="form must be one of"):
        MNMEF(form="gain")
    with pytest.raises(ValueError, match="lr_stages"):
        MNMEF(training={"lr_stages": 0})
    with pytest.raises(ValueError, match="detach_every must be >= 0"):
        MNMEF(training={"detach_every": -1})
    with pytest.raises(ValueError, match="spinup_rounds must be >= 1"):
        MNMEF(training={"spinup_rounds": 0})
    with pytest.raises(ValueError, match="unknown training settings"):
        MNMEF(training={"windw": 5})
    with pytest.raises(TypeError, match="MNMEFTraining"):
        MNMEF(training=TrainConfig())
    l96 = bach2025.build(sigma=1.0, Ko=119)
    with pytest.raises(ValueError, match="no training window starts after skip=200"):
        MNMEF(N=5, training={"n_traj": 1, "window": 6, "warmup": 2, "epochs": 1, "skip": 200}).fit(
            l96, progress=False)


# -- form="reference": the paper code's corrections inside the gain ---------------------------
def reference_nets(hmm, N, **kw):
    flt = MNMEF(N=N, form="reference", **kw)
    flt.spec = flt.spec_for(hmm)
    flt.nets = flt.build(flt.spec)
    return flt


def test_reference_form_with_zero_corrections_is_the_localized_pertobs_enkf(hmm):
    """Untrained (corrections zero, weights the Gaspari-Cohn taper in (0, 2)), the reference
    form is exactly the localized perturbed-observation EnKF with the same draws."""
    N = 12
    flt = reference_nets(hmm, N)
    heads = flt.nets["heads"]
    rho = (heads.loc_max * torch.sigmoid(heads.loc.bias.detach().double())).numpy()
    centres = np.arange(flt.spec["n_bins"]) * flt.bin_width
    np.testing.assert_allclose(rho, np.clip(gaspari_cohn(centres / (1.82 * 3.0)), 1e-3, 2), atol=1e-6)
    E, y, xi_o, _ = inputs(hmm, N, seed=5)
    bxy, byy, r_std = flt.observation_layout(hmm, 0)
    t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    nets = {k: v.double() for k, v in flt.nets.items()}
    with torch.no_grad():
        Ea = mnmef_update(nets, t(E)[None], t(y)[None], TorchObs(hmm.obs, 0), r_std.double(), bxy, byy,
                          flt.spec["scale"], t(xi_o)[None], None, form="reference")[0].numpy()
    R = hmm.obs.noise(0).full
    D = xi_o @ np.sqrt(R)
    D = (D - D.mean(0)) * np.sqrt(N / (N - 1))
    Eo = hmm.obs(E, 0)
    A, Y = E - E.mean(0), Eo - Eo.mean(0)
    bxy, byy = bxy.numpy(), byy.numpy()
    Pxy, Pyy = A.T @ Y / (N - 1), Y.T @ Y / (N - 1)
    K = (rho[bxy] * Pxy) @ np.linalg.inv(rho[byy] * Pyy + R)
    np.testing.assert_allclose(Ea, E + (y - D - Eo) @ K.T, atol=1e-9)
    # with weights 1 everywhere: the plain PertObs EnKF
    with torch.no_grad():
        nets["heads"].loc.bias.fill_(0.0)  # 2 * sigmoid(0) = 1
        Ea1 = mnmef_update(nets, t(E)[None], t(y)[None], TorchObs(hmm.obs, 0), r_std.double(),
                           torch.as_tensor(bxy), torch.as_tensor(byy), flt.spec["scale"], t(xi_o)[None],
                           None, form="reference")[0].numpy()
    K = Pxy @ np.linalg.inv(Pyy + R)
    np.testing.assert_allclose(Ea1, E + (y - D - Eo) @ K.T, atol=1e-9)


def test_reference_form_is_permutation_equivariant(hmm):
    N = 10
    flt = reference_nets(hmm, N)
    with torch.no_grad():
        torch.nn.init.normal_(flt.nets["heads"].corr[-1].weight, std=0.05)
    E, y, xi_o, xi_a = inputs(hmm, N, seed=1)
    perm = np.random.default_rng(2).permutation(N)
    t = lambda a: torch.as_tensor(a, dtype=torch.float64)[None]  # noqa: E731
    bxy, byy, r_std = flt.observation_layout(hmm, 0)
    nets = {k: v.double() for k, v in flt.nets.items()}

    def run(E, xi_o):
        with torch.no_grad():
            return mnmef_update(nets, t(E), t(y), TorchObs(hmm.obs, 0), r_std.double(), bxy, byy,
                                flt.spec["scale"], t(xi_o), None, form="reference")[0].numpy()

    a, b = run(E, xi_o), run(E[perm], xi_o[perm])
    assert not np.allclose(a, run(E, xi_o) * 0 + E)  # the corrections act
    np.testing.assert_allclose(b, a[perm], atol=1e-9)


@pytest.mark.parametrize("detach_every", [1, 5])
def test_gradients_reach_every_head(hmm, detach_every):
    """Through the training loss (detached every cycle or every 5): untrained, the zero last layer
    of the corrections and the localization get gradients; with that layer non-zero, every
    parameter of the set summary and the heads does."""
    N = 6
    flt = reference_nets(hmm, N, training={"window": 6, "warmup": 2, "detach_every": detach_every,
                                           "d_model": 16, "heads": 2})
    bxy, byy, r_std = flt.observation_layout(hmm, 0)
    dko = int(hmm.tseq.kko[1] - hmm.tseq.kko[0])
    cycle = Cycle(flt.nets, ModelForecast(hmm.dyn, dko, hmm.tseq.dt), TorchObs(hmm.obs, 0), r_std, bxy,
                  byy, flt.spec["scale"], form="reference")
    xx, yy = hmm.simulate(seed=4)
    truth = torch.as_tensor(xx[hmm.tseq.kko][None, :7], dtype=torch.float32).repeat(3, 1, 1)
    ys = torch.as_tensor(yy[None, :7], dtype=torch.float32).repeat(3, 1, 1)
    E0 = truth[:, 0, None] + torch.randn(3, N, hmm.Nx, generator=torch.Generator().manual_seed(1))
    loss = WindowLoss(cycle, flt.training, torch.Generator().manual_seed(0))
    heads = flt.nets["heads"]
    loss((truth, ys, E0)).backward()
    assert heads.corr[-1].weight.grad.abs().sum() > 0 and heads.loc.bias.grad.abs().sum() > 0
    for net in flt.nets.values():
        net.zero_grad()
    with torch.no_grad():
        torch.nn.init.normal_(heads.corr[-1].weight, std=0.01)
        torch.nn.init.normal_(heads.loc.weight, std=0.01)
    loss((truth, ys, E0)).backward()
    for name, net in flt.nets.items():
        for pname, p in net.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}.{pname} gets no gradient"


def test_reference_form_trains_saves_loads_and_fine_tunes(hmm, tmp_path):
    kw = dict(form="reference", training=dict(n_traj=1, window=6, warmup=2, stride=6, epochs=2, batch_size=4,
                                              d_model=16, heads=2, detach_every=1))
    flt = MNMEF(N=8, **kw).fit(hmm, progress=False)
    assert np.isfinite(flt.training_log["train_loss"]).all()
    assert flt.name == "MNMEF(N=8, form='reference')"
    xx, yy = hmm.simulate(seed=3)
    a = flt.assimilate(hmm, xx, yy, seed=3).averages()["rmse.a"]
    flt.save(tmp_path / "r.pt")
    assert daf.Filter.load(tmp_path / "r.pt").assimilate(hmm, xx, yy, seed=3).averages()["rmse.a"] == a
    fine = MNMEF(N=12, **kw).fit(hmm, pretrained=flt, progress=False)
    assert fine.training_log["summary_frozen"]
    with pytest.raises(ValueError, match="another form"):
        MNMEF(N=12, training=kw["training"]).fit(hmm, pretrained=flt, progress=False)


def test_set_summary_attention_is_torchs_multihead_attention():
    """The written-out attentions compute nn.MultiheadAttention's function of its parameters,
    values and gradients (self-attention, and the pooling to one learned query)."""
    from dafilters.filters.mnmef.nets import SetSummary, query_attention, self_attention

    torch.manual_seed(0)
    m = SetSummary(12, 16, heads=4)
    with torch.no_grad():  # non-zero biases (torch starts them at zero)
        m.attn.in_proj_bias.normal_()
        m.pool.in_proj_bias.normal_()
    H = torch.randn(5, 7, 16, dtype=torch.float64, requires_grad=True)
    m = m.double()
    q = m.query.expand(5, -1, -1)
    pairs = [(self_attention(m.attn, H), m.attn(H, H, H, need_weights=False)[0]),
             (query_attention(m.pool, m.query[0, 0], H), m.pool(q, H, H, need_weights=False)[0][:, 0])]
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours.detach(), theirs.detach(), atol=1e-12)
        w = torch.randn_like(ours)
        params = [H, *m.parameters()]
        g1 = torch.autograd.grad((ours * w).sum(), params, allow_unused=True)
        g2 = torch.autograd.grad((theirs * w).sum(), params, allow_unused=True)
        for a, b in zip(g1, g2):
            if a is None or b is None:
                assert a is None and b is None or float((a if b is None else b).abs().max()) < 1e-12
            else:
                np.testing.assert_allclose(a, b, atol=1e-10)


def test_reference_heads_read_tokens_and_summary_through_one_mlp():
    """ReferenceHeads' corrections are its MLP of [T_n, s] (first layer split in two parts)."""
    from dafilters.filters.mnmef.nets import ReferenceHeads

    torch.manual_seed(1)
    heads = ReferenceHeads(8, 5, Nx=6, Ny=3, loc_init=2.0, bin_width=1.0).double()
    with torch.no_grad():
        heads.corr[-1].weight.normal_()
    T, H, s = torch.randn(4, 7, 9).double(), torch.randn(4, 7, 8).double(), torch.randn(4, 8).double()
    _, da, dy, dx = heads(T, H, s)
    out = heads.corr(torch.cat([T, s[:, None].expand(-1, 7, -1)], -1))
    np.testing.assert_allclose(torch.cat([da, dy, dx], -1).detach(), out.detach(), atol=1e-12)
    assert (da.shape, dy.shape, dx.shape) == ((4, 7, 6), (4, 7, 3), (4, 7, 6))


def test_training_forecast_is_the_numpy_model(hmm):
    """The torch forecast of training (Lorenz-96's padded tendency) is the numpy model's."""
    dko = int(hmm.tseq.kko[0])
    E = np.random.default_rng(0).normal(0, 3, (2, 4, hmm.Nx))
    got = ModelForecast(hmm.dyn, dko, hmm.tseq.dt)(torch.as_tensor(E)).numpy()
    want = E.copy()
    for _ in range(dko):
        want = hmm.dyn.step(want, 0.0, hmm.tseq.dt)
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_compiled_forecast_falls_back_to_eager(hmm, monkeypatch):
    """If torch.compile's function fails, the forecast warns once and runs eagerly (same values)."""
    def broken(fn, **kw):
        def run(E):
            raise RuntimeError("no compiler here")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    dko = int(hmm.tseq.kko[0])
    fc = ModelForecast(hmm.dyn, dko, hmm.tseq.dt, compile=True)
    E = torch.randn(3, 4, hmm.Nx)
    with pytest.warns(RuntimeWarning, match="running it eagerly"):
        out = fc(E)
    assert fc.compiled is None
    torch.testing.assert_close(out, ModelForecast(hmm.dyn, dko, hmm.tseq.dt)(E), rtol=0, atol=0)


@pytest.mark.slow
def test_compiled_forecast_matches_eager(hmm):
    """torch.compile's forecast (about 20-40 s to compile) gives the eager values to rounding."""
    dko = int(hmm.tseq.kko[0])
    fc = ModelForecast(hmm.dyn, dko, hmm.tseq.dt, compile=True)
    for B in (16, 3):  # dynamic shapes: one compilation
        E = 3 * torch.randn(B, 5, hmm.Nx)
        torch.testing.assert_close(fc(E), fc.eager(E), rtol=1e-5, atol=1e-5)
    assert fc.compiled is not None


def test_windows_whose_spin_up_blew_up_are_left_out(hmm, monkeypatch):
    """A spun-up ensemble that blew up (NaN, or far beyond the climate) starts no window: at 128
    trajectories the untrained increment form diverged on a few of them, and their windows made
    a NaN loss in about one batch in five and a NaN validation loss at every epoch. Here the
    spin-up is replaced by ensembles with one trajectory blown up from its third window on."""
    from dafilters.filters.mnmef import learn

    N = 4
    flt = neutral(MNMEF(N=N, training=dict(n_traj=2, window=6, warmup=1, stride=6, skip=0)), hmm)
    cfg = flt.training
    xx, yy = hmm.simulate(seed=6)
    truth, obs = np.stack([xx[hmm.tseq.kko]] * 2), np.stack([yy] * 2)
    data = learn.training_windows(truth, obs, cfg)
    n_starts = len(data.starts)

    def blown_up(cycle, truth, yy, N, spread, gen, times):
        ens = truth[:, times, None].repeat(1, 1, N, 1).clone()
        ens[1, 2:] = float("nan")
        ens[1, 1, 0, 0] = 1e4  # finite, but no L96 state
        return ens

    monkeypatch.setattr(learn, "spun_up_ensembles", blown_up)
    bxy, byy, r_std = flt.observation_layout(hmm, 0)
    cycle = Cycle(flt.nets, ModelForecast(hmm.dyn, 1, hmm.tseq.dt), TorchObs(hmm.obs, 0), r_std, bxy, byy,
                  flt.spec["scale"])
    kept = np.concatenate([data.train, data.val])  # windows by trajectory, then by start
    bad = int(((kept // n_starts == 1) & (kept % n_starts >= 1)).sum())
    assert bad >= 2
    with pytest.warns(RuntimeWarning, match=f"{bad} of {len(kept)} windows start from"):
        train, val, dropped = learn.round_data(cycle, data, cfg, N, torch.Generator().manual_seed(0))
    assert dropped == bad and len(train[0]) + len(val[0]) == len(kept) - bad and len(val[0])
    assert all(torch.isfinite(t).all() for t in train + val)
    assert not learn.diverged(train[2], train[0][:, 0], flt.spec["scale"]).any()
    # measured from the truth: a model whose states sit far from zero is not "blown up"
    far = torch.full((3, N, 5), 1e3)
    assert not learn.diverged(far, torch.full((3, 5), 1e3), 1.0).any()
    assert learn.diverged(far, torch.zeros(3, 5), 1.0).all()
