r"""Distances on (periodic) grids and localization tapers.

Radius convention (as DAPPER's, so radii transfer): a taper is about :math:`e^{-1/2}` at
distance ``radius`` (exactly for ``"Gauss"``; Gaspari–Cohn uses the half-width
:math:`c = 1.82\,r`, support :math:`2c = 3.64\,r`, where it is 0.63); the ``"Step"`` taper is 1 up
to ``radius`` and 0 beyond.

State positions come from ``Dynamics.coords`` ``(Nx, d)`` on a domain of lengths
``Dynamics.domain`` (periodic; ``None`` for a non-periodic domain); observation positions from
``Observation.locations(ko, coords)`` ``(Ny, d)``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["pairwise_distances", "gaspari_cohn", "taper", "local_observations", "TAPERS"]

#: Taper names accepted by :func:`taper`.
TAPERS = ("GC", "Step", "Gauss")

#: Gaspari–Cohn half-width per unit radius (taper = exp(-1/2) at the radius).
GC_SCALE = 1.82


def pairwise_distances(A: np.ndarray, B: np.ndarray, domain: np.ndarray | None = None) -> np.ndarray:
    """Euclidean distances ``(n, m)`` between points ``A`` ``(n, d)`` and ``B`` ``(m, d)``; along
    each axis with a ``domain`` length the shorter way round the periodic domain is used."""
    A = np.asarray(A, dtype=float).reshape(len(A), -1)
    B = np.asarray(B, dtype=float).reshape(len(B), -1)
    D = np.abs(A[:, None, :] - B[None, :, :])
    if domain is not None:
        L = np.broadcast_to(np.asarray(domain, dtype=float), (A.shape[1],))
        D = np.minimum(D, L - D)
    return np.sqrt(np.einsum("nmd,nmd->nm", D, D))


def gaspari_cohn(r: np.ndarray) -> np.ndarray:
    r"""The Gaspari–Cohn (1999, eq. 4.10) fifth-order piecewise rational taper of ``r = d/c``:

    .. math::
        \rho(r) = \begin{cases}
        -\tfrac14 r^5 + \tfrac12 r^4 + \tfrac58 r^3 - \tfrac53 r^2 + 1, & r \le 1\\
        \tfrac1{12} r^5 - \tfrac12 r^4 + \tfrac58 r^3 + \tfrac53 r^2 - 5r + 4 - \tfrac{2}{3r}, & 1 < r \le 2\\
        0, & r > 2. \end{cases}
    """
    r = np.abs(np.asarray(r, dtype=float))
    out = np.zeros_like(r)
    inner = r <= 1
    outer = (r > 1) & (r <= 2)
    x = r[inner]
    out[inner] = (((-0.25 * x + 0.5) * x + 0.625) * x - 5 / 3) * x**2 + 1
    x = r[outer]
    out[outer] = ((((x / 12 - 0.5) * x + 0.625) * x + 5 / 3) * x - 5) * x + 4 - 2 / (3 * x)
    return np.clip(out, 0.0, 1.0)


def taper(d: np.ndarray, radius: float, kind: str = "GC") -> np.ndarray:
    """Localization coefficients in ``[0, 1]`` for distances ``d`` (any shape); about
    ``exp(-1/2)`` at ``d = radius`` for ``"GC"`` and ``"Gauss"``; an infinite radius gives ones."""
    if kind not in TAPERS:
        raise ValueError(f"unknown taper {kind!r}; choose one of {TAPERS}")
    d = np.asarray(d, dtype=float)
    if np.isinf(radius):
        return np.ones_like(d)
    if not radius > 0:
        raise ValueError(f"localization radius must be positive, got {radius}")
    if kind == "GC":
        return gaspari_cohn(d / (GC_SCALE * radius))
    if kind == "Step":
        return (d <= radius).astype(float)
    return np.exp(-0.5 * (d / radius) ** 2)


def local_observations(state_xy: np.ndarray, obs_xy: np.ndarray, domain, radius: float,
                       kind: str = "GC", chunk: int = 1024, batch: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """For every local analysis domain, the observations with a non-zero taper, padded to equal length.

    A domain is a block of ``batch`` consecutive state points (the last may be shorter); its
    distance to an observation is the mean of its points' distances (DAPPER's rule for its
    localization batches; for ``batch=1`` the point's own distance).

    Returns:
        ``idx`` ``(B, L)`` observation indices and ``coeff`` ``(B, L)`` taper values for the
        ``B = ceil(Nx / batch)`` domains, where ``L`` is the largest local count; padding entries
        have ``coeff == 0`` (they do not act).
    """
    Nx, Ny = len(state_xy), len(obs_xy)
    if not (isinstance(batch, (int, np.integer)) and batch >= 1):
        raise ValueError(f"localization batch must be a positive integer, got {batch!r}")
    B = -(-Nx // batch)
    if Ny == 0:
        return np.zeros((B, 0), dtype=int), np.zeros((B, 0))
    chunk = max(batch, chunk - chunk % batch)  # whole domains per chunk
    rows_idx, rows_c = [], []
    for start in range(0, Nx, chunk):  # bounded memory: chunk x Ny distances at a time
        d = pairwise_distances(state_xy[start:start + chunk], obs_xy, domain)
        if batch > 1:
            n = len(d)
            d = np.array([d[i:i + batch].mean(axis=0) for i in range(0, n, batch)]) if n % batch \
                else d.reshape(n // batch, batch, Ny).mean(axis=1)
        for row in taper(d, radius, kind):
            nz = np.flatnonzero(row > 0)
            rows_idx.append(nz)
            rows_c.append(row[nz])
    L = max(len(r) for r in rows_idx)
    idx = np.zeros((B, L), dtype=int)
    coeff = np.zeros((B, L))
    for i, (nz, c) in enumerate(zip(rows_idx, rows_c)):
        idx[i, : len(nz)] = nz
        coeff[i, : len(nz)] = c
    return idx, coeff
