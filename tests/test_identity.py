"""Identity by content: HMMs, runs, caches and trained models are keyed on what defines them,
never on a name (each test here failed when the HMM fingerprint was its name, Nx and time steps)."""

import subprocess
import sys

import numpy as np
import pytest
from test_learned import HMM as LINEAR
from test_learned import LearnedShift

import dafilters as daf
from dafilters.experiments import run_key
from dafilters.hmm import HMM, Chronology, Dynamics, GaussPrior
from dafilters.identity import Unhashable, content_hash
from dafilters.observations import IdentityObs, PartialObs
from mods.Lorenz63 import sakov2012
from mods.Lorenz96 import Lorenz96, sakov2008

L96 = sakov2008.HMM.replace(tseq=dict(Ko=150, BurnIn=1.0), name="L96")


def test_fingerprint_sees_parameters_noise_indices_prior_and_chronology():
    base = L96.fingerprint()
    variants = [L96.replace(dyn=Lorenz96(40, F=10.0)), L96.replace(obs=IdentityObs(40, noise=4.0)),
                L96.replace(obs=PartialObs(40, np.arange(0, 40, 2), noise=1.0)),
                L96.replace(prior=GaussPrior(np.zeros(40), 0.001)),
                L96.replace(tseq=dict(Ko=151)), L96.replace(tseq=dict(BurnIn=2.0))]
    prints = [v.fingerprint() for v in variants]
    assert base not in prints and len(set(prints)) == len(prints)
    # the name is a label, not the identity
    assert L96.replace(name="other").fingerprint() == base
    # equal content built differently is one identity
    same = L96.replace(dyn=Lorenz96(40, F=8), obs=IdentityObs(40, noise=1))
    assert same.fingerprint() == base


def test_replace_names_what_changed():
    assert L96.replace(tseq=dict(Ko=99)).name == "L96 (Ko=99)"
    assert L96.replace(obs=IdentityObs(40, noise=4.0)).name == "L96 (obs)"
    assert L96.replace(obs=IdentityObs(40, noise=4.0), name="R4").name == "R4"


def test_irregular_chronology_is_stable_across_processes():
    code = ("from dafilters.hmm import Chronology; "
            "print(Chronology(0.01, kko=[3, 7, 20, 21], BurnIn=0).fingerprint())")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            .stdout.strip() for _ in range(2)]
    assert runs[0] == runs[1] == Chronology(0.01, kko=[3, 7, 20, 21]).fingerprint()


def test_fingerprint_unchanged_by_running_filters():
    before = L96.fingerprint()
    xx, yy = L96.simulate(0)
    for flt in [daf.EnKF("Sqrt", N=10, infl=1.02), daf.LETKF(N=10, infl=1.04, loc_rad=4),
                daf.PartFilt(N=50, reg=2.0, NER=0.3), daf.OptInterp()]:
        flt.assimilate(L96, xx, yy, seed=0)
    assert L96.fingerprint() == before


def test_equal_settings_give_equal_run_keys():
    k = run_key(L96, daf.EnKF("Sqrt", N=10, infl=1), 0)
    assert run_key(L96, daf.EnKF("Sqrt", N=np.int64(10), infl=1.0), 0) == k
    assert run_key(L96, daf.EnKF("Sqrt", N=10, infl=1.01), 0) != k
    assert run_key(L96, daf.EnKF("Sqrt", N=10, infl=1), 1) != k
    assert run_key(L96.replace(obs=IdentityObs(40, noise=2.0)), daf.EnKF("Sqrt", N=10, infl=1), 0) != k


