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

__all__ = ["pairwise_distances", "gaspari_cohn", "taper", "taper_support", "local_observations", "TAPERS"]

#: Taper names accepted by :func:`taper`.
TAPERS = ("GC", "Step", "Gauss")

#: Gaspari–Cohn half-width per unit radius (taper = exp(-1/2) at the radius).
GC_SCALE = 1.82


def as_points(a: np.ndarray) -> np.ndarray:
    """Coordinates as ``(n, d)`` floats: ``(n,)`` becomes ``(n, 1)``; an empty set stays empty
    (``(0,)`` -> ``(0, 1)``, ``(0, d)`` as it is)."""
    a = np.asarray(a, dtype=float)
    return a.reshape(len(a), -1) if a.size else a.reshape(len(a), a.shape[1] if a.ndim > 1 else 1)


def pairwise_distances(A: np.ndarray, B: np.ndarray, domain: np.ndarray | None = None) -> np.ndarray:
    """Euclidean distances ``(n, m)`` between points ``A`` ``(n, d)`` and ``B`` ``(m, d)``; along
    each axis with a ``domain`` length the shorter way round the periodic domain is used."""
    A, B = as_points(A), as_points(B)
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


def taper_support(radius: float, kind: str = "GC") -> float:
    """The distance beyond which the taper is zero (``inf`` for ``"Gauss"`` or an infinite radius)."""
    if np.isinf(radius) or kind == "Gauss":
        return np.inf
    return 2 * GC_SCALE * radius if kind == "GC" else float(radius)


def local_observations(state_xy: np.ndarray, obs_xy: np.ndarray, domain, radius: float,
                       kind: str = "GC", chunk: int = 1024, batch: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """For every local analysis domain, the observations with a non-zero taper, padded to equal length.

    A domain is a block of ``batch`` consecutive state points (the last may be shorter); its
    distance to an observation is the mean of its points' distances (DAPPER's rule for its
    localization batches; for ``batch=1`` the point's own distance). Tapers of finite support
    search a k-d tree (periodic where ``domain`` is given), so the cost grows like ``Nx * L``,
    not ``Nx * Ny``; others compare all pairs, ``chunk`` state points at a time.

    Returns:
        ``idx`` ``(B, L)`` observation indices and ``coeff`` ``(B, L)`` taper values for the
        ``B = ceil(Nx / batch)`` domains, where ``L`` is the largest local count; padding entries
        have ``coeff == 0`` (they do not act).
    """
    state_xy, obs_xy = as_points(state_xy), as_points(obs_xy)
    Nx, Ny = len(state_xy), len(obs_xy)
    if not (isinstance(batch, (int, np.integer)) and batch >= 1):
        raise ValueError(f"localization batch must be a positive integer, got {batch!r}")
    B = -(-Nx // batch)
    if Ny == 0:
        return np.zeros((B, 0), dtype=int), np.zeros((B, 0))
    support = taper_support(radius, kind)
    if np.isfinite(support):
        rows, cols, dist = _pairs_within(state_xy, obs_xy, domain, support, batch)
        c = taper(dist, radius, kind)
        keep = c > 0
        return _padded(rows[keep], cols[keep], c[keep], B)
    rows_idx, rows_c = [], []
    chunk = max(batch, chunk - chunk % batch)  # whole domains per chunk
    for start in range(0, Nx, chunk):  # bounded memory: chunk x Ny distances at a time
        d = _domain_mean(pairwise_distances(state_xy[start:start + chunk], obs_xy, domain), batch)
        for row in taper(d, radius, kind):
            nz = np.flatnonzero(row > 0)
            rows_idx.append(nz)
            rows_c.append(row[nz])
    rows = np.repeat(np.arange(B), [len(r) for r in rows_idx])
    return _padded(rows, np.concatenate(rows_idx), np.concatenate(rows_c), B)


def _domain_mean(d: np.ndarray, batch: int) -> np.ndarray:
    """Rows of ``d`` averaged over consecutive blocks of ``batch`` (the last may be shorter)."""
    if batch == 1:
        return d
    n = len(d)
    starts = np.arange(0, n, batch)
    return np.add.reduceat(d, starts, axis=0) / np.diff(np.append(starts, n))[:, None]


def _pairs_within(state_xy: np.ndarray, obs_xy: np.ndarray, domain, support: float,
                  batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(domain, observation, mean distance) for every observation within ``support`` of a point of
    the domain (a superset of those whose mean distance is below it, since the mean is at least
    the smallest distance)."""
    from scipy.spatial import cKDTree

    box = None
    if domain is not None:
        box = np.broadcast_to(np.asarray(domain, dtype=float), (state_xy.shape[1],))
        state_xy, obs_xy = np.mod(state_xy, box), np.mod(obs_xy, box)
    pairs = cKDTree(state_xy, boxsize=box).sparse_distance_matrix(
        cKDTree(obs_xy, boxsize=box), support, output_type="ndarray")
    if batch == 1:
        return pairs["i"].astype(np.int64), pairs["j"].astype(np.int64), pairs["v"]
    Ny, Nx = len(obs_xy), len(state_xy)
    keys = np.unique((pairs["i"].astype(np.int64) // batch) * Ny + pairs["j"])  # (domain, obs)
    rows, cols = keys // Ny, keys % Ny
    dist = np.zeros(len(keys))
    size = np.zeros(len(keys))
    for m in range(batch):  # mean over the domain's points
        p = rows * batch + m
        ok = p < Nx
        diff = np.abs(state_xy[p[ok]] - obs_xy[cols[ok]])
        if box is not None:
            diff = np.minimum(diff, box - diff)
        dist[ok] += np.sqrt(np.einsum("nd,nd->n", diff, diff))
        size[ok] += 1
    return rows, cols, dist / size


def _padded(rows: np.ndarray, cols: np.ndarray, coeff: np.ndarray, B: int) -> tuple[np.ndarray, np.ndarray]:
    """``(B, L)`` index and coefficient arrays from (row, col, coeff) triples (rows ascending,
    columns ascending within a row), padded with zero coefficients."""
    order = np.lexsort((cols, rows))
    rows, cols, coeff = rows[order], cols[order], coeff[order]
    counts = np.bincount(rows, minlength=B)
    L = int(counts.max()) if len(counts) else 0
    pos = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    idx = np.zeros((B, L), dtype=int)
    out = np.zeros((B, L))
    idx[rows, pos] = cols
    out[rows, pos] = coeff
    return idx, out
