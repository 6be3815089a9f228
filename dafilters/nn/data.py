"""Training data for learned filters: trajectories simulated from an HMM, cached, cut into windows.

Shapes: trajectories ``xx`` ``(n_traj, K+1, Nx)``, observations ``yy`` ``(n_traj, Ko+1, Ny)``;
windows ``(n_windows, length, Nx)``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ..hmm import HMM

__all__ = ["simulate_trajectories", "windows", "split"]


def _cache_path(cache_dir: str | os.PathLike, hmm: HMM, n_traj: int, seed: int) -> Path:
    key = hashlib.sha1(f"{hmm.fingerprint()}|{n_traj}|{seed}".encode()).hexdigest()[:16]
    return Path(cache_dir) / f"trajectories-{key}.npz"


def simulate_trajectories(hmm: HMM, n_traj: int, seed: int = 0,
                          cache_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``n_traj`` independent twin experiments of ``hmm`` (its chronology sets their length).

    Trajectory ``i`` is ``hmm.simulate(seed * 1_000_003 + i)``, so data sets of different sizes
    share their first trajectories and never coincide with experiment seeds ``0..10^6``. With
    ``cache_dir``, the arrays are stored there (npz) and reused.

    Returns:
        ``xx`` ``(n_traj, K+1, Nx)`` and ``yy`` ``(n_traj, Ko+1, Ny)``.
    """
    if n_traj < 1:
        raise ValueError(f"n_traj must be >= 1, got {n_traj}")
    path = None if cache_dir is None else _cache_path(cache_dir, hmm, n_traj, seed)
    if path is not None and path.exists():
        with np.load(path) as data:
            return data["xx"], data["yy"]
    runs = [hmm.simulate(seed * 1_000_003 + 10**6 + i) for i in range(n_traj)]
    if not isinstance(runs[0][1], np.ndarray):
        raise ValueError("training data needs a fixed observation size (yy is a list)")
    xx = np.stack([r[0] for r in runs])
    yy = np.stack([r[1] for r in runs])
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, xx=xx, yy=yy)
        os.replace(tmp, path)
    return xx, yy


def windows(series: np.ndarray, length: int, stride: int = 1) -> np.ndarray:
    """All windows of ``length`` consecutive times, every ``stride`` steps.

    Args:
        series: ``(n_traj, T, ...)`` (or ``(T, ...)`` for one trajectory).

    Returns:
        ``(n_windows, length, ...)``, a copy.
    """
    if series.ndim < 2:
        raise ValueError("series must have a time axis and a state axis")
    s = series[None] if series.ndim == 2 else series
    T = s.shape[1]
    if not 1 <= length <= T:
        raise ValueError(f"window length {length} must be within 1..{T}")
    starts = np.arange(0, T - length + 1, stride)
    idx = starts[:, None] + np.arange(length)
    return s[:, idx].reshape(-1, length, *s.shape[2:]).copy()


def split(n: int, val_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random split of ``range(n)`` into training and validation indices."""
    perm = rng.permutation(n)
    n_val = max(1, int(round(val_fraction * n))) if n > 1 and val_fraction > 0 else 0
    return perm[n_val:], perm[:n_val]
