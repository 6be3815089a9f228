r"""Particle filters: the bootstrap filter with regularization, and the auxiliary particle filter.

Weights are kept as normalised log-weights until the last moment, so likelihoods of many
observations (:math:`\log p(y|x) \sim -N_y/2`) never underflow.

- :class:`PartFilt` (bootstrap, sequential importance resampling): propagate the particles with
  the model and its noise, reweight :math:`w_n \propto w_n\, p(y | x_n)`, and when the effective
  sample size :math:`N_{\rm eff} = 1/\sum w_n^2` falls below ``NER * N`` resample and jitter the
  duplicated particles with :math:`N(0, (\mathrm{reg}\, h)^2 C_w)`, :math:`h = N^{-1/(N_x+4)}`
  (Scott's rule) and :math:`C_w` the weighted ensemble covariance (as in DAPPER), drawn through
  an ``(Nx, Nx)`` factor of :math:`C_w` (:func:`noise_factor`), so a resampling costs
  :math:`O(N N_x^2)`, not :math:`O(N^2 N_x)`.
- :class:`APF` (Pitt & Shephard 1999): first-stage weights :math:`\lambda_n \propto w_n\, p(y|\mu_n)`
  from a point prediction :math:`\mu_n` (the noise-free forecast of particle :math:`n`), resample
  by :math:`\lambda`, propagate the chosen ancestors with noise, second-stage weights
  :math:`w_n \propto p(y|x_n)/p(y|\mu_{a_n})`.

References: Gordon, Salmond & Smith (1993); Pitt & Shephard (1999), "Filtering via simulation:
auxiliary particle filters", JASA 94; Doucet, de Freitas & Gordon (2001), ch. 12 (regularization).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..hmm import Dynamics
from ..stats import WeightedEnsemble
from .base import Context, Filter, check_ensemble_size

__all__ = [
    "PartFilt", "APF", "RESAMPLERS", "log_weights", "normalise_log", "effective_size", "resample",
    "weighted_cov_sqrt", "bandwidth", "noise_factor", "jitter",
]


def log_weights(w: np.ndarray) -> np.ndarray:
    """``log w`` with ``log 0 = -inf`` (no warning): zero weights stay zero after reweighting."""
    with np.errstate(divide="ignore"):
        return np.log(w)


def normalise_log(logw: np.ndarray) -> np.ndarray:
    """Normalised weights ``(N,)`` from unnormalised log-weights (shifted by their maximum)."""
    w = np.exp(logw - np.max(logw))
    return w / w.sum()


def effective_size(w: np.ndarray) -> float:
    """Effective sample size :math:`1/\\sum_n w_n^2` of normalised weights."""
    return float(1.0 / (w @ w))


def resample(w: np.ndarray, kind: str, rng: np.random.Generator, N: int | None = None) -> np.ndarray:
    """Sorted ancestor indices ``(N,)`` drawn from weights ``w``.

    ``"Systematic"``: one uniform shift of a regular grid; ``"Stratified"``: one uniform per
    stratum; ``"Multinomial"``: independent draws. All are unbiased (each index is drawn
    ``N w_n`` times in expectation); the first two have lower variance.
    """
    N = len(w) if N is None else N
    if kind == "Systematic":
        u = (rng.random() + np.arange(N)) / N
    elif kind == "Stratified":
        u = (rng.random(N) + np.arange(N)) / N
    elif kind == "Multinomial":
        u = np.sort(rng.random(N))
    else:
        raise ValueError(f"unknown resampling {kind!r}; choose one of {RESAMPLERS}")
    cdf = np.cumsum(w)
    cdf[-1] = 1.0
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(w) - 1)


RESAMPLERS = ("Systematic", "Stratified", "Multinomial")


def weighted_cov_sqrt(E: np.ndarray, w: np.ndarray) -> np.ndarray:
    r"""``C12`` ``(N, Nx)`` with :math:`C_{12}^T C_{12} = C_w`, the weighted covariance with the
    reliability-weights correction :math:`1/(1-\sum w^2)`; equal weights if ``w`` has collapsed."""
    if 1 - w.max() < 1e-10:
        w = np.full(len(w), 1 / len(w))
    A = E - w @ E
    return np.sqrt(w / (1 - w @ w))[:, None] * A


def bandwidth(N: int, Nx: int) -> float:
    """Scott's rule-of-thumb kernel bandwidth :math:`N^{-1/(N_x+4)}`."""
    return N ** (-1.0 / (Nx + 4))


def noise_factor(C12: np.ndarray) -> np.ndarray:
    r"""A factor ``F`` ``(min(N, Nx), Nx)`` with :math:`F^T F = C_{12}^T C_{12}`: the triangular
    ``R`` of the thin QR decomposition :math:`C_{12} = Q R` when ``N > Nx``, else ``C12`` itself.

    Then :math:`z F` with :math:`z \sim N(0, I)` has the distribution of :math:`z' C_{12}` with
    :math:`z' \sim N(0, I_N)`, namely :math:`N(0, C_{12}^T C_{12})`, from ``Nx`` normal draws per
    particle instead of ``N`` (``O(N Nx^2)`` for the factor, ``O(Nx^2)`` per jittered particle)."""
    if C12.shape[0] > C12.shape[1]:
        return np.linalg.qr(C12, mode="r")
    return C12


