"""Kuramoto–Sivashinsky as in the MNMEF paper (Bach et al. 2025, arXiv 2504.17836).

Nx = 128 on a 32*pi periodic domain, ETDRK4 with dt = 0.25, observations every 1.0 time unit
(4 steps) of every 8th grid point with noise sigma_y = 1, 1500 observation cycles. Prior:
truth and ensemble drawn independently from N(x_a, I) around a point on the attractor (see
``mods.Lorenz96.bach2025`` for why this differs slightly from the paper's truth + N(0, I));
burn-in: the first 100 cycles.

Expected (published tuned DAPPER rmse.a; docs/design.md, Reference figures):

===========  =====  =====  =====  =====  =====  =====  =====
N            5      10     15     20     40     60     100
===========  =====  =====  =====  =====  =====  =====  =====
LETKF        1.225  1.074  1.018  0.995  0.957  0.940  0.920
EnKF Sqrt    1.556  1.478  1.362  1.290  1.109  1.039  0.983
===========  =====  =====  =====  =====  =====  =====  =====
"""

from functools import lru_cache

import numpy as np

from dafilters.hmm import HMM as _HMM
from dafilters.hmm import Chronology, GaussPrior
from dafilters.observations import PartialObs

from . import KS, x0


@lru_cache(maxsize=4)
def attractor_point(Nx: int = 128, T: float = 150.0, dt: float = 0.25) -> np.ndarray:
    """A state on the attractor: Kassam & Trefethen's initial condition integrated ``T`` units."""
    dyn = KS(Nx)
    x = x0(Nx)
    for k in range(int(round(T / dt))):
        x = dyn.step(x, k * dt, dt)
    return x


def build(sigma: float = 1.0, every: int = 8, Nx: int = 128, Ko: int = 1499) -> _HMM:
    """The setting with observation noise ``sigma`` observing every ``every``-th point."""
    return _HMM(
        dyn=KS(Nx),
        obs=PartialObs(Nx, np.arange(0, Nx, every), noise=sigma**2),
        tseq=Chronology(0.25, dko=4, Ko=Ko, BurnIn=100.0),
        prior=GaussPrior(attractor_point(Nx), 1.0),
        name=f"KS.bach2025(sigma={sigma:g}, every={every})",
    )


HMM = build()
