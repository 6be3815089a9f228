r"""Score-based sequential Langevin sampling (SSLS): a per-cycle learned prior score.

Each analysis works in standardised coordinates :math:`u = (x - \bar x) / s` (``s`` the forecast
ensemble's standard deviation per component, floored) and does two things.

1. **Prior score by denoising score matching.** A network :math:`\phi_\theta` (the reference
   code's 1-D U-Net on rings, an MLP otherwise) is fitted on the standardised forecast members
   :math:`u_i` at one noise level :math:`\sigma`:

   .. math::
       \min_\theta\ \mathbb E_{i,\varepsilon}\,
       \big\lVert \phi_\theta(u_i + \sigma\varepsilon) + \varepsilon \big\rVert^2,\qquad
       s_\theta(u) = \phi_\theta(u)/\sigma \approx \nabla_u \log (p_u * N(0, \sigma^2 I))(u).

   The network is kept from cycle to cycle (warm start); the reference code starts a fresh AdamW
   optimiser each cycle (``fresh_optimizer``), the cheap preset keeps the Adam moments too.

2. **Langevin sampling of the posterior**, started from the forecast members. With
   ``space='state'`` (the reference's) the chains run in the state :math:`x`, with the score
   :math:`s_\theta((x - \bar x)/s)/s + \nabla_x \log p(y \mid x)`; with ``space='standardised'``
   (the cheap preset's) they run in :math:`u`:

   .. math::
       g(u) = s_\theta(u) + s \odot \nabla_x \log p(y \mid x)\big|_{x = \bar x + s \odot u},\qquad
       u \leftarrow u + \eta\, \mathrm{clip}(g(u)) + \sqrt{2\eta}\,\xi,

   where :math:`\mathrm{clip}` rescales each sample's score to an :math:`\ell_2` norm of at most
   ``clip * sqrt(Nx)`` (per-sample gradient clipping). The analysis ensemble is
   :math:`\bar x + s \odot u` after the last step.

Reference: "Nonlinear assimilation with score-based sequential Langevin sampling",
arXiv 2411.13443 (setting: ``mods.Lorenz96.ssls``).

**Defaults: the reference code's** (github.com/burning489/SSLS, ``configs/lorenz96.json``,
``src/train/train.py``, ``src/utils.py``): denoising sigma 0.1; 600 optimiser steps per cycle of
batch 200 at lr 1e-3 (its 200 epochs of 500 members in batches of 200), a fresh AdamW each cycle;
a 1-D U-Net with channels (32, 64, 128); 500 Langevin steps of size 1e-3 in the state, each
sample's gradient rescaled to an RMS of at most 10. (Its sampler is an annealed exponential
integrator with lambda = 0.001, a factor ``exp(-1e-6)`` per step: plain Langevin here.) About
60 s of one CPU core per cycle at Nx = 20, N = 500 (41 s for the 600 U-Net steps, 19 s for the
Langevin steps), a few seconds on a GPU. :meth:`SSLS.cheap` gives the earlier, cheap settings
(20 Adam steps per cycle of a small periodic conv net at sigma 0.3, 100 Langevin steps of 0.1 in
standardised units), about 100 times cheaper.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

from ..nn.nets import MLP, PeriodicConvNet, small_problem_threads, torch_threads, train_steps
from .base import Context, Filter, check_ensemble_size, check_positive
from .ensemble import initial_ensemble, torch_generators
from .ensf import DTYPES, inflate
from .ssls_unet import UNet1D

__all__ = ["SSLS", "NETS", "clip_per_sample", "langevin_sample", "dsm_loss", "standardise"]

NETS = ("auto", "auto-conv", "unet", "conv", "mlp")
SPACES = ("state", "standardised")

#: The earlier, cheap settings (:meth:`SSLS.cheap`).
CHEAP = dict(sigma=0.3, train_steps=20, first_steps=200, batch=256, lr=2e-3, langevin_steps=100,
             step=0.1, net="auto-conv", width=32, depth=3, space="standardised", fresh_optimizer=False)


def standardise(X: torch.Tensor, floor: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""``(U, mean, scale)`` with :math:`U = (X - \bar x)/s`, ``s`` the per-component ensemble
    standard deviation (at least ``floor`` times its mean over components).

    Args: ``X`` ``(N, Nx)``. Returns ``U`` ``(N, Nx)``, ``mean`` and ``scale`` ``(Nx,)``.
    """
    mean = X.mean(dim=0)
    sd = X.std(dim=0) if X.shape[0] > 1 else torch.ones_like(mean)
    sd = torch.clamp(sd, min=max(float(sd.mean()) * floor, 1e-12))
    return (X - mean) / sd, mean, sd


