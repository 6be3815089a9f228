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
from .base import Context, Filter, check_ensemble_size
from .ensemble import initial_ensemble, torch_generators

__all__ = [
    "EnSF", "PRIOR_SCORES", "SOLVERS", "inflate", "schedule", "sde_coefficients", "damping",
    "paired_prior_score", "mixture_weights", "mixture_prior_score", "reverse_step",
    "standard_noise", "NoiseStream", "ensf_sample", "ElementwiseLikelihood", "elementwise_likelihood",
]

PRIOR_SCORES = ("paired", "mixture")
SOLVERS = ("sde", "ode")
DTYPES = {"float32": torch.float32, "float64": torch.float64}

#: Row blocks of the paired sampler hold at most this many elements (about 4 MB in float32).
BLOCK_ELEMS = 2**20
#: Noise of tensors at least this large is drawn from two streams on two threads.
SPLIT_NOISE = 2**18
#: Elements per tile of the fused sampler (:func:`_fused_paired_sde`): 256K float32 = 1 MB per
#: array (64K, which keeps a step's arrays in L2, cost 10% more CPU in torch calls).
TILE = 2**18
#: Whether :func:`ensf_sample` takes the fused sampler by default where it applies. Off: on the
#: 2-core machine of benchmarks/README.md (issue 21, item 5) it took as much CPU as the unfused
#: loop (its cost is the 15 torch kernels per element and the noise draws, not memory traffic)
#: and, with one core free, more wall time (the unfused loop overlaps the noise on one core with
#: the arithmetic on the other). ``fused=True`` asks for it.
FUSED = False


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


@dataclass
class ElementwiseLikelihood:
    r"""A likelihood score that acts component by component: :math:`\nabla_z \log p(y|z) =
    r \odot f'(z) \odot (y - f(z))` with ``f`` the identity or ``arctan`` and ``r`` the inverse
    observation-error variances (every component observed once, in order; ``R`` diagonal).
    Built by :func:`elementwise_likelihood`; lets the sampler work on tiles of components."""

    kind: str  # "identity" or "arctan"
    y: torch.Tensor  # (Nx,)
    rinv: torch.Tensor | float  # (Nx,) or one value for all components

    def expanded(self, rows: int) -> tuple[torch.Tensor, torch.Tensor | float]:
        """``y`` and ``rinv`` repeated over ``rows`` members, flattened (``(rows * Nx,)``)."""
        y = self.y.expand(rows, -1).reshape(-1)
        r = self.rinv if isinstance(self.rinv, float) else self.rinv.expand(rows, -1).reshape(-1)
        return y, r


def elementwise_likelihood(obs, y: torch.Tensor, ko: int, X: torch.Tensor) -> ElementwiseLikelihood | None:
    """The :class:`ElementwiseLikelihood` of ``obs`` at ``ko`` (``y`` as a tensor like ``X``), or
    ``None`` unless ``obs`` is a :class:`~dafilters.observations.PartialObs` or an arctan
    :class:`~dafilters.observations.FunctionObs` that observes every component in order with a
    diagonal noise covariance (the score then equals ``obs.grad_loglik``, bit for bit)."""
    try:
        from ..observations.base import noise_inverse
        from ..observations.basic import FunctionObs, PartialObs, _darctan
    except ImportError:  # the observation classes moved: no fused path
        return None

    Nx = X.shape[-1]
    if type(obs) not in (PartialObs, FunctionObs):
        return None
    if type(obs) is FunctionObs:
        if not (obs.f is np.arctan and obs.df is _darctan and getattr(obs, "_f_torch", 0) is None):
            return None
        kind = "arctan"
    else:
        kind = "identity"
    idx, R = obs.indices(ko), obs.noise(ko)
    if len(idx) != Nx or not np.array_equal(idx, np.arange(Nx)) or not R.is_diag:
        return None
    _, rinv = noise_inverse(R, X)
    rinv = rinv.expand(Nx) if rinv.dim() == 0 else rinv
    if bool((rinv == rinv[0]).all()):
        rinv = float(rinv[0])  # one value: multiplying by it as a scalar gives the same float32
    return ElementwiseLikelihood(kind, y, rinv)


def _tile_step(Z: torch.Tensor, X: torch.Tensor, y: torch.Tensor, rinv, xi: torch.Tensor,
               S: torch.Tensor, D: torch.Tensor, kind: str, c: tuple) -> None:
    """One reverse SDE step of a tile in place: the operations of :func:`_posterior_score` (with
    ``obs.grad_loglik`` of an :class:`ElementwiseLikelihood`) and :func:`reverse_step`, in the
    same order on the same values, so the result is the same bit for bit; ``S`` and ``D`` are
    scratch tiles."""
    h, a_x, a_z, clip, decay, a_s, a_xi = c
    if kind == "arctan":
        torch.atan(Z, out=S)
        S.mul_(-1)
        S.add_(y)
    else:
        torch.mul(Z, -1, out=S)
        S.add_(y)
    S.mul_(rinv)
    if kind == "arctan":
        torch.mul(Z, Z, out=D)
        D.add_(1)
        D.reciprocal_()
        S.mul_(D)
    S.mul_(h)
    S.add_(X, alpha=a_x).add_(Z, alpha=a_z)
    if clip is not None:
        S.clamp_(-clip, clip)
    Z.mul_(decay)
    Z.add_(S, alpha=a_s)
    Z.add_(xi, alpha=a_xi)


