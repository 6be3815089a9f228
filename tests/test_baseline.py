import numpy as np
import pytest

import dafilters as daf
from mods import LinearGauss
from mods.Lorenz96 import sakov2008


def test_kalman_rmse_equals_predicted_spread():
    """For the exact KF the mean-squared error equals the trace of the analysis covariance:
    time averages of rmse^2 and spread^2 agree (to the sampling error of a long run)."""
    hmm = LinearGauss.build(Ko=8000)
    xx, yy = hmm.simulate(seed=2)
    stats = daf.KalmanFilter().assimilate(hmm, xx, yy)
    m = hmm.tseq.masko
    for fa in "fa":
        mse = np.mean(stats.series[f"rmse.{fa}"][m] ** 2)
        var = np.mean(stats.series[f"spread.{fa}"][m] ** 2)
        assert mse == pytest.approx(var, rel=0.05), fa
    assert stats.averages()["rmse.a"] < stats.averages()["rmse.f"]


def test_kalman_update_matches_bayes(rng):
    """Posterior of a Gaussian prior and linear-Gaussian likelihood, by completing the square."""
    P = np.array([[2.0, 0.5], [0.5, 1.0]])
    H = np.array([[1.0, 1.0]])
    R = np.array([[0.3]])
    mu, y = np.array([0.5, -1.0]), np.array([1.2])
    mu_a, P_a = daf.filters.baseline.kalman_update(mu, P, y - H @ mu, H, R)
    info = np.linalg.inv(P) + H.T @ np.linalg.inv(R) @ H
    np.testing.assert_allclose(P_a, np.linalg.inv(info), atol=1e-12)
    rhs = np.linalg.solve(P, mu) + H.T @ np.linalg.solve(R, y)
    np.testing.assert_allclose(mu_a, np.linalg.solve(info, rhs))


def test_baselines_rank_as_expected():
    """On L96 sakov2008: EnKF < OptInterp < Climatology in rmse.a."""
    hmm = sakov2008.HMM.replace(tseq=dict(Ko=600))
    xx, yy = hmm.simulate(seed=1)
    rm = {f.name: f.assimilate(hmm, xx, yy, seed=1).averages()["rmse.a"]
          for f in [daf.Climatology(clim_steps=2000), daf.OptInterp(clim_steps=2000),
                    daf.EnKF("Sqrt", N=40, infl=1.01)]}
    clim, oi, enkf = rm.values()
    assert enkf < 0.25 < oi < 1.0 < clim
    assert 3.0 < clim < 4.5  # climatological spread of L96 is about 3.6


def test_kalman_filter_needs_linearisation():
    from mods.Lorenz96 import Lorenz96

    hmm = sakov2008.HMM.replace(dyn=daf.Dynamics(40, model=Lorenz96().step), tseq=dict(Ko=30, BurnIn=0.0))
    xx, yy = hmm.simulate(0)
    with pytest.raises(NotImplementedError, match="no linearisation"):
        daf.KalmanFilter().assimilate(hmm, xx, yy)
