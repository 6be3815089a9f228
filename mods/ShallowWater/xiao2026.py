r"""Shallow water on the sphere with sparse height observations, in the spirit of LD-EnSF's
atmospheric test (Xiao, Si & Chen, "LD-EnSF: Synergizing latent dynamics with ensemble score
filters for fast data assimilation with sparse observations", ICLR 2026).

**Model** (:class:`mods.ShallowWater.ShallowWater`): rotating shallow water on the sphere, Dedalus
``SphereBasis`` on ``Nphi x Ntheta = 32 x 16`` by default, unforced, state
:math:`(u_\phi, u_\theta, h)` (m/s, m) on the grid, ``Nx = 1536``. Time in hours.

**Trajectories with randomised parameters.** Truth and ensemble members are drawn independently
from :class:`~mods.ShallowWater.JetPrior`: a Galewsky-type zonal jet with peak speed
:math:`U(60, 100)` m/s centred at latitude :math:`U(40, 50)` degrees, its height in geostrophic
(gradient-wind) balance, plus a height bump of :math:`U(60, 180)` m at a uniformly random longitude
on the jet's axis. Each trajectory is thus one draw of the jet and perturbation parameters.

**Observations**: the height at every 4th longitude and every 2nd Gauss latitude (a ``8 x 8``
sub-grid at ``32 x 16``, ``Ny = 64``, :func:`~mods.ShallowWater.subgrid_indices`) every 6 hours,
Gaussian noise ``sigma_h = 10`` m; ``observe=("h", "u_phi", "u_theta")`` adds the winds there with
noise ``sigma_u = 1`` m/s. Observation locations are the grid points (Cartesian, km), so localized
filters use chord distances in km.

**Time.** Model step :func:`~mods.ShallowWater.stable_dt` (1 hour at ``Nphi = 32``),
observations every 6 hours, ``Ko = 39`` (10 days), burn-in 1 day.

Differences from the paper: its atmospheric data come from a different model set-up and grid; the
resolution, parameter ranges, observation network and noise here are our choices for a test bed
that runs on a laptop. No filter RMSE of the paper is stated here.
"""

from __future__ import annotations

import numpy as np

from dafilters.hmm import HMM as _HMM
from dafilters.hmm import Chronology
from dafilters.observations import PartialObs

from . import FIELDS, JetPrior, ShallowWater, stable_dt, subgrid_indices

__all__ = ["build", "HMM", "DT_OBS"]

#: Time between observations (hours).
DT_OBS = 6.0


def build(Nphi: int = 32, Ntheta: int = 16, every: tuple[int, int] = (4, 2), sigma_h: float = 10.0,
          sigma_u: float = 1.0, observe: tuple[str, ...] = ("h",), Ko: int = 39, dko: int | None = None,
          comm=None) -> _HMM:
    """The setting on an ``Nphi x Ntheta`` grid observing the fields ``observe`` at every
    ``every[0]``-th longitude and ``every[1]``-th colatitude every 6 hours.

    Args:
        Nphi, Ntheta: the model grid. every: observation strides (longitude, colatitude).
        sigma_h: height observation noise std (m). sigma_u: wind observation noise std (m/s).
        observe: names among ``("u_phi", "u_theta", "h")``.
        Ko: index of the last observation. dko: model steps per observation interval (default
            ``6 / stable_dt(Nphi)``).
        comm: MPI communicator to distribute the model's grid over (default: serial).
    """
    observe = (observe,) if isinstance(observe, str) else tuple(observe)
    if not sigma_h > 0 or not sigma_u > 0:
        raise ValueError(f"observation noise must be positive, got sigma_h={sigma_h}, sigma_u={sigma_u}")
    dyn = ShallowWater(Nphi, Ntheta, comm=comm)
    idx = subgrid_indices(Nphi, Ntheta, every, observe)
    per_field = len(idx) // len(observe)
    var = np.concatenate([np.full(per_field, (sigma_h if f == "h" else sigma_u) ** 2) for f in observe])
    dko = int(np.ceil(DT_OBS / stable_dt(Nphi) - 1e-9)) if dko is None else int(dko)
    fields = "" if observe == ("h",) else f", observe={'+'.join(f for f in FIELDS if f in observe)}"
    return _HMM(
        dyn=dyn,
        obs=PartialObs(dyn.Nx, idx, var),
        tseq=Chronology(DT_OBS / dko, dko=dko, Ko=Ko, BurnIn=min(24.0, DT_OBS * (Ko // 2))),
        prior=JetPrior(Nphi, Ntheta),
        name=(f"ShallowWater.xiao2026({Nphi}x{Ntheta}, every={tuple(every)}, sigma_h={sigma_h:g}"
              + (f", sigma_u={sigma_u:g}" if observe != ("h",) else "") + fields + ")"),
    )


HMM = build()
