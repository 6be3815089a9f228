r"""Statistics of a filter run: the same code for every method.

At each observation time ``ko`` the driver hands the forecast (``f``) and analysis (``a``) estimate
to :meth:`Stats.assess`. For an ensemble ``E`` ``(N, Nx)`` with mean :math:`\bar x` and truth ``x``:

.. math::
    \mathrm{rmse} = \sqrt{\tfrac{1}{N_x}\sum_i (\bar x_i - x_i)^2}, \qquad
    \mathrm{spread} = \sqrt{\tfrac{1}{N_x}\sum_i \hat\sigma_i^2}\ \ (\text{ddof}=1),

    \mathrm{crps} = \tfrac{1}{N_x}\sum_i \Big[\tfrac1N\sum_n |E_{ni} - x_i|
        - \tfrac{1}{2N^2}\sum_{n,m} |E_{ni} - E_{mi}|\Big],

computed from the sorted members in ``O(N log N)`` per component, and the rank of the truth among
the members (rank histogram, ``N + 1`` bins). A Gaussian estimate ``(mu, P)`` uses the closed-form
CRPS of a normal distribution. Time averages skip the burn-in and carry a standard error corrected
for autocorrelation by an AR(1) fit (see :func:`mean_with_ci`). A non-finite or exploding RMSE stops
the run with :class:`Diverged`.

A run that ends but has *lost track* of the truth is told by :meth:`Stats.lost_track`: over the
``n`` scored analysis cycles (``masko``), with time means :math:`\bar r` of rmse.a and
:math:`\bar s` of spread.a and the climatological spread of the truth over those times
:math:`\sigma_c = \sqrt{\tfrac{1}{N_x}\sum_i \mathrm{Var}_t(x_{t,i})}`, the run is lost when

.. math::
    n \ge n_s \text{ and } \bar r > c_s\, \bar s
    \qquad\text{or}\qquad
    n \ge n_c \text{ and } \bar r > c_c\, \sigma_c \text{ and not } \bar r \le c_e\, \bar s

(the error far above the filter's own spread, or close to climatology without a spread that owns
up to it); a filter without spread (:math:`\bar s` zero or NaN) is judged by the second test
only. The constants: :data:`LOST_SPREAD_RATIO` :math:`c_s`, :data:`LOST_CLIM_RATIO` :math:`c_c`,
:data:`LOST_EXCUSE_RATIO` :math:`c_e`, :data:`LOST_MIN_CYCLES` :math:`n_s`,
:data:`LOST_MIN_CYCLES_CLIM` :math:`n_c`. The test changes no average.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.special import erf

__all__ = [
    "Gaussian", "WeightedEnsemble", "weighted_metrics", "Diverged", "Stats", "ensemble_metrics",
    "gaussian_metrics", "mean_with_ci",
    "METRICS", "agrees", "climatological_std", "LOST_SPREAD_RATIO", "LOST_CLIM_RATIO",
    "LOST_EXCUSE_RATIO", "LOST_MIN_CYCLES", "LOST_MIN_CYCLES_CLIM",
]

#: Per-cycle metrics, each stored for the forecast (``.f``) and analysis (``.a``).
METRICS = ("rmse", "spread", "crps")

# The lost-track test (:meth:`Stats.lost_track`); the measured figures behind these constants are
# in docs/statistics.md ("Lost track").
#: Lost when the mean analysis rmse exceeds this many times the mean analysis spread.
LOST_SPREAD_RATIO = 4.0
#: Lost when the mean analysis rmse exceeds this fraction of the truth's climatological std ...
LOST_CLIM_RATIO = 0.8
#: ... unless the mean analysis spread is at least 1 / this of the mean rmse (it owns up to it).
LOST_EXCUSE_RATIO = 2.0
#: The spread test needs at least this many scored analysis cycles ...
LOST_MIN_CYCLES = 20
#: ... the climatology test at least this many (a short window underestimates the climatology).
LOST_MIN_CYCLES_CLIM = 100


@dataclass
class Gaussian:
    """A Gaussian estimate ``N(mu, P)``: ``mu`` ``(Nx,)``, ``P`` ``(Nx, Nx)`` or variances ``(Nx,)``."""

    mu: np.ndarray
    P: np.ndarray

    @property
    def var(self) -> np.ndarray:
        return self.P if self.P.ndim == 1 else np.diag(self.P)


@dataclass
class WeightedEnsemble:
    """A weighted ensemble (particle filters): members ``E`` ``(N, Nx)``, weights ``w`` ``(N,)``
    summing to one."""

    E: np.ndarray
    w: np.ndarray


class Diverged(ArithmeticError):
    """Raised when a run's error becomes non-finite or explodes."""


