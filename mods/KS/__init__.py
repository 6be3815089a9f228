r"""The Kuramoto–Sivashinsky equation on a periodic domain, integrated by ETDRK4.

.. math::  u_t = -u u_x - u_{xx} - u_{xxxx}, \qquad x \in [0, L),\ L = 32\pi \text{ by default}.

In Fourier space :math:`\hat u_t = \mathcal L \hat u + \mathcal N(\hat u)` with the stiff linear
part :math:`\mathcal L = k^2 - k^4` and :math:`\mathcal N = -\tfrac{i k}{2}\widehat{u^2}`.
ETDRK4 (Cox & Matthews 2002) integrates :math:`\mathcal L` exactly; its coefficients
:math:`\varphi`-functions are evaluated by contour integrals (Kassam & Trefethen 2005), which
avoids cancellation near :math:`\mathcal L\,dt = 0`. States ``(..., Nx)`` on the grid
``x_j = j L / Nx``; whole ensembles are stepped with one batched real FFT.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from dafilters.hmm import Dynamics

__all__ = ["KS", "etdrk4_coefficients", "x0"]


@lru_cache(maxsize=16)
def etdrk4_coefficients(Nx: int, L: float, dt: float, contour_points: int = 32) -> tuple:
    """Wavenumbers-dependent ETDRK4 coefficients ``(E, E2, Q, f1, f2, f3, g)`` for ``rfft`` modes."""
    k = 2 * np.pi / L * np.fft.rfftfreq(Nx, 1.0 / Nx)
    lin = k**2 - k**4
    E, E2 = np.exp(dt * lin), np.exp(dt * lin / 2)
    r = np.exp(1j * np.pi * (np.arange(1, contour_points + 1) - 0.5) / contour_points)
    LR = dt * lin[:, None] + r[None, :]
    Q = dt * np.real(np.mean((np.exp(LR / 2) - 1) / LR, axis=1))
    f1 = dt * np.real(np.mean((-4 - LR + np.exp(LR) * (4 - 3 * LR + LR**2)) / LR**3, axis=1))
    f2 = dt * np.real(np.mean((2 + LR + np.exp(LR) * (-2 + LR)) / LR**3, axis=1))
    f3 = dt * np.real(np.mean((-4 - 3 * LR - LR**2 + np.exp(LR) * (4 - LR)) / LR**3, axis=1))
    g = -0.5j * k
    g[-1] = 0.0 if Nx % 2 == 0 else g[-1]  # no derivative of the Nyquist mode
    return E, E2, Q, f1, f2, f3, g


def etdrk4_step(u: np.ndarray, L: float, dt: float) -> np.ndarray:
    """One ETDRK4 step of KS for states ``(..., Nx)``."""
    Nx = u.shape[-1]
    E, E2, Q, f1, f2, f3, g = etdrk4_coefficients(Nx, float(L), float(dt))

    def nonlin(v_hat):
        return g * np.fft.rfft(np.fft.irfft(v_hat, n=Nx) ** 2)

    v = np.fft.rfft(u)
    Nv = nonlin(v)
    a = E2 * v + Q * Nv
    Na = nonlin(a)
    b = E2 * v + Q * Na
    Nb = nonlin(b)
    c = E2 * a + Q * (2 * Nb - Nv)
    Nc = nonlin(c)
    v = E * v + Nv * f1 + 2 * (Na + Nb) * f2 + Nc * f3
    return np.fft.irfft(v, n=Nx)


def x0(Nx: int = 128, L: float = 32 * np.pi) -> np.ndarray:
    """Kassam & Trefethen's initial condition ``cos(x/16) (1 + sin(x/16))`` on the grid."""
    x = L * np.arange(Nx) / Nx
    return np.cos(x / 16) * (1 + np.sin(x / 16))


class KS(Dynamics):
    """Kuramoto–Sivashinsky dynamics with ``Nx`` grid points on a periodic domain of length ``L``.

    Grid point ``j`` sits at ``j`` grid units (localization radii are in grid units).
    """

    def __init__(self, Nx: int = 128, L: float = 32 * np.pi, noise=None):
        super().__init__(Nx, noise=noise, domain="ring")
        self.L = float(L)

    def step(self, E: np.ndarray, t: float, dt: float) -> np.ndarray:
        return etdrk4_step(E, self.L, dt)
