"""SLAMS (latent score-based assimilation) against pixel-space SDA, EnSF and LETKF fed the same
observation modalities.

    python benchmarks/multimodal.py --markdown --plots benchmarks/plots/multimodal   # L96 (~20 min)
    python benchmarks/multimodal.py --settings kolmogorov --kol-n 32                 # 2-D flow
    python benchmarks/multimodal.py --settings l96 kolmogorov --seeds 1 2 3 --Ko 499 # bigger
    python benchmarks/multimodal.py --tiny --seeds 1 2                               # a check
    python benchmarks/multimodal.py --seeds 1 2 3 4 5 6 7 8 --Ko 39 --slams-minutes 6 --sda-minutes 8 \\
        --rows-dir benchmarks/claims --markdown                                      # the claims rows

Settings: ``mods.Lorenz96.qu2024`` (Nx=40; ``sparse``: every 4th variable, sigma 1; ``coarse``:
means of 4 consecutive variables, sigma 0.5; obs every 0.15 time units) and
``mods.Kolmogorov.qu2024`` (n x n vorticity; ``coarse``: n/8 x n/8 block means, sigma 0.5;
``probes``: n^2/64 random points, sigma 0.1; obs every 0.2 time units).

SLAMS and SDA are trained once per setting on trajectories of the training chronology
(``--train-Ko``) with both modalities. Pixel-space SDA samples ``--sda-steps`` steps with x0
clipped at ``--sda-clip`` (SDA's default, the reference's 256 unclipped steps, costs 4x); on
Kolmogorov it has the convolutional denoiser (``sda.GridDenoiser``, ``--kol-sda-width`` channels,
2 residual blocks; an MLP over windows of 2-D fields does not learn) on local windows of 3 model
steps and a sliding window of ``--kol-sda-window`` model steps (3: the current observation only,
as a window reaching the previous observation, 20 model steps back at n = 32, would cost 10x).
SLAMS then also runs with one modality dropped at run time
(the same model), which gives the "either modality alone" rows; the LETKF (inflation and
localization radius) runs on every modality set, EnSF (eps_a, eps_b, infl_f; ``--ensf-steps``
fixed) and SDA on both; the LETKF and EnSF are tuned with Optuna (``--trials``) on
``--tune-seeds``, separate from the scoring ``--seeds``. Columns: time-averaged analysis RMSE, its
between-seed standard error, CRPS (after the burn-in), mean seconds per analysis (the ``analysis``
hook alone, timed in the runs), and training minutes.

Claims rows (``benchmarks/claims.py``; with 2 seeds or more) go to ``--rows-dir`` (default: a new
temp folder; the real run writes to ``benchmarks/claims``): SLAMS against pixel-space SDA on
``rmse.a`` and on seconds per analysis, and SLAMS with every modality against its best single
modality, each beside the tuned LETKF on every modality. A row holds where the paired per-seed
difference exceeds twice its standard error ("not at this scale" in ``--tiny``).

With ``--plots DIR``: for the first seed, ``DIR/<setting>.png`` shows the truth, each modality
regridded onto the state grid, and the analysis means at one observation time.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from claims import mean_se, write_rows
from tabulate import tabulate

import dafilters as daf
from dafilters.multimodal import regrid_matrix

TINY = dict(slams=dict(steps=4, training=dict(latent_dim=8, ae_width=32, width=32, depth=2, n_traj=2,
                                              epochs=2)),
            sda=dict(steps=4, window_steps=9, training=dict(width=32, depth=2, n_traj=1, epochs=2)))
REFERENCE = "Qu et al. 2024; reference notebooks 02a-02e, ERA5 120x240, 64 GPU epochs on 16 years"
PAPER_LATENT = "latent (lsda) beats pixel-space (sda_0) DA, cheaper; " + REFERENCE
PAPER_MODES = "+2 modalities (in-situ + ex-situ) beat +1; " + REFERENCE


def sda_settings(name: str, args) -> dict:
    """Pixel-space SDA's settings for the setting ``name`` (``training`` without the budget)."""
    if args.tiny:
        kw = {**TINY["sda"], "training": dict(TINY["sda"]["training"])}
    else:
        kw = dict(steps=args.sda_steps, training=dict(n_traj=args.sda_n_traj))
    kw["clip"] = args.sda_clip
    if name == "kolmogorov":  # the convolutional denoiser, small; one local window per sample
        kw.update(k=1, window_steps=args.kol_sda_window, corrections=1)
        kw["training"].update(denoiser="conv", conv_width=args.kol_sda_width, depth=2, batch_size=64)
    return kw


