"""EnSF: the schedule, the prior scores, the reverse-time solvers, the sampler and the filter."""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

import dafilters as daf
from dafilters.filters.ensf import (
    EnSF,
    NoiseStream,
    damping,
    ensf_sample,
    mixture_prior_score,
    mixture_weights,
    paired_prior_score,
    reverse_step,
    schedule,
    sde_coefficients,
    standard_noise,
)
from mods.LinearGauss import build as linear_gauss


def test_schedule_end_points_and_derivatives():
    eps_a, eps_b = 0.3, 0.02
    assert schedule(0.0, eps_a, eps_b)[:2] == (1.0, eps_b)
    a1, b1, _, _ = schedule(1.0, eps_a, eps_b)
    assert math.isclose(a1, eps_a) and math.isclose(b1, 1.0)
    h = 1e-6
    for t in (0.1, 0.5, 0.9):
        a, b2, dloga, db2 = schedule(t, eps_a, eps_b)
        ap, bp = schedule(t + h, eps_a, eps_b)[:2]
        am, bm = schedule(t - h, eps_a, eps_b)[:2]
        assert math.isclose(dloga, (math.log(ap) - math.log(am)) / (2 * h), rel_tol=1e-6)
        assert math.isclose(db2, (bp - bm) / (2 * h), rel_tol=1e-6)
        # the forward SDE dz = f z dt + g dW keeps Var(z_t | x) = beta_t^2:
        f, g2 = sde_coefficients(t, eps_a, eps_b)
        assert math.isclose(db2, 2 * f * b2 + g2, rel_tol=1e-12)
    assert damping(0.0) == 1.0 and damping(1.0) == 0.0


def test_mixture_score_matches_brute_force_and_pairs_at_one_member():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(6, 9, generator=g, dtype=torch.float64)
    Z = torch.randn(4, 9, generator=g, dtype=torch.float64)
    alpha, beta2 = 0.7, 0.4
    d2 = ((Z[:, None, :] - alpha * X[None]) ** 2).sum(-1)
    W = torch.softmax(-d2 / (2 * beta2), dim=1)
    brute = -(Z[:, None, :] - alpha * X[None]) / beta2
    brute = (W[..., None] * brute).sum(1)
    torch.testing.assert_close(mixture_weights(Z, X, alpha, beta2), W)
    torch.testing.assert_close(mixture_prior_score(Z, X, alpha, beta2), brute)
    # small component blocks give the same weights
    torch.testing.assert_close(mixture_weights(Z, X, alpha, beta2, block_elems=6), W)
    torch.testing.assert_close(mixture_prior_score(Z[:1], X[:1], alpha, beta2),
                               paired_prior_score(Z[:1], X[:1], alpha, beta2))


def test_mixture_weights_accurate_in_float32_at_large_offsets():
    """Large means and many components: the float32 inputs give the float64 weights (the naive
    ``|z|^2 - 2 z.x + |x|^2`` in float32 would lose them to cancellation)."""
    g = torch.Generator().manual_seed(1)
    X = 50 + torch.randn(5, 200_000, generator=g, dtype=torch.float64)
    Z = 0.9 * X[[1, 3, 0]] + 0.05 * torch.randn(3, 200_000, generator=g, dtype=torch.float64)
    W64 = mixture_weights(Z, X, 0.9, 0.05)
    W32 = mixture_weights(Z.float(), X.float(), 0.9, 0.05)
    torch.testing.assert_close(W32.double(), W64, atol=1e-5, rtol=0)
    assert torch.equal(W64.argmax(1), torch.tensor([1, 3, 0]))


