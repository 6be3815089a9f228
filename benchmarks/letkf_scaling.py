"""How the LETKF's time per cycle grows with the state size Nx and the ensemble size N.

    python benchmarks/letkf_scaling.py                       # Nx 40..40000 at N=20; N 5..80 at Nx=400
    python benchmarks/letkf_scaling.py --threads 2 --markdown

Setting: Lorenz-96 with full observation (R = I), dt 0.05, observations every step (sakov2008 with
``Nx`` variables), ``LETKF(infl=1.04, loc_rad=4, batch=2)`` as in DAPPER's sakov2008. Each row
times ``--cycles`` cycles through the driver (forecast, analysis and statistics) on one BLAS
thread; "analysis ms" times the analysis hook alone (the local analyses), the rest of the cycle
is the model step and the statistics.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from tabulate import tabulate
from threadpoolctl import threadpool_limits

import dafilters as daf
from dafilters.filters.base import Context
from dafilters.hmm import streams
from mods.Lorenz96 import Lorenz96, sakov2008, x0


def lorenz96(Nx: int, Ko: int) -> daf.HMM:
    """sakov2008 with ``Nx`` variables (full observation, R = I) and ``Ko + 1`` cycles."""
    return sakov2008.HMM.replace(dyn=Lorenz96(Nx), obs=daf.IdentityObs(Nx, 1.0),
                                 prior=daf.GaussPrior(x0(Nx), 0.001), name=f"Lorenz96(Nx={Nx})",
                                 tseq=dict(Ko=Ko, BurnIn=0.0))


def time_row(Nx: int, N: int, cycles: int, threads: int) -> dict:
    """Milliseconds per cycle of the whole driver, and of the analysis hook alone."""
    hmm = lorenz96(Nx, cycles - 1)
    flt = daf.LETKF(N=N, infl=1.04, loc_rad=4, batch=2, threads=threads)
    xx, yy = hmm.simulate(1)
    stats = flt.assimilate(hmm, xx, yy, seed=1)
    ctx = Context(hmm=hmm, rng=streams(1)[2], seed=1)
    E = flt.initialize(ctx)
    E = xx[0] + np.random.default_rng(0).standard_normal(E.shape)  # spread around the truth
    flt.analysis(E, yy[0], 0, ctx)  # local sets computed and cached
    start = time.perf_counter()
    for ko in range(min(cycles, 50)):
        flt.analysis(E, yy[ko], ko, ctx)
    analysis = (time.perf_counter() - start) / min(cycles, 50)
    return {"Nx": Nx, "N": N, "ms/cycle": 1e3 * stats.s_per_cycle, "analysis ms": 1e3 * analysis,
            "rmse.a": stats.averages()["rmse.a"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--Nx", type=int, nargs="+", default=[40, 400, 4000, 40000])
    p.add_argument("--N", type=int, nargs="+", default=[5, 10, 20, 40, 80])
    p.add_argument("--N-at", type=int, default=400, help="state size of the rows over N")
    p.add_argument("--cycles", type=int, default=100)
    p.add_argument("--threads", type=int, default=1, help="threads for the local eigenproblems")
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args()
    rows = []
    with threadpool_limits(limits=1):
        for Nx in args.Nx:
            rows.append(time_row(Nx, 20, max(10, args.cycles * 40 // max(Nx, 40)), args.threads))
            print(rows[-1], flush=True)
        for N in args.N:
            if N != 20 or args.N_at not in args.Nx:
                rows.append(time_row(args.N_at, N, args.cycles, args.threads))
                print(rows[-1], flush=True)
    table = [[r["Nx"], r["N"], f"{r['ms/cycle']:.2f}", f"{r['analysis ms']:.2f}",
              f"{r['analysis ms'] / r['Nx'] * 1e3:.1f}", f"{r['rmse.a']:.3f}"] for r in rows]
    print(tabulate(table, ["Nx", "N", "ms/cycle", "analysis ms", "analysis µs per point", "rmse.a"],
                   tablefmt="github" if args.markdown else "simple", disable_numparse=True))


if __name__ == "__main__":
    main()
