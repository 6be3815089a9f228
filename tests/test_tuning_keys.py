"""Tuning studies keyed by content, processes sharing a study, and the lifetime of worker processes."""

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import optuna
import psutil
import pytest

import dafilters as daf
from dafilters.observations import IdentityObs
from dafilters.tuning import make_storage, tune
from mods.Lorenz96 import sakov2008

HMM = sakov2008.HMM.replace(tseq=dict(Ko=40, BurnIn=1.0))
SPACE = {"infl": ("log", 1.0, 1.3)}


def finished(study):
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return study.get_trials(deepcopy=False, states=states)


def quick(flt=None, hmm=HMM, **kw):
    kw = dict(space=SPACE, n_trials=3, seeds=[1]) | kw
    return tune(flt or daf.EnKF("Sqrt", N=15), hmm, **kw)


def test_other_settings_get_their_own_study(tmp_path):
    storage = str(tmp_path / "study.log")
    first = quick(storage=storage)
    name = first.study.study_name
    assert name.startswith(f"EnKF|{HMM.name}|rmse.a|") and len(name.rsplit("|", 1)[1]) == 16
    others = [quick(daf.EnKF("Sqrt", N=10), storage=storage),                   # another fixed setting
              quick(storage=storage, seeds=[2]),                                 # other seeds
              quick(storage=storage, metric="crps.a"),                           # another metric
              quick(storage=storage, space={"infl": ("log", 2.0, 3.0)}),         # another space
              quick(hmm=HMM.replace(obs=IdentityObs(40, noise=4.0)), storage=storage)]  # another R
    for res in others:
        assert res.study.study_name != name and len(finished(res.study)) == 3  # ran its own trials
    assert 2.0 <= others[3].filter.infl <= 3.0 and others[0].filter.N == 10
    assert len(optuna.get_all_study_names(make_storage(storage))) == 1 + len(others)
    # equal settings written differently share the study: no new trial
    same = quick(daf.EnKF("Sqrt", N=np.int64(15), infl=1.2), storage=storage, seeds=(np.int64(1),),
                 space={"infl": ("log", 1, 1.3)})
    assert same.study.study_name == name and len(finished(same.study)) == 3


def test_explicit_study_name_with_other_settings_is_refused(tmp_path):
    storage = str(tmp_path / "study.log")
    quick(storage=storage, study_name="mine")
    assert len(finished(quick(storage=storage, study_name="mine", n_trials=4).study)) == 4  # resumes
    with pytest.raises(ValueError, match=r"'mine' .* other settings \(filter, seeds differ\)"):
        quick(daf.EnKF("Sqrt", N=10), storage=storage, study_name="mine", seeds=[2])
    # a study with trials but no recorded key (made outside tune) is not adopted; an empty one is
    foreign = optuna.create_study(storage=make_storage(storage), study_name="foreign")
    foreign.optimize(lambda t: t.suggest_float("infl", 1.0, 1.3), n_trials=1)
    with pytest.raises(ValueError, match="no record of the settings"):
        quick(storage=storage, study_name="foreign")
    optuna.create_study(storage=make_storage(storage), study_name="empty")
    assert len(finished(quick(storage=storage, study_name="empty").study)) == 3


def test_tuned_entries_in_one_storage_get_one_study_each(tmp_path):
    storage = str(tmp_path / "study.log")
    entries = [daf.Tuned(daf.EnKF("Sqrt", N=n), n_trials=3, tune_seeds=[11], space=SPACE, storage=storage)
               for n in (10, 15)]
    results = [entry.tune(HMM) for entry in entries]
    assert [r.filter.N for r in results] == [10, 15]
    assert len(optuna.get_all_study_names(make_storage(storage))) == 2


def test_single_process_is_reproducible_for_a_seed():
    def params(seed):
        return [t.params["infl"] for t in quick(n_trials=6, seed=seed).study.trials]

    assert params(0) == params(0) != params(1)


def _tune_after(barrier, storage: str) -> None:
    barrier.wait()
    quick(storage=storage, n_trials=8, seed=0)


def test_processes_sharing_a_study_draw_different_points(tmp_path):
    """Two processes start the same tune on one journal at the same moment: with one sampler seed
    each, they used to propose the same start-up points."""
    storage = str(tmp_path / "study.log")
    ctx = multiprocessing.get_context("spawn")  # not fork: jax may be running in this process
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_tune_after, args=(barrier, storage)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    (name,) = optuna.get_all_study_names(make_storage(storage))
    trials = optuna.load_study(study_name=name, storage=make_storage(storage)).trials
    points = [round(t.params["infl"], 12) for t in trials if "infl" in t.params]
    assert len(points) >= 8 and len(set(points)) == len(points)


def test_spawned_workers_and_a_readable_study():
    """Workers started with spawn (the job is their argument); the temporary journal is gone when
    tune returns, and the returned study is an in-memory copy that can still be read."""
    res = quick(n_trials=4, workers=2, start_method="spawn")
    assert 4 <= len(finished(res.study)) <= 5
    assert isinstance(res.study._storage, optuna.storages.InMemoryStorage)
    assert res.params == res.study.best_params


def test_cli_tune_with_workers_plots_without_storage(tmp_path, capsys):
    from dafilters.cli import main

    main(["tune", "mods.Lorenz63.sakov2012", "EnKF('Sqrt', N=10)", "--n-trials", "4", "--Ko", "100",
          "--workers", "2", "--plot", str(tmp_path)])
    assert "best rmse.a" in capsys.readouterr().out
    assert list(tmp_path.glob("*.png"))


LONG_TUNE = textwrap.dedent("""
    import dafilters as daf
    from dafilters.tuning import tune
    from mods.Lorenz96 import sakov2008
    hmm = sakov2008.HMM.replace(tseq=dict(Ko=40, BurnIn=1.0))
    tune(daf.EnKF("Sqrt", N=15), hmm, space={"infl": ("log", 1.0, 1.3)}, n_trials=100000, seeds=[1],
         workers=2)
""")


def _start_long_tune(tmp_path):
    """A process tuning with 2 workers and a temporary journal under ``tmp_path/tmp``."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    script = tmp_path / "long.py"
    script.write_text(LONG_TUNE)
    proc = subprocess.Popen([sys.executable, str(script)], env=os.environ | {"TMPDIR": str(tmp)})
    parent = psutil.Process(proc.pid)
    deadline = time.time() + 60
    while time.time() < deadline and not (len(parent.children()) == 2 and list(tmp.glob("*/study.log"))):
        time.sleep(0.1)
    children = parent.children()
    assert len(children) == 2, "the workers did not start"
    time.sleep(1.0)  # let them work on trials
    return proc, children, tmp


def _leftovers(children, tmp, timeout: float = 15.0) -> list[str]:
    """The workers still running and the files left in ``tmp`` after ``timeout`` seconds."""
    deadline = time.time() + timeout
    while True:
        alive = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
        left = [f"worker {c.pid} ({c.status()})" for c in alive] + [str(f) for f in tmp.rglob("*")]
        if not left or time.time() > deadline:
            break
        time.sleep(0.1)
    for c in alive:  # do not leave them running on failure
        c.kill()
    return left


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_workers_end_with_their_parent(tmp_path, sig):
    """Killed (no clean-up possible in the parent), terminated or interrupted, the parent's
    workers end and the temporary journal is removed."""
    proc, children, tmp = _start_long_tune(tmp_path)
    os.kill(proc.pid, sig)
    proc.wait(30)
    assert _leftovers(children, tmp) == []
