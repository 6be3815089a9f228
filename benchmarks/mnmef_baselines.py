"""The MNMEF paper's tuned DAPPER baselines, reproduced with dafilters (docs/design.md, Reference figures).

For each row the LETKF's inflation and localization radius are tuned with Optuna on tuning seeds;
the best setting, and the setting the paper's grid search chose, are then evaluated on separate
seeds (1500 cycles each) and compared with the published rmse.a.

The published figures are means over 64 truths (seeds 1-64 of the paper's DAPPER grid search)
whose rmse.a scatter by 4-7% from truth to truth (L96-40: standard deviation 0.08-0.10), so a few
evaluation seeds cannot decide a 5% question: the default evaluates on 64 seeds, as the paper did,
and reports the standard error of the mean over seeds (``± se``; the pooled within-run interval of
``Experiments`` is much narrower than the truth-to-truth scatter).

    python benchmarks/mnmef_baselines.py --markdown          # all rows (~1 h on 2 idle cores)
    python benchmarks/mnmef_baselines.py --rows L96-40 --trials 24 --seeds $(seq 1 16)
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from tabulate import tabulate

import dafilters as daf
from dafilters.hmm import HMM
from mods.KS import bach2025 as ks
from mods.Lorenz96 import bach2025 as l96

BOX_L96 = {"infl": ("log", 1.0, 1.2), "loc_rad": ("log", 1, 10)}  # the optimum: infl 1.02-1.06
BOX_KS = {"infl": ("log", 1.0, 1.2), "loc_rad": ("log", 1, 40)}


@dataclass(frozen=True)
class Row:
    """One published baseline: the setting, N, the published rmse.a, the paper's (infl, loc_rad)
    (its DAPPER grid search, wispcarey/DapperGridSearch save/benchmarks_*.csv) and our search box."""

    build: Callable[[], HMM]
    N: int
    published: float
    paper_setting: tuple[float, float]
    space: dict


ROWS = {
    "L96-10": Row(lambda: l96.build(sigma=1.0), 10, 2.020, (1.04, 1.0), BOX_L96),
    "L96-20": Row(lambda: l96.build(sigma=1.0), 20, 1.577, (1.05, 3.0), BOX_L96),
    "L96-40": Row(lambda: l96.build(sigma=1.0), 40, 1.396, (1.04, 4.0), BOX_L96),
    "KS-20": Row(lambda: ks.build(sigma=1.0), 20, 0.995, (1.02, 8.0), BOX_KS),
}


def seed_mean(runs, name: str) -> tuple[float, float, int]:
    """Mean of rmse.a over the seeds that ran to the end, its standard error over seeds, count."""
    v = runs.loc[(runs["name"] == name) & (runs["status"] == "ok"), "rmse.a"].to_numpy()
    se = np.std(v, ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
    return float(np.mean(v)) if len(v) else float("nan"), float(se), len(v)


def gap(value: float, published: float) -> str:
    return f"{100 * (value / published - 1):+.1f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--tune-seeds", type=int, nargs="+", default=[100, 101, 102, 103])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 65)))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    table = []
    for key in args.rows:
        row = ROWS[key]
        hmm = row.build()
        start = time.perf_counter()
        infl, loc_rad = row.paper_setting
        paper = daf.LETKF(N=row.N, infl=infl, loc_rad=loc_rad)
        tuned = daf.Tuned(daf.LETKF(N=row.N), n_trials=args.trials, tune_seeds=args.tune_seeds,
                          space=row.space, workers=args.workers)
        res = daf.Experiments(hmm, [tuned, paper], seeds=args.seeds).run(progress=False,
                                                                         workers=args.workers)
        frame, runs = res.frame(), res.runs()
        best = frame[frame["tuned"]].iloc[0]
        tuned_name = next(n for n in runs["name"].unique() if n != paper.name)
        m_t, se_t, n_t = seed_mean(runs, tuned_name)
        m_p, se_p, n_p = seed_mean(runs, paper.name)
        table.append([key, row.N, f"{best['infl']:.3f}", f"{best['loc_rad']:.2f}",
                      f"{m_t:.3f} ± {se_t:.3f}", gap(m_t, row.published),
                      f"{infl:g}, {loc_rad:g}", f"{m_p:.3f} ± {se_p:.3f}", gap(m_p, row.published),
                      row.published, "yes" if m_t <= 1.05 * row.published else "no",
                      f"{min(n_t, n_p)}/{len(args.seeds)}", f"{time.perf_counter() - start:.0f}"])
        print(table[-1], flush=True)
    head = ["row", "N", "tuned infl", "tuned loc_rad", "tuned rmse.a", "gap", "paper's setting",
            "its rmse.a", "gap", "published", "tuned <= published + 5%", "seeds ok", "wall s"]
    print(tabulate(table, head, tablefmt="github" if args.markdown else "simple", disable_numparse=True))


if __name__ == "__main__":
    main()
