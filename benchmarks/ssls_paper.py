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
of the two). The APF the claim is about is the better of that APF and the reference's own
(``notebooks/LorenzAuxiliaryParticleFilter.ipynb``: ``N(0, 0.5^2 I)`` added to every forecast
particle, then resampling by the likelihood; its second-stage weights are uniform, so it is the
bootstrap filter with that forecast noise: :func:`reference_apf`). The claim "SSLS beats the APF at
every N" holds in a row when SSLS's mean rmse.a is below that APF's.

``--apf-check`` runs only the two APFs (seconds) on ``--sigmas``, ``--Ns`` and ``--seeds``.

A reduced SSLS (``--train-steps``, ``--first-steps``, ``--langevin-steps``, ``--step`` other than
the reference's 600, 600, 500 and 1e-3; for CPU-sized runs) writes ``ssls_paper_reduced*.json``
(with the sigmas and Ns in the name when they are not the full run's) and names its settings in
the rows; a row then says "holds: yes" when even the reduced SSLS beats the APF and "not at this
scale" when it does not (the reduction may be why). The CPU-sized rows of benchmarks/README.md
(about 80 s of CPU per seed at N = 50, 8 seeds):

    python benchmarks/ssls_paper.py --full --sigmas 1 --Ns 50 --seeds 1 2 3 4 5 6 7 8 \
        --first-steps 300 --train-steps 5 --langevin-steps 100 --step 0.005 --rows-dir benchmarks/claims

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
from mods.Lorenz96 import Lorenz96
from mods.Lorenz96 import ssls as S

TINY = dict(sigmas=[1.0], Ns=[20, 50], steps=10, seeds=[1, 2], tune_seeds=[100],
            ssls=dict(train_steps=10, first_steps=20, langevin_steps=50),
            infl=[1.0, 1.1], reg=[0.5, 1.0])
FULL = dict(sigmas=[0.5, 1.0], Ns=[50, 200, 500, 1000, 2000], steps=100, seeds=[1, 2, 3, 4],
            tune_seeds=[100, 101, 102, 103], ssls={}, infl=[1.0, 1.02, 1.05, 1.1, 1.2, 1.4],
            reg=[0.0, 0.25, 0.5, 1.0, 2.0])
PAPER = "SSLS below the APF at every N (paper Fig. 3; notebooks/LorenzMetrics.ipynb)"


#: The reference APF's forecast noise (standard deviation per forecast, one model step).
REFERENCE_APF_NOISE = 0.5


def reference_apf(hmm, N: int):
    """The reference code's APF as a dafilters filter and the HMM it filters with: the bootstrap
    filter resampling (multinomially) every cycle without jitter, whose forecast adds
    ``N(0, 0.5^2 I)`` to every particle (the model noise per unit time raised by ``0.5^2 / dt``)."""
    dt = hmm.tseq.dt * hmm.tseq.dko
    dyn = Lorenz96(hmm.Nx, noise=S.MODEL_NOISE**2 + REFERENCE_APF_NOISE**2 / dt)
    return daf.PartFilt(N=N, resampl="Multinomial"), hmm.replace(dyn=dyn)


def score(hmm, flt, seeds, label: str | None = None, filter_hmm=None) -> list[float]:
    """rmse.a (averaged over the analyses) of ``flt`` on the twins of ``seeds`` (each printed
    with ``label`` when given); ``filter_hmm``: the HMM the filter assumes (default ``hmm``)."""
    out = []
    for s in seeds:
        t0 = time.time()
        xx, yy = hmm.simulate(s)
        a = flt.assimilate(filter_hmm or hmm, xx, yy, seed=s).averages()["rmse.a"]
        out.append(a if np.isfinite(a) else np.inf)
        if label:
            print(f"  {label} seed {s}: {a:.3f} [{time.time() - t0:.0f} s]", flush=True)
    return out


def finite_mean(values, name: str) -> tuple[float, str]:
    """The mean over the seeds where the filter did not diverge, and ``name`` noting how many
    did (a diverged run scores ``inf``; the mean over the others is the filter's best case)."""
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v)
    if ok.all():
        return float(v.mean()), name
    if not ok.any():
        return float("inf"), f"{name} (diverged on all {v.size} seeds)"
    return float(v[ok].mean()), (f"{name} (diverged on {v.size - ok.sum()} of {v.size} seeds; "
                                 "mean of the others)")


def tuned(hmm, make, grid, tune_seeds):
    """The filter of ``grid`` (``make(value)``) with the lowest mean rmse.a on ``tune_seeds``."""
    return min((make(v) for v in grid), key=lambda f: np.mean(score(hmm, f, tune_seeds)))


def apf_check(cfg: dict) -> list[list[str]]:
    """Both APFs (ours with ``reg`` tuned on the tuning seeds, and the reference's) at each sigma
    and N of ``cfg`` on its seeds, printed and returned as rows ``[sigma, N, ours, reference]``
    (mean rmse.a ± between-seed SE; a diverged run counts as ``inf``)."""
    from tabulate import tabulate

    rows = []
    for sigma in cfg["sigmas"]:
        hmm = S.reference(sigma=sigma, steps=cfg["steps"])
        for N in cfg["Ns"]:
            apf = tuned(hmm, lambda r, N=N: daf.APF(N=N, reg=r), cfg["reg"], cfg["tune_seeds"])
            ref, ref_hmm = reference_apf(hmm, N)
            cells = []
            for flt, fh in ((apf, None), (ref, ref_hmm)):
                mean, se = mean_se(score(hmm, flt, cfg["seeds"], filter_hmm=fh))
                cells.append(f"{mean:.3f} ± {se:.3f}")
            rows.append([f"{sigma:g}", str(N), f"{cells[0]} (reg {apf.reg:g})", cells[1]])
    print(tabulate(rows, ["sigma_obs", "N", "APF, reg tuned", "APF as the reference's"], tablefmt="github",
                   disable_numparse=True))
    return rows


def ssls_options(args, cfg: dict) -> tuple[dict, str]:
    """SSLS's keyword arguments (the configuration's, then the command line's training and
    sampling overrides) and a description of the reduction ('' at the reference's settings)."""
    kw = dict(cfg["ssls"])
    for key in ("train_steps", "first_steps", "langevin_steps", "step"):
        if getattr(args, key, None) is not None:
            kw[key] = getattr(args, key)
    ref = daf.SSLS()
    cut = [f"{k}={kw[k]:g} (reference {getattr(ref, k):g})" for k in ("train_steps", "first_steps",
                                                                        "langevin_steps", "step")
           if kw.get(k, getattr(ref, k)) != getattr(ref, k)]
    return kw, ("SSLS reduced: " + ", ".join(cut)) if cut else ""


def rows_name(args, cfg: dict, reduced: str) -> str:
    """The rows file's name: ``ssls_paper`` (``_reduced`` for a reduced SSLS, the sigmas and Ns
    when they are not the configuration's, ``_tiny`` for the tiny check)."""
    base = FULL if args.full else TINY
    name = "ssls_paper" + ("_reduced" if reduced else "")
    if (cfg["sigmas"], cfg["Ns"]) != (base["sigmas"], base["Ns"]):
        name += "_s" + "-".join(f"{s:g}" for s in cfg["sigmas"]) + "_N" + "-".join(map(str, cfg["Ns"]))
    return name + ("" if args.full else "_tiny")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="the real run (hours)")
    p.add_argument("--rows-dir", default=None, help="claims rows folder (default: a new temp folder)")
    p.add_argument("--sigmas", type=float, nargs="*", help="sigma_obs values (full: 0.5 1; add 2)")
    p.add_argument("--Ns", type=int, nargs="*", help="ensemble sizes")
    p.add_argument("--seeds", type=int, nargs="*", help="scoring seeds (full: 1 2 3 4)")
    p.add_argument("--tune-seeds", type=int, nargs="*", help="tuning seeds of the APF and EnKF")
    p.add_argument("--train-steps", type=int, help="SSLS optimiser steps per cycle (reference 600)")
    p.add_argument("--first-steps", type=int, help="SSLS optimiser steps in the first cycle (600)")
    p.add_argument("--langevin-steps", type=int, help="SSLS Langevin steps per analysis (500)")
    p.add_argument("--step", type=float, help="SSLS Langevin step size (reference 1e-3)")
    p.add_argument("--device", default="cpu", help="torch device of SSLS")
    p.add_argument("--apf-check", action="store_true", help="only the two APFs, printed (no rows)")
    p.add_argument("--markdown", action="store_true", help="print the rows as a Markdown table")
    args = p.parse_args(argv)
    cfg = dict(FULL if args.full else TINY)
    cfg["sigmas"] = args.sigmas or cfg["sigmas"]
    cfg["Ns"] = args.Ns or cfg["Ns"]
    cfg["seeds"] = args.seeds or cfg["seeds"]
    cfg["tune_seeds"] = args.tune_seeds or cfg["tune_seeds"]
    if set(cfg["seeds"]) & set(cfg["tune_seeds"]):
        raise SystemExit("the tuning seeds must differ from the scoring seeds")
    if args.apf_check:
        apf_check(cfg)
        return
    ssls_kw, reduced = ssls_options(args, cfg)
    rows_dir = Path(args.rows_dir) if args.rows_dir else Path(tempfile.mkdtemp(prefix="ssls_rows_"))
    rows = []
    name = rows_name(args, cfg, reduced)
    for sigma in cfg["sigmas"]:
        hmm = S.reference(sigma=sigma, steps=cfg["steps"])
        for N in cfg["Ns"]:
            t0 = time.time()
            ssls = daf.SSLS(N=N, device=args.device, **ssls_kw)
            apf = tuned(hmm, lambda r, N=N: daf.APF(N=N, reg=r), cfg["reg"], cfg["tune_seeds"])
            enkf = tuned(hmm, lambda i, N=N: daf.EnKF("Sqrt", N=N, infl=i), cfg["infl"],
                         cfg["tune_seeds"])
            ref_apf, ref_hmm = reference_apf(hmm, N)
            res = {k: score(hmm, f, cfg["seeds"], f"{k} sigma={sigma:g} N={N}", fh) for k, f, fh in
                   (("APF", apf, None), ("APF-ref", ref_apf, ref_hmm), ("EnKF", enkf, None),
                    ("SSLS", ssls, None))}
            m, names = {}, {"APF": f"APF reg={apf.reg:g}", "EnKF": f"EnKF Sqrt infl={enkf.infl:g}",
                            "SSLS": "SSLS", "APF-ref": "APF as the reference's (forecast noise 0.5)"}
            for k, v in res.items():
                m[k], names[k] = finite_mean(v, names[k])
            ssls_ok = [x for x in res["SSLS"] if np.isfinite(x)]
            ours, se = mean_se(ssls_ok) if len(ssls_ok) > 1 else (float("nan"), float("nan"))
            apf_key = min(("APF", "APF-ref"), key=m.get)  # the stronger APF is the comparator
            best = min((apf_key, "EnKF"), key=m.get)
            beats = ours < m[apf_key] and len(ssls_ok) == len(res["SSLS"])  # no SSLS divergence
            holds = (("yes" if beats else "no") if not reduced else
                     ("yes" if beats else "not at this scale")) if args.full else "not at this scale"
            setting = f"{hmm.name}, {cfg['steps']} steps, all analyses averaged"
            rows.append(dict(method="SSLS", claim="beats the APF at every N",
                             setting=setting + (f"; {reduced}" if reduced else "")
                             + ("" if names["SSLS"] == "SSLS" else f"; {names['SSLS']}"),
                             N=N, metric="rmse.a", paper=PAPER, ours=ours, ours_se=se,
                             comparator_name=names[apf_key], comparator=m[apf_key],
                             classical_name=names[best], classical=m[best], holds=holds))
            print(f"sigma={sigma:g} N={N}: SSLS {ours:.3f} ± {se:.2g}, {names['APF']} {m['APF']:.3f}, "
                  f"{names['APF-ref']} {m['APF-ref']:.3f}, "
                  f"{names['EnKF']} {m['EnKF']:.3f}  [{time.time() - t0:.0f} s]", flush=True)
            print("  per seed:", {k: [round(x, 3) for x in v] for k, v in res.items()}, flush=True)
            path = write_rows(name, rows, rows_dir)  # after each row: a cut-short run keeps its rows
    print(f"rows: {path}")
    if args.markdown:
        from claims import markdown
        print(markdown(rows))


if __name__ == "__main__":
    main()
