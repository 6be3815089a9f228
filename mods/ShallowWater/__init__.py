r"""Rotating shallow-water equations on the sphere, integrated by Dedalus 3.

The velocity :math:`\mathbf u` (a tangent vector field) and the height :math:`h` above the mean
depth :math:`H` of a thin layer of fluid on a sphere of radius :math:`R` rotating at :math:`\Omega`
obey, as in Dedalus's ``ivp_sphere_shallow_water`` example (Galewsky, Scott & Polvani 2004),

.. math::
    \partial_t \mathbf u + \nu \Delta^2 \mathbf u + g \nabla h + 2\Omega \cos\theta\,
        \hat{\mathbf z}\times\mathbf u + \frac{\mathbf u - \mathbf u_F}{\tau}
        = -\mathbf u\cdot\nabla\mathbf u, \qquad
    \partial_t h + \nu \Delta^2 h + H \nabla\cdot\mathbf u = -\nabla\cdot(h\mathbf u),

with Earth's :math:`R = 6.37122\times 10^6` m, :math:`\Omega = 7.292\times 10^{-5}` s⁻¹,
:math:`g = 9.80616` m s⁻², :math:`H = 10^4` m, and hyperdiffusion :math:`\nu` for stability. The
optional forcing relaxes the velocity towards a zonal jet :math:`\mathbf u_F` (a :class:`Jet`)
over :math:`\tau` hours (``forcing=None``: no relaxation term, the unforced Dedalus example).
Every term but the height flux has zero global mean in :math:`h`, so the mass
:math:`\int h\, dA` (:func:`mass`) is conserved.

**Height forcing with per-member parameters** (:class:`ForcedShallowWater`, LD-EnSF's atmospheric
data): the height equation gains a source that adds mass on a "day side" and removes it on the
"night side",

.. math::
    F_h = a\cos(\phi - \phi_c(t))\,\exp\big(-(\varphi - \varphi_c(t))^2/\sigma^2\big), \qquad
    \phi_c = 2\pi t/24\,\mathrm{h}, \quad \varphi_c = 0.4\sin(2\pi t/1008\,\mathrm{h})

(:func:`height_forcing`, :math:`\varphi` the latitude), of zero global mean (mass is still
conserved). The amplitude :math:`a` (m/hour) and width :math:`\sigma` (radians) are the last two
state components, constant in time; LD-EnSF draws them per trajectory from :math:`U(0.1, 30)` and
:math:`U(1, 4)` (:data:`FORCING_AMPLITUDE`, :data:`FORCING_WIDTH`, :class:`ForcedJetPrior`).

Dedalus solves it on a ``SphereBasis`` (spin-weighted spherical harmonics, ``Nphi`` longitudes x
``Ntheta`` Gauss colatitudes, ``dealias`` 3/2) in units of the Earth radius and the hour; the
linear terms (gravity waves, Coriolis, hyperdiffusion, relaxation) are implicit, the advection
explicit (IMEX Runge-Kutta ``RK222`` by default). The default hyperdiffusion damps the truncation
wavenumber :math:`L = N_\theta - 1` in 12 hours, :math:`\nu\,(L(L+1)/R^2)^2 = 1/12` per hour
(:func:`default_nu`).

At the default ``32 x 16`` grid the jet spans a few grid points and the unforced flow is only
weakly nonlinear: a perturbed jet radiates gravity and Rossby waves and adjusts, staying zonal to
within a few metres of height (Galewsky's barotropic instability needs a finer grid, ``128 x 64``
and up, with smaller ``dt``). The height forcing drives a migrating wave-1 response: over 10 days
:math:`h` changes by about 0.3-0.6 of its spatial standard deviation for :math:`a \gtrsim 8`
m/hour (0.15-0.2 unforced), and its non-zonal part reaches 0.1-0.4 of that deviation (0.002
unforced).

**State layout.** A state ``(Nx,)``, ``Nx = 3 * Nphi * Ntheta``, holds three fields on the grid
:math:`(\phi_i, \theta_j)`, :math:`\phi_i = 2\pi i/N_\phi` and :math:`\theta_j` the colatitudes
(decreasing in ``j``: ``j = 0`` is nearest the south pole), each flattened row-major:
component ``f * Nphi * Ntheta + i * Ntheta + j`` is field ``f`` at :math:`(\phi_i, \theta_j)`,
``f = 0`` :math:`u_\phi` (eastward, m/s), ``f = 1`` :math:`u_\theta` (along the colatitude, i.e.
*southward*, m/s), ``f = 2`` :math:`h` (m); :class:`ForcedShallowWater` appends :math:`(a, \sigma)`.
Time is in hours (``dt = 1`` is one hour). Ensembles
are numpy float64 ``(N, Nx)`` (any ``(..., Nx)``); :func:`as_fields` gives ``(..., 3, Nphi,
Ntheta)``. A state is band-limited by the model: the first step projects it on the resolved
harmonics (an analysis with grid-scale noise is smoothed by that projection).

**Coordinates.** ``Dynamics.coords`` ``(Nx, 3)`` are the Cartesian positions (km) of each
component's grid point on the sphere and ``Dynamics.domain`` is ``None``: localization distances
are chord lengths in km (within 1% of great-circle distances up to about 2800 km).
``ShallowWater.lonlat`` ``(Nx, 2)`` gives (longitude, latitude) in degrees;
:func:`subgrid_indices` picks components on a coarser sub-grid for observations.

**Ensembles and MPI.** The ensemble is advanced member by member through one Dedalus solver built
once per model (re-loading the state before each step; ``RK222`` keeps no history across steps).
``ShallowWater(comm=...)`` distributes the grid over the ranks of an MPI communicator (every rank
calls ``step`` with the same ensemble and gets the whole state back, gathered by an allreduce);
the default ``MPI.COMM_SELF`` keeps each process's model serial (as ``Experiments`` over MPI
needs). FFTW plans are made with ``estimate`` rigour so that runs are reproducible.

Dedalus is imported when a model is built (install with the ``atmos`` extra, see the README).
Importing Dedalus initialises MPI (mpi4py), puts a stdout handler on the root logger and lowers
the root logger's level to NOTSET; this module raises both back to WARNING (Dedalus's own INFO
progress lines are silenced).

References: Galewsky, Scott, Polvani, "An initial-value problem for testing numerical models of
the global shallow-water equations", Tellus A 56 (2004); Burns, Vasil, Oishi, Lecoanet, Brown,
"Dedalus: A flexible framework for numerical simulations with spectral methods", Phys. Rev.
Research 2 (2020).
"""

