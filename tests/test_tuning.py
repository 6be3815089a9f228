import dataclasses
import subprocess
import sys
import textwrap
import time

import numpy as np
import optuna
import pytest

import dafilters as daf
from dafilters.tuning import declared_space, make_storage, resolve_space, tune
from mods.Lorenz96 import sakov2008

# a small, quick problem where inflation matters: EnKF N=15 < 40 on L96 diverges without it
HMM = sakov2008.HMM.replace(tseq=dict(Ko=250, BurnIn=5.0))
SPACE = {"infl": ("log", 1.0, 1.3)}


def test_declared_and_overridden_space():
    assert declared_space(daf.EnKF) == {"infl": ("log", 1.0, 1.5)}
    assert resolve_space(daf.EnKF(), {"infl": ("lin", 1.0, 1.1)}) == {"infl": ("lin", 1.0, 1.1)}
    with pytest.raises(ValueError, match="no field 'lambda'"):
        resolve_space(daf.EnKF(), {"lambda": ("lin", 0, 1)})
    with pytest.raises(ValueError, match="kind"):
        resolve_space(daf.EnKF(), {"infl": ("uniform", 1, 2)})
    with pytest.raises(ValueError, match="low < high"):
        resolve_space(daf.EnKF(), {"infl": ("log", 2.0, 1.0)})
    with pytest.raises(ValueError, match="nothing to tune"):
        resolve_space(daf.EnKF(), {"infl": None})
    with pytest.raises(ValueError, match="unknown metric"):
        tune(daf.EnKF("Sqrt", N=15), HMM, n_trials=2, metric="bias")


def test_tuned_settings_beat_the_defaults():
    default = daf.EnKF("Sqrt", N=15)
    best, study = tune(default, HMM, space=SPACE, n_trials=14, seeds=[1])
    assert best.infl > 1.01 and best.N == 15
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert all("diverged" in t.user_attrs or t.intermediate_values for t in pruned)
    # evaluated on a fresh seed
    xx, yy = HMM.simulate(2)
    tuned = best.assimilate(HMM, xx, yy, seed=2).averages()["rmse.a"]
    base = default.assimilate(HMM, xx, yy, seed=2).averages()["rmse.a"]
    assert tuned < 0.5 * base or np.isnan(base)


def finished(study):
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return study.get_trials(deepcopy=False, states=states)


@pytest.mark.parametrize("suffix", [".log", ".db"])
def test_two_workers_share_a_study(tmp_path, suffix):
    storage = str(tmp_path / f"study{suffix}")
    res = tune(daf.EnKF("Sqrt", N=15), HMM, space=SPACE, n_trials=10, seeds=[1], storage=storage,
               study_name="shared", workers=2)
    trials = finished(res.study)
    numbers = [t.number for t in trials]
    assert len(set(numbers)) == len(numbers) and 10 <= len(trials) <= 11  # MaxTrials may overshoot by one
    params = [round(t.params["infl"], 12) for t in trials]
    assert len(set(params)) == len(params)  # no trial evaluated twice
    again = optuna.load_study(study_name="shared", storage=make_storage(storage))
    assert len(finished(again)) == len(trials)


SCRIPT = textwrap.dedent("""
    import sys
    import dafilters as daf
    from dafilters.tuning import tune
    from mods.Lorenz96 import sakov2008
    hmm = sakov2008.HMM.replace(tseq=dict(Ko=250, BurnIn=5.0))
    tune(daf.EnKF("Sqrt", N=15), hmm, space={"infl": ("log", 1.0, 1.3)}, n_trials=int(sys.argv[2]),
         seeds=[1], storage=sys.argv[1], study_name="s", seed=int(sys.argv[3]))
""")


