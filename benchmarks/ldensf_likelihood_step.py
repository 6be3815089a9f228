"""LD-EnSF's likelihood step: explicit (EnSF's Euler step, the reference's) against implicit, over
the LSTM noise factor ``obs_infl``, on the Kolmogorov claims setting of ``fluids.py``.

    python benchmarks/ldensf_likelihood_step.py                      # 8 seeds, the cached model (~2 min)
    python benchmarks/ldensf_likelihood_step.py --configs explicit:1 implicit:1 --seeds 1 2

The model is the one ``fluids.py --n 32 --vort-std 0 --n-traj 120 --minutes 8 --Ko 19`` trains
(loaded from ``--models-dir`` when it is there, else trained with those settings). Only LD-EnSF
runs (its forecast is the latent ODE), so a table takes seconds per seed. Printed per
configuration ``step:obs_infl``: rmse.a and the relative RMSE of the vorticity (``fluids.py``'s
metric) as means over the seeds with their between-seed SE, and how many runs diverged. With an
accurate LSTM (latent residual 0.02-0.04 per component) the explicit step diverges at
``obs_infl`` 1 and 3 (:math:`\\Delta g^2 / (\\mathrm{obs\\_infl}\\, s_y)^2 > 2`); the implicit one
does not.
"""

from __future__ import annotations

import argparse
from types import SimpleNamespace

import numpy as np
import torch
from claims import mean_se
from fluids import HookTimer, relative_rmse, trained_ldensf
from tabulate import tabulate

from mods.Kolmogorov import xiao2026


def model_args(args) -> SimpleNamespace:
    """The settings of ``fluids.py``'s LD-EnSF claims command (so that its cached model loads)."""
    return SimpleNamespace(tiny=False, n_traj=120, latent_dim=32, n_basis=128, width=128, epochs=300,
                           N=20, steps=100, device="cpu", minutes=8.0, vort_std=0.0, n=args.n,
                           models_dir=args.models_dir, cache_dir=args.cache_dir, ld_obs_infl=1.0,
                           ld_likelihood_step="explicit")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=["explicit:10", "explicit:1", "implicit:1", "implicit:3",
                                                    "implicit:10"], help="step:obs_infl pairs")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6, 7, 8])
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--Ko", type=int, default=19)
    p.add_argument("--models-dir", default="benchmarks/models")
    p.add_argument("--cache-dir", default="benchmarks/cache")
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    hmm = xiao2026.build(n=args.n, Ko=args.Ko, vort_std=0.0)
    twins = {s: hmm.simulate(s) for s in args.seeds}
    rows = []
    for config in args.configs:
        step, infl = config.split(":")
        margs = model_args(args)
        margs.ld_likelihood_step, margs.ld_obs_infl = step, float(infl)
        timer = HookTimer(set(), args.seeds[0])
        flt = timer.wrap(trained_ldensf(hmm, margs), "LDEnSF")
        rmse, rel, diverged = [], [], 0
        for s, (xx, yy) in twins.items():
            stats = flt.assimilate(hmm, xx, yy, seed=s)
            if stats.diverged or not np.isfinite(stats.averages()["rmse.a"]):
                diverged += 1
                continue
            rmse.append(stats.averages()["rmse.a"])
            rel.append(relative_rmse(timer.all["LDEnSF"][s], xx, hmm))

        def cell(v):
            return "{:.4f} ± {:.4f}".format(*mean_se(v)) if len(v) > 1 else "-"

        rows.append([step, infl, cell(rmse), cell(rel), f"{diverged}/{len(args.seeds)}"])
        print(f"  {config}: rmse.a {rows[-1][2]}, rel. {rows[-1][3]}, diverged {rows[-1][4]}", flush=True)
    print(f"\n{hmm.name}, Ko={args.Ko}, seeds {args.seeds}\n")
    print(tabulate(rows, ["likelihood step", "obs_infl", "rmse.a", "rel. RMSE (vorticity)", "diverged"],
                   tablefmt="github" if args.markdown else "simple", disable_numparse=True))


if __name__ == "__main__":
    main()
