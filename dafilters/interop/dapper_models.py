"""DAPPER models as dafilters HMMs: :func:`from_dapper` and the wrappers it builds.

``from_dapper(HMM)`` turns a ``dapper.mods`` ``HiddenMarkovModel`` into a dafilters
:class:`~dafilters.hmm.HMM` whose parts call DAPPER's own code:

================  =========================================================================
DAPPER            dafilters
================  =========================================================================
``HMM.Dyn``       :class:`DapperDynamics`: ``step(E, t, dt) = Dyn.model(E, t, dt)``, the model
                  noise ``Dyn.noise.C`` as a (semi-definite) ``Covariance`` per unit time,
                  ``linear`` where DAPPER has one.
``HMM.Obs``       :class:`DapperObservation`: ``Obs(ko)`` (constant or time-dependent):
                  ``Ny(ko) = Obs(ko).M``, ``h(E, ko) = Obs(ko).model(E)``,
                  ``noise(ko) = Obs(ko).noise.C``, ``linear``, and ``locations`` for direct
                  (partial identity) observations.
``HMM.X0``        :class:`DapperPrior`: drawn by DAPPER's own ``X0.sample`` from the filter's
                  random stream (any DAPPER ``RV``: Gaussian, from a file, from a function).
``HMM.tseq``      :class:`~dafilters.hmm.Chronology` ``(dt, dko, Ko, BurnIn)``: the same steps
                  ``kko = dko (1, ..., Ko+1)`` (no observation at ``t = 0`` in both).
================  =========================================================================

Both libraries step the model with ``model(x, t_{k-1}, dt)`` and add ``sqrt(dt) N(0, Q)``, so a
DAPPER truth ``xx`` and observations ``yy`` (its ``simulate()`` output, accepted as it is) feed
dafilters' filters directly.

Localization: where DAPPER's observation operator carries an ``nd_Id_localization`` localizer, its
grid (``shape``, ``periodic``) gives ``Dynamics.coords``/``domain`` (grid indices, as DAPPER
measures distances, so ``loc_rad`` means the same) and its ``obs_inds`` the observation
locations; without one, the state is a periodic ring and direct observations sit at the
variables they observe. Other localizers are not mapped (``locations`` then raises).

Identity: each part is identified by the content of its DAPPER object
(:func:`~dafilters.interop.dapper_identity.describe`: functions by code, captured values and the
module constants they read; noise and prior covariances by value), never by a name.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..gaussian import Covariance
from ..hmm import HMM, Chronology, Dynamics, Observation, Prior
from .dapper_identity import describe

__all__ = ["from_dapper", "to_dapper", "DapperDynamics", "DapperObservation", "DapperPrior",
           "dapper_rng", "import_dapper"]


def import_dapper(module: str = "dapper", needed_by: str = "dafilters.from_dapper"):
    """Import ``module`` of DAPPER, or raise :class:`~dafilters.extras.MissingExtra` naming the
    ``dapper`` extra."""
    from ..extras import import_extra

    return import_extra(module, "dapper", needed_by)


@contextlib.contextmanager
def dapper_rng(rng: np.random.Generator) -> Iterator[None]:
    """Run DAPPER's code on the random stream ``rng``: DAPPER's global generator
    (``dapper.tools.seeding.rng``) takes the state of ``rng``, and ``rng`` takes back the state
    it has at the end (as if ``rng`` had made the draws); DAPPER's own state is restored after."""
    seeding = import_dapper("dapper.tools.seeding")
    theirs = seeding.rng.bit_generator
    if type(theirs) is not type(rng.bit_generator):
        raise TypeError(f"DAPPER's generator uses {type(theirs).__name__}, this stream "
                        f"{type(rng.bit_generator).__name__}: their states cannot be exchanged")
    saved = theirs.state
    theirs.state = rng.bit_generator.state
    try:
        yield
    finally:
        rng.bit_generator.state = theirs.state
        theirs.state = saved


