r"""EnSF's samplers for likelihoods that act component by component (:class:`ElementwiseLikelihood`):
the fused tile-by-tile sampler of the paired-score reverse SDE (:func:`fused_paired_sde`, the
same samples as the unfused loop of :func:`~dafilters.filters.ensf.ensf_sample`, bit for bit).
The compiled kernel is in :mod:`~dafilters.filters.ensf_kernel`.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from ..nn.nets import torch_threads

__all__ = ["ElementwiseLikelihood", "elementwise_likelihood", "fused_paired_sde", "TILE"]

#: Elements per tile of the fused sampler (:func:`fused_paired_sde`): 256K float32 = 1 MB per
#: array (64K, which keeps a step's arrays in L2, cost 10% more CPU in torch calls).
TILE = 2**18


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


def fused_paired_sde(Z: torch.Tensor, X: torch.Tensor, lik: ElementwiseLikelihood,
                     coefficients: list[tuple[float, ...]], clip: float | None,
                     gens: list[torch.Generator], rows: int, pool: ThreadPoolExecutor, split: int,
                     tile: int = TILE) -> None:
    r"""The paired-score reverse SDE of :func:`~dafilters.filters.ensf.ensf_sample` in place on
    ``Z``, for a component-wise likelihood: each row block is cut, as its noise draws are, into
    one part per generator, and each part runs on its own thread (one torch thread each),
    drawing its noise and stepping its elements tile by tile (:data:`TILE`), so that the arrays
    of a step stay in cache and the noise is drawn on both cores beside the arithmetic. Same
    samples as the unfused loop, bit for bit.

    Args: ``Z``, ``X`` ``(N, Nx)``; ``lik`` the likelihood; ``coefficients`` per step as
    :func:`~dafilters.filters.ensf.step_coefficients` gives them; ``clip`` the score bound
    (``None``: none); ``gens`` the noise streams; ``rows`` members per row block; ``pool``
    threads for the parts; ``split`` the size from which a draw is cut over the generators
    (``ensf.SPLIT_NOISE``); ``tile`` elements per tile."""
    N, Nx = X.shape
    c_clip = clip if clip is not None and math.isfinite(clip) else None
    coeffs = [(h, a_x, a_z, c_clip, *rest) for h, a_x, a_z, *rest in coefficients]

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
            k = len(gens) if Zb.numel() >= split else 1  # as standard_noise splits a draw
            splits = [torch.tensor_split(v, k) if isinstance(v, torch.Tensor) else [v] * k
                      for v in (Zb, Xb, yb, rb)]
            jobs = [pool.submit(run, *(sp[i] for sp in splits), gens[i]) for i in range(1, k)]
            run(*(sp[0] for sp in splits), gens[0])
            for j in jobs:
                j.result()
