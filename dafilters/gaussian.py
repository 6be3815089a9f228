"""Covariance matrices and Gaussian random variables.

A :class:`Covariance` stores a symmetric positive-definite matrix ``C`` of size ``(M, M)`` together
with the factorisations the filters need (inverse, symmetric inverse square root, Cholesky factor,
log-determinant). Diagonal covariances, by far the most common observation-error model, take a fast
path that never forms an ``(M, M)`` matrix unless asked for one.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import scipy.linalg as sla

__all__ = ["Covariance", "GaussRV"]


class Covariance:
    """Symmetric positive-definite covariance ``C`` of shape ``(M, M)``.

    Args:
        C: a scalar (``c * I``, needs ``M``), a 1-D array (the diagonal) or a 2-D array (full).
        M: the dimension, required when ``C`` is a scalar.
    """

    def __init__(self, C: float | np.ndarray | Covariance, M: int | None = None):
        if isinstance(C, Covariance):
            C = C.diag if C.is_diag else C.full
        C = np.asarray(C, dtype=float)
        if C.ndim == 0:
            if M is None:
                raise ValueError("a scalar covariance needs its dimension M")
            C = np.full(M, float(C))
        if C.ndim == 1:
            self._diag: np.ndarray | None = C.copy()
            self._full: np.ndarray | None = None
        elif C.ndim == 2:
            if C.shape[0] != C.shape[1]:
                raise ValueError(f"covariance must be square, got shape {C.shape}")
            if not np.allclose(C, C.T, atol=1e-12 * max(1.0, np.abs(C).max(initial=0))):
                raise ValueError("covariance must be symmetric")
            off = C - np.diag(np.diag(C))
            if not off.any():
                self._diag, self._full = np.diag(C).copy(), None
            else:
                self._diag, self._full = None, C.copy()
        else:
            raise ValueError(f"covariance must be a scalar, 1-D or 2-D, got {C.ndim}-D")
        if M is not None and self.M != M:
            raise ValueError(f"covariance has size {self.M}, expected {M}")
        if not np.all(np.isfinite(self._diag if self.is_diag else self._full)):
            raise ValueError("covariance contains NaN or inf")
        if self.is_diag and np.any(self._diag < 0):
            raise ValueError("covariance has negative variances")

    # -- basic views ---------------------------------------------------------------------------
    @property
    def is_diag(self) -> bool:
        return self._diag is not None

    @property
    def M(self) -> int:
        return len(self._diag) if self.is_diag else self._full.shape[0]

    @cached_property
    def full(self) -> np.ndarray:
        """The dense ``(M, M)`` matrix."""
        return np.diag(self._diag) if self.is_diag else self._full

    @cached_property
    def diag(self) -> np.ndarray:
        """The variances, shape ``(M,)``."""
        return self._diag if self.is_diag else np.diag(self._full).copy()

    @cached_property
    def _eig(self) -> tuple[np.ndarray, np.ndarray]:
        d, V = sla.eigh(self._full)
        if d.min() <= 0:
            raise ValueError("covariance is not positive definite")
        return d, V

    @cached_property
    def chol(self) -> np.ndarray:
        """Lower Cholesky factor ``L`` with ``L @ L.T = C`` (``(M, M)``)."""
        if self.is_diag:
            return np.diag(np.sqrt(self._diag))
        return sla.cholesky(self._full, lower=True)

    @cached_property
    def inv(self) -> np.ndarray:
        """``C^{-1}`` as a dense matrix."""
        if self.is_diag:
            return np.diag(1 / self._diag)
        d, V = self._eig
        return (V / d) @ V.T

    @cached_property
    def sym_sqrt_inv(self) -> np.ndarray:
        """The symmetric ``C^{-1/2}`` as a dense matrix."""
        if self.is_diag:
            return np.diag(self._diag**-0.5)
        d, V = self._eig
        return (V * d**-0.5) @ V.T

    @cached_property
    def logdet(self) -> float:
        if self.is_diag:
            return float(np.sum(np.log(self._diag)))
        return float(np.sum(np.log(self._eig[0])))

    # -- operations ----------------------------------------------------------------------------
    def whiten(self, Y: np.ndarray) -> np.ndarray:
        """Rows of ``Y`` (``(..., M)``) mapped by ``C^{-1/2}``: returns ``Y @ C^{-1/2}``."""
        if self.is_diag:
            return Y * self._diag**-0.5
        return Y @ self.sym_sqrt_inv

    def solve(self, Y: np.ndarray) -> np.ndarray:
        """Rows of ``Y`` (``(..., M)``) mapped by ``C^{-1}``: returns ``Y @ C^{-1}``."""
        if self.is_diag:
            return Y / self._diag
        return Y @ self.inv

    def sample(self, N: int, rng: np.random.Generator) -> np.ndarray:
        """``N`` draws from ``N(0, C)``, shape ``(N, M)``."""
        Z = rng.standard_normal((N, self.M))
        if self.is_diag:
            return Z * np.sqrt(self._diag)
        return Z @ self.chol.T

    def mahalanobis2(self, D: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis norms ``d^T C^{-1} d`` of the rows of ``D`` (``(..., M)``)."""
        return np.sum(self.solve(D) * D, axis=-1)

    def __repr__(self) -> str:
        kind = "diag" if self.is_diag else "full"
        return f"Covariance({kind}, M={self.M})"


class GaussRV:
    """Gaussian random vector ``N(mu, C)`` of size ``M``.

    Args:
        mu: mean, scalar or ``(M,)``.
        C: covariance, as accepted by :class:`Covariance`.
        M: size (needed only when both ``mu`` and ``C`` are scalars).
    """

    def __init__(self, mu: float | np.ndarray = 0.0, C: float | np.ndarray | Covariance = 1.0,
                 M: int | None = None):
        mu = np.asarray(mu, dtype=float)
        if M is None:
            if mu.ndim == 1:
                M = len(mu)
            elif isinstance(C, Covariance):
                M = C.M
            elif np.ndim(C) >= 1:
                M = np.shape(C)[0]
            else:
                raise ValueError("GaussRV needs its size M when mu and C are scalars")
        self.mu = np.broadcast_to(mu, (M,)).astype(float)
        self.C = Covariance(C, M)
        self.M = M

    def sample(self, N: int, rng: np.random.Generator) -> np.ndarray:
        """``N`` draws, shape ``(N, M)``."""
        return self.mu + self.C.sample(N, rng)

    def __repr__(self) -> str:
        return f"GaussRV(M={self.M}, C={self.C!r})"
