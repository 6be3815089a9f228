"""EnSF in its reference code's shock scenario (issue 19, item 3): EnSF against an LETKF tuned for
that scenario, and the same pair without shocks.

    python benchmarks/ensf_shock.py                    # a tiny check (minutes); rows to a temp folder
    python benchmarks/ensf_shock.py --full --rows-dir benchmarks/claims --markdown   # the real run

Setting: ``mods.Lorenz96.bao2024.build(shock=True)`` (``run_all_EnSF/param_problem.csv`` problem 3
of github.com/zezhongzhang/EnSF: Nx = 100 in its tuning runs, arctan observations of every variable
every 10 steps of 0.01 with sigma 0.05, 1500 steps; the truth jumps ``x += size |x| N(0, I)`` after
41 steps of ``data/shock_profile_1.npy``, unknown to the filters). Time averages over the last
``averaged`` analyses.

Filters: EnSF with the reference's tuned settings (``run_all_EnSF/param_EnSF.csv``, method 0: N =
20, eps_a 0.5, eps_b 0.025, 500 reverse steps; ``--ensf-steps`` to change) and the LETKF (N = 20,
the reference's tuned one had inflation 1.1 and radius 4) with its inflation and localization
radius tuned on a grid *in the shock scenario* (``--tune-seeds``), scored on ``--seeds``.

Full-run cost: about 30 min on 2 CPU cores (150 cycles, Nx = 100, 8 seeds x 2 scenarios, a 24-point
LETKF grid on 2 tuning seeds); on a loaded machine the tuning alone took 17 min.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import numpy as np
from claims import mean_se, write_rows

import dafilters as daf
from mods.Lorenz96 import bao2024 as B

TINY = dict(Nx=40, Ko=49, averaged=25, seeds=[1, 2], tune_seeds=[100], ensf_steps=100,
            infl=[1.1, 1.3], loc_rad=[4.0])
FULL = dict(Nx=100, Ko=149, averaged=50, seeds=[1, 2, 3, 4, 5, 6, 7, 8], tune_seeds=[100, 101],
            ensf_steps=500, infl=[1.0, 1.1, 1.2, 1.4, 1.7, 2.0], loc_rad=[1.0, 2.0, 4.0, 8.0])
PAPER = ("EnSF robust to shocks where the LETKF is not (Bao, Zhang & Zhang 2024, Sec. 4; "
         "run_all_EnSF/param_problem.csv problem 3)")


def score(hmm, flt, seeds) -> list[float]:
    out = []
    for s in seeds:
        xx, yy = hmm.simulate(s)
        a = flt.assimilate(hmm, xx, yy, seed=s).averages()["rmse.a"]
        out.append(a if np.isfinite(a) else np.inf)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="the real run")
    p.add_argument("--rows-dir", default=None, help="claims rows folder (default: a new temp folder)")
    p.add_argument("--ensf-steps", type=int, default=None, help="EnSF reverse steps")
    p.add_argument("--markdown", action="store_true", help="print the rows as a Markdown table")
    args = p.parse_args(argv)
    cfg = FULL if args.full else TINY
    rows_dir = Path(args.rows_dir) if args.rows_dir else Path(tempfile.mkdtemp(prefix="ensf_shock_rows_"))
    shock = B.build(Nx=cfg["Nx"], Ko=cfg["Ko"], averaged=cfg["averaged"], shock=True)
    plain = B.build(Nx=cfg["Nx"], Ko=cfg["Ko"], averaged=cfg["averaged"])
    ensf = daf.EnSF(N=20, eps_a=0.5, eps_b=0.025, steps=args.ensf_steps or cfg["ensf_steps"])
    grid = [daf.LETKF(N=20, infl=i, loc_rad=r) for i, r in itertools.product(cfg["infl"], cfg["loc_rad"])]
    t0 = time.time()
    letkf = min(grid, key=lambda f: np.mean(score(shock, f, cfg["tune_seeds"])))
    print(f"LETKF tuned for shocks: infl={letkf.infl:g}, loc_rad={letkf.loc_rad:g} "
          f"[{time.time() - t0:.0f} s]")
    rows = []
    for hmm, claim in ((shock, "beats a tuned LETKF under shocks"),
                       (plain, "beside the LETKF without shocks (contrast)")):
        t0 = time.time()
        e, l = score(hmm, ensf, cfg["seeds"]), score(hmm, letkf, cfg["seeds"])
        ours, se = mean_se(e)
        lm = float(np.mean(l))
        name = f"LETKF N=20 infl={letkf.infl:g} loc_rad={letkf.loc_rad:g} (tuned with shocks)"
        holds = ("yes" if ours < lm else "no") if args.full else "not at this scale"
        rows.append(dict(method="EnSF", claim=claim,
                         setting=f"{hmm.name}, Ko={cfg['Ko']}, last {cfg['averaged']} analyses",
                         N=20, metric="rmse.a", paper=PAPER, ours=ours, ours_se=se, comparator_name=name,
                         comparator=lm, classical_name=name, classical=lm, holds=holds))
        print(f"{hmm.name}: EnSF {ours:.3f} ± {se:.2g}, LETKF {lm:.3f}  [{time.time() - t0:.0f} s]",
              flush=True)
    path = write_rows("ensf_shock" if args.full else "ensf_shock_tiny", rows, rows_dir)
    print(f"rows: {path}")
    if args.markdown:
        from claims import markdown
        print(markdown(rows))


if __name__ == "__main__":
    main()