@pytest.mark.parametrize("solver", ["sde", "ode"])
def test_reverse_solvers_sample_the_diffused_gaussian(solver):
    """With the exact score of N(m, v) diffused by the schedule, the reverse SDE/ODE from
    z_1 ~ N(alpha_1 m, alpha_1^2 v + beta_1^2) ends at N(m, v + eps_b)."""
    eps_a, eps_b, steps = 0.2, 0.01, 200
    m, v = torch.tensor([1.5, -2.0, 0.0]), torch.tensor([0.25, 2.0, 1.0])
    g = torch.Generator().manual_seed(2)
    M = 20_000
    a1, b1 = schedule(1.0, eps_a, eps_b)[:2]
    Z = a1 * m + (a1**2 * v + b1).sqrt() * torch.randn(M, 3, generator=g, dtype=torch.float64)
    m, v = m.double(), v.double()
    for k in range(steps):
        t = 1 - k / steps
        a, b2 = schedule(t, eps_a, eps_b)[:2]
        S = -(Z - a * m) / (a**2 * v + b2)
        xi = torch.randn(Z.shape, generator=g, dtype=Z.dtype) if solver == "sde" else None
        Z = reverse_step(Z, S, t, 1 / steps, eps_a, eps_b, xi)
    torch.testing.assert_close(Z.mean(0), m, atol=0.03, rtol=0)
    torch.testing.assert_close(Z.var(0), v + eps_b, atol=0, rtol=0.04)


def test_reverse_step_inplace_equals_functional():
    g = torch.Generator().manual_seed(3)
    Z, S, xi = (torch.randn(4, 5, generator=g) for _ in range(3))
    out = reverse_step(Z, S, 0.4, 0.01, 0.5, 0.025, xi)
    Zc = Z.clone()
    assert reverse_step(Zc, S, 0.4, 0.01, 0.5, 0.025, xi, inplace=True) is Zc
    torch.testing.assert_close(out, Zc)


def test_standard_noise_is_independent_of_threads():
    def draw():
        gens = [torch.Generator().manual_seed(s) for s in (5, 6)]
        return standard_noise(torch.empty(2, 300_000), gens)

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = draw()
        torch.set_num_threads(2)
        two = draw()
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, two)
    assert abs(one.mean()) < 0.01 and abs(one.std() - 1) < 0.01


def test_prefetched_noise_gives_the_same_samples():
    """Drawing the next step's noise on a background thread (large CPU blocks) changes nothing."""
    g = torch.Generator().manual_seed(3)
    X = torch.randn(2, 2**18, generator=g)
    y = torch.randn(2**18, generator=g)
    obs = daf.ArctanObs(2**18, 0.01)

    def run(prefetch):
        gens = [torch.Generator().manual_seed(s) for s in (1, 2)]
        return ensf_sample(X, lambda Z: obs.grad_loglik(y, Z, 0), 4, 0.5, 0.025, generators=gens,
                           prefetch_noise=prefetch)

    assert torch.equal(run(True), run(False))
    stream = NoiseStream(torch.empty(2, 2**18), [torch.Generator().manual_seed(7)], prefetch=True)
    a = stream.next().clone()
    b = stream.next(more=False)
    plain = [torch.empty(2, 2**18).normal_(generator=g7) for g7 in [torch.Generator().manual_seed(7)] * 2]
    assert torch.equal(a, plain[0]) and torch.equal(b, plain[1]) and stream.pending is None


def test_sampler_blocks_and_reproducibility():
    """Row blocks (used at large N*Nx) give the same samples as one block when the noise is the
    same, and a seeded run repeats exactly."""
    g = torch.Generator().manual_seed(4)
    X = torch.randn(6, 10, generator=g, dtype=torch.float64)
    y = torch.randn(10, generator=g, dtype=torch.float64)
    obs = daf.ArctanObs(10, 0.1)
    Z1 = torch.randn(6, 10, generator=g, dtype=torch.float64)
    kw = dict(steps=50, eps_a=0.5, eps_b=0.025, solver="ode", Z1=Z1)
    one = ensf_sample(X, lambda Z: obs.grad_loglik(y, Z, 0), **kw)
    blocks = ensf_sample(X, lambda Z: obs.grad_loglik(y, Z, 0), block_elems=20, **kw)
    torch.testing.assert_close(one, blocks)
    sde = [ensf_sample(X, lambda Z: obs.grad_loglik(y, Z, 0), 50, 0.5, 0.025,
                       generators=[torch.Generator().manual_seed(9)]) for _ in range(2)]
    assert torch.equal(sde[0], sde[1])
    assert not torch.equal(sde[0], one)


