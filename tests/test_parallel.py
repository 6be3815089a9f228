"""Parallel runs (a process pool, MPI) give exactly the serial table."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import require_extra

import dafilters as daf
from mods import LinearGauss
from mods.Lorenz96 import sakov2008

METRIC_COLUMNS = ["rmse.a", "rmse.a.ci", "spread.a", "crps.a", "rmse.f", "crps.f"]


def experiments(save_to=None):
    hmms = [sakov2008.HMM.replace(tseq=dict(Ko=300, BurnIn=5.0)), LinearGauss.build(Ko=200)]
    flts = [daf.EnKF("Sqrt", N=20, infl=1.02), daf.EnKF("PertObs", N=20, infl=1.04, rot=True),
            daf.EnKF("DEnKF", N=20, infl=1.02)]
    return daf.Experiments(hmms, flts, seeds=[0, 1, 2], save_to=save_to)


def test_process_pool_reproduces_serial_table(tmp_path):
    serial = experiments().run(progress=False).frame()
    pooled_results = experiments(save_to=tmp_path).run(progress=False, workers=2)
    pooled = pooled_results.frame()
    assert serial[["hmm", "filter", "upd_a"]].equals(pooled[["hmm", "filter", "upd_a"]])
    np.testing.assert_array_equal(serial[METRIC_COLUMNS].to_numpy(), pooled[METRIC_COLUMNS].to_numpy())
    assert len(list(tmp_path.glob("*.json"))) == 18  # saved by the parent as runs finished


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend"):
        experiments().run(backend="dask")


MPI_SCRIPT = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {tests!r})
    from test_parallel import experiments
    frame = experiments().run(progress=False, backend="mpi").frame()
    json.dump(frame[{cols!r}].to_numpy().tolist(), open(sys.argv[1], "w"))
""")


def mpiexec() -> list[str]:
    require_extra("mpi", "mpi4py", commands=("mpiexec",))
    exe = shutil.which("mpiexec")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    extra = ["--oversubscribe"] if "Open MPI" in out or "OpenRTE" in out else []
    return [exe, "-n", "2", *extra]


def test_mpi_two_ranks_reproduce_serial_table(tmp_path):
    cmd = mpiexec()
    script = tmp_path / "mpi_run.py"
    script.write_text(MPI_SCRIPT.format(tests=os.path.dirname(__file__), cols=METRIC_COLUMNS))
    out = tmp_path / "frame.json"
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    proc = subprocess.run([*cmd, sys.executable, "-m", "mpi4py.futures", str(script), str(out)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    serial = experiments().run(progress=False).frame()[METRIC_COLUMNS].to_numpy()
    np.testing.assert_array_equal(np.array(json.loads(out.read_text()), dtype=float), serial)
