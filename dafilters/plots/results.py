"""Figures of experiment results (:class:`~dafilters.Results`): a metric against a setting, the
per-cycle series against time, and rank histograms. One panel per HMM (or per filter setting for
rank histograms), titled with the HMM and the settings its rows share; legends name only the
settings that tell the rows apart."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..store import load_series
from .common import auto_log, hmm_title, legend_settings, new_figure, plain_ticks, row_label, save, wrap

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

    from ..results import Results

__all__ = ["plot_results", "plot_series", "plot_rank_hist"]

_STAGE = {"a": "analysis", "f": "forecast"}


def _per_hmm(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    return list(df.groupby("hmm", sort=False))


def plot_results(results: Results, path: str | os.PathLike, x: str = "N", metric: str = "rmse.a",
                 best_over: str | Sequence[str] | None = None, logx: bool | None = None,
                 logy: bool | None = None) -> Path:
    """Plot ``metric`` against the setting ``x`` with the confidence intervals as error bars: one
    panel per HMM, one line per filter setting (DAPPER's "rmse against N" figure).

    Args:
        results: the runs (:class:`~dafilters.Results`).
        path: the PNG file (missing folders are created).
        x: the setting on the horizontal axis (``"N"``, ``"infl"``, ``"loc_rad"``, ...).
        metric: the time average plotted (``"rmse.a"``, ``"spread.a"``, ``"crps.f"``, ...).
        best_over: settings optimised out first (see :meth:`Results.best`), e.g.
            ``["infl", "loc_rad"]`` plots the best-tuned RMSE against ``N``.
        logx, logy: log axes; by default where the values are positive and span a factor of 4
            (ticks are plain numbers either way).

    Raises:
        ValueError: if no run has the setting ``x`` (naming the settings there are).
    """
    df = results.frame() if best_over is None else results.best(best_over, metric=metric)
    if x not in df.columns or df[x].isna().all():
        used = [p for p in results.param_names() if p in df and df[p].notna().any()]
        raise ValueError(f"no setting {x!r} to plot against; settings: {used}")
    skip = [x, *([best_over] if isinstance(best_over, str) else best_over or [])]
    df = df[df[x].notna()]
    groups = _per_hmm(df)
    fig, axes = new_figure(len(groups), 1, width=7.0, height=4.2)
    for ax, (hmm, g) in zip(axes[:, 0], groups):
        columns, common = legend_settings(results, g, skip)
        classes = list(g["filter"].unique())
        keys = [g[c].map(str) for c in ["filter", *columns]]
        for _, line in g.groupby(keys, sort=False):
            line = line.sort_values(x, key=lambda s: s.astype(float))
            ax.errorbar(line[x].astype(float), line[metric], yerr=line[metric + ".ci"], marker="o",
                        capsize=3, label=row_label(line.iloc[0], columns, len(classes)))
        note = f"best over {', '.join(skip[1:])}" if len(skip) > 1 else ""
        ax.set_title(wrap(hmm_title(hmm, common, classes, note)), fontsize=10)
        _axes_style(ax, g[x].astype(float), g[metric], logx, logy)
        ax.set_xlabel(x)
        ax.set_ylabel(f"{metric} (time average)")
        ax.legend(fontsize=8)
    return save(fig, path)


def _axes_style(ax: Axes, xs: Any, ys: Any, logx: bool | None, logy: bool | None) -> None:
    """Log axes (chosen by :func:`auto_log` unless given), plain tick labels, a light grid."""
    logx = auto_log(xs) if logx is None else logx
    logy = auto_log(ys, ratio=10.0) if logy is None else logy
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    plain_ticks(ax.xaxis, logx, values=xs)
    plain_ticks(ax.yaxis, logy)
    ax.grid(alpha=0.3, which="both" if logy else "major")


def _series_of(results: Results, i: int) -> dict[str, np.ndarray] | None:
    src = results.series[i]
    return src if isinstance(src, dict) or src is None else load_series(src)


def _pick_seed(results: Results, idx: list[int], seed: int | None) -> int | None:
    """The record of ``idx`` (one row of :meth:`Results.frame`) for ``seed`` (default: the
    smallest seed that ran to the end), or ``None``."""
    ran = [i for i in idx if results.records[i]["status"] in ("ok", "lost")] or idx
    if seed is None:
        return min(ran, key=lambda i: results.records[i]["seed"]) if ran else None
    return next((i for i in idx if int(results.records[i]["seed"]) == int(seed)), None)


def plot_series(results: Results, path: str | os.PathLike,
                metrics: Sequence[str] = ("rmse.a", "spread.a"), seed: int | None = None,
                logy: bool | None = None) -> Path:
    """Plot per-cycle series against time (DAPPER's rmse and spread of a run): one panel per HMM,
    one colour per filter setting, the first metric solid, the next ones dashed and dotted; the
    burn-in (cycles not in the time averages) is shaded.

    Args:
        results: runs whose series were kept (by :meth:`Experiments.run`) or saved
            (``save_to=``, read back by :meth:`Results.load`).
        path: the PNG file. metrics: per-cycle series (``"rmse.a"``, ``"spread.f"``, ...).
        seed: the seed shown (default: each row's smallest seed that ran to the end).
        logy: a log vertical axis (default: where the values span a factor of 10).

    Raises:
        ValueError: if no run has these series (naming the series there are).
    """
    rows = results.frame()
    groups = results.groups()
    panels = _per_hmm(rows.assign(_group=range(len(rows))))
    fig, axes = new_figure(len(panels), 1, width=8.0, height=3.8)
    styles = ["-", "--", ":", "-."]
    found: set[str] = set()
    for ax, (hmm, g) in zip(axes[:, 0], panels):
        columns, common = legend_settings(results, g)
        classes = list(g["filter"].unique())
        seeds, ys, tt = set(), [], None
        for colour, (_, row) in enumerate(g.iterrows()):
            i = _pick_seed(results, groups[row["_group"]], seed)
            data = _series_of(results, i) if i is not None else None
            if not data:
                continue
            found.update(data)
            t = np.asarray(data.get("tto", np.arange(len(next(iter(data.values()))))), dtype=float)
            tt = (t, data.get("masko"))
            seeds.add(int(results.records[i]["seed"]))
            for style, m in zip(styles, metrics):
                if m in data:
                    ys.append(data[m])
                    ax.plot(t, data[m], style, color=f"C{colour % 10}", lw=1.0,
                            label=row_label(row, columns, len(classes)) if style == "-" else None)
        if tt is not None and tt[1] is not None and not np.all(tt[1]):
            ax.axvspan(tt[0][0], tt[0][np.argmax(tt[1])], color="0.9", zorder=0, label="burn-in")
        note = "seed " + ", ".join(map(str, sorted(seeds))) if seeds else "no series"
        ax.set_title(wrap(hmm_title(hmm, common, classes, note)), fontsize=10)
        _axes_style(ax, [1.0], np.concatenate(ys) if ys else [1.0], False, logy)
        ax.set_xlabel("time")
        ax.set_ylabel(", ".join(f"{m} ({n})" for m, n in zip(metrics, ("solid", "dashed", "dotted",
                                                                         "dash-dot"))), fontsize=9)
        if ys:
            ax.legend(fontsize=8, ncol=2 if len(g) > 6 else 1)
    if not found & set(metrics):
        raise ValueError(f"no series {list(metrics)} in these runs (kept: {sorted(found) or 'none'}; "
                         "series are kept by Experiments.run() and saved with save_to=)")
    return save(fig, path)


def rank_histograms(results: Results, stage: str = "a") -> list[tuple[Any, np.ndarray]]:
    """The rank histogram of each row of :meth:`Results.frame` that has one (ensemble filters),
    summed over its seeds that ran to the end: ``[(frame row, counts (N+1,)), ...]``."""
    key = f"rank_hist.{stage}"
    rows = results.frame()
    out = []
    for (_, row), idx in zip(rows.iterrows(), results.groups()):
        hists = [np.asarray(results.records[i][key], dtype=float) for i in idx
                 if results.records[i]["status"] in ("ok", "lost") and results.records[i].get(key)]
        if hists and len({len(h) for h in hists}) == 1 and sum(h.sum() for h in hists) > 0:
            out.append((row, np.sum(hists, axis=0)))
    return out


def plot_rank_hist(results: Results, path: str | os.PathLike, stage: str = "a",
                   max_panels: int = 12) -> Path:
    """Plot the rank histograms of the truth among the ensemble members (``N + 1`` bins, summed
    over seeds and scored cycles), one panel per filter setting, as relative frequencies times
    ``N + 1`` so that a flat histogram (a reliable ensemble) is the line at 1.

    Args:
        results: the runs. path: the PNG file. stage: ``"a"`` (analysis) or ``"f"`` (forecast).
        max_panels: at most this many panels (the first rows of :meth:`Results.frame`).

    Raises:
        ValueError: if no run has a rank histogram (filters without members, e.g. the Kalman
            filter and particle filters, have none).
    """
    if stage not in _STAGE:
        raise ValueError(f"stage must be 'a' (analysis) or 'f' (forecast), got {stage!r}")
    hists = rank_histograms(results, stage)[:max_panels]
    if not hists:
        raise ValueError("no rank histograms in these runs (ensemble filters record them; "
                         "the Kalman filter, baselines and particle filters have none)")
    frame = results.frame()
    labels = _rank_labels(results, frame, [row for row, _ in hists])
    ncols = min(3, len(hists))
    nrows = math.ceil(len(hists) / ncols)
    fig, axes = new_figure(nrows, ncols, width=3.6, height=2.8, sharey=True)
    for ax, (_, h), label in zip(axes.ravel(), hists, labels):
        freq = h / h.sum() * len(h)
        ax.bar(np.arange(len(h)), freq, width=1.0, color="C0", edgecolor="white", lw=0.3)
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set_title(wrap(label, 40), fontsize=9)
        ax.set_xlabel("rank of the truth")
        ax.set_xlim(-0.5, len(h) - 0.5)
    for ax in axes.ravel()[len(hists):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("frequency x (N+1)")
    hmms = list(dict.fromkeys(row["hmm"] for row, _ in hists))
    common = legend_settings(results, frame[frame["hmm"].isin(hmms)])[1] if len(hmms) == 1 else {}
    head = hmm_title(hmms[0], common) if len(hmms) == 1 else "several HMMs"
    fig.suptitle(wrap(f"Rank histograms ({_STAGE[stage]}): {head}", 90), fontsize=10)
    return save(fig, path)


def _rank_labels(results: Results, frame: pd.DataFrame, rows: list[Any]) -> list[str]:
    """Panel titles: the settings that tell the rows of each HMM apart (and the HMM when the
    panels show several)."""
    several = len({row["hmm"] for row in rows}) > 1
    labels = []
    for row in rows:
        g = frame[frame["hmm"] == row["hmm"]]
        columns, _ = legend_settings(results, g)
        label = row_label(row, columns, g["filter"].nunique())
        labels.append(f"{row['hmm']}: {label}" if several else label)
    return labels
