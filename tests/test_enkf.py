import numpy as np
import pytest

import dafilters as daf
from dafilters.filters.baseline import kalman_update
from dafilters.filters.enkf import (
    UPDATES,
    denkf_update,
    pertobs_update,
    post_process,
    random_rotation,
    rotate_anomalies,
    sqrt_update,
)
from dafilters.gaussian import Covariance
from mods import LinearGauss
from mods.Lorenz96 import sakov2008


def setup_problem(rng, N=8, Nx=5, Ny=3, full_R=False):
    E = rng.standard_normal((N, Nx)) + 2
    H = rng.standard_normal((Ny, Nx))
    Rfull = np.array([[1.0, 0.3, 0], [0.3, 1, 0.2], [0, 0.2, 1]])
    Rm = Rfull if full_R else np.diag([0.5, 1.0, 2.0][:Ny])
    y = rng.standard_normal(Ny)
    return E, H, Covariance(Rm), y


def ens_kalman(E, H, R, y):
    """The Kalman analysis of the ensemble's own mean and covariance."""
    mu, P = E.mean(0), np.cov(E.T, ddof=1)
    return kalman_update(mu, P, y - H @ mu, H, R.full)


@pytest.mark.parametrize("full_R", [False, True])
def test_sqrt_update_is_exact_kalman(rng, full_R):
    E, H, R, y = setup_problem(rng, full_R=full_R)
    Ea = sqrt_update(E, E @ H.T, y, R)
    mu, P = ens_kalman(E, H, R, y)
    np.testing.assert_allclose(Ea.mean(0), mu, atol=1e-10)
    np.testing.assert_allclose(np.cov(Ea.T, ddof=1), P, atol=1e-10)


def test_denkf_mean_is_kalman_and_cov_approximate(rng):
    E, H, R, y = setup_problem(rng)
    Ea = denkf_update(E, E @ H.T, y, R)
    mu, P = ens_kalman(E, H, R, y)
    np.testing.assert_allclose(Ea.mean(0), mu, atol=1e-10)
    # DEnKF: Pa = (I - KH) P (I - KH/2)^T... close to, and not below, the Kalman covariance
    assert np.trace(np.cov(Ea.T)) >= np.trace(P) - 1e-10


def test_pertobs_mean_unbiased(rng):
    E, H, R, y = setup_problem(rng, N=20)
    mu, _ = ens_kalman(E, H, R, y)
    means = [pertobs_update(E, E @ H.T, y, R, rng).mean(0) for _ in range(2)]
    for m in means:  # centred perturbations: the mean update is exactly Kalman's
        np.testing.assert_allclose(m, mu, atol=1e-10)


@pytest.mark.parametrize("N, Nx, Ny, full_R", [(400, 6, 2, False), (20, 5, 3, True), (8, 5, 3, False),
                                             (3, 5, 4, True), (10, 3, 3, False)])
def test_obs_space_forms_equal_ensemble_space_forms(N, Nx, Ny, full_R):
    """The (Ny, Ny) forms give the same analysis ensembles as the (N, N) ones, to round-off, also
    when forced where Ny >= N and with a rank-deficient S (an observed variable without spread)."""
    rng = np.random.default_rng(N + Nx + Ny)
    E = rng.standard_normal((N, Nx)) + 2
    H = rng.standard_normal((Ny, Nx))
    if full_R:
        B = rng.standard_normal((Ny, Ny))
        R = Covariance(B @ B.T + np.eye(Ny))
    else:
        R = Covariance(rng.random(Ny) + 0.5)
    y = rng.standard_normal(Ny)
    for Eo in (E @ H.T, np.column_stack([E @ H[1:].T, np.full(N, 3.0)])):
        scale = np.abs(E).max()
        for space in ("obs", "ensemble"):
            assert np.isfinite(sqrt_update(E, Eo, y, R, space=space)).all()
        np.testing.assert_allclose(sqrt_update(E, Eo, y, R, space="obs"),
                                   sqrt_update(E, Eo, y, R, space="ensemble"), rtol=0, atol=1e-13 * scale)
        np.testing.assert_allclose(denkf_update(E, Eo, y, R, space="obs"),
                                   denkf_update(E, Eo, y, R, space="ensemble"), rtol=0, atol=1e-13 * scale)
        np.testing.assert_allclose(
            pertobs_update(E, Eo, y, R, np.random.default_rng(1), space="obs"),
            pertobs_update(E, Eo, y, R, np.random.default_rng(1), space="ensemble"),
            rtol=0, atol=1e-13 * scale)


