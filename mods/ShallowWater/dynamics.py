"""The dynamics of :mod:`mods.ShallowWater`: :class:`ShallowWater` and :class:`ForcedShallowWater`
(the height forcing's parameters in the state)."""

from __future__ import annotations

import numpy as np

from dafilters.extras import import_extra
from dafilters.hmm import Dynamics

from .forcing import Heating, Jet
from .grid import FIELDS, _check_grid, cartesian_coords, default_nu, grid, lonlat
from .sim import _comm_or_self, _dedalus, _Sim

__all__ = ["ShallowWater", "ForcedShallowWater"]


class ShallowWater(Dynamics):
    r"""Rotating shallow water on the sphere (see the module): states ``(N, 3 * Nphi * Ntheta)``
    holding :math:`(u_\phi, u_\theta, h)` in m/s and m, time in hours (then ``n_params``
    parameter components, placed at the centre of the sphere, in subclasses that have them).

    ``step(E, t, dt)`` advances each member by one ``timestepper`` step of ``dt`` hours through
    one Dedalus solver (built on first use); ``advance(E, dt, steps, t)`` takes several. ``t``
    (hours) sets the solver's clock, which only the time-dependent forcing of
    :class:`ForcedShallowWater` reads. At ``32 x 16`` an hour per step is stable for jets of about
    100 m/s (the explicit advection's CFL number is about 0.3); finer grids need proportionally
    smaller steps (:func:`stable_dt`).

    Args:
        Nphi, Ntheta: longitudes and colatitudes of the grid (``Nphi`` even, ``>= 2 * Ntheta``).
        dealias: dealiasing scale of the nonlinear terms (3/2 removes quadratic aliasing).
        nu: hyperdiffusion in model units (default :func:`default_nu`).
        forcing: a :class:`Jet` the velocity relaxes to over ``tau`` hours, or ``None``.
        tau: relaxation time (hours) of the forcing.
        timestepper: a Dedalus IMEX Runge–Kutta scheme name (``"RK222"``, ``"RK443"``, ...;
            multistep schemes keep history between steps and are refused).
        comm: MPI communicator the grid is distributed over (default ``MPI.COMM_SELF``).
        noise: model-noise covariance per unit time (as for :class:`~dafilters.hmm.Dynamics`).
    """

    #: The Dedalus solver is a cache and the communicator does not change the model: neither is
    #: part of the model's identity (HMM.fingerprint).
    identity_exclude = ("_sim", "comm")

    def __init__(self, Nphi: int = 32, Ntheta: int = 16, dealias: float = 1.5, nu: float | None = None,
                 forcing: Jet | None = None, tau: float = 48.0, timestepper: str = "RK222",
                 comm=None, noise=None):
        self.Nphi, self.Ntheta = _check_grid(Nphi, Ntheta)
        if not dealias >= 1:
            raise ValueError(f"dealias must be >= 1, got {dealias}")
        if not tau > 0:
            raise ValueError(f"the relaxation time tau must be positive, got {tau}")
        if timestepper not in ("RK111", "RK222", "RK443", "RKSMR", "RKGFY"):
            raise ValueError(f"timestepper must be a Dedalus Runge-Kutta scheme (e.g. 'RK222'), "
                             f"got {timestepper!r}")
        if forcing is not None and not isinstance(forcing, Jet):
            raise ValueError(f"forcing must be a Jet or None, got {forcing!r}")
        params = self.n_params  # parameter components after the fields (ForcedShallowWater)
        super().__init__(3 * self.Nphi * self.Ntheta + params, noise=noise, domain=None,
                         coords=np.vstack([cartesian_coords(self.Nphi, self.Ntheta), np.zeros((params, 3))]))
        self.lonlat = np.vstack([lonlat(self.Nphi, self.Ntheta), np.full((params, 2), np.nan)])
        self.dealias = float(dealias)
        self.nu = default_nu(self.Ntheta) if nu is None else float(nu)
        self.forcing, self.tau, self.timestepper = forcing, float(tau), timestepper
        self.comm = _comm_or_self(comm)
        self._sim: _Sim | None = None
        _dedalus()

    @property
    def sim(self) -> _Sim:
        """The Dedalus model (built on first use, then reused)."""
        if self._sim is None:
            self._sim = _Sim(self.Nphi, self.Ntheta, self.dealias, self.nu, self.forcing, self.tau,
                             self.timestepper, self.comm)
        return self._sim

    def __getstate__(self):
        MPI = import_extra("mpi4py.MPI", "atmos", "mods.ShallowWater")

        if self.comm != MPI.COMM_SELF:
            raise TypeError("a ShallowWater distributed over an MPI communicator cannot be pickled")
        state = dict(self.__dict__, _sim=None, comm=None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.comm = _comm_or_self(self.comm)

    def field_points(self) -> tuple[np.ndarray, tuple[float, float], int]:
        r"""The fields as decoders on points see them (:func:`dafilters.filters.ldensf.field_layout`):
        the (longitude, colatitude) :math:`(\phi_i, \theta_j)` in radians ``(Nphi * Ntheta, 2)`` of
        one field's components (row ``i * Ntheta + j``), the periods :math:`(2\pi, 2\pi)` (the
        colatitude spans half of its period, so a Fourier basis need not wrap it) and the number of
        fields, 3."""
        phi, theta = grid(self.Nphi, self.Ntheta)
        P, T = np.meshgrid(phi, theta, indexing="ij")
        return np.stack([P.ravel(), T.ravel()], axis=1), (2 * np.pi, 2 * np.pi), len(FIELDS)

    def advance(self, E: np.ndarray, dt: float, steps: int, t: float = 0.0) -> np.ndarray:
        """``steps`` deterministic steps of ``dt`` hours of states ``(..., Nx)`` (float64 out),
        starting at time ``t`` (hours; only a time-dependent forcing reads it)."""
        E = np.asarray(E, dtype=float)
        if E.shape[-1] != self.Nx:
            raise ValueError(f"{self!r} states have size {self.Nx}, got {E.shape[-1]}")
        if not (np.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be positive and finite, got {dt}")
        if not np.isfinite(t):
            raise ValueError(f"t must be finite, got {t}")
        X = E.reshape(-1, self.Nx)
        out = np.empty_like(X)
        for n, x in enumerate(X):
            self._advance_member(x, out[n], float(dt), int(steps), float(t))
        return out.reshape(E.shape)

    def _advance_member(self, x: np.ndarray, out: np.ndarray, dt: float, steps: int, t: float) -> None:
        """Advance one state ``x`` ``(Nx,)`` into ``out`` through the cached solver."""
        sim = self.sim
        sim.load(x)
        sim.solver.sim_time = t
        for _ in range(steps):
            sim.solver.step(dt)
        sim.read(out)

    def step(self, E: np.ndarray, t: float, dt: float) -> np.ndarray:
        return self.advance(E, dt, 1, t)

    def __repr__(self) -> str:
        forcing = "" if self.forcing is None else f", forcing={self.forcing}, tau={self.tau:g}"
        return f"ShallowWater({self.Nphi}x{self.Ntheta}, dealias={self.dealias:g}{forcing})"


class ForcedShallowWater(ShallowWater):
    r"""Shallow water driven by LD-EnSF's migrating height forcing, whose amplitude and width are
    part of the state (unknown to the filters, as :math:`\log Re` in
    :class:`mods.Kolmogorov.KolmogorovRe`).

    The height equation of :class:`ShallowWater` gains the source :math:`F_h` of
    :func:`height_forcing`, :math:`\partial_t h + \dots = -\nabla\cdot(h\mathbf u) + F_h(\phi,
    \varphi, t; a, \sigma)`, which is time dependent: ``step(E, t, dt)`` starts at time ``t``
    (``advance(E, dt, steps, t)`` likewise).

    **State layout** ``(..., 3 * Nphi * Ntheta + 2)``: the fields of :class:`ShallowWater`, then the
    amplitude :math:`a` (m/hour) and the width :math:`\sigma` (radians). Each member is stepped
    with its own :math:`(a, \sigma)` through the one cached Dedalus solver (they are constant
    fields of its right-hand side, set before each member's steps); a step keeps them unchanged.
    ``coords`` place both parameter components at the centre of the sphere, equidistant
    (:math:`R`, 6371 km) from every grid point, so a localized filter updates them with all
    observations or none, depending on its radius; ``lonlat`` is NaN there.

    Args:
        Nphi, Ntheta, dealias, nu, timestepper, comm, noise: as for :class:`ShallowWater` (give
            ``noise`` as ``Covariance(q, semidefinite=True)`` with zeros of ``q`` on the parameter
            components unless they should drift; a plain vector with zeros is refused).
        heating: the forcing's day, year and declination (:class:`Heating`).
        amplitude_bounds, width_bounds: the values a step may use; a state's parameters outside
            are clipped into these ranges for its step (the state keeps its own values, as an
            analysis may push a member beyond the prior's range).
    """

    n_params = 2

    def __init__(self, Nphi: int = 32, Ntheta: int = 16, dealias: float = 1.5, nu: float | None = None,
                 heating: Heating = Heating(),  # noqa: B008 (a frozen dataclass)
                 timestepper: str = "RK222", comm=None, noise=None,
                 amplitude_bounds: tuple[float, float] = (0.0, 60.0),
                 width_bounds: tuple[float, float] = (0.25, 8.0)):
        if not isinstance(heating, Heating):
            raise ValueError(f"heating must be a Heating, got {heating!r}")
        bounds = tuple(float(b) for b in amplitude_bounds), tuple(float(b) for b in width_bounds)
        if not (bounds[0][0] <= bounds[0][1] and 0 < bounds[1][0] <= bounds[1][1]):
            raise ValueError(f"need amplitude_bounds low <= high and 0 < width_bounds low <= high, "
                             f"got {amplitude_bounds!r}, {width_bounds!r}")
        self.heating, self.param_bounds = heating, bounds
        super().__init__(Nphi, Ntheta, dealias, nu, None, 48.0, timestepper, comm, noise)

    @property
    def sim(self) -> _Sim:
        """The Dedalus model with the height forcing (built on first use, then reused)."""
        if self._sim is None:
            self._sim = _Sim(self.Nphi, self.Ntheta, self.dealias, self.nu, None, self.tau,
                             self.timestepper, self.comm, heating=self.heating)
        return self._sim

    def _advance_member(self, x: np.ndarray, out: np.ndarray, dt: float, steps: int, t: float) -> None:
        (a_lo, a_hi), (w_lo, w_hi) = self.param_bounds
        self.sim.set_heating(np.clip(x[-2], a_lo, a_hi), np.clip(x[-1], w_lo, w_hi))
        super()._advance_member(x[:-2], out[:-2], dt, steps, t)
        out[-2:] = x[-2:]

    def __repr__(self) -> str:
        return (f"ForcedShallowWater({self.Nphi}x{self.Ntheta}, dealias={self.dealias:g}, "
                f"heating={self.heating})")
