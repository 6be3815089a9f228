"""LD-EnSF (latent dynamics, LSTM observation encoder, EnSF in the latent space), the velocity-probe
observation operator, Kolmogorov flow with an unknown Reynolds number and the xiao2026 setting
(tiny grids, tiny trainings)."""

import numpy as np
import pytest
import torch
from conftest import require_extra

import dafilters as daf
from dafilters.filters.ldensf import (
    FieldDecoder,
    FourierFeatures,
    LatentODE,
    LDEnSF,
    LDEnSFTraining,
    history_tensor,
    latent_score,
)
from dafilters.integrators import rk4_steps
from dafilters.observations import (
    VelocityProbesObs,
    probe_lattice,
    velocity_probe_matrix,
    vorticity_to_velocity,
)

L = 2 * np.pi
n = 16


def analytic_flow(n: int):
    """psi = sin(x) cos(2y): vorticity 5 sin(x) cos(2y) on the grid, and the exact velocity."""
    x = L * np.arange(n) / n
    X, Y = np.meshgrid(x, x, indexing="ij")
    w = (5 * np.sin(X) * np.cos(2 * Y)).ravel()

    def uv(p):
        return -2 * np.sin(p[:, 0]) * np.sin(2 * p[:, 1]), -np.cos(p[:, 0]) * np.cos(2 * p[:, 1])

    return w, uv


# -- the velocity observation operator ---------------------------------------------------------


@pytest.mark.parametrize("on_grid", [False, True])
def test_velocity_probes_are_exact_for_a_known_streamfunction(on_grid):
    w, uv = analytic_flow(n)
    obs = VelocityProbesObs(n, noise=0.01, probes=10, on_grid=on_grid)
    assert obs.Ny(0) == 200 and obs.H.shape == (200, n * n)
    pts = probe_lattice(10, n if on_grid else None)
    u, v = uv(pts)
    np.testing.assert_allclose(obs(w, 0), np.concatenate([u, v]), atol=1e-12)
    loc = obs.locations(0, None)
    assert loc.shape == (200, 2)
    np.testing.assert_array_equal(loc[:100], pts)
    np.testing.assert_array_equal(loc[100:], pts)
    if on_grid:  # lattice points moved onto grid points
        assert np.allclose(np.round(pts * n / L), pts * n / L)
    else:
        np.testing.assert_allclose(pts[11], [L / 10, L / 10])


def test_velocity_matrix_agrees_with_the_grid_velocity_and_ignores_parameters(rng):
    W = rng.standard_normal((3, n * n))
    V = vorticity_to_velocity(W, n)  # (3, 2, n, n)
    pts = np.array([[L * 3 / n, L * 5 / n], [0.0, L * 15 / n]])
    H = velocity_probe_matrix(n, pts)
    expect = np.stack([V[:, 0, 3, 5], V[:, 0, 0, 15], V[:, 1, 3, 5], V[:, 1, 0, 15]], 1)
    np.testing.assert_allclose(W @ H.T, expect, atol=1e-12)
    obs = VelocityProbesObs(n, noise=0.01, points=pts, n_params=1)
    E = np.hstack([W, rng.standard_normal((3, 1))])
    np.testing.assert_allclose(obs(E, 0), W @ H.T, atol=1e-12)
    assert np.all(obs.grad_loglik(np.zeros(4), E, 0)[:, -1] == 0)
    with pytest.raises(ValueError, match=r"shape \(P, 2\)"):
        velocity_probe_matrix(n, np.zeros(3))
    with pytest.raises(ValueError, match="not 16 x 16"):
        vorticity_to_velocity(np.zeros(10), n)


# -- Kolmogorov flow with the Reynolds number in the state -------------------------------------


@pytest.fixture(scope="module")
def kolmogorov():
    require_extra("kolmogorov", "jax", "jax_cfd")
    import mods.Kolmogorov as K

    return K


