"""DAPPER interop: DAPPER models converted by ``from_dapper``, DAPPER's ``yy`` accepted as it is, and
DAPPER's methods as table rows (``DapperMethod``) on the same truth and observations (skipped only
without the ``dapper`` extra)."""

import dataclasses
import importlib
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import require_extra

import dafilters as daf
from dafilters.experiments import filter_key
from dafilters.identity import content_hash
from dafilters.interop import DapperDynamics, as_observations
from dafilters.stats import agrees
from dafilters.store import check_saveable

dapper = require_extra("dapper", "dapper")
da = require_extra("dapper", "dapper.da_methods")
modelling = require_extra("dapper", "dapper.mods")


@pytest.fixture(autouse=True)
def quiet_dapper():
    import dapper.tools.progressbar as pb

    pb.disable_progbar = True


def setting(path: str, attr: str = "HMM"):
    """A fresh copy of DAPPER's HMM ``dapper.mods.<path>.<attr>`` (the module's HMM is shared)."""
    return getattr(importlib.import_module(f"dapper.mods.{path}"), attr).copy()


def lorenz96(Ko: int = 150, BurnIn: float = 1.0) -> daf.HMM:
    return daf.from_dapper(setting("Lorenz96.sakov2008")).replace(tseq=dict(Ko=Ko, BurnIn=BurnIn))


def dapper_twin(H, Ko: int, seed: int = 3):
    """DAPPER's own truth and observations of ``H`` shortened to ``Ko``."""
    H.tseq = modelling.Chronology(H.tseq.dt, dko=H.tseq.dko, Ko=Ko, BurnIn=0)
    dapper.set_seed(seed)
    return H, *H.simulate()


# -- the model: dynamics, observations, prior, chronology ------------------------------------------
@pytest.mark.parametrize("path", ["Lorenz96.sakov2008", "Lorenz63.sakov2012"])
def test_our_dynamics_reproduce_dappers_truth(path):
    H, xx, yy = dapper_twin(setting(path), Ko=40)
    hmm = daf.from_dapper(H)
    t = hmm.tseq
    np.testing.assert_array_equal(t.kko, H.tseq.kko)
    assert (t.K, t.dt) == (H.tseq.K, H.tseq.dt)
    np.testing.assert_array_equal(t.masko, H.tseq.masko)
    assert hmm.dyn.noise is None  # DAPPER's Dyn.noise C = 0
    for k in range(1, t.K + 1):  # no model noise: one step of ours from DAPPER's x_{k-1} is its x_k
        np.testing.assert_allclose(hmm.dyn.forecast(xx[k - 1:k], t.tt[k - 1], t.dt, None)[0], xx[k],
                                   rtol=1e-12, atol=1e-12)
    resid = np.stack(yy) - np.stack([hmm.obs(xx[k], ko) for ko, k in enumerate(t.kko)])
    R = H.Obs(0).noise.C.diag
    assert resid.var() == pytest.approx(R.mean(), rel=0.3)
    assert np.allclose(hmm.obs.noise(0).diag, R)


def test_our_simulate_follows_the_dapper_model():
    hmm = lorenz96(Ko=30)
    xx, yy = hmm.simulate(5)
    assert xx.shape == (hmm.tseq.K + 1, 40) and yy.shape == (31, 40)
    step = hmm.dyn.op.model
    np.testing.assert_allclose(step(xx[:-1].copy(), 0.0, hmm.tseq.dt), xx[1:], rtol=1e-12)


def test_prior_draws_like_dapper_from_our_stream():
    hmm = lorenz96()
    X0 = hmm.prior.X0
    from dapper.tools.seeding import rng as theirs

    before = theirs.bit_generator.state
    rng = np.random.default_rng(1)
    E = hmm.prior.sample(5, rng)
    ref = np.random.default_rng(1)
    np.testing.assert_array_equal(E, X0.mu + ref.standard_normal((5, 40)) * np.sqrt(X0.C.diag))
    assert rng.bit_generator.state == ref.bit_generator.state  # ours advanced as if it drew
    assert theirs.bit_generator.state == before  # DAPPER's own stream untouched
    np.testing.assert_array_equal(hmm.prior.mean, X0.mu)
    assert np.allclose(hmm.prior.cov.diag, 0.001)


