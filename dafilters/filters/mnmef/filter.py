"""The MNMEF filter: its hyper-parameters, its default training, and its filter hooks.

The maths of an analysis is in :mod:`.update`, the networks in :mod:`.nets`, the training in
:mod:`.learn`; this class ties them to the :class:`~dafilters.filters.learned.LearnedFilter`
interface.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ...hmm import HMM
from ...localization import pairwise_distances
from ...nn.data import simulate_trajectories
from ..base import Context, check_ensemble_size, check_positive
from ..ensemble import initial_ensemble
from ..learned import LearnedFilter, hmm_spec
from .config import MNMEFTraining
from .learn import learn_mnmef
from .nets import build_nets
from .update import FORMS, TorchObs, diagonal_noise, mnmef_update, observation_layout

__all__ = ["MNMEF"]


def _tensor(a, device: str) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a), dtype=torch.float32, device=device)


@dataclass
class MNMEF(LearnedFilter):
    """MNMEF filter (see :mod:`dafilters.filters.mnmef` for the maths).

    Args:
        N: ensemble size.
        bin_width: width of the localization distance bins (units of ``Dynamics.coords``).
        form: ``"increment"``: learned inflation (multiplicative and random additive),
            localization weights in (0, 1) and a learned correction added after the update;
            ``"reference"``: the paper code's form, corrections of the anomalies inside the gain,
            localization weights in (0, 2), a deterministic per-member inflation (see
            :mod:`dafilters.filters.mnmef.update`).
        device: torch device.
        training: an :class:`~dafilters.filters.mnmef.config.MNMEFTraining` (networks' size,
            data, windows, spin-up, budget, optimiser, seed), or a dict of changes to
            :attr:`TRAINING`, e.g. ``training={"minutes": 14, "d_model": 32}``.
    """

    TRAINING: ClassVar[MNMEFTraining] = MNMEFTraining()

    N: int = 20
    bin_width: float = 1.0
    form: str = "increment"
    device: str = "cpu"

    def __post_init__(self):
        super().__post_init__()
        check_ensemble_size(self.N)
        if self.N < 3:
            raise ValueError(f"MNMEF needs N >= 3 members, got N={self.N}")
        check_positive(self, "bin_width")
        if self.form not in FORMS:
            raise ValueError(f"MNMEF form must be one of {FORMS}, got {self.form!r}")

    # -- networks ---------------------------------------------------------------------------
    def spec_for(self, hmm: HMM) -> dict[str, Any]:
        """The HMM's spec, its number of distance bins and its climatological spread ``scale``
        (of one trajectory simulated with the training seed + 1)."""
        spec = hmm_spec(hmm)
        locs = hmm.obs.locations(0, hmm.dyn.coords)
        dom = None if hmm.dyn.domain is None else np.asarray(hmm.dyn.domain, float)
        dmax = float(pairwise_distances(hmm.dyn.coords, locs, dom).max())
        spec["n_bins"] = int(dmax // self.bin_width) + 1
        xx, _ = simulate_trajectories(hmm, 1, seed=self.training.seed + 1)
        spec["scale"] = float(xx[0].std())
        return spec

    def build(self, spec: dict[str, Any]) -> dict[str, nn.Module]:
        cfg = self.training
        nets = build_nets(spec, cfg.d_model, cfg.heads, cfg.loc_init, self.bin_width, cfg.seed, self.form)
        return {k: v.to(self.device) for k, v in nets.items()}

    def observation_layout(self, hmm: HMM, ko: int, cache: dict | None = None) -> tuple:
        """Distance bins and observation-error std at ``ko`` as tensors (see
        :func:`~dafilters.filters.mnmef.update.observation_layout`), kept in ``cache`` while the
        observation locations and errors stay the same."""
        cache = {} if cache is None else cache
        locs, R = hmm.obs.locations(ko, hmm.dyn.coords), diagonal_noise(hmm, ko)
        key = (locs.tobytes(), R.diag.tobytes())
        if cache.get("key") != key:
            cache.update(key=key, layout=observation_layout(hmm.dyn, locs, R, self.bin_width,
                                                            self.spec["n_bins"], self.device))
        return cache["layout"]

    # -- filter hooks -----------------------------------------------------------------------
    def initialize(self, ctx: Context) -> np.ndarray:
        return initial_ensemble(ctx, self.N)

    def analysis(self, E: np.ndarray, y: np.ndarray, ko: int, ctx: Context) -> np.ndarray:
        hmm = ctx.hmm
        bxy, byy, r_std = self.observation_layout(hmm, ko, ctx.cache.setdefault("mnmef", {}))
        xi_obs = ctx.rng.standard_normal((1, self.N, len(y)))
        xi_add = ctx.rng.standard_normal((1, self.N, hmm.Nx)) if self.form == "increment" else None
        for net in self.nets.values():
            net.eval()
        dev = self.device
        with torch.no_grad():
            Ea = mnmef_update(self.nets, _tensor(E, dev)[None], _tensor(y, dev)[None], TorchObs(hmm.obs, ko),
                              r_std, bxy, byy, self.spec["scale"], _tensor(xi_obs, dev),
                              None if xi_add is None else _tensor(xi_add, dev), self.form)
        return Ea[0].double().cpu().numpy()

    # -- training ---------------------------------------------------------------------------
    def learn(self, hmm: HMM, progress: bool | None = None, cache_dir=None,
              pretrained: MNMEF | None = None, freeze_summary: bool = True,
              compile: bool = False) -> dict[str, Any]:
        """Unrolled training on windows of simulated trajectories (:mod:`.learn`); with
        ``pretrained`` (an MNMEF trained on the same HMM, e.g. at another ``N``: ``fit(hmm,
        pretrained=other)``), start from its weights and fine-tune, with the set summary frozen
        (``freeze_summary=True``, the paper's recipe) or all weights trained. ``compile=True``
        (``fit(hmm, compile=True)``) runs the model's forecast through ``torch.compile``
        (:class:`~dafilters.filters.mnmef.learn.ModelForecast`; eager if that fails)."""
        return learn_mnmef(self, hmm, progress, cache_dir, pretrained, freeze_summary, compile)
