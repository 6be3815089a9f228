r"""The Lorenz (1996) model on a periodic ring of ``Nx`` variables.

.. math::  \dot x_i = (x_{i+1} - x_{i-2})\, x_{i-1} - x_i + F,

any ``Nx >= 4`` and forcing ``F``. States ``(..., Nx)``.

The forcing of a model is fixed when it is built: ``Lorenz96(F=10)``. Without ``F`` it is the
module's :data:`Force` at that moment (8), so DAPPER's habit, ``mods.Lorenz96.Force = 10``, works
for the models built after it; a model built before keeps its forcing (and warns at its next step
that ``Force`` changed). The settings modules build their HMM when first imported; for another
forcing, build it again: ``sakov2008.HMM.replace(dyn=Lorenz96(40, F=10))``.
"""

from __future__ import annotations

import warnings

import numpy as np

from dafilters.hmm import Dynamics
from dafilters.integrators import rk4, rk4_jacobian

#: The forcing of the models built without ``F`` (read when a model is built).
Force = 8.0


def x0(Nx: int) -> np.ndarray:
    """The initial point used by DAPPER's settings: zeros with ``x[0] = 1``."""
    x = np.zeros(Nx)
    x[0] = 1.0
    return x


def tendency(x: np.ndarray, F: float | None = None) -> np.ndarray:
    """Tendency for states ``(..., Nx)`` (periodic indexing along the last axis) with forcing
    ``F`` (default: the module's :data:`Force`).

    One padded copy ``[x_{N-2}, x_{N-1}, x_0, ..., x_{N-1}, x_0]`` gives the shifted states as
    views, and the arithmetic runs in place: two temporaries of the size of ``x`` instead of
    seven (it matters at ``Nx = 10^6``); same operations in the same order as
    ``(roll(x,-1) - roll(x,2)) * roll(x,1) - x + F``.
    """
    xp = np.concatenate([x[..., -2:], x, x[..., :1]], axis=-1)
    out = xp[..., 3:] - xp[..., :-3]  # x_{i+1} - x_{i-2}
    out *= xp[..., 1:-2]  # * x_{i-1}
    out -= x
    out += Force if F is None else F
    return out


def tendency_torch(x, F: float | None = None):
    """:func:`tendency` for torch tensors ``(..., Nx)`` (differentiable)."""
    import torch

    F = Force if F is None else F
    # x padded once on the ring, [x_{-2}, x_{-1}, x_0 .. x_{Nx-1}, x_0], and sliced: the values of
    # three torch.roll calls (its gradient sums in another order) with one copy instead of three,
    # and torch.compile makes one vectorised loop of it (of the rolls it does not)
    xp = torch.cat([x[..., -2:], x, x[..., :1]], -1)
    return (xp[..., 3:] - xp[..., :-3]) * xp[..., 1:-2] - x + F


def jacobian(x: np.ndarray) -> np.ndarray:
    """Jacobian of :func:`tendency` at one state ``(Nx,)``, shape ``(Nx, Nx)``."""
    Nx = len(x)
    i = np.arange(Nx)
    J = -np.eye(Nx)
    J[i, (i - 1) % Nx] += x[(i + 1) % Nx] - x[(i - 2) % Nx]
    J[i, (i + 1) % Nx] += x[(i - 1) % Nx]
    J[i, (i - 2) % Nx] -= x[(i - 1) % Nx]
    return J


class Lorenz96(Dynamics):
    """Lorenz-96 dynamics of size ``Nx`` with forcing ``F``, integrated by RK4, on the periodic
    ring of its variables (``domain="ring"``: variable ``i`` at position ``i``).

    Args:
        Nx: number of variables (at least 4).
        F: forcing; default: the module's :data:`Force` when the model is built (see the module
            docstring: ``Lorenz96(F=10)`` is the way to another forcing).
        noise: model-noise covariance per unit time (a step of ``dt`` adds ``sqrt(dt) N(0, Q)``).
    """

    #: Not part of the model's identity: whether F came from the module's Force (and a change of
    #: Force was reported).
    identity_exclude = ("_force_from_module",)

    def __init__(self, Nx: int = 40, F: float | None = None, noise=None):
        if Nx < 4:
            raise ValueError(f"Lorenz96 needs Nx >= 4, got {Nx}")
        super().__init__(Nx, noise=noise, domain="ring")
        self.F = float(Force if F is None else F)
        if F is None:
            self.__dict__["_force_from_module"] = True

    def _check_force(self) -> None:
        """Warn once if the module's Force changed after this model took its forcing from it."""
        if self.__dict__.get("_force_from_module") and Force != self.F:
            self.__dict__["_force_from_module"] = False
            warnings.warn(f"mods.Lorenz96.Force is {Force:g}, but this Lorenz96 was built with "
                          f"F = {self.F:g} (Force is read when a model is built): build the model "
                          f"again, e.g. hmm.replace(dyn=Lorenz96({self.Nx}, F={Force:g}))",
                          UserWarning, stacklevel=3)

    def __getstate__(self) -> dict:
        # another process has its own Force: no check there
        return {k: v for k, v in self.__dict__.items() if k != "_force_from_module"}

    def dxdt(self, x: np.ndarray, t: float = 0.0) -> np.ndarray:
        return tendency(x, self.F)

    def step(self, E: np.ndarray, t: float, dt: float) -> np.ndarray:
        self._check_force()
        return rk4(self.dxdt, E, t, dt)

    def step_torch(self, X, t: float, dt: float):
        return rk4(lambda x, t: tendency_torch(x, self.F), X, t, dt)

    def linear(self, x: np.ndarray, t: float, dt: float) -> np.ndarray:
        return rk4_jacobian(self.dxdt, jacobian, x, t, dt)