def kalman_analysis(mu, P, y, H, R):
    K = P @ H.T @ np.linalg.inv(H @ P @ H.T + R)
    return mu + K @ (y - H @ mu), P - K @ H @ P


def test_analysis_mean_approaches_kalman_mean_as_N_grows():
    """One analysis on the linear-Gaussian model from a Gaussian forecast: the error of the
    EnSF (mixture prior score) analysis mean to the Kalman mean shrinks as N grows, down to the
    small bias of the damped likelihood score (about 0.2 posterior standard deviations)."""
    hmm = linear_gauss()
    obs, Nx = hmm.obs, hmm.Nx
    rng = np.random.default_rng(5)
    A = rng.standard_normal((Nx, Nx)) * 0.5
    mu, P = rng.standard_normal(Nx), A @ A.T + 0.3 * np.eye(Nx)
    H, R = obs.linear(mu, 0), obs.noise(0).full
    errs = {}
    for N in (10, 200):
        e = []
        for rep in range(3):
            x = rng.multivariate_normal(mu, P)
            y = obs.sample(x, 0, rng)
            ma, Pa = kalman_analysis(mu, P, y, H, R)
            E = torch.as_tensor(rng.multivariate_normal(mu, P, size=N))
            yt = torch.as_tensor(y)
            Z = ensf_sample(E, lambda Z, yt=yt: obs.grad_loglik(yt, Z, 0), 100, 0.01, 0.01, "mixture",
                            generators=[torch.Generator().manual_seed(rep)])
            e.append(np.sqrt(np.mean((Z.mean(0).numpy() - ma) ** 2) / np.mean(np.diag(Pa))))
        errs[N] = np.mean(e)
    assert errs[200] < 0.5 * errs[10], errs
    assert errs[200] < 0.3, errs


def test_filter_through_the_driver_approaches_the_kalman_filter():
    """EnSF runs beside the Kalman filter through Experiments; its analysis means track the
    Kalman means, closer with a larger ensemble, and its rmse.a approaches the optimum."""
    hmm = linear_gauss(Ko=40, BurnIn=5)
    xx, yy = hmm.simulate(3)
    kf = daf.KalmanFilter().assimilate(hmm, xx, yy, keep=("mean",))
    dist = {}
    for N in (10, 300):
        st = EnSF(N=N, eps_a=0.01, eps_b=0.01, steps=200, prior_score="mixture",
                  dtype="float64").assimilate(hmm, xx, yy, seed=1, keep=("mean",))
        assert not st.diverged
        d = st.keep["mean.a"] - kf.keep["mean.a"]
        dist[N] = np.sqrt(np.mean(d[hmm.tseq.masko] ** 2))
    assert dist[300] < 0.6 * dist[10], dist
    res = daf.Experiments(hmm, [daf.KalmanFilter(), EnSF(N=100, eps_a=0.01, eps_b=0.01, steps=100,
                                                           prior_score="mixture")], seeds=[3]).run()
    df = res.frame()
    kf_rmse, ensf_rmse = df["rmse.a"].to_numpy()
    assert (df["status"] == "ok").all()
    assert ensf_rmse < 1.25 * kf_rmse


def test_filter_validation_and_hyper_parameters():
    for bad in (dict(N=1), dict(eps_a=0.0), dict(eps_b=1.0), dict(steps=0), dict(prior_score="x"),
                dict(solver="rk"), dict(infl_f=0), dict(clip=-1.0), dict(dtype="float16")):
        with pytest.raises(ValueError):
            EnSF(**bad)
    f = EnSF(N=20, device="cpu", dtype="float64")
    assert "device" not in f.params() and "dtype" not in f.params()
    from dafilters.tuning import declared_space
    assert set(declared_space(EnSF)) == {"eps_a", "eps_b", "steps", "infl_f"}