def run(flt: daf.Filter, hmm: daf.HMM, seed: int, plot_ko: int | None) -> dict:
    """One twin experiment: averages, seconds per analysis, and the analysis mean at ``plot_ko``."""
    xx, yy = hmm.simulate(seed)
    times, kept = [], {}
    analysis = flt.analysis

    def timed(state, y, ko, ctx):
        start = time.perf_counter()
        out = analysis(state, y, ko, ctx)
        times.append(time.perf_counter() - start)
        if ko == plot_ko:
            kept["mean"] = np.asarray(out).mean(0)
        return out

    object.__setattr__(flt, "analysis", timed)
    try:
        stats = flt.assimilate(hmm, xx, yy, seed=seed)
    finally:
        object.__delattr__(flt, "analysis")
    a = stats.averages()
    return {"rmse.a": a["rmse.a"], "crps.a": a["crps.a"], "spread.a": a["spread.a"],
            "s_analysis": float(np.mean(times)), "mean": kept.get("mean"), "xx": xx, "yy": yy}


def l96_setting(args):
    from mods.Lorenz96 import qu2024

    return (qu2024.build(Ko=args.train_Ko), qu2024.build(Ko=args.Ko), ("sparse", "coarse"),
            dict(loc_rad=4.0, infl=1.04), None)


def kolmogorov_setting(args):
    from mods.Kolmogorov import qu2024

    n = args.kol_n
    kw = dict(n=n, precision="float32")
    return (qu2024.build(Ko=args.kol_train_Ko, **kw), qu2024.build(Ko=args.kol_Ko, **kw),
            ("coarse", "probes"), dict(loc_rad=1.0, infl=1.05), (n, n))


def tuned(flt: daf.Filter, hmm: daf.HMM, args, space: dict | None = None) -> daf.Filter:
    """``flt`` tuned with Optuna on ``args.tune_seeds`` (never the scoring seeds) for ``hmm``."""
    if set(args.tune_seeds) & set(args.seeds):
        raise ValueError(f"tuning seeds {args.tune_seeds} overlap the scoring seeds {args.seeds}")
    return daf.Tuned(flt, n_trials=args.trials, tune_seeds=args.tune_seeds, space=space).tune(hmm).filter


def describe(flt: daf.Filter) -> str:
    """A tuned filter's name with its tuned values, e.g. ``LETKF infl=1.05 loc_rad=3.2``."""
    if isinstance(flt, daf.LETKF):
        return f"LETKF infl={flt.infl:.3g} loc_rad={flt.loc_rad:.3g}"
    return f"EnSF eps_a={flt.eps_a:.3g} eps_b={flt.eps_b:.3g} infl_f={flt.infl_f:.3g} steps={flt.steps}"


