import numpy as np
import pytest

import dafilters as daf
from dafilters.filters.enkf import sqrt_update
from dafilters.filters.letkf import letkf_update
from dafilters.gaussian import Covariance
from dafilters.stats import agrees
from mods.Lorenz96 import sakov2008


def test_infinite_radius_is_the_global_etkf_update(rng):
    E = rng.standard_normal((12, 30))
    H = np.eye(30)[::3]
    y = rng.standard_normal(10)
    R = np.full(10, 0.5)
    idx = np.tile(np.arange(10), (30, 1))
    Ea = letkf_update(E, E @ H.T, y, R, idx, np.ones((30, 10)))
    np.testing.assert_allclose(Ea, sqrt_update(E, E @ H.T, y, Covariance(R)), atol=1e-12)


def test_infinite_radius_filter_equals_etkf():
    hmm = sakov2008.HMM.replace(tseq=dict(Ko=100, BurnIn=0.0))
    xx, yy = hmm.simulate(1)
    a = daf.LETKF(N=15, loc_rad=np.inf, infl=1.02).assimilate(hmm, xx, yy, seed=1, keep=("mean",))
    b = daf.EnKF("Sqrt", N=15, infl=1.02).assimilate(hmm, xx, yy, seed=1, keep=("mean",))
    np.testing.assert_allclose(a.keep["mean.a"], b.keep["mean.a"], atol=1e-9)


def test_no_observations_nearby_means_no_update(rng):
    E = rng.standard_normal((5, 4))
    idx = np.zeros((4, 1), int)
    coeff = np.zeros((4, 1))
    Ea = letkf_update(E, E[:, :1], np.array([3.0]), np.array([1.0]), idx, coeff)
    np.testing.assert_allclose(Ea, E, atol=1e-12)


@pytest.mark.parametrize("flt, ref, ref_ci", [
    (daf.LETKF(N=20, infl=1.04, loc_rad=4), 0.217, 0.002),
    (daf.LETKF(N=7, infl=1.04, loc_rad=4, rot=True), 0.219, 0.002),
])
def test_letkf_reproduces_dapper_figures(flt, ref, ref_ci):
    """DESIGN.md section 5: L96 sakov2008, 5000 cycles."""
    hmm = sakov2008.HMM.replace(tseq=dict(Ko=5000))
    res = daf.Experiments(hmm, flt, seeds=[3000]).run(progress=False).frame().iloc[0]
    assert agrees(res["rmse.a"], res["rmse.a.ci"], ref, ref_ci), (res["rmse.a"], res["rmse.a.ci"])


def test_localization_helps_small_ensembles():
    hmm = sakov2008.HMM.replace(tseq=dict(Ko=600))
    xx, yy = hmm.simulate(2)
    loc = daf.LETKF(N=10, infl=1.04, loc_rad=3).assimilate(hmm, xx, yy, seed=2).averages()["rmse.a"]
    glob = daf.LETKF(N=10, infl=1.04, loc_rad=np.inf).assimilate(hmm, xx, yy, seed=2).averages()["rmse.a"]
    assert loc < 0.3 < glob


def test_bad_letkf_settings_and_inputs():
    with pytest.raises(ValueError, match="unknown taper"):
        daf.LETKF(taper="Box")
    with pytest.raises(ValueError, match="loc_rad must be positive"):
        daf.LETKF(loc_rad=0)
    hmm = sakov2008.HMM.replace(obs=daf.LinearObs(np.eye(40), noise=1.0), tseq=dict(Ko=450))
    xx, yy = hmm.simulate(0)
    with pytest.raises(NotImplementedError, match="cannot be localized"):
        daf.LETKF().assimilate(hmm, xx, yy)
