"""Optuna against grid search: LETKF on Lorenz-96 (40 variables, every 4th observed, sigma_y = 1).

For each ensemble size, a 64-point grid (8 inflations x 8 localization radii) and an Optuna study
of 16 trials over the same box tune the LETKF on the same seed; the script prints the best rmse.a
of each, their wall times, the gap between them, and the speed-up of running the grid with
``workers=2``. The best of a grid is optimistic on the seeds it was picked on (64 noisy scores, the
lowest kept), so both winners are then scored on separate evaluation seeds, and it is that score
which is compared with the published tuned DAPPER value (docs/design.md, Reference figures).

    python benchmarks/tuning.py                 # N = 10 and 20, 1500 cycles, tuning seeds 1 2
    python benchmarks/tuning.py --seeds 1 2 --eval-seeds 11 12 13 14
    python benchmarks/tuning.py --N 20 --trials 16 --markdown
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from tabulate import tabulate

import dafilters as daf
from mods.Lorenz96 import bach2025

PUBLISHED = {5: 2.635, 10: 2.020, 15: 1.745, 20: 1.577, 40: 1.396, 60: 1.341, 100: 1.304}
INFL = (1.0, 1.2)
RADIUS = (1.0, 10.0)


def grid_search(hmm, N: int, seeds: list[int], workers: int) -> tuple[float, dict, float]:
    grid = daf.Experiments.grid(daf.LETKF, N=N, infl=list(np.geomspace(*INFL, 8)),
                                loc_rad=list(np.geomspace(*RADIUS, 8)))
    start = time.perf_counter()
    res = daf.Experiments(hmm, grid, seeds=seeds).run(progress=False, workers=workers)
    wall = time.perf_counter() - start
    df = res.frame()
    best = df.loc[df["rmse.a"].idxmin()]
    return float(best["rmse.a"]), {"infl": best["infl"], "loc_rad": best["loc_rad"]}, wall


def optuna_search(hmm, N: int, seeds: list[int], trials: int) -> tuple[float, dict, float]:
    start = time.perf_counter()
    res = daf.tune(daf.LETKF(N=N), hmm, n_trials=trials, seeds=seeds,
                   space={"infl": ("log", *INFL), "loc_rad": ("log", *RADIUS)})
    return res.value, res.params, time.perf_counter() - start


def evaluate(hmm, N: int, params: dict, seeds: list[int]) -> tuple[float, float]:
    """rmse.a (and its ci) of the LETKF with ``params`` on the evaluation ``seeds``."""
    flt = daf.LETKF(N=N, infl=float(params["infl"]), loc_rad=float(params["loc_rad"]))
    row = daf.Experiments(hmm, flt, seeds=seeds).run(progress=False, workers=2).frame().iloc[0]
    return float(row["rmse.a"]), float(row["rmse.a.ci"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--N", type=int, nargs="+", default=[10, 20])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2], help="tuning seeds (mean score)")
    parser.add_argument("--eval-seeds", type=int, nargs="+", default=[11, 12, 13, 14])
    parser.add_argument("--cycles", type=int, default=1500)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    hmm = bach2025.build(sigma=1.0, every=4, Ko=args.cycles - 1)
    rows = []
    for N in args.N:
        g_best, g_par, g_wall = grid_search(hmm, N, args.seeds, workers=1)
        _, _, g_wall2 = grid_search(hmm, N, args.seeds, workers=2)
        o_best, o_par, o_wall = optuna_search(hmm, N, args.seeds, args.trials)
        pub = PUBLISHED[N]
        g_eval, g_ci = evaluate(hmm, N, g_par, args.eval_seeds)
        o_eval, o_ci = evaluate(hmm, N, o_par, args.eval_seeds)
        rows.append([
            N, f"{g_best:.3f}", f"{g_par['infl']:.3f}, {g_par['loc_rad']:.2f}", f"{g_wall:.0f}",
            f"{o_best:.3f}", f"{o_par['infl']:.3f}, {o_par['loc_rad']:.2f}", f"{o_wall:.0f}",
            f"{100 * (o_best / g_best - 1):+.1f}%", f"{g_eval:.3f} ± {g_ci:.3f}",
            f"{o_eval:.3f} ± {o_ci:.3f}", pub, f"{100 * (g_eval / pub - 1):+.1f}%",
            f"{g_wall2:.0f}", f"{g_wall / g_wall2:.2f}x",
        ])
        print(rows[-1], flush=True)
    head = ["N", "grid best", "grid infl, loc_rad", "grid s", f"optuna ({args.trials}) best",
            "optuna infl, loc_rad", "optuna s", "optuna vs grid", "grid best, eval seeds",
            "optuna best, eval seeds", "published", "grid (eval) vs published",
            "grid s (workers=2)", "speed-up"]
    print(tabulate(rows, head, tablefmt="github" if args.markdown else "simple", disable_numparse=True))


if __name__ == "__main__":
    main()
