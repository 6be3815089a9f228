"""The ``dafilters`` console command.

Examples::

    dafilters demo                                   # classical filters on Lorenz63 and Lorenz96
    dafilters run mods.Lorenz63.sakov2012 "EnKF('Sqrt', N=10, infl=1.02, rot=True)" --seeds 0 1
    dafilters run mods.Lorenz96.sakov2008 "EnKF('Sqrt', N=40, infl=1.01)" --Ko 5000 --save out/
    dafilters table out/ --best-over infl            # the table of runs saved in a folder
    dafilters plot out/ --x N --png rmse_vs_N.png    # a metric against a setting, per filter
    dafilters plot out/ --kind time rank             # rmse and spread against time, rank histograms
    dafilters tune mods.Lorenz96.sakov2008 "EnKF('Sqrt', N=20)" --n-trials 30 --plot figs/
    dafilters export out/ out.nc                     # saved runs as a netCDF data set (xarray)
    dafilters list                                   # the filters and model settings
"""

from __future__ import annotations

import argparse
import ast
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from .catalog import model_settings, summary
from .cli_plot import add_plot_parser
from .experiments import Experiments, Results
from .filters.base import Filter
from .filters.defaults import field_defaults, non_default
from .hmm import HMM
from .tables import format_number, format_setting

__all__ = ["main", "load_hmm", "parse_filter", "demo_experiments"]


def filter_classes() -> dict[str, type[Filter]]:
    """The filters that can be named on the command line (every public Filter subclass)."""
    import dafilters

    return {name: obj for name in dafilters.__all__
            if isinstance(obj := getattr(dafilters, name), type) and issubclass(obj, Filter)
            and obj is not Filter}


def load_hmm(path: str) -> HMM:
    """The ``HMM`` defined by a setting module: a built-in one, ``mods.Lorenz63.sakov2012``
    (``mods.`` optional), or any importable module, e.g. a user's ``mymodels.smith2020``.

    A module is imported as Python would (installed packages, ``PYTHONPATH``) and, failing that,
    from the current folder (which the ``dafilters`` command does not search otherwise); a path
    to a file, ``mymodels/smith2020.py``, is read as its module name.
    """
    if path.endswith(".py"):
        path = path[:-3].replace("\\", "/").strip("/").replace("/", ".")
    candidates = [path] if path.startswith("mods.") else [f"mods.{path}", path]
    module = _import_first(candidates)
    if module is None and os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())  # kept: worker processes import the module too
        module = _import_first(candidates)
    if module is None:
        raise SystemExit(f"error: no model setting module named {path!r}: give an importable "
                         "module that defines HMM, e.g. mods.Lorenz63.sakov2012, or mypackage.setting "
                         "(installed, on PYTHONPATH or in the current folder)")
    hmm = getattr(module, "HMM", None)
    if not isinstance(hmm, HMM):
        raise SystemExit(f"error: module {module.__name__} defines no HMM (a dafilters.HMM named HMM)")
    return hmm


def _import_first(names: Sequence[str]) -> Any:
    """The first of the modules ``names`` that exists, or ``None``; an import error inside one
    (a missing dependency) is raised."""
    for name in names:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name is not None and name.startswith(err.name):
                continue
            raise
    return None


#: What :func:`parse_filter` refuses, by the kind of syntax node.
_REFUSED = {
    ast.Attribute: "attribute access", ast.Subscript: "a subscript", ast.Call: "a nested call",
    ast.Lambda: "a lambda", ast.ListComp: "a comprehension", ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension", ast.GeneratorExp: "a generator expression",
    ast.Name: "a name", ast.Starred: "a starred argument", ast.NamedExpr: "an assignment expression",
    ast.JoinedStr: "an f-string", ast.IfExp: "a conditional expression", ast.BoolOp: "a boolean operation",
    ast.Compare: "a comparison", ast.BinOp: "an operation",
}
_EXAMPLE = "a call of a filter class with literal arguments, e.g. EnKF('Sqrt', N=10, infl=1.02)"


