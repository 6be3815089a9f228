r"""The score model's mathematics, pure functions shared by SDA and SLAMS: the noise schedule,
the denoising score-matching loss, the denoiser of a trajectory composed from local windows, and
the guided predictor-corrector sampler.

**Units.** States are standardised with the climatological mean and spread of a learned filter's
``spec`` (:func:`standardisation`).

**Schedule and loss.** Windows :math:`w` of :math:`2k+1` consecutive states are diffused as
:math:`w_t = \mu_t w + \sigma_t \varepsilon` and the denoiser is trained by
:math:`\min_\phi \mathbb E \lVert \epsilon_\phi(w_t, t) - \varepsilon \rVert^2`, with the schedule
(:func:`schedule`; the denoiser is trained and sampled with the same one) either

- ``"cos"`` (default), the reference's (``VPSDE(alpha="cos", eta=1e-3)`` in ``sda/score.py`` of
  francois-rozet/sda): :math:`\mu_t = \cos^2(\arccos(\sqrt\eta)\, t)`,
  :math:`\sigma_t = \sqrt{1 - \mu_t^2 + \eta^2}`, :math:`\eta = 10^{-3}`, so
  :math:`\mu_1 = \eta` and :math:`\sigma_0 = \eta`;
- ``"sin"``, this package's former one: :math:`\mu_t = \cos(\theta t)`,
  :math:`\sigma_t = \sin(\theta t)` (at least ``1e-3``), :math:`\theta = \arccos 0.01`, so
  :math:`\mu_1 = 0.01` (:data:`MU_MIN`).

**Composition.** The denoiser of a whole trajectory of :math:`L > 2k+1` states is composed from
the local one: state :math:`i` takes the centre of the window centred at :math:`i` (the first and
last :math:`k` states take the ends of the first and last windows), and the score is
:math:`s(x_t, t) = -\epsilon(x_t, t)/\sigma_t`.

**Sampler** (:func:`guided_sample`, after ``VPSDE.sample`` of the reference). ``steps``
predictor steps on a uniform grid from :math:`t = 1` to :math:`0`: an exponential-integrator
(DDIM) step from :math:`t` to :math:`s = t - \Delta`,
:math:`x_s = \mu_s \hat x_0 + \sigma_s \hat\epsilon` with :math:`\hat\epsilon = -\sigma_t s_{\rm post}`
and :math:`\hat x_0 = (x_t - \sigma_t \hat\epsilon)/\mu_t`, then ``corrections`` Langevin steps at
:math:`s`, :math:`x \leftarrow x + \delta s + \sqrt{2\delta} z`. With ``corrector="sample"`` (the
reference's) :math:`\delta = \tau / \overline{s^2}` with the mean over each sample's own entries
(one step size per sample), and the corrector also runs at the last step (:math:`s = 0`, where
:math:`\sigma_0 = \eta`); with ``corrector="batch"`` (the former) the mean is over the whole batch
and the last step has no corrector. The reference does not clip :math:`\hat x_0`
(``x0_clip=None``). The posterior score adds the gradient (by autograd through the denoiser) of a
likelihood of :math:`\hat x_0 = (x_t - \sigma_t \epsilon)/\mu_t`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["MU_MIN", "ETA", "SCHEDULES", "CORRECTORS", "schedule", "check_sampler", "denoising_loss",
           "dsm_loss", "dsm_objective", "check_window", "standardisation", "compose_windows",
           "posterior_eps", "langevin_step_size", "guided_sample"]


#: :math:`\mu_1` of the ``"sin"`` schedule (its angle is :math:`\arccos \mu_1`).
MU_MIN = 1e-2
#: :math:`\eta` of the ``"cos"`` schedule (the reference's ``VPSDE`` default):
#: :math:`\mu_1 = \sigma_0 = \eta`.
ETA = 1e-3
#: The noise schedules (:func:`schedule`).
SCHEDULES = ("cos", "sin")
#: The corrector's step-size modes (:func:`guided_sample`).
CORRECTORS = ("sample", "batch")


def schedule(t: torch.Tensor, kind: str = "cos", floor: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    r""":math:`(\mu_t, \sigma_t)` of the noise schedule ``kind`` at levels ``t`` (see the module
    docstring): ``"cos"``, the reference's, :math:`\mu_t = \cos^2(\arccos(\sqrt\eta)\,t)`,
    :math:`\sigma_t = \sqrt{1 - \mu_t^2 + \eta^2}` (:data:`ETA`); ``"sin"``, the former,
    :math:`\mu_t = \cos(\theta t)`, :math:`\sigma_t = \sin(\theta t)` with
    :math:`\theta = \arccos \mu_1` (:data:`MU_MIN`), ``sigma`` at least ``floor``."""
    if kind == "cos":
        mu = torch.cos(math.acos(math.sqrt(ETA)) * t) ** 2
        return mu, torch.sqrt(1 - mu**2 + ETA**2)
    if kind == "sin":
        theta = math.acos(MU_MIN) * t
        return torch.cos(theta), torch.sin(theta).clamp(min=floor)
    raise ValueError(f"unknown schedule {kind!r}: use one of {SCHEDULES}")


_mu_sigma = schedule  # for the functions below, whose argument ``schedule`` names a kind


def check_sampler(schedule: str, corrector: str, clip: float | None) -> None:
    """A clear error for an unknown schedule or corrector, or a clipping bound that is not
    positive (``None``: no clipping)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}: use one of {SCHEDULES}")
    if corrector not in CORRECTORS:
        raise ValueError(f"unknown corrector {corrector!r}: use one of {CORRECTORS}")
    if clip is not None and not clip > 0:
        raise ValueError(f"clip must be positive or None, got {clip!r}")