def test_one_table_keeps_hmms_of_one_name_apart():
    """sakov2008 with F = 10 was given the F = 8 truth and R = 4 the R = 1 observations."""
    hmms = [L96, L96.replace(dyn=Lorenz96(40, F=10.0), name="L96"),
            L96.replace(obs=IdentityObs(40, noise=4.0), name="L96")]
    flt = daf.EnKF("Sqrt", N=20, infl=1.02)
    res = daf.Experiments(hmms, [flt], seeds=[3]).run(progress=False)
    df = res.frame()
    assert len(df) == 3 and df["hmm"].nunique() == 3
    for hmm, r in zip(hmms, res.records):
        alone = flt.assimilate(hmm, *hmm.simulate(3), seed=3).averages()["rmse.a"]
        assert r["rmse.a"] == pytest.approx(alone, rel=1e-12)
    table = res.table(print_it=False)
    assert table.count("L96 [") == 3


def test_saved_runs_are_not_loaded_for_another_hmm(tmp_path):
    """A saved R = 2 result was loaded as the R = 0.01 one (0.645 reported instead of 0.026)."""
    flt = daf.EnKF("Sqrt", N=20, infl=1.01)
    small = L96.replace(obs=IdentityObs(40, noise=0.01), name="L96")
    large = L96.replace(obs=IdentityObs(40, noise=2.0), name="L96")
    a = daf.Experiments(large, [flt], seeds=[1], save_to=tmp_path).run(progress=False)
    b = daf.Experiments(small, [flt], seeds=[1], save_to=tmp_path).run(progress=False)
    assert b.records[0]["rmse.a"] < 0.3 * a.records[0]["rmse.a"]
    assert len(list(tmp_path.glob("*.json"))) == 2


def test_runs_with_other_chronologies_are_separate_and_resume(tmp_path):
    irregular = L96.replace(tseq=Chronology(0.05, kko=np.arange(1, 120) ** 1, BurnIn=1.0), name="L96")
    flt = daf.EnKF("Sqrt", N=20, infl=1.02)
    for _ in range(2):  # the second run loads, it does not add runs
        daf.Experiments([irregular, L96.replace(tseq=dict(Ko=80), name="L96")], [flt],
                        seeds=[0, 1], save_to=tmp_path).run(progress=False)
    df = daf.Results.load(tmp_path).frame()
    assert len(df) == 2 and list(df["seeds"]) == [2, 2]


def test_learned_filter_refuses_another_model():
    flt = LearnedShift(N=10, training={"epochs": 2, "n_traj": 2}).fit(LINEAR)
    other = LINEAR.replace(obs=PartialObs(5, [0, 2, 4], noise=2.0))
    xx, yy = other.simulate(0)
    with pytest.raises(ValueError, match="observations differ"):
        flt.assimilate(other, xx, yy)
    assert not flt.matches(other) and flt.matches(LINEAR)
    longer = LINEAR.replace(tseq=dict(Ko=20))  # another run length is the same model
    flt.assimilate(longer, *longer.simulate(0))
    flt.transfer = True  # on purpose
    flt.assimilate(other, xx, yy)


class Opaque:
    """Something that has no content identity."""


class Mystery(Dynamics):
    def __init__(self):
        super().__init__(3, model=lambda E, t, dt: E)
        self.handle = Opaque()


def test_unhashable_model_gives_a_clear_error_or_takes_an_explicit_key():
    hmm = sakov2012.HMM.replace(dyn=Mystery(), name="mystery")
    with pytest.raises(Unhashable, match=r"mystery.dyn\['handle'\].*identity_key"):
        hmm.fingerprint()
    dyn = Mystery()
    dyn.identity_key = "mystery-v1"
    assert hmm.replace(dyn=dyn).fingerprint() != sakov2012.HMM.fingerprint()


def test_functions_are_identified_by_code_and_captured_values():
    def make(c):
        return lambda E, t, dt: c * E

    def build(model):
        return HMM(Dynamics(3, model=model), sakov2012.HMM.obs, sakov2012.HMM.tseq,
                   sakov2012.HMM.prior)

    assert build(make(1.0)).fingerprint() == build(make(1)).fingerprint()
    assert build(make(1.0)).fingerprint() != build(make(2.0)).fingerprint()
    assert content_hash(lambda x: x + 1) != content_hash(lambda x: x + 2)
