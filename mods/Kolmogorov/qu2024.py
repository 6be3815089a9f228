"""Kolmogorov flow observed through two modalities, for SLAMS (Qu, Nathaniel, Li & Gentine 2024,
arXiv 2404.06665, whose Kolmogorov notebook observes SDA's flow through coarse and sparse data;
the paper publishes no filter RMSE for it, so no expected figures are stated).

State and dynamics as in :mod:`mods.Kolmogorov.rozet2023`: the ``n x n`` vorticity (64 x 64 by
default, Re = 1000), observations every 0.2 time units (``dko`` model steps). Observations: a
:class:`~dafilters.multimodal.MultiObs` of

- ``"coarse"``: the field averaged over ``pool x pool`` blocks (:class:`AvgPoolObs`, 8 x 8 values
  at n = 64), sigma_y = 0.5;
- ``"probes"``: the vorticity at ``probes`` random grid points (a fixed seeded mask,
  :class:`RandomMaskObs`), sigma_y = 0.1, observed every ``probe_every``-th time.

Prior: truth and ensemble drawn independently from N(x_s, I) around a spun-up state.
"""

import numpy as np

from dafilters.hmm import HMM as _HMM
from dafilters.hmm import Chronology, GaussPrior
from dafilters.multimodal import Modality, MultiObs
from dafilters.observations import AvgPoolObs, RandomMaskObs

from . import VISCOSITY, Kolmogorov, spun_up_state, stable_dt
from .rozet2023 import DT_OBS


def observations(n: int = 64, pool: int = 8, sigma_coarse: float = 0.5, probes: int = 64,
                 sigma_probes: float = 0.1, probe_every: int = 1, seed: int = 0) -> MultiObs:
    """The two modalities (see the module docstring)."""
    return MultiObs({
        "coarse": AvgPoolObs(n, pool, noise=sigma_coarse**2),
        "probes": Modality(RandomMaskObs(n, noise=sigma_probes**2, count=probes, seed=seed),
                           every=probe_every),
    })


def build(n: int = 64, Ko: int = 99, pool: int | None = None, sigma_coarse: float = 0.5,
          probes: int | None = None, sigma_probes: float = 0.1, probe_every: int = 1,
          dko: int | None = None, precision: str = "float64",
          modalities: tuple[str, ...] | None = None) -> _HMM:
    """The setting on an ``n x n`` grid (``pool`` defaults to ``n // 8``, ``probes`` to
    ``n * n // 64``); ``modalities`` keeps only some of ``("coarse", "probes")``."""
    pool = max(1, n // 8) if pool is None else int(pool)
    probes = max(1, n * n // 64) if probes is None else int(probes)
    dko = int(np.ceil(DT_OBS / stable_dt(n) - 1e-9)) if dko is None else int(dko)
    obs = observations(n, pool, sigma_coarse, probes, sigma_probes, probe_every)
    if modalities is not None:
        obs = obs.select(*modalities)
    return _HMM(
        dyn=Kolmogorov(n, precision=precision),
        obs=obs,
        tseq=Chronology(DT_OBS / dko, dko=dko, Ko=Ko, BurnIn=DT_OBS * min(10, Ko // 2)),
        prior=GaussPrior(spun_up_state(n, viscosity=VISCOSITY), 1.0),
        name=(f"Kolmogorov.qu2024(n={n}, {'+'.join(obs.names)}, pool={pool}, sigma_c={sigma_coarse:g}, "
              f"probes={probes}, sigma_p={sigma_probes:g}, probe_every={probe_every})"),
    )


HMM = build()
