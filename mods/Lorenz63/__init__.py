r"""The Lorenz (1963) convection model.

.. math::
    \dot x = \sigma (y - x), \quad \dot y = x(\rho - z) - y, \quad \dot z = x y - \beta z,

with the classical parameters :math:`\sigma = 10, \rho = 28, \beta = 8/3`. States ``(..., 3)``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from dafilters.hmm import Dynamics
from dafilters.integrators import rk4, rk4_into, rk4_jacobian

SIGMA, RHO, BETA = 10.0, 28.0, 8.0 / 3

#: A point on the attractor (as used by DAPPER's settings).
x0 = np.array([1.509, -1.531, 25.46])


def _coefficients() -> np.ndarray:
    """``W`` ``(5, 3)`` such that ``dxdt = [x, y, z, x*y, x*z] @ W``."""
    W = np.zeros((5, 3))
    W[:3] = [[-SIGMA, RHO, 0.0], [SIGMA, -1.0, 0.0], [0.0, 0.0, -BETA]]
    W[3, 2] = 1.0  # + x*y in dz/dt
    W[4, 1] = -1.0  # - x*z in dy/dt
    return W


_W = _coefficients()


def dxdt(x: np.ndarray, t: float = 0.0) -> np.ndarray:
    """Tendency for ensembles ``(N, 3)``, written as one product with the features
    ``[x, y, z, xy, xz]`` (a few large numpy calls instead of many tiny ones)."""
    if x.ndim == 1:
        return dxdt(x[None])[0]
    return np.concatenate([x, x[:, :1] * x[:, 1:]], axis=1) @ _W


def d2x_dtdx(x: np.ndarray) -> np.ndarray:
    """Jacobian of :func:`dxdt` at one state ``(3,)``, shape ``(3, 3)``."""
    X, Y, Z = x
    return np.array([[-SIGMA, SIGMA, 0.0], [RHO - Z, -1.0, -X], [Y, X, -BETA]])


_LT = np.ascontiguousarray(_W[:3].T)  # the linear part, acting on states stored as columns

#: Ensembles of at least this many members are integrated with the variables as rows.
BY_VARIABLE_FROM = 64


def dxdt_by_variable(X: np.ndarray, t: float = 0.0, out: np.ndarray | None = None) -> np.ndarray:
    """Tendency of an ensemble stored by variable, ``X`` ``(3, N)``: :func:`dxdt` transposed
    (written into ``out`` if given). Each row is contiguous, so for large ``N`` every operation
    streams through memory (the ``(N, 3)`` form spends most of its time on 2- and 3-element
    inner loops)."""
    out = np.matmul(_LT, X, out=out)
    q = X[0] * X[2]
    out[1] -= q
    np.multiply(X[0], X[1], out=q)
    out[2] += q
    return out


def step(E: np.ndarray, t: float, dt: float) -> np.ndarray:
    """One RK4 step of an ensemble ``(N, 3)``. Ensembles of ``BY_VARIABLE_FROM`` members or more
    are integrated as ``(3, N)`` and returned as its transpose (a Fortran-ordered ``(N, 3)``
    array, which the next step transposes without a copy); the same values to round-off."""
    if E.ndim == 2 and E.shape[0] >= BY_VARIABLE_FROM:
        return rk4_into(dxdt_by_variable, np.ascontiguousarray(E.T), t, dt).T
    return rk4(dxdt, E, t, dt)


def dstep_dx(x: np.ndarray, t: float, dt: float) -> np.ndarray:
    """Jacobian of one RK4 step at ``x`` ``(3,)`` (tangent-linear RK4), shape ``(3, 3)``."""
    return rk4_jacobian(dxdt, d2x_dtdx, x, t, dt)


def advance(E: np.ndarray, dt: float, steps: int, t: float = 0.0) -> np.ndarray:
    """``steps`` RK4 steps of an ensemble ``(N, 3)`` (or a state ``(3,)``): :func:`step` repeated,
    bit for bit (the operations of :func:`~dafilters.integrators.rk4` with :func:`dxdt`, in their
    order), in one loop without the function calls around each step. The flow is autonomous:
    ``t`` is unused. (Preallocated buffers were tried: writing a stage into columns of a feature
    array makes every operation a strided 2-D loop over rows of 3, which costs more than the
    allocations saved.)"""
    E = np.asarray(E, dtype=float)
    if E.ndim == 1:
        return advance(E[None], dt, steps, t)[0]
    if E.ndim != 2 or len(E) >= BY_VARIABLE_FROM:
        for i in range(int(steps)):
            E = step(E, t + i * dt, dt)
        return E
    x, h, W, cat = E, dt / 2, _W, np.concatenate
    for _ in range(int(steps)):
        k1 = cat([x, x[:, :1] * x[:, 1:]], axis=1) @ W
        s = x + h * k1
        k2 = cat([s, s[:, :1] * s[:, 1:]], axis=1) @ W
        s = x + h * k2
        k3 = cat([s, s[:, :1] * s[:, 1:]], axis=1) @ W
        s = x + dt * k3
        k4 = cat([s, s[:, :1] * s[:, 1:]], axis=1) @ W
        x = x + (dt / 6) * (k1 + 2 * (k2 + k3) + k4)
    return x


class Lorenz63Dynamics(Dynamics):
    """:class:`~dafilters.dynamics.Dynamics` with the multi-step :func:`advance`, which the
    filters' forecast takes for deterministic runs (``advance_exact``)."""

    #: ``advance(E, dt, n, t)`` equals ``n`` calls of :meth:`step` bit for bit.
    advance_exact: ClassVar[bool] = True

    def advance(self, E: np.ndarray, dt: float, steps: int, t: float = 0.0) -> np.ndarray:
        return advance(E, dt, steps, t)


def Lorenz63(noise=None) -> Dynamics:
    """The Lorenz-63 dynamics (RK4), optionally with additive model noise per unit time."""
    return Lorenz63Dynamics(3, model=step, noise=noise, linear=dstep_dx)