def test_seeded_runs_repeat_and_dtypes_agree():
    from mods.Lorenz96 import bao2024

    hmm = bao2024.build(Nx=40, Ko=29, averaged=10)
    xx, yy = hmm.simulate(0)
    runs = [EnSF(N=10, steps=50).assimilate(hmm, xx, yy, seed=2) for _ in range(2)]
    np.testing.assert_array_equal(runs[0].series["rmse.a"], runs[1].series["rmse.a"])
    r64 = EnSF(N=10, steps=50, dtype="float64").assimilate(hmm, xx, yy, seed=2)
    a32, a64 = runs[0].averages()["rmse.a"], r64.averages()["rmse.a"]
    assert a32 < 1.0 and a64 < 1.0 and abs(a32 - a64) < 0.3


def test_import_dafilters_does_not_import_torch_and_exports_are_lazy():
    code = ("import sys, dafilters; assert 'torch' not in sys.modules; "
            "from dafilters import EnSF; assert 'torch' in sys.modules; print(EnSF.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "dafilters.filters.ensf"


def test_paired_score_leaves_unobserved_components_at_their_members():
    """Why EnSF's spread exceeds the Kalman filter's where few components are observed: the
    paired prior score is isotropic about each member and the likelihood score is zero on the
    unobserved components, so the reverse SDE returns each sample's unobserved components to its
    own member (plus noise of variance about eps_b): no update through the prior's correlations."""
    hmm = linear_gauss(Nx=6, obs_every=3)
    obs = hmm.obs
    rng = np.random.default_rng(0)
    A = rng.standard_normal((6, 6))
    X = torch.as_tensor(rng.multivariate_normal(np.zeros(6), A @ A.T + np.eye(6), size=2000))
    y = torch.as_tensor(obs.sample(np.ones(6), 0, rng))
    Z = ensf_sample(X, lambda Z: obs.grad_loglik(y, Z, 0), 200, 0.5, 0.025,
                    generators=[torch.Generator().manual_seed(1)])
    free = [1, 2, 4, 5]
    d = (Z - X)[:, free]
    assert abs(float(d.mean())) < 0.02 and float(d.var()) < 0.05  # eps_b = 0.025
    assert float((Z - X)[:, 3].mean()) > 0.1  # an observed one moves towards y (1.28)
    Zm = ensf_sample(X, lambda Z: obs.grad_loglik(y, Z, 0), 200, 0.01, 0.01, "mixture",
                     generators=[torch.Generator().manual_seed(1)])
    assert float((Zm - X)[:, free].mean(0).abs().max()) > 0.1  # the mixture score couples them


def test_bao2024_shock_scenario_jumps_the_truth_only():
    from mods.Lorenz96 import bao2024

    hmm, plain = bao2024.build(Nx=40, shock=True), bao2024.build(Nx=40)
    assert hmm.dyn.__class__ is plain.dyn.__class__  # the filters' model has no shocks
    assert hmm.fingerprint() != plain.fingerprint() and len(bao2024.SHOCKS) == 41
    assert bao2024.SHOCKS[0] == (9, 0.2) and bao2024.SHOCKS[-1] == (1451, 0.05)
    xx, _ = hmm.simulate(1)
    xp, _ = plain.simulate(1)
    np.testing.assert_array_equal(xx[:9], xp[:9])
    assert np.abs(xx[9] - xp[9]).max() > 0.1  # 0.2 |x| N(0, 1) after step 9
    short = bao2024.build(Nx=40, Ko=19, averaged=10, shock=True)  # K = 200: the first 6 shocks
    assert [k for k, _ in short.truth_dyn.shocks] == [9, 38, 72, 79, 177, 191]
