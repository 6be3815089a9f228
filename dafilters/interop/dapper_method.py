"""DAPPER's own methods as rows of a dafilters table: :class:`DapperMethod`.

``DapperMethod(da.EnKF_N(N=20))`` (or ``DapperMethod("EnKF_N", N=20)``) is a
:class:`~dafilters.filters.base.Filter` whose :meth:`~DapperMethod.assimilate` runs DAPPER's
``assimilate`` of that method on the DAPPER model behind a converted HMM
(:func:`~dafilters.interop.dapper_models.from_dapper`), on the same truth and observations as the
other rows. Every estimate DAPPER assesses at an observation time (its ensemble, weighted
ensemble, or mean and covariance) is handed to dafilters' :class:`~dafilters.stats.Stats` as
well, so ``rmse``, ``spread``, ``crps``, the rank histogram, the divergence test and the time
averages are computed by the same code as for every other row:

- DAPPER's ``"f"`` at ``ko`` is the forecast; its ``"a"`` is the analysis, and so is a ``"u"`` at
  ``ko`` before any ``"a"`` (DAPPER's particle filters store their analysis that way); smoothed
  (``"s"``) and in-between (``ko=None``) estimates are not scored;
- an ensemble with weights becomes a :class:`~dafilters.stats.WeightedEnsemble`, a mean with a
  covariance a :class:`~dafilters.stats.Gaussian`.

DAPPER draws its random numbers from its global generator; for the run it takes the state of the
filter's own stream (:func:`~dafilters.hmm.streams`), so a run is reproducible and, where DAPPER
draws the same numbers the same way (``X0.sample`` of a Gaussian with equal variances), starts
from the same ensemble as dafilters' filters. The DAPPER method object, after its run, is
``stats.dapper``; with ``dapper_stats=True`` DAPPER computes its own statistics too
(``stats.dapper.stats``).

Settings: the method's name and its settings that differ from DAPPER's defaults, as literals
(numbers, strings, booleans, lists), so run keys and saved records identify them; the installed
DAPPER version is part of the run key too.
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from ..filters.base import SMALL_NX, Filter, check_inputs
from ..hmm import HMM, streams
from ..stats import Diverged, Gaussian, Stats, WeightedEnsemble
from .arrays import as_observations
from .dapper_models import dapper_rng, import_dapper, to_dapper

__all__ = ["DapperMethod"]

_LITERALS = (type(None), bool, int, float, str)


def _literal(name: str, v: Any) -> Any:
    """``v`` as a JSON-able literal (numpy scalars as Python numbers), or a TypeError."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, (list, tuple)):
        return [_literal(name, x) for x in v]
    if not isinstance(v, _LITERALS):
        raise TypeError(f"DapperMethod: setting {name}={v!r:.60} is not a number, string, boolean or "
                        "list of them; only such settings identify a run and can be saved")
    return v


def _method_class(method: str) -> type:
    """DAPPER's method class: a name in ``dapper.da_methods`` or ``module.ClassName``."""
    da = import_dapper("dapper.da_methods", "dafilters.DapperMethod")
    if "." in method:
        module, _, name = method.rpartition(".")
        cls = getattr(importlib.import_module(module), name, None)
    else:
        cls = getattr(da, method, None)
    if not (isinstance(cls, type) and hasattr(cls, "da_method")):
        known = sorted(n for n, v in vars(da).items() if isinstance(v, type) and hasattr(v, "da_method"))
        raise ValueError(f"DapperMethod: {method!r} is not a DAPPER method (a class made by "
                         f"@da_method); DAPPER's: {', '.join(known)}")
    return cls


def _short_name(cls: type) -> str:
    """``EnKF`` for DAPPER's own methods, ``module.ClassName`` for others."""
    da = import_dapper("dapper.da_methods", "dafilters.DapperMethod")
    return cls.__name__ if getattr(da, cls.__name__, None) is cls else f"{cls.__module__}.{cls.__qualname__}"