def test_obs_space_is_chosen_when_it_is_smaller(monkeypatch):
    from dafilters.filters import enkf

    assert enkf.use_obs_space(400, 2) and not enkf.use_obs_space(40, 40) and not enkf.use_obs_space(10, 30)
    assert enkf.use_obs_space(10, 30, "obs") and not enkf.use_obs_space(400, 2, "ensemble")
    with pytest.raises(ValueError, match="space must be"):
        enkf.use_obs_space(4, 2, "state")
    # whole runs on a linear model (no chaos to amplify round-off): the forms agree to ~1e-12
    hmm = LinearGauss.build(Nx=6, obs_every=3, Ko=40)
    xx, yy = hmm.simulate(seed=3)
    for upd_a in UPDATES:
        means = []
        for space in ("obs", "ensemble"):
            monkeypatch.setattr(enkf, "FORCE_SPACE", space)
            means.append(daf.EnKF(upd_a, N=50, infl=1.02).assimilate(hmm, xx, yy, seed=3, keep=("mean",))
                         .keep["mean.a"])
        np.testing.assert_allclose(means[0], means[1], rtol=0, atol=1e-11)


def test_random_rotation(rng):
    Om = random_rotation(6, rng)
    np.testing.assert_allclose(Om @ Om.T, np.eye(6), atol=1e-12)
    np.testing.assert_allclose(Om @ np.ones(6), np.ones(6), atol=1e-12)
    assert not np.allclose(Om, np.eye(6))


def test_random_rotation_is_the_rotation_in_the_basis_with_ones():
    """Omega = V diag(1, Q) V^T with V's first column 1/sqrt(N) and Q the sign-corrected QR factor
    of the (N-1, N-1) draw; rotate_anomalies applies the same Omega (same draws) without forming it."""
    N = 7
    Om = random_rotation(N, np.random.default_rng(5))
    Z = np.random.default_rng(5).standard_normal((N - 1, N - 1))
    Q, Rq = np.linalg.qr(Z)
    M = np.eye(N)
    M[:, 0] = 1.0
    V = np.linalg.qr(M)[0]
    B = np.eye(N)
    B[1:, 1:] = Q * np.sign(np.diag(Rq))
    np.testing.assert_allclose(Om, V @ B @ V.T, rtol=0, atol=1e-14)
    E = np.random.default_rng(6).standard_normal((N, 4))
    A = E - E.mean(0)
    np.testing.assert_allclose(rotate_anomalies(A, np.random.default_rng(5)), Om @ A, rtol=0, atol=1e-14)


def test_post_process(rng):
    E = rng.standard_normal((6, 4))
    out = post_process(E, 1.1, True, rng)
    np.testing.assert_allclose(out.mean(0), E.mean(0), atol=1e-12)
    np.testing.assert_allclose(np.cov(out.T), 1.21 * np.cov(E.T), atol=1e-12)
    assert post_process(E, 1.0, False, rng) is E


@pytest.mark.parametrize("upd_a", ["Sqrt", "PertObs"])
def test_large_ensemble_matches_kalman_filter(upd_a):
    """With N = 500 the EnKF's analysis mean and covariance are those of the exact KF up to
    sampling error (O(1/sqrt(N)) of the KF standard deviation)."""
    hmm = LinearGauss.build(Ko=300)
    xx, yy = hmm.simulate(seed=1)
    kf = daf.KalmanFilter().assimilate(hmm, xx, yy, keep=("mean", "cov"))
    en = daf.EnKF(upd_a, N=500).assimilate(hmm, xx, yy, seed=1, keep=("mean", "cov"))
    mask = hmm.tseq.masko
    sd = np.sqrt(np.diagonal(kf.keep["cov.a"], axis1=1, axis2=2))[mask]
    z = (en.keep["mean.a"][mask] - kf.keep["mean.a"][mask]) / sd
    tol = 3.0 if upd_a == "PertObs" else 2.0  # PertObs adds observation-perturbation noise
    assert np.sqrt(np.mean(z**2)) < tol / np.sqrt(500) * 3  # RMS of standardised mean errors
    rel = np.linalg.norm(en.keep["cov.a"][mask] - kf.keep["cov.a"][mask], axis=(1, 2)) / np.linalg.norm(
        kf.keep["cov.a"][mask], axis=(1, 2))
    assert np.mean(rel) < 0.12
    # and a small ensemble is visibly worse: the test can fail
    small = daf.EnKF(upd_a, N=5).assimilate(hmm, xx, yy, seed=1, keep=("mean",))
    z5 = (small.keep["mean.a"][mask] - kf.keep["mean.a"][mask]) / sd
    assert np.sqrt(np.mean(z5**2)) > 2 * np.sqrt(np.mean(z**2))


