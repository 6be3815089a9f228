r"""Shallow water on the sphere with sparse height observations and unknown forcing parameters,
in the spirit of LD-EnSF's atmospheric test (Xiao, Si & Chen, "LD-EnSF: Synergizing latent
dynamics with ensemble score filters for fast data assimilation with sparse observations",
ICLR 2026).

**Model** (:class:`mods.ShallowWater.ForcedShallowWater`): rotating shallow water on the sphere,
Dedalus ``SphereBasis`` on ``Nphi x Ntheta = 32 x 16`` by default, driven by LD-EnSF's migrating
height source :math:`F_h = a\cos(\phi - \phi_c(t))\exp(-(\varphi - \varphi_c(t))^2/\sigma^2)`
(:func:`~mods.ShallowWater.height_forcing`: the centre circles the globe once a day, its latitude
swings by 0.4 rad over a 42-day year). State :math:`(u_\phi, u_\theta, h, a, \sigma)` (m/s, m,
m/hour, radians), ``Nx = 1538``; the forcing amplitude :math:`a` and width :math:`\sigma` are
constant in time and unknown to the filters, which estimate them with the flow (as
:math:`\log Re` in :mod:`mods.Kolmogorov.xiao2026`). Time in hours, from 0 at the first state.

**Trajectories with randomised parameters** (:class:`~mods.ShallowWater.ForcedJetPrior`). As in
the paper's data (``hf0 ~ U(0.1, 30)``, ``sigma ~ U(1, 4)`` per trajectory), each trajectory
draws :math:`a \sim U(0.1, 30)` m/hour and :math:`\sigma \sim U(1, 4)` radians. Its initial flow
is a Galewsky-type zonal jet with peak speed :math:`U(60, 100)` m/s centred at latitude
:math:`U(40, 50)` degrees, its height in gradient-wind balance, plus a height bump of
:math:`U(60, 180)` m at a uniformly random longitude on the jet's axis. Truth and ensemble members
are drawn from the prior independently. Unforced, this flow stays zonal at this resolution; the
forcing drives a wave-1 response whose size grows with :math:`a` (over the 10 days, :math:`h`
changes by about 0.3-0.6 of its spatial standard deviation for :math:`a \gtrsim 8` m/hour,
against 0.15-0.2 unforced). ``forced=False`` gives the unforced model and :class:`JetPrior`
(``Nx = 1536``).

**Observations**: the height at every 4th longitude and every 2nd Gauss latitude (a ``8 x 8``
sub-grid at ``32 x 16``, ``Ny = 64``, :func:`~mods.ShallowWater.subgrid_indices`) every 6 hours,
Gaussian noise ``sigma_h = 10`` m; ``observe=("h", "u_phi", "u_theta")`` adds the winds there with
noise ``sigma_u = 1`` m/s. The parameters are not observed. Observation locations are the grid
points (Cartesian, km), so localized filters use chord distances in km; the parameter components
sit at the sphere's centre (6371 km from every observation).

**Time.** Model step :func:`~mods.ShallowWater.stable_dt` (1 hour at ``Nphi = 32``),
observations every 6 hours, ``Ko = 39`` (10 days), burn-in 1 day.

Differences from the paper: its data start every trajectory from one observed 500 hPa state (with
topography, mean depth about 5500 m) on a 512 x 256 grid after a burn-in, and it randomises only
the forcing; here the initial jets are randomised too, the depth is 10 km, there is no
topography, and the resolution, observation network and noise are our choices for a test bed that
runs on a laptop. No filter RMSE of the paper is stated here.
"""

from __future__ import annotations

import numpy as np

from dafilters.hmm import HMM as _HMM
from dafilters.hmm import Chronology
from dafilters.observations import PartialObs

from . import (
    FIELDS,
    FORCING_AMPLITUDE,
    FORCING_WIDTH,
    ForcedJetPrior,
    ForcedShallowWater,
    JetPrior,
    ShallowWater,
    stable_dt,
    subgrid_indices,
)

__all__ = ["build", "HMM", "DT_OBS"]

#: Time between observations (hours).
DT_OBS = 6.0


def build(Nphi: int = 32, Ntheta: int = 16, every: tuple[int, int] = (4, 2), sigma_h: float = 10.0,
          sigma_u: float = 1.0, observe: tuple[str, ...] = ("h",), Ko: int = 39, dko: int | None = None,
          comm=None, forced: bool = True, forcing_amplitude: tuple[float, float] = FORCING_AMPLITUDE,
          forcing_width: tuple[float, float] = FORCING_WIDTH) -> _HMM:
    """The setting on an ``Nphi x Ntheta`` grid observing the fields ``observe`` at every
    ``every[0]``-th longitude and ``every[1]``-th colatitude every 6 hours.

    Args:
        Nphi, Ntheta: the model grid. every: observation strides (longitude, colatitude).
        sigma_h: height observation noise std (m). sigma_u: wind observation noise std (m/s).
        observe: names among ``("u_phi", "u_theta", "h")``.
        Ko: index of the last observation. dko: model steps per observation interval (default
            ``6 / stable_dt(Nphi)``).
        comm: MPI communicator to distribute the model's grid over (default: serial).
        forced: the forced model with the forcing parameters in the state (default), or the
            unforced one. forcing_amplitude, forcing_width: the prior's ranges (m/hour, radians).
    """
    observe = (observe,) if isinstance(observe, str) else tuple(observe)
    if not sigma_h > 0 or not sigma_u > 0:
        raise ValueError(f"observation noise must be positive, got sigma_h={sigma_h}, sigma_u={sigma_u}")
    if forced:
        dyn = ForcedShallowWater(Nphi, Ntheta, comm=comm)
        prior = ForcedJetPrior(Nphi, Ntheta, forcing_amplitude=forcing_amplitude, forcing_width=forcing_width)
    else:
        dyn, prior = ShallowWater(Nphi, Ntheta, comm=comm), JetPrior(Nphi, Ntheta)
    idx = subgrid_indices(Nphi, Ntheta, every, observe)
    per_field = len(idx) // len(observe)
    var = np.concatenate([np.full(per_field, (sigma_h if f == "h" else sigma_u) ** 2) for f in observe])
    dko = int(np.ceil(DT_OBS / stable_dt(Nphi) - 1e-9)) if dko is None else int(dko)
    fields = "" if observe == ("h",) else f", observe={'+'.join(f for f in FIELDS if f in observe)}"
    forcing = (f", a={forcing_amplitude[0]:g}-{forcing_amplitude[1]:g}, "
               f"sigma={forcing_width[0]:g}-{forcing_width[1]:g}" if forced else ", unforced")
    return _HMM(
        dyn=dyn,
        obs=PartialObs(dyn.Nx, idx, var),
        tseq=Chronology(DT_OBS / dko, dko=dko, Ko=Ko, BurnIn=min(24.0, DT_OBS * (Ko // 2))),
        prior=prior,
        name=(f"ShallowWater.xiao2026({Nphi}x{Ntheta}, every={tuple(every)}, sigma_h={sigma_h:g}"
              + (f", sigma_u={sigma_u:g}" if observe != ("h",) else "") + fields
              + forcing + ")"),
    )


HMM = build()
