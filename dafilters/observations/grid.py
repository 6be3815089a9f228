"""Observation operators of 2-D fields on an ``n0 x n1`` grid flattened row-major (grid point
``(i, j)`` at component ``i * n1 + j``): sub-grids, random masks, a centre patch and block means
(see :mod:`dafilters.observations`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .base import Observation, as_like, is_torch, solve_noise
from .basic import PartialObs, _NoiseMixin

__all__ = ["GridMaskObs", "RandomMaskObs", "CentrePatchObs", "AvgPoolObs", "grid_indices"]


def _grid_shape(n: int | Sequence[int]) -> tuple[int, int]:
    """``n`` (a square grid) or ``(n0, n1)`` as ``(n0, n1)``, checked positive."""
    shape = (int(n), int(n)) if np.ndim(n) == 0 else tuple(int(m) for m in n)
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"a 2-D grid shape must be n or (n0, n1) with positive sizes, got {n!r}")
    return shape


def _pair(v: int | Sequence[int], name: str) -> tuple[int, int]:
    """An int (the same along both axes) or a pair of ints as a pair."""
    pair = (int(v), int(v)) if np.ndim(v) == 0 else tuple(int(a) for a in v)
    if len(pair) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    return pair


def grid_indices(shape: int | Sequence[int], rows: Sequence[int], cols: Sequence[int]) -> np.ndarray:
    """Row-major flat indices ``i * n1 + j`` of the grid points ``rows x cols`` (all pairs, in
    row-major order), shape ``(len(rows) * len(cols),)``."""
    n0, n1 = _grid_shape(shape)
    rows, cols = np.asarray(rows, dtype=int), np.asarray(cols, dtype=int)
    if any(len(a) and (a.min() < 0 or a.max() >= m) for a, m in ((rows, n0), (cols, n1))):
        raise ValueError(f"grid rows/columns outside the {n0} x {n1} grid")
    return (rows[:, None] * n1 + cols[None, :]).ravel()


class GridMaskObs(PartialObs):
    r"""Observe a 2-D field at a regular sub-grid: every ``every``-th point in each direction,

    .. math::  y = \big(x_{i n_1 + j}\big)_{i \in I_0,\ j \in I_1} + r,\qquad
               I_a = \{o_a, o_a + s_a, o_a + 2 s_a, \dots\} \cap [0, n_a),

    ordered row-major (``Ny = |I_0| |I_1|``).

    Args:
        n: the grid, ``n`` (square) or ``(n0, n1)``; states are ``(..., n0 * n1)``, row-major.
        every: the stride ``s`` (an int, or one per axis).
        noise: observation-error covariance (scalar variance, vector, matrix or ``ko -> ...``).
        offset: the first observed row / column ``o`` (an int, or one per axis), ``0 <= o < s``.

    The locations are the state positions of the observed points, ``coords[idx]``.
    """

    def __init__(self, n: int | Sequence[int], every: int | Sequence[int], noise,
                 offset: int | Sequence[int] = 0):
        self.shape = _grid_shape(n)
        self.every = _pair(every, "every")
        self.offset = _pair(offset, "offset")
        if min(self.every) < 1 or any(not 0 <= o < s for o, s in zip(self.offset, self.every)):
            raise ValueError(f"need every >= 1 and 0 <= offset < every, got every={every}, offset={offset}")
        axes = [np.arange(o, m, s) for o, m, s in zip(self.offset, self.shape, self.every)]
        super().__init__(self.shape[0] * self.shape[1], grid_indices(self.shape, *axes), noise)


class RandomMaskObs(PartialObs):
    """Observe a 2-D field at a seeded random subset of its grid points, ``y = x[idx] + r``.

    The subset (``count`` points, or ``round(frac * Nx)``, drawn without replacement and sorted)
    is drawn from ``numpy.random.default_rng(seed)``: the same seed gives the same mask. With
    ``resample=True`` a new subset of the same size is drawn at each observation time from
    ``default_rng([seed, ko])`` (moving observations).

    Args:
        n: the grid, ``n`` or ``(n0, n1)``; states ``(..., n0 * n1)``, row-major.
        noise: observation-error covariance (scalar variance, vector, matrix or ``ko -> ...``).
        frac: fraction of the points to observe, in ``(0, 1]`` (give ``frac`` or ``count``).
        count: number of points to observe.
        seed: seed of the mask. resample: a new mask at every ``ko``.
    """

    identity_exclude = ("_last",)  # the last mask drawn (a cache)

    def __init__(self, n: int | Sequence[int], noise, frac: float | None = None,
                 count: int | None = None, seed: int = 0, resample: bool = False):
        self.shape = _grid_shape(n)
        Nx = self.shape[0] * self.shape[1]
        if (frac is None) == (count is None):
            raise ValueError("give exactly one of frac and count")
        if frac is not None:
            if not 0 < frac <= 1:
                raise ValueError(f"frac must be in (0, 1], got {frac}")
            count = max(1, int(round(frac * Nx)))
        if not 1 <= int(count) <= Nx:
            raise ValueError(f"count must be in [1, {Nx}], got {count}")
        self.count, self.seed, self.resample = int(count), int(seed), bool(resample)
        self._last: tuple[int, np.ndarray] | None = None
        super().__init__(Nx, self._draw if resample else self._draw(None), noise)

    def _draw(self, ko: int | None) -> np.ndarray:
        """The mask at ``ko`` (``None``: the fixed mask), sorted flat indices ``(count,)``."""
        if ko is not None and self._last is not None and self._last[0] == ko:
            return self._last[1]
        rng = np.random.default_rng(self.seed if ko is None else [self.seed, int(ko)])
        idx = np.sort(rng.choice(self.shape[0] * self.shape[1], self.count, replace=False))
        if ko is not None:
            self._last = (ko, idx)
        return idx


class CentrePatchObs(PartialObs):
    r"""Observe a 2-D field on a ``size x size`` square of grid points in the middle of the grid:
    rows ``a_0, ..., a_0 + s_0 - 1`` with ``a_0 = (n_0 - s_0) // 2`` (columns likewise), row-major.

    Args:
        n: the grid, ``n`` or ``(n0, n1)``; states ``(..., n0 * n1)``, row-major.
        size: side of the patch in grid points (an int, or one per axis), at most the grid size.
        noise: observation-error covariance (scalar variance, vector, matrix or ``ko -> ...``).
    """

    def __init__(self, n: int | Sequence[int], size: int | Sequence[int], noise):
        self.shape = _grid_shape(n)
        self.size = _pair(size, "size")
        if any(not 1 <= s <= m for s, m in zip(self.size, self.shape)):
            raise ValueError(f"patch size {size} does not fit in the {self.shape} grid")
        axes = [np.arange((m - s) // 2, (m - s) // 2 + s) for s, m in zip(self.size, self.shape)]
        super().__init__(self.shape[0] * self.shape[1], grid_indices(self.shape, *axes), noise)


class AvgPoolObs(_NoiseMixin, Observation):
    r"""Observe the means of a 2-D field over non-overlapping ``k0 x k1`` blocks (average pooling),

    .. math::  y_{IJ} = \frac{1}{k_0 k_1} \sum_{a=0}^{k_0-1} \sum_{b=0}^{k_1-1}
               x_{(k_0 I + a) n_1 + k_1 J + b} + r_{IJ},
               \qquad 0 \le I < n_0 / k_0,\ 0 \le J < n_1 / k_1,

    ``y`` ordered row-major over the blocks (``Ny = n_0 n_1 / (k_0 k_1)``). It is linear,
    ``y = H x + r``; :math:`H^T` spreads a block's value, divided by :math:`k_0 k_1`, over its
    points, which gives the likelihood score :math:`H^T R^{-1}(y - Hx)` without forming ``H``.

    Args:
        n: the grid, ``n`` or ``(n0, n1)``, multiples of the block sides; states ``(..., n0 * n1)``.
        k: block side in grid points, ``k`` (square blocks) or ``(k0, k1)``.
        noise: observation-error covariance (scalar variance, vector, matrix or ``ko -> ...``).

    An observation sits at the centre of its block: the mean of its points' coordinates.
    """

    identity_exclude = ("_H",)  # H formed on first use by linear(): a cache

    def __init__(self, n: int | Sequence[int], k: int | Sequence[int], noise):
        self.shape = _grid_shape(n)
        self.k = _pair(k, "k")
        if min(self.k) < 1 or self.shape[0] % self.k[0] or self.shape[1] % self.k[1]:
            raise ValueError(f"block size k={k} must divide the grid sizes {self.shape}")
        self.Nx = self.shape[0] * self.shape[1]
        self.blocks = (self.shape[0] // self.k[0], self.shape[1] // self.k[1])
        self._H: np.ndarray | None = None
        self._init_noise(noise)

    def Ny(self, ko: int) -> int:
        return self.blocks[0] * self.blocks[1]

    def pool(self, X):
        """Block means of ``X`` ``(..., Nx) -> (..., Ny)`` (numpy or torch)."""
        lead, (m0, m1), (k0, k1) = tuple(X.shape[:-1]), self.blocks, self.k
        if X.shape[-1] != self.Nx:
            raise ValueError(f"{type(self).__name__} expects states of size {self.Nx}, got {X.shape[-1]}")
        return X.reshape(*lead, m0, k0, m1, k1).mean((-3, -1)).reshape(*lead, m0 * m1)

    def spread(self, V):
        """The adjoint :math:`H^T V`: ``V`` ``(..., Ny) -> (..., Nx)``, each block's value divided
        by :math:`k_0 k_1` on each of its points (numpy or torch)."""
        lead, (m0, m1), (k0, k1) = tuple(V.shape[:-1]), self.blocks, self.k
        V = V.reshape(*lead, m0, 1, m1, 1) / (k0 * k1)
        full = (*lead, m0, k0, m1, k1)
        V = V.expand(*full) if is_torch(V) else np.broadcast_to(V, full)
        return V.reshape(*lead, self.Nx)

    def h(self, E, ko: int):
        return self.pool(E)

    def h_torch(self, X, ko: int):
        return self.pool(X)

    def linear(self, x: np.ndarray, ko: int) -> np.ndarray:
        """``H`` ``(Ny, Nx)`` (formed once, then cached)."""
        if self._H is None:
            self._H = np.ascontiguousarray(self.spread(np.eye(self.Ny(ko))))
        return self._H

    def grad_loglik(self, y, X, ko: int):
        """:math:`H^T R^{-1}(y - Hx)` for each row of ``X`` ``(..., Nx)`` (numpy or torch)."""
        return self.spread(solve_noise(self.noise(ko), as_like(y, X) - self.pool(X), X))

    def locations(self, ko: int, coords: np.ndarray) -> np.ndarray:
        coords = np.asarray(coords, dtype=float).reshape(self.Nx, -1)
        return self.pool(coords.T).T