def part(name: str, args) -> tuple[list[list[str]], list[dict]]:
    """Train (or load) SLAMS and SDA for the setting ``name``, run every filter on every seed,
    print the table; return its rows and the claims rows (none with fewer than 2 seeds)."""
    train_hmm, hmm, mods, letkf_kw, grid = (l96_setting if name == "l96" else kolmogorov_setting)(args)
    models = Path(args.models_dir)
    tiny = "-tiny" if args.tiny else ""
    slams_kw = TINY["slams"] if args.tiny else dict(training=dict(n_traj=args.n_traj))
    sda_kw = sda_settings(name, args)
    slams_kw = {**slams_kw, "training": {**slams_kw["training"], "minutes": args.slams_minutes}}
    sda_kw = {**sda_kw, "training": {**sda_kw["training"], "minutes": args.sda_minutes}}
    slams = daf.SLAMS(N=args.N, device=args.device, **slams_kw).fit_cached(
        train_hmm, models / f"slams-{name}{tiny}.pt", progress=True)
    sda = daf.SDA(N=args.N, device=args.device, **sda_kw).fit_cached(
        train_hmm, models / f"sda-{name}{tiny}.pt", progress=True)
    sets = {"+".join(mods): mods, **{m: (m,) for m in mods}}
    entries = []
    start = time.perf_counter()
    for label, keep in sets.items():
        h = hmm if len(keep) == len(mods) else hmm.replace(obs=hmm.obs.select(*keep))
        entries.append((label, h, slams, "SLAMS"))
        entries.append((label, h, tuned(daf.LETKF(N=args.N, **letkf_kw), h, args), "LETKF"))
        if len(keep) == len(mods):
            entries.append((label, h, tuned(daf.EnSF(N=args.N, steps=args.ensf_steps), h, args,
                                            space={"steps": None}), "EnSF"))
            entries.append((label, h, sda, "SDA (pixel)"))
    print(f"  {name}: LETKF and EnSF tuned on seeds {args.tune_seeds}, {args.trials} trials each "
          f"[{time.perf_counter() - start:.0f} s]: "
          + "; ".join(f"{label}: {describe(f)}" for label, _, f, n in entries if n in ("LETKF", "EnSF")),
          flush=True)
    plot_ko = min(hmm.tseq.Ko, max(0, hmm.tseq.Ko - 1))
    rows, results = [], defaultdict(list)
    for label, h, flt, fname in entries:
        for seed in args.seeds:
            results[(label, fname)].append(run(flt, h, seed, plot_ko if seed == args.seeds[0] else None))
        rs = results[(label, fname)]
        train = getattr(flt, "training_log", {}).get("seconds")
        avg = {key: np.mean([r[key] for r in rs]) for key in ("rmse.a", "crps.a", "spread.a", "s_analysis")}
        se = np.std([r["rmse.a"] for r in rs], ddof=1) / np.sqrt(len(rs)) if len(rs) > 1 else float("nan")
        rows.append([label, fname, f"{avg['rmse.a']:.3f}", f"{se:.3f}", f"{avg['crps.a']:.3f}",
                     f"{avg['spread.a']:.3f}", f"{avg['s_analysis']:.3g}",
                     "" if train is None else f"{train / 60:.1f}"])
        print(f"  {name} {label:>14} {fname:<12} rmse.a {rows[-1][2]}  s/analysis {rows[-1][6]}", flush=True)
    print(f"\n### {hmm.name}\n\nseeds {args.seeds}, N={args.N}, {hmm.tseq.Ko + 1} cycles "
          f"(burn-in {hmm.tseq.BurnIn:g} time units); {platform.machine()}, {os.cpu_count()} cores, "
          f"torch threads {torch.get_num_threads()}; LETKF and EnSF tuned on seeds {args.tune_seeds}\n")
    print(tabulate(rows, headers=["modalities", "filter", "rmse.a", "se", "crps.a", "spread.a", "s/analysis",
                                  "train min"], tablefmt="github" if args.markdown else "simple"))
    print()
    for flt, fname in ((slams, "SLAMS"), (sda, "SDA")):
        tr = flt.training_log
        print(f"- {fname}: trained {tr['seconds'] / 60:.1f} min ({tr['stopped']})")
    if args.plots:
        plot(name, hmm, mods, results, args.seeds[0], plot_ko, grid, Path(args.plots))
    if len(args.seeds) < 2:
        print("- no claims rows: a standard error over seeds needs at least 2 seeds")
        return rows, []
    classical = f"{describe(next(f for label, _, f, n in entries if n == 'LETKF'))} N={args.N} (tuned)"
    setting = (f"{hmm.name}, {hmm.tseq.Ko + 1} cycles, burn-in {hmm.tseq.BurnIn:g} time units"
               + ("" if grid is None else f", {grid[0]}x{grid[1]}"))
    return rows, claim_rows(results, mods, setting, args.N, classical, scaled=not args.tiny)