@pytest.mark.parametrize("kwargs, match", [
    (dict(upd_a="Serial"), "unknown EnKF update"),
    (dict(N=1), "N must be an integer >= 2"),
    (dict(N=2.5), "N must be an integer"),
    (dict(infl=0.0), "inflation must be positive"),
])
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        daf.EnKF(**kwargs)


def test_bad_observations_are_named():
    hmm = LinearGauss.build(Ko=20)
    xx, yy = hmm.simulate(0)
    enkf = daf.EnKF("Sqrt", N=10)
    with pytest.raises(ValueError, match=r"yy\[0\] has shape \(4,\), expected \(3,\)"):
        enkf.assimilate(hmm, xx, np.hstack([yy, yy[:, :1]]))
    bad = yy.copy()
    bad[7, 1] = np.nan
    with pytest.raises(ValueError, match=r"yy\[7\] contains NaN"):
        enkf.assimilate(hmm, xx, bad)
    with pytest.raises(ValueError, match="yy holds 20 observations, expected Ko\\+1 = 21"):
        enkf.assimilate(hmm, xx, yy[:-1])
    with pytest.raises(ValueError, match="truth xx has shape"):
        enkf.assimilate(hmm, xx[:-1], yy)
    with pytest.raises(TypeError, match="numeric"):
        enkf.assimilate(hmm, xx, yy.astype(str))


def test_localized_updates_reduce_to_the_global_ones_with_unit_tapers():
    from dafilters.filters.enkf import denkf_update, localized_update, pertobs_update

    hmm = sakov2008.HMM
    rng = np.random.default_rng(0)
    E = rng.standard_normal((12, 40)) + 2
    Eo = hmm.obs(E, 0)
    y = Eo[0] + 0.3
    R = hmm.obs.noise(0)
    ones_xy, ones_yy = np.ones((40, 40)), np.ones((40, 40))
    np.testing.assert_allclose(localized_update(E, Eo, y, R, ones_xy, ones_yy, "DEnKF"),
                               denkf_update(E, Eo, y, R), atol=1e-10)
    np.testing.assert_allclose(
        localized_update(E, Eo, y, R, ones_xy, ones_yy, "PertObs", np.random.default_rng(1)),
        pertobs_update(E, Eo, y, R, np.random.default_rng(1)), atol=1e-10)


def test_localized_enkf_runs_where_the_global_one_fails():
    """L96 with N=15 < 40: without localization the PertObs EnKF is poor; localized it tracks."""
    hmm = sakov2008.HMM.replace(tseq=dict(Ko=400, BurnIn=5.0))
    xx, yy = hmm.simulate(seed=2)
    glob = daf.EnKF("PertObs", N=15, infl=1.05).assimilate(hmm, xx, yy, seed=2).averages()["rmse.a"]
    loc = daf.EnKF("PertObs", N=15, infl=1.05, loc_rad=4).assimilate(hmm, xx, yy, seed=2).averages()["rmse.a"]
    den = daf.EnKF("DEnKF", N=15, infl=1.05, loc_rad=4).assimilate(hmm, xx, yy, seed=2).averages()["rmse.a"]
    assert loc < 0.35 and den < 0.35 and loc < 0.5 * glob, (loc, den, glob)
    with pytest.raises(ValueError, match="use LETKF"):
        daf.EnKF("Sqrt", N=15, loc_rad=4)
    with pytest.raises(ValueError, match="unknown taper"):
        daf.EnKF("PertObs", N=15, loc_rad=4, taper="box")
