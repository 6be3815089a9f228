"""The :class:`Filter` base class: one driver loop for every method.

A filter is a dataclass whose fields are its hyper-parameters. It implements a few hooks, and
:meth:`Filter.assimilate` runs them in the same loop for every method::

    state = initialize(ctx)
    for ko, k in enumerate(kko):                 # observation times
        state = forecast(state, ctx, k_prev, k)  # model steps k_prev -> k
        stats.assess(ko, "f", estimate(state))
        state = analysis(state, yy[ko], ko, ctx)  # unless y is empty (skip_empty_analysis)
        stats.assess(ko, "a", estimate(state))

``state`` is whatever the method carries: an ensemble ``(N, Nx)`` for ensemble filters, a
:class:`~dafilters.stats.Gaussian` for the Kalman filter, or a richer object (``estimate`` then
extracts an ensemble or a Gaussian from it). Filters never compute metrics themselves.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from ..gaussian import Covariance
from ..hmm import HMM, streams
from ..interop.arrays import as_observations
from ..stats import Diverged, Gaussian, Stats, WeightedEnsemble
from . import registry

__all__ = ["Filter", "Context", "check_inputs", "check_ensemble_size"]

#: Below this state size, linear algebra runs on one BLAS thread (threads cost more than they save).
SMALL_NX = 2000


@dataclass
class Context:
    """What a filter's hooks may use during one run: the HMM, the filter's random stream, the seed,
    and a scratch ``cache`` for per-run data (a static covariance, a warm-started network)."""

    hmm: HMM
    rng: np.random.Generator
    seed: int
    cache: dict = dataclasses.field(default_factory=dict)


def check_inputs(hmm: HMM, xx: np.ndarray, yy) -> None:
    """Raise a ``ValueError`` naming the problem if ``xx`` or ``yy`` do not fit ``hmm``.

    Checks the truth (shape, finite), the observations (count, shapes ``(Ny(ko),)``, finite),
    and, once at the first observation time, the observation operator and noise
    (:func:`check_observation`). A ``TypeError`` if something is of the wrong kind.
    """
    tseq = hmm.tseq
    xx = np.asarray(xx)
    if xx.dtype.kind not in "fiu":
        raise TypeError(f"truth xx must be numeric, got dtype {xx.dtype}")
    if xx.shape != (tseq.K + 1, hmm.Nx):
        raise ValueError(f"truth xx has shape {xx.shape}, expected (K+1, Nx) = "
                         f"({tseq.K + 1}, {hmm.Nx})")
    finite = np.isfinite(xx).all(axis=1)
    if not finite.all():
        k = int(np.argmin(finite))
        raise ValueError(f"truth xx contains NaN or inf, first at time index k={k} (t={tseq.tt[k]:g})")
    if len(yy) != tseq.Ko + 1:
        raise ValueError(f"yy holds {len(yy)} observations, expected Ko+1 = {tseq.Ko + 1}")
    if isinstance(yy, np.ndarray) and yy.dtype.kind not in "fiu":
        raise TypeError(f"observations yy must be numeric, got dtype {yy.dtype}")
    for ko in range(tseq.Ko + 1):
        y = np.asarray(yy[ko])
        Ny = hmm.obs.Ny(ko)
        if y.shape != (Ny,):
            raise ValueError(f"observation yy[{ko}] has shape {y.shape}, expected ({Ny},)")
        if not np.all(np.isfinite(y)):
            raise ValueError(f"observation yy[{ko}] contains NaN or inf; remove missing values "
                             "from the observation operator's index set instead")
    check_observation(hmm, xx[tseq.kko[0]], 0)


def check_observation(hmm: HMM, x: np.ndarray, ko: int) -> None:
    """Check ``hmm.obs`` at observation time ``ko`` on the state ``x`` ``(Nx,)``: ``h`` maps a
    batch ``(2, Nx)`` to ``(2, Ny(ko))`` and ``noise(ko)`` is a positive-definite
    :class:`~dafilters.gaussian.Covariance` of size ``Ny(ko)`` (a wrong width would otherwise
    broadcast silently through the filters).

    Raises:
        ValueError: naming the operator and the shapes or sizes. TypeError: if ``noise(ko)`` is
            not a :class:`~dafilters.gaussian.Covariance`.
    """
    obs = hmm.obs
    name = type(obs).__name__
    Ny = obs.Ny(ko)
    Hx = np.asarray(obs.h(np.stack([x, x]), ko))
    if Hx.shape != (2, Ny):
        raise ValueError(f"{hmm.name}: observation operator {name}.h maps 2 states (2, Nx) to shape "
                         f"{Hx.shape} at ko={ko}, expected (2, Ny) = (2, {Ny}) since "
                         f"{name}.Ny({ko}) = {Ny}")
    Covariance.check(obs.noise(ko), Ny, f"{hmm.name}: observation noise R = {name}.noise({ko})")


def check_ensemble_size(N: int) -> None:
    """Ensembles need at least 2 members (anomalies and spread are undefined otherwise)."""
    if not isinstance(N, (int, np.integer)) or N < 2:
        raise ValueError(f"ensemble size N must be an integer >= 2, got N={N!r}")


def check_positive(obj: Any, *names: str) -> None:
    """Raise a ``ValueError`` naming the first of the attributes ``names`` of ``obj`` that is not
    a positive number."""
    for name in names:
        value = getattr(obj, name)
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value!r}")


@dataclass
class Filter:
    """Base class of all filters. Subclasses are dataclasses; their fields are hyper-parameters.

    Hooks to implement: :meth:`initialize`, :meth:`analysis`; optionally :meth:`forecast`
    (default: propagate an ensemble with the model and its noise) and :meth:`estimate`.
    """

    #: Hook for learned filters: fields listed here are settings, not table columns.
    non_hyper: ClassVar[tuple[str, ...]] = ()
    #: At an observation time with nothing observed (``y`` of size 0, e.g. a
    #: :class:`~dafilters.multimodal.MultiObs` with no modality present) the analysis is the
    #: forecast and :meth:`analysis` is not called. Filters that keep a history of every
    #: observation time (sliding windows, recurrent encoders) set this to False and see empty ``y``.
    skip_empty_analysis: ClassVar[bool] = True

    # -- hooks ---------------------------------------------------------------------------------
    def initialize(self, ctx: Context) -> Any:
        """The state at time 0 (e.g. an ensemble drawn from the prior)."""
        raise NotImplementedError

    def forecast(self, state: Any, ctx: Context, k0: int, k1: int) -> Any:
        """Advance the state from model step ``k0`` to ``k1``. Default: an ensemble ``(N, Nx)``
        is stepped by the dynamics, with model noise, one step at a time; without model noise,
        by one call of ``dyn.forecast_advance`` where the model has one (its steps bit for bit,
        ``advance_exact``, or to round-off, e.g. Lorenz-63's fused RK4)."""
        dyn, tt, dt = ctx.hmm.dyn, ctx.hmm.tseq.tt, ctx.hmm.tseq.dt
        if dyn.noise is None and k1 - k0 > 1:
            E = dyn.forecast_advance(state, dt, k1 - k0, tt[k0])
            if E is not None:
                return E
        for k in range(k0, k1):
            state = dyn.forecast(state, tt[k], dt, ctx.rng)
        return state

    def analysis(self, state: Any, y: np.ndarray, ko: int, ctx: Context) -> Any:
        """Assimilate observation ``y`` ``(Ny,)`` at observation time ``ko``."""
        raise NotImplementedError

    def estimate(self, state: Any) -> np.ndarray | Gaussian | WeightedEnsemble:
        """What the statistics are computed from: an ensemble ``(N, Nx)``, a Gaussian or a
        weighted ensemble."""
        return state

    @staticmethod
    def load(path: str | os.PathLike, device: str | None = None) -> Filter:
        """Load a trained filter saved with ``save(path)`` (see :mod:`dafilters.filters.learned`);
        only registered learned-filter classes are accepted (:mod:`dafilters.filters.registry`)."""
        return registry.load(path, device=device)

    # -- description ---------------------------------------------------------------------------
    @property
    def ensemble_size(self) -> int | None:
        """``N`` for ensemble filters (sets the rank-histogram size), else ``None``."""
        return getattr(self, "N", None)

    def params(self) -> dict[str, Any]:
        """The hyper-parameters (the table columns)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in self.non_hyper}

    @property
    def name(self) -> str:
        """Class name and the hyper-parameters that differ from the class defaults, e.g.
        ``EnKF(upd_a='Sqrt', N=20, infl=1.02)`` for ``EnKF("Sqrt", N=20, infl=1.02, rot=False)``
        (the variant and the ensemble size, :data:`~dafilters.filters.defaults.ALWAYS_SHOWN`,
        are shown even at their defaults).

        Settings without a default, and any that differ from it, are always shown (full
        precision), so two filters of one class with equal names have equal hyper-parameters
        (see :func:`~dafilters.filters.defaults.same_setting`); ``Climatology()`` has none.
        """
        from .defaults import field_defaults, non_default

        shown = non_default(self.params(), field_defaults(type(self)))
        args = ", ".join(f"{k}={v!r}" for k, v in shown.items())
        return f"{type(self).__name__}({args})"

    # -- the driver ----------------------------------------------------------------------------
    def assimilate(self, hmm: HMM, xx: np.ndarray, yy, seed: int = 0, progress: bool = False,
                   keep: tuple[str, ...] = (), callback: Callable[[int, Stats], None] | None = None,
                   callback_every: int | None = None) -> Stats:
        """Run the filter on a twin experiment and return its :class:`~dafilters.stats.Stats`.

        Args:
            hmm: the model. xx: truth ``(K+1, Nx)``. yy: observations ``(Ko+1, Ny)``.
            seed: seeds the filter's own random stream (the one :func:`~dafilters.hmm.streams`
                derives for filters from the experiment seed).
            progress: show a progress bar over observation cycles.
            keep: extra series to keep in the stats (``"mean"``, ``"cov"``).
            callback: called as ``callback(ko, stats)`` every ``callback_every`` cycles (default:
                a tenth of the run); an exception it raises (e.g. Optuna's ``TrialPruned``) stops
                the run and propagates.

        A run that diverges returns normally with ``stats.diverged`` set. ``yy`` may also be
        DAPPER's ``simulate()`` output (an object array, see
        :func:`~dafilters.interop.arrays.as_observations`).
        """
        yy = as_observations(yy)
        check_inputs(hmm, xx, yy)
        tseq = hmm.tseq
        ctx = Context(hmm=hmm, rng=streams(seed)[2], seed=seed)
        stats = Stats(np.asarray(xx), tseq.kko, tseq.masko, self.ensemble_size, keep)
        nobs = tseq.Ko + 1
        bar = tqdm(total=nobs, desc=self.name, disable=not progress, leave=False, mininterval=0.5)
        every = max(1, nobs // 100)
        cb_every = callback_every or max(1, nobs // 10)
        threads = 1 if hmm.Nx <= SMALL_NX else None
        start = time.perf_counter()
        with threadpool_limits(limits=threads), np.errstate(over="ignore", invalid="ignore"):
            ko = k = 0
            try:
                state = self.initialize(ctx)
                for ko, kobs in enumerate(tseq.kko):
                    state = self.forecast(state, ctx, k, kobs)
                    stats.assess(ko, "f", self.estimate(state))
                    if len(yy[ko]) or not self.skip_empty_analysis:
                        state = self.analysis(state, yy[ko], ko, ctx)
                    stats.assess(ko, "a", self.estimate(state))
                    k = kobs
                    if ko % every == 0:
                        bar.update(min(every, nobs - bar.n))
                    if callback is not None and (ko + 1) % cb_every == 0:
                        callback(ko, stats)
            except Diverged:
                pass
            except (np.linalg.LinAlgError, FloatingPointError) as err:
                stats.diverged_at = ko
                stats.error = f"{type(err).__name__}: {err}"
            finally:
                bar.close()
        stats.wall_s = time.perf_counter() - start
        stats.s_per_cycle = stats.wall_s / nobs
        return stats