from __future__ import annotations

import dataclasses
import logging
from functools import lru_cache

import numpy as np

from dafilters.extras import import_extra
from dafilters.hmm import Dynamics, Prior

__all__ = ["ShallowWater", "ForcedShallowWater", "Jet", "JetPrior", "ForcedJetPrior", "Heating",
           "RADIUS", "OMEGA", "GRAVITY", "DEPTH", "FIELDS", "DAY", "YEAR", "DECLINATION",
           "FORCING_AMPLITUDE", "FORCING_WIDTH", "default_nu", "stable_dt", "grid", "lonlat",
           "cartesian_coords", "as_fields", "subgrid_indices", "quadrature_weights", "mass", "jet_profile",
           "bump", "balanced_state", "random_jet_state", "forcing_center", "height_forcing",
           "random_forcing_params"]

#: Earth's radius (m), rotation rate (1/s), gravity (m/s^2) and the mean depth (m).
RADIUS, OMEGA, GRAVITY, DEPTH = 6.37122e6, 7.292e-5, 9.80616, 1e4
#: The fields of a state, in order.
FIELDS = ("u_phi", "u_theta", "h")
#: Model units: lengths in Earth radii, times in hours.
METER, SECOND = 1.0 / RADIUS, 1.0 / 3600.0
#: Velocity (m/s -> model units) and height (m -> model units) conversion factors.
VEL, HGT = METER / SECOND, METER


def _dedalus():
    """Import Dedalus (with a helpful message when missing), quieten its stdout logging and make
    its FFTW plans deterministic."""
    d3 = import_extra("dedalus.public", "atmos", "mods.ShallowWater")
    dlog = import_extra("dedalus.tools.logging", "atmos", "mods.ShallowWater")
    config = import_extra("dedalus.tools.config", "atmos", "mods.ShallowWater").config
    handler = getattr(dlog, "stdout_handler", None)
    if handler is not None and handler.level < logging.WARNING:
        handler.setLevel(logging.WARNING)
    if logging.root.level == logging.NOTSET:  # Dedalus lowers it from Python's default
        logging.root.setLevel(logging.WARNING)
    config["transforms-fftw"]["PLANNING_RIGOR"] = "estimate"
    return d3


