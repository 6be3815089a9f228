"""Lorenz-63 as in the SDA paper (Rozet & Louppe 2023, "Score-based data assimilation",
arXiv 2306.10574), checked against its reference code (github.com/francois-rozet/sda).

**The paper's setting** (``build()``, ``regime="paper"``, the default):

- *Dynamics*: one classical RK4 step of dt = 0.025 (``sda/mcs.py``: ``DiscreteODE.rk4``,
  ``steps=1``; ``experiments/lorenz/utils.py``: ``make_chain() = NoisyLorenz63(dt=0.025)``)
  followed by Gaussian transition noise of standard deviation ``sqrt(dt)`` on every component
  (``NoisyLorenz63.moments`` returns ``(RK4 step, dt ** 0.5)``). Here ``Lorenz63(noise=1.0)``:
  :class:`~dafilters.hmm.Dynamics` adds ``sqrt(dt) N(0, Q)`` after each step, with ``Q = I`` the
  same noise.
- *Observations*: the first variable every 8 steps with noise ``sigma = 0.05`` (the "lo" setting;
  "hi": every step with ``sigma = 0.25``, ``build(every=1, sigma=0.25)``), where sigma applies to
  the **standardised** state (``experiments/lorenz/eval.py``: ``y_lo = N(x[:, ::8, :1], 0.05)``
  on the test set, stored standardised by ``generate.py`` through ``chain.preprocess``;
  ``A = lambda x: chain.preprocess(x)[..., :1]``). The reference standardises with the fixed
  constants ``mean (0, 0, 25)``, ``std (8, 9, 8.6)`` (``sda/mcs.py``: ``Lorenz63.preprocess``),
  so the noise is ``sigma * 8`` in model units: 0.4 ("lo"), 2.0 ("hi"). (A long run of the noisy
  model gives mean (0.0, 0.0, 23.7) and std (7.96, 9.00, 8.45): the constants are close.)
- *Prior*: ``N(x0, I)`` around DAPPER's point on the attractor (the runs' first 50 cycles are left
  out of the averages). The reference's initial distribution is ``N((0, 0, 25), Sigma)``
  (``Lorenz63.prior``, :data:`PRIOR_MEAN`, :data:`PRIOR_COV`) spun up by 1024 transitions for its
  data (``generate.py``) and by 64 + 8 for the particle smoother's window (``utils.posterior``);
  both amount to the climatology, which the burn-in reaches as well.
- The reference scores *smoothing*, not filtering: posterior samples of 65-state windows (9
  observations, at states 0, 8, ..., 64) against a bootstrap particle smoother of 16384 particles
  (see ``benchmarks/sda_paper.py`` and :mod:`dafilters.smoothing`).

**The deterministic regime** (``build(regime="deterministic")``, this module's setting before
the paper's was checked): no model noise and ``sigma`` in model units (0.05: 8 times sharper than
the paper's), the same name as before (``Lorenz63.rozet2023(every=8, sigma=0.05)``), so results
and tests recorded in it keep their identity.

500 observation cycles in both; ``Ko``, ``burn_in_cycles`` change the length.
"""

from __future__ import annotations

import numpy as np

from dafilters.hmm import HMM as _HMM
from dafilters.hmm import Chronology, GaussPrior
from dafilters.observations import PartialObs

from . import Lorenz63, x0

#: Model step (``experiments/lorenz/utils.py``: ``NoisyLorenz63(dt=0.025)``).
DT = 0.025
#: The reference's standardisation, ``x_std = (x - MEAN) / STD`` (``sda/mcs.py``: ``Lorenz63.preprocess``).
MEAN = np.array([0.0, 0.0, 25.0])
STD = np.array([8.0, 9.0, 8.6])
#: The reference's initial distribution ``N(PRIOR_MEAN, PRIOR_COV)`` (``sda/mcs.py``: ``Lorenz63.prior``).
PRIOR_MEAN = np.array([0.0, 0.0, 25.0])
PRIOR_COV = np.array([[64.0, 50.0, 0.0], [50.0, 81.0, 0.0], [0.0, 0.0, 75.0]])
#: The regimes of :func:`build`.
REGIMES = ("paper", "deterministic")


def standardise(x: np.ndarray) -> np.ndarray:
    """States ``(..., 3)`` in the reference's standardised units."""
    return (np.asarray(x) - MEAN) / STD


def unstandardise(x: np.ndarray) -> np.ndarray:
    """The inverse of :func:`standardise`."""
    return MEAN + STD * np.asarray(x)


def build(every: int = 8, sigma: float = 0.05, Ko: int = 499, burn_in_cycles: int = 50,
          regime: str = "paper") -> _HMM:
    """Observe ``x`` every ``every`` steps of dt = 0.025 with noise ``sigma``.

    Args:
        regime: ``"paper"``: model noise ``sqrt(dt) N(0, I)`` per step and ``sigma`` in the
            reference's standardised units (``sigma * 8`` in model units); ``"deterministic"``:
            no model noise and ``sigma`` in model units (this module's former setting).
    """
    if regime not in REGIMES:
        raise ValueError(f"regime must be one of {REGIMES}, got {regime!r}")
    tseq = Chronology(DT, dko=every, Ko=Ko, BurnIn=DT * every * (burn_in_cycles + 0.5))
    if regime == "deterministic":
        return _HMM(dyn=Lorenz63(), obs=PartialObs(3, [0], noise=sigma**2), tseq=tseq,
                    prior=GaussPrior(x0, 1.0), name=f"Lorenz63.rozet2023(every={every}, sigma={sigma:g})")
    return _HMM(
        dyn=Lorenz63(noise=1.0),
        obs=PartialObs(3, [0], noise=float(sigma * STD[0]) ** 2),
        tseq=tseq,
        prior=GaussPrior(x0, 1.0),
        name=f"Lorenz63.rozet2023(every={every}, sigma={sigma:g} standardised, model noise)",
    )


HMM = build()
