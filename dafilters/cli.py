"""The ``dafilters`` console command.

Examples::

    dafilters demo                                   # classical filters on Lorenz63 and Lorenz96
    dafilters run mods.Lorenz63.sakov2012 "EnKF('Sqrt', N=10, infl=1.02, rot=True)" --seeds 0 1
    dafilters run mods.Lorenz96.sakov2008 "EnKF('Sqrt', N=40, infl=1.01)" --Ko 5000 --save out/
    dafilters table out/                             # the table of runs saved in a folder
    dafilters list                                   # the filters that can be named
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .experiments import Experiments, Results
from .filters.base import Filter
from .hmm import HMM

__all__ = ["main", "load_hmm", "parse_filter", "demo_experiments"]


def filter_classes() -> dict[str, type[Filter]]:
    """The filters that can be named on the command line (every public Filter subclass)."""
    import dafilters

    return {name: obj for name in dafilters.__all__
            if isinstance(obj := getattr(dafilters, name), type) and issubclass(obj, Filter)
            and obj is not Filter}


def load_hmm(path: str) -> HMM:
    """The ``HMM`` of a setting module, e.g. ``mods.Lorenz63.sakov2012`` (``mods.`` optional)."""
    candidates = [path] if path.startswith("mods.") else [f"mods.{path}", path]
    for name in candidates:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name is not None and name.startswith(err.name):
                continue
            raise
        hmm = getattr(module, "HMM", None)
        if not isinstance(hmm, HMM):
            raise SystemExit(f"error: module {name} defines no HMM")
        return hmm
    raise SystemExit(f"error: no model setting module named {path!r} (e.g. mods.Lorenz63.sakov2012)")


def parse_filter(expr: str) -> Filter:
    """Evaluate a filter expression such as ``EnKF('Sqrt', N=10, infl=1.02)``.

    Only filter class names and literals are available in the expression.
    """
    namespace = dict(filter_classes())
    try:
        flt = eval(expr, {"__builtins__": {}}, namespace)  # noqa: S307 - restricted namespace
    except NameError as err:
        raise SystemExit(f"error: {err} in {expr!r}; known filters: {', '.join(namespace)}") from None
    except (TypeError, ValueError, SyntaxError) as err:
        raise SystemExit(f"error: bad filter {expr!r}: {err}") from None
    if not isinstance(flt, Filter):
        raise SystemExit(f"error: {expr!r} is not a filter")
    return flt


def demo_experiments(seeds: Sequence[int] = (0, 1, 2)) -> list[Experiments]:
    """The demo: classical filters on Lorenz63 (sakov2012) and Lorenz96 (sakov2008)."""
    from mods.Lorenz63 import sakov2012
    from mods.Lorenz96 import sakov2008

    from .filters import Climatology, EnKF, OptInterp

    extra = {name: cls for name, cls in filter_classes().items() if name in ("LETKF", "PartFilt")}
    l63 = [Climatology(), OptInterp(), EnKF("Sqrt", N=10, infl=1.02, rot=True),
           EnKF("PertObs", N=10, infl=1.04), EnKF("DEnKF", N=10, infl=1.02)]
    if "PartFilt" in extra:
        l63.append(extra["PartFilt"](N=100, reg=2.4, NER=0.3))
    l96 = [Climatology(), OptInterp(), EnKF("Sqrt", N=40, infl=1.01),
           EnKF("PertObs", N=40, infl=1.06), EnKF("DEnKF", N=40, infl=1.01)]
    if "LETKF" in extra:
        l96.append(extra["LETKF"](N=20, infl=1.04, loc_rad=4))
    return [Experiments(sakov2012.HMM, l63, seeds=seeds), Experiments(sakov2008.HMM, l96, seeds=seeds)]


def _cmd_demo(args: argparse.Namespace) -> None:
    for xps in demo_experiments(seeds=range(args.seeds)):
        print()
        xps.run(progress=args.progress).table()


def _cmd_run(args: argparse.Namespace) -> None:
    hmm = load_hmm(args.model)
    if args.Ko is not None:
        hmm = hmm.replace(tseq=dict(Ko=args.Ko))
    flts = [parse_filter(expr) for expr in args.filters]
    results = Experiments(hmm, flts, seeds=args.seeds, save_to=args.save).run(progress=args.progress)
    results.table()
    if all(r["status"] == "error" for r in results.records):
        sys.exit(1)


def _cmd_table(args: argparse.Namespace) -> None:
    Results.load(args.folder).table()


def _cmd_list(args: argparse.Namespace) -> None:
    for name, cls in filter_classes().items():
        doc = (cls.__doc__ or "").strip().splitlines()
        print(f"{name:14s} {doc[0] if doc else ''}")


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``dafilters`` command."""
    parser = argparse.ArgumentParser(prog="dafilters", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    progress = dict(action=argparse.BooleanOptionalAction, default=None,
                    help="progress bars (default: on a terminal)")

    p = sub.add_parser("demo", help="classical filters on Lorenz63 and Lorenz96")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (default 3)")
    p.add_argument("--progress", **progress)
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("run", help="run filters on a model setting and print the table")
    p.add_argument("model", help="setting module, e.g. mods.Lorenz63.sakov2012")
    p.add_argument("filters", nargs="+", help="filter expressions, e.g. \"EnKF('Sqrt', N=10)\"")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="experiment seeds")
    p.add_argument("--Ko", type=int, default=None, help="number of observation cycles - 1")
    p.add_argument("--save", default=None, help="folder to save runs to (and resume from)")
    p.add_argument("--progress", **progress)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("table", help="print the table of runs saved in a folder")
    p.add_argument("folder")
    p.set_defaults(func=_cmd_table)

    p = sub.add_parser("list", help="list the filters")
    p.set_defaults(func=_cmd_list)

    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
