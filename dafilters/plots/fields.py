"""Snapshots of the state: the truth, a filter's analysis mean and its error, at some cycles.

2-D models are drawn as images on their grid (:func:`grid_shape` finds it), 1-D models as curves
against the variable's position.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .common import new_figure, save, wrap

if TYPE_CHECKING:
    from ..filters.base import Filter
    from ..hmm import HMM

__all__ = ["grid_shape", "plot_fields", "plot_snapshots"]


def grid_shape(hmm: HMM) -> tuple[int, int] | None:
    """The 2-D grid ``(n0, n1)`` of the model's state, flattened row-major, or ``None`` for a
    model that is not on one: the dynamics' ``grid_shape`` attribute where it has one, else read
    from ``dyn.coords`` ``(Nx, 2)`` laid out row-major (the first coordinate changing slowest),
    over the first ``Nx - n_params`` variables (model parameters at the end are left out)."""
    dyn = hmm.dyn
    if getattr(dyn, "grid_shape", None) is not None:
        return tuple(int(n) for n in dyn.grid_shape)  # type: ignore[return-value]
    n = dyn.Nx - int(dyn.n_params)
    coords = np.asarray(dyn.__dict__.get("coords", dyn.coords), dtype=float)[:n]
    if coords.ndim != 2 or coords.shape[1] != 2:
        return None
    n0, n1 = (len(np.unique(coords[:, k])) for k in (0, 1))
    if n0 * n1 != n or n0 < 2 or n1 < 2:
        return None
    grid = coords.reshape(n0, n1, 2)
    if np.ptp(grid[:, :, 0], axis=1).max() > 0 or np.ptp(grid[:, :, 1], axis=0).max() > 0:
        return None  # not row-major
    return n0, n1


def plot_fields(fields: Mapping[str, np.ndarray], path: str | os.PathLike,
                shape: tuple[int, int] | None = None, title: str = "", offset: int = 0,
                row_labels: Sequence[str] | None = None) -> Path:
    """Draw named states side by side, one row per snapshot: ``fields[name]`` is ``(Nx,)`` (one
    snapshot) or ``(n, Nx)`` (``n`` snapshots, rows).

    Args:
        fields: e.g. ``{"truth": xx[kko], "analysis mean": mu}``; the names are column titles.
        path: the PNG file.
        shape: the grid ``(n0, n1)``: images of the variables ``offset .. offset + n0 n1`` (e.g.
            one field of several), flattened row-major, the first index along the horizontal
            axis (``x``), the second upwards (``y``); ``None``: curves against the variable index.
        title: the figure's title. row_labels: a label per snapshot (e.g. its time).

    Colours: one symmetric scale for the states, with its colour bar at the last of them; a field
    called ``"error"`` gets its own symmetric scale and colour bar.

    Raises:
        ValueError: if the fields differ in shape or do not hold ``offset + n0 n1`` variables.
    """
    arrays = {k: np.atleast_2d(np.asarray(v, dtype=float)) for k, v in fields.items()}
    shapes = {a.shape for a in arrays.values()}
    if len(shapes) != 1:
        raise ValueError(f"fields of different shapes: { {k: a.shape for k, a in arrays.items()} }")
    n_snap, Nx = shapes.pop()
    if shape is not None and offset + shape[0] * shape[1] > Nx:
        raise ValueError(f"a grid {shape} from variable {offset} needs {offset + shape[0] * shape[1]} "
                         f"variables; the fields have {Nx}")
    names = list(arrays)
    last_state = max((j for j, k in enumerate(names) if k != "error"), default=-1)
    row_labels = list(row_labels) if row_labels is not None else [""] * n_snap
    if len(row_labels) != n_snap:
        raise ValueError(f"{len(row_labels)} row labels for {n_snap} snapshots")
    if shape is None:
        return _curves(arrays, path, title, row_labels)
    n = shape[0] * shape[1]
    state = [a[:, offset:offset + n] for k, a in arrays.items() if k != "error"]
    lim = float(np.nanmax(np.abs(np.concatenate(state)))) if state else 1.0
    fig, axes = new_figure(n_snap, len(names), width=3.0, height=2.8)
    for j, name in enumerate(names):
        err = name == "error"
        vmax = float(np.nanmax(np.abs(arrays[name][:, offset:offset + n]))) if err else lim
        for i in range(n_snap):
            ax = axes[i, j]
            grid = arrays[name][i, offset:offset + n].reshape(shape)
            img = ax.imshow(grid.T, origin="lower", cmap="RdBu_r", vmin=-vmax, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=10)
            if j == 0:
                ax.set_ylabel(row_labels[i])
            if err or j == last_state:
                fig.colorbar(img, ax=ax, shrink=0.8)
    if title:
        fig.suptitle(wrap(title, 90), fontsize=10)
    return save(fig, path)


def _curves(arrays: Mapping[str, np.ndarray], path: str | os.PathLike, title: str,
            row_labels: Sequence[str]) -> Path:
    """1-D snapshots: one panel per snapshot, one curve per field (errors dashed)."""
    n_snap = next(iter(arrays.values())).shape[0]
    fig, axes = new_figure(n_snap, 1, width=8.0, height=2.6)
    for i in range(n_snap):
        ax = axes[i, 0]
        for k, a in arrays.items():
            ax.plot(a[i], "--" if k == "error" else "-", lw=1.0, label=k)
        ax.grid(alpha=0.3)
        ax.set_ylabel(row_labels[i] or "value")
    axes[0, 0].legend(fontsize=8, ncol=len(arrays))
    axes[-1, 0].set_xlabel("state variable")
    if title:
        fig.suptitle(wrap(title, 90), fontsize=10)
    return save(fig, path)


def plot_snapshots(hmm: HMM, flt: Filter, path: str | os.PathLike, seed: int = 0,
                   ko: Sequence[int] | None = None, shape: tuple[int, int] | None = None,
                   offset: int = 0) -> Path:
    """Run ``flt`` on the twin experiment of ``(hmm, seed)`` and draw the truth, the analysis
    mean and its error at the observation cycles ``ko`` (default: the first, middle and last).

    The grid comes from :func:`grid_shape` unless ``shape`` is given (with ``offset``: one field
    of several, e.g. the height of the shallow-water state); a model on no 2-D grid is drawn as
    curves. The title names the HMM, the filter and the seed; each row its cycle and time.

    Raises:
        ValueError: if a cycle is outside ``0..Ko``, or the filter diverged before the last one.
    """
    tseq = hmm.tseq
    ko = [0, tseq.Ko // 2, tseq.Ko] if ko is None else [int(k) for k in ko]
    bad = [k for k in ko if not 0 <= k <= tseq.Ko]
    if bad:
        raise ValueError(f"cycles {bad} are outside 0..Ko = 0..{tseq.Ko}")
    xx, yy = hmm.simulate(seed)
    stats = flt.assimilate(hmm, xx, yy, seed=seed, keep=("mean",))
    mu = stats.keep["mean.a"][ko]
    if not np.all(np.isfinite(mu)):
        raise ValueError(f"{flt.name} has no analysis at every cycle {ko} "
                         f"({stats.error or 'non-finite mean'})")
    truth = xx[tseq.kko[ko]]
    shape = grid_shape(hmm) if shape is None else shape
    title = f"{hmm.name}: {flt.name}, seed {seed}"
    labels = [f"ko = {k}, t = {tseq.tto[k]:.4g}" for k in ko]
    fields = {"truth": truth, "analysis mean": mu, "error": mu - truth}
    return plot_fields(fields, path, shape=shape, title=title, offset=offset, row_labels=labels)

