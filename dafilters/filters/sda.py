r"""Score-based data assimilation (SDA): a learned trajectory prior, observations at sampling time.

After Rozet & Louppe (2023), "Score-based data assimilation", arXiv 2306.10574.

**Prior.** States are standardised with the climatological mean and spread. A denoiser
:math:`\epsilon_\phi(w_t, t)` is trained on windows :math:`w` of :math:`2k+1` consecutive states
of simulated trajectories, diffused by the variance-preserving cosine schedule

.. math:: w_t = \mu_t w + \sigma_t \varepsilon,\qquad \mu_t = \cos(\theta t),\
    \sigma_t = \sin(\theta t),\ \theta = \arccos 0.01,\qquad
    \min_\phi \mathbb E \lVert \epsilon_\phi(w_t, t) - \varepsilon \rVert^2 .

The denoiser of a whole trajectory of :math:`L > 2k+1` states is composed from the local one: state
:math:`i` takes the centre of the window centred at :math:`i` (the first and last :math:`k` states
take the ends of the first and last windows), and the score is
:math:`s(x_t, t) = -\epsilon(x_t, t)/\sigma_t`.

**Likelihood.** Observations enter only at sampling time, through the Gaussian approximation

.. math:: \log p(y \mid x_t) \approx \log N\big(y \mid h(\hat x_0(x_t)),\ \Sigma_y +
    \gamma (\sigma_t/\mu_t)^2 I\big),\qquad \hat x_0 = (x_t - \sigma_t \epsilon)/\mu_t,

whose gradient is taken by autograd through the denoiser.

**Sampler.** Predictor–corrector: an exponential-integrator (DDIM) step from :math:`t` to
:math:`t - \Delta` with the posterior :math:`\hat\epsilon = -\sigma_t s_{\rm post}`, followed by
``corrections`` Langevin steps :math:`x \leftarrow x + \delta s + \sqrt{2\delta} z` with
:math:`\delta = \tau / \overline{s^2}` (the mean over all samples and components).

**As a filter** the sampler runs over a sliding window of the last ``window`` model steps, using
the observations inside it, and the analysis ensemble is the last state of each sampled
trajectory (no forecast model is used by the analysis). :meth:`SDA.smooth` samples a whole window.

**Defaults** (checked on ``mods.Lorenz63.rozet2023``): local windows of 9 states (``k = 4``; with
``k = 2`` the composed prior drifts off the attractor as the trajectory grows), ``gamma = 0.03``
(0.1 leaves the observed variable loose, 0.001 diverges), two corrector steps with ``tau = 0.25``
per predictor step, a few minutes of training with a deterministic validation loss and a
learning rate divided by 10 for the last third of the time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..hmm import HMM
from ..nn.data import simulate_trajectories, split, windows
from ..nn.training import TrainConfig, fit_in_stages
from .base import Context, check_ensemble_size, check_positive
from .learned import LearnedFilter

__all__ = ["SDA", "LocalDenoiser", "GridDenoiser", "schedule", "compose_windows", "guided_sample",
           "denoising_loss", "dsm_objective", "dsm_loss", "standardisation", "check_window"]


#: :math:`\mu_1`: the signal left at ``t = 1`` (the angle of the schedule is :math:`\arccos \mu_1`).
MU_MIN = 1e-2


def schedule(t: torch.Tensor, floor: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    r"""VP cosine schedule :math:`\mu_t = \cos(\theta t)`, :math:`\sigma_t = \sin(\theta t)`
    with :math:`\theta = \arccos \mu_1` (:data:`MU_MIN`), so :math:`\mu_t^2 + \sigma_t^2 = 1`;
    ``sigma`` is at least ``floor``."""
    theta = math.acos(MU_MIN) * t
    return torch.cos(theta), torch.sin(theta).clamp(min=floor)


class LocalDenoiser(nn.Module):
    """:math:`\\epsilon_\\phi` on windows of ``2k+1`` states: ``(..., 2k+1, Nx)`` and noise levels
    ``t`` ``(...,)`` -> ``(..., 2k+1, Nx)``. An MLP with Fourier features of ``t``."""

    def __init__(self, Nx: int, k: int, width: int = 256, depth: int = 3, n_freq: int = 8):
        super().__init__()
        self.shape = (2 * k + 1, Nx)
        d = (2 * k + 1) * Nx
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(n_freq, dtype=torch.float32))
        layers: list[nn.Module] = []
        d_in = d + 2 * n_freq
        for _ in range(depth):
            layers += [nn.Linear(d_in, width), nn.SiLU()]
            d_in = width
        layers.append(nn.Linear(width, d))
        self.net = nn.Sequential(*layers)

    def forward(self, w: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        f = t[..., None] * self.freqs
        h = torch.cat([w.flatten(-2), torch.sin(f), torch.cos(f)], -1)
        return self.net(h).unflatten(-1, self.shape)


class GridDenoiser(nn.Module):
    r""":math:`\epsilon_\phi` on windows of ``2k+1`` fields on a periodic grid, each field
    ``channels x n0 x n1`` flattened: ``(..., 2k+1, channels*n0*n1)`` and levels ``t`` ``(...,)``
    -> the same shape. A residual CNN (circular padding) over the ``(2k+1)*channels`` stacked
    channels: ``depth`` blocks :math:`h \leftarrow h + c_2(\sigma(c_1(\sigma(h)) + e_b(t)))` of
    ``width`` channels, :math:`e_b` a per-block linear map of a shared embedding of Fourier
    features of ``t``. Unlike :class:`LocalDenoiser` (an MLP through ``width`` units, which cannot
    carry windows much wider than that), it is local in space, equivariant under periodic shifts,
    and its parameter count does not depend on the grid's size."""

    def __init__(self, grid: tuple[int, int, int], k: int, width: int = 48, depth: int = 3,
                 n_freq: int = 8):
        super().__init__()
        self.grid = tuple(int(g) for g in grid)  # (channels, n0, n1)
        c = (2 * k + 1) * self.grid[0]
        self.shape = (2 * k + 1, math.prod(self.grid))

        def conv(a: int, b: int) -> nn.Conv2d:
            return nn.Conv2d(a, b, 3, padding=1, padding_mode="circular")

        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(n_freq, dtype=torch.float32))
        self.embed = nn.Sequential(nn.Linear(2 * n_freq, width), nn.SiLU(), nn.Linear(width, width))
        self.inp, self.out = conv(c, width), conv(width, c)
        self.c1 = nn.ModuleList(conv(width, width) for _ in range(depth))
        self.c2 = nn.ModuleList(conv(width, width) for _ in range(depth))
        self.tb = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))

    def forward(self, w: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        lead = w.shape[:-2]
        c0, n0, n1 = self.grid
        h = self.inp(w.reshape(-1, self.shape[0] * c0, n0, n1))
        f = t.reshape(-1, 1) * self.freqs
        e = self.embed(torch.cat([torch.sin(f), torch.cos(f)], -1))
        act = nn.functional.silu
        for c1, c2, tb in zip(self.c1, self.c2, self.tb):
            h = h + c2(act(c1(act(h)) + tb(e)[:, :, None, None]))
        return self.out(act(h)).reshape(*lead, *self.shape)


def denoising_loss(net: nn.Module, w: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    r"""The denoising score-matching loss :math:`\lVert \epsilon_\phi(\mu_t w + \sigma_t \varepsilon, t)
    - \varepsilon \rVert^2` (mean over all entries) of windows ``w`` ``(B, 2k+1, Nx)`` at levels
    ``t`` ``(B,)`` with noises ``eps`` ``(B, 2k+1, Nx)``."""
    mu, sigma = schedule(t)
    shape = (-1,) + (1,) * (w.dim() - 1)
    return (net(mu.view(shape) * w + sigma.view(shape) * eps, t) - eps).pow(2).mean()


def dsm_loss(net: nn.Module, w: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    r""":func:`denoising_loss` of windows ``w`` ``(B, 2k+1, d)`` at levels :math:`t \sim U(0, 1)`
    with fresh noises (drawn from ``gen``, levels first)."""
    t = torch.rand(w.shape[0], generator=gen).to(w.device)
    eps = torch.randn(w.shape, generator=gen).to(w.device)
    return denoising_loss(net, w, t, eps)


def dsm_objective(net: nn.Module, w_val: torch.Tensor, gen: torch.Generator, device: str
                  ) -> tuple[Callable[[Sequence[torch.Tensor]], torch.Tensor], tuple[torch.Tensor, ...]]:
    r"""The denoising objective for :func:`~dafilters.nn.training.fit_model`: a loss of training
    batches ``(w,)`` (:func:`dsm_loss`, fresh levels and noises) and of validation batches
    ``(w, t, eps)``, with the validation set ``(w_val, t_val, eps_val)`` whose levels ``(V,)`` and
    noises (the shape of ``w_val``) are drawn here once from ``gen``, so that the validation loss
    driving early stopping is a deterministic function of the weights."""
    t_val = torch.rand(len(w_val), generator=gen)
    eps_val = torch.randn(w_val.shape, generator=gen)

    def loss_fn(batch: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(batch) == 1:
            return dsm_loss(net, batch[0].to(device), gen)
        w, t, eps = (b.to(device) for b in batch)
        return denoising_loss(net, w, t, eps)

    return loss_fn, (w_val, t_val, eps_val)


def check_window(k: int, window: int) -> None:
    """A clear error unless the local windows have ``k >= 1`` and the sampled window holds at
    least one local window (``window >= 2k+1``)."""
    if k < 1 or window < 2 * k + 1:
        raise ValueError(f"need k >= 1 and window >= 2k+1, got k={k}, window={window}")


def standardisation(spec: dict[str, Any], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The climatological ``(mean, std)`` ``(Nx,)`` each, float32 on ``device``, of a learned
    filter's ``spec`` (keys ``"mean"``, ``"std"``)."""
    return (torch.tensor(spec["mean"], dtype=torch.float32, device=device),
            torch.tensor(spec["std"], dtype=torch.float32, device=device))


def compose_windows(net: LocalDenoiser, x: torch.Tensor, t: torch.Tensor, k: int) -> torch.Tensor:
    """The denoiser of trajectories ``x`` ``(B, L, Nx)`` (``L >= 2k+1``) at levels ``t`` ``(B,)``
    composed from the local one (see the module docstring). Returns ``(B, L, Nx)``."""
    B, L, Nx = x.shape
    w = x.unfold(1, 2 * k + 1, 1).transpose(-1, -2)  # (B, L-2k, 2k+1, Nx)
    eps = net(w, t[:, None].expand(B, w.shape[1]))
    return torch.cat([eps[:, 0, :k], eps[:, :, k], eps[:, -1, k + 1:]], 1)


def guided_sample(denoise, shape: tuple[int, ...], log_lik, steps: int, corrections: int, tau: float,
                  generator: torch.Generator | None = None, dtype=torch.float32,
                  x0_clip: float | None = 5.0) -> torch.Tensor:
    r"""Predictor–corrector sampling of :math:`p(x \mid y)` from :math:`t=1` to :math:`t=0`.

    Args:
        denoise: ``(x_t, t) -> epsilon`` for samples ``x_t`` of ``shape`` and ``t`` ``(B,)``.
        shape: ``(B, ...)`` of the samples.
        log_lik: ``(x0_hat, t_scalar, mu, sigma) -> log p(y | x_t)`` summed over the batch
            (differentiable in ``x0_hat``), or ``None`` for the prior.
        steps: predictor steps. corrections: Langevin corrector steps per predictor step.
        tau: corrector step factor. generator: torch generator of the noise.
        x0_clip: the predictor's estimate :math:`\hat x_0` is clipped to ``[-x0_clip, x0_clip]``
            (standardised units; ``None``: no clipping) and the noise estimate made consistent
            with it, which keeps the first steps (where :math:`\mu_t` is small) from amplifying
            denoiser errors.

    Returns:
        Samples ``shape`` at :math:`t = 0`.
    """
    x = torch.randn(shape, generator=generator, dtype=dtype)
    ts = torch.linspace(1.0, 0.0, steps + 1)
    B = shape[0]

    def posterior_eps(x, t):
        tt = torch.full((B,), float(t))
        mu, sigma = schedule(tt)
        mu_b = mu.view(-1, *[1] * (x.dim() - 1))
        sig_b = sigma.view_as(mu_b)
        if log_lik is None:
            with torch.no_grad():
                return denoise(x, tt), mu_b, sig_b
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            eps = denoise(xg, tt)
            x0 = (xg - sig_b * eps) / mu_b
            (g,) = torch.autograd.grad(log_lik(x0, float(t), float(mu[0]), float(sigma[0])), xg)
        return eps.detach() - sig_b * g, mu_b, sig_b

    for i in range(steps):
        t, s = ts[i], ts[i + 1]
        eps, mu, sigma = posterior_eps(x, t)
        x0 = (x - sigma * eps) / mu
        if x0_clip is not None:
            x0 = x0.clamp(-x0_clip, x0_clip)
            eps = (x - mu * x0) / sigma
        mu_s, sig_s = schedule(torch.full((B,), float(s)))
        x = mu_s.view_as(mu) * x0 + sig_s.view_as(sigma) * eps  # DDIM / exponential integrator
        for _ in range(corrections if s > 0 else 0):
            eps, _, sigma = posterior_eps(x, s)
            score = -eps / sigma
            delta = tau / float(score.pow(2).mean().clamp(min=1e-12))
            x = x + delta * score + math.sqrt(2 * delta) * torch.randn(x.shape, generator=generator,
                                                                        dtype=x.dtype)
    return x


@dataclass
class SDA(LearnedFilter):
    """Score-based data assimilation (see the module docstring).

    Args:
        N: ensemble size (sampled trajectories per analysis).
        k: half-width of the local windows (``2k+1`` states) the denoiser sees.
        window: model steps in the sliding assimilation window (``>= 2k+1``).
        gamma: the :math:`\\gamma` of the likelihood approximation.
        steps, corrections, tau: sampler settings.
        width, depth: the MLP denoiser.
        n_traj, epochs, batch_size, lr, minutes: training (epochs and minutes per call of ``fit``;
            the wall-time limit usually decides).
        patience: early-stopping patience (epochs) on the validation loss.
        lr_stages: training stages, the learning rate divided by 10 from one to the next.
        device: torch device.
    """

    skip_empty_analysis: ClassVar[bool] = False  # every observation time enters its history

    N: int = 64
    k: int = 4
    window: int = 33
    gamma: float = 0.03
    steps: int = 64
    corrections: int = 2
    tau: float = 0.25
    width: int = 256
    depth: int = 3
    n_traj: int = 16
    epochs: int = 1000
    batch_size: int = 256
    lr: float = 1e-3
    patience: int = 30
    lr_stages: int = 2
    minutes: float = 3.0
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self):
        check_ensemble_size(self.N)
        check_window(self.k, self.window)
        check_positive(self, "gamma", "tau", "lr", "lr_stages", "minutes")

    # -- networks and data ---------------------------------------------------------------------
    def spec_for(self, hmm: HMM) -> dict[str, Any]:
        spec = super().spec_for(hmm)
        xx, _ = simulate_trajectories(hmm, min(self.n_traj, 4), seed=self.seed)  # the training data's
        spec["mean"] = xx.reshape(-1, hmm.Nx).mean(0).tolist()
        spec["std"] = xx.reshape(-1, hmm.Nx).std(0).tolist()
        return spec

    def build(self, spec: dict[str, Any]) -> dict[str, nn.Module]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = LocalDenoiser(spec["Nx"], self.k, self.width, self.depth)
        return {"denoiser": net.to(self.device)}

    def train(self, hmm: HMM, progress: bool | None = None, cache_dir=None) -> dict[str, Any]:
        """Denoising score matching on windows of ``2k+1`` consecutive model states.

        The validation windows carry fixed noise levels and noises (drawn once), so the
        validation loss that drives early stopping is a deterministic function of the weights.
        Training runs in ``lr_stages`` stages, the learning rate divided by 10 at each (each stage
        restarts from the best weights of the previous one); each stage but the last gets 2/3 of
        the time left of ``minutes``.
        """
        xx, _ = simulate_trajectories(hmm, self.n_traj, seed=self.seed, cache_dir=cache_dir)
        mean, std = standardisation(self.spec, self.device)
        W = (torch.as_tensor(windows(xx, 2 * self.k + 1, 1), dtype=torch.float32) - mean.cpu()) / std.cpu()
        itr, ival = split(len(W), 0.05, np.random.default_rng(self.seed))
        net = self.nets["denoiser"]
        gen = torch.Generator().manual_seed(self.seed)
        loss_fn, val = dsm_objective(net, W[ival], gen, self.device)
        cfg = TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                          patience=self.patience, seed=self.seed, progress=progress)
        hist = fit_in_stages([net], loss_fn, (W[itr],), val, cfg, self.lr_stages,
                             60 * self.minutes)
        return {"train_loss": hist.train, "val_loss": hist.val, "best_epoch": hist.best_epoch,
                "stopped": hist.stopped,
                "windows": len(W)}

    # -- sampling ------------------------------------------------------------------------------
    def smooth(self, hmm: HMM, obs_steps: list[int], ys: list[np.ndarray], kos: list[int], L: int,
               N: int | None = None, generator: torch.Generator | None = None) -> np.ndarray:
        """Samples ``(N, L, Nx)`` of a window of ``L`` model steps given observations ``ys[j]``
        (observation index ``kos[j]``) at window positions ``obs_steps[j]``."""
        self.check_hmm(hmm)
        N = N or self.N
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

        x = guided_sample(denoise, (N, L, hmm.Nx), log_lik if ys else None, self.steps, self.corrections,
                          self.tau, generator)
        return (x * std + mean).detach().double().cpu().numpy()

    # -- filter hooks --------------------------------------------------------------------------
    def initialize(self, ctx: Context) -> np.ndarray:
        return ctx.hmm.prior.sample(self.N, ctx.rng)

    def analysis(self, E: np.ndarray, y: np.ndarray, ko: int, ctx: Context) -> np.ndarray:
        hmm = ctx.hmm
        if not hmm.obs.noise(ko).is_diag:
            raise ValueError("SDA's likelihood approximation needs a diagonal observation-error covariance")
        if "sda" not in ctx.cache:
            gen = torch.Generator().manual_seed(int(ctx.rng.integers(2**63)))
            ctx.cache["sda"] = {"obs": [], "gen": gen}
        hist = ctx.cache["sda"]
        kko = hmm.tseq.kko
        hist["obs"].append((int(kko[ko]), ko, np.asarray(y)))
        k_now = int(kko[ko])
        start = k_now - self.window + 1
        hist["obs"] = [o for o in hist["obs"] if o[0] >= start]
        steps = [o[0] - start for o in hist["obs"]]
        with torch.no_grad():
            X = self.smooth(hmm, steps, [o[2] for o in hist["obs"]], [o[1] for o in hist["obs"]],
                            self.window, generator=hist["gen"])
        return X[:, -1]
