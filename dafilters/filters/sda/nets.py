r"""SDA's denoisers :math:`\epsilon_\phi(w_t, t)` of local windows of ``2k+1`` states: an MLP
(:class:`LocalDenoiser`, any state) and a residual CNN on a periodic grid (:class:`GridDenoiser`).
Both map windows ``(..., 2k+1, d)`` and noise levels ``t`` ``(...,)`` to ``(..., 2k+1, d)``.
:func:`field_grid` tells whether a state is a 2-D field, :func:`make_denoiser` picks the network."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from ...hmm import HMM
    from .config import SDATraining

__all__ = ["LocalDenoiser", "GridDenoiser", "field_grid", "make_denoiser"]


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


def _conv(a: int, b: int) -> nn.Conv2d:
    return nn.Conv2d(a, b, 3, padding=1, padding_mode="circular")


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
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(n_freq, dtype=torch.float32))
        self.embed = nn.Sequential(nn.Linear(2 * n_freq, width), nn.SiLU(), nn.Linear(width, width))
        self.inp, self.out = _conv(c, width), _conv(width, c)
        self.c1 = nn.ModuleList(_conv(width, width) for _ in range(depth))
        self.c2 = nn.ModuleList(_conv(width, width) for _ in range(depth))
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


def field_grid(hmm: HMM, multiple: int = 1) -> list[int] | None:
    """``[n, n]`` when the state of ``hmm`` is one field on a square periodic 2-D grid (a 2-D
    domain, ``Nx = n * n``) with ``n`` divisible by ``multiple``, else ``None``."""
    dom = getattr(hmm.dyn, "domain", None)
    n = int(round(math.sqrt(hmm.Nx)))
    if dom is not None and len(dom) == 2 and n * n == hmm.Nx and n % multiple == 0:
        return [n, n]
    return None


def make_denoiser(d: int, k: int, cfg: SDATraining, grid: tuple[int, int, int] | None,
                  owner: str = "SDA") -> nn.Module:
    """The denoiser of windows of ``2k+1`` states of size ``d`` that ``cfg.denoiser`` asks for:
    a :class:`GridDenoiser` of ``cfg.conv_width`` channels for states that are fields on ``grid``
    ``(channels, n0, n1)`` (``"conv"``, or ``"auto"`` with a grid), else a :class:`LocalDenoiser`
    of ``cfg.width`` units; ``cfg.depth`` layers or blocks. Uses torch's global generator."""
    if cfg.denoiser == "conv" and not grid:
        raise ValueError(f"{owner}'s 'conv' denoiser needs a 2-D field state (a square grid on a "
                         f"2-D domain{', sides divisible by 4' if owner == 'SLAMS' else ''})")
    if grid and cfg.denoiser != "mlp":
        return GridDenoiser(tuple(grid), k, cfg.conv_width, cfg.depth)
    return LocalDenoiser(d, k, cfg.width, cfg.depth)