def jitter(E: np.ndarray, idx: np.ndarray, C12: np.ndarray, rng: np.random.Generator,
           duplicates_only: bool = True, reduce: bool = True) -> np.ndarray:
    r"""Resampled particles ``E[idx]`` plus Gaussian noise :math:`N(0, C_{12}^T C_{12})`, added
    to the duplicated particles only (default) or to all.

    The noise is drawn as ``z @ noise_factor(C12)`` (``reduce=True``, ``O(N Nx)`` draws in all) or
    as ``z @ C12`` with ``z ~ N(0, I_N)`` per particle (``reduce=False``: the same distribution
    from ``O(N^2)`` draws, the form used before; kept for tests and benchmarks)."""
    E = E[idx]
    mask = np.ones(len(idx), bool)
    if duplicates_only:
        mask = (idx == np.roll(idx, 1)) | (idx == np.roll(idx, -1))
    n = int(mask.sum())
    if n:
        F = noise_factor(C12) if reduce else C12
        E[mask] += rng.standard_normal((n, F.shape[0])) @ F
    return E


class _Particles(Filter):
    """What the particle filters share: validation, initial particles, the weighted forecast."""

    def _check(self) -> None:
        check_ensemble_size(self.N)
        if self.resampl not in RESAMPLERS:
            raise ValueError(f"unknown resampling resampl={self.resampl!r}; choose one of {RESAMPLERS}")
        if self.reg < 0:
            raise ValueError(f"reg must be >= 0, got {self.reg}")

    def initialize(self, ctx: Context) -> WeightedEnsemble:
        return WeightedEnsemble(ctx.hmm.prior.sample(self.N, ctx.rng), np.full(self.N, 1 / self.N))

    def forecast(self, state: WeightedEnsemble, ctx: Context, k0: int, k1: int) -> WeightedEnsemble:
        """Propagate the particles with the model and its noise; the weights are unchanged."""
        return WeightedEnsemble(super().forecast(state.E, ctx, k0, k1), state.w)


@dataclass
class PartFilt(_Particles):
    """Bootstrap particle filter with resampling triggered by the effective sample size.

    Args:
        N: number of particles. NER: resample when ``N_eff < NER * N`` (1: every cycle).
        reg: regularization (jitter) scale, in units of the Scott bandwidth.
        resampl: ``'Systematic'``, ``'Stratified'`` or ``'Multinomial'``.
        nuj: jitter only the duplicated particles (``True``) or all of them.
    """

    N: int = 100
    NER: float = field(default=1.0, metadata={"space": ("lin", 0.05, 1.0)})
    reg: float = field(default=0.0, metadata={"space": ("lin", 0.0, 4.0)})
    resampl: str = "Systematic"
    nuj: bool = True

    def __post_init__(self):
        self._check()
        if not 0 < self.NER <= 1:
            raise ValueError(f"NER must be in (0, 1], got {self.NER}")

    def analysis(self, state: WeightedEnsemble, y: np.ndarray, ko: int, ctx: Context) -> WeightedEnsemble:
        E = state.E
        w = normalise_log(log_weights(state.w) + ctx.hmm.obs.loglik(y, E, ko))
        if effective_size(w) < self.NER * self.N:
            C12 = self.reg * bandwidth(self.N, E.shape[1]) * weighted_cov_sqrt(E, w)
            idx = resample(w, self.resampl, ctx.rng)
            E = jitter(E, idx, C12, ctx.rng, self.nuj)
            w = np.full(self.N, 1 / self.N)
        return WeightedEnsemble(E, w)


@dataclass
class APF(_Particles):
    """Auxiliary particle filter (Pitt & Shephard 1999).

    The point prediction of each particle is its noise-free model forecast; resampling uses the
    first-stage weights every cycle, and ``reg`` jitters the resampled ancestors (needed when the
    model noise is small or absent, as in the bootstrap filter).

    Args:
        N: number of particles. reg: jitter scale (Scott bandwidth units) of resampled ancestors.
        resampl: resampling scheme.
    """

    N: int = 100
    reg: float = field(default=0.0, metadata={"space": ("lin", 0.0, 4.0)})
    resampl: str = "Systematic"

    def __post_init__(self):
        self._check()

    def forecast(self, state: WeightedEnsemble, ctx: Context, k0: int, k1: int) -> WeightedEnsemble:
        """Keep the particles at ``k0`` (the analysis needs them); the forecast estimate is the
        bootstrap forecast."""
        ctx.cache["apf"] = (state, k0, k1)
        return super().forecast(state, ctx, k0, k1)

    @staticmethod
    def point_predictions(state: WeightedEnsemble, prev: WeightedEnsemble, k0: int, k1: int,
                          ctx: Context) -> np.ndarray:
        """Noise-free forecasts ``(N, Nx)`` of the particles ``prev`` from step ``k0`` to ``k1``.
        Without model noise (and with the stock ``Dynamics.forecast``: step, then noise) they are
        the bootstrap forecast ``state`` (the same steps), which is returned instead of
        integrating the particles a second time."""
        dyn, tt, dt = ctx.hmm.dyn, ctx.hmm.tseq.tt, ctx.hmm.tseq.dt
        if dyn.noise is None and type(dyn).forecast is Dynamics.forecast:
            return state.E
        mu = prev.E
        for k in range(k0, k1):
            mu = dyn.step(mu, tt[k], dt)
        return mu

    def analysis(self, state: WeightedEnsemble, y: np.ndarray, ko: int, ctx: Context) -> WeightedEnsemble:
        prev, k0, k1 = ctx.cache.pop("apf")
        hmm = ctx.hmm
        mu = self.point_predictions(state, prev, k0, k1, ctx)
        first = hmm.obs.loglik(y, mu, ko)
        lam = normalise_log(log_weights(prev.w) + first)
        idx = resample(lam, self.resampl, ctx.rng)
        C12 = self.reg * bandwidth(self.N, mu.shape[1]) * weighted_cov_sqrt(prev.E, prev.w)
        E = Filter.forecast(self, jitter(prev.E, idx, C12, ctx.rng), ctx, k0, k1)
        w = normalise_log(hmm.obs.loglik(y, E, ko) - first[idx])
        return WeightedEnsemble(E, w)
