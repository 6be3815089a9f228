"""The Dedalus plumbing of :mod:`mods.ShallowWater`: importing Dedalus quietly and reproducibly,
the solver objects of one model (:class:`_Sim`) and the MPI communicator."""

from __future__ import annotations

import logging
from functools import lru_cache

import numpy as np

from dafilters.extras import import_extra

from .forcing import Heating, Jet, jet_profile
from .grid import DEPTH, GRAVITY, HGT, METER, OMEGA, SECOND, VEL, as_fields, default_nu

__all__: list[str] = []  # the module's private plumbing (its names start with an underscore)


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


@lru_cache(maxsize=4)
def _serial_sim(Nphi: int, Ntheta: int) -> _Sim:
    """An unforced serial model for building initial states (its LBVP)."""
    MPI = import_extra("mpi4py.MPI", "atmos", "mods.ShallowWater")

    return _Sim(Nphi, Ntheta, 1.5, default_nu(Ntheta), None, 1.0, "RK222", MPI.COMM_SELF)
