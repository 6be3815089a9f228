"""Model dynamics: :class:`Dynamics` (its hooks for filters and training) and
:class:`LinearDynamics`.

Part of the hidden Markov model (:mod:`dafilters.hmm`, which re-exports every name here).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import numpy as np

from .gaussian import Covariance
from .identity import Identified

__all__ = ["Dynamics", "LinearDynamics"]


class Dynamics(Identified):
    """Model dynamics ``x_k = M(x_{k-1}, t, dt) + sqrt(dt) q``, ``q ~ N(0, Q)``.

    Subclass and override :meth:`step` (and :meth:`linear` where known), or pass the callables.
    Optional hooks, with defaults here, that some models override: :meth:`advance` (several steps
    at once), :meth:`step_torch` (a differentiable step) and :attr:`n_params` (parameters at the
    end of the state).

    Identity: the class and every instance attribute (the callables by their code and the values
    they capture; caches listed in ``identity_exclude``) enter :meth:`HMM.fingerprint` — see
    :class:`~dafilters.identity.Identified` for how a model declares what defines it.

    Args:
        Nx: state size.
        model: ``model(E, t, dt) -> E``, acting on ensembles ``(N, Nx)`` (and single states).
        noise: model-noise covariance ``Q`` per unit time (scalar, ``(Nx,)`` or ``(Nx, Nx)``);
            ``None`` or ``0`` for deterministic dynamics.
        linear: ``linear(x, t, dt) -> (Nx, Nx)``, the Jacobian of one step (Kalman filter, EKF).
        coords: positions of the state variables ``(Nx, d)`` for localization (default: a
            periodic ring, variable ``i`` at ``i``). domain: lengths of the periodic domain per
            axis (default ``(Nx,)``), or ``None`` for a non-periodic domain.
    """

    #: The number of model parameters at the end of the state (the last ``n_params`` components):
    #: constant in time (a step keeps them), unknown to the filters, estimated with the state
    #: (e.g. :math:`\log Re` of :class:`mods.Kolmogorov.KolmogorovRe`). Filters that treat
    #: fields and parameters apart (LD-EnSF) read it; 0 for a state without parameters.
    n_params: ClassVar[int] = 0

    def __init__(self, Nx: int, model: Callable | None = None, noise=None,
                 linear: Callable | None = None, coords: np.ndarray | None = None,
                 domain: Sequence[float] | None | str = "ring"):
        self.Nx = int(Nx)
        self.coords = (np.arange(self.Nx, dtype=float)[:, None] if coords is None
                       else np.asarray(coords, dtype=float).reshape(self.Nx, -1))
        self.domain = (float(self.Nx),) if isinstance(domain, str) else domain
        self._model = model
        self._linear = linear
        if noise is None or (np.isscalar(noise) and noise == 0):
            self.noise: Covariance | None = None
        else:
            self.noise = Covariance(noise, self.Nx, name=f"model noise Q of {type(self).__name__}")

    def step(self, E: np.ndarray, t: float, dt: float) -> np.ndarray:
        """The deterministic part of one step, ``(N, Nx) -> (N, Nx)``."""
        if self._model is None:
            raise NotImplementedError(f"{type(self).__name__} defines no step()")
        return self._model(E, t, dt)

    def advance(self, E: np.ndarray, dt: float, steps: int, t: float = 0.0) -> np.ndarray:
        """``steps`` deterministic steps of size ``dt`` of states ``(..., Nx)`` from time ``t``
        (step ``i`` at ``t + i * dt``), without model noise.

        This default calls :meth:`step` once per step; models that can take many steps at once
        (one compiled loop, one solver call) override it. Used where a trajectory is only needed
        at the observation times (e.g. the training data of learned filters).
        """
        for i in range(int(steps)):
            E = self.step(E, t + i * dt, dt)
        return E

    def step_torch(self, X, t: float, dt: float):
        """:meth:`step` on a torch tensor ``(..., Nx)``, differentiable (for filters trained by
        unrolling the model, e.g. MNMEF). Models implement it where they can."""
        raise NotImplementedError(
            f"{type(self).__name__} has no torch step: implement step_torch() to train filters that "
            "unroll the model")

    def linear(self, x: np.ndarray, t: float, dt: float) -> np.ndarray:
        """Jacobian ``dM/dx`` at ``x``, shape ``(Nx, Nx)``."""
        if self._linear is None:
            raise NotImplementedError(f"{type(self).__name__} has no linearisation (linear=...)")
        return self._linear(x, t, dt)

    def forecast(self, E: np.ndarray, t: float, dt: float, rng: np.random.Generator) -> np.ndarray:
        """One stochastic step of an ensemble ``(N, Nx)``: ``step`` plus ``sqrt(dt) N(0, Q)``."""
        E = self.step(E, t, dt)
        if self.noise is not None:
            E = E + np.sqrt(dt) * self.noise.sample(E.shape[0], rng)
        return E


class LinearDynamics(Dynamics):
    """Linear dynamics ``x_k = M x_{k-1} + sqrt(dt) q`` with a fixed matrix ``M`` ``(Nx, Nx)``
    per model step."""

    def __init__(self, M: np.ndarray, noise=None):
        self.M = np.atleast_2d(np.asarray(M, dtype=float))
        super().__init__(self.M.shape[0], noise=noise)

    def step(self, E: np.ndarray, t: float, dt: float) -> np.ndarray:
        return E @ self.M.T

    def linear(self, x: np.ndarray, t: float, dt: float) -> np.ndarray:
        return self.M