def lower(ours: list[float], other: list[float]) -> bool:
    """Whether ``ours`` is lower than ``other`` beyond noise: the mean of the paired per-seed
    differences ``other - ours`` exceeds twice its between-seed standard error."""
    diff, se = mean_se(np.asarray(other) - np.asarray(ours))
    return diff > 2 * se


def claim_rows(results: dict, mods: tuple[str, ...], setting: str, N: int, classical: str,
               scaled: bool = True) -> list[dict]:
    """The SLAMS rows of the claims table from the per-seed results ``results[(modalities,
    filter)]`` (dicts with ``rmse.a`` and ``s_analysis``, seeds in the same order for every
    filter): latent beats pixel-space SDA (accuracy, and seconds per analysis), and several
    modalities beat the best single one. ``holds`` is ``"not at this scale"`` unless ``scaled``."""
    both = "+".join(mods)

    def per_seed(label: str, fname: str, key: str = "rmse.a") -> list[float]:
        return [r[key] for r in results[(label, fname)]]

    def verdict(ok: bool) -> str:
        return ("yes" if ok else "no") if scaled else "not at this scale"

    common = dict(method="SLAMS", setting=setting, N=N, classical_name=f"{classical} [{both}]")
    letkf = {k: float(np.mean(per_seed(both, "LETKF", k))) for k in ("rmse.a", "s_analysis")}
    rows = []
    for key, metric in (("rmse.a", "rmse.a"),
                        ("s_analysis", f"seconds per analysis (the analysis hook alone, "
                                       f"{torch.get_num_threads()} torch thread(s))")):
        ours, se = mean_se(per_seed(both, "SLAMS", key))
        sda = per_seed(both, "SDA (pixel)", key)
        rows.append(dict(common, claim="latent beats pixel-space SDA at lower cost", metric=metric,
                         paper=PAPER_LATENT, ours=ours, ours_se=se,
                         comparator_name=f"pixel-space SDA [{both}]", comparator=float(np.mean(sda)),
                         classical=letkf[key], holds=verdict(lower(per_seed(both, "SLAMS", key), sda))))
    best = min(mods, key=lambda m: np.mean(per_seed(m, "SLAMS")))
    ours, se = mean_se(per_seed(both, "SLAMS"))
    rows.append(dict(common, claim="several modalities beat one", metric="rmse.a", paper=PAPER_MODES,
                     ours=ours, ours_se=se, comparator_name=f"SLAMS [{best}] (best single modality)",
                     comparator=float(np.mean(per_seed(best, "SLAMS"))), classical=letkf["rmse.a"],
                     holds=verdict(lower(per_seed(both, "SLAMS"), per_seed(best, "SLAMS")))))
    return rows


