"""Training data for learned filters: trajectories simulated from an HMM, cached, cut into windows.

Shapes: trajectories ``xx`` ``(n_traj, K+1, Nx)``, observations ``yy`` ``(n_traj, Ko+1, Ny)``;
windows ``(n_windows, length, Nx)``. :func:`simulate_at_obs` keeps the states at time 0 and at the
observation times only, ``(n_traj, Ko+2, Nx)`` (for large models, where every model step of many
trajectories would not fit in memory).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ..hmm import HMM

__all__ = ["simulate_trajectories", "simulate_at_obs", "window_starts", "windows", "split"]


def _cache_path(cache_dir: str | os.PathLike, hmm: HMM, n_traj: int, seed: int, kind: str = "") -> Path:
    key = hashlib.sha1(f"{hmm.fingerprint()}|{n_traj}|{seed}{kind}".encode()).hexdigest()[:16]
    return Path(cache_dir) / f"trajectories-{key}.npz"


def _save(path: Path, **arrays: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


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
        _save(path, xx=xx, yy=yy)
    return xx, yy


def simulate_at_obs(hmm: HMM, n_traj: int, seed: int = 0,
                    cache_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The twin experiments of :func:`simulate_trajectories` (same seeds, same random streams),
    keeping only the states at time 0 and at the observation times.

    With deterministic dynamics all trajectories are advanced together, as one ensemble, from one
    observation time to the next (by :meth:`~dafilters.hmm.Dynamics.advance`, one call per
    interval); with model noise each trajectory is simulated by ``hmm.simulate``.

    Returns:
        ``xx`` ``(n_traj, Ko+2, Nx)`` (``xx[:, 0]`` at time 0, ``xx[:, ko+1]`` at ``kko[ko]``) and
        ``yy`` ``(n_traj, Ko+1, Ny)``.
    """
    from ..hmm import streams

    if n_traj < 1:
        raise ValueError(f"n_traj must be >= 1, got {n_traj}")
    # "|at_obs.2": files saved before the intervals of time-dependent models started at their time
    path = None if cache_dir is None else _cache_path(cache_dir, hmm, n_traj, seed, "|at_obs.2")
    if path is not None and path.exists():
        with np.load(path) as data:
            return data["xx"], data["yy"]
    seeds = [seed * 1_000_003 + 10**6 + i for i in range(n_traj)]
    tseq, dyn = hmm.tseq, hmm.dyn
    steps = np.concatenate([[0], tseq.kko])
    if dyn.noise is not None:
        runs = [hmm.simulate(s) for s in seeds]
        xx = np.stack([r[0][steps] for r in runs])
        yy = np.stack([np.asarray(r[1]) for r in runs])
    else:
        rngs = [streams(s)[:2] for s in seeds]
        E = np.concatenate([hmm.prior.sample(1, rx) for rx, _ in rngs])  # as hmm.simulate draws x0
        xx = np.empty((n_traj, len(steps), hmm.Nx))
        xx[:, 0] = E
        for i in range(1, len(steps)):
            k0, k1 = int(steps[i - 1]), int(steps[i])
            E = dyn.advance(E, tseq.dt, k1 - k0, t=tseq.tt[k0])
            xx[:, i] = E
        if not np.all(np.isfinite(xx)):
            raise FloatingPointError(f"{hmm.name}: a training trajectory is not finite")
        yy_list = [[hmm.obs.sample(xx[j, ko + 1], ko, ry) for ko in range(tseq.Ko + 1)]
                   for j, (_, ry) in enumerate(rngs)]
        if len({len(y) for ys in yy_list for y in ys}) != 1:
            raise ValueError("training data needs a fixed observation size")
        yy = np.array(yy_list)
    if path is not None:
        _save(path, xx=xx, yy=yy)
    return xx, yy


def window_starts(T: int, length: int, stride: int = 1) -> np.ndarray:
    """The first times of the windows of ``length`` times in a series of ``T`` times, every
    ``stride`` steps (those of :func:`windows`, for each trajectory)."""
    return np.arange(0, T - length + 1, stride)


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
    idx = window_starts(T, length, stride)[:, None] + np.arange(length)
    return s[:, idx].reshape(-1, length, *s.shape[2:]).copy()


def split(n: int, val_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random split of ``range(n)`` into training and validation indices."""
    perm = rng.permutation(n)
    n_val = max(1, int(round(val_fraction * n))) if n > 1 and val_fraction > 0 else 0
    return perm[n_val:], perm[:n_val]


def time_split(starts: np.ndarray, length: int, T: int, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation indices of windows by time, not at random: a window (of ``length``
    times from ``starts[i]``, on trajectories of ``T`` times) validates if it starts in the last
    ``val_fraction`` of its trajectory, and trains if it ends before that block; windows across
    the boundary are left out. Overlapping windows of one trajectory split at random would put
    nearly the same data on both sides, and a model that memorises the training trajectories would
    look good on validation."""
    cut = int(round(T * (1 - val_fraction)))
    starts = np.asarray(starts)
    ival = np.flatnonzero(starts >= cut)
    itr = np.flatnonzero(starts + length <= cut)
    if not len(ival) or not len(itr):
        raise ValueError(f"cannot split windows of {length} times on trajectories of {T} times with "
                         f"val_fraction={val_fraction}: one side would be empty")
    return itr, ival

