"""dafilters against DAPPER on the rows of docs/design.md (Reference figures): rmse.a and ms per cycle.

Both libraries assimilate the same truth and observations (simulated by dafilters; our ``xx``/``yy``
follow DAPPER's conventions), on one BLAS thread, on this machine, except where a row names a
thread count for ours (the LETKF's local eigenproblems split over threads). Time is the wall time
of the assimilation loop (statistics included, as in DAPPER), divided by the number of observation
cycles. The LETKF rows use DAPPER's localization batches of 2 points (``batch=2``) on both sides.
``--clock cpu`` times both libraries by the CPU time of the process instead (the whole
``assimilate`` call on both sides: less sensitive to other work on the machine than wall time).

    python benchmarks/vs_dapper.py                       # 5000 cycles, seed 3000
    python benchmarks/vs_dapper.py --seeds 3000 1 2 --rows Lorenz63 --markdown
    python benchmarks/vs_dapper.py --rows LinearGauss --space ensemble   # the (N, N) EnKF analysis
    python benchmarks/vs_dapper.py --rows "sakov2012  EnKF" --cycles 3000 --clock cpu
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from tabulate import tabulate
from threadpoolctl import threadpool_limits

import dafilters as daf
from mods.Lorenz63 import sakov2012
from mods.Lorenz96 import sakov2008


def lorenz96(Nx: int) -> daf.HMM:
    """sakov2008 with ``Nx`` variables (full observation, R = I)."""
    from mods.Lorenz96 import Lorenz96, x0

    return sakov2008.HMM.replace(dyn=Lorenz96(Nx), obs=daf.IdentityObs(Nx, 1.0),
                                 prior=daf.GaussPrior(x0(Nx), 0.001), name=f"Lorenz96(Nx={Nx})")


def dapper_lorenz96(Nx: int):
    """DAPPER's sakov2008 HMM with ``Nx`` variables (localization batches of 2, as sakov2008)."""
    import dapper.mods as modelling
    from dapper.mods.Lorenz96 import dstep_dx, step, x0
    from dapper.tools.localization import nd_Id_localization

    Obs = modelling.partial_Id_Obs(Nx, np.arange(Nx))
    Obs["noise"] = 1
    Obs["localizer"] = nd_Id_localization((Nx,), (2,))
    dyn = {"M": Nx, "model": step, "linear": dstep_dx, "noise": 0}
    tseq = modelling.Chronology(0.05, dko=1, Ko=10, BurnIn=20)
    return modelling.HiddenMarkovModel(dyn, Obs, tseq, modelling.GaussRV(mu=x0(Nx), C=0.001))


def linear_gauss() -> daf.HMM:
    """LinearGauss with 6 variables, 2 of them (0 and 3) observed: few observations, large N."""
    from mods import LinearGauss

    return LinearGauss.build(Nx=6, obs_every=3)


def dapper_linear_gauss():
    """The same linear-Gaussian HMM in DAPPER (x <- M x + N(0, 0.1 I), y = x[[0, 3]] + N(0, 0.5 I))."""
    import dapper.mods as modelling

    from mods.LinearGauss import transition_matrix

    M = transition_matrix(6)
    Obs = modelling.partial_Id_Obs(6, np.arange(0, 6, 3))
    Obs["noise"] = 0.5
    dyn = {"M": 6, "model": lambda x, t, dt: x @ M.T, "linear": lambda x, t, dt: M, "noise": 0.1}
    tseq = modelling.Chronology(1.0, dko=1, Ko=10, BurnIn=20)
    return modelling.HiddenMarkovModel(dyn, Obs, tseq, modelling.GaussRV(mu=np.zeros(6), C=1.0))


@dataclass
class Row:
    """One row: our filter, the DAPPER method that corresponds, the published figures."""

    setting: object  # the mods setting module (its HMM), or a callable giving our HMM
    dapper_setting: object  # DAPPER's module path, or a callable giving DAPPER's HMM
    ours: Callable[[], daf.Filter]
    theirs: Callable[[object], object]  # da_methods -> DAPPER method
    ref_rmse: str = ""
    ref_ms: float | str = ""
    cycles: int | None = None  # overrides --cycles (large rows)

    def hmm(self) -> daf.HMM:
        return self.setting() if callable(self.setting) else self.setting.HMM

    @property
    def label(self) -> str:
        return f"{self.hmm().name}  {self.method}"

    @property
    def method(self) -> str:
        """Our filter's name, with the thread count where it is set (not a hyper-parameter)."""
        flt = self.ours()
        threads = getattr(flt, "threads", None)
        return flt.name + ("" if threads is None else f" [{threads} thread{'s' * (threads > 1)}]")


