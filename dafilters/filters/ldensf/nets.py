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
    r""":math:`\tilde\omega_c(x) = b_c(x) + \sum_j a_j(z) \varphi_{c,j}(x)` for each of ``channels``
    fields :math:`c`: latent states ``(..., d)`` and a basis at the fields' components
    (:meth:`basis`, ``(C * P, r + 1)``) -> fields ``(..., C * P)`` (field-major, as the state)."""

    def __init__(self, latent_dim: int, domain: tuple[float, float], kmax: int, n_basis: int,
                 width: int, depth: int, channels: int = 1):
        super().__init__()
        self.channels = int(channels)
        self.features = FourierFeatures(domain, kmax)
        self.trunk = MLP(self.features.size, self.channels * (n_basis + 1), width, depth)
        self.branch = MLP(latent_dim, n_basis, width, depth)

    def basis(self, points: torch.Tensor, channel: torch.Tensor | None = None) -> torch.Tensor:
        """``(b_c, phi_c1..phi_cr)`` at ``points`` ``(Q, 2)``: ``(C * Q, r + 1)`` for every field
        (rows ``c * Q + q``), or ``(Q, r + 1)`` for field ``channel[q]`` at point ``q`` when
        ``channel`` ``(Q,)`` is given (a random subset of the state's field components)."""
        B = self.trunk(self.features(points)).unflatten(-1, (self.channels, -1))  # (Q, C, r + 1)
        if channel is not None:
            return B[torch.arange(B.shape[0], device=B.device), channel]
        return B.transpose(0, 1).reshape(-1, B.shape[-1])

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
    standardise fields (``field_mean``, ``field_std``, one per field ``(C,)``), parameters
    (``p_mean``, ``p_std``) and latent states (``z_mean``, ``z_std``), and the latent forecast
    error ``q_std``."""

    def __init__(self, n_field: int, n_params: int, domain: tuple[float, float], latent_dim: int,
                 kmax: int, n_basis: int, width: int, depth: int, substeps: int, enc_width: int,
                 channels: int = 1):
        super().__init__()
        if n_field % channels:
            raise ValueError(f"{n_field} field components do not split into {channels} fields")
        self.encoder = MLP(n_field, latent_dim, enc_width, 1)
        self.decoder = FieldDecoder(latent_dim, domain, kmax, n_basis, width, depth, channels)
        self.ode = LatentODE(latent_dim, n_params, width, depth, substeps)
        for name, size in (("field_mean", channels), ("field_std", channels), ("p_mean", n_params),
                           ("p_std", n_params), ("z_mean", latent_dim), ("z_std", latent_dim),
                           ("q_std", latent_dim)):
            self.register_buffer(name, torch.zeros(size) if "mean" in name else torch.ones(size))
        self.points_per_field = n_field // channels

    def standardise(self, F: torch.Tensor) -> torch.Tensor:
        """Fields ``(..., C * P)`` in model units -> standardised, each field by its own scalars."""
        P = self.points_per_field
        return (F - self.field_mean.repeat_interleave(P)) / self.field_std.repeat_interleave(P)

    def unstandardise(self, F: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`standardise`."""
        P = self.points_per_field
        return F * self.field_std.repeat_interleave(P) + self.field_mean.repeat_interleave(P)


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
