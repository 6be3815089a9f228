"""Comparison tables: one text table per HMM, showing only what tells its rows apart.

A table shows a setting as a column only where it says something about the rows:

- a setting whose value varies between the rows that have it is a column;
- a setting with one value in every row that has it is left out if that value is the class
  default of every such row (e.g. ``taper='GC'`` on unlocalized EnKF rows, ``nuj=True``);
  otherwise it is listed once, on a ``common settings:`` line above the table, when two or more
  rows have it, or shown as a column when only one row has it.

So, as in filter names (:attr:`~dafilters.filters.base.Filter.name`), a default is shown only
where it is compared with other values. The ``seeds ok`` and ``status`` columns are dropped when
every row ran the same seeds to the end without trouble (the title then says ``N seeds, all ok``).
Numbers have one format: a mean with a confidence interval has the decimals of the first
significant digit of the interval (``0.644 ± 0.004``); a number without one has three significant
digits (``8.53``); settings have up to four (tuned values are long).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from tabulate import tabulate

from .filters.defaults import ALWAYS_SHOWN, field_defaults, same_setting

__all__ = ["format_uq", "format_setting", "format_number", "class_defaults", "hmm_table"]


def format_number(x: float, digits: int = 3) -> str:
    """``x`` in fixed-point notation with ``digits`` significant digits: ``8.533 -> '8.53'``,
    ``0.0012345 -> '0.00123'``, ``1234.5 -> '1234'``; ``'nan'``/``'inf'`` for non-finite values."""
    x = float(x)
    if not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if x == 0:
        return "0"
    decimals = max(0, min(12, digits - 1 - math.floor(math.log10(abs(x)))))
    return f"{x:.{decimals}f}"


def format_uq(mu: float, ci: float) -> str:
    """``0.1823, 0.0031 -> '0.182 ± 0.003'``: decimals set by the first significant digit of ci
    (at most 6); without a ci (NaN, or one that rounds to 0 at 6 decimals), three significant
    digits (``8.533, nan -> '8.53'``)."""
    if not np.isfinite(mu):
        return "nan"
    if not np.isfinite(ci) or ci < 0.5e-6 or ci <= 1e-9 * abs(mu):
        return format_number(mu)
    decimals = int(min(6, max(0, -np.floor(np.log10(ci)))))
    return f"{mu:.{decimals}f} ± {ci:.{decimals}f}"


def format_setting(v: Any, exact: bool = False) -> str:
    """A hyper-parameter for a table: floats with 4 significant digits (tuned values are long),
    or all of them with ``exact``; ``None`` is blank."""
    if v is None:
        return ""
    if isinstance(v, (float, np.floating)) and not float(v).is_integer():
        return repr(float(v)) if exact else f"{v:.4g}"
    return str(v)


def class_defaults(name: str) -> dict[str, Any] | None:
    """The defaults of the settings of the filter class called ``name`` (a public filter of
    :mod:`dafilters.filters`, or any imported subclass of ``Filter`` with a unique name), or
    ``None`` if unknown (then every setting counts as not a default)."""
    from . import filters
    from .filters.base import Filter

    found, todo = [], [Filter]
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.__name__ == name:
            found.append(cls)
    if not found and name in filters.__all__:
        try:
            found = [getattr(filters, name)]
        except Exception:  # a module that cannot be imported here: no defaults
            return None
    defaults = [field_defaults(cls) for cls in found]
    if not defaults or any(d.keys() != defaults[0].keys() for d in defaults):
        return None
    if any(not same_setting(d[k], defaults[0][k]) for d in defaults for k in d):
        return None
    return defaults[0]


def _key(v: Any) -> tuple:
    """A hashable key for a setting value (``1`` and ``1.0`` one value, ``True`` another)."""
    if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)):
        return ("number", float(v))
    return ("other", repr(v))


def split_settings(g: pd.DataFrame, params: Sequence[str], have: dict[str, set[str]],
                   ) -> tuple[list[str], dict[str, Any]]:
    """The settings shown as columns of the table of rows ``g`` and the common settings (see the
    module docstring); ``have[filter]`` names the settings of each filter class."""
    defaults = {f: class_defaults(f) for f in g["filter"].unique()}
    columns, common = [], {}
    for p in params:
        rows = g[[p in have.get(f, ()) for f in g["filter"]]]
        if rows.empty:
            continue
        values = list(rows[p])
        if len({_key(v) for v in values}) > 1:
            columns.append(p)
            continue
        v = values[0]
        d = [defaults[f] for f in rows["filter"]]
        if p not in ALWAYS_SHOWN and all(x is not None and p in x and same_setting(v, x[p]) for x in d):
            continue
        if len(rows) > 1:
            common[p] = v
        else:
            columns.append(p)
    return columns, common


def hmm_table(label: str, g: pd.DataFrame, params: Sequence[str], have: dict[str, set[str]],
              metrics: Sequence[str], tablefmt: str = "simple") -> str:
    """The table of the rows ``g`` of :meth:`~dafilters.results.Results.frame` of one HMM,
    titled ``label`` (see the module docstring)."""
    columns, common = split_settings(g, params, have)
    exact = {p for p in columns if g[p].map(_key).nunique() > g[p].map(format_setting).nunique()}
    n_seeds = set(g["seeds"])
    plain = (g["status"] == "ok").all() and len(n_seeds) == 1
    head = ["filter"] + columns + list(metrics) + ["ms/cycle"]
    head += [] if plain else ["seeds ok", "status"]
    rows = []
    for _, r in g.iterrows():
        row = [r["filter"] + (" (tuned)" if r["tuned"] else "")]
        row += [format_setting(r[p], exact=p in exact) for p in columns]
        row += [format_uq(r[m], r[m + ".ci"]) for m in metrics]
        row.append(format_number(1e3 * r["s_per_cycle"]))
        row += [] if plain else [f"{r['ok']}/{r['seeds']}", r["status"]]
        rows.append(row)
    title = label
    if plain:
        n = n_seeds.pop()
        title += f": {n} seed{'s' if n != 1 else ''}, all ok"
    lines = [title]
    if common:
        lines.append("common settings: " + ", ".join(
            f"{k}={'None' if v is None else format_setting(v)}" for k, v in common.items()))
    lines.append(tabulate(rows, head, tablefmt=tablefmt, disable_numparse=True))
    return "\n".join(lines)
