"""Learned filters against tuned classical ones (MNMEF on Lorenz-96, DESIGN.md section 5).

    python benchmarks/learned.py                         # pretrain N=20, fine-tune N=10, table
    python benchmarks/learned.py --minutes 25 --finetune-minutes 10 --seeds 1 2 3 --markdown
    python benchmarks/learned.py --device cuda           # train and run the networks on a GPU

Setting: ``mods.Lorenz96.bach2025`` (Nx=40, every 4th variable observed with sigma_y=1, obs every
0.15 time units, 1500 cycles). MNMEF is pretrained at N=20 and fine-tuned at N=10 with its set
summary frozen (trained models are kept in ``--models-dir`` and reused). LETKF and EnKF (Sqrt) are
tuned with Optuna on a separate tuning seed and evaluated on the same seeds as MNMEF. Published
tuned DAPPER LETKF: 2.020 (N=10), 1.577 (N=20).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

import dafilters as daf
from dafilters.filters.learned import load_filter
from mods.Lorenz96 import bach2025

PUBLISHED_LETKF = {10: 2.020, 20: 1.577}


def trained_mnmef(hmm, N: int, minutes: float, path: Path, device: str, pretrained=None):
    """Load the model at ``path`` if it was trained for ``hmm`` with these settings, else train."""
    flt = daf.MNMEF(N=N, minutes=minutes, device=device)
    if path.exists():
        old = load_filter(path, device=device)
        if old.matches(hmm) and old.name == flt.name:
            return old
    flt.fit(hmm, pretrained=pretrained, progress=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    flt.save(path)
    return flt


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=20.0, help="pretraining budget at N=20")
    p.add_argument("--finetune-minutes", type=float, default=8.0, help="fine-tuning budget at N=10")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    p.add_argument("--tune-seeds", type=int, nargs="+", default=[100])
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--models-dir", default="benchmarks/models")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--Ko", type=int, default=1499, help="last observation index (a quick check: 199)")
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    hmm = bach2025.build(sigma=1.0, Ko=args.Ko)
    models = Path(args.models_dir)
    m20 = trained_mnmef(hmm, 20, args.minutes, models / "mnmef-l96-N20.pt", args.device)
    m10 = trained_mnmef(hmm, 10, args.finetune_minutes, models / "mnmef-l96-N10.pt", args.device,
                        pretrained=m20)
    tuned = dict(n_trials=args.trials, tune_seeds=args.tune_seeds)
    entries = [m10, m20]
    for N in (10, 20):
        entries += [daf.Tuned(daf.LETKF(N=N), space={"infl": ("log", 1.0, 1.5), "loc_rad": ("log", 1, 20)},
                              **tuned),
                    daf.Tuned(daf.EnKF("Sqrt", N=N), space={"infl": ("log", 1.0, 1.5)}, **tuned)]
    start = time.perf_counter()
    res = daf.Experiments(hmm, entries, seeds=args.seeds).run(progress=False)
    print(f"# {platform.machine()}, {os.cpu_count()} cores; seeds {args.seeds}, tuning seeds "
          f"{args.tune_seeds}; table in {time.perf_counter() - start:.0f} s\n")
    fmt = "github" if args.markdown else "simple"
    res.table(metrics=("rmse.a", "crps.a", "spread.a"), tablefmt=fmt)
    print()
    for m in (m20, m10):
        tr = m.training
        print(f"- MNMEF N={m.N}: trained {tr['seconds'] / 60:.1f} min on {tr['device']}"
              f"{' (fine-tuned from N=20, summary frozen)' if tr.get('fine_tuned') else ''}, "
              f"{len(tr['train_loss'])} epochs, {tr['stopped']}, best validation loss "
              f"{min(tr['val_loss']):.4f}")
    frame = res.frame()
    for N, pub in PUBLISHED_LETKF.items():
        mn = frame[(frame["filter"] == "MNMEF") & (frame["N"] == N)]["rmse.a"].iloc[0]
        lk = frame[(frame["filter"] == "LETKF") & (frame["N"] == N)]["rmse.a"].iloc[0]
        print(f"- N={N}: MNMEF {mn:.3f} vs tuned LETKF {lk:.3f} ({100 * (mn / lk - 1):+.1f}%); "
              f"published LETKF {pub}")


if __name__ == "__main__":
    main()
