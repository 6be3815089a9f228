"""MNMEF's networks: the set summary of the ensemble and the heads that read it.

:class:`SetSummary` turns the members' tokens into per-member features and an order-free summary;
:class:`MNMEFHeads` turns those into localization weights, inflation and increment corrections
(``form="increment"``), :class:`ReferenceHeads` into localization weights and the corrections of
the anomalies inside the gain and of the members (``form="reference"``).
:func:`build_nets` makes both for a spec, with their initial weights drawn from a seed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from ...localization import gaspari_cohn

__all__ = ["SetSummary", "MNMEFHeads", "ReferenceHeads", "build_nets"]


class SetSummary(nn.Module):
    """A set transformer over ensemble members: tokens ``(B, N, d_in)`` -> per-member features
    ``(B, N, d)`` (self-attention block) and a pooled summary ``(B, d)`` (attention to a learned
    query). Permutation-equivariant features, permutation-invariant summary."""

    def __init__(self, d_in: int, d: int = 64, heads: int = 4):
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(d_in, d), nn.SiLU(), nn.Linear(d, d))
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, 2 * d), nn.SiLU(), nn.Linear(2 * d, d))
        self.query = nn.Parameter(0.1 * torch.randn(1, 1, d))
        self.pool = nn.MultiheadAttention(d, heads, batch_first=True)

    def forward(self, T: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        H = self.embed(T)
        H = self.norm1(H + self_attention(self.attn, H))
        H = self.norm2(H + self.ff(H))
        return H, self.norm3(query_attention(self.pool, self.query[0, 0], H))


def self_attention(mha: nn.MultiheadAttention, H: torch.Tensor) -> torch.Tensor:
    """``mha(H, H, H)`` (batch first, no mask, no dropout) ``(B, N, d) -> (B, N, d)``, written out
    in batched matrix products: the same parameters and function as ``nn.MultiheadAttention``, at
    a fraction of its CPU time on short sets (its fused kernel, forward and backward, took about
    a third of a training step at N = 20)."""
    B, N, d = H.shape
    h = mha.num_heads
    qkv = nn.functional.linear(H, mha.in_proj_weight, mha.in_proj_bias)
    q, k, v = qkv.view(B, N, 3, h, d // h).permute(2, 0, 3, 1, 4).unbind(0)  # each (B, h, N, d/h)
    a = torch.softmax((q * (d // h) ** -0.5) @ k.transpose(-1, -2), -1)  # (B, h, N, N)
    o = (a @ v).transpose(1, 2).reshape(B, N, d)
    return nn.functional.linear(o, mha.out_proj.weight, mha.out_proj.bias)


def query_attention(mha: nn.MultiheadAttention, query: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
    r"""``mha(q, H, H)`` for one query ``(d,)`` shared by the batch: ``(B, N, d) -> (B, d)``.

    With one query the keys need not be formed: head :math:`j`'s score of member :math:`n` is
    :math:`q_j \cdot (W_{k,j} H_n + b_{k,j}) = H_n \cdot (W_{k,j}^T q_j) + \mathrm{const}`, and
    the constant cancels in the softmax; the values are averaged before their projection
    (:math:`\sum_n a_n (W_v H_n + b_v) = W_v \sum_n a_n H_n + b_v`). The same function as
    ``nn.MultiheadAttention`` with a fraction of its products.
    """
    d = H.shape[-1]
    h = mha.num_heads
    Wq, Wk, Wv = mha.in_proj_weight.chunk(3)
    bq, _, bv = mha.in_proj_bias.chunk(3)
    q = (Wq @ query + bq).view(h, d // h) * (d // h) ** -0.5
    U = torch.einsum("jed,je->dj", Wk.view(h, d // h, d), q)  # (d, h)
    a = torch.softmax(H @ U, -2)  # (B, N, h)
    pooled = a.transpose(-1, -2) @ H  # (B, h, d)
    o = torch.einsum("bjd,jed->bje", pooled, Wv.view(h, d // h, d)) + bv.view(h, d // h)
    return nn.functional.linear(o.flatten(1), mha.out_proj.weight, mha.out_proj.bias)


class MNMEFHeads(nn.Module):
    """From the summary ``s`` ``(B, d)`` and member features ``H`` ``(B, N, d)``: localization
    weights ``(B, n_bins)``, multiplicative and additive inflation ``(B,)``, and increment
    corrections ``(B, N, Nx)``. Initialised to a Gaspari–Cohn localization of radius
    ``loc_init`` (in bins), inflation 1.05, no additive inflation and no correction (the
    correction's last layer is zero, the gate 1)."""

    def __init__(self, d: int, n_bins: int, Nx: int, loc_init: float, bin_width: float):
        super().__init__()
        self.loc = nn.Linear(d, n_bins)
        self.infl = nn.Linear(d, 2)
        self.corr = nn.Sequential(nn.Linear(2 * d, d), nn.SiLU(), nn.Linear(d, Nx))
        self.gate = nn.Parameter(torch.ones(()))
        with torch.no_grad():
            self.corr[-1].weight.zero_()
            self.corr[-1].bias.zero_()
            centres = np.arange(n_bins) * bin_width
            rho0 = np.clip(gaspari_cohn(centres / (1.82 * loc_init)), 1e-3, 1 - 1e-3)
            rho0[0] = 1 - 1e-3
            self.loc.weight.zero_()
            self.loc.bias.copy_(torch.as_tensor(np.log(rho0 / (1 - rho0))))
            self.infl.weight.zero_()
            self.infl.bias.copy_(torch.tensor([math.log(0.1 / 0.9), -6.0]))

    def forward(self, H: torch.Tensor, s: torch.Tensor):
        rho = torch.sigmoid(self.loc(s))
        a, b = self.infl(s).unbind(-1)
        lam = 1.0 + 0.5 * torch.sigmoid(a)
        alpha = nn.functional.softplus(b)
        corr = self.gate * self.corr(torch.cat([H, s[:, None].expand_as(H)], -1))
        return rho, lam, alpha, corr


def _logit(p: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.log(p / (1 - p)), dtype=torch.float32)


def _mlp(d_in: int, d: int, d_out: int) -> nn.Sequential:
    """Two hidden layers (as the reference's ``Simple_MLP``), the last layer zero (no output)."""
    mlp = nn.Sequential(nn.Linear(d_in, d), nn.SiLU(), nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d_out))
    with torch.no_grad():
        mlp[-1].weight.zero_()
        mlp[-1].bias.zero_()
    return mlp


