"""Lorenz-63 as in the SDA paper (Rozet & Louppe 2023, "Score-based data assimilation",
arXiv 2306.10574).

RK4 with dt = 0.025, no model noise; the first variable observed every 8 steps with noise
sigma = 0.05 (``build()``), or every step with sigma = 0.25 (``build(every=1, sigma=0.25)``).
Truth and ensemble start from N(x0, I) around DAPPER's initial point; 500 observation cycles, the
first 50 left out of the averages. Figures: ``benchmarks/learned.py`` (``benchmarks/README.md``).
"""

from __future__ import annotations

from dafilters.hmm import HMM as _HMM
from dafilters.hmm import Chronology, GaussPrior
from dafilters.observations import PartialObs

from . import Lorenz63, x0


def build(every: int = 8, sigma: float = 0.05, Ko: int = 499, burn_in_cycles: int = 50) -> _HMM:
    """Observe ``x`` every ``every`` steps of dt = 0.025 with noise ``sigma``."""
    dt = 0.025
    return _HMM(
        dyn=Lorenz63(),
        obs=PartialObs(3, [0], noise=sigma**2),
        tseq=Chronology(dt, dko=every, Ko=Ko, BurnIn=dt * every * (burn_in_cycles + 0.5)),
        prior=GaussPrior(x0, 1.0),
        name=f"Lorenz63.rozet2023(every={every}, sigma={sigma:g})",
    )


HMM = build()
