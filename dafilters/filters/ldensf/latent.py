r"""LD-EnSF's latent space: the analysis variables :math:`v = (u, p)` (standardised latent state,
then standardised parameters), the maps between states and latent members, the likelihood score of
the LSTM's estimate and the LSTM's input. Pure functions of the networks and tensors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..ensf import mixture_prior_score, standard_noise, step_coefficients
from .nets import LatentDynamics

__all__ = ["LatentEnsemble", "field_layout", "as_tensor", "encode_states", "decode_states", "latent_step",
           "latent_score", "history_tensor", "implicit_latent_sample"]


@dataclass
class LatentEnsemble:
    """The filter's state: latent members ``V`` ``(N, latent_dim + n_params)`` (standardised
    latent state, then parameters) and their decoding ``E`` ``(N, Nx)`` (numpy float64)."""

    V: torch.Tensor
    E: np.ndarray


def field_layout(dyn, n_field: int) -> tuple[np.ndarray, tuple[float, float], int]:
    r"""Where the decoder evaluates the ``n_field`` field components of a state: the points
    ``(P, 2)`` of one field, the periods ``(L0, L1)`` of its Fourier features and the number of
    fields ``C`` (``C * P = n_field``; the state holds field 0 at every point, then field 1, ...).

    A model whose fields are not one field on ``coords`` of a periodic 2-D ``domain`` says so with
    a method ``field_points()`` returning the three (e.g. :class:`mods.ShallowWater.ShallowWater`:
    three fields on the (longitude, colatitude) grid, periods :math:`(2\pi, 2\pi)`); otherwise
    the field is one field on the first ``n_field`` rows of ``coords`` and the periods are
    ``domain``.

    Raises:
        ValueError: naming the mismatch if neither description fits the state.
    """
    if hasattr(dyn, "field_points"):
        points, periods, channels = dyn.field_points()
    else:
        if dyn.domain is None or len(dyn.domain) != 2:
            raise ValueError("LD-EnSF decodes fields on points of a periodic 2-D domain: the dynamics "
                             "need coords (Nx, 2) and a domain (L0, L1), or a field_points() method")
        points, periods, channels = np.asarray(dyn.coords, dtype=float)[:n_field], dyn.domain, 1
    points = np.asarray(points, dtype=float)
    channels = int(channels)
    if points.ndim != 2 or points.shape[1] != 2 or len(periods) != 2:
        raise ValueError(f"LD-EnSF needs 2-D points and two periods, got points of shape {points.shape} "
                         f"and periods {periods!r}")
    if channels < 1 or channels * len(points) != n_field:
        raise ValueError(f"{channels} field(s) on {len(points)} points do not make the state's "
                         f"{n_field} field components")
    return points, (float(periods[0]), float(periods[1])), channels


def as_tensor(a, device: str | torch.device) -> torch.Tensor:
    """``a`` (array-like) as a float32 tensor on ``device``."""
    return torch.as_tensor(np.asarray(a), dtype=torch.float32, device=device)


def encode_states(net: LatentDynamics, X: torch.Tensor, n_field: int) -> torch.Tensor:
    r"""States ``(N, Nx)`` (field, then parameters) -> latent members
    :math:`v = ((E(\tilde\omega) - \bar z)/s_z,\ (\mu - \bar\mu)/s_\mu)` ``(N, d + n_params)``."""
    z = net.encoder(net.standardise(X[:, :n_field]))
    return torch.cat([(z - net.z_mean) / net.z_std, (X[:, n_field:] - net.p_mean) / net.p_std], 1)


def decode_states(net: LatentDynamics, V: torch.Tensor, basis: torch.Tensor, latent_dim: int) -> np.ndarray:
    """Latent members ``(N, latent_dim + n_params)`` -> states ``(N, Nx)`` (numpy float64);
    ``basis`` from :meth:`FieldDecoder.basis` at the field's points."""
    d = latent_dim
    fields = net.unstandardise(net.decoder(V[:, :d] * net.z_std + net.z_mean, basis))
    params = V[:, d:] * net.p_std + net.p_mean
    return torch.cat([fields, params], 1).to(device="cpu", dtype=torch.float64).numpy()


