"""The MNMEF paper's L96-40 LETKF baseline in dafilters and in DAPPER on the same truths.

    python benchmarks/bach2025_dapper.py --N 40 --infl 1.055 --loc-rad 4.07 --seeds 1 2 3 4

Both libraries assimilate the same observations of the same truth (``mods.Lorenz96.bach2025``:
dt 0.03, every 4th variable observed every 0.15 with sigma_y 1, 1500 cycles, 15 time units of
burn-in) with the same LETKF settings (DAPPER: one localization batch per point), and print
rmse.a per seed and the mean, beside the published tuned figure (docs/design.md, Reference figures). It tells
whether a gap to the published figure is ours or the setting's.
"""

from __future__ import annotations

import argparse

import numpy as np
from vs_dapper import Row, run_dapper, run_ours

import dafilters as daf
from mods.Lorenz96 import bach2025

PUBLISHED = {5: 2.635, 10: 2.020, 15: 1.745, 20: 1.577, 40: 1.396, 60: 1.341, 100: 1.304}


def dapper_hmm(every: int = 4, Nx: int = 40):
    """DAPPER's version of ``bach2025.build(sigma=1, every=every)`` (its chronology is replaced by
    ours in :func:`vs_dapper.run_dapper`)."""
    import dapper.mods as modelling
    from dapper.mods.Lorenz96 import dstep_dx, step
    from dapper.tools.localization import nd_Id_localization

    inds = np.arange(0, Nx, every)
    Obs = modelling.partial_Id_Obs(Nx, inds)
    Obs["noise"] = 1
    Obs["localizer"] = nd_Id_localization((Nx,), obs_inds=inds)
    dyn = {"M": Nx, "model": step, "linear": dstep_dx, "noise": 0}
    tseq = modelling.Chronology(0.03, dko=5, Ko=1499, BurnIn=15)
    prior = modelling.GaussRV(mu=bach2025.attractor_point(Nx), C=1.0)
    return modelling.HiddenMarkovModel(dyn, Obs, tseq, prior)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--N", type=int, default=40)
    p.add_argument("--infl", type=float, default=1.055)
    p.add_argument("--loc-rad", dest="loc_rad", type=float, default=4.07)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    args = p.parse_args()
    row = Row(bach2025, dapper_hmm, lambda: daf.LETKF(N=args.N, infl=args.infl, loc_rad=args.loc_rad),
              lambda da: da.LETKF(N=args.N, infl=args.infl, loc_rad=args.loc_rad))
    hmm = bach2025.HMM
    ours, theirs = [], []
    for seed in args.seeds:
        xx, yy = hmm.simulate(seed=seed)
        ours.append(run_ours(row, hmm, xx, yy, seed)[0])
        theirs.append(run_dapper(row, hmm, xx, yy, seed)[0])
        print(f"seed {seed}: dafilters {ours[-1]:.3f}  DAPPER {theirs[-1]:.3f}", flush=True)
    pub = PUBLISHED.get(args.N)
    for name, v in (("dafilters", ours), ("DAPPER", theirs)):
        m, se = np.mean(v), np.std(v, ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
        gap = f"  ({100 * (m / pub - 1):+.1f}% vs published {pub})" if pub else ""
        print(f"{name:9s} mean {m:.3f} ± {se:.3f}{gap}")


if __name__ == "__main__":
    main()
