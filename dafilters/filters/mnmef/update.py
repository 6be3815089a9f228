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

That is ``form="increment"``. ``form="reference"`` (:func:`reference_update`) is the analysis of
the paper's code (wispcarey/DALearning, ``train_test_utils.py``, ``args.v == 'CorrTerms'``): the
corrections act *inside* the gain. From the tokens, member features and summary, per member,

.. math::
   \tilde A_n = A_n + c\,\delta a_n,\quad \tilde Y_n = Y_n + \sigma_y \circ \delta y_n,\quad
   \tilde x_n = x_n + c\,\delta x_n,

   K = (\rho_{xy} \circ \tilde A^T \tilde Y)\,(\rho_{yy} \circ \tilde Y^T \tilde Y + (N-1) R)^{-1},
   \qquad x^a_n = \tilde x_n + K (y - D_n - h(x_n)),

with localization weights :math:`\rho(s) \in (0, 2)` per distance bin and a deterministic
per-member additive inflation :math:`\delta x_n`; no random inflation. The analysis is clamped
to :math:`\pm 6c` (:data:`CLAMP`; the reference clamps L96 states to :math:`\pm 20`). With zero corrections
(:math:`\delta a = \delta y = \delta x = 0`) it is exactly the localized PertObs EnKF
(:func:`pertobs_analysis`), which is how an untrained one starts (Gaspari–Cohn weights).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ...gaussian import Covariance
from ...hmm import HMM, Dynamics, Observation
from ...localization import pairwise_distances

#: the analysis forms: learned increments after the update, or the reference's corrections
#: inside the gain
FORMS = ("increment", "reference")
#: the reference form clamps the analysis to +- CLAMP climatological standard deviations (the
#: reference code clamps it to +-20 on L96, about 5.5 of them, against blow-ups of the unrolled
#: filter in training)
CLAMP = 6.0

__all__ = ["mnmef_update", "reference_update", "pertobs_analysis", "FORMS", "distance_bins",
           "observation_layout", "diagonal_noise", "TorchObs"]


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
                 xi_obs: torch.Tensor, xi_add: torch.Tensor, form: str = "increment") -> torch.Tensor:
    r"""One MNMEF analysis of a batch of ensembles (see the module docstring).

    Args:
        nets: ``{"summary": SetSummary, "heads": MNMEFHeads}``.
        E: forecast ensembles ``(B, N, Nx)``. y: observations ``(B, Ny)``.
        h: the observation operator on tensors ``(..., Nx) -> (..., Ny)`` (e.g. :class:`TorchObs`).
        r_std: observation-error standard deviations ``(Ny,)`` (diagonal R).
        bins_xy, bins_yy: distance bins ``(Nx, Ny)``, ``(Ny, Ny)`` (long).
        scale: climatological standard deviation :math:`c` of the state.
        xi_obs ``(B, N, Ny)``, xi_add ``(B, N, Nx)``: standard normal draws (perturbations;
            ``xi_add`` is unused by ``form="reference"``).
        form: ``"increment"`` (the nets' heads are :class:`MNMEFHeads`) or ``"reference"``
            (:func:`reference_update`).

    Returns:
        The analysis ensembles ``(B, N, Nx)``.
    """
    if form == "reference":
        return reference_update(nets, E, y, h, r_std, bins_xy, bins_yy, scale, xi_obs)
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


def tokens(E: torch.Tensor, Eo: torch.Tensor, y: torch.Tensor, r_std: torch.Tensor,
           scale: float) -> torch.Tensor:
    """The set summary's tokens ``(B, N, Nx + Ny)``: normalised anomalies and innovations."""
    return torch.cat([(E - E.mean(-2, keepdim=True)) / scale, (y[:, None] - Eo) / r_std], -1)


def perturbations(xi_obs: torch.Tensor, r_std: torch.Tensor) -> torch.Tensor:
    """Observation perturbations ``D`` from standard normal draws ``(B, N, Ny)``: scaled by the
    error standard deviations, centred over the members and rescaled by ``sqrt(N/(N-1))``."""
    N = xi_obs.shape[-2]
    D = xi_obs * r_std
    return (D - D.mean(-2, keepdim=True)) * math.sqrt(N / (N - 1))


def pertobs_analysis(X: torch.Tensor, Eo: torch.Tensor, A: torch.Tensor, Y: torch.Tensor,
                     y: torch.Tensor, rho_xy: torch.Tensor, rho_yy: torch.Tensor, r_std: torch.Tensor,
                     D: torch.Tensor) -> torch.Tensor:
    r"""The localized perturbed-observation analysis with given anomalies:
    :math:`x^a_n = X_n + K(y - D_n - h_n)`, :math:`K = (\rho_{xy} \circ A^T Y)(\rho_{yy} \circ
    Y^T Y + (N-1)R)^{-1}`.

    Args:
        X: the members to update ``(B, N, Nx)``. Eo: their predicted observations ``h_n``
            ``(B, N, Ny)``. A ``(B, N, Nx)``, Y ``(B, N, Ny)``: the anomalies of the gain.
        y ``(B, Ny)``; rho_xy ``(B, Nx, Ny)``, rho_yy ``(B, Ny, Ny)``: the localization weights;
        r_std ``(Ny,)``; D ``(B, N, Ny)``: the observation perturbations.
    """
    N = X.shape[-2]
    Pxy = A.transpose(-1, -2) @ Y
    C = rho_yy * (Y.transpose(-1, -2) @ Y) + torch.diag_embed((N - 1) * r_std**2)
    innov = y[:, None] - D - Eo  # (B, N, Ny)
    incr = (rho_xy * Pxy) @ torch.linalg.solve(C, innov.transpose(-1, -2))  # (B, Nx, N)
    return X + incr.transpose(-1, -2)


def reference_update(nets: dict[str, nn.Module], E: torch.Tensor, y: torch.Tensor, h, r_std: torch.Tensor,
                     bins_xy: torch.Tensor, bins_yy: torch.Tensor, scale: float,
                     xi_obs: torch.Tensor) -> torch.Tensor:
    """One analysis of ``form="reference"`` (see the module docstring); arguments as
    :func:`mnmef_update` (no additive-inflation draws: the reference's inflation is
    deterministic). ``nets["heads"]`` is a :class:`~dafilters.filters.mnmef.nets.ReferenceHeads`."""
    Eo = h(E)
    T = tokens(E, Eo, y, r_std, scale)
    H, s = nets["summary"](T)
    rho, da, dy, dx = nets["heads"](T, H, s)
    A = E - E.mean(-2, keepdim=True) + scale * da
    Y = Eo - Eo.mean(-2, keepdim=True) + r_std * dy
    Ea = pertobs_analysis(E + scale * dx, Eo, A, Y, y, rho[:, bins_xy], rho[:, bins_yy], r_std,
                          perturbations(xi_obs, r_std))
    return Ea.clamp(-CLAMP * scale, CLAMP * scale)