def _covariance(rv: Any, M: int, what: str, semidefinite: bool, noise: bool = True) -> Covariance | None:
    """The covariance of a DAPPER ``GaussRV`` ``rv`` (``None`` for DAPPER's ``C = 0``); a
    ``noise`` must have zero mean."""
    randvars = import_dapper("dapper.tools.randvars")
    if not isinstance(rv, randvars.GaussRV):
        raise NotImplementedError(f"{what} is a DAPPER {type(rv).__name__}, not a GaussRV; dafilters "
                                  "takes Gaussian model and observation noise only")
    if noise and np.any(np.asarray(rv.mu) != 0):
        raise NotImplementedError(f"{what} has a non-zero mean; dafilters takes zero-mean noise only")
    C = rv.C
    if np.isscalar(C):  # DAPPER's "pure 0"
        if C != 0:
            raise ValueError(f"{what}: unexpected scalar covariance {C!r}")
        return None
    value = C.diag if C.kind == "diag" else C.full
    if C.M != M:
        raise ValueError(f"{what} has size {C.M}, expected {M}")
    return Covariance(value, M, name=what, semidefinite=semidefinite)


def _closure(f: Any) -> dict[str, Any]:
    """The values captured by a function's closure, by name (empty for other objects)."""
    code, cells = getattr(f, "__code__", None), getattr(f, "__closure__", None) or ()
    if code is None:
        return {}
    out = {}
    for name, cell in zip(code.co_freevars, cells):
        with contextlib.suppress(ValueError):
            out[name] = cell.cell_contents
    return out


def localizer_grid(op: Any) -> tuple[tuple[int, ...], bool, np.ndarray] | None:
    """``(shape, periodic, obs_inds)`` of a DAPPER operator's ``nd_Id_localization`` localizer,
    or ``None`` if it has none (or another kind)."""
    distances = _closure(getattr(op, "localizer", None)).get("y2x_distances")
    inner = _closure(distances)
    if not {"shape", "periodic", "obs_inds"} <= inner.keys():
        return None
    shape = tuple(int(n) for n in np.atleast_1d(inner["shape"]))
    return shape, bool(inner["periodic"]), np.asarray(inner["obs_inds"], dtype=int).ravel()


class DapperDynamics(Dynamics):
    """A DAPPER ``Operator`` as dynamics: ``step(E, t, dt) = op.model(E, t, dt)``.

    Args:
        op: DAPPER's ``HMM.Dyn``. coords, domain: state positions and periodic lengths (see
            :class:`~dafilters.hmm.Dynamics`). source: the DAPPER HMM it came from (kept for
            :func:`to_dapper`; not part of the identity).

    Raises:
        NotImplementedError: if the model noise is not a zero-mean DAPPER ``GaussRV``.
    """

    identity_exclude = ("source",)

    def __init__(self, op: Any, coords: np.ndarray | None = None, domain: Any = "ring",
                 source: Any = None):
        super().__init__(int(op.M), coords=coords, domain=domain)
        self.op, self.source = op, source
        self.noise = _covariance(op.noise, self.Nx, "DAPPER model noise Dyn.noise", semidefinite=True)

    def step(self, E: np.ndarray, t: float, dt: float) -> np.ndarray:
        """``(N, Nx) -> (N, Nx)`` by DAPPER's model, on a copy of ``E`` (some DAPPER models, e.g.
        Lorenz05, overwrite their input)."""
        return np.asarray(self.op.model(np.array(E, dtype=float), t, dt))

    def linear(self, x: np.ndarray, t: float, dt: float) -> np.ndarray:
        lin = getattr(self.op, "linear", None)
        if lin is None:
            raise NotImplementedError("this DAPPER model defines no linear (Dyn.linear)")
        return np.asarray(lin(x, t, dt))

    def identity(self) -> dict:
        return {"dapper": describe(self.op), "coords": self.coords, "domain": self.domain}


