import numpy as np
import pytest

import dafilters as daf
from dafilters.filters.particle import (
    bandwidth,
    effective_size,
    jitter,
    normalise_log,
    resample,
    weighted_cov_sqrt,
)
from dafilters.stats import ensemble_metrics, weighted_metrics
from mods import LinearGauss
from mods.Lorenz63 import sakov2012


def test_log_weights_do_not_underflow():
    logw = np.array([-5000.0, -5001.0, -6000.0])
    w = normalise_log(logw)
    np.testing.assert_allclose(w[:2] / w[:2].sum(), [1 / (1 + np.exp(-1)), np.exp(-1) / (1 + np.exp(-1))])
    assert effective_size(np.full(4, 0.25)) == 4


@pytest.mark.parametrize("kind", ["Systematic", "Stratified", "Multinomial"])
def test_resampling_is_unbiased(kind, rng):
    w = np.array([0.1, 0.5, 0.05, 0.35])
    counts = np.zeros(4)
    for _ in range(2000):
        idx = resample(w, kind, rng)
        assert np.all(np.diff(idx) >= 0)
        counts += np.bincount(idx, minlength=4)
    np.testing.assert_allclose(counts / counts.sum(), w, atol=0.02)  # 8000 draws: sd <= 0.006
    with pytest.raises(ValueError, match="unknown resampling"):
        resample(w, "Residual", rng)


def test_jitter_and_weighted_cov(rng):
    E = rng.standard_normal((50, 3))
    w = np.full(50, 1 / 50)
    C12 = weighted_cov_sqrt(E, w)
    np.testing.assert_allclose(C12.T @ C12, np.cov(E.T), atol=1e-12)
    idx = np.array([0, 0, 1] + list(range(2, 49)))
    out = jitter(E, idx, 0.1 * C12, rng)
    assert not np.allclose(out[0], out[1]) and np.allclose(out[2:], E[idx[2:]])
    assert bandwidth(100, 3) == pytest.approx(100 ** (-1 / 7))


def test_jitter_distribution_is_unchanged_by_the_reduced_factor():
    """The jitter drawn through the (Nx, Nx) factor has the distribution of the old (N, Nx) draw:
    N(0, C12^T C12). The factor is exact (F^T F = C12^T C12 to round-off), and over 40 000 draws
    (fixed seed) both forms have mean 0 and that covariance to sampling error, with Gaussian
    standardised projections; each jittered particle takes Nx normal draws, not N."""
    from scipy import stats

    from dafilters.filters.particle import noise_factor

    gen = np.random.default_rng(11)
    N, Nx = 300, 3
    E = gen.standard_normal((N, Nx)) @ np.array([[2.0, 0.5, 0.0], [0.0, 1.0, -0.3], [0.0, 0.0, 0.4]]) + 5
    w = gen.random(N) ** 3
    w /= w.sum()
    C12 = 2.4 * bandwidth(N, Nx) * weighted_cov_sqrt(E, w)
    C = C12.T @ C12
    F = noise_factor(C12)
    assert F.shape == (Nx, Nx)
    np.testing.assert_allclose(F.T @ F, C, rtol=0, atol=1e-13 * np.abs(C).max())
    thin = C12[:2]  # fewer particles than variables: the anomalies are the factor
    assert noise_factor(thin) is thin

    M = 40_000
    idx = np.zeros(M, int)  # every draw jitters particle 0: the noise is out - E[0]
    Cinv12 = np.linalg.inv(np.linalg.cholesky(C))
    for reduce, seed in ((True, 1), (False, 2)):
        Z = jitter(E, idx, C12, np.random.default_rng(seed), duplicates_only=False, reduce=reduce) - E[0]
        assert np.all(np.abs(Z.mean(0)) < 4 * np.sqrt(np.diag(C) / M))
        # covariance: sd of each entry of the sample covariance is sqrt((C_ii C_jj + C_ij^2) / M)
        sd = np.sqrt((np.outer(np.diag(C), np.diag(C)) + C**2) / M)
        assert np.all(np.abs(np.cov(Z.T) - C) < 4 * sd)
        U = Z @ Cinv12.T  # whitened: iid N(0, 1)
        np.testing.assert_allclose(np.cov(U.T), np.eye(Nx), atol=4 * np.sqrt(2 / M))
        for u in U.T:
            assert stats.kstest(u, "norm").pvalue > 1e-3

    # draws: Nx per jittered particle (3 duplicated pairs -> 6 particles)
    idx = np.array([0, 0, 1, 2, 2, 3, 4, 5, 5] + list(range(6, N - 6)))
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    out = jitter(E, idx, C12, r1)
    np.testing.assert_allclose(out[[0, 1, 3, 4, 7, 8]] - E[idx[[0, 1, 3, 4, 7, 8]]],
                               r2.standard_normal((6, Nx)) @ F, rtol=0, atol=1e-14)
    assert r1.random() == r2.random()


