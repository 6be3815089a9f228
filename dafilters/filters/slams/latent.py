r"""SLAMS's latent observations: the modalities regridded onto the state grid and stacked with
their masks as the encoder's input, and the likelihood of the encoded observations in the latent
window (:func:`latent_loglik`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...hmm import HMM, Observation
from ...multimodal import MultiObs, regrid_matrix
from ..sda.diffusion import standardisation

__all__ = ["SINGLE", "modalities_of", "present_parts", "encoder_input", "regrid_maps",
           "modality_fields", "latent_loglik"]

#: The name of the single modality of an HMM whose observation is not a MultiObs.
SINGLE = "obs"


def modalities_of(obs: Observation) -> dict[str, Observation]:
    """``{name: operator}``: the modalities of a MultiObs, or ``{"obs": obs}``."""
    if isinstance(obs, MultiObs):
        return {n: m.obs for n, m in obs.modalities.items()}
    return {SINGLE: obs}


def present_parts(obs: Observation, y: np.ndarray, ko: int) -> dict[str, np.ndarray]:
    """``{name: y_m}`` of the modalities observed at ``ko``."""
    if isinstance(obs, MultiObs):
        return obs.split(np.asarray(y), ko)
    return {SINGLE: np.asarray(y)}


def encoder_input(bg: torch.Tensor, spread: torch.Tensor, fields: list[torch.Tensor | None],
                  masks: list[torch.Tensor]) -> torch.Tensor:
    """The channels ``(B, 2 + 2M, Nx)``: background, spread, then ``g_m * c_m, c_m`` per modality.

    Args:
        bg, spread: ``(B, Nx)`` (standardised). fields: per trained modality ``(B, Nx)``
            standardised regridded values, or ``None`` if absent. masks: ``(B, Nx)`` per modality
            (0 where absent or dropped).
    """
    chans = [bg, spread]
    for g, c in zip(fields, masks):
        c = c.expand_as(bg)
        chans += [torch.zeros_like(bg) if g is None else g * c, c]
    return torch.stack(chans, 1)


def regrid_maps(hmm: HMM, ko: int, device: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{name: (G (Ny, Nx), mask (Nx,))}`` per modality of ``hmm`` at ``ko``
    (:func:`~dafilters.multimodal.regrid_matrix`)."""
    out = {}
    for name, o in modalities_of(hmm.obs).items():
        G, c = regrid_matrix(o, hmm.Nx, ko)
        out[name] = (torch.as_tensor(G, dtype=torch.float32, device=device),
                     torch.as_tensor(c, dtype=torch.float32, device=device))
    return out


def modality_fields(spec: dict[str, Any], parts: dict[str, torch.Tensor], regrid, device: str,
                    keep: torch.Tensor | None = None) -> tuple[list, list]:
    """Standardised regridded fields and masks ``(B, Nx)`` per modality of ``spec`` (``None`` and
    a zero mask for one absent from ``parts``; ``keep`` ``(B, M)``: 0 drops a modality for a
    sample)."""
    mean, std = standardisation(spec, device)
    fields, masks = [], []
    for i, name in enumerate(spec["modalities"]):
        if name not in parts:
            fields.append(None)
            masks.append(torch.zeros(1, spec["Nx"], device=device))
            continue
        G, c = regrid[name]
        g = (parts[name] @ G - mean) / std
        m = c.expand_as(g) if keep is None else c * keep[:, i:i + 1]
        fields.append(g)
        masks.append(m)
    return fields, masks


def latent_loglik(z0: torch.Tensor, pos: list[int], zo: list[torch.Tensor], vo: list[torch.Tensor],
                  gamma: float, sigma: float, mu: float) -> torch.Tensor:
    r""":math:`\sum_j \log N(z^o_j \mid \hat z_0[:, p_j],\ v_j + \gamma(\sigma/\mu)^2)` summed
    over the batch (constants dropped). ``z0`` ``(B, L, d)``; ``zo[j]``, ``vo[j]`` ``(d,)``."""
    total = z0.new_zeros(())
    for p, z, v in zip(pos, zo, vo):
        total = total - 0.5 * ((z - z0[:, p]) ** 2 / (v + gamma * (sigma / mu) ** 2)).sum()
    return total