class ReferenceHeads(nn.Module):
    """The heads of ``form="reference"`` (the reference code's ``local_model``, ``model`` and
    ``infl_model``): from the tokens ``T`` ``(B, N, Nx+Ny)``, member features ``H`` ``(B, N, d)``
    and summary ``s`` ``(B, d)``,

    - localization weights ``rho = loc_max * sigmoid(loc(s))`` ``(B, n_bins)``, in ``(0, loc_max)``
      (the reference's ``loc_max_val`` = 2), starting as a Gaspari–Cohn shape of radius
      ``loc_init``;
    - per member, corrections of the state and observation anomalies inside the gain ``da``
      ``(B, N, Nx)``, ``dy`` ``(B, N, Ny)`` and a deterministic additive inflation ``dx``
      ``(B, N, Nx)``, in units of the climatological spread and the observation-error std, from
      one MLP of ``[T_n, s]`` (the reference feeds ``[x_n, h(x_n), y, s]`` to two MLPs; one
      shared MLP costs half the FLOPs, which dominate training time) whose last layer starts at
      zero. The member features ``H`` are not used (``H`` is accepted for a common signature).
    """

    def __init__(self, d: int, n_bins: int, Nx: int, Ny: int, loc_init: float, bin_width: float,
                 loc_max: float = 2.0):
        super().__init__()
        self.Nx, self.loc_max = Nx, loc_max
        self.loc = nn.Linear(d, n_bins)
        self.Ny = Ny
        self.corr = _mlp(Nx + Ny + d, d, 2 * Nx + Ny)
        with torch.no_grad():
            centres = np.arange(n_bins) * bin_width
            rho0 = np.clip(gaspari_cohn(centres / (1.82 * loc_init)), 1e-3, loc_max - 1e-3)
            self.loc.weight.zero_()
            self.loc.bias.copy_(_logit(rho0 / loc_max))

    def forward(self, T: torch.Tensor, H: torch.Tensor, s: torch.Tensor):
        rho = self.loc_max * torch.sigmoid(self.loc(s))
        # the first layer on [T_n, s] as W_T T_n + (W_s s + b): the summary's part once per ensemble
        first, d_T = self.corr[0], T.shape[-1]
        z = T @ first.weight[:, :d_T].T + nn.functional.linear(s, first.weight[:, d_T:], first.bias)[:, None]
        out = self.corr[1:](z)
        return (rho, *out.split([self.Nx, self.Ny, self.Nx], -1))


def build_nets(spec: dict[str, Any], d_model: int, heads: int, loc_init: float, bin_width: float,
               seed: int, form: str = "increment") -> dict[str, nn.Module]:
    """``{"summary": SetSummary, "heads": MNMEFHeads}`` (``form="increment"``) or ``ReferenceHeads``
    (``form="reference"``) for ``spec`` (``Nx``, ``Ny``, ``n_bins``), their initial weights drawn
    from ``seed`` (the global torch stream is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        summary = SetSummary(spec["Nx"] + spec["Ny"], d_model, heads)
        if form == "reference":
            return {"summary": summary, "heads": ReferenceHeads(d_model, spec["n_bins"], spec["Nx"],
                                                                spec["Ny"], loc_init, bin_width)}
        return {"summary": summary,
                "heads": MNMEFHeads(d_model, spec["n_bins"], spec["Nx"], loc_init, bin_width)}
