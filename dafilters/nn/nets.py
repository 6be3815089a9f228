"""Small torch networks and helpers shared by learned filters.

- :class:`MLP`: a fully connected network ``(..., d_in) -> (..., d_out)``.
- :class:`PeriodicConvNet`: a 1-D convolutional network with circular padding for fields on a
  periodic ring ``(..., Nx) -> (..., Nx)`` (translation-equivariant, any ``Nx``).
- :func:`train_steps`: a few Adam steps on a loss closure (warm-started, per-cycle training).
- :func:`torch_threads`: run a block with a given number of torch threads (small problems run
  far faster on one thread, especially on a busy machine).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import nn

__all__ = ["MLP", "PeriodicConvNet", "train_steps", "torch_threads", "small_problem_threads"]


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Set ``torch.set_num_threads(n)`` inside the block and restore it after (``None``: leave)."""
    old = torch.get_num_threads()
    if n is not None and n != old:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != old:
            torch.set_num_threads(old)


def small_problem_threads(numel: int, limit: int = 2**18) -> int | None:
    """One thread for tensors below ``limit`` elements (intra-op threading costs more than it
    saves there), else ``None`` (keep torch's setting)."""
    return 1 if numel < limit else None


class MLP(nn.Module):
    """``Linear -> act -> ... -> Linear`` with ``depth`` hidden layers of ``width`` units.

    Args: d_in, d_out: feature sizes. width, depth: hidden layers. act: activation class.
    """

    def __init__(self, d_in: int, d_out: int, width: int = 128, depth: int = 2,
                 act: type[nn.Module] = nn.SiLU):
        super().__init__()
        layers: list[nn.Module] = []
        d = d_in
        for _ in range(depth):
            layers += [nn.Linear(d, width), act()]
            d = width
        layers.append(nn.Linear(d, d_out))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PeriodicConvNet(nn.Module):
    """1-D convolutions with circular padding on a periodic field ``(..., Nx) -> (..., Nx)``.

    ``depth`` convolutions of kernel ``kernel`` with ``channels`` hidden channels and a residual
    connection in each hidden block; the output is a single channel. Translation-equivariant,
    so one network serves any ``Nx``.
    """

    def __init__(self, channels: int = 32, depth: int = 3, kernel: int = 5,
                 act: type[nn.Module] = nn.SiLU):
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError(f"kernel must be odd, got {kernel}")
        conv = dict(kernel_size=kernel, padding=kernel // 2, padding_mode="circular")
        self.inp = nn.Conv1d(1, channels, **conv)
        self.hidden = nn.ModuleList(nn.Conv1d(channels, channels, **conv) for _ in range(depth - 1))
        self.out = nn.Conv1d(channels, 1, kernel_size=1)
        self.act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        h = self.act(self.inp(x.reshape(-1, 1, shape[-1])))
        for layer in self.hidden:
            h = h + self.act(layer(h))
        return self.out(h).reshape(shape)


def train_steps(params: list[torch.Tensor] | torch.optim.Optimizer,
                loss_fn: Callable[[int], torch.Tensor], steps: int, lr: float = 1e-3,
                grad_clip: float = 0.0) -> tuple[torch.optim.Optimizer, list[float]]:
    """``steps`` optimiser steps on ``loss_fn(step)`` (a closure that draws its own batch).

    Args:
        params: the tensors to train, or an optimiser to continue (warm start keeps its moments).
        loss_fn: ``step -> scalar loss``. steps: number of steps. lr: Adam learning rate for a
            new optimiser. grad_clip: clip the global gradient norm (0: no clipping).

    Returns:
        The optimiser (pass it back next time to warm-start) and the losses.
    """
    opt = params if isinstance(params, torch.optim.Optimizer) else torch.optim.Adam(params, lr=lr)
    losses = []
    for i in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(i)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], grad_clip)
        opt.step()
        losses.append(float(loss.detach()))
    return opt, losses
