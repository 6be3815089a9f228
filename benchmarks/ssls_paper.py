"""SSLS in its reference code's regime (issue 19, item 1): SSLS against the auxiliary particle
filter across ensemble sizes, with the EnKF (which the paper leaves out) in the same table.

    python benchmarks/ssls_paper.py                    # a tiny check (minutes); rows to a temp folder
    python benchmarks/ssls_paper.py --full --rows-dir benchmarks/claims --markdown   # the real run

Setting: ``mods.Lorenz96.ssls.reference(sigma)`` (``configs/lorenz96.json`` of
github.com/burning489/SSLS): the truth starts near the fixed point ``x = 8`` (``+0.01`` on
``x_0``), the filters from the biased prior ``N(2, I)``; 100 steps of dt = 0.05 with model noise
``0.1 sqrt(dt)``; all 20 variables observed every step with sigma_obs 0.5 or 1 (and 2);
``rmse.a`` averaged over all analyses (the paper's "Average RMSE").

Filters at each ``N``: SSLS with its defaults (the reference code's training and sampling), the
APF with its jitter ``reg`` tuned on a grid, and the square-root EnKF with its inflation tuned on a
grid (both tuned on ``--tune-seeds``, scored on ``--seeds``; the classical column is the better
of the two). The claim "SSLS beats the APF at every N" holds in a row when SSLS's mean rmse.a is
below the APF's.

Full-run cost: SSLS takes 41 s of one CPU core per cycle for its 600 U-Net steps of batch 200 plus
0.037 s per Langevin step at N = 500 (19 s; 75 s at N = 2000): 2 sigmas x 5 N x 4 seeds x 101
cycles is about 80 core-hours on a CPU. On a GPU (``--device cuda``) a cycle takes a few seconds:
about 3 hours for the full run, 1.5 with ``--seeds`` halved (the APF and EnKF take minutes).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from claims import mean_se, write_rows

import dafilters as daf
from mods.Lorenz96 import ssls as S

TINY = dict(sigmas=[1.0], Ns=[20, 50], steps=10, seeds=[1, 2], tune_seeds=[100],
            ssls=dict(train_steps=10, first_steps=20, langevin_steps=50),
            infl=[1.0, 1.1], reg=[0.5, 1.0])
FULL = dict(sigmas=[0.5, 1.0], Ns=[50, 200, 500, 1000, 2000], steps=100, seeds=[1, 2, 3, 4],
            tune_seeds=[100, 101], ssls={}, infl=[1.0, 1.02, 1.05, 1.1, 1.2, 1.4],
            reg=[0.0, 0.25, 0.5, 1.0, 2.0])
PAPER = "SSLS below the APF at every N (paper Fig. 3; notebooks/LorenzMetrics.ipynb)"


def score(hmm, flt, seeds) -> list[float]:
    """rmse.a (averaged over the analyses) of ``flt`` on the twins of ``seeds``."""
    out = []
    for s in seeds:
        xx, yy = hmm.simulate(s)
        a = flt.assimilate(hmm, xx, yy, seed=s).averages()["rmse.a"]
        out.append(a if np.isfinite(a) else np.inf)
    return out


def tuned(hmm, make, grid, tune_seeds):
    """The filter of ``grid`` (``make(value)``) with the lowest mean rmse.a on ``tune_seeds``."""
    return min((make(v) for v in grid), key=lambda f: np.mean(score(hmm, f, tune_seeds)))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="the real run (hours)")
    p.add_argument("--rows-dir", default=None, help="claims rows folder (default: a new temp folder)")
    p.add_argument("--sigmas", type=float, nargs="*", help="sigma_obs values (full: 0.5 1; add 2)")
    p.add_argument("--Ns", type=int, nargs="*", help="ensemble sizes")
    p.add_argument("--seeds", type=int, nargs="*", help="scoring seeds (full: 1 2 3 4)")
    p.add_argument("--device", default="cpu", help="torch device of SSLS")
    p.add_argument("--markdown", action="store_true", help="print the rows as a Markdown table")
    args = p.parse_args(argv)
    cfg = dict(FULL if args.full else TINY)
    cfg["sigmas"] = args.sigmas or cfg["sigmas"]
    cfg["Ns"] = args.Ns or cfg["Ns"]
    cfg["seeds"] = args.seeds or cfg["seeds"]
    rows_dir = Path(args.rows_dir) if args.rows_dir else Path(tempfile.mkdtemp(prefix="ssls_rows_"))
    rows = []
    for sigma in cfg["sigmas"]:
        hmm = S.reference(sigma=sigma, steps=cfg["steps"])
        for N in cfg["Ns"]:
            t0 = time.time()
            ssls = daf.SSLS(N=N, device=args.device, **cfg["ssls"])
            apf = tuned(hmm, lambda r, N=N: daf.APF(N=N, reg=r), cfg["reg"], cfg["tune_seeds"])
            enkf = tuned(hmm, lambda i, N=N: daf.EnKF("Sqrt", N=N, infl=i), cfg["infl"],
                         cfg["tune_seeds"])
            res = {name: score(hmm, f, cfg["seeds"]) for name, f in
                   (("SSLS", ssls), ("APF", apf), ("EnKF", enkf))}
            m = {k: float(np.mean(v)) for k, v in res.items()}
            ours, se = mean_se(res["SSLS"])
            best = min(("APF", "EnKF"), key=m.get)
            best_name = f"APF reg={apf.reg:g}" if best == "APF" else f"EnKF Sqrt infl={enkf.infl:g}"
            holds = ("yes" if ours < m["APF"] else "no") if args.full else "not at this scale"
            rows.append(dict(method="SSLS", claim="beats the APF at every N",
                             setting=f"{hmm.name}, {cfg['steps']} steps, all analyses averaged",
                             N=N, metric="rmse.a", paper=PAPER, ours=ours, ours_se=se,
                             comparator_name=f"APF reg={apf.reg:g}", comparator=m["APF"],
                             classical_name=best_name, classical=m[best], holds=holds))
            print(f"sigma={sigma:g} N={N}: SSLS {ours:.3f} ± {se:.2g}, APF(reg={apf.reg:g}) "
                  f"{m['APF']:.3f}, EnKF(infl={enkf.infl:g}) {m['EnKF']:.3f}  [{time.time() - t0:.0f} s]",
                  flush=True)
    path = write_rows("ssls_paper" if args.full else "ssls_paper_tiny", rows, rows_dir)
    print(f"rows: {path}")
    if args.markdown:
        from claims import markdown
        print(markdown(rows))


if __name__ == "__main__":
    main()
