"""Kolmogorov flow as in score-based data assimilation (SDA, Rozet & Louppe 2023, arXiv
2306.10574; also used by SSLS, arXiv 2411.13443).

State: the 64 x 64 vorticity field (``Nx = 4096``, row-major, see :mod:`mods.Kolmogorov`),
Re = 1000, forcing wavenumber 4, drag 0.1, on [0, 2 pi)^2. Model step ``dt = 0.2 / dko``
(``dko = 20``: ``dt = 0.01``), observations every ``dko`` steps, i.e. every 0.2 time units as
between SDA's states. Observations: the vorticity at every 4th grid point in each direction
(a regular 16 x 16 mask, :class:`~dafilters.observations.GridMaskObs`) with noise
``sigma_y = 0.1``. Prior: truth and ensemble drawn independently from ``N(x_s, I)`` around a
spun-up state ``x_s`` (:func:`mods.Kolmogorov.spun_up_state`: a random field integrated 50 time
units; its vorticity RMS is about 4.6), so the initial error is about sqrt(2) per grid point and
spatially white (the dynamics correlate it within a few cycles). Burn-in: the first 10 cycles
(2 time units; fewer when ``Ko < 20``). Localization radii are lengths in the domain's units
(grid spacing ``2 pi / n``, about 0.098 at n = 64).

The papers publish no filter RMSE for this setting (SDA shows reconstructions), so no expected
figures are stated. The default ``Ko = 99`` (100 cycles, 20 time units) keeps a truth quick to
simulate (a few seconds on two cores at n = 64; the spin-up at import takes a few more).
"""

import numpy as np

from dafilters.hmm import HMM as _HMM
from dafilters.hmm import Chronology, GaussPrior
from dafilters.observations import GridMaskObs

from . import VISCOSITY, Kolmogorov, spun_up_state, stable_dt

#: Time between observations (SDA's time between states).
DT_OBS = 0.2


def build(n: int = 64, every: int = 4, sigma: float = 0.1, Ko: int = 99, dko: int | None = None,
          viscosity: float = VISCOSITY, precision: str = "float64", prior_var: float = 1.0) -> _HMM:
    """The setting on an ``n x n`` grid observing every ``every``-th point in each direction with
    noise ``sigma``; ``Ko + 1`` observations, ``dko`` model steps of ``0.2 / dko`` between them.

    Args:
        n: grid points per direction. every: observation stride. sigma: observation noise std.
        Ko: index of the last observation.
        dko: model steps per observation interval (default: 20 up to ``n = 64``, more on finer
            grids so that ``dt <= stable_dt(n)``).
        viscosity: ``1 / Re``. precision: jax arithmetic, ``"float64"`` or ``"float32"``.
        prior_var: variance of the prior around the spun-up state.
    """
    dko = int(np.ceil(DT_OBS / stable_dt(n) - 1e-9)) if dko is None else int(dko)
    dt = DT_OBS / dko
    return _HMM(
        dyn=Kolmogorov(n, viscosity=viscosity, precision=precision),
        obs=GridMaskObs(n, every, noise=sigma**2),
        tseq=Chronology(dt, dko=dko, Ko=Ko, BurnIn=DT_OBS * min(10, Ko // 2)),
        prior=GaussPrior(spun_up_state(n, viscosity=viscosity), prior_var),
        name=f"Kolmogorov.rozet2023(n={n}, every={every}, sigma={sigma:g})",
    )


HMM = build()
