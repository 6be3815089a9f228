"""SLAMS's training (:func:`learn_slams`): the autoencoder on (background, modalities) -> state,
then the latent denoiser on windows of standardised latents of the true states (SDA's
:func:`~dafilters.filters.sda.fit_denoiser`), both through the shared trainer."""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ...hmm import HMM
from ...multimodal import MultiObs
from ...nn.data import simulate_at_obs, split, windows
from ...nn.training import fit_model
from ..sda.diffusion import standardisation
from ..sda.learn import fit_denoiser, with_progress
from .config import SLAMSTraining
from .latent import encoder_input, modality_fields, present_parts, regrid_maps

if TYPE_CHECKING:
    from .filter import SLAMS

__all__ = ["training_hmm", "climatology", "training_data", "autoencoder_loss", "standardised_latents",
           "learn_slams"]


def training_hmm(hmm: HMM) -> HMM:
    """The HMM with every modality observed at every time (fixed ``Ny`` for training data)."""
    return hmm.replace(obs=hmm.obs.always()) if isinstance(hmm.obs, MultiObs) else hmm


def climatology(hmm: HMM, cfg: SLAMSTraining) -> dict[str, list[float]]:
    """The states' climatological ``mean`` and ``std`` (at least 1e-6) per component over one
    trajectory of the training HMM at the observation times (seeded ``cfg.seed + 1``)."""
    xx, _ = simulate_at_obs(training_hmm(hmm), 1, seed=cfg.seed + 1)
    return {"mean": xx[0].mean(0).tolist(), "std": np.maximum(xx[0].std(0), 1e-6).tolist()}


def training_data(spec: dict[str, Any], hmm: HMM, cfg: SLAMSTraining, rng: np.random.Generator,
                  cache_dir=None) -> tuple[torch.Tensor, list, list]:
    """The standardised states ``X`` ``(n_traj, T, Nx)`` at the observation times of
    ``cfg.n_traj`` trajectories, and the training and validation samples ``[x, *y_m]`` (15% of
    the trajectories validate; a tenth of the times with a single one)."""
    train_hmm = training_hmm(hmm)
    xx, yy = simulate_at_obs(train_hmm, cfg.n_traj, seed=cfg.seed, cache_dir=cache_dir)
    mean, std = standardisation(spec, "cpu")
    X = (torch.as_tensor(xx[:, 1:], dtype=torch.float32) - mean) / std
    parts = present_parts(train_hmm.obs, yy, 0)
    Y = [torch.as_tensor(parts[n], dtype=torch.float32) for n in spec["modalities"]]
    if cfg.n_traj > 1:
        itr, ival = split(cfg.n_traj, 0.15, rng)
        return X, [A[itr].flatten(0, 1) for A in (X, *Y)], [A[ival].flatten(0, 1) for A in (X, *Y)]
    flat = [A.flatten(0, 1) for A in (X, *Y)]
    itr, ival = split(len(flat[0]), 0.1, rng)
    return X, [A[itr] for A in flat], [A[ival] for A in flat]


def autoencoder_loss(ae: nn.Module, spec: dict[str, Any], regrid, cfg: SLAMSTraining,
                     gen: torch.Generator, device: str, batch) -> torch.Tensor:
    """The autoencoder's loss of a batch ``(x, *y_m)`` (see :mod:`dafilters.filters.slams`):
    backgrounds ``x + s xi`` with ``s ~ U(0, bg_max)``, or with probability ``p_clim`` the
    climatology (0, with spread ``bg_max``), modalities dropped with probability ``p_drop``, drawn
    from ``gen`` in training and from a fixed stream in validation."""
    g = gen if ae.training else torch.Generator().manual_seed(cfg.seed + 7)  # fixed validation
    x, *ys = (b.to(device) for b in batch)
    B = x.shape[0]
    s = cfg.bg_max * torch.rand(B, 1, generator=g).to(device)
    bg = x + s * torch.randn(x.shape, generator=g).to(device)
    names = list(spec["modalities"])
    keep = (torch.rand(B, len(names), generator=g) >= cfg.p_drop).float().to(device)
    if cfg.p_clim > 0:  # climatological backgrounds (drawn last: p_clim = 0 keeps the former draws)
        clim = (torch.rand(B, 1, generator=g) < cfg.p_clim).to(device)
        bg = torch.where(clim, torch.zeros_like(bg), bg)
        s = torch.where(clim, torch.full_like(s, cfg.bg_max), s)
    fields, masks = modality_fields(spec, dict(zip(names, ys)), regrid, device, keep)
    mu, logv = ae.encode(encoder_input(bg, s.expand_as(x), fields, masks))
    z_true = ae.encode_state(x)
    scale = z_true.detach().std(0).clamp(min=1e-3)
    nll = (((mu - z_true.detach()) / scale) ** 2 * torch.exp(-logv) + logv).mean()
    return ((ae.decode(z_true) - x) ** 2).mean() + cfg.nll_weight * nll


def standardised_latents(ae: nn.Module, X: torch.Tensor, device: str) -> np.ndarray:
    """The latents ``(n_traj, T, d)`` of the states ``X`` ``(n_traj, T, Nx)``, standardised per
    component; their mean and spread are stored in the autoencoder (``z_mean``, ``z_std``)."""
    with torch.no_grad():
        flat = X.flatten(0, 1).to(device)
        Z = torch.cat([ae.encode_state(flat[i:i + 4096]) for i in range(0, len(flat), 4096)])
        ae.z_mean.copy_(Z.mean(0))
        ae.z_std.copy_(Z.std(0).clamp(min=1e-4))
        return ((Z - ae.z_mean) / ae.z_std).cpu().unflatten(0, X.shape[:2]).numpy()


def learn_slams(flt: SLAMS, hmm: HMM, progress: bool | None = None, cache_dir=None) -> dict[str, Any]:
    """Train ``flt.nets``: the autoencoder for ``ae_share`` of the time, then the latent denoiser
    for the rest (at least a second). Returns the training log (both loss curves)."""
    cfg = with_progress(flt.training, progress)
    rng = np.random.default_rng(cfg.seed)
    X, train, val = training_data(flt.spec, hmm, cfg, rng, cache_dir)
    ae, den = flt.nets["ae"], flt.nets["denoiser"]
    gen = torch.Generator().manual_seed(cfg.seed)
    loss = partial(autoencoder_loss, ae, flt.spec, regrid_maps(training_hmm(hmm), 0, flt.device), cfg,
                   gen, flt.device)
    ae_cfg = dataclasses.replace(cfg, max_seconds=cfg.ae_share * cfg.seconds, checkpoint=None)
    h_ae = fit_model([ae], loss, train, val, ae_cfg)
    ae.eval()
    W = torch.as_tensor(windows(standardised_latents(ae, X, flt.device), 2 * flt.k + 1, 1))
    wtr, wval = split(len(W), 0.1, rng)
    h_den = fit_denoiser(den, W[wtr], W[wval], gen, flt.device, cfg, max(1.0, cfg.seconds - h_ae.seconds))
    return {**h_den.as_log(), **h_ae.as_log("ae_"), "windows": len(W), "latent_dim": ae.latent_dim,
            "stopped": f"ae: {h_ae.stopped}; denoiser: {h_den.stopped}"}
