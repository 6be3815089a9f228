"""dafilters plot: figures of saved runs, and field snapshots of a model (dafilters.plots).

Examples::

    dafilters plot out/ --x N --best-over infl --png rmse_vs_N.png   # rmse.a against N
    dafilters plot out/ --kind time --png rmse_time.png               # rmse and spread against time
    dafilters plot out/ --kind rank --png ranks.png                   # rank histograms
    dafilters plot out/ --kind setting time rank --png figs/out.png   # figs/out-setting.png, ...
    dafilters plot --model mods.Lorenz96.sakov2008 --filter "EnKF('Sqrt', N=20)" --ko 0 100
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["KINDS", "add_plot_parser", "cmd_plot"]

#: The figures of saved runs, by ``--kind``.
KINDS = ("setting", "time", "rank")


def add_plot_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``plot`` subcommand to the ``dafilters`` parser."""
    p = sub.add_parser("plot", help="figures of saved runs (a metric against a setting, against "
                       "time, rank histograms) or field snapshots of a model (PNG)",
                       description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", nargs="?", help="folder of saved runs (Experiments(save_to=...), "
                   "dafilters run --save)")
    p.add_argument("--kind", nargs="+", choices=KINDS, default=["setting"],
                   help="setting: a metric against a setting (default); time: per-cycle series "
                   "against time; rank: rank histograms")
    p.add_argument("--png", default="results.png", help="output file; with several kinds, "
                   "<name>-<kind>.png each (default results.png)")
    p.add_argument("--x", default="N", help="setting on the horizontal axis (default N)")
    p.add_argument("--metric", default="rmse.a", help="time average against the setting (rmse.a)")
    p.add_argument("--best-over", nargs="+", default=[],
                   help="plot the best setting over these settings (e.g. infl)")
    p.add_argument("--log-x", action=argparse.BooleanOptionalAction, default=None,
                   help="log horizontal axis (default: where the values span a factor of 4)")
    p.add_argument("--log-y", action=argparse.BooleanOptionalAction, default=None,
                   help="log vertical axis (default: where the values span a factor of 10)")
    p.add_argument("--series", nargs="+", default=["rmse.a", "spread.a"],
                   help="per-cycle series against time (default rmse.a spread.a)")
    p.add_argument("--seed", type=int, default=None,
                   help="the seed shown against time and in snapshots (default: the first)")
    p.add_argument("--stage", choices=["a", "f"], default="a",
                   help="rank histograms of the analysis (a, default) or forecast (f)")
    p.add_argument("--model", default=None, help="field snapshots: a setting module "
                   "(e.g. mods.Kolmogorov.rozet2023) instead of a folder")
    p.add_argument("--filter", default=None, help="field snapshots: the filter expression")
    p.add_argument("--Ko", type=int, default=None, help="field snapshots: number of cycles - 1")
    p.add_argument("--ko", type=int, nargs="+", default=None,
                   help="field snapshots: the cycles shown (default: first, middle, last)")
    p.add_argument("--grid", type=int, nargs=2, default=None, metavar=("N0", "N1"),
                   help="field snapshots: the 2-D grid (default: the model's, if any)")
    p.add_argument("--offset", type=int, default=0,
                   help="field snapshots: first state variable of the field on --grid")
    p.set_defaults(func=cmd_plot)


def cmd_plot(args: argparse.Namespace) -> None:
    """Draw the figures ``args`` ask for and print the paths (errors: ``SystemExit``)."""
    try:
        paths = _snapshots(args) if args.model or args.filter else _saved(args)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    for path in paths:
        print(f"saved {path}")


def _saved(args: argparse.Namespace) -> list[Path]:
    """The figures of the runs saved in ``args.folder``, one per ``--kind``."""
    from . import plots
    from .cli import _load_saved

    if args.folder is None:
        raise SystemExit("error: dafilters plot needs a folder of saved runs, or --model and "
                         "--filter for field snapshots")
    results = _load_saved(args.folder)
    kinds = list(dict.fromkeys(args.kind))
    png = Path(args.png)
    paths = []
    for kind in kinds:
        path = png if len(kinds) == 1 else png.with_name(f"{png.stem}-{kind}{png.suffix or '.png'}")
        if kind == "setting":
            paths.append(plots.plot_results(results, path, x=args.x, metric=args.metric,
                                            best_over=args.best_over or None, logx=args.log_x,
                                            logy=args.log_y))
        elif kind == "time":
            paths.append(plots.plot_series(results, path, metrics=args.series, seed=args.seed,
                                           logy=args.log_y))
        else:
            paths.append(plots.plot_rank_hist(results, path, stage=args.stage))
    return paths


def _snapshots(args: argparse.Namespace) -> list[Path]:
    """The field snapshots of ``--filter`` on ``--model``."""
    from . import plots
    from .cli import load_hmm, parse_filter

    if not (args.model and args.filter):
        raise SystemExit("error: field snapshots need both --model and --filter")
    if args.folder is not None:
        raise SystemExit("error: give a folder of saved runs or --model/--filter, not both")
    hmm = load_hmm(args.model)
    if args.Ko is not None:  # no burn-in: snapshots need no time averages
        hmm = hmm.replace(tseq=dict(Ko=args.Ko, BurnIn=0.0), name=f"{hmm.name} (Ko={args.Ko})")
    flt = parse_filter(args.filter)
    png = args.png if args.png != "results.png" else "snapshots.png"
    return [plots.plot_snapshots(hmm, flt, png, seed=args.seed or 0, ko=args.ko,
                                 shape=tuple(args.grid) if args.grid else None, offset=args.offset)]
