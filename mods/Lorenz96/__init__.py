r"""The Lorenz (1996) model on a periodic ring of ``Nx`` variables.

.. math::  \dot x_i = (x_{i+1} - x_{i-2})\, x_{i-1} - x_i + F,

any ``Nx >= 4`` and forcing ``F`` (8 by default). States ``(..., Nx)``.
"""

from __future__ import annotations

import numpy as np

from dafilters.hmm import Dynamics
from dafilters.integrators import rk4, rk4_jacobian

Force = 8.0


def x0(Nx: int) -> np.ndarray:
    """The initial point used by DAPPER's settings: zeros with ``x[0] = 1``."""
    x = np.zeros(Nx)
    x[0] = 1.0
    return x


def tendency(x: np.ndarray, F: float = Force) -> np.ndarray:
    """Tendency for states ``(..., Nx)`` (periodic indexing along the last axis).

    One padded copy ``[x_{N-2}, x_{N-1}, x_0, ..., x_{N-1}, x_0]`` gives the shifted states as
    views, and the arithmetic runs in place: two temporaries of the size of ``x`` instead of
    seven (it matters at ``Nx = 10^6``); same operations in the same order as
    ``(roll(x,-1) - roll(x,2)) * roll(x,1) - x + F``.
    """
    xp = np.concatenate([x[..., -2:], x, x[..., :1]], axis=-1)
    out = xp[..., 3:] - xp[..., :-3]  # x_{i+1} - x_{i-2}
    out *= xp[..., 1:-2]  # * x_{i-1}
    out -= x
    out += F
    return out


def tendency_torch(x, F: float = Force):
    """:func:`tendency` for torch tensors ``(..., Nx)`` (differentiable)."""
    import torch

    return (torch.roll(x, -1, -1) - torch.roll(x, 2, -1)) * torch.roll(x, 1, -1) - x + F


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
    """Lorenz-96 dynamics of size ``Nx`` with forcing ``F``, integrated by RK4.

    Args:
        Nx: number of variables. F: forcing. noise: model noise covariance per unit time.
    """

    def __init__(self, Nx: int = 40, F: float = Force, noise=None):
        if Nx < 4:
            raise ValueError(f"Lorenz96 needs Nx >= 4, got {Nx}")
        super().__init__(Nx, noise=noise)
        self.F = float(F)

    def dxdt(self, x: np.ndarray, t: float = 0.0) -> np.ndarray:
        return tendency(x, self.F)

    def step(self, E: np.ndarray, t: float, dt: float) -> np.ndarray:
        return rk4(self.dxdt, E, t, dt)

    def step_torch(self, X, t: float, dt: float):
        return rk4(lambda x, t: tendency_torch(x, self.F), X, t, dt)

    def linear(self, x: np.ndarray, t: float, dt: float) -> np.ndarray:
        return rk4_jacobian(self.dxdt, jacobian, x, t, dt)
