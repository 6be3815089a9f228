"""Lorenz-96 as in Sakov & Oke (2008), "A deterministic formulation of the ensemble Kalman
filter" (the setting of DAPPER's ``mods.Lorenz96.sakov2008``).

Nx = 40, F = 8, dt = 0.05, every variable observed at every step with R = I, prior
N(x0, 0.001 I) with x0 = e_1, no model noise, burn-in 20 time units.

Expected figures (DAPPER 1.8.1, 5000 observation cycles, seed 3000; docs/design.md,
Reference figures):

=========================================  ===============
method                                      rmse.a
=========================================  ===============
EnKF('Sqrt', N=40, infl=1.01)               0.180 +- 0.002
EnKF('DEnKF', N=40, infl=1.01)              0.181 +- 0.002
EnKF('PertObs', N=40, infl=1.06)            0.219 +- 0.002
LETKF(N=20, infl=1.04, loc_rad=4)           0.217 +- 0.002
LETKF(N=7, infl=1.04, loc_rad=4, rot=True)  0.219 +- 0.002
=========================================  ===============
"""

from dafilters.hmm import HMM, Chronology, GaussPrior
from dafilters.observations import IdentityObs

from . import Lorenz96, x0

Nx = 40
tseq = Chronology(0.05, dko=1, Ko=1000, BurnIn=20.0)  # DAPPER's BurnIn = 2 * Tplot

HMM = HMM(
    dyn=Lorenz96(Nx),
    obs=IdentityObs(Nx, noise=1.0),
    tseq=tseq,
    prior=GaussPrior(x0(Nx), 0.001),
    name="Lorenz96.sakov2008",
)