def _non_default(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """The settings of ``values`` that differ from the method's defaults, in DAPPER's field order."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        v = values[f.name]
        if default is dataclasses.MISSING or not _same(v, default):
            out[f.name] = v
    return out


def _same(v: Any, default: Any) -> bool:
    """Whether a setting equals its default (``1 == 1.0``; booleans only equal booleans)."""
    if isinstance(v, bool) or isinstance(default, bool):
        return v is default
    try:
        return bool(v == default)
    except Exception:  # e.g. comparing a list with an array
        return False


@cache
def _dapper_version() -> str:
    return str(getattr(import_dapper("dapper", "dafilters.DapperMethod"), "__version__", "unknown"))


@dataclass(init=False)
class DapperMethod(Filter):
    """A method of DAPPER (``dapper.da_methods``) run as a table row, scored by dafilters' statistics.

    Args:
        method: a DAPPER method object (``dapper.da_methods.EnKF("Sqrt", N=20)``), or its name
            (``"EnKF"``, or ``"module.ClassName"`` for a method defined elsewhere).
        settings: the method's settings (with a name), e.g. ``{"upd_a": "Sqrt", "N": 20}``.
        dapper_stats: also compute DAPPER's own statistics (``stats.dapper.stats``, then
            ``stats.dapper.stats.average_in_time()``); off by default, since they double the
            time of a cheap method (``s_per_cycle`` includes them when on). Not a setting of the
            method: its estimates, and so the table's statistics, are the same either way.
        **kwargs: more settings, e.g. ``DapperMethod("EnKF_N", N=20)``.

    Raises:
        ValueError: for an unknown method or settings DAPPER's method does not take.
        TypeError: for a setting that is not a literal.
        MissingExtra: if DAPPER is not installed.
    """

    method: str = ""
    settings: dict = field(default_factory=dict)
    version: str = field(default="", init=False)
    dapper_stats: bool = False

    non_hyper = ("version", "dapper_stats")

    def __init__(self, method: Any = "", settings: dict | None = None, dapper_stats: bool = False,
                 **kwargs: Any):
        values = dict(settings or {})
        if not isinstance(method, str):
            cls = type(method)
            if not hasattr(cls, "da_method") or not dataclasses.is_dataclass(method):
                raise TypeError(f"DapperMethod: expected a DAPPER method (e.g. dapper.da_methods."
                                f"EnKF_N(N=20)) or its name, got {cls.__name__}")
            values = {f.name: getattr(method, f.name) for f in dataclasses.fields(method)} | values
        else:
            cls = _method_class(method)
        values |= kwargs
        if "method" in values:
            raise ValueError("DapperMethod: 'method' cannot be a setting name")
        values = {k: _literal(k, v) for k, v in values.items()}
        try:
            cls(**values)
        except TypeError as err:
            names = ", ".join(f.name for f in dataclasses.fields(cls))
            raise ValueError(f"DapperMethod: DAPPER's {cls.__name__} does not take these settings "
                             f"({err}); its settings: {names}") from None
        self.method = _short_name(cls)
        self.settings = _non_default(cls, values)
        self.version = _dapper_version()
        self.dapper_stats = bool(dapper_stats)

    def config(self) -> Any:
        """A fresh DAPPER method object with these settings."""
        return _method_class(self.method)(**self.settings)

    # -- description ---------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """``{"method": ..., <settings that differ from DAPPER's defaults>}`` (the table columns)."""
        return {"method": self.method, **self.settings}

    @property
    def name(self) -> str:
        """E.g. ``Dapper(EnKF_N, N=20)``."""
        return "Dapper(" + ", ".join([self.method] + [f"{k}={v!r}" for k, v in self.settings.items()]) + ")"

    @property
    def ensemble_size(self) -> int | None:
        N = self.settings.get("N")
        return int(N) if isinstance(N, int) and not isinstance(N, bool) else None

    # -- the run -------------------------------------------------------------------------------
    def assimilate(self, hmm: HMM, xx: np.ndarray, yy, seed: int = 0, progress: bool = False,
                   keep: tuple[str, ...] = (), callback: Callable[[int, Stats], None] | None = None,
                   callback_every: int | None = None) -> Stats:
        """Run DAPPER's method on the DAPPER model behind ``hmm`` (converted by
        :func:`~dafilters.from_dapper`) and return dafilters' :class:`~dafilters.stats.Stats`
        of its estimates. Arguments as :meth:`Filter.assimilate`.

        Raises:
            TypeError: if ``hmm`` was not converted from DAPPER (naming the parts that are not).
        """
        yy = as_observations(yy)
        check_inputs(hmm, xx, yy)
        H = to_dapper(hmm)
        xx = np.asarray(xx, dtype=float)
        tseq = hmm.tseq
        stats = Stats(xx, tseq.kko, tseq.masko, self.ensemble_size, keep)
        nobs = tseq.Ko + 1
        cb_every = callback_every or max(1, nobs // 10)

        def on_analysis(ko: int) -> None:
            if callback is not None and (ko + 1) % cb_every == 0:
                callback(ko, stats)

        xp = self.config()
        recorder = _recorder_class()(xp, H, xx, _dapper_yy(yy), stats, on_analysis, self.dapper_stats)
        xp.stats = recorder
        run = getattr(type(xp).assimilate, "__wrapped__", type(xp).assimilate)  # without DAPPER's Stats
        progbar = import_dapper("dapper.tools.progressbar", "dafilters.DapperMethod")
        quiet, progbar.disable_progbar = progbar.disable_progbar, not progress
        threads = 1 if hmm.Nx <= SMALL_NX else None
        start = time.perf_counter()
        try:
            with threadpool_limits(limits=threads), np.errstate(over="ignore", invalid="ignore"), \
                    dapper_rng(streams(seed)[2]):
                run(xp, H, xx, recorder.yy)
        except Diverged:
            pass
        except (np.linalg.LinAlgError, FloatingPointError) as err:
            stats.diverged_at = recorder.ko
            stats.error = f"{type(err).__name__}: {err}"
        finally:
            progbar.disable_progbar = quiet
        stats.wall_s = time.perf_counter() - start
        stats.s_per_cycle = stats.wall_s / nobs
        stats.dapper = xp
        return stats


def _dapper_yy(yy) -> np.ndarray:
    """Observations as DAPPER indexes them: an array with one entry per observation time."""
    if isinstance(yy, np.ndarray):
        return yy
    out = np.empty(len(yy), dtype=object)
    for ko, y in enumerate(yy):
        out[ko] = np.asarray(y, dtype=float)
    return out


def _estimate(E, w, mu, Cov, full: bool) -> np.ndarray | Gaussian | WeightedEnsemble:
    """What DAPPER assessed, as a dafilters estimate (``full``: keep a full covariance)."""
    if E is not None:
        E = np.asarray(E, dtype=float)
        return E if w is None else WeightedEnsemble(E, np.asarray(w, dtype=float))
    mu = np.asarray(mu, dtype=float)
    if Cov is None:
        P = np.zeros_like(mu)
    elif np.isscalar(Cov):
        P = np.full_like(mu, float(Cov))
    elif hasattr(Cov, "full"):  # DAPPER's CovMat
        P = Cov.full if full else Cov.diag
    else:
        P = np.asarray(Cov, dtype=float)
        P = P if full or P.ndim == 1 else np.diag(P).copy()
    return Gaussian(mu, P)


@cache
def _recorder_class() -> type:
    """A subclass of DAPPER's ``Stats`` that also hands each assessed estimate to ours."""
    dstats = import_dapper("dapper.stats", "dafilters.DapperMethod")

    class Recorder(dstats.Stats):
        def __init__(self, xp, HMM, xx, yy, ours: Stats, on_analysis: Callable[[int], None],
                     own: bool):
            super().__init__(xp, HMM, xx, yy, liveplots=False)
            self.ours, self.on_analysis, self.own = ours, on_analysis, own
            self.ko = 0  # the last observation time assessed
            self.analysed = np.zeros(len(ours.kko), dtype=bool)

        def assess(self, k, ko=None, faus=None, E=None, w=None, mu=None, Cov=None):
            if ko is not None:
                self.ko = ko
                for sub in faus or "au":
                    if sub == "f":
                        fa = "f"
                    elif sub == "a" or (sub == "u" and not self.analysed[ko]):
                        fa = "a"
                    else:  # smoothed, or a "u" after the analysis
                        continue
                    est = _estimate(E, w, mu, Cov, full=f"cov.{fa}" in self.ours.keep)
                    if isinstance(est, np.ndarray) and self.ours.rank_hist is not None \
                            and len(est) != self.ours.N:
                        self.ours.rank_hist = None  # the method changes its ensemble size
                    self.ours.assess(ko, fa, est)  # raises Diverged
                    if fa == "a" and not self.analysed[ko]:
                        self.analysed[ko] = True
                        self.on_analysis(ko)
            if self.own:
                super().assess(k, ko, faus, E=E, w=w, mu=mu, Cov=Cov)

    return Recorder
