r"""The score model's mathematics, pure functions shared by SDA and SLAMS: the noise schedule,
the denoising score-matching loss, the denoiser of a trajectory composed from local windows, and
the guided predictor-corrector sampler.

**Units.** States are standardised with the climatological mean and spread of a learned filter's
``spec`` (:func:`standardisation`).

**Schedule and loss.** Windows :math:`w` of :math:`2k+1` consecutive states are diffused by the
variance-preserving cosine schedule

.. math:: w_t = \mu_t w + \sigma_t \varepsilon,\qquad \mu_t = \cos(\theta t),\
    \sigma_t = \sin(\theta t),\ \theta = \arccos 0.01,\qquad
    \min_\phi \mathbb E \lVert \epsilon_\phi(w_t, t) - \varepsilon \rVert^2 .

**Composition.** The denoiser of a whole trajectory of :math:`L > 2k+1` states is composed from
the local one: state :math:`i` takes the centre of the window centred at :math:`i` (the first and
last :math:`k` states take the ends of the first and last windows), and the score is
:math:`s(x_t, t) = -\epsilon(x_t, t)/\sigma_t`.

**Sampler.** Predictor–corrector: an exponential-integrator (DDIM) step from :math:`t` to
:math:`t - \Delta` with the posterior :math:`\hat\epsilon = -\sigma_t s_{\rm post}`, followed by
``corrections`` Langevin steps :math:`x \leftarrow x + \delta s + \sqrt{2\delta} z` with
:math:`\delta = \tau / \overline{s^2}` (the mean over all samples and components). The posterior
score adds the gradient (by autograd through the denoiser) of a likelihood of
:math:`\hat x_0 = (x_t - \sigma_t \epsilon)/\mu_t`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["MU_MIN", "schedule", "denoising_loss", "dsm_loss", "dsm_objective", "check_window",
           "standardisation", "compose_windows", "posterior_eps", "guided_sample"]


#: :math:`\mu_1`: the signal left at ``t = 1`` (the angle of the schedule is :math:`\arccos \mu_1`).
MU_MIN = 1e-2


def schedule(t: torch.Tensor, floor: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    r"""VP cosine schedule :math:`\mu_t = \cos(\theta t)`, :math:`\sigma_t = \sin(\theta t)`
    with :math:`\theta = \arccos \mu_1` (:data:`MU_MIN`), so :math:`\mu_t^2 + \sigma_t^2 = 1`;
    ``sigma`` is at least ``floor``."""
    theta = math.acos(MU_MIN) * t
    return torch.cos(theta), torch.sin(theta).clamp(min=floor)


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


def check_window(k: int, window: int, name: str = "window") -> None:
    """A clear error unless the local windows have ``k >= 1`` and the sampled window (the
    setting ``name``) holds at least one local window (``window >= 2k+1``)."""
    if k < 1 or window < 2 * k + 1:
        raise ValueError(f"need k >= 1 and {name} >= 2k+1, got k={k}, {name}={window}")


def standardisation(spec: dict[str, Any], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The climatological ``(mean, std)`` ``(Nx,)`` each, float32 on ``device``, of a learned
    filter's ``spec`` (keys ``"mean"``, ``"std"``)."""
    return (torch.tensor(spec["mean"], dtype=torch.float32, device=device),
            torch.tensor(spec["std"], dtype=torch.float32, device=device))


def compose_windows(net: nn.Module, x: torch.Tensor, t: torch.Tensor, k: int) -> torch.Tensor:
    """The denoiser of trajectories ``x`` ``(B, L, Nx)`` (``L >= 2k+1``) at levels ``t`` ``(B,)``
    composed from the local one (see the module docstring). Returns ``(B, L, Nx)``."""
    B, L, Nx = x.shape
    w = x.unfold(1, 2 * k + 1, 1).transpose(-1, -2)  # (B, L-2k, 2k+1, Nx)
    eps = net(w, t[:, None].expand(B, w.shape[1]))
    return torch.cat([eps[:, 0, :k], eps[:, :, k], eps[:, -1, k + 1:]], 1)


def posterior_eps(denoise, log_lik, x: torch.Tensor, t) -> tuple[torch.Tensor, ...]:
    r"""The posterior noise estimate :math:`\hat\epsilon = \epsilon - \sigma_t \nabla_x \log p(y
    \mid \hat x_0)` of samples ``x`` ``(B, ...)`` at level ``t`` (the prior's without
    ``log_lik``), with :math:`\mu_t, \sigma_t` shaped to broadcast against ``x``."""
    tt = torch.full((x.shape[0],), float(t))
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


def _predict(denoise, log_lik, x: torch.Tensor, t, s, x0_clip: float | None) -> torch.Tensor:
    """The exponential-integrator (DDIM) step of samples ``x`` from level ``t`` to ``s``."""
    eps, mu, sigma = posterior_eps(denoise, log_lik, x, t)
    x0 = (x - sigma * eps) / mu
    if x0_clip is not None:
        x0 = x0.clamp(-x0_clip, x0_clip)
        eps = (x - mu * x0) / sigma
    mu_s, sig_s = schedule(torch.full((x.shape[0],), float(s)))
    return mu_s.view_as(mu) * x0 + sig_s.view_as(sigma) * eps


def _correct(denoise, log_lik, x: torch.Tensor, s, tau: float,
             generator: torch.Generator | None) -> torch.Tensor:
    """One Langevin corrector step of samples ``x`` at level ``s``."""
    eps, _, sigma = posterior_eps(denoise, log_lik, x, s)
    score = -eps / sigma
    delta = tau / float(score.pow(2).mean().clamp(min=1e-12))
    return x + delta * score + math.sqrt(2 * delta) * torch.randn(x.shape, generator=generator,
                                                                  dtype=x.dtype)


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
    for i in range(steps):
        t, s = ts[i], ts[i + 1]
        x = _predict(denoise, log_lik, x, t, s, x0_clip)
        for _ in range(corrections if s > 0 else 0):
            x = _correct(denoise, log_lik, x, s, tau, generator)
    return x
