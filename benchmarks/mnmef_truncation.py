"""MNMEF's truncation at one training budget: the graph cut every cycle against every 5 cycles.

Issue 18, item 2. The paper's code cuts the graph after every analysis (``detach_every = 1``,
docs/learned_filters.md); our increment form's default cuts it every 5 cycles. This trains MNMEF
at one N in each ``--configs`` entry ``form:detach_every`` with the same data (``--n-traj``
trajectories of the paper's setting, ``mods.Lorenz96.bach2025``), the same windows per step and
the same training budget in CPU time, and runs each on the same evaluation seeds as the LETKF
tuned at that N (the claims run's study, ``mnmef_claims.tuned_letkf``). Printed: each
configuration's rmse.a (mean over seeds and its SE), the paired difference against the tuned LETKF
and against the first configuration, with their SE over seeds; saved to
``<models-dir>/mnmef-truncation/results.json``. The runs are kept in ``.../runs`` (keyed on each
model's weights), so a rerun with more configurations runs only the new ones.

With the defaults the ``reference:1`` configuration is exactly the claims run's pretraining
(``mnmef_claims.py``: N = 10, 30 CPU minutes, 128 trajectories, 128 windows a step), so its
trained model is read from there (``fit_cached`` compares the settings, not the file name).

    python benchmarks/mnmef_truncation.py                       # trains what is missing, ~30 CPU min each
    python benchmarks/mnmef_truncation.py --configs reference:5 --train-only &   # one process per
    python benchmarks/mnmef_truncation.py --configs increment:5 --train-only &   # training, then
    python benchmarks/mnmef_truncation.py                                       # the evaluation
    python benchmarks/mnmef_truncation.py --tiny                # smoke test (a minute)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import dafilters as daf
from dafilters.nn.config import CLOCKS
from mods.Lorenz96 import bach2025

try:
    from benchmarks.claims import this_command
    from benchmarks.mnmef_claims import training_settings as claims_training
    from benchmarks.mnmef_claims import tuned_letkf
except ImportError:  # run as a script from the repository root
    from claims import this_command
    from mnmef_claims import training_settings as claims_training
    from mnmef_claims import tuned_letkf

DEFAULT_CONFIGS = ["reference:1", "reference:5", "increment:5"]


def parse_config(text: str) -> tuple[str, int]:
    """``"reference:5"`` -> ``("reference", 5)``; a clear error for anything else."""
    form, _, k = text.partition(":")
    if form not in ("reference", "increment") or not k.isdigit():
        raise argparse.ArgumentTypeError(f"a configuration is form:detach_every, e.g. reference:1 or "
                                         f"increment:5; got {text!r}")
    return form, int(k)


def training_settings(args, detach_every: int) -> dict:
    """The training of one configuration: ``mnmef_claims.training_settings`` with this
    ``detach_every`` (only that differs between configurations; the same settings as the claims
    run's, so the defaults find its model)."""
    return claims_training(argparse.Namespace(**{**vars(args), "detach_every": detach_every}))


def model_path(models: Path, args, form: str, k: int) -> Path:
    """Where a configuration's model is kept (the claims run's pretraining for ``reference:1`` at
    its defaults; ``fit_cached`` checks the settings either way)."""
    if (form, k) == ("reference", 1) and not args.tiny:
        claims = models / "mnmef-claims" / f"N{args.N}-pretrained.pt"
        if claims.exists():
            return claims
    folder = "mnmef-truncation-tiny" if args.tiny else "mnmef-truncation"
    return models / folder / f"N{args.N}-{form}-detach{k}-{args.minutes:g}min.pt"


def paired_table(rmse: pd.DataFrame, base: str, ref: str) -> list[dict]:
    """Per configuration (columns of ``rmse``, one row per seed): mean rmse.a and its SE, and the
    paired differences against the tuned LETKF (column ``ref``) and against configuration ``base``
    (mean and SE over the seeds where both ran; ``nan`` where fewer than two)."""
    def se(v: pd.Series) -> float:
        v = v.dropna()
        return float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")

    out = []
    for name in rmse.columns:
        v, d_ref, d_base = rmse[name], (rmse[name] - rmse[ref]).dropna(), (rmse[name] - rmse[base]).dropna()
        out.append({"name": name, "rmse": float(v.mean()), "rmse_se": se(v), "seeds": int(v.notna().sum()),
                    "vs_letkf": float(d_ref.mean()), "vs_letkf_se": se(d_ref),
                    "vs_base": float(d_base.mean()), "vs_base_se": se(d_base),
                    "lower_than_base_on": int((d_base < 0).sum())})
    return out


def markdown(table: list[dict], base: str, logs: dict) -> str:
    lines = [f"| configuration | rmse.a | paired minus tuned LETKF | paired minus {base} | training |",
             "|---|---|---|---|---|"]
    for r in table:
        vs_base = "" if r["name"] == base else (f"{r['vs_base']:+.3f} ± {r['vs_base_se']:.3f} "
                                                  f"(lower on {r['lower_than_base_on']}/{r['seeds']})")
        vs_ref = "" if r["name"].startswith("LETKF") else f"{r['vs_letkf']:+.3f} ± {r['vs_letkf_se']:.3f}"
        lines.append(f"| {r['name']} | {r['rmse']:.3f} ± {r['rmse_se']:.3f} | {vs_ref} | {vs_base} | "
                     f"{logs.get(r['name'], '')} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--N", type=int, default=10)
    p.add_argument("--configs", type=parse_config, nargs="+",
                   default=[parse_config(c) for c in DEFAULT_CONFIGS], help="form:detach_every, the "
                   "first is the one the others are compared with (default: %(default)s)")
    p.add_argument("--minutes", type=float, default=30.0, help="training budget of each configuration")
    p.add_argument("--clock", default="cpu", choices=sorted(CLOCKS))
    p.add_argument("--n-traj", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--spinup-rounds", type=int, default=2)
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 17)))
    p.add_argument("--tune-seeds", type=int, nargs="+", default=[100, 101, 102, 103])
    p.add_argument("--trials", type=int, default=24)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                   help="compile the training's model forecast (default on)")
    p.add_argument("--train-only", action="store_true", help="train (or find) the models and stop")
    p.add_argument("--models-dir", default="benchmarks/models")
    p.add_argument("--Ko", type=int, default=1499)
    p.add_argument("--tiny", action="store_true", help="smoke test: tiny networks, 2 seeds, short runs")
    args = p.parse_args(argv)
    if args.tiny:
        args.minutes, args.Ko, args.trials = 0.2, 149, 2
        args.seeds, args.tune_seeds = args.seeds[:2], args.tune_seeds[:1]
    torch.set_num_threads(args.threads)
    hmm = bach2025.build(sigma=1.0)
    ev = hmm if args.Ko == 1499 else bach2025.build(sigma=1.0, Ko=args.Ko)
    models = Path(args.models_dir)
    out = models / ("mnmef-truncation-tiny" if args.tiny else "mnmef-truncation")
    start = time.perf_counter()
    fit_kw = {"progress": True, "compile": args.compile}
    filters = {}
    for form, k in args.configs:
        flt = daf.MNMEF(N=args.N, form=form, training=training_settings(args, k))
        path = model_path(models, args, form, k)
        filters[f"{form}, detach every {k}"] = flt.fit_cached(hmm, path, **fit_kw)
    if args.train_only:
        return
    storage = str(models / ("mnmef-claims-tiny" if args.tiny else "mnmef-claims") / "letkf-tuning.log")
    Path(storage).parent.mkdir(parents=True, exist_ok=True)
    letkf = tuned_letkf(args.N, args, storage)
    per_seed = {}
    for label, flt in [*filters.items(), ("LETKF", letkf)]:  # one table each: the MNMEFs share a name
        xps = daf.Experiments(ev, [flt], seeds=args.seeds, save_to=out / "runs")  # kept: a rerun reads them
        runs = xps.run(progress=False, workers=args.workers).runs()
        runs = runs[np.isfinite(runs["rmse.a"])]  # "lost" runs count with their error, diverged ones not
        if label == "LETKF":
            label = runs["name"].iloc[0] if len(runs) else "LETKF tuned"
        per_seed[label] = runs.set_index("seed")["rmse.a"]
    rmse = pd.DataFrame(per_seed)
    base, ref = next(iter(filters)), rmse.columns[-1]
    table = paired_table(rmse, base, ref)
    logs = {label: f"{f.training_log.get('seconds', float('nan')) / 60:.1f} min wall; "
                   f"{f.training_log.get('stopped', '')}; {f.training_log.get('skipped_steps', 0)} "
                   "steps skipped" for label, f in filters.items()}
    print(f"\nN = {args.N}, {len(args.seeds)} seeds of {ev.tseq.Ko + 1} cycles; training {args.minutes:g} "
          f"{args.clock} minutes each\n" + markdown(table, base, logs))
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(
        {"command": this_command(), "N": args.N, "seeds": args.seeds, "Ko": ev.tseq.Ko,
         "minutes": args.minutes, "clock": args.clock, "table": table, "training": logs,
         "per_seed": {k: {int(s): float(v) for s, v in col.dropna().items()} for k, col in rmse.items()}},
        indent=1) + "\n")
    print(f"\n{out / 'results.json'}; {(time.perf_counter() - start) / 60:.1f} min")


if __name__ == "__main__":
    main()