def plot(name: str, hmm: daf.HMM, mods, results, seed: int, ko: int, grid, folder: Path) -> None:
    """Truth, each modality on the state grid, and the analysis means at observation time ``ko``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    both = "+".join(mods)
    first = results[(both, "SLAMS")][0]
    xx, yy = first["xx"], first["yy"]
    x = xx[hmm.tseq.kko[ko]]
    parts = hmm.obs.split(np.asarray(yy[ko]), ko)
    panels = [("truth", x, None)]
    for m in mods:
        G, mask = regrid_matrix(hmm.obs[m], hmm.Nx, ko)
        panels.append((f"obs: {m}", parts[m] @ G, mask))
    for (label, fname), rs in results.items():
        if rs[0]["mean"] is not None and (label == both or fname == "SLAMS"):
            panels.append((f"{fname} [{label}] rmse {np.sqrt(np.mean((rs[0]['mean'] - x) ** 2)):.2f}",
                           rs[0]["mean"], None))
    folder.mkdir(parents=True, exist_ok=True)
    if grid is None:
        fig, ax = plt.subplots(figsize=(9, 4))
        ax.plot(x, "k-", lw=2, label="truth")
        for title, v, mask in panels[1:]:
            if mask is not None:
                ax.plot(np.where(mask > 0, v, np.nan), "o" if mask.sum() < len(mask) else "s", ms=4,
                        label=title)
            else:
                ax.plot(v, lw=1, label=title)
        ax.set_xlabel("variable")
        ax.legend(fontsize=7, ncol=2)
        ax.set_title(f"{hmm.name}, ko={ko}", fontsize=8)
    else:
        cols = 4
        rows = -(-len(panels) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
        vmax = np.abs(x).max()
        for ax, (title, v, mask) in zip(axes.flat, panels):
            field = np.where(mask > 0, v, np.nan) if mask is not None else v
            ax.imshow(field.reshape(grid).T, origin="lower", cmap="RdBu_r", vmin=-vmax, vmax=vmax)
            ax.set_title(title, fontsize=7)
        for ax in axes.flat:
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(folder / f"{name}.png", dpi=100)
    plt.close(fig)
    print(f"- figure: {folder / f'{name}.png'}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--settings", nargs="+", default=["l96"], choices=["l96", "kolmogorov"])
    p.add_argument("--N", type=int, default=20, help="ensemble size of every filter")
    p.add_argument("--seeds", type=int, nargs="+", default=[1])
    p.add_argument("--Ko", type=int, default=199, help="L96: last observation index of the runs")
    p.add_argument("--train-Ko", type=int, default=1499, help="L96: length of training trajectories")
    p.add_argument("--kol-n", type=int, default=32, help="Kolmogorov grid size")
    p.add_argument("--kol-Ko", type=int, default=39)
    p.add_argument("--kol-train-Ko", type=int, default=99)
    p.add_argument("--n-traj", type=int, default=16, help="SLAMS training trajectories")
    p.add_argument("--sda-n-traj", type=int, default=4, help="SDA training trajectories")
    p.add_argument("--slams-minutes", type=float, default=4.0)
    p.add_argument("--sda-minutes", type=float, default=3.0)
    p.add_argument("--sda-steps", type=int, default=64, help="pixel SDA's sampler steps")
    p.add_argument("--sda-clip", type=float, default=5.0, help="pixel SDA's x0 clipping")
    p.add_argument("--kol-sda-width", type=int, default=16, help="channels of pixel SDA's CNN (Kolmogorov)")
    p.add_argument("--kol-sda-window", type=int, default=3,
                   help="pixel SDA's window in model steps (Kolmogorov)")
    p.add_argument("--ensf-steps", type=int, default=100, help="EnSF's reverse steps (not tuned)")
    p.add_argument("--tune-seeds", type=int, nargs="+", default=[100, 101],
                   help="seeds the LETKF and EnSF are tuned on (not scored)")
    p.add_argument("--trials", type=int, default=24, help="Optuna trials per tuned filter")
    p.add_argument("--rows-dir", default=None, help="where the claims rows go (default: a new temp folder)")
    p.add_argument("--models-dir", default="benchmarks/models")
    p.add_argument("--plots", default=None, help="folder for the PNG figures")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--tiny", action="store_true", help="tiny networks and runs: a check")
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.tiny:
        args.Ko, args.train_Ko, args.kol_n, args.kol_Ko, args.kol_train_Ko = 19, 39, 16, 9, 9
        args.slams_minutes = args.sda_minutes = 0.1
        args.ensf_steps, args.trials, args.tune_seeds = 10, 3, [100]
    rows_dir = Path(args.rows_dir or tempfile.mkdtemp(prefix="multimodal_rows_"))
    for name in args.settings:
        _, claims = part(name, args)
        if claims:
            path = write_rows(f"slams_{name}{'_tiny' if args.tiny else ''}", claims, rows_dir)
            print(f"- claims rows: {path}")
            if args.markdown:
                from claims import markdown
                print("\n" + markdown(claims) + "\n")


if __name__ == "__main__":
    main()