def clip_per_sample(G: torch.Tensor, bound: float | None) -> torch.Tensor:
    r"""Rescale each row of ``G`` ``(M, Nx)`` to an :math:`\ell_2` norm of at most
    ``bound * sqrt(Nx)`` (``None``: unchanged). In place."""
    if bound is None or not math.isfinite(bound):
        return G
    limit = bound * math.sqrt(G.shape[-1])
    norms = torch.linalg.vector_norm(G, dim=-1, keepdim=True)
    return G.mul_(torch.clamp(limit / torch.clamp(norms, min=1e-30), max=1.0))


def langevin_sample(U0: torch.Tensor, score: Callable[[torch.Tensor], torch.Tensor], steps: int,
                    step: float, clip: float | None = None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Unadjusted Langevin dynamics :math:`u \leftarrow u + \eta\,\mathrm{clip}(g(u)) +
    \sqrt{2\eta}\,\xi` for ``steps`` steps of size ``step`` (:math:`\eta`), from ``U0`` ``(M, Nx)``.

    ``score`` maps ``(M, Nx) -> (M, Nx)`` (the gradient of the target log-density) and may return
    a fresh tensor that this function modifies. Returns the final samples ``(M, Nx)``.
    """
    U = U0.clone()
    xi = torch.empty_like(U)
    sd = math.sqrt(2.0 * step)
    for _ in range(steps):
        G = clip_per_sample(score(U), clip)
        U.add_(G, alpha=step).add_(xi.normal_(generator=generator), alpha=sd)
    return U


def dsm_loss(net: torch.nn.Module, U: torch.Tensor, sigma: float, batch: int,
             generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Denoising score-matching loss :math:`\mathrm{mean}\,\lVert\phi(u + \sigma\varepsilon) +
    \varepsilon\rVert^2` over a batch of ``batch`` rows of ``U`` ``(N, Nx)`` drawn with
    replacement, each with its own noise draw."""
    idx = torch.randint(U.shape[0], (batch,), generator=generator, device=U.device)
    Ub = U[idx]
    eps = torch.randn(Ub.shape, generator=generator, dtype=Ub.dtype, device=Ub.device)
    return ((net(Ub + sigma * eps) + eps) ** 2).sum(-1).mean()


def make_score_net(kind: str, Nx: int, width: int, depth: int) -> torch.nn.Module:
    """The score network: :class:`UNet1D` (``'unet'``, channels ``width * (1, 2, 4)``),
    :class:`PeriodicConvNet` (``'conv'``) or :class:`MLP` (``'mlp'``)."""
    if kind == "unet":
        return UNet1D((width, 2 * width, 4 * width))
    if kind == "conv":
        return PeriodicConvNet(channels=width, depth=depth, kernel=5)
    return MLP(Nx, Nx, width=width, depth=depth)


@dataclass
class SSLS(Filter):
    """Score-based sequential Langevin sampling (see the module docstring for the maths).

    Args:
        N: ensemble size.
        sigma: noise level of the denoising score matching (standardised units).
        train_steps: Adam steps per cycle (the first cycle trains ``first_steps``).
        first_steps: Adam steps in the first cycle (from a fresh network).
        batch: noisy samples per training step (members drawn with replacement).
        lr: Adam learning rate.
        langevin_steps, step: Langevin iterations and step size :math:`\\eta` (standardised units).
        clip: per-sample bound on the posterior score's RMS (its norm over ``sqrt(Nx)``);
            ``None``: no clipping.
        infl_f: multiplicative inflation of the forecast anomalies before the analysis (forecast
            inflation; ``infl`` of the EnKF and LETKF inflates the analysis).
        net: ``'unet'`` (the reference's 1-D U-Net; ``Nx`` a multiple of 4), ``'conv'`` (periodic
            1-D conv net, translation-equivariant; needs a periodic 1-D domain), ``'mlp'``, or
            ``'auto'`` (on a periodic ring of at least 8 points ``'unet'`` where ``Nx`` is a
            multiple of 4, else ``'conv'``; ``'mlp'`` elsewhere), or ``'auto-conv'`` (the cheap
            preset's: ``'conv'`` on such a ring, ``'mlp'`` elsewhere).
        width, depth: channels (the U-Net's first level; conv) or units (MLP), and number of
            layers (not the U-Net's).
        space: where the Langevin chains run: ``'state'`` (the reference) or ``'standardised'``.
        fresh_optimizer: a new AdamW each cycle (the reference) instead of continuing Adam.
        device, dtype: torch device and working precision.

    Defaults are the reference code's (module docstring); :meth:`cheap` gives settings that keep
    one cycle at Nx=40, N=100 well under a second on 2 CPU cores.
    """

    N: int = 100
    sigma: float = field(default=0.1, metadata={"space": ("log", 0.05, 1.0)})
    train_steps: int = field(default=600, metadata={"space": ("int", 5, 1000)})
    first_steps: int = 600
    batch: int = 200
    lr: float = 1e-3
    langevin_steps: int = field(default=500, metadata={"space": ("int", 20, 1000)})
    step: float = field(default=1e-3, metadata={"space": ("log", 1e-4, 0.3)})
    clip: float | None = 10.0
    infl_f: float = field(default=1.0, metadata={"space": ("log", 1.0, 1.5)})
    net: str = "auto"
    width: int = 32
    depth: int = 3
    space: str = "state"
    fresh_optimizer: bool = True
    device: str = "cpu"
    dtype: str = "float32"

    non_hyper: ClassVar[tuple[str, ...]] = ("device", "dtype")

    def __post_init__(self):
        check_ensemble_size(self.N)
        check_positive(self, "sigma", "lr", "step", "infl_f")
        for name in ("train_steps", "first_steps", "batch", "langevin_steps", "width", "depth"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < (0 if "steps" in name else 1):
                raise ValueError(f"{name} must be a {'non-negative' if 'steps' in name else 'positive'} "
                                 f"integer, got {v!r}")
        if self.clip is not None and not self.clip > 0:
            raise ValueError(f"clip must be positive or None, got {self.clip!r}")
        if self.net not in NETS:
            raise ValueError(f"unknown net {self.net!r}; choose one of {NETS}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {tuple(DTYPES)}, got {self.dtype!r}")
        if self.space not in SPACES:
            raise ValueError(f"unknown space {self.space!r}; choose one of {SPACES}")
        torch.device(self.device)

    @classmethod
    def cheap(cls, **overrides) -> SSLS:
        """The earlier, cheap settings (:data:`CHEAP`), about 100 times cheaper than the
        reference's; ``overrides`` change any field."""
        return cls(**{**CHEAP, **overrides})

    def initialize(self, ctx: Context) -> np.ndarray:
        return initial_ensemble(ctx, self.N)

    def _net_kind(self, ctx: Context) -> str:
        if not self.net.startswith("auto"):
            return self.net
        dyn = ctx.hmm.dyn
        ring = dyn.domain is not None and len(dyn.domain) == 1 and dyn.coords.shape[1] == 1
        if not (ring and dyn.Nx >= 8):
            return "mlp"
        return "unet" if dyn.Nx % 4 == 0 and self.net == "auto" else "conv"

    def _state(self, ctx: Context) -> dict:
        """The warm-started network, optimiser and torch generator of this run."""
        if "ssls" not in ctx.cache:
            gen, = torch_generators(ctx, self.device, key="ssls_generator")  # seeds the network too
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(gen.initial_seed())
                net = make_score_net(self._net_kind(ctx), ctx.hmm.Nx, self.width, self.depth)
            net = net.to(device=self.device, dtype=DTYPES[self.dtype])
            ctx.cache["ssls"] = {"net": net, "opt": torch.optim.Adam(net.parameters(), lr=self.lr),
                                 "gen": gen, "cycles": 0}
        if self.fresh_optimizer:
            st = ctx.cache["ssls"]
            st["opt"] = torch.optim.AdamW(st["net"].parameters(), lr=self.lr)
        return ctx.cache["ssls"]

    def analysis(self, E: np.ndarray, y: np.ndarray, ko: int, ctx: Context) -> np.ndarray:
        obs, st = ctx.hmm.obs, self._state(ctx)
        net, gen = st["net"], st["gen"]
        X = torch.as_tensor(E, device=self.device).to(DTYPES[self.dtype])
        X = inflate(X, self.infl_f)
        U, mean, sd = standardise(X)
        yt = torch.as_tensor(np.asarray(y), device=self.device).to(X.dtype)
        with torch_threads(small_problem_threads(self.batch * X.shape[1] * self.width)):
            steps = self.first_steps if st["cycles"] == 0 else self.train_steps
            net.train()
            train_steps(st["opt"], lambda _: dsm_loss(net, U, self.sigma, self.batch, gen), steps)
            st["cycles"] += 1
            net.eval()
            prior_gain = 1.0 / self.sigma

            def score(V: torch.Tensor) -> torch.Tensor:
                G = obs.grad_loglik(yt, mean + sd * V, ko).mul_(sd)
                return G.add_(net(V), alpha=prior_gain)

            def score_x(V: torch.Tensor) -> torch.Tensor:
                G = obs.grad_loglik(yt, V, ko)
                return G.add_(net((V - mean) / sd).div_(sd), alpha=prior_gain)

            with torch.no_grad():
                if self.space == "state":
                    return langevin_sample(X, score_x, self.langevin_steps, self.step, self.clip,
                                           gen).to(device="cpu", dtype=torch.float64).numpy()
                U = langevin_sample(U, score, self.langevin_steps, self.step, self.clip, gen)
        return (mean + sd * U).to(device="cpu", dtype=torch.float64).numpy()