def test_dapper_yy_is_accepted():
    H, xx, yy = dapper_twin(setting("Lorenz96.sakov2008"), Ko=60)
    assert yy.dtype == object  # "observations yy must be numeric, got dtype object" before
    hmm = daf.from_dapper(H)
    flt = daf.EnKF("Sqrt", N=20, infl=1.02)
    a = flt.assimilate(hmm, xx, yy, seed=1)
    b = flt.assimilate(hmm, xx, np.stack(list(yy)), seed=1)
    np.testing.assert_array_equal(a.series["rmse.a"], b.series["rmse.a"])
    assert np.isfinite(a.averages()["rmse.a"])


def test_as_observations():
    yy = np.empty(3, dtype=object)
    yy[:] = [np.ones(2), np.zeros(3), np.ones(2)]
    out = as_observations(yy)
    assert isinstance(out, list) and [len(y) for y in out] == [2, 3, 2]
    assert as_observations(np.ones((3, 2)).astype(object)).dtype == float
    plain = np.ones((3, 2))
    assert as_observations(plain) is plain
    yy[1] = None
    with pytest.raises(TypeError, match=r"yy\[1\] is None"):
        as_observations(yy)


def test_time_dependent_observations():
    """A DAPPER Obs that changes with ko (``TimeDependentOperator``), with Ny changing too."""
    def obs_at(offset):
        Obs = modelling.partial_Id_Obs(40, np.arange(offset, 40, 3))
        Obs["noise"] = 1.0
        return modelling.Operator(**Obs)

    ops = [obs_at(offset) for offset in range(3)]  # built once (DAPPER's are slow to build)
    H = setting("Lorenz96.sakov2008")
    H.Obs = modelling.TimeDependentOperator(time_dependent=lambda ko: ops[ko % 3])
    H, xx, yy = dapper_twin(H, Ko=80)
    hmm = daf.from_dapper(H)
    assert [hmm.obs.Ny(ko) for ko in range(3)] == [14, 13, 13]
    np.testing.assert_array_equal(hmm.obs.locations(1, hmm.dyn.coords)[:, 0], np.arange(1, 40, 3))
    ours = daf.EnKF("Sqrt", N=20, infl=1.04).assimilate(hmm, xx, yy, seed=2)
    theirs = daf.DapperMethod(da.EnKF("Sqrt", N=20, infl=1.04)).assimilate(hmm, xx, yy, seed=2)
    assert ours.averages()["rmse.a"] == pytest.approx(theirs.averages()["rmse.a"], rel=1e-6)
    _, yy2 = hmm.simulate(1)
    assert isinstance(yy2, list) and len(yy2[0]) == 14


def test_localization_maps_dappers_grid():
    hmm = lorenz96(Ko=100)  # sakov2008: nd_Id_localization((40,), (2,)), periodic
    np.testing.assert_array_equal(hmm.dyn.coords[:, 0], np.arange(40))
    assert hmm.dyn.domain == (40.0,)
    np.testing.assert_array_equal(hmm.obs.locations(0, hmm.dyn.coords), hmm.dyn.coords)
    xx, yy = hmm.simulate(4)
    ours = daf.LETKF(N=20, infl=1.04, loc_rad=4, batch=2).assimilate(hmm, xx, yy, seed=4).averages()
    theirs = daf.DapperMethod(da.LETKF(N=20, infl=1.04, loc_rad=4)).assimilate(hmm, xx, yy, seed=4).averages()
    assert agrees(ours["rmse.a"], ours["rmse.a.ci"], theirs["rmse.a"], theirs["rmse.a.ci"])
    H = setting("Lorenz63.sakov2012")
    H.Obs = modelling.Operator(M=1, model=lambda x: np.sum(x, axis=-1, keepdims=True), noise=1.0)
    with pytest.raises(NotImplementedError, match="cannot be localized"):
        daf.from_dapper(H).obs.locations(0, np.zeros((3, 1)))


def test_non_gaussian_noise_is_refused():
    with pytest.raises(NotImplementedError, match="LaplaceParallelRV, not a GaussRV"):
        daf.from_dapper(setting("Lorenz96.todter2015"))


# -- identity --------------------------------------------------------------------------------------
def test_converted_models_have_a_content_identity(monkeypatch):
    H = setting("Lorenz96.sakov2008")
    fp = daf.from_dapper(H).fingerprint()
    assert daf.from_dapper(H.copy()).fingerprint() == fp
    assert daf.from_dapper(H, name="other").fingerprint() == fp  # never the name
    noisier = H.copy()
    noisier.Obs = modelling.TimeDependentOperator(**{**vars(H.Obs.Op1), "noise": 2.0})
    parts, other = daf.from_dapper(H).parts(), daf.from_dapper(noisier).parts()
    assert other["obs"] != parts["obs"] and other["dyn"] == parts["dyn"]
    monkeypatch.setattr("dapper.mods.Lorenz96.Force", 10.0)  # a module constant the model reads
    assert daf.from_dapper(H).parts()["dyn"] != parts["dyn"]


