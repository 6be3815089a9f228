r"""LD-EnSF's networks: the latent dynamics network (field encoder, latent ODE, decoder on Fourier
features of the points) and the LSTM observation encoder. Their buffers hold the standardisation
and noise levels measured by the training, so they are saved with the weights."""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn

from ...integrators import rk4_steps
from ...nn.nets import MLP

__all__ = ["FourierFeatures", "FieldDecoder", "LatentODE", "LatentDynamics", "ObsLSTM"]


class FourierFeatures(nn.Module):
    r"""Periodic features :math:`(\sin \kappa\cdot x, \cos \kappa\cdot x)` ``(..., 2M)`` of points
    ``(..., 2)``, for the ``M`` integer wave vectors :math:`k` with :math:`|k_i| \le` ``kmax`` in
    a half plane (:math:`k_0 > 0`, or :math:`k_0 = 0 < k_1`), :math:`\kappa = 2\pi k / L`."""

    def __init__(self, domain: tuple[float, float], kmax: int):
        super().__init__()
        r = torch.arange(-kmax, kmax + 1)
        k = torch.cartesian_prod(r, r)
        k = k[(k[:, 0] > 0) | ((k[:, 0] == 0) & (k[:, 1] > 0))].float()
        self.register_buffer("kappa", 2 * math.pi * k / torch.tensor(domain, dtype=torch.float32))

    @property
    def size(self) -> int:
        return 2 * self.kappa.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        phase = x @ self.kappa.T
        return torch.cat([torch.sin(phase), torch.cos(phase)], -1)


class FieldDecoder(nn.Module):
    r""":math:`\tilde\omega(x) = b(x) + \sum_j a_j(z) \varphi_j(x)`: latent states ``(..., d)`` and
    a basis evaluated at ``P`` points (:meth:`basis`, ``(P, r + 1)``) -> fields ``(..., P)``."""

    def __init__(self, latent_dim: int, domain: tuple[float, float], kmax: int, n_basis: int,
                 width: int, depth: int):
        super().__init__()
        self.features = FourierFeatures(domain, kmax)
        self.trunk = MLP(self.features.size, n_basis + 1, width, depth)
        self.branch = MLP(latent_dim, n_basis, width, depth)

    def basis(self, coords: torch.Tensor) -> torch.Tensor:
        """``(b, phi_1..phi_r)`` at points ``coords`` ``(P, 2)``: ``(P, r + 1)``."""
        return self.trunk(self.features(coords))

    def forward(self, z: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
        return basis[:, 0] + self.branch(z) @ basis[:, 1:].T


class LatentODE(nn.Module):
    r""":math:`dz/d\tau = f_\theta(z, p)`, an MLP, integrated by the classical RK4
    (:func:`dafilters.integrators.rk4_steps`) with ``substeps`` steps per observation interval
    (:math:`\tau` counts intervals). The last layer starts at zero (identity flow)."""

    def __init__(self, latent_dim: int, n_params: int, width: int, depth: int, substeps: int):
        super().__init__()
        self.f = MLP(latent_dim + n_params, latent_dim, width, depth)
        self.substeps = int(substeps)
        last = self.f.net[-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def tendency(self, z: torch.Tensor, tau: float, p: torch.Tensor) -> torch.Tensor:
        r""":math:`f_\theta(z, p)` (autonomous: ``tau`` is not used)."""
        return self.f(torch.cat([z, p], -1))

    def forward(self, z: torch.Tensor, p: torch.Tensor, intervals: int = 1) -> torch.Tensor:
        """``z`` ``(B, d)``, ``p`` ``(B, n_params)`` -> ``z`` after ``intervals`` intervals."""
        n = int(intervals)
        return rk4_steps(partial(self.tendency, p=p), z, 0.0, float(n), self.substeps * n)

    def rollout(self, z: torch.Tensor, p: torch.Tensor, length: int) -> torch.Tensor:
        """``(B, length + 1, d)``: ``z`` and its ``length`` successive one-interval forecasts."""
        out = [z]
        for _ in range(length):
            out.append(self(out[-1], p))
        return torch.stack(out, 1)


class LatentDynamics(nn.Module):
    """The latent dynamics network: field encoder, latent ODE and decoder, with the buffers that
    standardise fields (``field_mean``, ``field_std``), parameters (``p_mean``, ``p_std``) and
    latent states (``z_mean``, ``z_std``), and the latent forecast error ``q_std``."""

    def __init__(self, n_field: int, n_params: int, domain: tuple[float, float], latent_dim: int,
                 kmax: int, n_basis: int, width: int, depth: int, substeps: int, enc_width: int):
        super().__init__()
        self.encoder = MLP(n_field, latent_dim, enc_width, 1)
        self.decoder = FieldDecoder(latent_dim, domain, kmax, n_basis, width, depth)
        self.ode = LatentODE(latent_dim, n_params, width, depth, substeps)
        for name, size in (("field_mean", 1), ("field_std", 1), ("p_mean", n_params),
                           ("p_std", n_params), ("z_mean", latent_dim), ("z_std", latent_dim),
                           ("q_std", latent_dim)):
            self.register_buffer(name, torch.zeros(size) if "mean" in name else torch.ones(size))


class ObsLSTM(nn.Module):
    """Observation histories ``(B, L, Ny + 1)`` -> latent states and parameters ``(B, d_out)``
    (an LSTM and a linear head on its last output). Buffers: ``y_mean`` ``(Ny,)`` and ``y_std``
    standardise the observations, ``resid_std`` ``(d_out,)`` is the validation RMS residual."""

    def __init__(self, Ny: int, d_out: int, hidden: int, layers: int):
        super().__init__()
        self.lstm = nn.LSTM(Ny + 1, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, d_out)
        self.register_buffer("y_mean", torch.zeros(Ny))
        self.register_buffer("y_std", torch.ones(1))
        self.register_buffer("resid_std", torch.ones(d_out))

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(seq)
        return self.head(out[:, -1])
