"""Observation operators on whole states: linear, partial (the identity among them),
element-wise nonlinear and torch-written ones (see :mod:`dafilters.observations`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..gaussian import Covariance
from .base import Observation, as_like, is_torch, solve_noise

__all__ = ["LinearObs", "PartialObs", "IdentityObs", "FunctionObs", "ArctanObs", "TorchObs"]


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


