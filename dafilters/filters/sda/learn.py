"""SDA's training: denoising score matching of the local denoiser on windows of ``2k+1``
consecutive model states of simulated trajectories (:func:`learn_sda`), through the shared
trainer (:func:`~dafilters.nn.training.fit_in_stages`). :func:`fit_denoiser` is the part SLAMS
shares (its denoiser learns windows of latent states)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ...hmm import HMM
from ...nn.config import TrainConfig
from ...nn.data import simulate_trajectories, split, windows
from ...nn.training import TrainHistory, fit_in_stages
from .config import SDATraining
from .diffusion import dsm_objective, standardisation

if TYPE_CHECKING:
    from .filter import SDA

__all__ = ["fit_denoiser", "climatology", "learn_sda", "with_progress"]


def with_progress(cfg: TrainConfig, progress: bool | None) -> TrainConfig:
    """``cfg`` with its ``progress`` replaced, unless ``progress`` is ``None``."""
    return cfg if progress is None else dataclasses.replace(cfg, progress=progress)


def fit_denoiser(net: nn.Module, w_train: torch.Tensor, w_val: torch.Tensor, gen: torch.Generator,
                 device: str, cfg: SDATraining, seconds: float) -> TrainHistory:
    """Train the denoiser ``net`` on windows ``w_train`` ``(n, 2k+1, d)`` (fresh levels and noises
    from ``gen`` each batch) with early stopping on ``w_val`` (levels and noises drawn once from
    ``gen``: a deterministic validation loss), in ``cfg.lr_stages`` stages within ``seconds``,
    under the noise schedule ``cfg.schedule``."""
    loss_fn, val = dsm_objective(net, w_val, gen, device, cfg.schedule)
    return fit_in_stages([net], loss_fn, (w_train,), val, cfg, cfg.lr_stages, seconds)


def climatology(hmm: HMM, cfg: TrainConfig) -> dict[str, list[float]]:
    """The states' climatological ``mean`` and ``std`` per component over (the first four of)
    the training trajectories: the units SDA works in."""
    xx, _ = simulate_trajectories(hmm, min(cfg.n_traj, 4), seed=cfg.seed)
    return {"mean": xx.reshape(-1, hmm.Nx).mean(0).tolist(), "std": xx.reshape(-1, hmm.Nx).std(0).tolist()}


def learn_sda(flt: SDA, hmm: HMM, progress: bool | None = None, cache_dir=None) -> dict[str, Any]:
    """Train ``flt.nets["denoiser"]`` on ``flt.training.n_traj`` trajectories of ``hmm``; 5% of
    the windows validate. Returns the training log (losses, best epoch, why it stopped)."""
    cfg = with_progress(flt.training, progress)
    xx, _ = simulate_trajectories(hmm, cfg.n_traj, seed=cfg.seed, cache_dir=cache_dir)
    mean, std = standardisation(flt.spec, "cpu")
    W = (torch.as_tensor(windows(xx, 2 * flt.k + 1, 1), dtype=torch.float32) - mean) / std
    itr, ival = split(len(W), 0.05, np.random.default_rng(cfg.seed))
    gen = torch.Generator().manual_seed(cfg.seed)
    hist = fit_denoiser(flt.nets["denoiser"], W[itr], W[ival], gen, flt.device, cfg, cfg.seconds)
    return {**hist.as_log(), "windows": len(W)}
