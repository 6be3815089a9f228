"""Model dynamics: :class:`Dynamics` (its hooks for filters and training) and
:class:`LinearDynamics`.

Part of the hidden Markov model (:mod:`dafilters.hmm`, which re-exports every name here).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import ClassVar

import numpy as np

from .gaussian import Covariance
from .identity import Identified

__all__ = ["Dynamics", "LinearDynamics", "DefaultGeometryWarning"]


class DefaultGeometryWarning(UserWarning):
    """A filter localizes on a model that did not say where its variables are, so it uses the
    default geometry: a periodic ring (see :class:`Dynamics`). Shown once per model class."""


#: The model classes whose default geometry was noted (once per class and process).
_NOTED: set[type] = set()


class _DefaultRing(str):
    """The default ``domain``: ``"ring"``, told apart from a ``"ring"`` a model passes."""


_RING = _DefaultRing("ring")


class Dynamics(Identified):
    """Model dynamics ``x_k = M(x_{k-1}, t, dt) + sqrt(dt) q``, ``q ~ N(0, Q)``.

    Subclass and override :meth:`step` (and :meth:`linear` where known), or pass the callables.
    Optional hooks, with defaults here, that some models override: :meth:`advance` (several steps
    at once), :meth:`forecast_advance` (the same in a filter's forecast), :meth:`step_torch` (a
    differentiable step) and :attr:`n_params` (parameters at the end of the state).

    **Scales.** ``model`` (or :meth:`step`) is one step of size ``dt``, the chronology's model
    step; ``noise`` is a covariance *per unit time*: each step adds ``sqrt(dt) N(0, Q)``, so the
    noise accumulated over a unit of time is ``N(0, Q)`` whatever ``dt`` is. (For a transition
    matrix given per step, see :class:`LinearDynamics`.)

    **Geometry.** Localized filters (``LETKF``, ``EnKF(loc_rad=...)``, MNMEF, ...) measure
    distances between ``coords`` on a domain that is periodic along each axis with the lengths
    ``domain``. Unless the model says otherwise, variable ``i`` sits at position ``i`` of a
    periodic ring of length ``Nx`` (right for Lorenz-96, wrong for a flattened 2-D field or a
    bounded domain). A model says it once, in its constructor: ``coords=`` (positions ``(Nx, d)``)
    and ``domain=`` (the periodic lengths, ``None`` for a non-periodic domain, ``"ring"`` for the
    default ring). When a filter first reads ``coords`` of a model that said neither, a
    :class:`DefaultGeometryWarning` names the model, once per class.

    Identity: the class and every instance attribute (the callables by their code and the values
    they capture; caches listed in ``identity_exclude``) enter :meth:`HMM.fingerprint` — see
    :class:`~dafilters.identity.Identified` for how a model declares what defines it.

    Args:
        Nx: state size.
        model: ``model(E, t, dt) -> E``, one step of size ``dt``, acting on ensembles ``(N, Nx)``
            (and single states).
        noise: model-noise covariance ``Q`` *per unit time* (scalar, ``(Nx,)`` or ``(Nx, Nx)``,
            or a :class:`~dafilters.gaussian.Covariance`); ``None`` or ``0`` for deterministic
            dynamics.
        linear: ``linear(x, t, dt) -> (Nx, Nx)``, the Jacobian of one step (Kalman filter, EKF).
        coords: positions of the state variables ``(Nx, d)`` for localization (default: variable
            ``i`` at ``i``).
        domain: lengths of the periodic domain per axis, ``None`` for a non-periodic domain, or
            ``"ring"`` (the default): ``(Nx,)``.

    Raises:
        ValueError: naming the model if ``coords`` does not have ``Nx`` rows, or ``noise`` is not
            a covariance of size ``Nx``.
    """

    #: The number of model parameters at the end of the state (the last ``n_params`` components):
    #: constant in time (a step keeps them), unknown to the filters, estimated with the state
    #: (e.g. :math:`\log Re` of :class:`mods.Kolmogorov.KolmogorovRe`). Filters that treat
    #: fields and parameters apart (LD-EnSF) read it; 0 for a state without parameters.
    n_params: ClassVar[int] = 0
    #: ``advance(E, dt, n, t)`` equals ``n`` calls of :meth:`step` bit for bit, so the filters'
    #: deterministic forecast may take it (:meth:`forecast_advance`).
    advance_exact: ClassVar[bool] = False
    #: Set on instances whose constructor was given neither ``coords`` nor ``domain``.
    identity_exclude: ClassVar[tuple[str, ...]] = ("_default_geometry",)

    def __init__(self, Nx: int, model: Callable | None = None, noise=None,
                 linear: Callable | None = None, coords: np.ndarray | None = None,
                 domain: Sequence[float] | None | str = _RING):
        self.Nx = int(Nx)
        if coords is None:
            self.coords = np.arange(self.Nx, dtype=float)[:, None]
        else:
            coords = np.asarray(coords, dtype=float)
            if coords.shape[0] != self.Nx or coords.ndim > 2:
                raise ValueError(f"{type(self).__name__}: coords must be positions (Nx, d) of the "
                                 f"Nx = {self.Nx} state variables, got shape {coords.shape}")
            self.coords = coords.reshape(self.Nx, -1)
        self.domain = (float(self.Nx),) if isinstance(domain, str) else domain
        if coords is None and domain is _RING:  # the default itself, not "ring" passed
            self.__dict__["_default_geometry"] = True
        self._model = model
        self._linear = linear
        if noise is None or (np.isscalar(noise) and noise == 0):
            self.noise: Covariance | None = None
        else:
            self.noise = Covariance(noise, self.Nx, name=f"model noise Q of {type(self).__name__} "
                                    "(per unit time: a step of dt adds sqrt(dt) N(0, Q))")

    @property
    def coords(self) -> np.ndarray:
        """Positions ``(Nx, d)`` of the state variables (see the class docstring, Geometry)."""
        default = self.__dict__.get("_default_geometry") and self.domain == (float(self.Nx),)
        if default and type(self) not in _NOTED:
            _NOTED.add(type(self))
            warnings.warn(
                f"{type(self).__name__} says nothing of where its variables are: localizing on the "
                f"default geometry, a periodic ring (variable i at position i, period Nx = "
                f"{self.Nx}). Pass coords= and domain= to Dynamics.__init__ (domain=None: not "
                "periodic), or domain='ring' to keep the ring and drop this note",
                DefaultGeometryWarning, stacklevel=2)
        return self.__dict__["coords"]

    @coords.setter
    def coords(self, value: np.ndarray) -> None:
        # kept in the instance's __dict__ under its own name, so identities are unchanged
        self.__dict__["coords"] = value
        self.__dict__.pop("_default_geometry", None)

    def step(self, E: np.ndarray, t: float, dt: float) -> np.ndarray:
        """The deterministic part of one step, ``(N, Nx) -> (N, Nx)``."""
        if self._model is None:
            raise NotImplementedError(f"{type(self).__name__} defines no step()")
        return self._model(E, t, dt)

    def advance(self, E: np.ndarray, dt: float, steps: int, t: float = 0.0) -> np.ndarray:
        """``steps`` deterministic steps of size ``dt`` of states ``(..., Nx)`` from time ``t``
        (step ``i`` at ``t + i * dt``), without model noise.

        This default calls :meth:`step` once per step; models that can take many steps at once
        (one compiled loop, one solver call) override it. Used where a trajectory is only needed
        at the observation times (e.g. the training data of learned filters).
        """
        for i in range(int(steps)):
            E = self.step(E, t + i * dt, dt)
        return E

    def forecast_advance(self, E: np.ndarray, dt: float, steps: int,
                         t: float = 0.0) -> np.ndarray | None:
        """``steps`` deterministic steps of a filter's ensemble ``(N, Nx)`` in one call, or
        ``None`` where the model has no such shortcut (the forecast then calls :meth:`step` once per
        step). Default: :meth:`advance` where it is exact (:attr:`advance_exact`), else ``None``.
        A model may return a faster integration of the same steps that differs from them only by
        round-off (Lorenz-63: another order of the same operations), tested as such."""
        return self.advance(E, dt, steps, t) if self.advance_exact else None

    def step_torch(self, X, t: float, dt: float):
        """:meth:`step` on a torch tensor ``(..., Nx)``, differentiable (for filters trained by
        unrolling the model, e.g. MNMEF). Models implement it where they can."""
        raise NotImplementedError(
            f"{type(self).__name__} has no torch step: implement step_torch() to train filters that "
            "unroll the model")

    def linear(self, x: np.ndarray, t: float, dt: float) -> np.ndarray:
        """Jacobian ``dM/dx`` at ``x``, shape ``(Nx, Nx)``."""
        if self._linear is None:
            raise NotImplementedError(f"{type(self).__name__} has no linearisation (linear=...)")
        return self._linear(x, t, dt)

    def forecast(self, E: np.ndarray, t: float, dt: float, rng: np.random.Generator) -> np.ndarray:
        """One stochastic step of an ensemble ``(N, Nx)``: ``step`` plus ``sqrt(dt) N(0, Q)``."""
        E = self.step(E, t, dt)
        if self.noise is not None:
            E = E + np.sqrt(dt) * self.noise.sample(E.shape[0], rng)
        return E


class LinearDynamics(Dynamics):
    """Linear dynamics ``x_k = M x_{k-1} + sqrt(dt) q``, ``q ~ N(0, Q)``.

    ``M`` is the transition matrix of *one model step* (the chronology's ``dt``), not a rate per
    unit time: for ``dx/dt = A x`` use ``M = scipy.linalg.expm(A * dt)``, and change ``M`` when
    you change ``dt``. ``noise`` is, as for every :class:`Dynamics`, a covariance *per unit time*
    (each step adds ``sqrt(dt) N(0, Q)``): keep it when you change ``dt``.

    Args:
        M: ``(Nx, Nx)``, one step. noise: ``Q`` per unit time (see :class:`Dynamics`).
        coords, domain: the geometry for localization (see :class:`Dynamics`).

    Raises:
        ValueError: if ``M`` is not a finite square matrix, or ``noise`` does not have its size.

    Warns:
        UserWarning: if ``M`` has a spectral radius above 1 (the state grows by that factor per
            step), which usually means a matrix per unit time was given.
    """

    def __init__(self, M: np.ndarray, noise=None, coords: np.ndarray | None = None,
                 domain: Sequence[float] | None | str = _RING):
        self.M = np.atleast_2d(np.asarray(M, dtype=float))
        if self.M.ndim != 2 or self.M.shape[0] != self.M.shape[1]:
            raise ValueError(f"LinearDynamics: M must be a square (Nx, Nx) matrix, the transition "
                             f"of one model step, got shape {self.M.shape}")
        if not np.all(np.isfinite(self.M)):
            raise ValueError("LinearDynamics: M contains NaN or inf")
        if len(self.M) <= 2000:
            rho = float(np.max(np.abs(np.linalg.eigvals(self.M))))
            if rho > 1 + 1e-9:
                warnings.warn(
                    f"LinearDynamics: M has spectral radius {rho:.4g} > 1, so the state grows by "
                    "that factor at every model step; M is the transition of one step of dt, not "
                    "a rate per unit time (for dx/dt = A x use M = scipy.linalg.expm(A * dt))",
                    UserWarning, stacklevel=2)
        super().__init__(self.M.shape[0], noise=noise, coords=coords, domain=domain)

    def step(self, E: np.ndarray, t: float, dt: float) -> np.ndarray:
        return E @ self.M.T

    def linear(self, x: np.ndarray, t: float, dt: float) -> np.ndarray:
        return self.M