def latent_step(net: LatentDynamics, V: torch.Tensor, latent_dim: int) -> torch.Tensor:
    """The standardised latent states ``u`` ``(N, latent_dim)`` of members ``V`` one observation
    interval later by the latent ODE (parameters fixed)."""
    d = latent_dim
    z = net.ode(V[:, :d] * net.z_std + net.z_mean, V[:, d:])
    return (z - net.z_mean) / net.z_std


def latent_score(V: torch.Tensor, v_hat: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    r"""Likelihood score :math:`(\hat v - v)/\sigma^2` of latent samples ``V`` ``(M, d)`` given
    the encoder's estimate ``v_hat`` ``(d,)`` with variances ``var`` ``(d,)``."""
    return (v_hat - V) / var


def history_tensor(ys: list[torch.Tensor], length: int) -> torch.Tensor:
    """The LSTM input ``(length, Ny + 1)`` from the latest standardised observations ``ys``
    (oldest first, at most ``length``): left-padded with zero rows, last column 1 for a real
    observation and 0 for padding."""
    if not ys:
        raise ValueError("the observation history is empty")
    ys = ys[-length:]
    Y = torch.stack(ys)
    ones = torch.ones(len(ys), 1, dtype=Y.dtype, device=Y.device)
    real = torch.cat([Y, ones], 1)
    pad = torch.zeros(length - len(ys), Y.shape[1] + 1, dtype=Y.dtype, device=Y.device)
    return torch.cat([pad, real], 0)


def implicit_latent_sample(X: torch.Tensor, v_hat: torch.Tensor, var: torch.Tensor, steps: int,
                           eps_a: float, eps_b: float, prior_score: str,
                           generators: list[torch.Generator]) -> torch.Tensor:
    r"""EnSF's reverse-time SDE (:func:`dafilters.filters.ensf.ensf_sample`, the same schedule,
    damping :math:`h(t)`, prior scores and initial draws) for the Gaussian latent likelihood
    :math:`N(\hat v; v, \mathrm{diag}(\sigma^2))`, whose score :math:`(\hat v - z)/\sigma^2` is
    linear in :math:`z`: each Euler step takes that term at the new point,

    .. math:: z' = \frac{(1 - \Delta f) z + \Delta g^2 \big(s_{\rm prior}(z, t)
              + h(t)\, \hat v/\sigma^2\big) + \sqrt{\Delta}\, g\, \xi}{1 + \Delta g^2 h(t)/\sigma^2}.

    The explicit step (EnSF's, and the LD-EnSF reference's) multiplies the distance to
    :math:`\hat v` by :math:`1 - \Delta g^2 h/\sigma^2` and diverges once that exceeds 2 in
    magnitude (:math:`\sigma \lesssim 0.07` at 100 steps); this one contracts it by
    :math:`1/(1 + \Delta g^2 h/\sigma^2)` for every :math:`\sigma` and has the same limit as
    :math:`\Delta \to 0`.

    Args:
        X: latent forecast members ``(N, d)``. v_hat: the estimate ``(d,)``. var:
            :math:`\sigma^2` ``(d,)``. steps, eps_a, eps_b, prior_score: as for ``ensf_sample``.
        generators: torch generators of the noise (the initial draws, then one draw per step).

    Returns:
        The analysis members ``(N, d)``.
    """
    N = X.shape[0]
    Z = standard_noise(torch.empty_like(X), generators)
    if N > 1:
        Z = (Z - Z.mean(dim=0)) / Z.std(dim=0)
    xi = torch.empty_like(X)
    # per step (h, alpha/beta^2, -1/beta^2, 1 - dt f, dt g^2, sqrt(dt) g): EnSF's own coefficients
    for h, a_x, a_z, decay, a_s, a_xi in step_coefficients(steps, eps_a, eps_b):
        prior = a_x * X + a_z * Z if prior_score == "paired" else \
            mixture_prior_score(Z, X, -a_x / a_z, -1.0 / a_z)
        drift = decay * Z + a_s * (prior + h * v_hat / var)
        Z = (drift + a_xi * standard_noise(xi, generators)) / (1.0 + a_s * h / var)
    return Z
