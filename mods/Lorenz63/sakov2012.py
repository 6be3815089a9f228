"""Lorenz-63 as in Sakov, Oliver & Bertino (2012), "An iterative EnKF for strongly nonlinear
systems", Table 1 (the setting of DAPPER's ``mods.Lorenz63.sakov2012``).

dt = 0.01, observation every 25 steps of all three variables with R = 2 I, prior N(x0, 2 I),
no model noise, burn-in 16 time units.

Expected figures (DAPPER 1.8.1, 5000 observation cycles, seed 3000; docs/design.md,
Reference figures):

=========================================  ===============
method                                      rmse.a
=========================================  ===============
EnKF('Sqrt', N=10, infl=1.02, rot=True)     0.564 +- 0.014
EnKF('PertObs', N=10, infl=1.04)            0.626 +- 0.024
PartFilt(N=100, reg=2.4, NER=0.3)           0.36-0.40 (several seeds)
=========================================  ===============
"""

from dafilters.hmm import HMM, Chronology, GaussPrior
from dafilters.observations import IdentityObs

from . import Lorenz63, x0

tseq = Chronology(0.01, dko=25, Ko=1000, BurnIn=16.0)  # DAPPER's BurnIn = 4 * Tplot

HMM = HMM(
    dyn=Lorenz63(),
    obs=IdentityObs(3, noise=2.0),
    tseq=tseq,
    prior=GaussPrior(x0, 2.0),
    name="Lorenz63.sakov2012",
)
