r"""Baselines: climatology, optimal interpolation (3D-Var) and the exact Kalman filter.

- :class:`Climatology`: the estimate is always the model's climatological distribution
  :math:`N(\bar x_c, B_c)`, estimated from an independent free run of the model (not the truth).
- :class:`OptInterp`: the mean is propagated by the model; each analysis uses the static gain
  :math:`K = B H^T (H B H^T + R)^{-1}` with :math:`B = s B_c` (``B_scale = s``).
- :class:`KalmanFilter`: exact for linear-Gaussian HMMs (extended KF when the model or the
  observation is nonlinear and provides its Jacobian):

.. math::
    \mu \leftarrow \mathcal M(\mu), \quad P \leftarrow M P M^T + dt\, Q; \qquad
    K = P H^T (H P H^T + R)^{-1}, \quad \mu \leftarrow \mu + K(y - h(\mu)),\quad
    P \leftarrow (I - KH) P.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..hmm import HMM
from ..stats import Gaussian
from .base import Context, Filter

__all__ = ["Climatology", "OptInterp", "KalmanFilter", "free_run_climatology", "kalman_update"]


def free_run_climatology(hmm: HMM, rng: np.random.Generator, members: int = 64,
                         steps: int = 5000, every: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Climatological mean ``(Nx,)`` and covariance ``(Nx, Nx)`` from a free model run.

    ``members`` draws from the prior are run ``steps`` model steps (with model noise); the states of
    the second half, every ``every`` steps, are pooled.
    """
    dyn, dt = hmm.dyn, hmm.tseq.dt
    E = hmm.prior.sample(members, rng)
    pooled = []
    for k in range(steps):
        E = dyn.forecast(E, k * dt, dt, rng)
        if k >= steps // 2 and k % every == 0:
            pooled.append(E)
    X = np.concatenate(pooled)
    if not np.all(np.isfinite(X)):
        raise FloatingPointError("the free model run used for the climatology is not finite")
    return X.mean(axis=0), np.atleast_2d(np.cov(X, rowvar=False))


def kalman_update(mu: np.ndarray, P: np.ndarray, dy: np.ndarray, H: np.ndarray,
                  R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kalman analysis of ``N(mu, P)`` (``(Nx,)``, ``(Nx, Nx)``) given the innovation
    ``dy = y - h(mu)`` ``(Ny,)``, Jacobian ``H`` ``(Ny, Nx)`` and noise ``R`` ``(Ny, Ny)``."""
    PHt = P @ H.T
    K = np.linalg.solve(H @ PHt + R, PHt.T).T
    mu = mu + K @ dy
    P = P - K @ PHt.T
    return mu, 0.5 * (P + P.T)


@dataclass
class Climatology(Filter):
    """Always estimates the climatological distribution (the no-assimilation baseline).

    Args:
        clim_steps: length (model steps) of the free run that estimates the climatology.
    """

    clim_steps: int = 5000
    non_hyper = ("clim_steps",)

    def initialize(self, ctx: Context) -> Gaussian:
        mu, B = free_run_climatology(ctx.hmm, ctx.rng, steps=self.clim_steps)
        return Gaussian(mu, np.diag(B).copy())

    def forecast(self, state, ctx, k0, k1):
        return state

    def analysis(self, state, y, ko, ctx):
        return state


@dataclass
class OptInterp(Filter):
    """Optimal interpolation (3D-Var with a static background covariance).

    Args:
        B_scale: scaling of the climatological covariance used as background covariance.
        clim_steps: length of the free run that estimates the climatology.
    """

    B_scale: float = field(default=0.2, metadata={"space": ("log", 0.01, 1.0)})
    clim_steps: int = 5000
    non_hyper = ("clim_steps",)

    def initialize(self, ctx: Context) -> Gaussian:
        mu, B = free_run_climatology(ctx.hmm, ctx.rng, steps=self.clim_steps)
        ctx.cache["B"] = self.B_scale * B
        return Gaussian(mu, ctx.cache["B"])

    def forecast(self, state, ctx, k0, k1):
        dyn, tt, dt = ctx.hmm.dyn, ctx.hmm.tseq.tt, ctx.hmm.tseq.dt
        x = state.mu[None]
        for k in range(k0, k1):
            x = dyn.step(x, tt[k], dt)
        return Gaussian(x[0], ctx.cache["B"])

    def analysis(self, state, y, ko, ctx):
        obs = ctx.hmm.obs
        H = obs.linear(state.mu, ko)
        R = obs.noise(ko).full
        mu, P = kalman_update(state.mu, state.P, y - obs(state.mu, ko), H, R)
        return Gaussian(mu, P)


@dataclass
class KalmanFilter(Filter):
    """The Kalman filter: exact for linear-Gaussian HMMs (an extended KF otherwise).

    Needs the dynamics' and observation's Jacobians (``Dynamics.linear``, ``Observation.linear``)
    and a prior with a closed-form mean and covariance.
    """

    def initialize(self, ctx: Context) -> Gaussian:
        prior = ctx.hmm.prior
        return Gaussian(prior.mean.copy(), prior.cov.full.copy())

    def forecast(self, state: Gaussian, ctx: Context, k0: int, k1: int) -> Gaussian:
        dyn, tt, dt = ctx.hmm.dyn, ctx.hmm.tseq.tt, ctx.hmm.tseq.dt
        mu, P = state.mu, state.P
        Q = None if dyn.noise is None else dt * dyn.noise.full
        for k in range(k0, k1):
            M = dyn.linear(mu, tt[k], dt)
            mu = dyn.step(mu[None], tt[k], dt)[0]
            P = M @ P @ M.T
            if Q is not None:
                P = P + Q
        return Gaussian(mu, P)

    def analysis(self, state: Gaussian, y: np.ndarray, ko: int, ctx: Context) -> Gaussian:
        obs = ctx.hmm.obs
        H = obs.linear(state.mu, ko)
        mu, P = kalman_update(state.mu, state.P, y - obs(state.mu, ko), H, obs.noise(ko).full)
        return Gaussian(mu, P)
