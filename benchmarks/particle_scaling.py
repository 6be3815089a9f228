"""Particle filters on Lorenz-63 as N grows: PartFilt and APF against DAPPER's PartFilt.

    python benchmarks/particle_scaling.py                          # N 100 .. 16000, seeds 1 2
    python benchmarks/particle_scaling.py --N 4000 --seeds 1 2 3 --markdown
    python benchmarks/particle_scaling.py --jitter-only            # the jitter step alone

Setting: ``mods.Lorenz63.sakov2012`` (full observation, R = 2 I, 25 RK4 steps per cycle),
``PartFilt(N, reg=2.4, NER=0.3)`` and ``APF(N, reg=2.4)``; DAPPER (which has no APF) runs its
``PartFilt(N, reg=2.4, NER=0.3)`` on the same truth and observations, on one BLAS thread, in the
same script run (timings on a shared machine drift: compare rows of one run). The number of cycles
shrinks with N (``CYCLES``; ``--cycles`` overrides); the burn-in is at most a fifth of the run.
ms/cycle is the wall time of the assimilation over the number of cycles; rmse.a ± its standard
error is combined over seeds as in ``vs_dapper.py``.

The jitter table times :func:`dafilters.filters.particle.jitter` alone with half the particles
duplicated, through the ``(Nx, Nx)`` factor (``reduce=True``, the default) and through the
``(N, Nx)`` weighted anomalies (``reduce=False``, the form used before 2026-11-29).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from tabulate import tabulate
from vs_dapper import Row, combine, run_dapper, run_ours

import dafilters as daf
from dafilters.filters.particle import bandwidth, jitter, weighted_cov_sqrt
from mods.Lorenz63 import sakov2012

CYCLES = {100: 2000, 1000: 1000, 4000: 400, 16000: 150}


def rows(N: int) -> list[Row]:
    """Our PartFilt and APF, each beside DAPPER's PartFilt with the same N."""
    dapper = "dapper.mods.Lorenz63.sakov2012"

    def theirs(da):
        return da.PartFilt(N=N, reg=2.4, NER=0.3)

    return [Row(sakov2012, dapper, lambda: daf.PartFilt(N=N, reg=2.4, NER=0.3), theirs),
            Row(sakov2012, dapper, lambda: daf.APF(N=N, reg=2.4), theirs)]


def time_jitter(N: int, reduce: bool, repeat: int) -> float:
    """Milliseconds per call of ``jitter`` on N Lorenz-63-like particles, half of them duplicates."""
    rng = np.random.default_rng(0)
    E = 8 * rng.standard_normal((N, 3))
    w = rng.random(N)
    w /= w.sum()
    idx = np.sort(np.repeat(np.arange(0, N, 2), 2))  # every particle duplicated once
    C12 = 2.4 * bandwidth(N, 3) * weighted_cov_sqrt(E, w)
    start = time.perf_counter()
    for _ in range(repeat):
        jitter(E, idx, C12, rng, reduce=reduce)
    return 1e3 * (time.perf_counter() - start) / repeat


def jitter_table(Ns: list[int]) -> tuple[list, list]:
    table = []
    for N in Ns:
        old = time_jitter(N, False, max(2, 20000 // N))
        new = time_jitter(N, True, max(20, 400000 // N))
        table.append([N, f"{old:.3f}", f"{new:.3f}", f"{old / new:.0f}x"])
    return table, ["N", "ms (N, Nx) draw", "ms (Nx, Nx) factor", "speed-up"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--N", type=int, nargs="+", default=[100, 1000, 4000, 16000])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    p.add_argument("--cycles", type=int, default=None, help="cycles for every N (default: CYCLES)")
    p.add_argument("--no-dapper", action="store_true")
    p.add_argument("--jitter-only", action="store_true", help="only time the jitter step")
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args()
    fmt = "github" if args.markdown else "simple"

    table, head = jitter_table(args.N)
    print(tabulate(table, head, tablefmt=fmt, disable_numparse=True), flush=True)
    if args.jitter_only:
        return
    print()
    table = []
    for N in args.N:
        cycles = args.cycles or CYCLES.get(N, max(100, 400000 // N))
        t = sakov2012.HMM.tseq
        burn = min(t.BurnIn, 0.2 * cycles * t.dko * t.dt)
        hmm = sakov2012.HMM.replace(tseq=dict(Ko=cycles - 1, BurnIn=burn))
        truths = {seed: hmm.simulate(seed) for seed in args.seeds}
        theirs = None
        if not args.no_dapper:
            theirs = combine([run_dapper(rows(N)[0], hmm, *truths[s], s) for s in args.seeds])
        for row in rows(N):
            mu, ci, ms = combine([run_ours(row, hmm, *truths[s], s) for s in args.seeds])
            line = [N, row.method, cycles, f"{mu:.3f} ± {ci:.3f}", f"{ms:.2f}"]
            if theirs is not None:
                dmu, dci, dms = theirs
                line += [f"{dmu:.3f} ± {dci:.3f}", f"{dms:.2f}", f"{dms / ms:.1f}x",
                         "yes" if daf.stats.agrees(mu, ci, dmu, dci) else "NO"]
            table.append(line)
            print(" | ".join(map(str, line)), flush=True)
    head = ["N", "method", "cycles", "rmse.a (dafilters)", "ms/cycle"]
    if not args.no_dapper:
        head += ["rmse.a (DAPPER PartFilt)", "DAPPER ms/cycle", "speed-up", "equal rmse"]
    print()
    print(tabulate(table, head, tablefmt=fmt, disable_numparse=True))


if __name__ == "__main__":
    main()
