"""The :class:`SLAMS` filter: its settings, spec and networks, checks, and filter hooks (encode
the forecast with the modalities present, sample the latent window, decode)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ...hmm import HMM
from ...nn.nets import small_problem_threads, torch_threads
from ..base import Context, check_ensemble_size, check_positive
from ..ensemble import initial_ensemble, torch_generators
from ..learned import LearnedFilter, hmm_spec
from ..sda.diffusion import check_window, compose_windows, guided_sample, standardisation
from .config import SLAMSTraining
from .latent import encoder_input, latent_loglik, modalities_of, modality_fields, present_parts, regrid_maps
from .learn import climatology, learn_slams
from .nets import slams_networks, state_grid

__all__ = ["SLAMS"]


@dataclass
class SLAMS(LearnedFilter):
    """Score-based latent assimilation with several modalities (see :mod:`dafilters.filters.slams`).

    Args:
        N: ensemble size. k: half-width of the latent windows (``2k+1`` observation times).
        window: observation times in the sliding latent window (``>= 2k+1``).
        gamma, steps, corrections, tau: SDA's likelihood inflation and sampler settings.
        spread_infl, spread_min: the forecast spread handed to the encoder is inflated by
            ``spread_infl`` and at least ``spread_min`` climatological spreads (an ensemble that
            underestimates its error would otherwise make the encoder ignore the observations).
        pixel_guidance: also guide by the raw modalities through the decoder (slower).
        device: torch device.
        training: a :class:`SLAMSTraining` (the networks' sizes, the training data, budget,
            optimiser and seed), or a dict of changes to its defaults, e.g. ``{"minutes": 4}``.
    """

    TRAINING: ClassVar[SLAMSTraining] = SLAMSTraining()
    skip_empty_analysis: ClassVar[bool] = False  # every observation time enters its history

    N: int = 32
    k: int = 1
    window: int = 5
    gamma: float = 0.1
    steps: int = 32
    corrections: int = 1
    tau: float = 0.1
    spread_infl: float = 1.5
    spread_min: float = 0.1
    pixel_guidance: bool = True
    device: str = "cpu"

    def __post_init__(self):
        super().__post_init__()
        check_ensemble_size(self.N)
        check_window(self.k, self.window)
        check_positive(self, "gamma", "tau")

    # -- spec, networks, training, checks -------------------------------------------------------
    def spec_for(self, hmm: HMM) -> dict[str, Any]:
        return {**hmm_spec(hmm), **climatology(hmm, self.training),
                "modalities": {n: int(o.Ny(0)) for n, o in modalities_of(hmm.obs).items()},
                "grid": state_grid(hmm)}

    def build(self, spec: dict[str, Any]) -> dict[str, nn.Module]:
        nets = slams_networks(spec, self.training, self.k)
        return {name: net.to(self.device) for name, net in nets.items()}

    def learn(self, hmm: HMM, progress: bool | None = None, cache_dir=None) -> dict[str, Any]:
        """Autoencoder on (background, modalities) -> state, then the latent denoiser
        (:func:`~dafilters.filters.slams.learn.learn_slams`)."""
        return learn_slams(self, hmm, progress, cache_dir)

    def check_hmm(self, hmm: HMM) -> None:
        """Untrained, another state size, a modality the model was not trained with, or a
        modality of another size: a clear error. Fewer modalities than in training is fine."""
        if not self.trained:
            raise RuntimeError("SLAMS is not trained: call .fit(hmm) or Filter.load(path) first")
        if hmm.Nx != self.spec["Nx"]:
            raise ValueError(f"SLAMS was trained for {self.spec['name']} with Nx={self.spec['Nx']}, "
                             f"but this HMM ({hmm.name}) has Nx={hmm.Nx}")
        trained = self.spec["modalities"]
        for name, o in modalities_of(hmm.obs).items():
            if name not in trained:
                raise ValueError(f"SLAMS was trained with the modalities {sorted(trained)}; this HMM "
                                 f"observes {name!r}, which the model has never seen: retrain it with "
                                 "fit(hmm), or drop that modality (obs.without(name))")
            ny = o.Ny(0)
            if ny != trained[name]:
                raise ValueError(f"modality {name!r} has Ny={ny} here but Ny={trained[name]} in training")

    # -- latent observations -------------------------------------------------------------------
    def encode_observation(self, hmm: HMM, E: np.ndarray, y: np.ndarray, ko: int, regrid=None
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        """The latent observation ``(z^o, v)`` ``(d,)`` each (standardised latent units) of the
        forecast ensemble ``E`` ``(N, Nx)`` and the modalities present at ``ko`` in ``y``."""
        ae = self.nets["ae"].eval()
        mean, std = standardisation(self.spec, self.device)
        Et = torch.as_tensor(E, dtype=torch.float32, device=self.device)
        bg = ((Et.mean(0) - mean) / std)[None]
        spread = (Et.std(0) / std * self.spread_infl).clamp(min=self.spread_min)[None]
        parts = {n: torch.as_tensor(v, dtype=torch.float32, device=self.device)[None]
                 for n, v in present_parts(hmm.obs, y, ko).items()}
        regrid = regrid if regrid is not None else regrid_maps(hmm, ko, self.device)
        fields, masks = modality_fields(self.spec, parts, regrid, self.device)
        with torch.no_grad():
            mu, logv = ae.encode(encoder_input(bg, spread, fields, masks))
        return (mu[0] - ae.z_mean) / ae.z_std, torch.exp(logv[0])

    def decode(self, z: torch.Tensor) -> np.ndarray:
        """States ``(B, Nx)`` (numpy float64, physical units) of standardised latents ``(B, d)``."""
        ae = self.nets["ae"]
        mean, std = standardisation(self.spec, self.device)
        return (ae.decode(z * ae.z_std + ae.z_mean) * std + mean).detach().double().cpu().numpy()

    # -- filter hooks --------------------------------------------------------------------------
    def initialize(self, ctx: Context) -> np.ndarray:
        return initial_ensemble(ctx, self.N)

    def analysis(self, E: np.ndarray, y: np.ndarray, ko: int, ctx: Context) -> np.ndarray:
        """Encode the forecast with the modalities present, append it to the run's
        ``obs_history`` of the last ``window`` observation times, sample latent trajectories of
        that window, decode their last states."""
        hmm = ctx.hmm
        (gen,) = torch_generators(ctx)
        regrid = self._regrid_cached(ctx.cache.setdefault("regrid", {}), hmm, ko)
        with torch_threads(small_problem_threads(self.N * self.window * self.nets["ae"].latent_dim * 64)):
            zo, vo = self.encode_observation(hmm, E, y, ko, regrid)
            history = (ctx.cache.get("obs_history", []) + [(ko, zo, vo)])[-self.window:]
            ctx.cache["obs_history"] = history
            first = ko - self.window + 1
            pos = [j - first for j, _, _ in history]
            log_lik = self._log_lik(hmm, y, ko, pos, [h[1] for h in history], [h[2] for h in history])
            den = self.nets["denoiser"].eval()
            d = self.nets["ae"].latent_dim
            z = guided_sample(lambda x, t: compose_windows(den, x, t, self.k), (self.N, self.window, d),
                              log_lik, self.steps, self.corrections, self.tau, gen)
            return self.decode(z[:, -1])

    def _regrid_cached(self, cache: dict, hmm: HMM, ko: int):
        """Regridding maps, recomputed only when a modality's observed set changes with ``ko``."""
        key = tuple((n, o.Ny(ko), o.indices(ko).tobytes() if hasattr(o, "indices") else None)
                    for n, o in modalities_of(hmm.obs).items())
        if key not in cache:
            if len(cache) > 16:
                cache.clear()
            cache[key] = regrid_maps(hmm, ko, self.device)
        return cache[key]

    def _log_lik(self, hmm: HMM, y: np.ndarray, ko: int, pos: list[int], zo: list, vo: list):
        """The guidance: latent observations in the window (and the raw modalities at ``ko``)."""
        if not self.pixel_guidance or len(y) == 0:
            return lambda z0, t, mu, sigma: latent_loglik(z0, pos, zo, vo, self.gamma, sigma, mu)
        obs = hmm.obs
        R_var = torch.as_tensor(obs.noise(ko).diag, dtype=torch.float32, device=self.device)
        yt = torch.as_tensor(np.asarray(y), dtype=torch.float32, device=self.device)
        ae = self.nets["ae"]
        mean, std = standardisation(self.spec, self.device)

        def log_lik(z0, t, mu, sigma):
            X = ae.decode(z0[:, -1] * ae.z_std + ae.z_mean) * std + mean
            var = R_var + self.gamma * (sigma / mu) ** 2 * std.mean() ** 2
            pix = -0.5 * ((yt - obs.h_torch(X, ko)) ** 2 / var).sum()
            return latent_loglik(z0, pos, zo, vo, self.gamma, sigma, mu) + pix

        return log_lik