def _describe(node: ast.AST) -> str:
    """What ``node`` is, in words, with its source (shortened): the first refused part inside."""
    inner = next((n for n in ast.walk(node) if type(n) in _REFUSED), node)
    kind = _REFUSED.get(type(inner), "the literal" if isinstance(inner, ast.Constant)
                        else f"a {type(inner).__name__} expression")
    text = ast.unparse(inner)
    return f"{kind} {text if len(text) <= 60 else text[:57] + '...'!r}"


def _literal(node: ast.expr, expr: str) -> Any:
    """The value of a literal argument node; ``SystemExit`` naming anything else."""
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError):
        raise SystemExit(f"error: bad filter {expr!r}: {_describe(node)} is not allowed in an "
                         "argument; arguments are numbers, strings, None, True/False and tuples, "
                         "lists or dicts of those") from None


def _parse_call(expr: str, classes: dict[str, type[Filter]]) -> tuple[type[Filter], list, dict]:
    """The class, positional and keyword arguments of a filter expression (parsed, not run)."""
    try:
        call = ast.parse(expr.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
        raise SystemExit(f"error: bad filter {expr!r}: {err}; write {_EXAMPLE}") from None
    if not isinstance(call, ast.Call):
        raise SystemExit(f"error: {expr!r} is not a filter: {_describe(call)}; write {_EXAMPLE}")
    if not isinstance(call.func, ast.Name):
        raise SystemExit(f"error: bad filter {expr!r}: {_describe(call.func)} is not allowed; "
                         f"write {_EXAMPLE}")
    if call.func.id not in classes:
        raise SystemExit(f"error: unknown filter {call.func.id!r} in {expr!r}; known filters: "
                         f"{', '.join(classes)}")
    args = [_literal(arg, expr) for arg in call.args]
    kwargs: dict[str, Any] = {}
    for kw in call.keywords:
        if kw.arg is None:
            raise SystemExit(f"error: bad filter {expr!r}: **{ast.unparse(kw.value)} (keyword "
                             "unpacking) is not allowed; name each argument")
        if kw.arg in kwargs:
            raise SystemExit(f"error: bad filter {expr!r}: argument {kw.arg!r} given twice")
        kwargs[kw.arg] = _literal(kw.value, expr)
    return classes[call.func.id], args, kwargs


def parse_filter(expr: str) -> Filter:
    """The filter of an expression such as ``EnKF('Sqrt', N=10, infl=1.02)``.

    The expression is parsed, never evaluated: it must be one call of a filter class named by
    :func:`filter_classes`, with literal arguments only (numbers, strings, ``None``,
    ``True``/``False``, tuples, lists and dicts of those). Anything else (attribute access,
    subscripts, other calls, names, lambdas, comprehensions, ``*``/``**`` unpacking) is refused
    with a ``SystemExit`` naming it, as are unknown class names and arguments the class rejects.
    """
    cls, args, kwargs = _parse_call(expr, filter_classes())
    try:
        return cls(*args, **kwargs)
    except (TypeError, ValueError) as err:
        raise SystemExit(f"error: bad filter {expr!r}: {err}") from None


def demo_experiments(seeds: Sequence[int] = (0, 1, 2)) -> list[Experiments]:
    """The demo: classical filters on Lorenz63 (sakov2012) and Lorenz96 (sakov2008)."""
    from mods.Lorenz63 import sakov2012
    from mods.Lorenz96 import sakov2008

    from .filters import LETKF, Climatology, EnKF, OptInterp, PartFilt

    l63 = [Climatology(), OptInterp(), EnKF("Sqrt", N=10, infl=1.02, rot=True),
           EnKF("PertObs", N=10, infl=1.04), EnKF("DEnKF", N=10, infl=1.02),
           PartFilt(N=100, reg=2.4, NER=0.3)]
    l96 = [Climatology(), OptInterp(), EnKF("Sqrt", N=40, infl=1.01),
           EnKF("PertObs", N=40, infl=1.06), EnKF("DEnKF", N=40, infl=1.01),
           LETKF(N=20, infl=1.04, loc_rad=4)]
    return [Experiments(sakov2012.HMM, l63, seeds=seeds), Experiments(sakov2008.HMM, l96, seeds=seeds)]


def _cmd_demo(args: argparse.Namespace) -> None:
    for xps in demo_experiments(seeds=range(args.seeds)):
        print()
        xps.run(progress=args.progress).table()


def parse_space(items: Sequence[str]) -> dict:
    """``["infl=log:1:1.2", "loc_rad=lin:1:20", "N=int:10:40", "upd_a=cat:Sqrt,DEnKF"]`` to a
    search-space override dict (see :func:`dafilters.tuning.resolve_space`)."""
    space = {}
    for item in items:
        try:
            name, spec = item.split("=", 1)
            kind, *rest = spec.split(":")
            if kind == "cat":
                space[name] = ("cat", rest[0].split(","))
            else:
                cast = int if kind == "int" else float
                space[name] = (kind, cast(rest[0]), cast(rest[1]))
        except (ValueError, IndexError):
            raise SystemExit(f"error: bad --space item {item!r}; use name=log:low:high, "
                             "name=lin:low:high, name=int:low:high or name=cat:a,b") from None
    return space


def _hmm_from(args: argparse.Namespace) -> HMM:
    hmm = load_hmm(args.model)
    return hmm if args.Ko is None else hmm.replace(tseq=dict(Ko=args.Ko))


def _cmd_run(args: argparse.Namespace) -> None:
    flts = [parse_filter(expr) for expr in args.filters]
    xps = Experiments(_hmm_from(args), flts, seeds=args.seeds, save_to=args.save)
    results = xps.run(progress=args.progress, workers=args.workers, backend=args.backend)
    results.table()
    if all(r["status"] == "error" for r in results.records):
        sys.exit(1)


def _load_saved(folder: str) -> Results:
    """The runs saved in ``folder``; unreadable run files are named on stderr and skipped, a
    folder without runs is an error (``SystemExit``)."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            results = Results.load(folder)
        except FileNotFoundError as err:
            results = err
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    if isinstance(results, FileNotFoundError):
        raise SystemExit(f"error: {results}")
    return results


def _cmd_table(args: argparse.Namespace) -> None:
    """Print the table of the runs saved in a folder (see :func:`_load_saved`)."""
    _load_saved(args.folder).table(best_over=args.best_over or None)


def _cmd_export(args: argparse.Namespace) -> None:
    """Write the runs saved in a folder as a netCDF file (:meth:`Results.to_xarray`)."""
    ds = _load_saved(args.folder).to_xarray()
    try:
        ds.to_netcdf(args.output)
    except (OSError, ValueError) as err:
        raise SystemExit(f"error: cannot write {args.output}: {err}") from None
    print(f"saved {args.output}: {ds.sizes['run']} filter settings x {ds.sizes['seed']} seeds "
          f"x {ds.sizes['ko']} cycles")


def _cmd_tune(args: argparse.Namespace) -> None:
    from .tuning import tune

    flt = parse_filter(args.filter)
    try:
        res = tune(flt, _hmm_from(args), space=parse_space(args.space), n_trials=args.n_trials,
                   seeds=args.seeds, metric=args.metric, storage=args.storage,
                   study_name=args.study_name, workers=args.workers, progress=_progress(args))
    except (ValueError, RuntimeError) as err:
        raise SystemExit(f"error: {err}") from None
    print(f"best {args.metric} = {format_number(res.value, 4)} on seeds {list(args.seeds)}: "
          f"{rounded_name(res.filter)}")
    if args.plot:
        from .plots import plot_study

        for path in plot_study(res.study, args.plot):
            print(f"saved {path}")


def _progress(args: argparse.Namespace) -> bool:
    """``--progress``/``--no-progress``, or by default whether stderr is a terminal."""
    return sys.stderr.isatty() if args.progress is None else bool(args.progress)


def rounded_name(flt: Filter) -> str:
    """:attr:`Filter.name` with floats to 4 significant digits, e.g. ``EnKF(N=20, infl=1.031)``
    (for reading; the name itself keeps every digit)."""
    shown = non_default(flt.params(), field_defaults(type(flt)))
    args = ", ".join(f"{k}={format_setting(v) if isinstance(v, float) else repr(v)}"
                     for k, v in shown.items())
    return f"{type(flt).__name__}({args})"


def _cmd_list(args: argparse.Namespace) -> None:
    """Print the filters and the model settings, each with a one-line description."""
    import dafilters

    print("Filters (e.g. dafilters run mods.Lorenz63.sakov2012 \"EnKF(N=20, infl=1.02)\"):")
    for name in dafilters.__all__:
        try:
            cls = getattr(dafilters, name)
        except Exception as err:  # an optional filter whose module cannot be imported here
            print(f"  {name:14s} (unavailable: {type(err).__name__}: {err})")
            continue
        if isinstance(cls, type) and issubclass(cls, Filter) and cls is not Filter:
            print(f"  {name:14s} {summary(cls.__doc__, 120 - 17)}")
    print("\nModels (setting modules, e.g. dafilters run mods.Lorenz96.sakov2008 ...):")
    settings = model_settings()
    width = max(map(len, settings), default=0)
    for name, doc in settings.items():
        print(f"  {name:{width}s}  {summary(doc, 120 - width - 4)}")


PROGRESS = dict(action=argparse.BooleanOptionalAction, default=None,
                help="progress bars (default: on a terminal)")
MODEL = dict(help="setting module, e.g. mods.Lorenz63.sakov2012")
SEEDS = dict(type=int, nargs="+", default=[0], help="seeds")
KO = dict(type=int, default=None, help="number of observation cycles - 1")


def _add_run_parsers(sub) -> None:
    """The ``demo``, ``run`` and ``table`` subcommands."""
    p = sub.add_parser("demo", help="classical filters on Lorenz63 and Lorenz96")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (default 3)")
    p.add_argument("--progress", **PROGRESS)
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("run", help="run filters on a model setting and print the table")
    p.add_argument("model", **MODEL)
    p.add_argument("filters", nargs="+", help="filter expressions, e.g. \"EnKF('Sqrt', N=10)\"")
    p.add_argument("--seeds", **SEEDS)
    p.add_argument("--Ko", **KO)
    p.add_argument("--save", default=None, help="folder to save runs to (and resume from)")
    p.add_argument("--workers", type=int, default=1, help="parallel runs")
    p.add_argument("--backend", choices=["processes", "mpi"], default="processes",
                   help="'mpi': launch with mpiexec -n K python -m mpi4py.futures -m dafilters.cli ...")
    p.add_argument("--progress", **PROGRESS)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("table", help="print the table of runs saved in a folder")
    p.add_argument("folder")
    p.add_argument("--best-over", nargs="+", default=[],
                   help="show only the best setting over these settings")
    p.set_defaults(func=_cmd_table)


def _add_tune_parser(sub) -> None:
    """The ``tune`` subcommand."""
    p = sub.add_parser("tune", help="tune a filter's hyper-parameters with Optuna")
    p.add_argument("model", **MODEL)
    p.add_argument("filter", help="filter expression; its untuned fields keep their values")
    p.add_argument("--n-trials", type=int, default=40)
    p.add_argument("--seeds", **SEEDS)
    p.add_argument("--Ko", **KO)
    p.add_argument("--metric", default="rmse.a")
    p.add_argument("--space", nargs="+", default=[],
                   help="overrides, e.g. infl=log:1:1.2 loc_rad=lin:1:20 N=int:10:40 upd_a=cat:Sqrt,DEnKF")
    p.add_argument("--storage", default=None, help="study.db, sqlite:///..., an RDB URL or x.log (journal)")
    p.add_argument("--study-name", default=None)
    p.add_argument("--workers", type=int, default=1, help="processes working on the study")
    p.add_argument("--plot", default=None, help="folder for PNG figures of the study")
    p.add_argument("--progress", **PROGRESS)
    p.set_defaults(func=_cmd_tune)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``dafilters`` command."""
    parser = argparse.ArgumentParser(prog="dafilters", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run_parsers(sub)
    add_plot_parser(sub)  # dafilters/cli_plot.py
    _add_tune_parser(sub)

    p = sub.add_parser("export", help="write the runs saved in a folder as a netCDF data set")
    p.add_argument("folder")
    p.add_argument("output", help="the netCDF file to write, e.g. runs.nc")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("list", help="list the filters and the model settings")
    p.set_defaults(func=_cmd_list)

    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
