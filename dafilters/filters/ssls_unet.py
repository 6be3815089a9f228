"""The 1-D U-Net of the SSLS reference code (``src/networks/unet1d.py`` of
github.com/burning489/SSLS), written anew: two levels of (conv 3, batch norm, ReLU) x 2 blocks with
max pooling, a bottleneck, transposed-convolution upsampling with skip connections, and a 1x1
output convolution; channels ``(32, 64, 128)`` in the reference's Lorenz-96 configuration.

Zero padding as the reference (``padding_mode='circular'`` for a periodic variant). The length
``Nx`` must be a multiple of 4 (two poolings by 2).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["UNet1D"]


def _block(cin: int, cout: int, padding_mode: str) -> nn.Sequential:
    conv = dict(kernel_size=3, padding=1, bias=False, padding_mode=padding_mode)
    return nn.Sequential(nn.Conv1d(cin, cout, **conv), nn.BatchNorm1d(cout), nn.ReLU(inplace=True),
                         nn.Conv1d(cout, cout, **conv), nn.BatchNorm1d(cout), nn.ReLU(inplace=True))


class UNet1D(nn.Module):
    """``(..., Nx) -> (..., Nx)``, ``Nx`` a multiple of 4.

    Args:
        channels: the three widths (encoder 1, encoder 2, bottleneck).
        padding_mode: ``'zeros'`` (the reference) or ``'circular'``.
    """

    def __init__(self, channels: tuple[int, int, int] = (32, 64, 128), padding_mode: str = "zeros"):
        super().__init__()
        c1, c2, c3 = channels
        self.enc1, self.enc2 = _block(1, c1, padding_mode), _block(c1, c2, padding_mode)
        self.pool = nn.MaxPool1d(2, 2)
        self.bottleneck = _block(c2, c3, padding_mode)
        self.up2, self.dec2 = nn.ConvTranspose1d(c3, c2, 2, stride=2), _block(2 * c2, c2, padding_mode)
        self.up1, self.dec1 = nn.ConvTranspose1d(c2, c1, 2, stride=2), _block(2 * c1, c1, padding_mode)
        self.out = nn.Conv1d(c1, 1, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        if shape[-1] % 4:
            raise ValueError(f"UNet1D needs a length that is a multiple of 4, got {shape[-1]}")
        e1 = self.enc1(x.reshape(-1, 1, shape[-1]))
        e2 = self.enc2(self.pool(e1))
        b = self.bottleneck(self.pool(e2))
        d2 = self.dec2(torch.cat((self.up2(b), e2), dim=1))
        d1 = self.dec1(torch.cat((self.up1(d2), e1), dim=1))
        return self.out(d1).reshape(shape)