def test_apf_point_predictions_reuse_the_noise_free_forecast():
    """Without model noise the APF's point predictions are its bootstrap forecast, the same array
    (so it integrates the particles twice per cycle, not three times), equal to the model's steps
    (to round-off: Lorenz-63's forecast takes the fused RK4); with noise it steps."""
    from dafilters.filters.base import Context
    from dafilters.stats import WeightedEnsemble

    for hmm, noisy in ((sakov2012.HMM, False), (LinearGauss.HMM, True)):
        ctx = Context(hmm=hmm, rng=np.random.default_rng(0), seed=0)
        apf = daf.APF(N=200, reg=1.0)
        prev = apf.initialize(ctx)
        state = apf.forecast(prev, ctx, 0, 5)
        mu = apf.point_predictions(state, prev, 0, 5, ctx)
        stepped = prev.E
        for k in range(5):
            stepped = hmm.dyn.step(stepped, hmm.tseq.tt[k], hmm.tseq.dt)
        np.testing.assert_allclose(mu, stepped, rtol=1e-14, atol=1e-13)
        assert (mu is state.E) is not noisy
        assert isinstance(state, WeightedEnsemble)


def test_lorenz63_step_by_variable_equals_the_row_form():
    """Large Lorenz-63 ensembles are integrated as (3, N) arrays (in-place RK4): the same values
    as the (N, 3) form to round-off (bit-equal on this machine), over 25 steps (one sakov2012
    cycle); single states take the old path."""
    import mods.Lorenz63 as L63
    from dafilters.integrators import rk4, rk4_into

    gen = np.random.default_rng(3)
    for N in (L63.BY_VARIABLE_FROM, 1000):
        E = gen.standard_normal((N, 3)) * 8 + [0, 0, 25]
        new, old = E, E
        for k in range(25):
            new = L63.step(new, 0.01 * k, 0.01)
            old = rk4(L63.dxdt, old, 0.01 * k, 0.01)
        assert new.shape == (N, 3)
        np.testing.assert_allclose(new, old, rtol=1e-13, atol=1e-12)
    np.testing.assert_array_equal(L63.step(E[0], 0.0, 0.01), rk4(L63.dxdt, E[0], 0.0, 0.01))
    X = E.T.copy()
    np.testing.assert_allclose(L63.dxdt_by_variable(X), L63.dxdt(E).T, rtol=1e-14, atol=1e-12)
    # the in-place RK4 does the generic one's operations in the same order: bit-for-bit equal
    np.testing.assert_array_equal(rk4_into(L63.dxdt_by_variable, X, 0.3, 0.01),
                                  rk4(L63.dxdt_by_variable, X, 0.3, 0.01))


def test_weighted_metrics_reduce_to_unweighted(rng):
    E = rng.standard_normal((9, 4))
    x = rng.standard_normal(4)
    r, s, c = weighted_metrics(E, np.full(9, 1 / 9), x)
    r2, s2, c2, _ = ensemble_metrics(E, x)
    assert (r, s, c) == pytest.approx((r2, s2, c2))


@pytest.mark.parametrize("flt", [daf.PartFilt(N=3000, NER=0.5, reg=0.5), daf.APF(N=3000, reg=0.5)])
def test_many_particles_converge_to_kalman_mean(flt):
    hmm = LinearGauss.build(Ko=60, BurnIn=0.0)
    xx, yy = hmm.simulate(seed=4)
    kf = daf.KalmanFilter().assimilate(hmm, xx, yy, keep=("mean", "cov"))
    pf = flt.assimilate(hmm, xx, yy, seed=4, keep=("mean",))
    sd = np.sqrt(np.diagonal(kf.keep["cov.a"], axis1=1, axis2=2))
    z = (pf.keep["mean.a"] - kf.keep["mean.a"]) / sd
    assert np.sqrt(np.mean(z**2)) < 0.15
    small = type(flt)(N=30).assimilate(hmm, xx, yy, seed=4, keep=("mean",))
    z30 = (small.keep["mean.a"] - kf.keep["mean.a"]) / sd
    assert np.sqrt(np.mean(z30**2)) > np.sqrt(np.mean(z**2))


def test_partfilt_on_lorenz63_matches_dapper():
    """DAPPER's PartFilt(N=100, reg=2.4, NER=0.3) on sakov2012 gives 0.36-0.40 on seeds that do
    not lose track (docs/design.md, Reference figures)."""
    hmm = sakov2012.HMM.replace(tseq=dict(Ko=3000))
    res = daf.Experiments(hmm, daf.PartFilt(N=100, reg=2.4, NER=0.3), seeds=[1, 2]).run(progress=False)
    rmse = [r["rmse.a"] for r in res.records]
    assert all(0.33 < v < 0.43 for v in rmse), rmse


def test_bad_particle_settings():
    with pytest.raises(ValueError, match="unknown resampling"):
        daf.PartFilt(resampl="Residual")
    with pytest.raises(ValueError, match="NER"):
        daf.PartFilt(NER=0)
    with pytest.raises(ValueError, match="N must be"):
        daf.APF(N=1)