def _tiles(lo: int, hi: int, tile: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` in tiles of ``tile`` (a multiple of 16) elements, the last at least 16 long
    (merged into the one before otherwise), so that drawing the noise tile by tile gives the same
    numbers as one draw over ``[lo, hi)`` (torch's CPU normal draws fill 16 values at a time)."""
    starts = list(range(lo, hi, tile))
    if len(starts) > 1 and hi - starts[-1] < 16:
        starts.pop()
    return list(zip(starts, starts[1:] + [hi]))


def _fused_paired_sde(Z: torch.Tensor, X: torch.Tensor, lik: ElementwiseLikelihood, steps: int,
                      eps_a: float, eps_b: float, clip: float | None, gens: list[torch.Generator],
                      rows: int, tile: int = TILE) -> None:
    r"""The paired-score reverse SDE of :func:`ensf_sample` in place on ``Z``, for a
    component-wise likelihood: each row block is cut, as its noise draws are, into one part per
    generator, and each part runs on its own thread (one torch thread each), drawing its noise
    and stepping its elements tile by tile (:data:`TILE`), so that the arrays of a step stay in
    cache and the noise is drawn on both cores beside the arithmetic. Same samples as the
    unfused loop, bit for bit."""
    N, Nx = X.shape
    dt = 1.0 / steps
    coeffs = []
    for k in range(steps):
        t = 1.0 - k * dt
        alpha, beta2, _, _ = schedule(t, eps_a, eps_b)
        f, g2 = sde_coefficients(t, eps_a, eps_b)
        c_clip = clip if clip is not None and math.isfinite(clip) else None
        coeffs.append((damping(t), alpha / beta2, -1.0 / beta2, c_clip, 1.0 - dt * f, dt * g2,
                       math.sqrt(dt * g2)))

    def run(Zp: torch.Tensor, Xp: torch.Tensor, yp: torch.Tensor, rp, gen: torch.Generator) -> None:
        n = Zp.numel()
        S, D, xi = (torch.empty(min(n, tile + 16), dtype=Zp.dtype) for _ in range(3))
        parts = _tiles(0, n, tile)
        rtile = (lambda a, b: rp) if isinstance(rp, float) else (lambda a, b: rp[a:b])
        for c in coeffs:
            for a, b in parts:
                m = b - a
                xi[:m].normal_(generator=gen)
                _tile_step(Zp[a:b], Xp[a:b], yp[a:b], rtile(a, b), xi[:m], S[:m], D[:m], lik.kind, c)

    with torch_threads(1):
        for r0 in range(0, N, rows):
            nr = min(rows, N - r0)
            Zb, Xb = Z[r0:r0 + nr].view(-1), X[r0:r0 + nr].view(-1)
            yb, rb = lik.expanded(nr)
            k = len(gens) if Zb.numel() >= SPLIT_NOISE else 1  # as standard_noise splits a draw
            splits = [torch.tensor_split(v, k) if isinstance(v, torch.Tensor) else [v] * k
                      for v in (Zb, Xb, yb, rb)]
            jobs = [_pool().submit(run, *(sp[i] for sp in splits), gens[i]) for i in range(1, k)]
            run(*(sp[0] for sp in splits), gens[0])
            for j in jobs:
                j.result()


def ensf_sample(X: torch.Tensor, score_lik: Callable[[torch.Tensor], torch.Tensor], steps: int,
                eps_a: float, eps_b: float, prior_score: str = "paired", solver: str = "sde",
                clip: float | None = None, generators: list[torch.Generator] | None = None,
                Z1: torch.Tensor | None = None, block_elems: int = BLOCK_ELEMS,
                prefetch_noise: bool | None = None, lik: ElementwiseLikelihood | None = None,
                fused: bool | None = None) -> torch.Tensor:
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
            draw, run :func:`_fused_paired_sde` (tiles, one thread per generator; the same
            samples). Default: ``FUSED`` (off), where the unfused loop would prefetch the noise.

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
    if fused is None:
        fused = FUSED and prefetch_noise and len(gens) > 1
    if fused and lik is not None and prior_score == "paired" and solver == "sde" and X.device.type == "cpu":
        _fused_paired_sde(Z, X, lik, steps, eps_a, eps_b, clip, gens, rows)
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
