"""Lorenz-96 observed through two modalities, for SLAMS (Qu, Nathaniel, Li & Gentine 2024, "Deep
generative data assimilation in multimodal setting", arXiv 2404.06665; their own experiments are
on ERA5 with in-situ and satellite data, so no figures here come from the paper).

Nx = 40, F = 8, RK4 with dt = 0.03, observations every 0.15 time units (5 steps), as in
:mod:`mods.Lorenz96.bach2025`, through a :class:`~dafilters.multimodal.MultiObs` of

- ``"sparse"``: every 4th variable (10 point probes), sigma_y = 1;
- ``"coarse"``: the 4-times coarsened field, means of 4 consecutive variables
  (:class:`~dafilters.multimodal.BlockMeanObs`, 10 values), sigma_y = 0.5, observed every
  ``coarse_every``-th observation time (default: every time).

Prior: truth and ensemble drawn independently from N(x_a, I) around a point on the attractor;
burn-in: the first 100 cycles (15 time units), fewer for short runs.
"""

import numpy as np

from dafilters.hmm import HMM as _HMM
from dafilters.hmm import Chronology, GaussPrior
from dafilters.multimodal import BlockMeanObs, Modality, MultiObs
from dafilters.observations import PartialObs

from . import Lorenz96
from .bach2025 import attractor_point


def observations(Nx: int = 40, every: int = 4, sigma_sparse: float = 1.0, block: int = 4,
                 sigma_coarse: float = 0.5, coarse_every: int = 1) -> MultiObs:
    """The two modalities (see the module docstring)."""
    return MultiObs({
        "sparse": PartialObs(Nx, np.arange(0, Nx, every), noise=sigma_sparse**2),
        "coarse": Modality(BlockMeanObs(Nx, block, noise=sigma_coarse**2), every=coarse_every),
    })


def build(Nx: int = 40, Ko: int = 1499, every: int = 4, sigma_sparse: float = 1.0, block: int = 4,
          sigma_coarse: float = 0.5, coarse_every: int = 1, modalities: tuple[str, ...] | None = None
          ) -> _HMM:
    """The setting; ``modalities`` keeps only some of ``("sparse", "coarse")``."""
    obs = observations(Nx, every, sigma_sparse, block, sigma_coarse, coarse_every)
    if modalities is not None:
        obs = obs.select(*modalities)
    tag = "+".join(obs.names)
    return _HMM(
        dyn=Lorenz96(Nx),
        obs=obs,
        tseq=Chronology(0.03, dko=5, Ko=Ko, BurnIn=0.15 * min(100, Ko // 2)),
        prior=GaussPrior(attractor_point(Nx), 1.0),
        name=(f"Lorenz96.qu2024({tag}, every={every}, sigma={sigma_sparse:g}, block={block}, "
              f"sigma_c={sigma_coarse:g}, coarse_every={coarse_every})"),
    )


HMM = build()
