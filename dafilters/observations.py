r"""Generic observation operators.

- :class:`LinearObs`: ``y = H x + r`` with a fixed matrix ``H`` ``(Ny, Nx)``.
- :class:`PartialObs`: ``y = x[idx] + r``, where the index set may change with ``ko``
  (missing and moving observations); :func:`IdentityObs` observes everything.
- :class:`FunctionObs`: ``y = f(x[idx]) + r`` for an element-wise nonlinear ``f`` (e.g. arctan).
- :class:`TorchObs`: ``y = h(x) + r`` for any operator written in torch (its likelihood score by
  autograd).
- 2-D fields on an ``n0 x n1`` grid flattened row-major (component ``i * n1 + j`` holds grid point
  ``(i, j)``): :class:`GridMaskObs` (every ``s``-th point in each direction),
  :class:`RandomMaskObs` (a seeded random subset), :class:`CentrePatchObs` (a square in the middle)
  and :class:`AvgPoolObs` (means over non-overlapping ``k x k`` blocks).
- Vorticity fields of 2-D incompressible flow on a periodic square: :class:`VelocityProbesObs`
  (both velocity components at sparse probes, a linear operator built spectrally by
  :func:`velocity_probe_matrix`).

Every operator gives the likelihood score :math:`\nabla_x \log p(y|x) = J_h(x)^T R^{-1}(y - h(x))`
of a batch of states (numpy or torch) through ``grad_loglik(y, X, ko)``: in closed form for the
linear, partial and element-wise operators, by autograd otherwise.

Noise is Gaussian with covariance given as a scalar (``s * I``), a vector (diagonal) or a matrix,
or as a callable ``ko -> covariance`` for time-varying noise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .gaussian import Covariance
from .hmm import Observation, as_like, is_torch, solve_noise

__all__ = ["LinearObs", "PartialObs", "IdentityObs", "FunctionObs", "ArctanObs", "TorchObs",
           "GridMaskObs", "RandomMaskObs", "CentrePatchObs", "AvgPoolObs",
           "VelocityProbesObs", "velocity_probe_matrix", "vorticity_to_velocity", "probe_lattice"]


class _NoiseMixin:
    """Builds ``R_ko`` from a scalar, vector, matrix, :class:`Covariance` or ``ko -> ...``.

    Fixed specifications are turned into a :class:`Covariance` once per observation size, and
    checked when the operator is built (positive variances, a symmetric positive-definite matrix);
    a callable's covariance is checked when it is asked for.
    """

    identity_exclude = ("_noise_cache",)  # covariances built from _noise_spec

    def _noise_name(self, ko: int | None = None) -> str:
        """How error messages name ``R`` (at ``ko`` if given)."""
        return f"observation noise R of {type(self).__name__}" + ("" if ko is None else f" at ko={ko}")

    def _init_noise(self, noise) -> None:
        if noise is None:
            raise ValueError("observation noise must be given (a variance, vector or matrix)")
        self._noise_spec = noise
        self._noise_cache: dict[int, Covariance] = {}
        if not callable(noise):
            if np.ndim(noise) == 0 and not isinstance(noise, Covariance):
                Covariance(noise, 1, name=self._noise_name(), semidefinite=False)  # checks the value
            else:  # the same object noise() returns for this size
                R = Covariance(noise, name=self._noise_name(), semidefinite=False)
                self._noise_cache[R.M] = R

    def noise(self, ko: int) -> Covariance:
        Ny = self.Ny(ko)
        if callable(self._noise_spec):
            R = self._noise_spec(ko)
            if not isinstance(R, Covariance) or not R.positive_definite:
                R = Covariance(R, Ny, name=self._noise_name(ko), semidefinite=False)
        elif Ny in self._noise_cache:
            return self._noise_cache[Ny]
        else:
            R = self._noise_cache[Ny] = Covariance(self._noise_spec, Ny, name=self._noise_name(ko),
                                                   semidefinite=False)
        if R.M != Ny:
            raise ValueError(f"{self._noise_name(ko)} has size {R.M} but Ny={Ny}")
        return R


class LinearObs(_NoiseMixin, Observation):
    """``y = H x + r``, ``H`` of shape ``(Ny, Nx)``."""

    def __init__(self, H: np.ndarray, noise):
        self.H = np.atleast_2d(np.asarray(H, dtype=float))
        self._init_noise(noise)

    def Ny(self, ko: int) -> int:
        return self.H.shape[0]

    def h(self, E: np.ndarray, ko: int) -> np.ndarray:
        return E @ self.H.T

    def linear(self, x: np.ndarray, ko: int) -> np.ndarray:
        return self.H

    def h_torch(self, X, ko: int):
        return X @ as_like(self.H, X).T

    def grad_loglik(self, y, X, ko: int):
        """:math:`H^T R^{-1}(y - Hx)` for each row of ``X`` ``(..., Nx)`` (numpy or torch)."""
        H = as_like(self.H, X)
        return solve_noise(self.noise(ko), as_like(y, X) - X @ H.T, X) @ H


class PartialObs(_NoiseMixin, Observation):
    """``y = x[idx_ko] + r``: observe the components in an index set.

    Args:
        Nx: state size.
        idx: indices ``(Ny,)`` or a callable ``ko -> indices`` (irregular/missing observations).
        noise: observation-error covariance (scalar variance, vector, matrix or ``ko -> ...``).
    """

    identity_exclude = ("_all",)  # a cache of whether every variable is observed

    def __init__(self, Nx: int, idx: Sequence[int] | Callable[[int], Sequence[int]], noise):
        self.Nx = int(Nx)
        if callable(idx):
            self._idx_fn = idx
            self._idx = None
        else:
            self._idx_fn = None
            self._idx = self._check(idx)
        self._init_noise(noise)

    def _check(self, idx) -> np.ndarray:
        idx = np.asarray(idx, dtype=int)
        if idx.ndim != 1 or (len(idx) and (idx.min() < 0 or idx.max() >= self.Nx)):
            raise ValueError(f"observation indices must be a 1-D set within [0, {self.Nx})")
        return idx

    def indices(self, ko: int) -> np.ndarray:
        """The observed components at ``ko``."""
        return self._idx if self._idx_fn is None else self._check(self._idx_fn(ko))

    def Ny(self, ko: int) -> int:
        return len(self.indices(ko))

    def h(self, E: np.ndarray, ko: int) -> np.ndarray:
        return self._take(E, ko)

    def linear(self, x: np.ndarray, ko: int) -> np.ndarray:
        idx = self.indices(ko)
        H = np.zeros((len(idx), self.Nx))  # rows of the identity, without forming it (Nx^2)
        H[np.arange(len(idx)), idx] = 1.0
        return H

    def _observes_all(self, idx: np.ndarray) -> bool:
        """Whether ``idx`` is ``0, 1, ..., Nx-1`` (then no gather or scatter is needed)."""
        if self._idx_fn is None:
            if not hasattr(self, "_all"):
                self._all = bool(len(idx) == self.Nx and np.array_equal(idx, np.arange(self.Nx)))
            return self._all
        return len(idx) == self.Nx and np.array_equal(idx, np.arange(self.Nx))

    def _take(self, X, ko: int):
        """``X[..., idx_ko]`` (no copy when every component is observed in order)."""
        idx = self.indices(ko)
        return X if self._observes_all(idx) else X[..., idx]

    def _scatter(self, V, X, ko: int):
        """The adjoint of :meth:`_take`: ``V`` ``(..., Ny)`` added into zeros shaped like ``X``."""
        idx = self.indices(ko)
        if self._observes_all(idx):
            return V
        if is_torch(X):
            import torch

            G = torch.zeros_like(X)
            return G.index_add_(-1, torch.as_tensor(idx, device=X.device), V)
        G = np.zeros_like(X, dtype=np.result_type(X, V))
        np.add.at(np.moveaxis(G, -1, 0), idx, np.moveaxis(V, -1, 0))
        return G

    def h_torch(self, X, ko: int):
        return self._take(X, ko)

    def grad_loglik(self, y, X, ko: int):
        """:math:`R^{-1}(y - x_{idx})` scattered back to the observed components, zero elsewhere."""
        return self._scatter(solve_noise(self.noise(ko), as_like(y, X) - self._take(X, ko), X), X, ko)

    def locations(self, ko: int, coords: np.ndarray) -> np.ndarray:
        return coords[self.indices(ko)]


def IdentityObs(Nx: int, noise) -> PartialObs:
    """Observe every component: ``y = x + r``."""
    return PartialObs(Nx, np.arange(Nx), noise)


class FunctionObs(PartialObs):
    r"""``y = f(x[idx]) + r`` for an element-wise function ``f``.

    Args:
        f: element-wise function (numpy), e.g. ``np.arctan``.
        df: its derivative, for the Jacobian ``diag(f'(x[idx]))`` and the likelihood score
            (optional; written with arithmetic only, it serves numpy and torch alike).
        Nx, idx, noise: as for :class:`PartialObs` (``idx=None`` observes every component).
        f_torch: the torch version of ``f`` (default: the torch function of the same name as a
            numpy ufunc ``f``, e.g. ``np.arctan -> torch.arctan``); used on torch tensors.

    The likelihood score is :math:`f'(x_{idx}) \odot R^{-1}(y - f(x_{idx}))` scattered back with
    ``df``, and by autograd through ``f_torch`` without it.
    """

    def __init__(self, f: Callable[[np.ndarray], np.ndarray], Nx: int, noise,
                 idx=None, df: Callable[[np.ndarray], np.ndarray] | None = None,
                 f_torch: Callable | None = None):
        super().__init__(Nx, np.arange(Nx) if idx is None else idx, noise)
        self.f, self.df, self._f_torch = f, df, f_torch

    def f_torch(self, X):
        """``f`` on a torch tensor."""
        if self._f_torch is not None:
            return self._f_torch(X)
        import torch

        fn = getattr(torch, getattr(self.f, "__name__", ""), None)
        if not isinstance(self.f, np.ufunc) or fn is None:
            raise NotImplementedError(f"FunctionObs({self.f!r}) needs f_torch= to act on torch tensors")
        return fn(X)

    def h(self, E: np.ndarray, ko: int) -> np.ndarray:
        if is_torch(E):
            return self.h_torch(E, ko)
        return self.f(super().h(E, ko))

    def h_torch(self, X, ko: int):
        return self.f_torch(self._take(X, ko))

    def grad_loglik(self, y, X, ko: int):
        if self.df is None:
            return super(PartialObs, self).grad_loglik(y, X, ko)  # autograd
        Xo = self._take(X, ko)
        V = self.f_torch(Xo) if is_torch(X) else self.f(Xo)
        if V is Xo:  # an identity-like f: do not overwrite the states
            V = V.clone() if is_torch(V) else V.copy()
        V *= -1  # in place from here on: two temporaries of the size of X in all
        V += as_like(y, X)
        V = solve_noise(self.noise(ko), V, X, inplace=True)
        V *= self.df(Xo)
        return self._scatter(V, X, ko)

    def linear(self, x: np.ndarray, ko: int) -> np.ndarray:
        if self.df is None:
            raise NotImplementedError("FunctionObs needs df= for its Jacobian")
        return super().linear(x, ko) * self.df(x[self.indices(ko)])[:, None]


def _darctan(x):
    """``1 / (1 + x^2)`` for numpy arrays and torch tensors, with one temporary."""
    d = x * x
    d += 1
    return d.reciprocal_() if is_torch(d) else np.reciprocal(d, out=d)


def ArctanObs(Nx: int, noise, idx=None) -> FunctionObs:
    """``y = arctan(x[idx]) + r`` (the EnSF paper's nonlinear observation)."""
    return FunctionObs(np.arctan, Nx, noise, idx=idx, df=_darctan)


class TorchObs(_NoiseMixin, Observation):
    """``y = h(x) + r`` for an operator ``h`` written in torch; its likelihood score comes from
    autograd, its Jacobian from ``torch.func.jacrev``.

    Args:
        fn: ``fn(X) -> Y``, torch tensors ``(..., Nx) -> (..., Ny)``, differentiable
            (``fn(X, ko)`` if ``time_varying``).
        Ny: observation size (an int, or ``ko -> int``).
        noise: observation-error covariance (scalar variance, vector, matrix or ``ko -> ...``).
        time_varying: ``fn`` takes ``ko`` as its second argument.

    Numpy ensembles are evaluated in float64 and returned as numpy.
    """

    def __init__(self, fn: Callable, Ny: int | Callable[[int], int], noise, time_varying: bool = False):
        self.fn = fn
        self._Ny = Ny
        self.time_varying = bool(time_varying)
        self._init_noise(noise)

    def Ny(self, ko: int) -> int:
        return int(self._Ny(ko) if callable(self._Ny) else self._Ny)

    def h_torch(self, X, ko: int):
        return self.fn(X, ko) if self.time_varying else self.fn(X)

    def h(self, E, ko: int):
        if is_torch(E):
            return self.h_torch(E, ko)
        import torch

        with torch.no_grad():
            return self.h_torch(torch.as_tensor(np.asarray(E), dtype=torch.float64), ko).numpy()

    def linear(self, x: np.ndarray, ko: int) -> np.ndarray:
        import torch

        xt = torch.as_tensor(np.asarray(x), dtype=torch.float64)
        return torch.func.jacrev(lambda v: self.h_torch(v, ko))(xt).numpy()


# ---------------------------------------------------------------------------------------------
# 2-D fields: an n0 x n1 grid flattened row-major, grid point (i, j) at component i * n1 + j.


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


# ---------------------------------------------------------------------------------------------
# Velocity of a 2-D incompressible flow from its vorticity on a periodic n x n grid.


def _wavenumbers(n: int, length: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Angular wavenumbers :math:`\kappa_x, \kappa_y` ``(n, n)`` of ``numpy.fft.fft2`` on an
    ``n x n`` grid of a square of side ``length``, and the multiplier mask ``(n, n)`` that is 0 at
    the mean mode and at the Nyquist rows/columns (whose derivative is ambiguous), 1 elsewhere."""
    k = np.fft.fftfreq(n, 1.0 / n)
    kx, ky = np.meshgrid(2 * np.pi * k / length, 2 * np.pi * k / length, indexing="ij")
    keep = np.ones((n, n))
    keep[0, 0] = 0.0
    if n % 2 == 0:
        keep[n // 2, :] = keep[:, n // 2] = 0.0
    return kx, ky, keep


def vorticity_to_velocity(W: np.ndarray, n: int, length: float = 2 * np.pi) -> np.ndarray:
    r"""Velocity ``(..., 2, n, n)`` (:math:`u`, then :math:`v`) on the grid from vorticity fields
    ``W`` ``(..., n * n)`` (row-major, ``[i, j]`` at :math:`(x_i, y_j)`):

    .. math:: \hat\psi = \hat\omega / |\kappa|^2\ (\Delta\psi = -\omega),\qquad
              u = \partial_y \psi,\quad v = -\partial_x \psi,

    spectrally (mean and Nyquist modes dropped).
    """
    W = np.asarray(W, dtype=float)
    if W.shape[-1] != n * n:
        raise ValueError(f"vorticity fields of size {W.shape[-1]} are not {n} x {n}")
    kx, ky, keep = _wavenumbers(n, length)
    k2 = np.where(keep > 0, kx**2 + ky**2, 1.0)
    psi_hat = np.fft.fft2(W.reshape(*W.shape[:-1], n, n)) * keep / k2
    return np.stack([np.fft.ifft2(1j * ky * psi_hat).real, np.fft.ifft2(-1j * kx * psi_hat).real], -3)


def velocity_probe_matrix(n: int, points: np.ndarray, length: float = 2 * np.pi) -> np.ndarray:
    r"""The linear map ``H`` ``(2 P, n * n)`` from a vorticity field on the ``n x n`` grid to the
    velocity at ``P`` points: rows ``0..P-1`` give :math:`u`, rows ``P..2P-1`` give :math:`v`.

    The field's trigonometric interpolant is differentiated exactly, so the points may lie
    anywhere (on the grid or between grid points). With :math:`\kappa` the angular wavenumbers and
    :math:`m_u = i\kappa_y/|\kappa|^2`, :math:`m_v = -i\kappa_x/|\kappa|^2`,

    .. math:: H_u[p, (a, b)] = \frac{1}{n^2} \sum_\kappa m_u(\kappa)\,
              e^{i \kappa \cdot (x_p - x_{ab})},

    one FFT per point (mean and Nyquist modes dropped).

    Args:
        n: grid points per direction. points: ``(P, 2)`` positions :math:`(x, y)`.
        length: side of the periodic square (:math:`2\pi`).
    """
    points = np.asarray(points, dtype=float)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must have shape (P, 2), got {points.shape}")
    kx, ky, keep = _wavenumbers(n, length)
    k2 = np.where(keep > 0, kx**2 + ky**2, 1.0)
    H = np.empty((2 * len(points), n * n))
    for start in range(0, len(points), 64):  # bounded temporaries on fine grids
        p = points[start:start + 64]
        phase = np.exp(1j * (p[:, 0, None, None] * kx + p[:, 1, None, None] * ky)) * keep / k2
        for row0, mult in ((0, 1j * ky), (len(points), -1j * kx)):
            rows = np.fft.fft2(mult * phase).real / n**2
            H[row0 + start:row0 + start + len(p)] = rows.reshape(len(p), n * n)
    return H


def probe_lattice(probes: int | Sequence[int], n: int | None = None, length: float = 2 * np.pi) -> np.ndarray:
    r"""A regular ``m0 x m1`` lattice of probe positions ``(m0 * m1, 2)``, row-major:
    :math:`(L i / m_0, L j / m_1)`. With ``n``, each probe is moved to the nearest grid point of
    the ``n x n`` grid (grid index :math:`\mathrm{round}(n i / m_0)`)."""
    m0, m1 = _pair(probes, "probes")
    if min(m0, m1) < 1:
        raise ValueError(f"probes must be positive, got {probes!r}")
    axes = [length * np.arange(m) / m for m in (m0, m1)]
    if n is not None:
        axes = [length * (np.rint(a * n / length) % n) / n for a in axes]
    X, Y = np.meshgrid(*axes, indexing="ij")
    return np.stack([X.ravel(), Y.ravel()], 1)


class VelocityProbesObs(LinearObs):
    r"""Both velocity components of a 2-D periodic flow at sparse probes, observed from its
    vorticity: ``y = (u(p_1..p_P), v(p_1..p_P)) + r``, ``Ny = 2P`` (all :math:`u`, then all
    :math:`v`). Linear, ``y = H x + r`` with ``H`` from :func:`velocity_probe_matrix`.

    Args:
        n: grid points per direction of the vorticity field (states start with the ``n * n``
            field, row-major).
        noise: observation-error covariance (scalar variance, vector, matrix or ``ko -> ...``).
        probes: probes per direction of a regular lattice (:func:`probe_lattice`; an int or a
            pair), or give ``points``.
        points: explicit probe positions ``(P, 2)``.
        on_grid: move lattice probes to the nearest grid points.
        n_params: extra state components after the field (e.g. a parameter), not observed.
        length: side of the periodic square.

    ``locations`` are the probe positions (each twice: ``u`` then ``v``), for localization.
    ``H`` is dense, ``2P x (n^2 + n_params)`` (about 105 MB in float64 at ``n = 256``, ``P = 100``).
    """

    def __init__(self, n: int, noise, probes: int | Sequence[int] = 10, points: np.ndarray | None = None,
                 on_grid: bool = False, n_params: int = 0, length: float = 2 * np.pi):
        self.n, self.n_params, self.length = int(n), int(n_params), float(length)
        if self.n < 2 or self.n_params < 0:
            raise ValueError(f"need n >= 2 and n_params >= 0, got n={n}, n_params={n_params}")
        self.points = (probe_lattice(probes, self.n if on_grid else None, self.length) if points is None
                       else np.asarray(points, dtype=float))
        H = velocity_probe_matrix(self.n, self.points, self.length)
        super().__init__(np.hstack([H, np.zeros((len(H), self.n_params))]), noise)

    def locations(self, ko: int, coords: np.ndarray) -> np.ndarray:
        return np.vstack([self.points, self.points])
