"""SLAMS's networks: the autoencoders (:class:`MLPAutoencoder` for 1-D states,
:class:`ConvAutoencoder` for 2-D periodic fields) and :func:`slams_networks`, which builds them
with the latent denoiser for a spec."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...hmm import HMM
from ...nn.nets import MLP
from ..sda.nets import field_grid, make_denoiser
from .config import SLAMSTraining

__all__ = ["MLPAutoencoder", "ConvAutoencoder", "slams_networks", "state_grid"]


class MLPAutoencoder(nn.Module):
    """For 1-D states: ``encode`` ``(B, C, Nx) -> (mu, logv)`` each ``(B, d)``; ``decode``
    ``(B, d) -> (B, Nx)``. Buffers ``z_mean``, ``z_std`` ``(d,)`` standardise the latents."""

    def __init__(self, Nx: int, channels: int, latent_dim: int, width: int = 256):
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.enc_x = MLP(Nx, latent_dim, width, 2)
        self.enc = MLP(channels * Nx, 2 * latent_dim, width, 2)
        self.dec = MLP(latent_dim, Nx, width, 2)
        self.register_buffer("z_mean", torch.zeros(latent_dim))
        self.register_buffer("z_std", torch.ones(latent_dim))

    def encode_state(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`z^\\star(x)`: the latent ``(B, d)`` of standardised states ``(B, Nx)``."""
        return self.enc_x(x)

    def encode(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The latent observation ``(mu, log v)`` of encoder inputs ``(B, C, Nx)``."""
        mu, logv = self.enc(u.flatten(1)).chunk(2, -1)
        return mu, logv.clamp(-12, 8)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.dec(z)


def _conv(c_in: int, c_out: int, k: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, stride, padding=(k - 1) // 2 if stride == 1 else 1,
                     padding_mode="circular")


class ConvAutoencoder(nn.Module):
    """For 2-D periodic fields ``(n0, n1)`` (both divisible by 4): two stride-2 convolution
    levels to a latent of ``latent_channels x n0/4 x n1/4``, flattened to ``(B, d)``; the decoder
    mirrors it with nearest upsampling. Same interface as :class:`MLPAutoencoder`."""

    def __init__(self, shape: tuple[int, int], channels: int, latent_channels: int, width: int = 32):
        super().__init__()
        n0, n1 = shape
        if n0 % 4 or n1 % 4:
            raise ValueError(f"the convolutional autoencoder needs grid sizes divisible by 4, got {shape}")
        self.shape, self.lat_shape = (n0, n1), (latent_channels, n0 // 4, n1 // 4)
        self.latent_dim = latent_channels * (n0 // 4) * (n1 // 4)
        w = int(width)
        act = nn.SiLU

        def encoder(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(_conv(c_in, w), act(), _conv(w, 2 * w, 4, 2), act(),
                                 _conv(2 * w, 2 * w, 4, 2), act(), _conv(2 * w, c_out))

        self.enc_x = encoder(1, latent_channels)
        self.enc = encoder(channels, 2 * latent_channels)
        self.dec = nn.Sequential(_conv(latent_channels, 2 * w), act(), nn.Upsample(scale_factor=2),
                                 _conv(2 * w, w), act(), nn.Upsample(scale_factor=2), _conv(w, w), act(),
                                 _conv(w, 1))
        self.register_buffer("z_mean", torch.zeros(self.latent_dim))
        self.register_buffer("z_std", torch.ones(self.latent_dim))

    def encode_state(self, x: torch.Tensor) -> torch.Tensor:
        return self.enc_x(x.unflatten(-1, self.shape)[:, None]).flatten(1)

    def encode(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.enc(u.unflatten(-1, self.shape))
        mu, logv = h.chunk(2, 1)
        return mu.flatten(1), logv.flatten(1).clamp(-12, 8)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.dec(z.unflatten(-1, self.lat_shape)).flatten(1)


def state_grid(hmm: HMM) -> list[int] | None:
    """``[n0, n1]`` for a 2-D field state on a square grid (a 2-D domain, sides divisible by 4,
    for the autoencoder's two stride-2 levels), else ``None``."""
    return field_grid(hmm, 4)


def slams_networks(spec: dict[str, Any], cfg: SLAMSTraining, k: int) -> dict[str, nn.Module]:
    """``{"ae": autoencoder, "denoiser": latent denoiser of windows of 2k+1 latents}`` for
    ``spec`` (keys ``Nx``, ``grid``, ``modalities``), initialised from ``cfg.seed``."""
    channels = 2 + 2 * len(spec["modalities"])
    grid = spec.get("grid")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        if grid:
            ae = ConvAutoencoder(tuple(grid), channels, cfg.latent_channels, max(8, cfg.ae_width // 8))
        else:
            ae = MLPAutoencoder(spec["Nx"], channels, cfg.latent_dim, cfg.ae_width)
        den = make_denoiser(ae.latent_dim, k, cfg, ae.lat_shape if grid else None, "SLAMS")
    return {"ae": ae, "denoiser": den}
