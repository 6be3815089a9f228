"""The observation base class :class:`Observation` and the array helpers of likelihood scores
(numpy or torch: :func:`is_torch`, :func:`as_like`, :func:`noise_inverse`, :func:`solve_noise`,
:func:`autograd_grad_loglik`).

Part of the hidden Markov model (:mod:`dafilters.hmm`, which re-exports every name here).
"""

from __future__ import annotations

import numpy as np

from ..gaussian import Covariance
from ..identity import Identified

__all__ = ["Observation", "is_torch", "as_like", "noise_inverse", "solve_noise", "autograd_grad_loglik"]


class Observation(Identified):
    """Observation operator, noise and (optionally) locations; everything may depend on ``ko``.

    Identity: class and instance attributes (indices, operator, noise covariance), as for
    :class:`Dynamics`.

    Subclasses implement :meth:`h` and :meth:`Ny`, and :meth:`noise`; :meth:`linear` where the
    Jacobian is known (needed by the Kalman filter and OptInterp).
    """

    def Ny(self, ko: int) -> int:
        """Number of observations at observation time ``ko``."""
        raise NotImplementedError

    def h(self, E: np.ndarray, ko: int) -> np.ndarray:
        """Observation operator on an ensemble ``(N, Nx) -> (N, Ny)``."""
        raise NotImplementedError

    def noise(self, ko: int) -> Covariance:
        """Observation-error covariance ``R_ko``."""
        raise NotImplementedError

    def linear(self, x: np.ndarray, ko: int) -> np.ndarray:
        """Jacobian ``dH/dx`` at ``x``, shape ``(Ny, Nx)``."""
        raise NotImplementedError(f"{type(self).__name__} has no linearisation")

    def locations(self, ko: int, coords: np.ndarray) -> np.ndarray:
        """Positions ``(Ny, d)`` of the observations, given the state positions ``coords``
        ``(Nx, d)`` (needed by localized filters)."""
        raise NotImplementedError(f"{type(self).__name__} does not say where its observations sit, "
                                  "so it cannot be localized (implement locations())")

    def __call__(self, E: np.ndarray, ko: int) -> np.ndarray:
        E = np.asarray(E)
        if E.ndim == 1:
            return self.h(E[None], ko)[0]
        return self.h(E, ko)

    def sample(self, x: np.ndarray, ko: int, rng: np.random.Generator) -> np.ndarray:
        """A noisy observation ``y = h(x) + r`` of one state ``x`` ``(Nx,)``.

        Raises:
            ValueError: if ``h`` does not give ``Ny(ko)`` values, or ``noise(ko)`` has another
                size or is singular.
            TypeError: if ``noise(ko)`` is not a :class:`~dafilters.gaussian.Covariance`.
        """
        Ny = self.Ny(ko)
        hx = np.asarray(self(x, ko))
        if hx.shape != (Ny,):
            raise ValueError(f"observation operator {type(self).__name__} at ko={ko}: h(x) of one "
                             f"state has shape {hx.shape}, expected (Ny,) = ({Ny},) since Ny({ko}) = "
                             f"{Ny} (h must map an ensemble (N, Nx) to (N, Ny))")
        R = Covariance.check(self.noise(ko), Ny, f"observation noise R = {type(self).__name__}.noise({ko})")
        return hx + R.sample(1, rng)[0]

    def loglik(self, y: np.ndarray, E: np.ndarray, ko: int) -> np.ndarray:
        """Gaussian log-likelihood ``log p(y | x_n)`` for each member, shape ``(N,)``."""
        R = self.noise(ko)
        d = y - self.h(E, ko)
        return -0.5 * (R.mahalanobis2(d) + R.logdet + len(y) * np.log(2 * np.pi))

    def h_torch(self, X, ko: int):
        """The observation operator on a torch tensor ``(..., Nx) -> (..., Ny)``, written with
        differentiable torch operations (used by :meth:`grad_loglik`'s autograd fallback)."""
        raise NotImplementedError(
            f"{type(self).__name__} has no torch operator: implement h_torch() (or grad_loglik()) "
            "to use it with score-based filters, or wrap a torch function in TorchObs")

    def grad_loglik(self, y, X, ko: int):
        r"""Likelihood score :math:`\nabla_x \log p(y|x) = J_h(x)^T R^{-1} (y - h(x))` of a batch.

        This base version differentiates :meth:`h_torch` with torch autograd (a vector-Jacobian
        product with cotangent :math:`R^{-1}(y - h(x))`); subclasses override it where the
        gradient is known in closed form.

        Args:
            y: observation ``(Ny,)`` (numpy, or a tensor on the device of ``X``).
            X: states ``(..., Nx)``, a numpy array or a torch tensor.
            ko: observation time.

        Returns:
            The score, same shape and kind (numpy / torch, dtype, device) as ``X``.
        """
        return autograd_grad_loglik(self, y, X, ko)


def is_torch(X) -> bool:
    """Whether ``X`` is a torch tensor (checked without importing torch)."""
    return type(X).__module__.startswith("torch")


def as_like(a: np.ndarray, X):
    """The numpy array ``a`` as the array kind of ``X``: numpy, or a torch tensor with the dtype
    and device of ``X``. Conversions of arrays owned by long-lived objects (noise variances)
    are cached on the array's owner by :func:`noise_inverse`."""
    if not is_torch(X):
        return a
    import torch

    return torch.as_tensor(a, dtype=X.dtype, device=X.device)


def noise_inverse(R: Covariance, X):
    """``(kind, Rinv)``: ``("diag", 1/variances (Ny,))`` or ``("full", R^{-1} (Ny, Ny))`` as the
    array kind of ``X`` (numpy or torch, dtype, device), cached on ``R`` per dtype and device."""
    kind = "diag" if R.is_diag else "full"
    if not is_torch(X):
        return kind, (1 / R.diag if R.is_diag else R.inv)
    cache = R.__dict__.setdefault("_torch_inverse", {})
    key = (str(X.dtype), str(X.device))
    if key not in cache:
        cache[key] = as_like(1 / R.diag if R.is_diag else R.inv, X)
    return kind, cache[key]


def solve_noise(R: Covariance, D, X=None, inplace: bool = False):
    """Rows of ``D`` (``(..., Ny)``, numpy or torch) mapped by ``R^{-1}`` (``inplace``: a
    diagonal ``R`` overwrites ``D``, which saves a temporary at large sizes)."""
    kind, Rinv = noise_inverse(R, D if X is None else X)
    if kind == "diag":
        if inplace:
            D *= Rinv
            return D
        return D * Rinv
    return D @ Rinv


def autograd_grad_loglik(obs: Observation, y, X, ko: int):
    r""":math:`J_h(x)^T R^{-1}(y - h(x))` for a batch ``X`` ``(..., Nx)`` by torch autograd
    through ``obs.h_torch``. A numpy ``X`` is computed in float64 and returned as numpy."""
    import torch

    numpy_in = not is_torch(X)
    Xt = torch.as_tensor(X, dtype=torch.float64) if numpy_in else X
    with torch.enable_grad():
        Xg = Xt.detach().requires_grad_(True)
        Hx = obs.h_torch(Xg, ko)
        yt = y if is_torch(y) else torch.as_tensor(np.asarray(y), dtype=Hx.dtype, device=Hx.device)
        v = solve_noise(obs.noise(ko), (yt - Hx).detach(), Hx)
        (G,) = torch.autograd.grad(Hx, Xg, grad_outputs=v)
    return G.numpy() if numpy_in else G
