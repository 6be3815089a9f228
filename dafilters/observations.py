"""Generic observation operators.

- :class:`LinearObs`: ``y = H x + r`` with a fixed matrix ``H`` ``(Ny, Nx)``.
- :class:`PartialObs`: ``y = x[idx] + r``, where the index set may change with ``ko``
  (missing and moving observations); :func:`IdentityObs` observes everything.
- :class:`FunctionObs`: ``y = f(x[idx]) + r`` for an element-wise nonlinear ``f`` (e.g. arctan).

Noise is Gaussian with covariance given as a scalar (``s * I``), a vector (diagonal) or a matrix,
or as a callable ``ko -> covariance`` for time-varying noise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .gaussian import Covariance
from .hmm import Observation

__all__ = ["LinearObs", "PartialObs", "IdentityObs", "FunctionObs", "ArctanObs"]


class _NoiseMixin:
    """Builds ``R_ko`` from a scalar, vector, matrix, :class:`Covariance` or ``ko -> ...``.

    Fixed specifications are turned into a :class:`Covariance` once per observation size.
    """

    def _init_noise(self, noise) -> None:
        if noise is None:
            raise ValueError("observation noise must be given (a variance, vector or matrix)")
        self._noise_spec = noise
        self._noise_cache: dict[int, Covariance] = {}

    def noise(self, ko: int) -> Covariance:
        Ny = self.Ny(ko)
        if callable(self._noise_spec):
            R = self._noise_spec(ko)
            R = R if isinstance(R, Covariance) else Covariance(R, Ny)
        elif Ny in self._noise_cache:
            return self._noise_cache[Ny]
        else:
            R = self._noise_cache[Ny] = Covariance(self._noise_spec, Ny)
        if R.M != Ny:
            raise ValueError(f"observation noise has size {R.M} but Ny={Ny} at ko={ko}")
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


class PartialObs(_NoiseMixin, Observation):
    """``y = x[idx_ko] + r``: observe the components in an index set.

    Args:
        Nx: state size.
        idx: indices ``(Ny,)`` or a callable ``ko -> indices`` (irregular/missing observations).
        noise: observation-error covariance (scalar variance, vector, matrix or ``ko -> ...``).
    """

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
        return E[..., self.indices(ko)]

    def linear(self, x: np.ndarray, ko: int) -> np.ndarray:
        return np.eye(self.Nx)[self.indices(ko)]

    def locations(self, ko: int, coords: np.ndarray) -> np.ndarray:
        return coords[self.indices(ko)]


def IdentityObs(Nx: int, noise) -> PartialObs:
    """Observe every component: ``y = x + r``."""
    return PartialObs(Nx, np.arange(Nx), noise)


class FunctionObs(PartialObs):
    """``y = f(x[idx]) + r`` for an element-wise function ``f``.

    Args:
        f: element-wise function (numpy), e.g. ``np.arctan``.
        df: its derivative, for the Jacobian ``diag(f'(x[idx]))`` (optional).
        Nx, idx, noise: as for :class:`PartialObs` (``idx=None`` observes every component).
    """

    def __init__(self, f: Callable[[np.ndarray], np.ndarray], Nx: int, noise,
                 idx=None, df: Callable[[np.ndarray], np.ndarray] | None = None):
        super().__init__(Nx, np.arange(Nx) if idx is None else idx, noise)
        self.f, self.df = f, df

    def h(self, E: np.ndarray, ko: int) -> np.ndarray:
        return self.f(super().h(E, ko))

    def linear(self, x: np.ndarray, ko: int) -> np.ndarray:
        if self.df is None:
            raise NotImplementedError("FunctionObs needs df= for its Jacobian")
        return super().linear(x, ko) * self.df(x[self.indices(ko)])[:, None]


def _darctan(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + x**2)


def ArctanObs(Nx: int, noise, idx=None) -> FunctionObs:
    """``y = arctan(x[idx]) + r`` (the EnSF paper's nonlinear observation)."""
    return FunctionObs(np.arctan, Nx, noise, idx=idx, df=_darctan)
