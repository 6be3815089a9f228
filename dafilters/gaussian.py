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

    Every covariance is checked when it is built: finite, symmetric, and positive definite (no
    zero or negative variance, no zero or negative eigenvalue), since the filters invert it.
    A covariance that may legitimately be singular (model noise that leaves some components
    unperturbed, a prior that fixes some components) is built with ``semidefinite=True``: it is
    then checked to be positive *semi*-definite, can be sampled, and refuses to be inverted.

    Args:
        C: a scalar (``c * I``, needs ``M``), a 1-D array (the diagonal), a 2-D array (full), or
            a :class:`Covariance` (copied).
        M: the dimension, required when ``C`` is a scalar.
        name: what the covariance is, for error messages (e.g. ``"observation noise R of
            PartialObs"``).
        semidefinite: accept a singular (positive semi-definite) ``C``. Default: that of a
            :class:`Covariance` given as ``C``, else ``False``.

    Raises:
        ValueError: naming ``name`` and the problem (wrong shape or size, NaN/inf, not symmetric,
            zero or negative variance, singular or not positive definite with the eigenvalue).
    """

    def __init__(self, C: float | np.ndarray | Covariance, M: int | None = None, *,
                 name: str | None = None, semidefinite: bool | None = None):
        #: Whether the caller said if a singular ``C`` is acceptable (else the message hints at it).
        decided = semidefinite is not None
        if isinstance(C, Covariance):
            name = C.name if name is None else name
            semidefinite = C.semidefinite if semidefinite is None else semidefinite
            C = C.diag if C.is_diag else C.full
        self.semidefinite = bool(semidefinite)
        self.name = name = "covariance" if name is None else name
        C = np.asarray(C, dtype=float)
        if C.ndim == 0:
            if M is None:
                raise ValueError(f"{name}: a scalar covariance needs its dimension M")
            C = np.full(M, float(C))
        if C.ndim > 2:
            raise ValueError(f"{name}: covariance must be a scalar, 1-D or 2-D, got {C.ndim}-D")
        if C.ndim == 2 and C.shape[0] != C.shape[1]:
            raise ValueError(f"{name}: covariance must be square, got shape {C.shape}")
        if M is not None and len(C) != M:
            raise ValueError(f"{name}: covariance has size {len(C)}, expected {M}")
        if not np.all(np.isfinite(C)):
            raise ValueError(f"{name}: covariance contains NaN or inf")
        if C.ndim == 1:
            self._diag: np.ndarray | None = C.copy()
            self._full: np.ndarray | None = None
        else:
            if not np.allclose(C, C.T, atol=1e-12 * max(1.0, np.abs(C).max(initial=0))):
                asym = float(np.abs(C - C.T).max())
                raise ValueError(f"{name}: covariance is not symmetric (largest |C - C^T| = {asym:.3g})")
            off = C - np.diag(np.diag(C))
            if not off.any():
                self._diag, self._full = np.diag(C).copy(), None
            else:
                self._diag, self._full = None, C.copy()
        #: Whether ``C`` is positive definite (always, unless built with ``semidefinite=True``).
        self.positive_definite = self._check_definite(hint=not decided)

    def _check_definite(self, hint: bool) -> bool:
        """Raise if ``C`` is not positive definite (or, if ``semidefinite``, not positive
        semi-definite); return whether it is positive definite. A full matrix is diagonalised
        here once (its factorisations reuse the eigendecomposition). ``hint``: say in the
        message how to build a singular covariance on purpose."""
        name, M = self.name, self.M
        hint = ("; build it with Covariance(..., semidefinite=True) if a singular covariance is "
                "meant (e.g. model noise that leaves some components unperturbed)") if hint else ""
        if self.is_diag:
            d = self._diag
            if M and d.min() < 0:
                i = int(np.argmin(d))
                raise ValueError(f"{name}: negative variance {d[i]:.3g} at index {i} "
                                 "(not positive definite)")
            zero = np.flatnonzero(d == 0)
            if len(zero) and not self.semidefinite:
                what = ("is zero (every variance is 0)" if len(zero) == M else
                        f"has zero variance at index {int(zero[0])}"
                        + (f" (and {len(zero) - 1} more)" if len(zero) > 1 else ""))
                raise ValueError(f"{name}: covariance {what}, so it is singular{hint}")
            return not len(zero)
        d, V = self.__dict__["_eigh"] = sla.eigh(self._full)
        tol = M * np.finfo(float).eps * max(abs(d[0]), abs(d[-1]))
        if d[0] < -tol:
            raise ValueError(f"{name}: covariance is not positive definite (smallest eigenvalue "
                             f"{d[0]:.3g}, largest {d[-1]:.3g})")
        if d[0] <= tol:
            if not self.semidefinite:
                raise ValueError(f"{name}: covariance is singular, not positive definite (smallest "
                                 f"eigenvalue {d[0]:.3g}, largest {d[-1]:.3g}){hint}")
            return False
        return True

    def _require_definite(self, what: str) -> None:
        """Raise if ``C`` is singular (only possible with ``semidefinite=True``)."""
        if not self.positive_definite:
            raise ValueError(f"{self.name}: covariance is singular (positive semi-definite), so "
                             f"it has no {what}")

    @staticmethod
    def check(C: object, M: int, name: str) -> Covariance:
        """Check that ``C`` is what the filters need as a noise covariance: a positive-definite
        :class:`Covariance` of size ``M`` (e.g. what a custom ``Observation.noise`` returns).

        Returns:
            ``C``.

        Raises:
            TypeError: if ``C`` is not a :class:`Covariance` (e.g. a float).
            ValueError: if its size is not ``M`` or it is singular. Messages start with ``name``.
        """
        if not isinstance(C, Covariance):
            raise TypeError(f"{name}: must be a dafilters.Covariance, got {type(C).__name__} "
                            f"{C!r:.60} (wrap it: Covariance(value, Ny))")
        if C.M != M:
            raise ValueError(f"{name}: has size {C.M}, expected {M}")
        if not C.positive_definite:
            raise ValueError(f"{name}: is singular (positive semi-definite), it must be positive "
                             "definite")
        return C

    def identity(self) -> dict:
        """What defines the covariance (its matrix; never the cached factorisations)."""
        return {"diag": self._diag} if self.is_diag else {"full": self._full}

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
    def _eigh(self) -> tuple[np.ndarray, np.ndarray]:
        """Eigenvalues (ascending) and eigenvectors of a full ``C`` (computed when it is built)."""
        return sla.eigh(self._full)

    @property
    def _eig(self) -> tuple[np.ndarray, np.ndarray]:
        """The eigendecomposition of a positive-definite full ``C`` (for its inverses)."""
        self._require_definite("inverse")
        return self._eigh

    @cached_property
    def chol(self) -> np.ndarray:
        """Lower Cholesky factor ``L`` with ``L @ L.T = C`` (``(M, M)``)."""
        if self.is_diag:
            return np.diag(np.sqrt(self._diag))
        self._require_definite("Cholesky factor")
        return sla.cholesky(self._full, lower=True)

    @cached_property
    def _sample_factor(self) -> np.ndarray:
        """A factor ``F`` with ``F @ F.T = C`` for sampling a full ``C``: the Cholesky factor if
        ``C`` is positive definite, else ``V sqrt(max(d, 0))`` from its eigendecomposition."""
        if self.positive_definite:
            return self.chol
        d, V = self._eigh
        return V * np.sqrt(np.clip(d, 0, None))

    @cached_property
    def inv(self) -> np.ndarray:
        """``C^{-1}`` as a dense matrix."""
        if self.is_diag:
            self._require_definite("inverse")
            return np.diag(1 / self._diag)
        d, V = self._eig
        return (V / d) @ V.T

    @cached_property
    def sym_sqrt_inv(self) -> np.ndarray:
        """The symmetric ``C^{-1/2}`` as a dense matrix."""
        if self.is_diag:
            self._require_definite("inverse square root")
            return np.diag(self._diag**-0.5)
        d, V = self._eig
        return (V * d**-0.5) @ V.T

    @cached_property
    def logdet(self) -> float:
        """``log det C``."""
        if self.is_diag:
            self._require_definite("finite log-determinant")
            return float(np.sum(np.log(self._diag)))
        return float(np.sum(np.log(self._eig[0])))

    # -- operations ----------------------------------------------------------------------------
    def whiten(self, Y: np.ndarray) -> np.ndarray:
        """Rows of ``Y`` (``(..., M)``) mapped by ``C^{-1/2}``: returns ``Y @ C^{-1/2}``."""
        if self.is_diag:
            self._require_definite("inverse square root")
            return Y * self._diag**-0.5
        return Y @ self.sym_sqrt_inv

    def solve(self, Y: np.ndarray) -> np.ndarray:
        """Rows of ``Y`` (``(..., M)``) mapped by ``C^{-1}``: returns ``Y @ C^{-1}``."""
        if self.is_diag:
            self._require_definite("inverse")
            return Y / self._diag
        return Y @ self.inv

    def sample(self, N: int, rng: np.random.Generator) -> np.ndarray:
        """``N`` draws from ``N(0, C)``, shape ``(N, M)``."""
        Z = rng.standard_normal((N, self.M))
        if self.is_diag:
            return Z * np.sqrt(self._diag)
        return Z @ self._sample_factor.T

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
        name: what the variable is, for error messages (e.g. ``"GaussPrior"``).
        semidefinite: accept a singular ``C`` (see :class:`Covariance`).

    Raises:
        ValueError: naming ``name`` if ``mu`` or ``C`` has the wrong size, or ``C`` is not a valid
            covariance.
    """

    def __init__(self, mu: float | np.ndarray = 0.0, C: float | np.ndarray | Covariance = 1.0,
                 M: int | None = None, *, name: str = "GaussRV", semidefinite: bool | None = None):
        mu = np.asarray(mu, dtype=float)
        if mu.ndim > 1:
            raise ValueError(f"{name}: mean mu must be a scalar or 1-D, got shape {mu.shape}")
        if not np.all(np.isfinite(mu)):
            raise ValueError(f"{name}: mean mu contains NaN or inf")
        C_size = C.M if isinstance(C, Covariance) else (len(C) if np.ndim(C) >= 1 else None)
        if M is None:
            if mu.ndim == 1:
                M = len(mu)
            elif C_size is not None:
                M = C_size
            else:
                raise ValueError(f"{name}: needs its size M when mu and C are scalars")
        M = int(M)
        if mu.ndim == 1 and len(mu) != M:
            raise ValueError(f"{name}: mean mu has size {len(mu)}, expected {M}")
        if C_size is not None and C_size != M:
            of = "the size of mu" if mu.ndim == 1 else "M"
            raise ValueError(f"{name}: covariance C has size {C_size}, expected {M} ({of})")
        self.mu = np.broadcast_to(mu, (M,)).astype(float)
        self.C = Covariance(C, M, name=f"{name}: covariance C", semidefinite=semidefinite)
        self.M = M

    def identity(self) -> dict:
        """What defines the distribution: mean and covariance."""
        return {"mu": self.mu, "C": self.C}

    def sample(self, N: int, rng: np.random.Generator) -> np.ndarray:
        """``N`` draws, shape ``(N, M)``."""
        return self.mu + self.C.sample(N, rng)

    def __repr__(self) -> str:
        return f"GaussRV(M={self.M}, C={self.C!r})"