def denoising_loss(net: nn.Module, w: torch.Tensor, t: torch.Tensor, eps: torch.Tensor,
                   schedule: str = "cos") -> torch.Tensor:
    r"""The denoising score-matching loss :math:`\lVert \epsilon_\phi(\mu_t w + \sigma_t \varepsilon, t)
    - \varepsilon \rVert^2` (mean over all entries) of windows ``w`` ``(B, 2k+1, Nx)`` at levels
    ``t`` ``(B,)`` with noises ``eps`` ``(B, 2k+1, Nx)``, under the noise ``schedule``."""
    mu, sigma = _mu_sigma(t, schedule)
    shape = (-1,) + (1,) * (w.dim() - 1)
    return (net(mu.view(shape) * w + sigma.view(shape) * eps, t) - eps).pow(2).mean()


def dsm_loss(net: nn.Module, w: torch.Tensor, gen: torch.Generator, schedule: str = "cos") -> torch.Tensor:
    r""":func:`denoising_loss` of windows ``w`` ``(B, 2k+1, d)`` at levels :math:`t \sim U(0, 1)`
    with fresh noises (drawn from ``gen``, levels first)."""
    t = torch.rand(w.shape[0], generator=gen).to(w.device)
    eps = torch.randn(w.shape, generator=gen).to(w.device)
    return denoising_loss(net, w, t, eps, schedule)