@lru_cache(maxsize=64)
def _crps_weights(N: int) -> np.ndarray:
    """``(2n - N - 1) / N^2``, ``n = 1..N``: the pairwise term of the CRPS from sorted members."""
    return (2 * np.arange(1, N + 1) - N - 1) / N**2


def ensemble_metrics(E: np.ndarray, x: np.ndarray) -> tuple[float, float, float, np.ndarray]:
    """RMSE, spread and CRPS of an ensemble ``E`` ``(N, Nx)`` against the truth ``x`` ``(Nx,)``,
    and the rank of ``x_i`` among the members for each component (``(Nx,)``, values ``0..N``)."""
    N, Nx = E.shape  # (ufuncs called directly: at small sizes the wrappers cost more than the sums)
    add = np.add.reduce
    mu = add(E, 0) / N
    err = mu - x
    A = E - mu
    Es = np.sort(E, axis=0)
    crps = (add(np.abs(E - x), None) / N - add(_crps_weights(N) @ Es)) / Nx
    return (math.sqrt(err @ err / Nx), math.sqrt(np.vdot(A, A) / ((N - 1) * Nx)), float(crps),
            add(Es < x, 0, dtype=np.intp))


def weighted_metrics(E: np.ndarray, w: np.ndarray, x: np.ndarray) -> tuple[float, float, float]:
    r"""RMSE of the weighted mean, spread (RMS of the weighted standard deviations, with the
    reliability-weights correction :math:`1/(1 - \sum w^2)`) and CRPS of the weighted ensemble:

    .. math::
        \mathrm{crps}_i = \sum_n w_n |E_{ni} - x_i|
            - \sum_n w_n E_{(n)i}\Big(\sum_{m<n} w_{(m)} - \sum_{m>n} w_{(m)}\Big)

    (members sorted per component), which reduces to the unweighted estimator for equal weights.
    """
    Nx = E.shape[1]
    mu = w @ E
    err = mu - x
    A = E - mu
    ub = 1 / max(1 - w @ w, 1e-12)
    spread = np.sqrt(ub * (w @ (A * A)).sum() / Nx)
    order = np.argsort(E, axis=0)
    Es = np.take_along_axis(E, order, axis=0)
    ws = w[order]  # (N, Nx) weights in sorted order
    below = np.cumsum(ws, axis=0) - ws
    above = 1 - below - ws
    crps = (w @ np.abs(E - x)).sum() - (ws * Es * (below - above)).sum()
    return float(np.sqrt(err @ err / Nx)), float(spread), float(crps / Nx)


_SQRT_PI = np.sqrt(np.pi)
_SQRT2 = np.sqrt(2.0)


def gaussian_metrics(mu: np.ndarray, var: np.ndarray, x: np.ndarray) -> tuple[float, float, float]:
    r"""RMSE, spread and CRPS of ``N(mu, diag(var))`` against ``x`` (all ``(Nx,)``).

    CRPS of :math:`N(\mu, \sigma^2)` at ``x``: :math:`\sigma[z(2\Phi(z) - 1) + 2\varphi(z) -
    1/\sqrt\pi]`, :math:`z = (x - \mu)/\sigma`, averaged over components.
    """
    err = mu - x
    rmse = np.sqrt(np.mean(err * err))
    spread = np.sqrt(np.mean(var))
    sig = np.sqrt(np.maximum(var, 1e-300))
    z = -err / sig
    crps = sig * (z * erf(z / _SQRT2) + 2 * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi) - 1 / _SQRT_PI)
    return float(rmse), float(spread), float(np.mean(crps))


