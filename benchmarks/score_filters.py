"""Score-based filters beside classical ones, in the settings of their papers.

    python benchmarks/score_filters.py                      # both tables, default seeds
    python benchmarks/score_filters.py --tables ensf --seeds 1 2 3 --markdown
    python benchmarks/score_filters.py --tables ssls --sizes 50 200 --markdown

``ensf``: the EnSF setting (``mods.Lorenz96.bao2024``, Nx=100, arctan of every variable every 10
RK4 steps, sigma_y=0.05, 150 cycles; rmse.a is the mean over the last 50 analyses). EnSF with the
paper's tuned values (N=20, eps_a 0.5, eps_b 0.025, 200 reverse steps) and tuned here (eps_a,
eps_b); LETKF and EnKF (Sqrt), N=20, each tuned with Optuna on a separate tuning seed.

``ssls``: the SSLS setting (``mods.Lorenz96.ssls``, Nx=20, dt 0.05, identity observation every
step with sigma=2, model noise 0.1 sqrt(dt)); 200 cycles, the first 50 left out of the
averages. SSLS with its defaults, the auxiliary particle filter (regularisation ``reg`` tuned) and
the EnKF (Sqrt, inflation tuned) at N = 50, 200, 500, with RMSE and CRPS.

Every tuned entry is tuned on ``--tune-seeds`` and evaluated on ``--seeds`` (disjoint), so no
score is reported on the seeds it was tuned on. Seconds per cycle are the mean wall time of a run
divided by its number of cycles (forecast + analysis + statistics).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time

import dafilters as daf
from mods.Lorenz96 import bao2024, ssls

METRICS = ("rmse.a", "crps.a", "spread.a")


def ensf_entries(trials: int, tune_seeds: list[int]) -> list:
    tuned = dict(n_trials=trials, tune_seeds=tune_seeds)
    return [
        daf.EnSF(N=20, eps_a=0.5, eps_b=0.025, steps=200),
        daf.Tuned(daf.EnSF(N=20, steps=200), space={"eps_a": ("log", 0.2, 0.9), "eps_b": ("log", 0.01, 0.05),
                                                        "steps": None, "infl_f": None},
                  **tuned),
        daf.Tuned(daf.LETKF(N=20), space={"infl": ("log", 1.0, 1.3), "loc_rad": ("log", 0.5, 10)},
                  **tuned),
        daf.Tuned(daf.EnKF("Sqrt", N=20), space={"infl": ("log", 1.0, 1.5)}, **tuned),
    ]


def ssls_entries(N: int, trials: int, tune_seeds: list[int]) -> list:
    tuned = dict(n_trials=trials, tune_seeds=tune_seeds)
    return [
        daf.SSLS.cheap(N=N),  # the settings of the figures below (the reference defaults cost ~100x)
        daf.Tuned(daf.APF(N=N), space={"reg": ("log", 0.05, 4.0)}, **tuned),
        daf.Tuned(daf.EnKF("Sqrt", N=N), space={"infl": ("log", 1.0, 1.3)}, **tuned),
    ]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tables", nargs="+", default=["ensf", "ssls"], choices=["ensf", "ssls"])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    p.add_argument("--tune-seeds", type=int, nargs="+", default=[100, 101])
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--sizes", type=int, nargs="+", default=[50, 200, 500], help="ensemble sizes (ssls)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--save-to", default=None, help="keep the runs here (resumable)")
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args(argv)

    print(f"# {platform.machine()}, {os.cpu_count()} cores, {datetime.date.today().isoformat()}; "
          f"seeds {args.seeds}, tuning seeds {args.tune_seeds}, {args.trials} Optuna trials per tuned entry")
    for table in args.tables:
        start = time.perf_counter()
        if table == "ensf":
            hmm = bao2024.build(Nx=100, sigma=0.05)
            entries = ensf_entries(args.trials, args.tune_seeds)
        else:
            hmm = ssls.build(sigma=2.0, Ko=199, burn_in_cycles=50)
            entries = [e for N in args.sizes for e in ssls_entries(N, args.trials, args.tune_seeds)]
        save = None if args.save_to is None else os.path.join(args.save_to, table)
        res = daf.Experiments(hmm, entries, seeds=args.seeds, save_to=save).run(
            progress=False, workers=args.workers)
        print(f"\n## {hmm.name}  ({time.perf_counter() - start:.0f} s in all)\n")
        res.table(metrics=METRICS + ("rmse.f",), tablefmt="github" if args.markdown else "simple")


if __name__ == "__main__":
    main()
