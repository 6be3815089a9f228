"""Figures of an Optuna tuning study, drawn here on Agg canvases (no pyplot), made to be read:
the objective on a log scale, outliers (settings far worse than the rest) clipped to the edge of
the scale and marked, plain tick labels (``1.05``, not ``1.05 x 10^0``)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.colors import LogNorm, Normalize

from .common import auto_log, new_figure, plain_ticks, save

__all__ = ["plot_study", "clip_limit"]


def clip_limit(values: np.ndarray) -> float:
    """The largest value shown unclipped: the upper Tukey fence of the values' logarithms
    (``q3 + 1.5 (q3 - q1)``), or of the values themselves when some are not positive; at least
    the second smallest value, so the best ones are never clipped."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size < 4:
        return float(v.max()) if v.size else np.inf
    pos = (v > 0).all()
    w = np.log(v) if pos else v
    q1, q3 = np.percentile(w, [25, 75])
    fence = q3 + 1.5 * (q3 - q1)
    limit = float(np.exp(fence)) if pos else float(fence)
    return max(min(limit, float(v.max())), float(np.sort(v)[1]))


def _trials(study: Any) -> list[Any]:
    import optuna

    return [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE
            and t.value is not None and np.isfinite(t.value)]


def _history(study: Any, done: list[Any], path: Path) -> Path:
    """Each trial's objective and the best so far, against the trial number."""
    fig, axes = new_figure(1, 1, width=6.5, height=4.0)
    ax = axes[0, 0]
    nums = np.array([t.number for t in done])
    vals = np.array([t.value for t in done])
    top = clip_limit(vals)
    shown = np.minimum(vals, top)
    clipped = vals > top
    ax.plot(nums[~clipped], shown[~clipped], "o", ms=4, color="C0", label="trial")
    if clipped.any():
        ax.plot(nums[clipped], shown[clipped], "^", ms=5, color="C3",
                label=f"trial above {top:.4g} (clipped)")
    ax.step(nums, np.minimum.accumulate(vals), where="post", color="C1", label="best so far")
    logy = bool((vals > 0).all()) and auto_log(shown, ratio=3.0)
    if logy:
        ax.set_yscale("log")
    plain_ticks(ax.yaxis, logy)
    plain_ticks(ax.xaxis, False)
    ax.set_xlabel("trial")
    ax.set_ylabel(_metric(study))
    ax.set_title(f"{_parts(study)[0]}: {len(done)} trials, best {min(vals):.4g}", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return save(fig, path)


def _importance(study: Any, path: Path) -> Path:
    """Optuna's parameter importances (fANOVA) as horizontal bars."""
    import optuna

    importances = optuna.importance.get_param_importances(study)
    names = list(importances)[::-1]
    fig, axes = new_figure(1, 1, width=6.0, height=1.0 + 0.5 * len(names))
    ax = axes[0, 0]
    ax.barh(names, [importances[n] for n in names], color="C0")
    plain_ticks(ax.xaxis, False)
    ax.set_xlabel(f"importance for {_metric(study)}")
    ax.set_title(f"{_parts(study)[0]}: parameter importances", fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    return save(fig, path)


def _contour(study: Any, done: list[Any], names: list[str], path: Path) -> Path:
    """The objective over two parameters: the trials coloured on a log scale (outliers clipped,
    marked with triangles), filled contours between them where there are enough, the best
    trial starred; each axis on a log scale where the parameter was searched on one."""
    fig, axes = new_figure(1, 1, width=6.5, height=5.0)
    ax = axes[0, 0]
    px, py = (np.array([float(t.params[n]) for t in done]) for n in names)
    vals = np.array([t.value for t in done])
    top = clip_limit(vals)
    shown = np.minimum(vals, top)
    positive = bool((vals > 0).all())
    norm = (LogNorm if positive and shown.max() > shown.min() else Normalize)(shown.min(), top)
    logs = [_is_log(study, n) for n in names]
    if len(done) >= 6:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                levels = (np.geomspace if isinstance(norm, LogNorm) else np.linspace)(
                    shown.min(), top, 13)
                ax.tricontourf(px, py, shown, levels=levels, norm=norm, cmap="viridis_r", alpha=0.5)
            except (ValueError, RuntimeError):  # collinear or too few distinct points
                pass
    clipped = vals > top
    sc = ax.scatter(px[~clipped], py[~clipped], c=shown[~clipped], norm=norm, cmap="viridis_r",
                    edgecolors="k", linewidths=0.4, s=30, zorder=3)
    if clipped.any():
        ax.scatter(px[clipped], py[clipped], c=shown[clipped], norm=norm, cmap="viridis_r",
                   marker="^", edgecolors="C3", linewidths=0.8, s=40, zorder=3,
                   label=f"above {top:.4g} (clipped)")
        ax.legend(fontsize=8, loc="best")
    best = int(np.argmin(vals))
    ax.plot(px[best], py[best], "*", ms=16, color="C3", mec="k", zorder=4)
    if logs[0]:
        ax.set_xscale("log")
    if logs[1]:
        ax.set_yscale("log")
    ax.margins(0.05)
    plain_ticks(ax.xaxis, logs[0])
    plain_ticks(ax.yaxis, logs[1])
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    bar = fig.colorbar(sc, ax=ax, extend="max" if clipped.any() else "neither")
    bar.set_label(_metric(study))
    plain_ticks(bar.ax.yaxis, isinstance(norm, LogNorm))
    ax.set_title(f"{_parts(study)[0]}: best {vals[best]:.4g} at {names[0]}={px[best]:.4g}, "
                 f"{names[1]}={py[best]:.4g}", fontsize=10)
    return save(fig, path)


def _is_log(study: Any, name: str) -> bool:
    """Whether the study searched ``name`` on a log scale."""
    for t in study.trials:
        dist = t.distributions.get(name)
        if dist is not None:
            return bool(getattr(dist, "log", False))
    return False


def _parts(study: Any) -> tuple[str, str]:
    """The title's head and the metric: ``("EnKF on Lorenz96.sakov2008", "rmse.a")`` from a name
    made by :func:`dafilters.tuning.default_study_name`, else ``(study name, "objective")``."""
    parts = str(study.study_name).split("|")
    if len(parts) == 4:
        return f"{parts[0]} on {parts[1]}", parts[2]
    return str(study.study_name), "objective"


def _metric(study: Any) -> str:
    return _parts(study)[1]


def plot_study(study: Any, folder: str | os.PathLike, prefix: str = "study") -> list[Path]:
    """Save the figures of an Optuna study in ``folder`` (created if missing); returns their paths.

    Files: ``{prefix}_history.png`` (each trial's objective and the best so far);
    ``{prefix}_importance.png`` and ``{prefix}_contour.png`` (the objective over the first two
    parameters, by name) when the study tuned two or more parameters over at least two completed
    trials. The objective is on a log scale where it spans a factor of 3; trials above the upper
    Tukey fence of the log-values (:func:`clip_limit`) are drawn at that limit as triangles.

    Raises:
        ValueError: if the study has no completed trial.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    done = _trials(study)
    if not done:
        raise ValueError(f"study {study.study_name!r} has no completed trial to plot")
    paths = [_history(study, done, folder / f"{prefix}_history.png")]
    names = sorted({name for t in done for name in t.params})
    if len(names) >= 2 and len(done) >= 2:
        paths.append(_importance(study, folder / f"{prefix}_importance.png"))
        paths.append(_contour(study, done, names[:2], folder / f"{prefix}_contour.png"))
    return paths