def ar1_coefficient(x: np.ndarray, nlags: int = 4) -> float:
    """Lag-one autocorrelation of an AR(1) process fitted to the autocovariances of ``x``.

    The fit is the geometric mean of the ratios ``acov[l] / acov[l-1]``, ``l = 1..nlags``, cut at the
    first non-positive autocovariance.
    """
    n = len(x)
    d = x - x.mean()
    acov = np.array([d[: n - lag] @ d[lag:] / (n - lag) for lag in range(min(nlags, n - 1) + 1)])
    nonpos = np.flatnonzero(acov <= 0)
    acov = acov[: nonpos[0]] if len(nonpos) else acov
    if len(acov) < 2:
        return 0.0
    return float(np.exp(np.mean(np.log(acov[1:] / acov[:-1]))))


def mean_with_ci(x: np.ndarray) -> tuple[float, float]:
    r"""Mean of a time series and its standard error corrected for autocorrelation.

    For an AR(1) series with lag-one correlation ``a`` (from :func:`ar1_coefficient`),

    .. math::
        \mathrm{Var}(\bar x) = \frac{\gamma_0}{n}\Big[1 + \frac2n \sum_{k=1}^{n-1}(n-k)a^k\Big]
        = \frac{\gamma_0}{n}\Big[1 + \frac2n\,\frac{(n-1)a - na^2 + a^{n+1}}{(1-a)^2}\Big].

    Returns ``(mean, ci)`` with ``ci`` one standard error (the ``±`` of the tables); ``ci`` is NaN
    for fewer than 6 points.
    """
    x = np.asarray(x, dtype=float)
    n = len(x)
    mu = float(np.mean(x)) if n else np.nan
    if n <= 5 or not np.isfinite(mu):
        return mu, np.nan
    gamma0 = float(np.var(x))
    if gamma0 <= 1e-300:
        return mu, 0.0
    a = min(ar1_coefficient(x), 1 - 1e-9)
    return mu, float(np.sqrt(gamma0 / n * ar1_variance_factor(a, n)))


def ar1_variance_factor(a: float, n: int) -> float:
    r"""The factor :math:`1 + \frac2n \sum_{k=1}^{n-1}(n-k)a^k` by which lag-one correlation ``a``
    multiplies the variance of a mean of ``n`` points (1 for ``a = 0``, ``n`` as ``a -> 1``).

    The closed form (see :func:`mean_with_ci`) cancels catastrophically as ``a -> 1`` (it can
    turn negative), so there the series is summed."""
    if 1 - a < 1e-3:
        k = np.arange(1, n)
        c = float(np.sum((n - k) * a**k))
    else:
        c = ((n - 1) * a - n * a**2 + a ** (n + 1)) / (1 - a) ** 2
    return 1 + 2 / n * c


def climatological_std(X: np.ndarray) -> float:
    r"""The climatological spread of a trajectory ``X`` ``(n, Nx)``: the RMS over the variables of
    each one's standard deviation around its time mean,

    .. math::
        \sigma_c = \sqrt{\frac{1}{N_x}\sum_i \frac1n\sum_t (X_{ti} - \bar X_i)^2},

    the RMS error (over times and variables) of the best constant estimate, the time mean known
    in hindsight."""
    X = np.asarray(X, dtype=float)
    if len(X) == 0:
        return np.nan
    return float(np.sqrt(np.mean(X.var(axis=0))))


