r"""The :class:`SDA` filter: its settings, networks and filter hooks.

**Likelihood.** Observations enter only at sampling time, through the Gaussian approximation

.. math:: \log p(y \mid x_t) \approx \log N\big(y \mid h(\hat x_0(x_t)),\ \Sigma_y +
    \gamma (\sigma_t/\mu_t)^2 I\big),\qquad \hat x_0 = (x_t - \sigma_t \epsilon)/\mu_t,

whose gradient is taken by autograd through the denoiser (:mod:`.diffusion`).

**As a filter** the sampler runs over a sliding window of the last ``window_steps`` model steps,
using the observations inside it, and the analysis ensemble is the last state of each sampled
trajectory (no forecast model is used by the analysis). This is this package's choice: the
reference (francois-rozet/sda, ``experiments/lorenz/eval.py``) has no filtering experiment, it
samples whole windows, as :meth:`SDA.smooth` does.

**Sampler** (checked against the reference's ``VPSDE.sample`` and its Lorenz evaluation,
``sample((1024,), steps=256, corrections=C, tau=0.25)``): 256 predictor steps, its ``"cos"``
noise schedule (a training setting, :class:`SDATraining`), the Langevin corrector's step size per
sample and a corrector at the last step too (``corrector="sample"``), no clipping of
:math:`\hat x_0` (``clip=None``). The former sampler is ``steps=64, corrector="batch", clip=5``
with ``training={"schedule": "sin"}``.

**Defaults** (checked on ``mods.Lorenz63.rozet2023``): local windows of 9 states (``k = 4``; with
``k = 2`` the composed prior drifts off the attractor as the trajectory grows), ``gamma = 0.03``
(the reference's; 0.1 leaves the observed variable loose, 0.001 diverges), two corrector steps
with ``tau = 0.25`` per predictor step, a few minutes of training with a deterministic validation
loss and a learning rate divided by 10 for the last third of the time (:class:`SDATraining`).
States that are 2-D fields on a periodic grid (Kolmogorov vorticity) get the convolutional
denoiser (:class:`GridDenoiser`, training setting ``denoiser="auto"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ...hmm import HMM
from ..base import Context, check_ensemble_size, check_positive
from ..ensemble import initial_ensemble, torch_generators
from ..learned import LearnedFilter
from .config import SDATraining
from .diffusion import check_sampler, check_window, compose_windows, guided_sample, standardisation
from .learn import climatology, learn_sda
from .nets import field_grid, make_denoiser

__all__ = ["SDA"]


@dataclass
class SDA(LearnedFilter):
    """Score-based data assimilation (see :mod:`dafilters.filters.sda`).

    Args:
        N: ensemble size (sampled trajectories per analysis).
        k: half-width of the local windows (``2k+1`` model states) the denoiser sees.
        window_steps: model steps in the sliding assimilation window (``>= 2k+1``).
        gamma: the :math:`\\gamma` of the likelihood approximation.
        steps, corrections, tau: sampler settings (predictor steps, Langevin corrector steps per
            predictor step, corrector step factor).
        corrector: ``"sample"`` (the reference's: a corrector step size per sample, a corrector
            at the last step too) or ``"batch"`` (the former: one step size for the ensemble,
            none at the last step); see :func:`~dafilters.filters.sda.guided_sample`.
        clip: bound of the predictor's :math:`\\hat x_0` in climatological deviations (``None``:
            no clipping, the reference's; the former default was 5).
        device: torch device.
        training: an :class:`SDATraining` (the denoiser's size, data, budget, optimiser and seed),
            or a dict of changes to its defaults, e.g. ``{"minutes": 5, "width": 128}``.
    """

    TRAINING: ClassVar[SDATraining] = SDATraining()
    skip_empty_analysis: ClassVar[bool] = False  # every observation time enters its history

    N: int = 64
    k: int = 4
    window_steps: int = 33
    gamma: float = 0.03
    steps: int = 256
    corrections: int = 2
    tau: float = 0.25
    corrector: str = "sample"
    clip: float | None = None
    device: str = "cpu"

    def __post_init__(self):
        super().__post_init__()
        check_ensemble_size(self.N)
        check_window(self.k, self.window_steps, "window_steps")
        check_positive(self, "gamma", "tau")
        check_sampler(self.training.schedule, self.corrector, self.clip)

    # -- networks and training -----------------------------------------------------------------
    def spec_for(self, hmm: HMM) -> dict[str, Any]:
        """The HMM's spec, the climatology, the field's grid (``None`` unless the state is a 2-D
        field) and the noise schedule the denoiser is trained with."""
        return {**super().spec_for(hmm), **climatology(hmm, self.training), "grid": field_grid(hmm),
                "schedule": self.training.schedule}

    @property
    def schedule(self) -> str:
        """The noise schedule the denoiser was trained with (model files written before the
        schedule was recorded were trained with the former ``"sin"``)."""
        spec = getattr(self, "spec", None)
        return spec.get("schedule", "sin") if spec is not None else self.training.schedule

    def build(self, spec: dict[str, Any]) -> dict[str, nn.Module]:
        cfg = self.training
        grid = spec.get("grid")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            net = make_denoiser(spec["Nx"], self.k, cfg, (1, *grid) if grid else None)
        return {"denoiser": net.to(self.device)}

    def learn(self, hmm: HMM, progress: bool | None = None, cache_dir=None) -> dict[str, Any]:
        """Denoising score matching on windows of ``2k+1`` consecutive model states
        (:func:`~dafilters.filters.sda.learn.learn_sda`)."""
        return learn_sda(self, hmm, progress, cache_dir)

    # -- sampling ------------------------------------------------------------------------------
    def smooth(self, hmm: HMM, obs_steps: list[int], ys: list[np.ndarray], kos: list[int], L: int,
               N: int | None = None, generator: torch.Generator | None = None) -> np.ndarray:
        """Samples ``(N, L, Nx)`` of a window of ``L`` model steps given observations ``ys[j]``
        (observation index ``kos[j]``) at window positions ``obs_steps[j]``."""
        self.check_hmm(hmm)
        net = self.nets["denoiser"].eval()
        mean, std = standardisation(self.spec, self.device)
        obs = hmm.obs
        R_std = [torch.as_tensor(np.sqrt(obs.noise(ko).diag), dtype=torch.float32) for ko in kos]
        yt = [torch.as_tensor(np.asarray(y), dtype=torch.float32) for y in ys]

        def denoise(x, t):
            return compose_windows(net, x, t, self.k)

        def log_lik(x0, t, mu, sigma):
            X = x0 * std + mean  # physical units
            total = 0.0
            for j, i in enumerate(obs_steps):
                var = R_std[j] ** 2 + self.gamma * (sigma / mu) ** 2 * (std.mean() ** 2)
                total = total - 0.5 * ((yt[j] - obs.h_torch(X[:, i], kos[j])) ** 2 / var).sum()
            return total

        x = guided_sample(denoise, (N or self.N, L, hmm.Nx), log_lik if ys else None, self.steps,
                          self.corrections, self.tau, generator, x0_clip=self.clip,
                          schedule=self.schedule, corrector=self.corrector)
        return (x * std + mean).detach().double().cpu().numpy()

    # -- filter hooks --------------------------------------------------------------------------
    def initialize(self, ctx: Context) -> np.ndarray:
        return initial_ensemble(ctx, self.N)

    def analysis(self, E: np.ndarray, y: np.ndarray, ko: int, ctx: Context) -> np.ndarray:
        """Sample the last ``window_steps`` model steps given the observations inside them (the
        run's ``obs_history``); the analysis is the last state of each sample."""
        hmm = ctx.hmm
        if not hmm.obs.noise(ko).is_diag:
            raise ValueError("SDA's likelihood approximation needs a diagonal observation-error covariance")
        (gen,) = torch_generators(ctx)
        k_now = int(hmm.tseq.kko[ko])
        start = k_now - self.window_steps + 1
        history = ctx.cache.get("obs_history", []) + [(k_now, ko, np.asarray(y))]
        ctx.cache["obs_history"] = history = [o for o in history if o[0] >= start]
        with torch.no_grad():
            X = self.smooth(hmm, [o[0] - start for o in history], [o[2] for o in history],
                            [o[1] for o in history], self.window_steps, generator=gen)
        return X[:, -1]