ROWS = [
    Row(sakov2012, "dapper.mods.Lorenz63.sakov2012", lambda: daf.EnKF("Sqrt", N=10, infl=1.02, rot=True),
        lambda da: da.EnKF("Sqrt", N=10, infl=1.02, rot=True), "0.564 ± 0.014", 4.8),
    Row(sakov2012, "dapper.mods.Lorenz63.sakov2012", lambda: daf.EnKF("PertObs", N=10, infl=1.04),
        lambda da: da.EnKF("PertObs", N=10, infl=1.04), "0.626 ± 0.024", 4.1),
    Row(sakov2008, "dapper.mods.Lorenz96.sakov2008", lambda: daf.EnKF("Sqrt", N=40, infl=1.01),
        lambda da: da.EnKF("Sqrt", N=40, infl=1.01), "0.180 ± 0.002", 3.6),
    Row(sakov2008, "dapper.mods.Lorenz96.sakov2008", lambda: daf.EnKF("DEnKF", N=40, infl=1.01),
        lambda da: da.EnKF("DEnKF", N=40, infl=1.01), "0.181 ± 0.002", 4.1),
    Row(sakov2008, "dapper.mods.Lorenz96.sakov2008", lambda: daf.EnKF("PertObs", N=40, infl=1.06),
        lambda da: da.EnKF("PertObs", N=40, infl=1.06), "0.219 ± 0.002", 4.4),
    Row(sakov2008, "dapper.mods.Lorenz96.sakov2008", lambda: daf.LETKF(N=20, infl=1.04, loc_rad=4, batch=2),
        lambda da: da.LETKF(N=20, infl=1.04, loc_rad=4), "0.217 ± 0.002", 10.2),
    Row(sakov2008, "dapper.mods.Lorenz96.sakov2008",
        lambda: daf.LETKF(N=7, infl=1.04, loc_rad=4, rot=True, batch=2),
        lambda da: da.LETKF(N=7, infl=1.04, loc_rad=4, rot=True), "0.219 ± 0.002", 7.5),
    Row(sakov2012, "dapper.mods.Lorenz63.sakov2012", lambda: daf.PartFilt(N=100, reg=2.4, NER=0.3),
        lambda da: da.PartFilt(N=100, reg=2.4, NER=0.3), "0.506 ± 0.065 (0.36-0.40)", 4.6),
    Row(linear_gauss, dapper_linear_gauss, lambda: daf.EnKF("Sqrt", N=400),
        lambda da: da.EnKF("Sqrt", N=400), cycles=1000),
    Row(linear_gauss, dapper_linear_gauss, lambda: daf.EnKF("PertObs", N=400),
        lambda da: da.EnKF("PertObs", N=400), cycles=1000),
    Row(lambda: lorenz96(400), lambda: dapper_lorenz96(400),
        lambda: daf.LETKF(N=20, infl=1.04, loc_rad=4, batch=2),
        lambda da: da.LETKF(N=20, infl=1.04, loc_rad=4), cycles=500),
    Row(lambda: lorenz96(4000), lambda: dapper_lorenz96(4000),
        lambda: daf.LETKF(N=20, infl=1.04, loc_rad=4, batch=2, threads=1),
        lambda da: da.LETKF(N=20, infl=1.04, loc_rad=4), cycles=60),
    Row(lambda: lorenz96(4000), lambda: dapper_lorenz96(4000),
        lambda: daf.LETKF(N=20, infl=1.04, loc_rad=4, batch=2, threads=2),
        lambda da: da.LETKF(N=20, infl=1.04, loc_rad=4), cycles=60),
]


#: How runs are timed: ``"wall"`` (the assimilation loop's wall time) or ``"cpu"`` (the process's
#: CPU time over the whole ``assimilate`` call).
CLOCK = "wall"


