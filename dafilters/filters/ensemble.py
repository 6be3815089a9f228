"""What every ensemble filter does, written once: the initial ensemble, perturbed observations and
torch random streams seeded from the filter's own stream.

Each helper draws from the run's filter stream ``ctx.rng`` (:func:`dafilters.hmm.streams`) in a
fixed order, so a filter that uses them keeps its random stream, and hence its figures, exactly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..gaussian import Covariance

if TYPE_CHECKING:
    from .base import Context

__all__ = ["initial_ensemble", "observation_perturbations", "torch_generators"]


def initial_ensemble(ctx: Context, N: int) -> np.ndarray:
    """``N`` members drawn from the prior with the filter's stream, ``(N, Nx)``."""
    return ctx.hmm.prior.sample(N, ctx.rng)


def observation_perturbations(R: Covariance, N: int, rng: np.random.Generator,
                              centred: bool = True) -> np.ndarray:
    r"""Perturbations :math:`D_n \sim N(0, R)` of the observations for ``N`` members, ``(N, Ny)``.

    With ``centred`` (the stochastic EnKF's choice, as in DAPPER) the sample mean is removed and
    the rows are rescaled by :math:`\sqrt{N/(N-1)}`, so that centring does not shrink their
    expected covariance below ``R``.
    """
    D = R.sample(N, rng)
    if centred:
        D -= D.mean(axis=0)
        D *= np.sqrt(N / (N - 1))
    return D


def torch_generators(ctx: Context, device: Any = "cpu", count: int = 1, key: str = "torch_generators"):
    """``count`` torch generators on ``device`` for this run, seeded once from the filter's numpy
    stream (``count`` draws of ``ctx.rng.integers(2**63)``) and kept in ``ctx.cache[key]``."""
    import torch

    if key not in ctx.cache:
        seeds = ctx.rng.integers(2**63, size=count)
        ctx.cache[key] = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]
    return ctx.cache[key]
