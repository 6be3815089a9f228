"""Time integrators shared by the models in ``mods/``.

All integrators act on whole ensembles: ``x`` may have any leading batch shape, ``(..., Nx)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["rk4", "rk4_into", "rk4_steps", "rk4_jacobian"]

RHS = Callable[[np.ndarray, float], np.ndarray]


def rk4(f: RHS, x: np.ndarray, t: float, dt: float) -> np.ndarray:
    r"""One classical Runge–Kutta step of :math:`\dot x = f(x, t)`.

    .. math::
        k_1 = f(x, t),\; k_2 = f(x + \tfrac{dt}{2} k_1, t + \tfrac{dt}{2}),\;
        k_3 = f(x + \tfrac{dt}{2} k_2, t + \tfrac{dt}{2}),\; k_4 = f(x + dt\, k_3, t + dt),\\
        x_{+} = x + \tfrac{dt}{6}(k_1 + 2k_2 + 2k_3 + k_4).

    Args:
        f: the tendency, mapping ``(..., Nx)`` states and a time to ``(..., Nx)``.
        x: states, shape ``(..., Nx)``.
        t: current time.
        dt: step length.
    """
    h = dt / 2
    k1 = f(x, t)
    k2 = f(x + h * k1, t + h)
    k3 = f(x + h * k2, t + h)
    k4 = f(x + dt * k3, t + dt)
    return x + (dt / 6) * (k1 + 2 * (k2 + k3) + k4)


def rk4_into(f_into: Callable[[np.ndarray, float, np.ndarray], np.ndarray], x: np.ndarray, t: float,
             dt: float) -> np.ndarray:
    """One RK4 step as :func:`rk4`, for a tendency that writes into a given array,
    ``f_into(x, t, out) -> out``: the same operations in the same order (bit-for-bit the same
    result), in four buffers instead of a dozen temporaries (for large ensembles, where each
    temporary costs a pass through memory and an allocation)."""
    h = dt / 2
    k1 = f_into(x, t, np.empty_like(x))
    tmp = np.multiply(k1, h)
    tmp += x
    k2 = f_into(tmp, t + h, np.empty_like(x))
    np.multiply(k2, h, out=tmp)
    tmp += x
    k3 = f_into(tmp, t + h, np.empty_like(x))
    k2 += k3
    np.multiply(k3, dt, out=tmp)
    tmp += x
    k4 = f_into(tmp, t + dt, k3)
    k2 *= 2
    k2 += k1
    k2 += k4
    k2 *= dt / 6
    k2 += x
    return k2


def rk4_steps(f: RHS, x: np.ndarray, t: float, dt: float, n: int) -> np.ndarray:
    """``n`` RK4 sub-steps of length ``dt / n`` (for models whose stable step is shorter)."""
    h = dt / n
    for i in range(n):
        x = rk4(f, x, t + i * h, h)
    return x


def rk4_jacobian(f: RHS, df: Callable[[np.ndarray], np.ndarray], x: np.ndarray, t: float,
                 dt: float) -> np.ndarray:
    r"""Jacobian ``(Nx, Nx)`` of one RK4 step at a single state ``x`` ``(Nx,)``.

    The stage Jacobians follow the chain rule through the stages,
    :math:`J_1 = Df(x)`, :math:`J_2 = Df(x + \tfrac{dt}{2}k_1)(I + \tfrac{dt}{2}J_1)`, …, and
    :math:`M = I + \tfrac{dt}{6}(J_1 + 2J_2 + 2J_3 + J_4)`.

    Args:
        f: tendency ``(Nx,) -> (Nx,)``. df: its Jacobian ``(Nx,) -> (Nx, Nx)``.
    """
    h = dt / 2
    eye = np.eye(len(x))
    k1 = f(x, t)
    J1 = df(x)
    x2 = x + h * k1
    k2 = f(x2, t + h)
    J2 = df(x2) @ (eye + h * J1)
    x3 = x + h * k2
    k3 = f(x3, t + h)
    J3 = df(x3) @ (eye + h * J2)
    J4 = df(x + dt * k3) @ (eye + dt * J3)
    return eye + (dt / 6) * (J1 + 2 * (J2 + J3) + J4)
