"""No hangs, no lost tables: a worker that dies, a seed whose truth blows up and an MPI backend
without a launcher each end in error records or a clear error, within a time limit."""

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import dafilters as daf
from dafilters.experiments import Experiments
from dafilters.hmm import GaussPrior
from dafilters.parallel import run_jobs
from dafilters.runs import execute
from mods import LinearGauss

#: The test runner's process: only other processes (pool workers) may be killed.
PARENT = os.getpid()
BASE = LinearGauss.build(Ko=30)


@pytest.fixture(autouse=True)
def time_limit():
    """Fail a test that runs over 120 s (a hang) instead of blocking the suite forever."""
    def expired(signum, frame):
        raise TimeoutError("test ran over 120 s: hung")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@dataclasses.dataclass
class Killed(daf.EnKF):
    """An EnKF whose worker process is killed (SIGKILL, as the OOM killer does) on one seed."""

    kill_seed: int = 1
    parent: int = 0  # the test runner's pid, a field: workers that re-import this module know it

    def analysis(self, E, y, ko, ctx):
        if ctx.seed == self.kill_seed and os.getpid() != self.parent:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().analysis(E, y, ko, ctx)


METRICS = ["rmse.a", "rmse.a.ci", "crps.a", "rmse.f"]


def metrics(records):
    return np.array([[r[m] for m in METRICS] for r in records])


def test_a_killed_worker_is_an_error_record_and_the_table_finishes():
    flts = [daf.EnKF("Sqrt", N=10), Killed("Sqrt", N=10, parent=PARENT), daf.EnKF("DEnKF", N=10)]
    xps = Experiments(BASE, flts, seeds=[0, 1, 2])
    serial = xps.run(progress=False).records
    pooled = xps.run(progress=False, workers=2).records
    killed = [r for r in pooled if r["status"] != "ok"]
    assert len(killed) == 1 and killed[0]["filter"] == "Killed" and killed[0]["seed"] == 1
    assert killed[0]["status"] == "error" and "worker process died" in killed[0]["error"]
    assert "SIGKILL" in killed[0]["error"]
    keep = [i for i, r in enumerate(pooled) if r["status"] == "ok"]
    assert len(keep) == 8
    assert [(r["name"], r["seed"]) for r in pooled] == [(r["name"], r["seed"]) for r in serial]
    np.testing.assert_array_equal(metrics([pooled[i] for i in keep]), metrics([serial[i] for i in keep]))


def test_spawned_workers_give_the_serial_results():
    flts = [daf.EnKF("Sqrt", N=10), daf.EnKF("PertObs", N=10)]
    jobs = [(BASE, f, seed, False) for seed in (0, 1) for f in flts]
    serial = [record for record, _ in map(execute, jobs)]
    spawned = [record for record, _ in run_jobs(jobs, 2, "processes", method="spawn")]
    np.testing.assert_array_equal(metrics(spawned), metrics(serial))


class BlowUpPrior(GaussPrior):
    """N(0, I), except that a truth (a single draw) starting above 1 in x[0] is infinite."""

    def sample(self, N, rng):
        E = super().sample(N, rng)
        return E * np.inf if N == 1 and E[0, 0] > 1 else E


BLOWUP = BASE.replace(prior=BlowUpPrior(np.zeros(BASE.Nx), 1.0), name="BlowUp")
BAD_SEED = 0  # its first draw is 1.44 (seeds 1 and 2: -0.64, -1.08)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # the infinite truth
@pytest.mark.parametrize("workers", [1, 2])
def test_a_seed_whose_truth_blows_up_is_an_error_for_that_seed_only(workers):
    flts = [daf.EnKF("Sqrt", N=10), daf.KalmanFilter()]
    res = Experiments(BLOWUP, flts, seeds=[0, 1, 2]).run(progress=False, workers=workers)
    status = {(r["filter"], r["seed"]): r["status"] for r in res.records}
    assert sorted(status.values()) == ["error"] * 2 + ["ok"] * 4
    errors = [r for r in res.records if r["status"] == "error"]
    assert {r["seed"] for r in errors} == {BAD_SEED}
    for r in errors:
        assert f"seed {BAD_SEED}" in r["error"] and "not finite" in r["error"]
    assert res.frame()["ok"].tolist() == [2, 2]


MPI_WITHOUT_LAUNCHER = textwrap.dedent("""
    import dafilters as daf
    from mods import LinearGauss
    daf.Experiments(LinearGauss.build(Ko=30), daf.EnKF("Sqrt", N=5), seeds=[0, 1]).run(
        progress=False, backend="mpi", workers=2)
""")


def test_mpi_backend_without_a_launcher_is_a_clear_error():
    pytest.importorskip("mpi4py", reason="mpi4py is not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMI", "PMIX_"))}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        proc = subprocess.run([sys.executable, "-c", MPI_WITHOUT_LAUNCHER], capture_output=True,
                              text=True, timeout=60, cwd=root, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail("backend='mpi' without mpiexec hung (60 s)")
    assert proc.returncode != 0
    assert "RuntimeError" in proc.stderr and "mpiexec -n K python -m mpi4py.futures" in proc.stderr
