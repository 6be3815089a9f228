"""Figures of tuning studies and experiment results, saved as PNG (matplotlib, no display needed).

- :func:`plot_study`: optimisation history, parameter importances and, for two or more
  parameters, a contour of the objective over the first two (e.g. ``infl`` × ``loc_rad``).
- :func:`plot_results`: a metric (``rmse.a``) against a setting (``N``) with one line per filter
  (error bars: the confidence interval of the seed average).

Figures are drawn on their own Agg canvas (``matplotlib.figure.Figure``): importing this module
or plotting leaves the user's matplotlib backend and pyplot's figures alone (Optuna's plots are
pyplot figures, closed once saved).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["plot_study", "plot_results"]


def _save(fig_or_ax: Any, path: Path) -> Path:
    """Save a figure (or an axes' figure) as PNG at ``path``, creating missing folders; close it
    if pyplot manages it."""
    fig = fig_or_ax.figure if isinstance(fig_or_ax, Axes) else fig_or_ax
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    if getattr(fig.canvas, "manager", None) is not None:  # a pyplot figure (Optuna's)
        import matplotlib.pyplot as plt

        plt.close(fig)
    return path


def plot_study(study: Any, folder: str | os.PathLike, prefix: str = "study") -> list[Path]:
    """Save the figures of an Optuna study in ``folder`` (created if missing); returns their paths.

    Files: ``{prefix}_history.png``; ``{prefix}_importance.png`` and ``{prefix}_contour.png``
    when the study tuned two or more parameters over at least two completed trials.
    """
    import optuna
    from optuna.visualization import matplotlib as ovm

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # Optuna's matplotlib plots are experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        paths = [_save(ovm.plot_optimization_history(study), folder / f"{prefix}_history.png")]
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        names = sorted({name for t in done for name in t.params})
        if len(names) >= 2 and len(done) >= 2:
            paths.append(_save(ovm.plot_param_importances(study), folder / f"{prefix}_importance.png"))
            ax = ovm.plot_contour(study, params=names[:2])
            paths.append(_save(ax, folder / f"{prefix}_contour.png"))
    return paths


def plot_results(results: Any, path: str | os.PathLike, x: str = "N", metric: str = "rmse.a",
                 best_over: Any = None) -> Path:
    """Plot ``metric`` against the setting ``x``, one line per (HMM, filter class).

    Args:
        results: :class:`~dafilters.Results`. path: the PNG file (missing folders are created).
        x: the setting on the horizontal axis. metric: the time average plotted.
        best_over: other settings to optimise out first (see :meth:`Results.best`), e.g.
            ``["infl", "loc_rad"]`` to plot the best-tuned RMSE against ``N``.
    """
    df = results.frame() if best_over is None else results.best(best_over, metric=metric)
    if x not in df.columns or df[x].isna().all():
        used = [p for p in results.param_names() if p in df and df[p].notna().any()]
        raise ValueError(f"no setting {x!r} to plot against; settings: {used}")
    skip = {x, *([best_over] if isinstance(best_over, str) else best_over or [])}
    others = [p for p in results.param_names() if p not in skip and df[p].map(str).nunique() > 1]
    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    df = df[df[x].notna()]
    for _, g in df.groupby(["hmm", "filter"] + others, sort=False, dropna=False):
        g = g.sort_values(x, key=lambda s: s.astype(float))
        first = g.iloc[0]
        settings = ", ".join(f"{p}={first[p]}" for p in others if first[p] is not None)
        label = first["filter"] + (f"({settings})" if settings else "")
        label += "" if df["hmm"].nunique() == 1 else f" [{first['hmm']}]"
        ax.errorbar(g[x].astype(float), g[metric], yerr=g[metric + ".ci"], marker="o", capsize=3,
                    label=label)
    ax.set_xlabel(x)
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, Path(path))