def dsm_objective(net: nn.Module, w_val: torch.Tensor, gen: torch.Generator, device: str,
                  schedule: str = "cos"
                  ) -> tuple[Callable[[Sequence[torch.Tensor]], torch.Tensor], tuple[torch.Tensor, ...]]:
    r"""The denoising objective for :func:`~dafilters.nn.training.fit_model`: a loss of training
    batches ``(w,)`` (:func:`dsm_loss`, fresh levels and noises) and of validation batches
    ``(w, t, eps)``, with the validation set ``(w_val, t_val, eps_val)`` whose levels ``(V,)`` and
    noises (the shape of ``w_val``) are drawn here once from ``gen``, so that the validation loss
    driving early stopping is a deterministic function of the weights. ``schedule``: the noise
    schedule's kind."""
    t_val = torch.rand(len(w_val), generator=gen)
    eps_val = torch.randn(w_val.shape, generator=gen)

    def loss_fn(batch: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(batch) == 1:
            return dsm_loss(net, batch[0].to(device), gen, schedule)
        w, t, eps = (b.to(device) for b in batch)
        return denoising_loss(net, w, t, eps, schedule)

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


def posterior_eps(denoise, log_lik, x: torch.Tensor, t, schedule: str = "cos") -> tuple[torch.Tensor, ...]:
    r"""The posterior noise estimate :math:`\hat\epsilon = \epsilon - \sigma_t \nabla_x \log p(y
    \mid \hat x_0)` of samples ``x`` ``(B, ...)`` at level ``t`` (the prior's without
    ``log_lik``), with :math:`\mu_t, \sigma_t` of the noise ``schedule`` shaped to broadcast
    against ``x``."""
    tt = torch.full((x.shape[0],), float(t))
    mu, sigma = _mu_sigma(tt, schedule)
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


def _predict(denoise, log_lik, x: torch.Tensor, t, s, x0_clip: float | None, schedule: str) -> torch.Tensor:
    """The exponential-integrator (DDIM) step of samples ``x`` from level ``t`` to ``s``."""
    eps, mu, sigma = posterior_eps(denoise, log_lik, x, t, schedule)
    x0 = (x - sigma * eps) / mu
    if x0_clip is not None:
        x0 = x0.clamp(-x0_clip, x0_clip)
        eps = (x - mu * x0) / sigma
    mu_s, sig_s = _mu_sigma(torch.full((x.shape[0],), float(s)), schedule)
    return mu_s.view_as(mu) * x0 + sig_s.view_as(sigma) * eps


def langevin_step_size(score: torch.Tensor, tau: float, corrector: str = "sample") -> torch.Tensor | float:
    r"""The corrector's step :math:`\delta = \tau / \overline{s^2}` of scores ``score`` ``(B, ...)``:
    with ``corrector="sample"`` the mean is over each sample's entries (a tensor ``(B, 1, ...)``,
    one step per sample, as the reference's ``VPSDE.sample``); with ``"batch"`` over the whole
    batch (a float)."""
    if corrector == "sample":
        dims = tuple(range(1, score.dim()))
        return tau / score.pow(2).mean(dims, keepdim=True).clamp(min=1e-12)
    if corrector == "batch":
        return tau / float(score.pow(2).mean().clamp(min=1e-12))
    raise ValueError(f"unknown corrector {corrector!r}: use one of {CORRECTORS}")


def _correct(denoise, log_lik, x: torch.Tensor, s, tau: float, generator: torch.Generator | None,
             schedule: str, corrector: str) -> torch.Tensor:
    """One Langevin corrector step of samples ``x`` at level ``s``."""
    eps, _, sigma = posterior_eps(denoise, log_lik, x, s, schedule)
    score = -eps / sigma
    delta = langevin_step_size(score, tau, corrector)
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    if corrector == "batch":  # the former arithmetic, bit for bit
        return x + delta * score + math.sqrt(2 * delta) * noise
    return x + delta * score + (2 * delta).sqrt() * noise


def guided_sample(denoise, shape: tuple[int, ...], log_lik, steps: int, corrections: int, tau: float,
                  generator: torch.Generator | None = None, dtype=torch.float32,
                  x0_clip: float | None = None, schedule: str = "cos",
                  corrector: str = "sample") -> torch.Tensor:
    r"""Predictor–corrector sampling of :math:`p(x \mid y)` from :math:`t=1` to :math:`t=0` (see
    the module docstring).

    Args:
        denoise: ``(x_t, t) -> epsilon`` for samples ``x_t`` of ``shape`` and ``t`` ``(B,)``.
        shape: ``(B, ...)`` of the samples.
        log_lik: ``(x0_hat, t_scalar, mu, sigma) -> log p(y | x_t)`` summed over the batch
            (differentiable in ``x0_hat``), or ``None`` for the prior.
        steps: predictor steps. corrections: Langevin corrector steps per predictor step.
        tau: corrector step factor. generator: torch generator of the noise.
        x0_clip: ``None`` (the reference), or the predictor's estimate :math:`\hat x_0` is
            clipped to ``[-x0_clip, x0_clip]`` (standardised units) and the noise estimate made
            consistent with it (the former default, 5).
        schedule: the noise schedule the denoiser was trained with (:func:`schedule`).
        corrector: ``"sample"`` (the reference: one step size per sample, a corrector at every
            step, the last included) or ``"batch"`` (the former: one step size for the batch, no
            corrector at the last step).

    Returns:
        Samples ``shape`` at :math:`t = 0`.
    """
    check_sampler(schedule, corrector, x0_clip)
    x = torch.randn(shape, generator=generator, dtype=dtype)
    ts = torch.linspace(1.0, 0.0, steps + 1)
    for i in range(steps):
        t, s = ts[i], ts[i + 1]
        x = _predict(denoise, log_lik, x, t, s, x0_clip, schedule)
        for _ in range(corrections if (s > 0 or corrector == "sample") else 0):
            x = _correct(denoise, log_lik, x, s, tau, generator, schedule, corrector)
    return x
