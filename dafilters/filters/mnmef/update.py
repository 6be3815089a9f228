r"""MNMEF's analysis in pure functions: one update of a batch of ensembles, and what it needs of
the observations (distance bins, observation-error standard deviations, ``h`` on tensors).

Each analysis reads the forecast ensemble :math:`x_1..x_N` ``(N, Nx)`` with its predicted
observations :math:`h(x_n)` and the observation :math:`y`:

1. **Set summary.** Tokens :math:`t_n = [(x_n - \bar x)/c,\ (y - h(x_n))/\sigma_y]` are embedded,
   mixed by one self-attention block over the members and pooled by attention to a learned query
   (a set transformer): a summary :math:`s` that does not depend on the order of the members, and
   per-member features :math:`H_n`.
2. **Inflation.** :math:`A \leftarrow \lambda(s) A + \alpha(s)\, c\, \Xi` (multiplicative
   :math:`\lambda \in [1, 1.5]` and additive, with centred standard normal :math:`\Xi`).
3. **Localized gain.** With :math:`P_{xy} = A^T Y/(N-1)`, :math:`P_{yy} = Y^T Y/(N-1)` and
   localization weights :math:`\rho(s) \in (0, 1)` per distance bin (bins of ``bin_width``),

   .. math:: K = (\rho_{xy} \circ P_{xy})\,(\rho_{yy} \circ P_{yy} + R)^{-1}.

4. **Update with learned corrections.** Perturbed observations :math:`D_n \sim N(0, R)` (centred,
   rescaled by :math:`\sqrt{N/(N-1)}`) and a permutation-equivariant correction of each increment:

   .. math:: x^a_n = x_n + K (y - D_n - h(x_n)) + g\, \mathrm{MLP}([H_n, s]),

   where the MLP's last layer starts at zero (and the gate :math:`g` at 1), so an untrained
   MNMEF is a localized PertObs EnKF whose correction still receives gradients (a gate starting
   at 0 in front of a random MLP blocks them: trained that way, the gate stayed near 0).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ...gaussian import Covariance
from ...hmm import HMM, Dynamics, Observation
from ...localization import pairwise_distances

__all__ = ["mnmef_update", "distance_bins", "observation_layout", "diagonal_noise", "TorchObs"]


class TorchObs:
    """The observation operator at observation time ``ko`` on tensors, ``(..., Nx) -> (..., Ny)``."""

    def __init__(self, obs: Observation, ko: int):
        self.obs, self.ko = obs, ko

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        return self.obs.h_torch(X, self.ko)


def distance_bins(coords: np.ndarray, obs_xy: np.ndarray, domain, bin_width: float,
                  n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Bin indices ``floor(d / bin_width)`` (capped at ``n_bins - 1``) of the state–observation
    ``(Nx, Ny)`` and observation–observation ``(Ny, Ny)`` distances."""
    dom = None if domain is None else np.asarray(domain, dtype=float)
    return (_bin(pairwise_distances(coords, obs_xy, dom), bin_width, n_bins),
            _bin(pairwise_distances(obs_xy, obs_xy, dom), bin_width, n_bins))


def _bin(d: np.ndarray, bin_width: float, n_bins: int) -> np.ndarray:
    return np.minimum((d / bin_width).astype(int), n_bins - 1)


def diagonal_noise(hmm: HMM, ko: int) -> Covariance:
    """The observation-error covariance at ``ko``; a ``ValueError`` unless it is diagonal."""
    R = hmm.obs.noise(ko)
    if not R.is_diag:
        raise ValueError("MNMEF needs a diagonal observation-error covariance")
    return R


def observation_layout(dyn: Dynamics, locs: np.ndarray, R: Covariance, bin_width: float,
                       n_bins: int, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The distance bins ``(Nx, Ny)``, ``(Ny, Ny)`` (long) of observations at ``locs`` and their
    error standard deviations ``(Ny,)`` (float32; ``R`` diagonal), as tensors on ``device``."""
    bxy, byy = distance_bins(dyn.coords, locs, dyn.domain, bin_width, n_bins)
    return (torch.as_tensor(bxy, device=device), torch.as_tensor(byy, device=device),
            torch.as_tensor(np.sqrt(R.diag), dtype=torch.float32, device=device))


def mnmef_update(nets: dict[str, nn.Module], E: torch.Tensor, y: torch.Tensor, h, r_std: torch.Tensor,
                 bins_xy: torch.Tensor, bins_yy: torch.Tensor, scale: float,
                 xi_obs: torch.Tensor, xi_add: torch.Tensor) -> torch.Tensor:
    r"""One MNMEF analysis of a batch of ensembles (see the module docstring).

    Args:
        nets: ``{"summary": SetSummary, "heads": MNMEFHeads}``.
        E: forecast ensembles ``(B, N, Nx)``. y: observations ``(B, Ny)``.
        h: the observation operator on tensors ``(..., Nx) -> (..., Ny)`` (e.g. :class:`TorchObs`).
        r_std: observation-error standard deviations ``(Ny,)`` (diagonal R).
        bins_xy, bins_yy: distance bins ``(Nx, Ny)``, ``(Ny, Ny)`` (long).
        scale: climatological standard deviation :math:`c` of the state.
        xi_obs ``(B, N, Ny)``, xi_add ``(B, N, Nx)``: standard normal draws (perturbations).

    Returns:
        The analysis ensembles ``(B, N, Nx)``.
    """
    N = E.shape[-2]
    Eo = h(E)
    T = torch.cat([(E - E.mean(-2, keepdim=True)) / scale, (y[:, None] - Eo) / r_std], -1)
    H, s = nets["summary"](T)
    rho, lam, alpha, corr = nets["heads"](H, s)
    xm = E.mean(-2, keepdim=True)
    add = xi_add - xi_add.mean(-2, keepdim=True)
    E = xm + lam[:, None, None] * (E - xm) + (alpha * scale)[:, None, None] * add
    A = E - E.mean(-2, keepdim=True)
    Eo = h(E)
    Y = Eo - Eo.mean(-2, keepdim=True)
    Pxy = A.transpose(-1, -2) @ Y / (N - 1)
    Pyy = Y.transpose(-1, -2) @ Y / (N - 1)
    C = rho[:, bins_yy] * Pyy + torch.diag_embed(r_std**2).expand_as(Pyy)
    D = xi_obs * r_std
    D = (D - D.mean(-2, keepdim=True)) * math.sqrt(N / (N - 1))
    innov = y[:, None] - D - Eo  # (B, N, Ny)
    incr = (rho[:, bins_xy] * Pxy) @ torch.linalg.solve(C, innov.transpose(-1, -2))  # (B, Nx, N)
    return E + incr.transpose(-1, -2) + corr