def run_ours(row: Row, hmm: daf.HMM, xx, yy, seed: int) -> tuple[float, float, float]:
    flt = row.ours()
    start = time.process_time()
    stats = flt.assimilate(hmm, xx, yy, seed=seed)
    cpu_ms = 1e3 * (time.process_time() - start) / (hmm.tseq.Ko + 1)
    a = stats.averages()
    return a["rmse.a"], a["rmse.a.ci"], cpu_ms if CLOCK == "cpu" else 1e3 * stats.s_per_cycle


def run_dapper(row: Row, hmm: daf.HMM, xx, yy, seed: int) -> tuple[float, float, float]:
    import importlib

    import dapper
    import dapper.da_methods as da
    import dapper.mods as modelling
    import dapper.tools.progressbar as pb

    pb.disable_progbar = True
    if callable(row.dapper_setting):
        H = row.dapper_setting()
    else:
        H = importlib.import_module(row.dapper_setting).HMM.copy()
    t = hmm.tseq
    H.tseq = modelling.Chronology(t.dt, dko=t.dko, Ko=t.Ko, BurnIn=t.BurnIn)
    xp = row.theirs(da)
    dapper.set_seed(seed)
    clock = time.process_time if CLOCK == "cpu" else time.perf_counter
    with threadpool_limits(limits=1):
        start = clock()
        xp.assimilate(H, xx, yy, liveplots=False)
        ms = 1e3 * (clock() - start) / (t.Ko + 1)
    xp.stats.average_in_time()
    r = xp.avrgs.rmse.a
    return r.val, r.prec, ms


def combine(values: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    """Mean over seeds; ci of the mean = sqrt(sum ci^2)/n; mean ms."""
    v = np.array(values)
    return v[:, 0].mean(), np.sqrt(np.sum(v[:, 1] ** 2)) / len(v), v[:, 2].mean()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=5000, help="observation cycles (default 5000)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[3000])
    parser.add_argument("--rows", default="", help="only rows whose label contains this text")
    parser.add_argument("--no-dapper", action="store_true", help="dafilters only")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    parser.add_argument("--space", choices=["ensemble", "obs"], default=None,
                        help="force the EnKF's analysis form (default: observation space when Ny < N)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="time by wall time (default) or by the process's CPU time")
    args = parser.parse_args()
    daf.filters.enkf.FORCE_SPACE = args.space
    global CLOCK
    CLOCK = args.clock
    try:
        import dapper  # noqa: F401
    except ImportError:
        print("dapper is not installed (pip install -e '.[dapper]'): dafilters rows only")
        args.no_dapper = True

    table = []
    for row in [r for r in ROWS if args.rows in r.label]:
        cycles = row.cycles or args.cycles
        t = row.hmm().tseq  # short rows: burn-in at most a fifth of the run
        burn = min(t.BurnIn, 0.2 * cycles * t.dko * t.dt)
        hmm = row.hmm().replace(tseq=dict(Ko=cycles - 1, BurnIn=burn))
        ours, theirs = [], []
        for seed in args.seeds:
            xx, yy = hmm.simulate(seed)
            ours.append(run_ours(row, hmm, xx, yy, seed))
            if not args.no_dapper:
                theirs.append(run_dapper(row, hmm, xx, yy, seed))
        mu, ci, ms = combine(ours)
        line = [hmm.name, row.method, cycles, f"{mu:.3f} ± {ci:.3f}", f"{ms:.2f}"]
        if theirs:
            dmu, dci, dms = combine(theirs)
            line += [f"{dmu:.3f} ± {dci:.3f}", f"{dms:.2f}", f"{dms / ms:.1f}x",
                     "yes" if daf.stats.agrees(mu, ci, dmu, dci) else "NO"]
        line += [row.ref_rmse, row.ref_ms]
        table.append(line)
        print(" | ".join(map(str, line)), flush=True)
    head = ["setting", "method", "cycles", "rmse.a (dafilters)", "ms/cycle"]
    if not args.no_dapper:
        head += ["rmse.a (DAPPER)", "DAPPER ms/cycle", "speed-up", "equal rmse"]
    head += ["reference rmse.a", "reference DAPPER ms"]
    print()
    print(tabulate(table, head, tablefmt="github" if args.markdown else "simple", disable_numparse=True))


if __name__ == "__main__":
    main()
