"""What every figure of :mod:`dafilters.plots` shares: its own Agg canvas, saving, titles and
legends, plain tick labels and the choice of log axes."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from ..tables import format_setting, split_settings

if TYPE_CHECKING:
    import pandas as pd

    from ..results import Results

__all__ = ["new_figure", "save", "plain_ticks", "auto_log", "legend_settings", "row_label",
           "hmm_title", "plain_number", "wrap"]


def new_figure(nrows: int = 1, ncols: int = 1, width: float = 6.4, height: float = 4.0,
               **subplots: Any) -> tuple[Figure, np.ndarray]:
    """A figure on its own Agg canvas (no pyplot: the user's backend and figures are left alone)
    with ``nrows x ncols`` axes of ``width x height`` inches each, as a 2-D array."""
    fig = Figure(figsize=(width * ncols, height * nrows))
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplots)
    return fig, axes


def save(fig_or_ax: Figure | Axes, path: str | Path) -> Path:
    """Save a figure (or an axes' figure) as PNG at ``path``, creating missing folders; a pyplot
    figure (Optuna's) is closed once saved. Returns the path."""
    fig = fig_or_ax.figure if isinstance(fig_or_ax, Axes) else fig_or_ax
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    if getattr(fig.canvas, "manager", None) is not None:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return path


def plain_number(v: float, _pos: Any = None) -> str:
    """A tick label without exponents: ``20``, ``1.05``, ``0.003`` (up to 4 significant digits)."""
    if not math.isfinite(v):
        return ""
    return f"{v:.4g}" if abs(v) >= 1e-4 or v == 0 else f"{v:.1e}"


def plain_ticks(axis: Axis, log: bool, values: Iterable[float] | None = None) -> None:
    """Plain tick labels (``20``, not ``2 x 10^1``) on ``axis``; on a log axis over less than two
    decades, ticks at ``values`` (the data's settings) when given, else at 1, 2 and 5 per decade."""
    axis.set_major_formatter(FuncFormatter(plain_number))
    if not log:
        return
    axis.set_minor_formatter(NullFormatter())
    lo, hi = axis.get_view_interval()
    if lo > 0 and hi / lo < 100:
        ticks = sorted({float(v) for v in (() if values is None else values) if float(v) > 0})
        if 2 <= len(ticks) <= 12:
            axis.set_ticks(ticks)
            axis.set_minor_formatter(NullFormatter())
        else:
            axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))


def auto_log(values: Iterable[float], ratio: float = 4.0) -> bool:
    """Whether ``values`` want a log axis: all positive and spanning a factor of ``ratio``."""
    v = np.asarray([float(x) for x in values if x is not None], dtype=float)
    v = v[np.isfinite(v)]
    return bool(v.size and (v > 0).all() and v.max() >= ratio * v.min())


def legend_settings(results: Results, rows: pd.DataFrame, skip: Sequence[str] = ()
                    ) -> tuple[list[str], dict[str, Any]]:
    """The settings that tell the rows ``rows`` (of :meth:`Results.frame`, one HMM) apart, for
    the legend, and those they share, for the title, as the tables have them
    (:func:`dafilters.tables.split_settings`: defaults are left out); ``skip``: settings shown
    elsewhere (the horizontal axis, the settings optimised out)."""
    have: dict[str, set[str]] = {}
    for r in results.records:
        have.setdefault(r["filter"], set()).update(r["params"])
    params = [p for p in results.param_names() if p not in skip]
    columns, common = split_settings(rows, params, have)
    return columns, common


def row_label(row: Any, columns: Sequence[str], classes: int = 2) -> str:
    """``EnKF(N=20, infl=1.02)``: the filter class (left out when there is one class, ``classes``
    being the number of classes shown, and some setting tells the rows apart) and the settings
    ``columns`` that the row has."""
    shown = [f"{p}={format_setting(row[p])}" for p in columns
             if row.get(p) is not None and not (isinstance(row[p], float) and math.isnan(row[p]))]
    if classes == 1 and shown:
        return ", ".join(shown)
    return row["filter"] + (f"({', '.join(shown)})" if shown else "")


def hmm_title(hmm: str, common: dict[str, Any] | None = None, classes: Sequence[str] = (),
              note: str = "") -> str:
    """``Lorenz96.sakov2008: EnKF, upd_a=Sqrt (seed 0)``: the HMM, the filter class when there is
    one, the settings every row shares, and a note."""
    parts = list(classes) if len(classes) == 1 else []
    parts += [f"{k}={'None' if v is None else format_setting(v)}" for k, v in (common or {}).items()]
    title = hmm + (": " + ", ".join(parts) if parts else "")
    return title + (f" ({note})" if note else "")


def wrap(text: str, width: int = 70) -> str:
    """``text`` broken at commas into lines of about ``width`` characters (long titles)."""
    lines, line = [], ""
    for part in text.split(", "):
        if line and len(line) + len(part) + 2 > width:
            lines.append(line + ",")
            line = part
        else:
            line = f"{line}, {part}" if line else part
    return "\n".join(lines + [line])