class DapperObservation(Observation):
    """DAPPER's (possibly time-dependent) observation operator ``Obs(ko)``.

    Args:
        op: DAPPER's ``HMM.Obs`` (a ``TimeDependentOperator``, or an ``Operator``: constant).
            Nx: the state size.

    Raises:
        NotImplementedError: (from :meth:`noise`) if the noise is not a zero-mean ``GaussRV``;
        ValueError: if it is zero (the filters need ``R`` positive definite).
    """

    identity_exclude = ("_last",)

    def __init__(self, op: Any, Nx: int):
        modelling = import_dapper("dapper.mods")
        if isinstance(op, modelling.Operator):  # set on an HMM after it was built: constant
            constant = object.__new__(modelling.TimeDependentOperator)
            constant.Op1 = op
            op = constant
        if not isinstance(op, modelling.TimeDependentOperator):
            raise TypeError(f"DAPPER's Obs must be an Operator or a TimeDependentOperator, got "
                            f"{type(op).__name__}")
        self.op, self.Nx = op, int(Nx)
        self.constant = hasattr(op, "Op1")
        self._last: tuple[int | None, Any, dict] | None = None  # (ko, Obs(ko), derived values)

    def at(self, ko: int) -> tuple[Any, dict]:
        """DAPPER's ``Obs(ko)`` and a cache of what was derived from it (built once per ``ko``;
        once for a constant operator)."""
        key = None if self.constant else int(ko)
        if self._last is None or self._last[0] != key:
            self._last = (key, self.op(ko), {})
        return self._last[1], self._last[2]

    def Ny(self, ko: int) -> int:
        return int(self.at(ko)[0].M)

    def h(self, E: np.ndarray, ko: int) -> np.ndarray:
        return np.asarray(self.at(ko)[0].model(E))

    def noise(self, ko: int) -> Covariance:
        op, cache = self.at(ko)
        if "R" not in cache:
            R = _covariance(op.noise, int(op.M), f"DAPPER observation noise Obs({ko}).noise",
                            semidefinite=False)
            if R is None:
                raise ValueError(f"DAPPER observation noise Obs({ko}).noise is zero; the filters "
                                 "need a positive-definite R")
            cache["R"] = R
        return cache["R"]

    def linear(self, x: np.ndarray, ko: int) -> np.ndarray:
        lin = getattr(self.at(ko)[0], "linear", None)
        if lin is None:
            raise NotImplementedError(f"DAPPER's Obs({ko}) defines no linear")
        return np.asarray(lin(x))

    def observed(self, ko: int) -> np.ndarray | None:
        """The state indices observed directly at ``ko`` ``(Ny,)``: from the localizer's
        ``obs_inds``, else from a selection matrix ``linear`` (one 1 per row); ``None`` if
        neither says."""
        op, cache = self.at(ko)
        if "idx" not in cache:
            grid = localizer_grid(op)
            idx = grid[2] if grid is not None else None
            if idx is None and getattr(op, "linear", None) is not None:
                H = np.asarray(op.linear(np.zeros(self.Nx)))
                if H.shape == (op.M, self.Nx) and np.all((H == 0) | (H == 1)) and np.all(H.sum(1) == 1):
                    idx = np.argmax(H, axis=1)
            cache["idx"] = idx
        return cache["idx"]

    def locations(self, ko: int, coords: np.ndarray) -> np.ndarray:
        idx = self.observed(ko)
        if idx is None:
            raise NotImplementedError(f"DAPPER's Obs({ko}) neither has an nd_Id_localization nor is a "
                                      "direct (partial identity) observation, so where its "
                                      "observations sit is unknown: it cannot be localized")
        return np.asarray(coords, dtype=float).reshape(self.Nx, -1)[idx]

    def identity(self) -> dict:
        return {"dapper": describe(self.op), "at_ko0": describe(self.op(0)), "Nx": self.Nx}


class DapperPrior(Prior):
    """DAPPER's initial-condition ``RV`` (``HMM.X0``), drawn by its own ``sample`` from the
    filter's stream (:func:`dapper_rng`). A ``GaussRV`` also gives ``mean`` and ``cov``."""

    def __init__(self, X0: Any, Nx: int):
        self.X0, self.Nx = X0, int(Nx)
        if getattr(X0, "M", self.Nx) != self.Nx:
            raise ValueError(f"DAPPER's X0 has size {X0.M}, but the dynamics have Nx={self.Nx}")

    def sample(self, N: int, rng: np.random.Generator) -> np.ndarray:
        with dapper_rng(rng):
            E = np.asarray(self.X0.sample(N), dtype=float)
        if E.shape != (N, self.Nx):
            raise ValueError(f"DAPPER's X0.sample({N}) has shape {E.shape}, expected ({N}, {self.Nx})")
        return E

    @property
    def mean(self) -> np.ndarray:
        if not hasattr(self.X0, "mu"):
            raise NotImplementedError(f"DAPPER's X0 ({type(self.X0).__name__}) has no mean")
        return np.broadcast_to(np.asarray(self.X0.mu, dtype=float), (self.Nx,)).copy()

    @property
    def cov(self) -> Covariance:
        C = _covariance(self.X0, self.Nx, "DAPPER's X0", semidefinite=True, noise=False)
        return Covariance(0.0, self.Nx, semidefinite=True) if C is None else C

    def identity(self) -> dict:
        return {"dapper": describe(self.X0), "Nx": self.Nx}


