r"""Particle smoothing of a window and the scores of posterior samples of trajectories.

The ground truth against which the SDA paper (Rozet & Louppe 2023) scores its posterior samples
of a window of ``L`` states, and its metrics:

- :func:`particle_smoother`: a bootstrap particle filter over the window whose particles carry
  their ancestry; the smoothing samples are the surviving paths (``method="genealogy"``, what the
  reference code does: ``sda/utils.py`` ``bpf`` resamples whole paths at every observation), or
  paths drawn backwards through the filtering particles (``method="ffbsi"``, forward filtering
  backward simulation, for dynamics with Gaussian model noise: richer early states).
- :func:`w1_per_state`: the 1-D Wasserstein-1 distance per state and component between two
  sample sets (exact for empirical measures of any sizes).
- :func:`emd`: the reference's metric (``sda/utils.py`` ``emd``: ``ot.emd2`` with uniform
  weights and the Euclidean cost between whole flattened trajectories): the exact optimal
  transport cost between two equal-size sample sets of trajectories, here by an assignment.
- :func:`log_likelihood` and :func:`log_transition`: ``log p(y | x)`` and ``log p(x)`` of each
  sample (``experiments/lorenz/utils.py`` ``log_likelihood``, ``log_prior``; the reference
  reports their means over samples).

Everything is numpy and vectorised over particles.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist
from scipy.special import logsumexp

__all__ = ["particle_smoother", "w1_per_state", "emd", "log_likelihood", "log_transition"]


def _resample(w: np.ndarray, n: int, rng: np.random.Generator, kind: str) -> np.ndarray:
    """``n`` indices drawn from the normalised weights ``w`` (systematic or multinomial)."""
    c = np.cumsum(w)
    c[-1] = 1.0
    if kind == "systematic":
        u = (rng.random() + np.arange(n)) / n
    elif kind == "multinomial":
        u = rng.random(n)
    else:
        raise ValueError(f"resampling must be 'systematic' or 'multinomial', got {kind!r}")
    return np.minimum(np.searchsorted(c, u, side="right"), len(w) - 1)


def _check_smoother_args(dyn, ys: Sequence, obs_steps: list[int], kos: list[int], L: int, M: int,
                         n_out: int, method: str) -> None:
    """Raise a ``ValueError`` naming the first argument of :func:`particle_smoother` that does not fit."""
    if not (len(ys) == len(obs_steps) == len(kos)):
        raise ValueError("ys, obs_steps and kos must have the same length")
    if any(not 0 <= i < L for i in obs_steps) or np.any(np.diff(obs_steps) <= 0):
        raise ValueError(f"obs_steps must be increasing positions in [0, {L}), got {obs_steps}")
    if method not in ("genealogy", "ffbsi"):
        raise ValueError(f"method must be 'genealogy' or 'ffbsi', got {method!r}")
    if method == "ffbsi" and getattr(dyn, "noise", None) is None:
        raise ValueError("ffbsi needs dynamics with model noise (a transition density)")
    if method == "genealogy" and n_out > M:
        raise ValueError(f"genealogy returns at most M={M} paths, asked for {n_out}")


def particle_smoother(dyn, obs, X0: np.ndarray, ys: Sequence[np.ndarray], obs_steps: Sequence[int],
                      L: int, rng: np.random.Generator, kos: Sequence[int] | None = None,
                      dt: float = 1.0, t0: float = 0.0, n_out: int | None = None,
                      method: str = "genealogy", resampling: str = "systematic",
                      chunk: int = 512, info: dict | None = None) -> np.ndarray:
    """Samples of the states ``x_0 .. x_{L-1}`` of a window given observations inside it.

    The bootstrap particle filter starts from ``X0`` (``M`` draws of ``x_0`` from its prior),
    moves the particles by ``dyn.forecast`` (model noise included) and, at each position
    ``obs_steps[j]``, weighs them by ``obs.loglik(ys[j], ., kos[j])`` and resamples (every
    observation, as the reference's ``bpf``).

    Args:
        dyn: a :class:`~dafilters.hmm.Dynamics` (``forecast``, ``step``, ``noise``).
        obs: an :class:`~dafilters.hmm.Observation` (``loglik``).
        X0: ``(M, Nx)`` particles of the first state.
        ys, obs_steps, kos: the observations, their positions in the window (``0 <= i < L``,
            increasing) and their indices for ``obs`` (default ``0, 1, ...``).
        L: states in the window. dt, t0: model step and the time of ``x_0``.
        rng: the random stream (model noise, resampling, the subset of paths returned).
        n_out: paths returned (default ``M``); a uniform subset of the ``M`` equally weighted
            paths for ``"genealogy"``, independent backward draws for ``"ffbsi"``.
        method: ``"genealogy"`` (the surviving paths of the filter) or ``"ffbsi"`` (backward
            simulation with the transition density ``N(x_{i+1}; M(x_i), dt Q)``; needs model
            noise; cost ``n_out * M`` per state, in blocks of ``chunk`` paths).
        resampling: ``"systematic"`` or ``"multinomial"`` (the reference's).
        info: a dict, filled with ``unique`` ``(L,)`` (distinct particles per state among the
            returned paths) and ``log_evidence`` (the filter's estimate of ``log p(y)``).

    Returns:
        Samples ``(n_out, L, Nx)``.
    """
    X = np.array(X0, dtype=float)
    M, Nx = X.shape
    n_out = M if n_out is None else int(n_out)
    obs_steps = [int(i) for i in obs_steps]
    kos = list(range(len(obs_steps))) if kos is None else [int(k) for k in kos]
    _check_smoother_args(dyn, ys, obs_steps, kos, L, M, n_out, method)
    at = dict(zip(obs_steps, range(len(obs_steps))))
    states = np.empty((L, M, Nx))
    parent = np.empty((L, M), dtype=np.intp)  # particle j at state i descends from parent[i, j]
    logw = np.full((L, M), -np.log(M))  # filtering weights (before resampling), for ffbsi
    log_evidence = 0.0
    for i in range(L):
        parent[i] = np.arange(M)
        if i > 0:
            X = dyn.forecast(X, t0 + (i - 1) * dt, dt, rng)
        if i in at:
            j = at[i]
            ll = np.asarray(obs.loglik(np.asarray(ys[j]), X, kos[j]), dtype=float)
            lse = logsumexp(ll)
            log_evidence += float(lse - np.log(M))
            lw = ll - lse
            states[i], logw[i] = X, lw
            idx = _resample(np.exp(lw), M, rng, resampling)
            X = X[idx]
            if method == "genealogy":
                states[i], parent[i] = X, idx
        else:
            states[i] = X
    if method == "genealogy":
        j = rng.choice(M, n_out, replace=False) if n_out < M else np.arange(M)
        out = np.empty((n_out, L, Nx))
        for i in range(L - 1, -1, -1):
            out[:, i] = states[i, j]
            j = parent[i, j]
    else:
        out = _backward(dyn, states, logw, n_out, rng, dt, t0, chunk)
    if info is not None:
        info["unique"] = np.array([len(np.unique(out[:, i, 0])) for i in range(L)])
        info["log_evidence"] = log_evidence
    return out


def _backward(dyn, states: np.ndarray, logw: np.ndarray, n_out: int, rng: np.random.Generator,
              dt: float, t0: float, chunk: int) -> np.ndarray:
    """Forward filtering backward simulation through the filtering particles ``states[i]`` with
    log weights ``logw[i]``: each path's state ``i`` is drawn with probabilities proportional to
    ``w_i^j N(x_{i+1}; M(x_i^j), dt Q)``. The log weights are one float32 product per block of
    paths, in coordinates centred on the particles (small numbers: no loss of precision)."""
    L, M, Nx = states.shape
    Pinv = dyn.noise.inv / dt
    out = np.empty((n_out, L, Nx))
    j = _resample(np.exp(logw[-1]), n_out, rng, "multinomial")
    out[:, -1] = states[-1, j]
    for i in range(L - 2, -1, -1):
        mean = dyn.step(states[i], t0 + i * dt, dt)  # (M, Nx)
        c = mean.mean(axis=0)
        m = mean - c
        # log w_j - 0.5 (x - m_j)' P (x - m_j) = [x, 1] @ [P m_j, log w_j - 0.5 m_j' P m_j] + const(x)
        Pm = m @ Pinv
        B = np.concatenate([Pm, (logw[i] - 0.5 * np.einsum("md,md->m", Pm, m))[:, None]], axis=1)
        B = np.ascontiguousarray(B.T, dtype=np.float32)
        for a in range(0, n_out, chunk):
            x = out[a:a + chunk, i + 1] - c
            lw = np.concatenate([x, np.ones((len(x), 1))], axis=1).astype(np.float32) @ B
            lw -= lw.max(axis=1, keepdims=True)
            np.exp(lw, out=lw)
            cum = np.cumsum(lw, axis=1, out=lw)
            u = (rng.random(len(x)) * cum[:, -1]).astype(np.float32)
            k = np.count_nonzero(cum <= u[:, None], axis=1)
            out[a:a + chunk, i] = states[i, np.minimum(k, M - 1)]
    return out


def w1_per_state(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """The 1-D Wasserstein-1 distance between the samples ``X`` ``(n, ...)`` and ``Y`` ``(m, ...)``
    of each entry (e.g. ``(n, L, Nx)`` gives ``(L, Nx)``): ``∫ |F_X(t) - F_Y(t)| dt`` of the
    empirical distribution functions, exact for any ``n`` and ``m``."""
    X, Y = np.asarray(X, dtype=float), np.asarray(Y, dtype=float)
    if X.shape[1:] != Y.shape[1:]:
        raise ValueError(f"sample shapes differ: {X.shape[1:]} and {Y.shape[1:]}")
    n, m = len(X), len(Y)
    shape = X.shape[1:]
    Z = np.concatenate([X.reshape(n, -1), Y.reshape(m, -1)])
    order = np.argsort(Z, axis=0, kind="stable")
    v = np.take_along_axis(Z, order, axis=0)
    from_x = order < n
    F = np.cumsum(from_x, axis=0)[:-1] / n
    G = np.cumsum(~from_x, axis=0)[:-1] / m
    return (np.abs(F - G) * np.diff(v, axis=0)).sum(axis=0).reshape(shape)


def emd(X: np.ndarray, Y: np.ndarray) -> float:
    """The earth mover's distance between two equal-size sets of samples ``(n, ...)`` with the
    Euclidean cost between flattened samples (the reference's ``emd``): the mean distance of the
    optimal pairing (uniform weights of equal counts: an assignment problem)."""
    X, Y = np.asarray(X, dtype=float), np.asarray(Y, dtype=float)
    if len(X) != len(Y):
        raise ValueError(f"emd needs equal sample counts, got {len(X)} and {len(Y)}")
    C = cdist(X.reshape(len(X), -1), Y.reshape(len(Y), -1))
    r, c = linear_sum_assignment(C)
    return float(C[r, c].mean())


def log_likelihood(X: np.ndarray, ys: Sequence[np.ndarray], obs_steps: Sequence[int], sigma,
                   idx=slice(None)) -> np.ndarray:
    """``log p(y | x)`` ``(n,)`` of each sample ``X`` ``(n, L, Nx)`` for observations
    ``ys[j] = x[obs_steps[j], idx] + N(0, sigma^2)`` (in the units ``X``, ``ys`` and ``sigma``
    are given in; the reference's figures are in its standardised units)."""
    X = np.asarray(X, dtype=float)
    hx = X[:, list(obs_steps)][..., idx]  # (n, J, Ny)
    y = np.asarray(ys, dtype=float).reshape(hx.shape[1:])
    sigma = np.broadcast_to(np.asarray(sigma, dtype=float), y.shape)
    lp = -0.5 * ((hx - y) / sigma) ** 2 - np.log(sigma) - 0.5 * np.log(2 * np.pi)
    return lp.reshape(len(X), -1).sum(axis=1)


def log_transition(dyn, X: np.ndarray, dt: float, t0: float = 0.0) -> np.ndarray:
    """``sum_i log N(x_{i+1}; M(x_i), dt Q)`` ``(n,)`` of each sample ``X`` ``(n, L, Nx)`` (the
    reference's ``log_prior``: the transitions only, no prior of the first state)."""
    X = np.asarray(X, dtype=float)
    n, L, Nx = X.shape
    Pinv = dyn.noise.inv / dt
    logdet = dyn.noise.logdet + Nx * np.log(dt)
    total = np.zeros(n)
    for i in range(L - 1):
        r = X[:, i + 1] - dyn.step(X[:, i], t0 + i * dt, dt)
        total += -0.5 * np.einsum("nd,de,ne->n", r, Pinv, r) - 0.5 * (logdet + Nx * np.log(2 * np.pi))
    return total
