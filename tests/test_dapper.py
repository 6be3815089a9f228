"""Cross-check against the DAPPER package: the same truth and observations, fed to DAPPER's EnKF
and to ours, give statistically equal rmse.a (skipped only without the ``dapper`` extra)."""

import numpy as np
import pytest
from conftest import require_extra

import dafilters as daf
from dafilters.stats import agrees
from mods.Lorenz63 import sakov2012
from mods.Lorenz96 import sakov2008

dapper = require_extra("dapper", "dapper")
da = require_extra("dapper", "dapper.da_methods")
modelling = require_extra("dapper", "dapper.mods")


@pytest.fixture(autouse=True)
def quiet_dapper():
    import dapper.tools.progressbar as pb

    pb.disable_progbar = True


def dapper_hmm(ours: daf.HMM, theirs):
    """DAPPER's HMM for the same setting, with our chronology."""
    H = theirs.copy()
    t = ours.tseq
    H.tseq = modelling.Chronology(t.dt, dko=t.dko, Ko=t.Ko, BurnIn=t.BurnIn)
    return H


def run_both(module, dapper_module, ours_flt, dapper_flt, seed, Ko):
    hmm = module.HMM.replace(tseq=dict(Ko=Ko))
    xx, yy = hmm.simulate(seed)
    a = ours_flt.assimilate(hmm, xx, yy, seed=seed).averages()
    dapper.set_seed(seed)
    dapper_flt.assimilate(dapper_hmm(hmm, dapper_module.HMM), xx, yy, liveplots=False)
    dapper_flt.stats.average_in_time()
    r = dapper_flt.avrgs.rmse.a
    return (a["rmse.a"], a["rmse.a.ci"]), (r.val, r.prec)


@pytest.mark.parametrize("upd_a, infl", [("Sqrt", 1.01), ("PertObs", 1.06), ("DEnKF", 1.01)])
def test_enkf_matches_dapper_on_lorenz96(upd_a, infl):
    from dapper.mods.Lorenz96 import sakov2008 as theirs

    (mu, ci), (ref, ref_ci) = run_both(sakov2008, theirs, daf.EnKF(upd_a, N=40, infl=infl),
                                       da.EnKF(upd_a, N=40, infl=infl), seed=7, Ko=1500)
    assert agrees(mu, ci, ref, ref_ci), (mu, ci, ref, ref_ci)
    assert abs(mu - ref) < 0.03 * ref  # same truth: much closer than the reference-figure check


def test_enkf_matches_dapper_on_lorenz63():
    from dapper.mods.Lorenz63 import sakov2012 as theirs

    (mu, ci), (ref, ref_ci) = run_both(sakov2012, theirs, daf.EnKF("Sqrt", N=10, infl=1.02, rot=True),
                                       da.EnKF("Sqrt", N=10, infl=1.02, rot=True), seed=11, Ko=2000)
    assert agrees(mu, ci, ref, ref_ci), (mu, ci, ref, ref_ci)


def test_dapper_sees_our_observations():
    """Our xx, yy follow DAPPER's conventions exactly: its climatology-free check of the observation
    residuals (yy - H xx at DAPPER's observation steps) has the noise variance R."""
    hmm = sakov2008.HMM.replace(tseq=dict(Ko=600))
    xx, yy = hmm.simulate(3)
    H = dapper_hmm(hmm, require_extra("dapper", "dapper.mods.Lorenz96.sakov2008").HMM)
    np.testing.assert_array_equal(H.tseq.kko, hmm.tseq.kko)
    resid = yy - xx[H.tseq.kko]
    assert resid.var() == pytest.approx(1.0, rel=0.05)