def default_nu(Ntheta: int, damping: float = 12.0) -> float:
    r"""Hyperdiffusion (model units, :math:`R^4`/hour) that e-folds the truncation wavenumber
    :math:`L = N_\theta - 1` in ``damping`` hours: :math:`\nu = 1/(\mathrm{damping}\,(L(L+1))^2)`.
    (Dedalus's example damps its truncation, ``L = 127``, in about 0.44 hours, but there the jet
    lives far below the truncation; at ``Ntheta = 16`` it does not.)"""
    if not damping > 0:
        raise ValueError(f"damping must be a positive time (hours), got {damping}")
    L = int(Ntheta) - 1
    return 1.0 / (damping * (L * (L + 1)) ** 2)


def _check_grid(Nphi: int, Ntheta: int) -> tuple[int, int]:
    Nphi, Ntheta = int(Nphi), int(Ntheta)
    if Ntheta < 4 or Nphi < 2 * Ntheta - 1 or Nphi % 2:
        raise ValueError(f"need an even Nphi >= 2 * Ntheta and Ntheta >= 4 (e.g. 32 x 16), "
                         f"got {Nphi} x {Ntheta}")
    return Nphi, Ntheta


@lru_cache(maxsize=16)
def grid(Nphi: int, Ntheta: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Longitudes :math:`\phi_i = 2\pi i/N_\phi` ``(Nphi,)`` and colatitudes
    :math:`\theta_j = \arccos x_j` ``(Ntheta,)`` (:math:`x_j` the Gauss–Legendre nodes, increasing,
    so :math:`\theta_j` decreases), in radians: Dedalus's sphere grid at scale 1."""
    Nphi, Ntheta = _check_grid(Nphi, Ntheta)
    x, _ = np.polynomial.legendre.leggauss(Ntheta)
    return 2 * np.pi * np.arange(Nphi) / Nphi, np.arccos(x)


def quadrature_weights(Nphi: int, Ntheta: int) -> np.ndarray:
    r"""Area weights ``(Nphi, Ntheta)`` (m²) with :math:`\int f\, dA \approx \sum_{ij} w_{ij}
    f(\phi_i, \theta_j)`: :math:`w_{ij} = R^2 (2\pi/N_\phi) w^{GL}_j` (exact for band-limited
    fields)."""
    Nphi, Ntheta = _check_grid(Nphi, Ntheta)
    _, w = np.polynomial.legendre.leggauss(Ntheta)
    return np.broadcast_to(RADIUS**2 * 2 * np.pi / Nphi * w, (Nphi, Ntheta))


def lonlat(Nphi: int, Ntheta: int) -> np.ndarray:
    """(longitude, latitude) in degrees ``(3 * Nphi * Ntheta, 2)`` of each state component."""
    phi, theta = grid(Nphi, Ntheta)
    P, T = np.meshgrid(np.degrees(phi), 90.0 - np.degrees(theta), indexing="ij")
    return np.tile(np.stack([P.ravel(), T.ravel()], axis=1), (len(FIELDS), 1))


def cartesian_coords(Nphi: int, Ntheta: int) -> np.ndarray:
    r"""Cartesian positions (km) ``(3 * Nphi * Ntheta, 3)`` of each state component's grid point:
    :math:`R(\sin\theta\cos\phi, \sin\theta\sin\phi, \cos\theta)`."""
    phi, theta = grid(Nphi, Ntheta)
    P, T = np.meshgrid(phi, theta, indexing="ij")
    xyz = RADIUS / 1e3 * np.stack([np.sin(T) * np.cos(P), np.sin(T) * np.sin(P), np.cos(T)], axis=-1)
    return np.tile(xyz.reshape(-1, 3), (len(FIELDS), 1))


def as_fields(E: np.ndarray, Nphi: int, Ntheta: int) -> np.ndarray:
    """States ``(..., 3 * Nphi * Ntheta)`` as fields ``(..., 3, Nphi, Ntheta)`` (a view;
    ``[..., f, i, j]`` is field ``FIELDS[f]`` at longitude ``i``, colatitude ``j``)."""
    E = np.asarray(E)
    if E.shape[-1] != 3 * Nphi * Ntheta:
        raise ValueError(f"ShallowWater({Nphi}x{Ntheta}) states have size {3 * Nphi * Ntheta}, "
                         f"got {E.shape[-1]}")
    return E.reshape(*E.shape[:-1], 3, Nphi, Ntheta)


def subgrid_indices(Nphi: int, Ntheta: int, every: int | tuple[int, int] = (4, 2),
                    fields: str | tuple[str, ...] = "h", offset: int | tuple[int, int] = 0) -> np.ndarray:
    """Flat state indices of the fields ``fields`` (names from :data:`FIELDS`) at every
    ``every[0]``-th longitude and ``every[1]``-th colatitude starting at ``offset``; ordered by
    field, then longitude, then colatitude."""
    Nphi, Ntheta = _check_grid(Nphi, Ntheta)
    every = (int(every), int(every)) if np.ndim(every) == 0 else tuple(int(s) for s in every)
    offset = (int(offset), int(offset)) if np.ndim(offset) == 0 else tuple(int(o) for o in offset)
    if min(every) < 1 or any(not 0 <= o < s for o, s in zip(offset, every)):
        raise ValueError(f"need every >= 1 and 0 <= offset < every, got every={every}, offset={offset}")
    fields = (fields,) if isinstance(fields, str) else tuple(fields)
    bad = [f for f in fields if f not in FIELDS]
    if bad or not fields:
        raise ValueError(f"fields must be among {FIELDS}, got {fields!r}")
    rows, cols = np.arange(offset[0], Nphi, every[0]), np.arange(offset[1], Ntheta, every[1])
    cell = (rows[:, None] * Ntheta + cols[None, :]).ravel()
    return np.concatenate([FIELDS.index(f) * Nphi * Ntheta + cell for f in fields])


def mass(E: np.ndarray, Nphi: int, Ntheta: int) -> np.ndarray:
    r"""The mass anomaly :math:`\int h\, dA` (m³) of states ``(..., Nx)``, shape ``(...)``."""
    h = as_fields(E, Nphi, Ntheta)[..., 2, :, :]
    return np.einsum("...ij,ij->...", h, quadrature_weights(Nphi, Ntheta))


@dataclasses.dataclass(frozen=True)
class Jet:
    r"""A zonal jet (Galewsky et al. 2004, eq. 2) of peak speed ``umax`` (m/s) centred at latitude
    ``center`` (degrees) with half-width ``halfwidth`` (degrees):

    .. math:: u_\phi(\varphi) = \frac{u_{max}}{e_n}\exp\Big(\frac{1}{(\varphi - \varphi_0)
              (\varphi - \varphi_1)}\Big),\ \varphi_0 < \varphi < \varphi_1, \quad 0 \text{ elsewhere},

    :math:`\varphi_{0,1}` = centre ∓ half-width, :math:`e_n = \exp(-4/(\varphi_1 - \varphi_0)^2)`
    (so the peak is ``umax``). The defaults are Galewsky's: 80 m/s between 180/7 and 450/7 degrees.
    """

    umax: float = 80.0
    center: float = 45.0
    halfwidth: float = 135.0 / 7.0

    def __post_init__(self):
        if not (self.halfwidth > 0 and abs(self.center) + self.halfwidth <= 90):
            raise ValueError(f"the jet must lie within (-90, 90) degrees with a positive half-width, "
                             f"got {self}")


def jet_profile(lat: np.ndarray, jet: Jet) -> np.ndarray:
    """The jet's eastward velocity (m/s) at latitudes ``lat`` (radians), any shape."""
    lat = np.asarray(lat, dtype=float)
    lat0, lat1 = np.radians(jet.center - jet.halfwidth), np.radians(jet.center + jet.halfwidth)
    inside = (lat > lat0) & (lat < lat1)
    en = np.exp(-4.0 / (lat1 - lat0) ** 2)
    out = np.zeros_like(lat)
    out[inside] = jet.umax / en * np.exp(1.0 / ((lat[inside] - lat0) * (lat[inside] - lat1)))
    return out


def bump(phi: np.ndarray, lat: np.ndarray, amplitude: float = 120.0, lon: float = 0.0,
         lat_c: float = 45.0, alpha: float = 1 / 3, beta: float = 1 / 15) -> np.ndarray:
    r"""Galewsky's height perturbation (m) :math:`\hat h \cos\varphi\, e^{-(\Delta\phi/\alpha)^2}
    e^{-((\varphi_2 - \varphi)/\beta)^2}` centred at longitude ``lon`` and latitude ``lat_c``
    (degrees; :math:`\Delta\phi \in (-\pi, \pi]` the longitude difference); ``phi``, ``lat`` in
    radians, broadcast together."""
    dphi = np.angle(np.exp(1j * (np.asarray(phi) - np.radians(lon))))
    return (amplitude * np.cos(lat) * np.exp(-((dphi / alpha) ** 2))
            * np.exp(-(((np.radians(lat_c) - lat) / beta) ** 2)))


#: Length of the forcing's day and year (hours) and its largest declination (radians), as in
#: LD-EnSF's atmospheric data (a 42-day year).
DAY, YEAR, DECLINATION = 24.0, 1008.0, 0.4
#: The ranges of the forcing amplitude (m/hour) and width (radians) that LD-EnSF draws uniformly
#: per trajectory.
FORCING_AMPLITUDE, FORCING_WIDTH = (0.1, 30.0), (1.0, 4.0)


@dataclasses.dataclass(frozen=True)
class Heating:
    r"""The fixed shape of the migrating height forcing of :func:`height_forcing`: its ``day`` and
    ``year`` (hours) and its largest ``declination`` (radians). The amplitude and width are per
    member (the last two state components of :class:`ForcedShallowWater`)."""

    day: float = DAY
    year: float = YEAR
    declination: float = DECLINATION

    def __post_init__(self):
        if not (self.day > 0 and self.year > 0 and abs(self.declination) < np.pi / 2):
            raise ValueError(f"need a positive day and year and |declination| < pi/2, got {self}")


def forcing_center(t: float | np.ndarray, heating: Heating = Heating()) -> tuple[np.ndarray, np.ndarray]:
    r"""Longitude and latitude (radians) of the forcing's centre at time ``t`` (hours):
    :math:`\phi_c = 2\pi t/\mathrm{day}`, :math:`\varphi_c = \delta \sin(2\pi t/\mathrm{year})`
    (the "sun" circles the globe eastward once a day, its latitude swings by :math:`\pm\delta`
    over a year)."""
    t = np.asarray(t, dtype=float)
    return 2 * np.pi * t / heating.day, heating.declination * np.sin(2 * np.pi * t / heating.year)


def height_forcing(phi: np.ndarray, lat: np.ndarray, t: float, amplitude: float, width: float,
                   heating: Heating = Heating()) -> np.ndarray:
    r"""The height source (m/hour) of LD-EnSF's atmospheric data at longitudes ``phi`` and
    latitudes ``lat`` (radians, broadcast together) and time ``t`` (hours):

    .. math:: F_h = a\cos(\phi - \phi_c(t))\,\exp\big(-(\varphi - \varphi_c(t))^2/\sigma^2\big),

    :math:`(\phi_c, \varphi_c)` from :func:`forcing_center`, amplitude :math:`a` = ``amplitude``,
    width :math:`\sigma` = ``width``. Mass is added on the day side and removed on the night
    side: the zonal factor has zero mean, so :math:`\int F_h\, dA = 0`."""
    lon_c, lat_c = forcing_center(t, heating)
    return amplitude * np.cos(np.asarray(phi) - lon_c) * np.exp(-((np.asarray(lat) - lat_c) / width) ** 2)


class _Sim:
    """The Dedalus objects of one model: distributor, basis, fields, IVP solver (and the LBVP
    for balanced heights, built on first use)."""

    def __init__(self, Nphi: int, Ntheta: int, dealias: float, nu: float, forcing: Jet | None,
                 tau: float, timestepper: str, comm, heating: Heating | None = None):
        d3 = _dedalus()
        self.d3, self.shape = d3, (Nphi, Ntheta)
        coords = d3.S2Coordinates("phi", "theta")
        self.dist = dist = d3.Distributor(coords, dtype=np.float64, comm=comm)
        self.basis = basis = d3.SphereBasis(coords, (Nphi, Ntheta), radius=1.0, dealias=dealias,
                                            dtype=np.float64)
        self.u = u = dist.VectorField(coords, name="u", bases=basis)
        self.h = h = dist.Field(name="h", bases=basis)
        g, H, Omega = GRAVITY * METER / SECOND**2, DEPTH * METER, OMEGA / SECOND
        zcross = lambda A: d3.MulCosine(d3.skew(A))  # noqa: E731
        namespace = dict(u=u, h=h, nu=nu, g=g, H=H, Omega=Omega, zcross=zcross,
                         lap=d3.lap, grad=d3.grad, div=d3.div, dot=d3.dot, dt=d3.dt)
        t = dist.Field(name="t")
        namespace.update(t=t)
        hrhs = "- div(h*u)"
        if heating is not None:
            namespace.update(Fh=self._heating_term(heating, t, dealias))
            hrhs += " + Fh"
        problem = d3.IVP([u, h], namespace=namespace, time=t)
        if forcing is None:
            problem.add_equation("dt(u) + nu*lap(lap(u)) + g*grad(h) + 2*Omega*zcross(u) = - dot(u, grad(u))")
        else:
            uF = dist.VectorField(coords, name="uF", bases=basis)
            phi, theta = basis.local_grids(dist, (1, 1))
            uF.preset_scales(1)
            uF["g"][0] = VEL * jet_profile(np.pi / 2 - theta + 0 * phi, forcing)
            uF["g"][1] = 0.0
            namespace.update(uF=uF, tau=float(tau))
            problem.add_equation("dt(u) + nu*lap(lap(u)) + g*grad(h) + 2*Omega*zcross(u) + u/tau "
                                 "= uF/tau - dot(u, grad(u))")
        problem.add_equation("dt(h) + nu*lap(lap(h)) + H*div(u) = " + hrhs)
        self.solver = problem.build_solver(getattr(d3, timestepper), enforce_real_cadence=None,
                                           warmup_iterations=0)
        self._lbvp = None
        self.namespace = namespace

    def _heating_term(self, heating: Heating, t, dealias: float):
        r"""The Dedalus expression of :func:`height_forcing` (model units) with the time field ``t``
        and two constant fields, ``self.amp`` (:math:`a`, model heights per hour) and
        ``self.inv_w2`` (:math:`1/\sigma^2`), set per member by :meth:`set_heating`.
        :math:`\cos(\phi - \phi_c) = \cos\phi\cos\phi_c + \sin\phi\sin\phi_c`; the
        coordinate fields hold exact grid values at the dealiased scale (the evaluator reads them
        there, so they are never transformed: the latitude is not band-limited)."""
        dist, basis = self.dist, self.basis
        self.amp, self.inv_w2 = dist.Field(name="amp"), dist.Field(name="inv_w2")
        scales = (dealias, dealias)
        phi, theta = basis.local_grids(dist, scales)
        coords = {}
        for name, values in (("cos_phi", np.cos(phi) + 0 * theta), ("sin_phi", np.sin(phi) + 0 * theta),
                             ("lat", np.pi / 2 - theta + 0 * phi)):
            f = dist.Field(name=name, bases=basis)
            f.preset_scales(scales)
            f["g"] = values
            coords[name] = f
        w_day, w_year = 2 * np.pi / heating.day, 2 * np.pi / heating.year
        lat_c = heating.declination * np.sin(w_year * t)
        zonal = coords["cos_phi"] * np.cos(w_day * t) + coords["sin_phi"] * np.sin(w_day * t)
        self.set_heating(0.0, 1.0)
        return self.amp * zonal * np.exp(-self.inv_w2 * (coords["lat"] - lat_c) ** 2)

    def set_heating(self, amplitude: float, width: float) -> None:
        """Set the forcing's amplitude (m/hour) and width (radians) for the next steps."""
        self.amp["g"] = float(amplitude) * HGT
        self.inv_w2["g"] = 1.0 / float(width) ** 2

    def load(self, x: np.ndarray) -> None:
        """Set the fields from one state ``(Nx,)`` (SI units, the global grid)."""
        F = as_fields(x, *self.shape)
        self.u.load_from_global_grid_data(F[:2] * VEL)
        self.h.load_from_global_grid_data(F[2] * HGT)

    def read(self, out: np.ndarray) -> None:
        """Write the fields into one state ``out`` ``(Nx,)`` (gathered on every rank)."""
        F = as_fields(out, *self.shape)
        for f, scale in ((self.u, VEL), (self.h, HGT)):
            f.change_scales(1)
            data = f.allgather_data(layout="g") / scale
            if f is self.u:
                F[:2] = data
            else:
                F[2] = data

    def balanced_height(self, u_phi: np.ndarray) -> np.ndarray:
        r"""The height (m) ``(Nphi, Ntheta)`` in balance with the velocity ``(u_phi, 0)`` (m/s,
        global grid), of zero mean: :math:`g\Delta h = -\nabla\cdot(\mathbf u\cdot\nabla\mathbf u
        + 2\Omega\cos\theta\,\hat{\mathbf z}\times\mathbf u)` (Dedalus's LBVP, as in its example)."""
        d3 = self.d3
        if self._lbvp is None:
            c = self.dist.Field(name="c")
            ns = dict(self.namespace, c=c, ave=d3.Average)
            problem = d3.LBVP([self.h, c], namespace=ns)
            problem.add_equation("g*lap(h) + c = - div(dot(u, grad(u)) + 2*Omega*zcross(u))")
            problem.add_equation("ave(h) = 0")
            self._lbvp = problem.build_solver()
        self.u.load_from_global_grid_data(np.stack([u_phi, np.zeros_like(u_phi)]) * VEL)
        self._lbvp.solve()
        self.h.change_scales(1)
        return self.h.allgather_data(layout="g") / HGT


def _comm_or_self(comm):
    if comm is None:
        MPI = import_extra("mpi4py.MPI", "atmos", "mods.ShallowWater")

        return MPI.COMM_SELF
    return comm


class ShallowWater(Dynamics):
    r"""Rotating shallow water on the sphere (see the module): states ``(N, 3 * Nphi * Ntheta)``
    holding :math:`(u_\phi, u_\theta, h)` in m/s and m, time in hours.

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
        super().__init__(3 * self.Nphi * self.Ntheta, noise=noise,
                         coords=cartesian_coords(self.Nphi, self.Ntheta), domain=None)
        self.lonlat = lonlat(self.Nphi, self.Ntheta)
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
                 heating: Heating = Heating(), timestepper: str = "RK222", comm=None, noise=None,
                 amplitude_bounds: tuple[float, float] = (0.0, 60.0),
                 width_bounds: tuple[float, float] = (0.25, 8.0)):
        if not isinstance(heating, Heating):
            raise ValueError(f"heating must be a Heating, got {heating!r}")
        bounds = tuple(float(b) for b in amplitude_bounds), tuple(float(b) for b in width_bounds)
        if not (bounds[0][0] <= bounds[0][1] and 0 < bounds[1][0] <= bounds[1][1]):
            raise ValueError(f"need amplitude_bounds low <= high and 0 < width_bounds low <= high, "
                             f"got {amplitude_bounds!r}, {width_bounds!r}")
        self.heating, self.param_bounds = heating, bounds
        super().__init__(Nphi, Ntheta, dealias, nu, None, 48.0, timestepper, comm, None)
        Nc = 3 * self.Nphi * self.Ntheta
        Dynamics.__init__(self, Nc + 2, noise=noise, coords=np.vstack([self.coords, np.zeros((2, 3))]),
                          domain=None)
        self.lonlat = np.vstack([self.lonlat, np.full((2, 2), np.nan)])

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


def stable_dt(Nphi: int) -> float:
    """A safe model step (hours) for ``Nphi`` longitudes: 1 hour up to ``Nphi = 32``, then
    ``32 / Nphi`` (the advective CFL number stays about 0.3 for jets of 100 m/s)."""
    return min(1.0, 32.0 / Nphi)


@lru_cache(maxsize=4)
def _serial_sim(Nphi: int, Ntheta: int) -> _Sim:
    """An unforced serial model for building initial states (its LBVP)."""
    MPI = import_extra("mpi4py.MPI", "atmos", "mods.ShallowWater")

    return _Sim(Nphi, Ntheta, 1.5, default_nu(Ntheta), None, 1.0, "RK222", MPI.COMM_SELF)


def balanced_state(Nphi: int, Ntheta: int, jet: Jet = Jet(), perturbation: dict | None = None) -> np.ndarray:
    """A state ``(Nx,)``: the zonal ``jet``, its balanced height (zero mean, from Dedalus's LBVP)
    plus a :func:`bump` with the keyword arguments ``perturbation`` (default: Galewsky's, 120 m at
    45 degrees N, 0 E; ``dict(amplitude=0)`` for none)."""
    Nphi, Ntheta = _check_grid(Nphi, Ntheta)
    phi, theta = grid(Nphi, Ntheta)
    P, lat = np.meshgrid(phi, np.pi / 2 - theta, indexing="ij")
    u_phi = jet_profile(lat, jet)
    h = _serial_sim(Nphi, Ntheta).balanced_height(u_phi)
    h = h + bump(P, lat, **({} if perturbation is None else perturbation))
    return np.concatenate([u_phi.ravel(), np.zeros(Nphi * Ntheta), h.ravel()])


def random_jet_state(Nphi: int, Ntheta: int, rng: np.random.Generator,
                     umax: tuple[float, float] = (60.0, 100.0), center: tuple[float, float] = (40.0, 50.0),
                     amplitude: tuple[float, float] = (60.0, 180.0)) -> np.ndarray:
    """A :func:`balanced_state` with randomised parameters: jet speed and centre latitude, bump
    amplitude uniform in the given ranges, bump longitude uniform in [0, 360), at the jet's centre."""
    jet = Jet(umax=rng.uniform(*umax), center=rng.uniform(*center))
    pert = dict(amplitude=rng.uniform(*amplitude), lon=rng.uniform(0.0, 360.0), lat_c=jet.center)
    return balanced_state(Nphi, Ntheta, jet, pert)


def _check_range(name: str, r: tuple[float, float]) -> tuple[float, float]:
    """A uniform range ``(low, high)`` as floats, checked."""
    if len(r) != 2 or not r[0] <= r[1]:
        raise ValueError(f"{name} must be a range (low, high) with low <= high, got {r!r}")
    return float(r[0]), float(r[1])


class JetPrior(Prior):
    """Initial states of randomised balanced jets (:func:`random_jet_state`), one draw per member:
    jet speed ``umax`` (m/s) and centre latitude ``center`` (degrees), bump ``amplitude`` (m) and
    longitude; each range is ``(low, high)`` of a uniform distribution."""

    def __init__(self, Nphi: int = 32, Ntheta: int = 16, umax: tuple[float, float] = (60.0, 100.0),
                 center: tuple[float, float] = (40.0, 50.0), amplitude: tuple[float, float] = (60.0, 180.0)):
        self.Nphi, self.Ntheta = _check_grid(Nphi, Ntheta)
        self.ranges = {name: _check_range(name, r)
                       for name, r in (("umax", umax), ("center", center), ("amplitude", amplitude))}
        self.Nx = 3 * self.Nphi * self.Ntheta

    def sample(self, N: int, rng: np.random.Generator) -> np.ndarray:
        return np.stack([random_jet_state(self.Nphi, self.Ntheta, rng, **self.ranges) for _ in range(N)])


def random_forcing_params(N: int, rng: np.random.Generator,
                          amplitude: tuple[float, float] = FORCING_AMPLITUDE,
                          width: tuple[float, float] = FORCING_WIDTH) -> np.ndarray:
    r"""``N`` draws ``(N, 2)`` of the forcing parameters: amplitude :math:`a \sim U` ``amplitude``
    (m/hour) and width :math:`\sigma \sim U` ``width`` (radians), LD-EnSF's ranges by default."""
    return np.stack([rng.uniform(*amplitude, size=N), rng.uniform(*width, size=N)], axis=1)


class ForcedJetPrior(JetPrior):
    r"""Initial states of :class:`ForcedShallowWater` ``(N, 3 * Nphi * Ntheta + 2)``: a randomised
    balanced jet of :class:`JetPrior` per member, then forcing parameters from
    :func:`random_forcing_params` (amplitude ``forcing_amplitude`` m/hour, width
    ``forcing_width`` radians, uniform). All jets are drawn before all parameters."""

    def __init__(self, Nphi: int = 32, Ntheta: int = 16, umax: tuple[float, float] = (60.0, 100.0),
                 center: tuple[float, float] = (40.0, 50.0), amplitude: tuple[float, float] = (60.0, 180.0),
                 forcing_amplitude: tuple[float, float] = FORCING_AMPLITUDE,
                 forcing_width: tuple[float, float] = FORCING_WIDTH):
        super().__init__(Nphi, Ntheta, umax, center, amplitude)
        self.forcing_ranges = dict(amplitude=_check_range("forcing_amplitude", forcing_amplitude),
                                   width=_check_range("forcing_width", forcing_width))
        if not self.forcing_ranges["width"][0] > 0:
            raise ValueError(f"forcing_width must be positive, got {forcing_width!r}")
        self.Nx = 3 * self.Nphi * self.Ntheta + 2

    def sample(self, N: int, rng: np.random.Generator) -> np.ndarray:
        fields = super().sample(N, rng)
        return np.hstack([fields, random_forcing_params(N, rng, **self.forcing_ranges)])