def test_per_member_viscosity(kolmogorov):
    x = kolmogorov.spun_up_state(n, T=2.0)
    dyn = kolmogorov.KolmogorovRe(n)
    assert dyn.Nx == n * n + 1 and dyn.coords.shape == (n * n + 1, 2) and dyn.n_params == 1
    E = np.stack([np.append(x, np.log(1000.0)), np.append(x, np.log(600.0))])
    out = dyn.advance(E, 0.01, 10)
    for e, re in zip(out, (1000.0, 600.0)):
        ref = kolmogorov.Kolmogorov(n, viscosity=1 / re).advance(x, 0.01, 10)
        np.testing.assert_allclose(e[:-1], ref, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(out[:, -1], E[:, -1])
    assert np.abs(out[0, :-1] - out[1, :-1]).max() > 1e-3
    with pytest.raises(ValueError, match="size 257"):
        dyn.advance(np.zeros((2, n * n)), 0.01, 1)


def test_xiao2026_builds_and_simulates(kolmogorov):
    from mods.Kolmogorov import xiao2026

    hmm = xiao2026.build(n=n, Ko=2)
    assert hmm.Nx == n * n + 1 and hmm.obs.Ny(0) == 200
    assert hmm.tseq.dt * hmm.tseq.dko == pytest.approx(0.2)
    xx, yy = hmm.simulate(0)
    assert xx.shape == (hmm.tseq.K + 1, n * n + 1) and yy.shape == (3, 200)
    assert np.all(np.isfinite(xx)) and np.all(np.isfinite(yy))
    assert np.all(xx[:, -1] == xx[0, -1]) and 500 <= np.exp(xx[0, -1]) <= 1500
    assert np.abs(yy - hmm.obs(xx[hmm.tseq.kko], 0)).max() < 0.6  # sigma 0.1
    E = hmm.prior.sample(400, np.random.default_rng(0))
    assert np.exp(E[:, -1]).min() >= 500 and np.exp(E[:, -1]).max() <= 1500
    assert abs(E[:, -1].mean() - hmm.prior.mean[-1]) < 0.05


def test_simulate_at_obs_matches_the_twin_experiments(kolmogorov):
    from dafilters.nn.data import simulate_at_obs
    from mods.Kolmogorov import xiao2026

    hmm = xiao2026.build(n=n, Ko=1, dko=5)
    xx, yy = simulate_at_obs(hmm, 2, seed=3)
    assert xx.shape == (2, 3, hmm.Nx) and yy.shape == (2, 2, 200)
    for i in range(2):
        x_ref, y_ref = hmm.simulate(3 * 1_000_003 + 10**6 + i)
        np.testing.assert_allclose(xx[i], x_ref[[0, 5, 10]], rtol=0, atol=1e-10)
        np.testing.assert_allclose(yy[i], y_ref, rtol=0, atol=1e-10)


# -- the networks ------------------------------------------------------------------------------


def test_network_shapes_and_pieces():
    ff = FourierFeatures((L, L), kmax=3)
    assert ff.size == 2 * 24  # (7*7 - 1) / 2 wave vectors
    x = torch.rand(50, 2) * L
    torch.testing.assert_close(ff(x + torch.tensor([L, 0.0])), ff(x), atol=1e-4, rtol=0)  # periodic
    dec = FieldDecoder(6, (L, L), kmax=3, n_basis=10, width=16, depth=2)
    basis = dec.basis(x)
    assert basis.shape == (50, 11) and dec(torch.randn(4, 7, 6), basis).shape == (4, 7, 50)
    ode = LatentODE(6, 1, width=16, depth=2, substeps=3)
    z, p = torch.randn(5, 6), torch.randn(5, 1)
    torch.testing.assert_close(ode(z, p), z)  # starts as the identity flow
    assert ode.rollout(z, p, 4).shape == (5, 5, 6)
    # the shared RK4 on torch tensors: dz/dt = -z over one unit gives exp(-1) to 1e-6
    torch.testing.assert_close(rk4_steps(lambda s, t: -s, torch.ones(3, dtype=torch.float64), 0.0, 1.0, 10),
                               torch.full((3,), np.exp(-1.0), dtype=torch.float64), atol=1e-6, rtol=0)
    # tau counts observation intervals: with f(z, p) = -z, two intervals give exp(-2)

    class Decay(torch.nn.Module):
        def forward(self, zp):
            return -zp[..., :6]

    ode.f = Decay()
    torch.testing.assert_close(ode(torch.ones(1, 6), torch.zeros(1, 1), intervals=2),
                               torch.full((1, 6), np.exp(-2.0)), atol=1e-4, rtol=0)
    H = history_tensor([torch.ones(3), 2 * torch.ones(3)], 4)
    assert H.shape == (4, 4) and H[:2].abs().sum() == 0 and H[2:, -1].tolist() == [1.0, 1.0]
    assert H[3, 0] == 2 and history_tensor([torch.ones(3)] * 6, 4).shape == (4, 4)
    torch.testing.assert_close(latent_score(torch.zeros(2, 3), torch.ones(3), torch.full((3,), 4.0)),
                               torch.full((2, 3), 0.25))


def test_validation():
    with pytest.raises(ValueError, match="N must be"):
        LDEnSF(N=1)
    with pytest.raises(ValueError, match="training latent_dim must be an integer >= 1"):
        LDEnSF(training={"latent_dim": 0})
    with pytest.raises(ValueError, match="training points"):
        LDEnSF(training={"points": 0})
    with pytest.raises(ValueError, match="unknown training settings"):
        LDEnSF(training={"latentdim": 8})
    with pytest.raises(ValueError, match="model_noise"):
        LDEnSF(model_noise=-1.0)
    with pytest.raises(ValueError, match="infl_f"):
        LDEnSF(infl_f=0.0)
    with pytest.raises(ValueError, match="prior_score"):
        LDEnSF(prior_score="nope")
    with pytest.raises(ValueError, match="obs_infl"):
        LDEnSF(obs_infl=0.0)
    with pytest.raises(RuntimeError, match="not trained"):
        LDEnSF().save("x.pt")


# -- training, saving, loading, assimilating ---------------------------------------------------


def test_settings_hyper_parameters_and_search_space():
    from dafilters.tuning import declared_space, resolve_space

    flt = LDEnSF(training={"minutes": 5, "latent_dim": 8})
    assert isinstance(flt.training, LDEnSFTraining) and flt.training.minutes == 5
    assert flt.training.latent_dim == 8 and flt.training.n_basis == LDEnSF.TRAINING.n_basis
    assert "training" in flt.non_hyper and "infl" not in flt.settings()
    space = resolve_space(flt)  # every declared kind is valid (model_noise was ('float', ...))
    assert set(space) == {"eps_a", "eps_b", "steps", "infl_f", "obs_infl", "model_noise"}
    assert space["model_noise"] == ("lin", 0.0, 3.0)
    assert declared_space(daf.EnSF)["infl_f"] == space["infl_f"] == declared_space(daf.SSLS)["infl_f"]


TINY = dict(N=6, steps=10,
            training=dict(latent_dim=6, n_basis=12, kmax=3, width=24, enc_width=24, lstm_hidden=12,
                          history=3, n_traj=3, rollout=2, epochs=3, lstm_epochs=3, batch_size=16))


@pytest.fixture(scope="module")
def trained(kolmogorov, tmp_path_factory):
    from mods.Kolmogorov import xiao2026

    hmm = xiao2026.build(n=n, Ko=7, dko=4)
    flt = LDEnSF(**TINY).fit(hmm, progress=False, cache_dir=tmp_path_factory.mktemp("data"))
    return hmm, flt


def test_tiny_training_save_load_assimilate(trained, tmp_path):
    hmm, flt = trained
    dyn = flt.training_log["dynamics"]
    assert len(dyn["train_loss"]) == 3 and np.isfinite(dyn["val_loss"]).all()
    assert len(flt.training_log["lstm"]["resid_std"]) == TINY["training"]["latent_dim"] + 1
    assert flt.spec["n_params"] == 1 and flt.spec["n_field"] == n * n and flt.spec["dko"] == 4
    xx, yy = hmm.simulate(2)
    stats = flt.assimilate(hmm, xx, yy, seed=2)
    a = stats.averages()
    assert np.isfinite(a["rmse.a"]) and np.isfinite(a["rmse.f"]) and not stats.diverged
    flt.save(tmp_path / "ldensf.pt")
    loaded = daf.Filter.load(tmp_path / "ldensf.pt")
    assert isinstance(loaded, LDEnSF) and loaded.spec == flt.spec
    assert loaded.assimilate(hmm, xx, yy, seed=2).averages()["rmse.a"] == a["rmse.a"]
    # the decoded analysis is a state: vorticity field and log Re
    from dafilters.filters.base import Context

    ctx = Context(hmm=hmm, rng=np.random.default_rng(0), seed=0)
    E = loaded.estimate(loaded.initialize(ctx))
    assert E.shape == (loaded.N, hmm.Nx) and np.all(np.isfinite(E))


def test_runs_in_experiments_and_refuses_other_hmms(trained, tmp_path):
    from mods.Kolmogorov import xiao2026

    hmm, flt = trained
    res = daf.Experiments(hmm, [flt, daf.EnSF(N=6, steps=50)], seeds=[5]).run(progress=False)
    frame = res.frame()
    assert list(frame["status"]) == ["ok", "ok"] and np.isfinite(frame["rmse.a"]).all()
    flt.save(tmp_path / "f.pt")
    loaded = daf.Filter.load(tmp_path / "f.pt")
    other = xiao2026.build(n=n, probes=5, Ko=7, dko=4)
    with pytest.raises(ValueError, match="Ny=200.*has Ny=50"):
        loaded.assimilate(other, *other.simulate(0))
    with pytest.raises(ValueError, match="dko=5"):
        loaded.check_hmm(xiao2026.build(n=n, Ko=7, dko=5))


def test_reconstruction_floor_is_decode_of_encode(trained):
    hmm, flt = trained
    xx, _ = hmm.simulate(3)
    X = xx[hmm.tseq.kko]
    floor = flt.reconstruction_error(hmm, X, batch=3)
    assert set(floor) == {"rmse", "rel_rmse", "param_err"}
    assert all(v.shape == (len(X),) and np.isfinite(v).all() for v in floor.values())
    with torch.no_grad():
        basis = flt.nets["ldnet"].decoder.basis(torch.as_tensor(hmm.dyn.coords[:n * n], dtype=torch.float32))
        R = flt.decode(flt.encode(X), basis)
    e = R[:, :-1] - X[:, :-1]
    np.testing.assert_allclose(floor["rmse"], np.sqrt(np.mean(e**2, 1)), rtol=1e-6)
    np.testing.assert_allclose(floor["rel_rmse"], floor["rmse"] / np.sqrt(np.mean(X[:, :-1] ** 2, 1)),
                               rtol=1e-9)
    np.testing.assert_allclose(floor["param_err"], np.abs(R[:, -1] - X[:, -1]), rtol=1e-6)


def test_reference_regime_has_one_initial_condition(kolmogorov):
    """vort_std=0: the LD-EnSF reference's data (one initial condition, only Re varies)."""
    from mods.Kolmogorov import xiao2026

    hmm = xiao2026.build(n=n, Ko=2, vort_std=0)
    E = hmm.prior.sample(5, np.random.default_rng(0))
    np.testing.assert_array_equal(E[:, :-1], np.broadcast_to(E[0, :-1], E[:, :-1].shape))
    assert np.ptp(E[:, -1]) > 0
    assert "vort_std=0" in hmm.name and hmm.fingerprint() != xiao2026.build(n=n, Ko=2).fingerprint()


# -- several fields: the decoder's channels, the layout, per-field standardisation -------------------


def test_decoder_channels_share_coefficients_and_gather_components():
    """With C fields the basis is field-major (row c * Q + q) and the gathered basis of random
    state components (field idx // Q at point idx % Q) equals those rows; one channel is the old
    single-field basis."""
    torch.manual_seed(0)
    dec = FieldDecoder(6, (L, L), kmax=3, n_basis=10, width=16, depth=2, channels=3)
    x = torch.rand(20, 2) * L
    full = dec.basis(x)
    assert full.shape == (60, 11) and dec(torch.randn(4, 6), full).shape == (4, 60)
    idx = torch.tensor([0, 19, 20, 33, 59, 41])
    torch.testing.assert_close(dec.basis(x[idx % 20], idx // 20), full[idx])
    one = FieldDecoder(6, (L, L), kmax=3, n_basis=10, width=16, depth=2)
    zero = torch.zeros(6, dtype=torch.long)
    torch.testing.assert_close(one.basis(x[idx % 20], zero), one.basis(x)[idx % 20])


def test_field_layout_of_one_and_several_fields():
    from dafilters.filters.ldensf import field_layout
    from mods.Kolmogorov import xiao2026

    hmm = xiao2026.build(n=n, Ko=3)
    points, periods, C = field_layout(hmm.dyn, n * n)
    assert points.shape == (n * n, 2) and periods == (L, L) and C == 1

    class ThreeFields:
        def field_points(self):
            return np.zeros((5, 2)), (1.0, 2.0), 3

    assert field_layout(ThreeFields(), 15)[1:] == ((1.0, 2.0), 3)
    with pytest.raises(ValueError, match="3 field.*5 points.*16 field components"):
        field_layout(ThreeFields(), 16)

    class Ring:
        domain, coords = None, np.zeros((4, 1))

    with pytest.raises(ValueError, match="periodic 2-D domain"):
        field_layout(Ring(), 4)


def test_standardise_is_per_field_and_inverted():
    from dafilters.filters.ldensf import LatentDynamics

    net = LatentDynamics(12, 1, (L, L), latent_dim=4, kmax=2, n_basis=4, width=8, depth=1, substeps=1,
                         enc_width=8, channels=3)
    net.field_mean.copy_(torch.tensor([1.0, -2.0, 100.0]))
    net.field_std.copy_(torch.tensor([2.0, 0.5, 400.0]))
    F = torch.tensor([[3.0] * 4 + [-1.5] * 4 + [500.0] * 4])
    torch.testing.assert_close(net.standardise(F), torch.ones(1, 12))
    torch.testing.assert_close(net.unstandardise(net.standardise(F)), F)
    with pytest.raises(ValueError, match="13 field components do not split into 3 fields"):
        LatentDynamics(13, 1, (L, L), 4, 2, 4, 8, 1, 1, 8, channels=3)


def test_shallow_water_three_fields_tiny_training_and_assimilation(tmp_path):
    """LD-EnSF on the shallow-water setting: three fields on the (longitude, colatitude) grid,
    each standardised by its own scalars (u_theta's spread is ~100x smaller than h's), decoded as
    a state; a tiny training runs, saves, loads and assimilates with finite errors."""
    require_extra("atmos", "dedalus", "mpi4py")
    from mods.ShallowWater import xiao2026

    hmm = xiao2026.build(Nphi=16, Ntheta=8, every=(4, 2), Ko=3)
    flt = LDEnSF(**TINY).fit(hmm, progress=False, cache_dir=tmp_path / "data")
    assert flt.spec["channels"] == 3 and flt.spec["n_field"] == 3 * 16 * 8 and flt.spec["n_params"] == 2
    net = flt.nets["ldnet"]
    xx, yy = hmm.simulate(4)
    F = xx[:, :flt.spec["n_field"]].reshape(-1, 3, 16 * 8)
    assert net.field_std[2] > 10 * net.field_std[1]  # h (m) against u_theta (m/s): own scalars
    Z = net.standardise(torch.as_tensor(xx[:, :flt.spec["n_field"]], dtype=torch.float32)).reshape(-1, 3, 128)
    assert Z.abs().mean() < 5 and F.std() > 50  # standardised per field, unlike the raw state
    floor = flt.reconstruction_error(hmm, xx[hmm.tseq.kko])
    assert np.isfinite(floor["rel_rmse"]).all()
    stats = flt.assimilate(hmm, xx, yy, seed=4)
    assert np.isfinite(stats.averages()["rmse.a"]) and not stats.diverged
    flt.save(tmp_path / "sw.pt")
    loaded = daf.Filter.load(tmp_path / "sw.pt")
    assert loaded.spec == flt.spec
    assert loaded.assimilate(hmm, xx, yy, seed=4).averages()["rmse.a"] == stats.averages()["rmse.a"]


# -- the latent likelihood taken implicitly ------------------------------------------------------------


def _gens(seed=3):
    return [torch.Generator().manual_seed(seed)]


def test_implicit_latent_sample_matches_ensf_without_likelihood_and_is_stable_when_sharp():
    from dafilters.filters.ensf import ensf_sample
    from dafilters.filters.ldensf import implicit_latent_sample

    torch.manual_seed(0)
    X = torch.randn(12, 5)
    v_hat = torch.full((5,), 0.7)
    # a negligible likelihood: the same schedule, prior score and noise draws as EnSF's sampler
    wide = torch.full((5,), 1e12)
    for prior in ("paired", "mixture"):
        ours = implicit_latent_sample(X, v_hat, wide, 50, 0.5, 0.025, prior, _gens())
        ref = ensf_sample(X, lambda Z: latent_score(Z, v_hat, wide), 50, 0.5, 0.025, prior, "sde", None,
                          _gens())
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    # a sharp likelihood (sigma 1e-3): the explicit step diverges, the implicit one lands on v_hat
    sharp = torch.full((5,), 1e-6)
    with np.errstate(all="ignore"):
        explicit = ensf_sample(X, lambda Z: latent_score(Z, v_hat, sharp), 100, 0.5, 0.025, "paired", "sde",
                               None, _gens())
    assert not torch.isfinite(explicit).all() or explicit.abs().max() > 1e6
    implicit = implicit_latent_sample(X, v_hat, sharp, 100, 0.5, 0.025, "paired", _gens())
    torch.testing.assert_close(implicit, v_hat.expand(12, 5), atol=1e-2, rtol=0)
    # a moderate likelihood: both steps converge to the same samples as the steps shrink
    mid = torch.full((5,), 0.05)
    diffs = []
    for steps in (100, 400):
        a = implicit_latent_sample(X, v_hat, mid, steps, 0.5, 0.025, "paired", _gens())
        b = ensf_sample(X, lambda Z: latent_score(Z, v_hat, mid), steps, 0.5, 0.025, "paired", "sde", None,
                        _gens())
        diffs.append(float((a - b).abs().max()))
    assert diffs[1] < diffs[0] / 2 and diffs[1] < 0.05


def test_likelihood_step_option(trained):
    with pytest.raises(ValueError, match="likelihood_step"):
        LDEnSF(likelihood_step="nope")
    hmm, flt = trained
    xx, yy = hmm.simulate(2)
    import dataclasses

    sharp = dataclasses.replace(flt, obs_infl=1e-3, likelihood_step="implicit")
    sharp.spec, sharp.nets, sharp.training_log = flt.spec, flt.nets, flt.training_log
    stats = sharp.assimilate(hmm, xx, yy, seed=2)
    assert np.isfinite(stats.averages()["rmse.a"]) and not stats.diverged


def test_a_constant_field_is_standardised_without_dividing_by_zero():
    """set_scales floors each field's standard deviation (1e-6, as the parameters'): a field that
    never changes standardises to zeros, not NaN."""
    from types import SimpleNamespace

    from dafilters.filters.ldensf import LatentDynamics, ObsLSTM
    from dafilters.filters.ldensf.learn import set_scales

    net = LatentDynamics(8, 1, (L, L), 4, 2, 4, 8, 1, 1, 8, channels=2)
    xx = np.random.default_rng(0).standard_normal((2, 5, 9))
    xx[..., 4:8] = 7.0  # the second field is constant
    hmm = SimpleNamespace(prior=SimpleNamespace(sample=lambda n, rng: rng.standard_normal((n, 9))))
    set_scales({"ldnet": net, "lstm": ObsLSTM(3, 5, 4, 1)}, hmm, xx, np.zeros((2, 4, 3)), 8, 0)
    assert net.field_mean[1] == 7.0 and net.field_std[1] == pytest.approx(1e-6)
    Z = net.standardise(torch.as_tensor(xx[0, :, :8], dtype=torch.float32))
    assert torch.isfinite(Z).all() and (Z[:, 4:] == 0).all()