class Stats:
    """Per-cycle statistics of one run, and their time averages.

    Args:
        xx: the truth ``(K+1, Nx)``.
        kko: observation steps ``(Ko+1,)``; ``masko``: which of them enter the time averages.
        N: ensemble size (for the rank histogram), or ``None`` for Gaussian (non-ensemble) filters.
        keep: extra series to keep: ``"mean"`` (``(Ko+1, Nx)`` means) and/or ``"cov"``
            (``(Ko+1, Nx, Nx)`` covariances, small ``Nx`` only).
        blowup: an RMSE above ``blowup * (rms(xx) + 1)`` counts as divergence.
    """

    def __init__(self, xx: np.ndarray, kko: np.ndarray, masko: np.ndarray, N: int | None = None,
                 keep: tuple[str, ...] = (), blowup: float = 100.0):
        self.xx, self.kko, self.masko, self.N = xx, kko, masko, N
        nobs = len(kko)
        self.series = {f"{m}.{fa}": np.full(nobs, np.nan) for m in METRICS for fa in "fa"}
        self._rows = {fa: tuple(self.series[f"{m}.{fa}"] for m in METRICS) for fa in "fa"}
        self.rank_hist = {fa: np.zeros(N + 1, dtype=np.int64) for fa in "fa"} if N else None
        self.keep = {}
        for what in keep:
            if what not in ("mean", "cov"):
                raise ValueError(f"unknown series to keep: {what!r} (use 'mean' or 'cov')")
            shape = (nobs, xx.shape[1]) if what == "mean" else (nobs, xx.shape[1], xx.shape[1])
            for fa in "fa":
                self.keep[f"{what}.{fa}"] = np.full(shape, np.nan)
        self.threshold = blowup * (np.sqrt(np.mean(xx * xx)) + 1)
        self.diverged_at: int | None = None
        self.error: str | None = None
        self.wall_s = self.s_per_cycle = np.nan

    def assess(self, ko: int, fa: str, estimate: np.ndarray | Gaussian) -> None:
        """Record the metrics of an ensemble ``(N, Nx)`` or :class:`Gaussian` at time ``ko``."""
        x = self.xx[self.kko[ko]]
        if isinstance(estimate, Gaussian):
            rmse, spread, crps = gaussian_metrics(estimate.mu, estimate.var, x)
        elif isinstance(estimate, WeightedEnsemble):
            rmse, spread, crps = weighted_metrics(estimate.E, estimate.w, x)
        else:
            rmse, spread, crps, ranks = ensemble_metrics(estimate, x)
            if self.rank_hist is not None and self.masko[ko] and math.isfinite(rmse):
                self.rank_hist[fa] += np.bincount(ranks, minlength=self.N + 1)
        r, s, c = self._rows[fa]
        r[ko], s[ko], c[ko] = rmse, spread, crps
        if self.keep:
            self._keep(ko, fa, estimate)
        if not (rmse < self.threshold):  # also catches NaN
            self.diverged_at = ko
            self.error = f"diverged at ko={ko} ({fa}): rmse={rmse:.3g}"
            raise Diverged(self.error)

    def _keep(self, ko: int, fa: str, estimate) -> None:
        if isinstance(estimate, Gaussian):
            mu = estimate.mu
            P = estimate.P if estimate.P.ndim == 2 else np.diag(estimate.P)
        elif isinstance(estimate, WeightedEnsemble):
            mu = estimate.w @ estimate.E
            A = estimate.E - mu
            P = (A.T * estimate.w) @ A / max(1 - estimate.w @ estimate.w, 1e-12)
        else:
            mu = estimate.mean(axis=0)
            P = np.cov(estimate, rowvar=False, ddof=1) if f"cov.{fa}" in self.keep else None
        if f"mean.{fa}" in self.keep:
            self.keep[f"mean.{fa}"][ko] = mu
        if f"cov.{fa}" in self.keep:
            self.keep[f"cov.{fa}"][ko] = P

    @staticmethod
    def metric_names() -> list[str]:
        """The per-cycle series: ``["rmse.f", "rmse.a", "spread.f", ...]``."""
        return [f"{m}.{fa}" for m in METRICS for fa in "fa"]

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None

    def averages(self) -> dict[str, float]:
        """Time averages after burn-in: ``{"rmse.a": .., "rmse.a.ci": .., ...}``.

        A diverged run has NaN averages (it is recorded as diverged, not averaged).
        """
        out: dict[str, float] = {}
        for name, series in self.series.items():
            if self.diverged:
                mu, ci = np.nan, np.nan
            else:
                mu, ci = mean_with_ci(series[self.masko])
            out[name], out[name + ".ci"] = mu, ci
        return out

    def tracking(self) -> dict[str, float]:
        r"""The numbers of the lost-track test (see :meth:`lost_track`), over the scored cycles:

        - ``rmse_spread_ratio.a`` :math:`= \bar r / \bar s` (mean rmse.a over mean spread.a;
          NaN when the estimate has no spread, :math:`\bar s` zero or NaN);
        - ``rmse_clim_ratio.a`` :math:`= \bar r / \sigma_c`, with :math:`\sigma_c` =
          ``clim_std`` (:func:`climatological_std` of the truth at the scored observation times;
          NaN when the truth is constant there);
        - ``n_scored``: the number of scored analysis cycles.

        The ratios and ``clim_std`` are NaN for a diverged run.
        """
        n = int(np.count_nonzero(self.masko))
        if self.diverged:
            return {"rmse_spread_ratio.a": np.nan, "rmse_clim_ratio.a": np.nan, "clim_std": np.nan,
                    "n_scored": n}
        r = float(np.mean(self.series["rmse.a"][self.masko]))
        s = float(np.mean(self.series["spread.a"][self.masko]))
        clim = climatological_std(self.xx[self.kko[self.masko]])
        return {"rmse_spread_ratio.a": r / s if 0 < s < np.inf else np.nan,
                "rmse_clim_ratio.a": r / clim if clim > 0 else np.nan,
                "clim_std": clim, "n_scored": n}

    def lost_track(self) -> str | None:
        r"""Why the run lost track of the truth, or ``None`` if it did not (or cannot be judged).

        With :math:`q_s` = ``rmse_spread_ratio.a``, :math:`q_c` = ``rmse_clim_ratio.a`` and ``n``
        scored analysis cycles (see :meth:`tracking`), the run is lost when

        - ``n >=`` :data:`LOST_MIN_CYCLES` and :math:`q_s >` :data:`LOST_SPREAD_RATIO` (the error
          stays far above the filter's own spread), or
        - ``n >=`` :data:`LOST_MIN_CYCLES_CLIM` and :math:`q_c >` :data:`LOST_CLIM_RATIO` (the
          error is close to that of a constant guess) and not :math:`q_s \le`
          :data:`LOST_EXCUSE_RATIO` (a filter whose spread owns up to its error, such as the
          exact Kalman filter with uninformative observations, or ``Climatology``, is not lost).

        A NaN :math:`q_s` (no spread) never meets the first test and never excuses; a NaN
        :math:`q_c` (constant truth) never meets the second. A diverged run is not judged.
        """
        t = self.tracking()
        n, qs, qc = t["n_scored"], t["rmse_spread_ratio.a"], t["rmse_clim_ratio.a"]
        if self.diverged:
            return None
        if n >= LOST_MIN_CYCLES and qs > LOST_SPREAD_RATIO:
            return f"lost track: rmse.a = {qs:.3g} x spread.a (> {LOST_SPREAD_RATIO:g})"
        if n >= LOST_MIN_CYCLES_CLIM and qc > LOST_CLIM_RATIO and not qs <= LOST_EXCUSE_RATIO:
            spread = "no spread" if np.isnan(qs) else f"rmse.a = {qs:.3g} x spread.a"
            return (f"lost track: rmse.a = {qc:.3g} x the truth's climatological std "
                    f"(> {LOST_CLIM_RATIO:g}), {spread}")
        return None


def agrees(mu: float, ci: float, ref: float, ref_ci: float, sigmas: float = 2.0) -> bool:
    """Whether two time averages ``mu ± ci`` and ``ref ± ref_ci`` (standard errors) agree within
    ``sigmas`` combined standard errors: ``|mu - ref| <= sigmas * sqrt(ci^2 + ref_ci^2)``."""
    return bool(abs(mu - ref) <= sigmas * np.hypot(ci, ref_ci))
