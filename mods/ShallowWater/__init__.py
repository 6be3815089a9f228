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
``ShallowWater.field_points()`` the grid in radians with the three fields, as LD-EnSF's decoder
reads them;
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

Modules: :mod:`~mods.ShallowWater.grid` (constants, grid, layout), :mod:`~mods.ShallowWater.forcing`
(:class:`Jet`, :class:`Heating`), :mod:`~mods.ShallowWater.sim` (the Dedalus plumbing),
:mod:`~mods.ShallowWater.dynamics` (the models), :mod:`~mods.ShallowWater.priors` (initial
states); every public name is importable from here.
"""

from __future__ import annotations

from dafilters.public import set_public_module

from .dynamics import ForcedShallowWater, ShallowWater
from .forcing import (
    DAY,
    DECLINATION,
    FORCING_AMPLITUDE,
    FORCING_WIDTH,
    YEAR,
    Heating,
    Jet,
    forcing_center,
    height_forcing,
    jet_profile,
)
from .grid import (
    DEPTH,
    FIELDS,
    GRAVITY,
    OMEGA,
    RADIUS,
    as_fields,
    cartesian_coords,
    default_nu,
    grid,
    lonlat,
    mass,
    quadrature_weights,
    stable_dt,
    subgrid_indices,
)
from .priors import ForcedJetPrior, JetPrior, balanced_state, bump, random_forcing_params, random_jet_state
from .sim import _dedalus as _dedalus  # the import of Dedalus (not public; tests call it)

__all__ = ["ShallowWater", "ForcedShallowWater", "Jet", "JetPrior", "ForcedJetPrior", "Heating",
           "RADIUS", "OMEGA", "GRAVITY", "DEPTH", "FIELDS", "DAY", "YEAR", "DECLINATION",
           "FORCING_AMPLITUDE", "FORCING_WIDTH", "default_nu", "stable_dt", "grid", "lonlat",
           "cartesian_coords", "as_fields", "subgrid_indices", "quadrature_weights", "mass", "jet_profile",
           "bump", "balanced_state", "random_jet_state", "forcing_center", "height_forcing",
           "random_forcing_params"]

# Defined in the modules above, identified as members of this package (as before the split): see
# dafilters.public.
set_public_module(__name__, ShallowWater, ForcedShallowWater, Jet, Heating, JetPrior, ForcedJetPrior,
                  jet_profile, forcing_center, height_forcing, default_nu, grid, lonlat, cartesian_coords,
                  as_fields, subgrid_indices, quadrature_weights, mass, stable_dt, bump, balanced_state,
                  random_jet_state, random_forcing_params)