def test_separate_processes_share_a_sqlite_study(tmp_path):
    """Like workers on different machines: two independent processes, one storage URL."""
    script = tmp_path / "worker.py"
    script.write_text(SCRIPT)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    procs = [subprocess.Popen([sys.executable, str(script), url, "12", str(i)]) for i in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    study = optuna.load_study(study_name="s", storage=make_storage(url))
    trials = finished(study)
    assert 12 <= len(trials) <= 13 and len({t.number for t in trials}) == len(trials)


def test_killed_study_resumes(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(SCRIPT)
    storage = str(tmp_path / "study.log")
    proc = subprocess.Popen([sys.executable, str(script), storage, "400", "0"])
    deadline = time.time() + 240
    done = 0
    while time.time() < deadline and done < 4:
        time.sleep(0.5)
        try:
            done = len(finished(optuna.load_study(study_name="s", storage=make_storage(storage))))
        except (KeyError, ValueError):  # the study does not exist yet
            done = 0
    proc.kill()
    proc.wait()
    assert done >= 4
    before = len(finished(optuna.load_study(study_name="s", storage=make_storage(storage))))
    res = tune(daf.EnKF("Sqrt", N=15), HMM, space=SPACE, n_trials=before + 3, seeds=[1],
               storage=storage, study_name="s")
    after = finished(res.study)
    assert len(after) == before + 3  # kept the trials of the killed run, ran only the rest


def test_tuned_entry_in_experiments(tmp_path):
    entry = daf.Tuned(daf.EnKF("Sqrt", N=15), n_trials=10, tune_seeds=[11], space=SPACE)
    with pytest.raises(ValueError, match="also evaluation seeds"):
        daf.Experiments(HMM, [entry], seeds=[11, 12])
    xps = daf.Experiments(HMM, [entry, daf.EnKF("Sqrt", N=15)], seeds=[1, 2], save_to=tmp_path)
    res = xps.run(progress=False)
    df = res.frame()
    assert df["tuned"].tolist() == [True, False]
    assert df.loc[0, "rmse.a"] < df.loc[1, "rmse.a"] or np.isnan(df.loc[1, "rmse.a"])
    assert "(tuned)" in res.table(print_it=False)
    assert all(r["tune_seeds"] == [11] for r in res.records if r.get("tuned"))
    assert len(list(tmp_path.glob("tuned-*.json"))) == 1
    # a re-run reloads the tuned settings and the runs: same numbers, no new tuning
    again = daf.Experiments(HMM, [entry], seeds=[1, 2], save_to=tmp_path).run(progress=False)
    assert again.frame().loc[0, "rmse.a"] == df.loc[0, "rmse.a"]


def test_grid_best_view():
    grid = daf.Experiments.grid(daf.EnKF, upd_a="Sqrt", N=[15, 20], infl=[1.0, 1.03, 1.08])
    res = daf.Experiments(HMM, grid, seeds=[1]).run(progress=False)
    best = res.best(over="infl")
    assert sorted(best["N"]) == [15, 20]
    df = res.frame()
    for _, row in best.iterrows():
        assert row["rmse.a"] == df[df["N"] == row["N"]]["rmse.a"].min()
    lines = res.table(print_it=False, best_over="infl").splitlines()
    assert lines[1] == "common settings: upd_a=Sqrt"
    assert lines[2].split()[:3] == ["filter", "N", "infl"]
    first = lines[4].split()  # after the header's rule
    assert first[:2] == ["EnKF", "15"] and first[2] != "1.0"
    with pytest.raises(ValueError, match="no such setting"):
        res.best(over="loc_rad")


def test_failed_tuning_is_recorded_and_the_table_goes_on(tmp_path):
    """Every trial of a filter that always crashes fails: the entry gets an error row that says
    so, and the other entries still run."""

    @dataclasses.dataclass
    class Broken(daf.EnKF):
        def analysis(self, E, y, ko, ctx):
            raise FloatingPointError("boom")

    entry = daf.Tuned(Broken("Sqrt", N=15), n_trials=2, tune_seeds=[11], space=SPACE)
    res = daf.Experiments(HMM, [entry, daf.EnKF("Sqrt", N=15, infl=1.05)], seeds=[1]).run(progress=False)
    df = res.frame()
    assert df["status"].tolist()[1] == "ok" and np.isfinite(df.loc[1, "rmse.a"])
    bad = [r for r in res.records if r.get("tuned")]
    assert len(bad) == 1 and bad[0]["status"] == "error" and "tuning failed" in bad[0]["error"]
    assert "(tuned)" in res.table(print_it=False)


def test_tuned_entries_pass_their_workers_to_tune(monkeypatch):
    """Tuned(workers=) reaches tune (benchmarks/mnmef_baselines.py failed once Tuned.kwargs,
    which had carried it, was removed)."""
    seen = {}

    def fake_tune(flt, hmm, **kwargs):
        seen.update(kwargs)
        return "result"

    monkeypatch.setattr("dafilters.tuning.tune", fake_tune)
    entry = daf.Tuned(daf.EnKF("Sqrt", N=10), n_trials=3, tune_seeds=[5], workers=2)
    assert entry.tune(HMM) == "result" and seen["workers"] == 2
