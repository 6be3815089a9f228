"""Velocity probes of a 2-D incompressible flow observed from its vorticity on a periodic
``n x n`` grid (see :mod:`dafilters.observations`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .basic import LinearObs
from .grid import _pair

__all__ = ["VelocityProbesObs", "velocity_probe_matrix", "vorticity_to_velocity", "probe_lattice"]


def _wavenumbers(n: int, length: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Angular wavenumbers :math:`\kappa_x, \kappa_y` ``(n, n)`` of ``numpy.fft.fft2`` on an
    ``n x n`` grid of a square of side ``length``, and the multiplier mask ``(n, n)`` that is 0 at
    the mean mode and at the Nyquist rows/columns (whose derivative is ambiguous), 1 elsewhere."""
    k = np.fft.fftfreq(n, 1.0 / n)
    kx, ky = np.meshgrid(2 * np.pi * k / length, 2 * np.pi * k / length, indexing="ij")
    keep = np.ones((n, n))
    keep[0, 0] = 0.0
    if n % 2 == 0:
        keep[n // 2, :] = keep[:, n // 2] = 0.0
    return kx, ky, keep


def vorticity_to_velocity(W: np.ndarray, n: int, length: float = 2 * np.pi) -> np.ndarray:
    r"""Velocity ``(..., 2, n, n)`` (:math:`u`, then :math:`v`) on the grid from vorticity fields
    ``W`` ``(..., n * n)`` (row-major, ``[i, j]`` at :math:`(x_i, y_j)`):

    .. math:: \hat\psi = \hat\omega / |\kappa|^2\ (\Delta\psi = -\omega),\qquad
              u = \partial_y \psi,\quad v = -\partial_x \psi,

    spectrally (mean and Nyquist modes dropped).
    """
    W = np.asarray(W, dtype=float)
    if W.shape[-1] != n * n:
        raise ValueError(f"vorticity fields of size {W.shape[-1]} are not {n} x {n}")
    kx, ky, keep = _wavenumbers(n, length)
    k2 = np.where(keep > 0, kx**2 + ky**2, 1.0)
    psi_hat = np.fft.fft2(W.reshape(*W.shape[:-1], n, n)) * keep / k2
    return np.stack([np.fft.ifft2(1j * ky * psi_hat).real, np.fft.ifft2(-1j * kx * psi_hat).real], -3)


def velocity_probe_matrix(n: int, points: np.ndarray, length: float = 2 * np.pi) -> np.ndarray:
    r"""The linear map ``H`` ``(2 P, n * n)`` from a vorticity field on the ``n x n`` grid to the
    velocity at ``P`` points: rows ``0..P-1`` give :math:`u`, rows ``P..2P-1`` give :math:`v`.

    The field's trigonometric interpolant is differentiated exactly, so the points may lie
    anywhere (on the grid or between grid points). With :math:`\kappa` the angular wavenumbers and
    :math:`m_u = i\kappa_y/|\kappa|^2`, :math:`m_v = -i\kappa_x/|\kappa|^2`,

    .. math:: H_u[p, (a, b)] = \frac{1}{n^2} \sum_\kappa m_u(\kappa)\,
              e^{i \kappa \cdot (x_p - x_{ab})},

    one FFT per point (mean and Nyquist modes dropped).

    Args:
        n: grid points per direction. points: ``(P, 2)`` positions :math:`(x, y)`.
        length: side of the periodic square (:math:`2\pi`).
    """
    points = np.asarray(points, dtype=float)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must have shape (P, 2), got {points.shape}")
    kx, ky, keep = _wavenumbers(n, length)
    k2 = np.where(keep > 0, kx**2 + ky**2, 1.0)
    H = np.empty((2 * len(points), n * n))
    for start in range(0, len(points), 64):  # bounded temporaries on fine grids
        p = points[start:start + 64]
        phase = np.exp(1j * (p[:, 0, None, None] * kx + p[:, 1, None, None] * ky)) * keep / k2
        for row0, mult in ((0, 1j * ky), (len(points), -1j * kx)):
            rows = np.fft.fft2(mult * phase).real / n**2
            H[row0 + start:row0 + start + len(p)] = rows.reshape(len(p), n * n)
    return H


def probe_lattice(probes: int | Sequence[int], n: int | None = None, length: float = 2 * np.pi) -> np.ndarray:
    r"""A regular ``m0 x m1`` lattice of probe positions ``(m0 * m1, 2)``, row-major:
    :math:`(L i / m_0, L j / m_1)`. With ``n``, each probe is moved to the nearest grid point of
    the ``n x n`` grid (grid index :math:`\mathrm{round}(n i / m_0)`)."""
    m0, m1 = _pair(probes, "probes")
    if min(m0, m1) < 1:
        raise ValueError(f"probes must be positive, got {probes!r}")
    axes = [length * np.arange(m) / m for m in (m0, m1)]
    if n is not None:
        axes = [length * (np.rint(a * n / length) % n) / n for a in axes]
    X, Y = np.meshgrid(*axes, indexing="ij")
    return np.stack([X.ravel(), Y.ravel()], 1)


class VelocityProbesObs(LinearObs):
    r"""Both velocity components of a 2-D periodic flow at sparse probes, observed from its
    vorticity: ``y = (u(p_1..p_P), v(p_1..p_P)) + r``, ``Ny = 2P`` (all :math:`u`, then all
    :math:`v`). Linear, ``y = H x + r`` with ``H`` from :func:`velocity_probe_matrix`.

    Args:
        n: grid points per direction of the vorticity field (states start with the ``n * n``
            field, row-major).
        noise: observation-error covariance (scalar variance, vector, matrix or ``ko -> ...``).
        probes: probes per direction of a regular lattice (:func:`probe_lattice`; an int or a
            pair), or give ``points``.
        points: explicit probe positions ``(P, 2)``.
        on_grid: move lattice probes to the nearest grid points.
        n_params: extra state components after the field (e.g. a parameter), not observed.
        length: side of the periodic square.

    ``locations`` are the probe positions (each twice: ``u`` then ``v``), for localization.
    ``H`` is dense, ``2P x (n^2 + n_params)`` (about 105 MB in float64 at ``n = 256``, ``P = 100``).
    """

    def __init__(self, n: int, noise, probes: int | Sequence[int] = 10, points: np.ndarray | None = None,
                 on_grid: bool = False, n_params: int = 0, length: float = 2 * np.pi):
        self.n, self.n_params, self.length = int(n), int(n_params), float(length)
        if self.n < 2 or self.n_params < 0:
            raise ValueError(f"need n >= 2 and n_params >= 0, got n={n}, n_params={n_params}")
        self.points = (probe_lattice(probes, self.n if on_grid else None, self.length) if points is None
                       else np.asarray(points, dtype=float))
        H = velocity_probe_matrix(self.n, self.points, self.length)
        super().__init__(np.hstack([H, np.zeros((len(H), self.n_params))]), noise)

    def locations(self, ko: int, coords: np.ndarray) -> np.ndarray:
        return np.vstack([self.points, self.points])
