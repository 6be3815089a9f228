r"""The :class:`SLAMS` filter: its settings, spec and networks, checks, and filter hooks (encode
the forecast with the modalities present, sample the latent window, decode).

**The background is counted once** (``background``). The cycled forecast at time :math:`j`
already holds every observation before :math:`j`; encoding each time of the window with its own
forecast (the former scheme, ``"every"``) hands the sampler the background once per time of the
window, and each later forecast again holds the window's earlier observations: the ensemble was
far too narrow (spread 0.37 against an error of 2.18 on L96, ``benchmarks/README.md``). With
``"current"`` (the default) only the current time is encoded with its forecast, the window's
past times from their observations alone (a climatological background: mean 0, spread
``bg_max``, which the autoencoder sees with probability ``p_clim`` in training); the window's
earlier observations, which the current forecast holds, still enter twice. With ``"first"`` the
oldest time :math:`j_0` of the window is encoded with its forecast (which holds exactly the
observations before the window) and the others from the observations alone, so that
:math:`p(z_{j_0:k_o} \mid y_{1:k_o}) \propto p(z_{j_0} \mid y_{<j_0}) \prod_{j} p(y_j \mid z_j)
\prod p(z_{j+1} \mid z_j)` is approximated with each piece once, but the current forecast is not
used. On L96 (``docs/multimodal.md``) ``"current"`` had the lowest error and ``"first"`` the
best spread/error ratio, both above ``"every"``.
"""

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
from ..sda.diffusion import check_sampler, check_window, compose_windows, guided_sample, standardisation
from .config import SLAMSTraining
from .latent import encoder_input, latent_loglik, modalities_of, modality_fields, present_parts, regrid_maps
from .learn import climatology, learn_slams
from .nets import slams_networks, state_grid

__all__ = ["SLAMS", "BACKGROUNDS"]

#: The schemes of encoding the forecast into the window's latent observations (``SLAMS.background``).
BACKGROUNDS = ("first", "current", "every")


@dataclass
class SLAMS(LearnedFilter):
    """Score-based latent assimilation with several modalities (see :mod:`dafilters.filters.slams`).

    Args:
        N: ensemble size. k: half-width of the latent windows (``2k+1`` observation times).
        window: observation times in the sliding latent window (``>= 2k+1``).
        gamma, steps, corrections, tau, corrector, clip: SDA's likelihood inflation and sampler
            settings (:class:`~dafilters.filters.sda.SDA`; the former sampler was
            ``corrector="batch", clip=5`` with ``training={"schedule": "sin"}``).
        background: which latent observations of the window are encoded with the forecast:
            ``"current"`` (the current time's only, the default; the others from the
            observations alone), ``"first"`` (the oldest time's only) or ``"every"`` (each with
            its own forecast, the former scheme, which counts the background several times).
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
    corrector: str = "sample"
    clip: float | None = 5.0
    background: str = "current"
    spread_infl: float = 1.5
    spread_min: float = 0.1
    pixel_guidance: bool = True
    device: str = "cpu"

    def __post_init__(self):
        super().__post_init__()
        check_ensemble_size(self.N)
        check_window(self.k, self.window)
        check_positive(self, "gamma", "tau")
        check_sampler(self.training.schedule, self.corrector, self.clip)
        if self.background not in BACKGROUNDS:
            raise ValueError(f"unknown background scheme {self.background!r}: use one of {BACKGROUNDS}")

    # -- spec, networks, training, checks -------------------------------------------------------
    def spec_for(self, hmm: HMM) -> dict[str, Any]:
        return {**hmm_spec(hmm), **climatology(hmm, self.training),
                "modalities": {n: int(o.Ny(0)) for n, o in modalities_of(hmm.obs).items()},
                "grid": state_grid(hmm), "schedule": self.training.schedule}

    @property
    def schedule(self) -> str:
        """The latent denoiser's noise schedule (``"sin"`` for model files that predate it)."""
        spec = getattr(self, "spec", None)
        return spec.get("schedule", "sin") if spec is not None else self.training.schedule

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
    def encode_observation(self, hmm: HMM, E: np.ndarray | None, y: np.ndarray, ko: int, regrid=None
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        """The latent observation ``(z^o, v)`` ``(d,)`` each (standardised latent units) of the
        forecast ensemble ``E`` ``(N, Nx)`` and the modalities present at ``ko`` in ``y``; with
        ``E=None``, of the modalities alone (the climatology as background: mean 0 and spread
        ``bg_max`` in standardised units)."""
        ae = self.nets["ae"].eval()
        if E is None:
            bg = torch.zeros(1, hmm.Nx, device=self.device)
            spread = torch.full((1, hmm.Nx), float(self.training.bg_max), device=self.device)
        else:
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
        """Encode the modalities present (with the forecast, and from the observations alone),
        append them to the run's ``obs_history`` of the last ``window`` observation times, sample
        latent trajectories of that window under the latent observations the ``background``
        scheme picks (:meth:`window_observations`), decode their last states."""
        hmm = ctx.hmm
        (gen,) = torch_generators(ctx)
        regrid = self._regrid_cached(ctx.cache.setdefault("regrid", {}), hmm, ko)
        with torch_threads(small_problem_threads(self.N * self.window * self.nets["ae"].latent_dim * 64)):
            with_bg = self.encode_observation(hmm, E, y, ko, regrid)
            alone = with_bg if self.background == "every" else self.encode_observation(hmm, None, y, ko,
                                                                                        regrid)
            history = (ctx.cache.get("obs_history", []) + [(ko, with_bg, alone)])[-self.window:]
            ctx.cache["obs_history"] = history
            first = ko - self.window + 1
            pos, zo, vo = self.window_observations(history, first)
            log_lik = self._log_lik(hmm, y, ko, pos, zo, vo)
            den = self.nets["denoiser"].eval()
            d = self.nets["ae"].latent_dim
            z = guided_sample(lambda x, t: compose_windows(den, x, t, self.k), (self.N, self.window, d),
                              log_lik, self.steps, self.corrections, self.tau, gen, x0_clip=self.clip,
                              schedule=self.schedule, corrector=self.corrector)
            return self.decode(z[:, -1])

    def window_observations(self, history: list, first: int) -> tuple[list[int], list, list]:
        """The window positions and latent observations ``(pos, z^o, v)`` of ``history``, a list
        of ``(ko, (z, v) encoded with the forecast, (z, v) from the observations alone)`` of the
        window starting at observation time ``first``: the forecast's encoding at the oldest
        time (``background="first"``), at the newest (``"current"``) or at every time
        (``"every"``), the observations-alone encoding elsewhere."""
        with_bg = {"first": 0, "current": len(history) - 1}.get(self.background)
        pos, zo, vo = [], [], []
        for i, (j, enc, alone) in enumerate(history):
            z, v = enc if self.background == "every" or i == with_bg else alone
            pos.append(j - first)
            zo.append(z)
            vo.append(v)
        return pos, zo, vo

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