def test_identity_is_the_same_in_another_process():
    code = ("import dafilters as daf; from dapper.mods.Lorenz63 import sakov2012 as S; "
            "print(daf.from_dapper(S.HMM).fingerprint())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == daf.from_dapper(setting("Lorenz63.sakov2012")).fingerprint()


# -- DAPPER's methods as rows -----------------------------------------------------------------------
def test_dapper_enkf_row_equals_ours():
    """As tests/test_dapper.py, through the bridge: the same truth and observations, DAPPER's EnKF
    and ours agree; both draw the initial ensemble from the filter's stream the same way, so the
    first forecast is the same ensemble."""
    hmm = lorenz96(Ko=300, BurnIn=2.0)
    xx, yy = hmm.simulate(7)
    a = daf.EnKF("Sqrt", N=40, infl=1.01).assimilate(hmm, xx, yy, seed=7)
    b = daf.DapperMethod(da.EnKF("Sqrt", N=40, infl=1.01)).assimilate(hmm, xx, yy, seed=7)
    (mu, ci), (ref, ref_ci) = [(s.averages()["rmse.a"], s.averages()["rmse.a.ci"]) for s in (a, b)]
    assert agrees(mu, ci, ref, ref_ci), (mu, ci, ref, ref_ci)
    assert abs(mu - ref) < 0.03 * ref
    for m in ("rmse.f", "spread.f", "crps.f"):
        assert a.series[m][0] == pytest.approx(b.series[m][0], rel=1e-10)
    np.testing.assert_array_equal(a.rank_hist["a"].sum(), b.rank_hist["a"].sum())


@pytest.mark.parametrize("config", [
    lambda: da.EnKF("Sqrt", N=20, infl=1.02),
    lambda: da.PartFilt(N=100, reg=2.4, NER=0.3),  # weighted ensembles, analysis assessed as "u"
    lambda: da.Var3D(xB=0.1),  # mean and covariance
])
def test_our_statistics_of_dappers_estimates_match_dappers(config):
    hmm = daf.from_dapper(setting("Lorenz63.sakov2012")).replace(tseq=dict(Ko=60, BurnIn=1.0))
    xx, yy = hmm.simulate(2)
    stats = daf.DapperMethod(config(), dapper_stats=True).assimilate(hmm, xx, yy, seed=2)
    xp = stats.dapper
    xp.stats.average_in_time()
    ours = stats.averages()
    assert ours["rmse.a"] == pytest.approx(xp.avrgs.err.rms.a.val, rel=1e-9)
    assert ours["rmse.f"] == pytest.approx(xp.avrgs.err.rms.f.val, rel=1e-9)
    assert ours["crps.a"] == pytest.approx(xp.avrgs.crps.m.a.val, rel=1e-9)


def test_dapper_rows_in_one_table(tmp_path):
    hmm = lorenz96(Ko=100)
    rows = [daf.EnKF("Sqrt", N=20, infl=1.02), daf.DapperMethod(da.EnKF_N(N=20)),
            daf.DapperMethod("iEnKS", upd_a="Sqrt", N=20, Lag=1, infl=1.02)]
    res = daf.Experiments(hmm, rows, seeds=[1], save_to=tmp_path).run(progress=False)
    df = res.frame()
    assert list(df["filter"]) == ["EnKF", "DapperMethod", "DapperMethod"]
    assert list(df["method"][1:]) == ["EnKF_N", "iEnKS"]
    assert df["rmse.a"].notna().all() and (df["rmse.a"] < 1).all()
    assert "Dapper(EnKF_N, N=20)" in {r["name"] for r in res.records}
    again = daf.Experiments(hmm, rows, seeds=[1], save_to=tmp_path).run(progress=False)
    assert [r["rmse.a"] for r in again.records] == [r["rmse.a"] for r in res.records]  # loaded


def test_dapper_method_settings():
    f = daf.DapperMethod(da.EnKF_N(N=20))
    assert f.name == "Dapper(EnKF_N, N=20)" and f.params() == {"method": "EnKF_N", "N": 20}
    assert f.ensemble_size == 20
    same = daf.DapperMethod("EnKF_N", N=np.int64(20), infl=1)  # infl=1 is DAPPER's default
    assert same == f and content_hash(filter_key(same)) == content_hash(filter_key(f))
    assert content_hash(filter_key(daf.DapperMethod("EnKF_N", N=30))) != content_hash(filter_key(f))
    check_saveable(f.name, f.params())
    json.dumps(dataclasses.asdict(f))
    tuned = dataclasses.replace(f, infl=1.05)  # as tuning does
    assert tuned.settings == {"N": 20, "infl": 1.05} and f.settings == {"N": 20}
    assert f.version == dapper.__version__
    with pytest.raises(ValueError, match="bogus"):
        daf.DapperMethod("EnKF", upd_a="Sqrt", N=10, bogus=1)
    with pytest.raises(ValueError, match="not a DAPPER method.*EnKF_N"):
        daf.DapperMethod("NoSuchMethod")
    with pytest.raises(TypeError, match="schedule"):
        daf.DapperMethod("PreProg", schedule=lambda k, xx, yy: xx[k])


def test_dapper_method_needs_a_converted_model():
    from mods.Lorenz96 import sakov2008

    hmm = sakov2008.HMM.replace(tseq=dict(Ko=20, BurnIn=0.1))
    xx, yy = hmm.simulate(0)
    with pytest.raises(TypeError, match="from_dapper.*dyn .*obs .*prior"):
        daf.DapperMethod("EnKF", upd_a="Sqrt", N=10).assimilate(hmm, xx, yy)


def test_dapper_method_divergence_and_callback():
    hmm = lorenz96(Ko=40)
    xx, yy = hmm.simulate(1)
    seen = []
    stats = daf.DapperMethod("EnKF", upd_a="Sqrt", N=20, infl=1.02).assimilate(
        hmm, xx, yy, keep=("mean",), callback=lambda ko, s: seen.append(ko), callback_every=10)
    assert seen == [9, 19, 29, 39] and np.isfinite(stats.keep["mean.a"]).all()
    op = hmm.dyn.op
    exploding = modelling.Operator(M=40, model=lambda E, t, dt: 1e3 * op.model(E, t, dt), noise=0)
    bad = hmm.replace(dyn=DapperDynamics(exploding, source=hmm.dyn.source))
    import dapper.tools.progressbar as pb
    from dapper.tools.seeding import rng as theirs

    before = theirs.bit_generator.state
    stats = daf.DapperMethod("EnKF", upd_a="Sqrt", N=20).assimilate(bad, xx, yy)
    assert stats.diverged and "diverged" in stats.error
    assert theirs.bit_generator.state == before and pb.disable_progbar is True  # restored


# -- DAPPER's model library in Experiments ---------------------------------------------------------
@pytest.mark.parametrize("path, attr, Ko, N, infl", [
    ("Lorenz84.pajonk2012", "HMM", 100, 10, 1.02),
    ("LorenzUV.wilks05", "HMM_full", 20, 20, 1.05),
    ("Ikeda.some_settings_01", "HMM", 100, 10, 1.02),
    ("DoublePendulum.settings101", "HMM", 10, 10, 1.02),
    ("KS.bocquet2019", "HMM", 60, 20, 1.05),
    ("LotkaVolterra.settings101", "HMM", 30, 10, 1.02),
    ("Lorenz05.settings01", "HMM", 2, 5, 1.05),  # DAPPER's Lorenz05 steps members one by one: slow
])
def test_dapper_models_run_in_experiments(path, attr, Ko, N, infl):
    hmm = daf.from_dapper(setting(path, attr))
    dto = hmm.tseq.dko * hmm.tseq.dt
    hmm = hmm.replace(tseq=dict(Ko=Ko, BurnIn=dto * Ko / 5))
    res = daf.Experiments(hmm, daf.EnKF("Sqrt", N=N, infl=infl), seeds=[1]).run(progress=False)
    (record,) = res.records
    assert record["status"] in ("ok", "lost"), record["error"]
    assert np.isfinite(record["rmse.a"]) and np.isfinite(record["crps.a"])


def test_without_dapper_the_error_names_the_extra(monkeypatch):
    from dafilters.extras import MissingExtra

    for name in ("dapper", "dapper.mods", "dapper.da_methods"):
        monkeypatch.setitem(sys.modules, name, None)  # as if DAPPER were not installed
    with pytest.raises(MissingExtra, match="extra 'dapper'"):
        daf.from_dapper(object())
    with pytest.raises(MissingExtra, match="extra 'dapper'"):
        daf.DapperMethod("EnKF", upd_a="Sqrt", N=10)
