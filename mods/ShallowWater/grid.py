"""The grid of :mod:`mods.ShallowWater`: physical constants and model units, Dedalus's Gauss grid,
coordinates, the state layout, sub-grids for observations, quadrature and mass, the stable step."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["RADIUS", "OMEGA", "GRAVITY", "DEPTH", "FIELDS", "METER", "SECOND", "VEL", "HGT",
           "default_nu", "grid", "quadrature_weights", "lonlat", "cartesian_coords", "as_fields",
           "subgrid_indices", "mass", "stable_dt"]

#: Earth's radius (m), rotation rate (1/s), gravity (m/s^2) and the mean depth (m).
RADIUS, OMEGA, GRAVITY, DEPTH = 6.37122e6, 7.292e-5, 9.80616, 1e4
#: The fields of a state, in order.
FIELDS = ("u_phi", "u_theta", "h")
#: Model units: lengths in Earth radii, times in hours.
METER, SECOND = 1.0 / RADIUS, 1.0 / 3600.0
#: Velocity (m/s -> model units) and height (m -> model units) conversion factors.
VEL, HGT = METER / SECOND, METER


def default_nu(Ntheta: int, damping: float = 12.0) -> float:
    r"""Hyperdiffusion (model units, :math:`R^4`/hour) that e-folds the truncation wavenumber
    :math:`L = N_\theta - 1` in ``damping`` hours: :math:`\nu = 1/(\mathrm{damping}\,(L(L+1))^2)`.
    (Dedalus's example damps its truncation, ``L = 127``, in about 0.44 hours, but there the jet
    lives far below the truncation; at ``Ntheta = 16`` it does not.)"""
    if not damping > 0:
        raise ValueError(f"damping must be a positive time (hours), got {damping}")
    L = int(Ntheta) - 1
    return 1.0 / (damping * (L * (L + 1)) ** 2)


def _check_grid(Nphi: int, Ntheta: int) -> tuple[int, int]:
    Nphi, Ntheta = int(Nphi), int(Ntheta)
    if Ntheta < 4 or Nphi < 2 * Ntheta - 1 or Nphi % 2:
        raise ValueError(f"need an even Nphi >= 2 * Ntheta and Ntheta >= 4 (e.g. 32 x 16), "
                         f"got {Nphi} x {Ntheta}")
    return Nphi, Ntheta


@lru_cache(maxsize=16)
def grid(Nphi: int, Ntheta: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Longitudes :math:`\phi_i = 2\pi i/N_\phi` ``(Nphi,)`` and colatitudes
    :math:`\theta_j = \arccos x_j` ``(Ntheta,)`` (:math:`x_j` the Gauss–Legendre nodes, increasing,
    so :math:`\theta_j` decreases), in radians: Dedalus's sphere grid at scale 1."""
    Nphi, Ntheta = _check_grid(Nphi, Ntheta)
    x, _ = np.polynomial.legendre.leggauss(Ntheta)
    return 2 * np.pi * np.arange(Nphi) / Nphi, np.arccos(x)


def quadrature_weights(Nphi: int, Ntheta: int) -> np.ndarray:
    r"""Area weights ``(Nphi, Ntheta)`` (m²) with :math:`\int f\, dA \approx \sum_{ij} w_{ij}
    f(\phi_i, \theta_j)`: :math:`w_{ij} = R^2 (2\pi/N_\phi) w^{GL}_j` (exact for band-limited
    fields)."""
    Nphi, Ntheta = _check_grid(Nphi, Ntheta)
    _, w = np.polynomial.legendre.leggauss(Ntheta)
    return np.broadcast_to(RADIUS**2 * 2 * np.pi / Nphi * w, (Nphi, Ntheta))


