r"""The ensemble score filter (EnSF): a training-free diffusion-model analysis.

A pseudo-time :math:`t \in [0, 1]` diffuses the forecast distribution with the linear schedule

.. math::
    z_t = \alpha_t x + \beta_t \varepsilon,\quad \varepsilon \sim N(0, I),\qquad
    \alpha_t = 1 - (1 - \epsilon_a)\, t,\qquad \beta_t^2 = \epsilon_b + (1 - \epsilon_b)\, t,

i.e. the forward SDE :math:`dz = f(t) z\,dt + g(t)\,dW` with :math:`f = d\log\alpha_t/dt` and
:math:`g^2 = d\beta_t^2/dt - 2 f \beta_t^2`. The score of the diffused prior comes from the forecast
ensemble :math:`x_1, \dots, x_N` without training, either *paired* (sample :math:`i` scored against
its own member) or as the *Gaussian mixture* over all members:

.. math::
    s^{\rm pair}_i(z, t) = -\frac{z - \alpha_t x_i}{\beta_t^2},\qquad
    s^{\rm mix}(z, t) = -\sum_j w_j(z)\, \frac{z - \alpha_t x_j}{\beta_t^2},\quad
    w_j \propto \exp\Big(-\frac{\lVert z - \alpha_t x_j\rVert^2}{2\beta_t^2}\Big).

The posterior score adds the likelihood score, damped by :math:`h(t) = 1 - t` (exact at
:math:`t = 0`, switched off where the samples are still noise), and is clipped element-wise:

.. math::  s(z, t) = \mathrm{clip}\big(s^{\rm prior}(z, t) + h(t)\, \nabla_z \log p(y | z)\big).

The analysis ensemble is obtained by integrating the reverse-time SDE from :math:`z_1 \sim N(0, I)`
(standardised over the members) to :math:`t = 0` with Euler–Maruyama,

.. math::
    z_{t - \Delta} = z_t - \Delta\,[f(t) z_t - g^2(t)\, s(z_t, t)] + \sqrt{\Delta}\, g(t)\, \xi,

or the probability-flow ODE (:math:`g^2 s/2` and no noise). All members and components are updated
at once; with the paired score the members are independent, so at very large ``N * Nx`` they are
processed in row blocks that stay in cache (results do not depend on the number of threads).
For a likelihood that acts component by component, in float32 on a CPU, all the steps run by
default in one compiled C kernel with its own counter-based noise (:mod:`.ensf_kernel`; the torch
path where no C compiler is found).

Reference: Bao, Zhang & Zhang (2024), "An ensemble score filter for tracking high-dimensional
nonlinear dynamical systems", CMAME 432, arXiv 2309.00983.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

from ..nn.nets import small_problem_threads, torch_threads
from . import ensf_kernel
from .base import Context, Filter, check_ensemble_size
from .ensemble import initial_ensemble, torch_generators
from .ensf_elementwise import ElementwiseLikelihood, elementwise_likelihood, fused_paired_sde

__all__ = [
    "EnSF", "PRIOR_SCORES", "SOLVERS", "inflate", "schedule", "sde_coefficients", "damping",
    "paired_prior_score", "mixture_weights", "mixture_prior_score", "reverse_step",
    "step_coefficients", "standard_noise", "NoiseStream", "ensf_sample", "ElementwiseLikelihood",
    "elementwise_likelihood",
]

PRIOR_SCORES = ("paired", "mixture")
SOLVERS = ("sde", "ode")
DTYPES = {"float32": torch.float32, "float64": torch.float64}

#: Row blocks of the paired sampler hold at most this many elements (about 4 MB in float32).
BLOCK_ELEMS = 2**20
#: Noise of tensors at least this large is drawn from two streams on two threads.
SPLIT_NOISE = 2**18
#: Whether :func:`ensf_sample` takes the fused sampler by default where it applies. Off: on the
#: 2-core machine of benchmarks/README.md (issue 21, item 5) it took as much CPU as the unfused
#: loop (its cost is the 15 torch kernels per element and the noise draws, not memory traffic)
#: and, with one core free, more wall time (the unfused loop overlaps the noise on one core with
#: the arithmetic on the other). ``fused=True`` asks for it.
FUSED = False
#: Whether :func:`ensf_sample` takes the compiled kernel (:mod:`~dafilters.filters.ensf_kernel`)
#: by default where it applies and loads: paired score, SDE, an :class:`ElementwiseLikelihood`,
#: float32 on a CPU. On the 2-core machine of benchmarks/README.md it cut an analysis at
#: Nx = 10^6, N = 20, 500 steps from 44 s to the figure recorded there (issue 21, item 5).
KERNEL = True


def inflate(X: torch.Tensor, infl: float) -> torch.Tensor:
    r"""Multiplicative inflation of an ensemble ``X`` ``(N, d)`` about its mean:
    :math:`\bar x + \lambda (x_n - \bar x)` (``X`` itself when :math:`\lambda = 1`)."""
    if infl == 1.0:
        return X
    mu = X.mean(dim=0)
    return mu + infl * (X - mu)


def schedule(t: float, eps_a: float, eps_b: float) -> tuple[float, float, float, float]:
    r"""The linear noise schedule at pseudo-time ``t``.

    .. math:: \alpha_t = 1 - (1-\epsilon_a) t,\quad \beta_t^2 = \epsilon_b + (1-\epsilon_b) t.

    Returns:
        ``(alpha, beta2, dlog_alpha_dt, dbeta2_dt)``.
    """
    alpha = 1.0 - (1.0 - eps_a) * t
    beta2 = eps_b + (1.0 - eps_b) * t
    return alpha, beta2, -(1.0 - eps_a) / alpha, 1.0 - eps_b


def sde_coefficients(t: float, eps_a: float, eps_b: float) -> tuple[float, float]:
    r"""Drift and squared diffusion of the forward SDE :math:`dz = f z\,dt + g\,dW`:
    :math:`f = d\log\alpha_t/dt`, :math:`g^2 = d\beta_t^2/dt - 2 f \beta_t^2`, so that
    :math:`z_t | x \sim N(\alpha_t x, \beta_t^2 I)`."""
    _, beta2, f, dbeta2 = schedule(t, eps_a, eps_b)
    return f, dbeta2 - 2.0 * f * beta2


def damping(t: float) -> float:
    """Weight :math:`h(t) = 1 - t` of the likelihood score (EnSF's damping function)."""
    return 1.0 - t


def step_coefficients(steps: int, eps_a: float, eps_b: float) -> list[tuple[float, ...]]:
    r"""Per reverse step ``k`` (from :math:`t_k = 1 - k/\text{steps}`) the coefficients of the
    paired-score SDE step written element-wise,

    .. math::
        s = \mathrm{clip}(h\, \nabla \log p(y|z) + a_x x + a_z z),\qquad
        z \leftarrow d\, z + a_s s + a_\xi \xi,

    ``(h, a_x, a_z, d, a_s, a_xi)`` with :math:`h = h(t)`, :math:`a_x = \alpha_t/\beta_t^2`,
    :math:`a_z = -1/\beta_t^2`, :math:`d = 1 - \Delta f`, :math:`a_s = \Delta g^2`,
    :math:`a_\xi = \sqrt{\Delta}\, g` (:func:`paired_prior_score`, :func:`reverse_step`)."""
    dt = 1.0 / steps
    out = []
    for k in range(steps):
        t = 1.0 - k * dt
        alpha, beta2, _, _ = schedule(t, eps_a, eps_b)
        f, g2 = sde_coefficients(t, eps_a, eps_b)
        out.append((damping(t), alpha / beta2, -1.0 / beta2, 1.0 - dt * f, dt * g2, math.sqrt(dt * g2)))
    return out


def paired_prior_score(Z: torch.Tensor, X: torch.Tensor, alpha: float, beta2: float) -> torch.Tensor:
    r"""Paired prior score :math:`-(z_i - \alpha_t x_i)/\beta_t^2`.

    Args: ``Z`` samples ``(N, Nx)``, ``X`` forecast members ``(N, Nx)`` (row ``i`` pairs with row
    ``i``), ``alpha`` and ``beta2`` the schedule at ``t``.
    """
    return (alpha * X - Z) / beta2


def mixture_weights(Z: torch.Tensor, X: torch.Tensor, alpha: float, beta2: float,
                    block_elems: int = 2**22) -> torch.Tensor:
    r"""Responsibilities :math:`w_{ij} \propto \exp(-\lVert z_i - \alpha x_j\rVert^2 / 2\beta^2)`
    ``(M, N)`` (rows sum to one).

    Squared distances come from Gram matrices of the arrays centred on the ensemble mean, in
    float64 and over blocks of components, so memory stays linear in ``N * Nx`` (no
    ``(M, N, Nx)`` tensor) and float32 inputs lose no accuracy at large ``Nx``.

    Args: ``Z`` ``(M, Nx)``, ``X`` ``(N, Nx)``; ``block_elems`` bounds the float64 temporaries.
    """
    M, Nx = Z.shape
    xm = X.mean(dim=0)
    D = torch.zeros(M, X.shape[0], dtype=torch.float64, device=Z.device)
    step = max(1, block_elems // max(M, X.shape[0]))
    for c in range(0, Nx, step):
        a = (Z[:, c:c + step] - alpha * xm[c:c + step]).double()
        b = (alpha * (X[:, c:c + step] - xm[c:c + step])).double()
        D += (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return torch.softmax(-D / (2.0 * beta2), dim=1).to(Z.dtype)


def mixture_prior_score(Z: torch.Tensor, X: torch.Tensor, alpha: float, beta2: float) -> torch.Tensor:
    r"""Score of the diffused ensemble as a Gaussian mixture,
    :math:`-(z_i - \alpha_t \sum_j w_{ij} x_j)/\beta_t^2` (see :func:`mixture_weights`).

    Args: ``Z`` ``(M, Nx)`` samples, ``X`` ``(N, Nx)`` forecast members.
    """
    W = mixture_weights(Z, X, alpha, beta2)
    return (alpha * (W @ X) - Z) / beta2


def reverse_step(Z: torch.Tensor, S: torch.Tensor, t: float, dt: float, eps_a: float, eps_b: float,
                 xi: torch.Tensor | None = None, inplace: bool = False) -> torch.Tensor:
    r"""One Euler step of the reverse-time SDE (``xi`` given) or probability-flow ODE (``xi=None``)
    from ``t`` to ``t - dt``:

    .. math::
        z \leftarrow z - \Delta [f z - g^2 s] + \sqrt{\Delta}\, g\, \xi \quad\text{(SDE)},\qquad
        z \leftarrow z - \Delta [f z - \tfrac12 g^2 s] \quad\text{(ODE)}.

    Args:
        Z: samples at ``t`` ``(..., Nx)``. S: the score at ``(Z, t)``, same shape.
        t, dt: current pseudo-time and step. eps_a, eps_b: schedule parameters.
        xi: standard normal noise like ``Z`` (SDE), or ``None`` (ODE).
        inplace: overwrite ``Z`` (saves memory at large sizes).
    """
    f, g2 = sde_coefficients(t, eps_a, eps_b)
    c = g2 if xi is not None else 0.5 * g2
    Z = Z.mul_(1.0 - dt * f) if inplace else Z * (1.0 - dt * f)
    Z.add_(S, alpha=dt * c)
    if xi is not None:
        Z.add_(xi, alpha=math.sqrt(dt * g2))
    return Z


_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="dafilters-noise")
    return _POOL


def standard_noise(out: torch.Tensor, generators: list[torch.Generator],
                   parallel: bool = True) -> torch.Tensor:
    """Fill ``out`` with standard normal draws: the flattened tensor is cut into
    ``len(generators)`` equal parts, each filled from its own generator (on threads when the
    tensor is large and ``parallel``). The draws depend on the generators only, never on the
    thread count."""
    if len(generators) == 1 or out.numel() < SPLIT_NOISE or not out.is_contiguous():
        return out.normal_(generator=generators[0])
    parts = torch.tensor_split(out.view(-1), len(generators))
    if parallel and torch.get_num_threads() > 1 and out.device.type == "cpu":
        list(_pool().map(lambda pg: pg[0].normal_(generator=pg[1]), zip(parts, generators)))
    else:
        for p, g in zip(parts, generators):
            p.normal_(generator=g)
    return out


class NoiseStream:
    """Successive standard normal tensors shaped like ``like``, drawn in order from
    ``generators`` (:func:`standard_noise`).

    With ``prefetch``, the next draw is made on a background thread while the caller computes
    with the current one (two alternating buffers), so that on a CPU the random numbers, which
    torch draws on one thread, overlap with the arithmetic; the values are the same either way.
    """

    def __init__(self, like: torch.Tensor, generators: list[torch.Generator], prefetch: bool = False):
        self.generators, self.prefetch = generators, prefetch
        self.buffers = [torch.empty_like(like) for _ in range(2 if prefetch else 1)]
        self.current = 0
        self.pending = None

    def _fill(self, buf: torch.Tensor) -> torch.Tensor:
        return standard_noise(buf, self.generators, parallel=False)

    def next(self, more: bool = True) -> torch.Tensor:
        """The next draw; ``more=False`` says that no further draw will be asked for."""
        if not self.prefetch:
            return standard_noise(self.buffers[0], self.generators)
        if self.pending is None:
            self.pending = _pool().submit(self._fill, self.buffers[self.current])
        xi = self.pending.result()
        self.current ^= 1
        self.pending = _pool().submit(self._fill, self.buffers[self.current]) if more else None
        return xi


def _posterior_score(Z: torch.Tensor, X: torch.Tensor, t: float, eps_a: float, eps_b: float,
                     score_lik: Callable[[torch.Tensor], torch.Tensor], prior_score: str,
                     clip: float | None) -> torch.Tensor:
    """``clip(s_prior + h(t) grad log p(y|z))`` for a block of samples, computed in place."""
    alpha, beta2, _, _ = schedule(t, eps_a, eps_b)
    S = score_lik(Z)
    S = S.mul_(damping(t)) if S is not Z else S * damping(t)
    if prior_score == "paired":
        S.add_(X, alpha=alpha / beta2).add_(Z, alpha=-1.0 / beta2)
    else:
        S.add_(mixture_prior_score(Z, X, alpha, beta2))
    if clip is not None and math.isfinite(clip):
        S.clamp_(-clip, clip)
    return S


def ensf_sample(X: torch.Tensor, score_lik: Callable[[torch.Tensor], torch.Tensor], steps: int,
                eps_a: float, eps_b: float, prior_score: str = "paired", solver: str = "sde",
                clip: float | None = None, generators: list[torch.Generator] | None = None,
                Z1: torch.Tensor | None = None, block_elems: int = BLOCK_ELEMS,
                prefetch_noise: bool | None = None, lik: ElementwiseLikelihood | None = None,
                fused: bool | None = None, kernel: bool | None = None) -> torch.Tensor:
    r"""Posterior samples by the reverse-time SDE/ODE of EnSF, ``steps`` Euler steps from
    :math:`t=1` to :math:`t=0` (pseudo-times :math:`t_k = 1 - k/\text{steps}`).

    Args:
        X: forecast ensemble ``(N, Nx)`` (torch, the working dtype and device).
        score_lik: ``Z (M, Nx) -> grad log p(y | z)`` ``(M, Nx)`` (it may return a new tensor or
            write into a fresh one; it must not modify ``Z``).
        steps: number of reverse steps. eps_a, eps_b: schedule (see :func:`schedule`).
        prior_score: ``'paired'`` or ``'mixture'``. solver: ``'sde'`` or ``'ode'``.
        clip: element-wise bound on the posterior score (``None``: none).
        generators: torch generators for the noise (one or more streams; see
            :func:`standard_noise`). Z1: initial samples at ``t=1`` (default: standard normal
            draws, standardised per component over the members).
        block_elems: with the paired score, rows are processed in blocks of at most this many
            elements (all rows at once if the ensemble is smaller).
        prefetch_noise: draw the SDE noise of the next step on a background thread while the
            score is computed on one torch thread (:class:`NoiseStream`; same samples). Default:
            on a multi-threaded CPU when a block has at least ``SPLIT_NOISE`` elements.
        lik: the likelihood score as an :class:`ElementwiseLikelihood` (the same function as
            ``score_lik``), which allows the fused sampler.
        fused: with the paired score, the SDE, ``lik`` and one generator per part of a noise
            draw, run :func:`~dafilters.filters.ensf_elementwise.fused_paired_sde` (tiles, one
            thread per generator; the same samples). Default: ``FUSED`` (off), where the
            unfused loop would prefetch the noise.
        kernel: with the paired score, the SDE, ``lik``, float32 on a CPU, run all steps in the
            compiled C kernel (:func:`~dafilters.filters.ensf_kernel.kernel_paired_sde`: its
            own counter-based noise, keyed by one draw from ``generators[0]``; other samples
            than the torch path's, the same algorithm). Default: ``KERNEL`` (on) unless ``fused``
            is asked for. Where the kernel does not load (no C compiler), the torch path runs.

    Returns:
        The analysis samples ``(N, Nx)``.
    """
    if prior_score not in PRIOR_SCORES:
        raise ValueError(f"unknown prior_score {prior_score!r}; choose one of {PRIOR_SCORES}")
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; choose one of {SOLVERS}")
    N, Nx = X.shape
    gens = generators or [torch.Generator(device=X.device).manual_seed(0)]
    if Z1 is None:
        Z1 = standard_noise(torch.empty_like(X), gens)
        if N > 1:
            Z1 = (Z1 - Z1.mean(dim=0)) / Z1.std(dim=0)
    Z = Z1.clone()
    dt = 1.0 / steps
    rows = N if prior_score == "mixture" else max(1, min(N, block_elems // max(Nx, 1)))
    if prefetch_noise is None:
        prefetch_noise = (solver == "sde" and X.device.type == "cpu" and torch.get_num_threads() > 1
                          and min(rows, N) * Nx >= SPLIT_NOISE)
    if kernel is None:
        kernel = KERNEL and not fused
    if kernel and lik is not None and prior_score == "paired" and solver == "sde" \
            and X.device.type == "cpu" and X.dtype == torch.float32:
        lib = ensf_kernel.load_kernel()
        if lib is not None:
            key = int(torch.randint(0, 2**63 - 1, (1,), generator=gens[0]))
            coeffs = torch.tensor(step_coefficients(steps, eps_a, eps_b), dtype=torch.float32)
            rinv = lik.rinv if isinstance(lik.rinv, float) else lik.rinv.to(torch.float32).contiguous()
            Z = Z.contiguous()
            ensf_kernel.kernel_paired_sde(lib, Z, X.contiguous(), lik.y.to(torch.float32).contiguous(),
                                          rinv, lik.kind == "arctan", coeffs, clip, key,
                                          torch.get_num_threads())
            return Z
    if fused is None:
        fused = FUSED and prefetch_noise and len(gens) > 1
    if fused and lik is not None and prior_score == "paired" and solver == "sde" and X.device.type == "cpu":
        fused_paired_sde(Z, X, lik, step_coefficients(steps, eps_a, eps_b), clip, gens, rows, _pool(),
                         SPLIT_NOISE)
        return Z
    with torch_threads(1 if prefetch_noise else None):
        for r0 in range(0, N, rows):
            Zb, Xb = Z[r0:r0 + rows], X[r0:r0 + rows]
            if prior_score == "mixture":
                Xb = X
            noise = NoiseStream(Zb, gens, prefetch_noise) if solver == "sde" else None
            for k in range(steps):
                t = 1.0 - k * dt
                S = _posterior_score(Zb, Xb, t, eps_a, eps_b, score_lik, prior_score, clip)
                xi = noise.next(more=k + 1 < steps) if noise is not None else None
                reverse_step(Zb, S, t, dt, eps_a, eps_b, xi, inplace=True)
                del S
    return Z


@dataclass
class EnSF(Filter):
    """Ensemble score filter (training-free; see the module docstring for the maths).

    Args:
        N: ensemble size.
        eps_a: :math:`\\alpha_1` of the schedule (signal kept at ``t = 1``).
        eps_b: :math:`\\beta_0^2` of the schedule (noise left at ``t = 0``; it sets the spread
            that the paired prior score allows around each member).
        steps: reverse-time Euler steps.
        prior_score: ``'paired'`` (each sample with its own member) or ``'mixture'`` (Gaussian
            mixture over all members).
        solver: ``'sde'`` (Euler–Maruyama) or ``'ode'`` (probability-flow ODE, deterministic
            given the initial noise).
        infl_f: multiplicative inflation of the forecast anomalies before the analysis (forecast
            inflation; ``infl`` of the EnKF and LETKF inflates the analysis).
        clip: element-wise bound on the posterior score (``None``: no clipping).
        device: torch device of the analysis. dtype: ``'float32'`` or ``'float64'``.

    The defaults are the tuned values for the Lorenz-96 arctan setting
    (``mods.Lorenz96.bao2024``). The forecast is the model's (numpy); the analysis runs in torch
    and hands a float64 numpy ensemble back.
    """

    N: int = 20
    eps_a: float = field(default=0.5, metadata={"space": ("log", 1e-3, 1.0)})
    eps_b: float = field(default=0.025, metadata={"space": ("log", 1e-3, 0.5)})
    steps: int = field(default=200, metadata={"space": ("int", 20, 1000)})
    prior_score: str = "paired"
    solver: str = "sde"
    infl_f: float = field(default=1.0, metadata={"space": ("log", 1.0, 1.5)})
    clip: float | None = 1000.0
    device: str = "cpu"
    dtype: str = "float32"

    non_hyper: ClassVar[tuple[str, ...]] = ("device", "dtype")

    def __post_init__(self):
        check_ensemble_size(self.N)
        if not 0 < self.eps_a <= 1:
            raise ValueError(f"eps_a must be in (0, 1], got {self.eps_a!r}")
        if not 0 < self.eps_b < 1:
            raise ValueError(f"eps_b must be in (0, 1), got {self.eps_b!r}")
        if not isinstance(self.steps, (int, np.integer)) or self.steps < 1:
            raise ValueError(f"steps must be a positive integer, got {self.steps!r}")
        if self.prior_score not in PRIOR_SCORES:
            raise ValueError(f"unknown prior_score {self.prior_score!r}; choose one of {PRIOR_SCORES}")
        if self.solver not in SOLVERS:
            raise ValueError(f"unknown solver {self.solver!r}; choose one of {SOLVERS}")
        if not self.infl_f > 0:
            raise ValueError(f"inflation must be positive, got infl_f={self.infl_f!r}")
        if self.clip is not None and not self.clip > 0:
            raise ValueError(f"clip must be positive or None, got {self.clip!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {tuple(DTYPES)}, got {self.dtype!r}")
        torch.device(self.device)  # raises for an unknown device string

    def initialize(self, ctx: Context) -> np.ndarray:
        return initial_ensemble(ctx, self.N)

    def generators(self, ctx: Context) -> list[torch.Generator]:
        """Two torch noise streams for this run, seeded from the filter's numpy stream at the
        first analysis."""
        return torch_generators(ctx, self.device, count=2, key="ensf_generators")

    def analysis(self, E: np.ndarray, y: np.ndarray, ko: int, ctx: Context) -> np.ndarray:
        obs = ctx.hmm.obs
        gens = self.generators(ctx)
        X = torch.as_tensor(E, device=self.device).to(DTYPES[self.dtype])
        X = inflate(X, self.infl_f)
        yt = torch.as_tensor(np.asarray(y), device=self.device).to(X.dtype)
        with torch.no_grad(), torch_threads(small_problem_threads(X.numel())):
            Z = ensf_sample(X, lambda Z: obs.grad_loglik(yt, Z, ko), self.steps, self.eps_a,
                            self.eps_b, self.prior_score, self.solver, self.clip, gens,
                            lik=elementwise_likelihood(obs, yt, ko, X))
        return Z.to(device="cpu", dtype=torch.float64).numpy()