def _hmm_name(H: Any) -> str:
    name = str(getattr(H, "name", "") or "HMM").removesuffix(".py").replace("/", ".").replace("\\", ".")
    return f"dapper:{name}"


def from_dapper(H: Any, name: str | None = None) -> HMM:
    """The dafilters :class:`~dafilters.hmm.HMM` of a ``dapper.mods`` ``HiddenMarkovModel`` ``H``
    (see the module docstring for what maps to what).

    Args:
        H: e.g. ``dapper.mods.Lorenz63.sakov2012.HMM``. It is referenced, not copied: copy it
            (``H.copy()``) before changing it if you use it elsewhere.
        name: the HMM's name in tables (default ``"dapper:<DAPPER's name>"``, e.g.
            ``"dapper:Lorenz63.sakov2012"``).

    Raises:
        TypeError: if ``H`` is not a DAPPER HMM.
        NotImplementedError: for non-Gaussian model or observation noise.
    """
    modelling = import_dapper("dapper.mods")
    if not isinstance(H, modelling.HiddenMarkovModel):
        raise TypeError(f"from_dapper needs a dapper.mods.HiddenMarkovModel, got {type(H).__name__}")
    coords, domain = None, "ring"
    obs = DapperObservation(H.Obs, int(H.Dyn.M))
    grid = localizer_grid(obs.at(0)[0])
    if grid is not None and int(np.prod(grid[0])) == H.Dyn.M:
        shape, periodic, _ = grid
        coords = np.stack(np.unravel_index(np.arange(H.Dyn.M), shape), axis=1).astype(float)
        domain = tuple(float(n) for n in shape) if periodic else None
    dyn = DapperDynamics(H.Dyn, coords=coords, domain=domain, source=H)
    obs.noise(0)  # non-Gaussian or zero observation noise: an error now, not mid-run
    t = H.tseq
    tseq = Chronology(float(t.dt), dko=int(t.dko), Ko=int(t.Ko), BurnIn=float(t.BurnIn))
    return HMM(dyn, obs, tseq, DapperPrior(H.X0, dyn.Nx), name=name or _hmm_name(H))


def to_dapper(hmm: HMM) -> Any:
    """The DAPPER ``HiddenMarkovModel`` of a converted HMM (:func:`from_dapper`), with its current
    chronology (``hmm.replace(tseq=...)`` is honoured) and parts.

    Raises:
        TypeError: naming the parts that are not DAPPER's (DAPPER's methods run DAPPER models only).
        ValueError: if the chronology has irregular observation times (DAPPER needs ``dko``).
    """
    parts = {"dyn": DapperDynamics, "obs": DapperObservation, "prior": DapperPrior}
    foreign = [f"{p} ({type(getattr(hmm, p)).__name__})" for p, cls in parts.items()
               if not isinstance(getattr(hmm, p), cls)]
    if foreign:
        raise TypeError(f"{hmm.name}: DAPPER's methods need a DAPPER model converted by "
                        f"dafilters.from_dapper(); these parts are not DAPPER's: {', '.join(foreign)}")
    t = hmm.tseq
    if t.dko is None or t.K != t.kko[-1]:
        raise ValueError(f"{hmm.name}: DAPPER needs regular observation times ending at the last "
                         f"model step (dko, Ko), got {t!r} with K={t.K}")
    modelling = import_dapper("dapper.mods")
    tseq = modelling.Chronology(t.dt, dko=t.dko, Ko=t.Ko, BurnIn=t.BurnIn)
    source = hmm.dyn.source
    if source is None:
        return modelling.HiddenMarkovModel(hmm.dyn.op, hmm.obs.op, tseq, hmm.prior.X0, name=hmm.name)
    H = copy.copy(source)  # keeps its name, sectors and liveplotters
    H.Dyn, H.Obs, H.X0, H.tseq = hmm.dyn.op, hmm.obs.op, hmm.prior.X0, tseq
    return H
