r"""The Lorenz (1963) convection model.

.. math::
    \dot x = \sigma (y - x), \quad \dot y = x(\rho - z) - y, \quad \dot z = x y - \beta z,

with the classical parameters :math:`\sigma = 10, \rho = 28, \beta = 8/3`. States ``(..., 3)``.
"""

from __future__ import annotations

from functools import lru_cache
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


#: The filters' forecast takes :func:`advance_fused` below this many members: beyond, its
#: ``(24, N)`` buffer leaves the cache and the by-variable steps are faster (CPU time of 25 steps:
#: 1.9 against 2.6 ms at N = 4000, 2.7 against 4.8 at 8000, 15 against 9.6 at 16 000).
FUSED_BELOW = 10_000


@lru_cache(maxsize=16)
def _stage_maps(dt: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The matrices of :func:`advance_fused` for a step ``dt``: ``M2`` ``(4, 6)``, ``M3``
    ``(4, 12)``, ``M4`` ``(4, 18)``, ``M5`` ``(4, 24)`` (read-only)."""
    D = np.zeros((4, 3))
    D[[0, 1, 2, 3], [0, 0, 1, 2]] = 1.0  # (x, y, z) -> (x, x, y, z)
    W6 = np.zeros((6, 3))
    W6[0], W6[2:] = _W[0], _W[1:]  # the tendency from (x, x, y, z, xy, xz)
    T, J, Z = D @ W6.T, np.zeros((4, 6)), np.zeros((4, 6))
    J[:, :4] = np.eye(4)  # (x, x, y, z) out of the first stage's features
    h = dt / 2
    maps = (J + h * T, np.hstack([J, h * T]), np.hstack([J, Z, dt * T]),
            np.hstack([J + (dt / 6) * T, (dt / 3) * T, (dt / 3) * T, (dt / 6) * T]))
    for M in maps:
        M.flags.writeable = False
    return maps


def advance_fused(E: np.ndarray, dt: float, steps: int) -> np.ndarray:
    r"""``steps`` RK4 steps of an ensemble ``E`` ``(N, 3)``: :func:`advance` to round-off, in 8
    numpy calls per step instead of about 30 (at N = 10 a call, not its arithmetic, is the cost).

    With the features :math:`\varphi(s) = (s_x, s_x, s_y, s_z, s_x s_y, s_x s_z)` the tendency is
    linear in them, :math:`f(s) = T\varphi(s)` (:func:`dxdt`), so every RK4 stage input, and the
    step itself, is one linear map of the stacked features :math:`\Phi_i = \varphi(s_i)` of the
    earlier stages (:math:`s_1 = x`, whose first features are :math:`x`):

    .. math::
        s_2 = x + \tfrac{dt}{2} T\Phi_1 = M_2 \Phi_1, \quad
        s_3 = M_3 [\Phi_1; \Phi_2], \quad s_4 = M_4 [\Phi_1; \Phi_2; \Phi_3], \quad
        x_+ = M_5 [\Phi_1; \dots; \Phi_4],

    :math:`M_5 = [J + \tfrac{dt}{6}T,\ \tfrac{dt}{3}T,\ \tfrac{dt}{3}T,\ \tfrac{dt}{6}T]` with
    :math:`J` the map :math:`\Phi_1 \mapsto x`. The features live by variable in one ``(24, N)``
    buffer (a stage's rows ``x, x, y, z, xy, xz``), the maps write ``(x, x, y, z)`` with ``x`` twice,
    so a stage is one element-wise product of contiguous rows, ``(x, x) * (y, z)``, and one matrix
    product on a contiguous block, with no temporaries. Only the order of the floating-point
    operations differs from :func:`rk4` with :func:`dxdt` (about 1e-15 relative per step; the flow
    is chaotic, so trajectories part after some 30 time units, as those of any two
    implementations of RK4 do).

    Returns a C-ordered ``(N, 3)`` array.
    """
    E = np.asarray(E, dtype=float)
    if E.ndim != 2 or E.shape[1] != 3:
        raise ValueError(f"advance_fused integrates ensembles (N, 3), got shape {E.shape}")
    N = E.shape[0]
    G = np.empty((24, N))
    G[0] = E[:, 0]
    G[1:4] = E.T
    flat = G.reshape(-1)  # a view: stage i's rows (x, x), (y, z), (xy, xz) are contiguous runs
    (x1, x2, x3, x4), (y1, y2, y3, y4), (p1, p2, p3, p4) = (
        [flat[(6 * i + j) * N: (6 * i + j + 2) * N] for i in range(4)] for j in (0, 2, 4))
    S2, S3, S4, X = (G[6 * i: 6 * i + 4] for i in (1, 2, 3, 0))  # what the maps write
    F1, F2, F3, F4 = (G[: 6 * i] for i in (1, 2, 3, 4))  # what they read
    M2, M3, M4, M5 = _stage_maps(float(dt))
    mul, mm = np.multiply, np.matmul
    for _ in range(int(steps)):
        mul(x1, y1, out=p1)
        mm(M2, F1, out=S2)
        mul(x2, y2, out=p2)
        mm(M3, F2, out=S3)
        mul(x3, y3, out=p3)
        mm(M4, F3, out=S4)
        mul(x4, y4, out=p4)
        mm(M5, F4, out=X)  # overlaps F4: numpy buffers the product
    return np.ascontiguousarray(G[1:4].T)


class Lorenz63Dynamics(Dynamics):
    """:class:`~dafilters.dynamics.Dynamics` with the multi-step :func:`advance` (bit for bit its
    steps) and, for the filters' forecast of deterministic runs, :func:`advance_fused` (its steps
    to round-off, in fewer numpy calls)."""

    #: ``advance(E, dt, n, t)`` equals ``n`` calls of :meth:`step` bit for bit.
    advance_exact: ClassVar[bool] = True

    def advance(self, E: np.ndarray, dt: float, steps: int, t: float = 0.0) -> np.ndarray:
        return advance(E, dt, steps, t)

    def forecast_advance(self, E: np.ndarray, dt: float, steps: int, t: float = 0.0) -> np.ndarray:
        """:func:`advance_fused` for ensembles ``(N, 3)`` of fewer than :data:`FUSED_BELOW`
        members, else :func:`advance`; the flow is autonomous, ``t`` is unused."""
        if np.ndim(E) == 2 and len(E) < FUSED_BELOW:
            return advance_fused(E, dt, steps)
        return advance(E, dt, steps, t)


def Lorenz63(noise=None) -> Dynamics:
    """The Lorenz-63 dynamics (RK4), optionally with additive model noise per unit time."""
    return Lorenz63Dynamics(3, model=step, noise=noise, linear=dstep_dx)
