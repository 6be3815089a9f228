"""Lorenz-96 with arctan observations, as in the EnSF paper (Bao, Zhang & Zhang 2024, "An ensemble
score filter for tracking high-dimensional nonlinear dynamical systems", arXiv 2309.00983).

F = 8, RK4 with dt = 0.01, no model noise; every variable observed through arctan every 10 steps
(0.1 time units) with sigma_y = 0.05; the truth and the initial ensemble are drawn from the
uninformed N(0, I). Any ``Nx`` (the paper goes to 10^6; ``build(Nx=...)``). 150 observation
cycles; the time averages cover the last 50 analyses (after t = 10).

Differences from the reference code: its truth starts from stored states on the attractor (and
one of its experiments adds random "shocks" to the truth); here the truth starts from the same
N(0, I) as the ensemble and the first 100 cycles (10 time units of spin-up) are left out of
the averages.

**Shock scenario** (``build(shock=True)``): the reference's ``run_all_EnSF/param_problem.csv``,
problem 3 (``shock_dir = ../data/shock_profile_1.npy``), where the paper claims robustness beyond
the LETKF. The *truth* (not the filters' model) jumps after 41 of its 1500 model steps:
``x += size * |x| * N(0, I)`` with sizes 0.05, 0.2 or 0.5 (:data:`SHOCKS`, the nonzero entries
of ``data/shock_profile_1.npy``, drawn by ``data/gen_shock.ipynb`` with per-step probabilities
0.02, 0.01, 0.005); the rest is the plain setting (:class:`~mods.Lorenz96.twin.TwinHMM`,
:class:`~mods.Lorenz96.twin.ShockedDynamics`).

Expected figures (docs/design.md, Reference figures; Nx = 100, sigma_y = 0.05, mean RMSE over the last 50
analyses): tuned EnSF (N=20, eps_a 0.5, eps_b 0.025, 200 reverse steps) about 0.19, tuned LETKF
about 0.14. At Nx = 10^6 the reference code reports about 3.7 s per EnSF analysis on a GPU (500
reverse steps) and about 330 s per LETKF analysis on a CPU. This repository's figures are in
``benchmarks/README.md`` (``benchmarks/score_filters.py``, ``benchmarks/ensf_scale.py``).
"""

from __future__ import annotations

import numpy as np

from dafilters.hmm import HMM as _HMM
from dafilters.hmm import Chronology, GaussPrior
from dafilters.observations import ArctanObs

from . import Lorenz96
from .twin import ShockedDynamics, TwinHMM

#: ``(model step, size)`` of the reference's shock profile ``data/shock_profile_1.npy`` (its loop
#: index ``i`` shocks the truth after step ``i + 1``).
SHOCKS = tuple(zip(
    (9, 38, 72, 79, 177, 191, 229, 236, 261, 294, 364, 442, 454, 514, 598, 611, 637, 638, 728, 742,
     851, 910, 911, 932, 946, 949, 951, 1124, 1137, 1140, 1177, 1182, 1192, 1215, 1239, 1291, 1313,
     1323, 1359, 1445, 1451),
    (0.2, 0.05, 0.05, 0.05, 0.05, 0.2, 0.5, 0.05, 0.5, 0.2, 0.5, 0.05, 0.05, 0.5, 0.2, 0.05, 0.5,
     0.05, 0.2, 0.05, 0.05, 0.2, 0.5, 0.2, 0.05, 0.2, 0.2, 0.05, 0.05, 0.05, 0.05, 0.5, 0.05, 0.2,
     0.2, 0.2, 0.5, 0.05, 0.2, 0.05, 0.05)))


def build(Nx: int = 100, sigma: float = 0.05, Ko: int = 149, dko: int = 10, dt: float = 0.01,
          averaged: int = 50, shock: bool = False) -> _HMM:
    """The EnSF setting with ``Nx`` variables and arctan-observation noise ``sigma``.

    Args:
        Nx: state size. sigma: observation-error standard deviation. Ko: index of the last
            observation (``Ko + 1`` cycles). dko: model steps between observations. dt: RK4 step.
        averaged: the number of final analyses that enter the time averages.
        shock: the reference's shock scenario (:data:`SHOCKS` jump the truth only): a
            :class:`~mods.Lorenz96.twin.TwinHMM`.
    """
    if not 0 < averaged <= Ko + 1:
        raise ValueError(f"averaged must be in [1, Ko+1] = [1, {Ko + 1}], got {averaged}")
    BurnIn = dt * dko * (Ko + 1 - averaged + 0.5)  # the last `averaged` observation times are after it
    parts = dict(
        dyn=Lorenz96(Nx),
        obs=ArctanObs(Nx, noise=sigma**2),
        tseq=Chronology(dt, dko=dko, Ko=Ko, BurnIn=BurnIn),
        prior=GaussPrior(np.zeros(Nx), 1.0),
        name=f"Lorenz96.bao2024(Nx={Nx}, sigma={sigma:g})",
    )
    if not shock:
        return _HMM(**parts)
    K = parts["tseq"].K
    shocks = [(k, s) for k, s in SHOCKS if 1 <= k <= K and s > 0]
    parts["name"] = parts["name"][:-1] + ", shock)"
    return TwinHMM(**parts, truth_dyn=ShockedDynamics(parts["dyn"], shocks, dt))


HMM = build()