def lonlat(Nphi: int, Ntheta: int) -> np.ndarray:
    """(longitude, latitude) in degrees ``(3 * Nphi * Ntheta, 2)`` of each state component."""
    phi, theta = grid(Nphi, Ntheta)
    P, T = np.meshgrid(np.degrees(phi), 90.0 - np.degrees(theta), indexing="ij")
    return np.tile(np.stack([P.ravel(), T.ravel()], axis=1), (len(FIELDS), 1))


def cartesian_coords(Nphi: int, Ntheta: int) -> np.ndarray:
    r"""Cartesian positions (km) ``(3 * Nphi * Ntheta, 3)`` of each state component's grid point:
    :math:`R(\sin\theta\cos\phi, \sin\theta\sin\phi, \cos\theta)`."""
    phi, theta = grid(Nphi, Ntheta)
    P, T = np.meshgrid(phi, theta, indexing="ij")
    xyz = RADIUS / 1e3 * np.stack([np.sin(T) * np.cos(P), np.sin(T) * np.sin(P), np.cos(T)], axis=-1)
    return np.tile(xyz.reshape(-1, 3), (len(FIELDS), 1))


def as_fields(E: np.ndarray, Nphi: int, Ntheta: int) -> np.ndarray:
    """States ``(..., 3 * Nphi * Ntheta)`` as fields ``(..., 3, Nphi, Ntheta)`` (a view;
    ``[..., f, i, j]`` is field ``FIELDS[f]`` at longitude ``i``, colatitude ``j``)."""
    E = np.asarray(E)
    if E.shape[-1] != 3 * Nphi * Ntheta:
        raise ValueError(f"ShallowWater({Nphi}x{Ntheta}) states have size {3 * Nphi * Ntheta}, "
                         f"got {E.shape[-1]}")
    return E.reshape(*E.shape[:-1], 3, Nphi, Ntheta)


def subgrid_indices(Nphi: int, Ntheta: int, every: int | tuple[int, int] = (4, 2),
                    fields: str | tuple[str, ...] = "h", offset: int | tuple[int, int] = 0) -> np.ndarray:
    """Flat state indices of the fields ``fields`` (names from :data:`FIELDS`) at every
    ``every[0]``-th longitude and ``every[1]``-th colatitude starting at ``offset``; ordered by
    field, then longitude, then colatitude."""
    Nphi, Ntheta = _check_grid(Nphi, Ntheta)
    every = (int(every), int(every)) if np.ndim(every) == 0 else tuple(int(s) for s in every)
    offset = (int(offset), int(offset)) if np.ndim(offset) == 0 else tuple(int(o) for o in offset)
    if min(every) < 1 or any(not 0 <= o < s for o, s in zip(offset, every)):
        raise ValueError(f"need every >= 1 and 0 <= offset < every, got every={every}, offset={offset}")
    fields = (fields,) if isinstance(fields, str) else tuple(fields)
    bad = [f for f in fields if f not in FIELDS]
    if bad or not fields:
        raise ValueError(f"fields must be among {FIELDS}, got {fields!r}")
    rows, cols = np.arange(offset[0], Nphi, every[0]), np.arange(offset[1], Ntheta, every[1])
    cell = (rows[:, None] * Ntheta + cols[None, :]).ravel()
    return np.concatenate([FIELDS.index(f) * Nphi * Ntheta + cell for f in fields])


def mass(E: np.ndarray, Nphi: int, Ntheta: int) -> np.ndarray:
    r"""The mass anomaly :math:`\int h\, dA` (m³) of states ``(..., Nx)``, shape ``(...)``."""
    h = as_fields(E, Nphi, Ntheta)[..., 2, :, :]
    return np.einsum("...ij,ij->...", h, quadrature_weights(Nphi, Ntheta))


def stable_dt(Nphi: int) -> float:
    """A safe model step (hours) for ``Nphi`` longitudes: 1 hour up to ``Nphi = 32``, then
    ``32 / Nphi`` (the advective CFL number stays about 0.3 for jets of 100 m/s)."""
    return min(1.0, 32.0 / Nphi)
