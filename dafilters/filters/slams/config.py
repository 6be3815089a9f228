"""How SLAMS is trained: :class:`SLAMSTraining`, its ``training`` field (torch-free).

What is trained (the autoencoder's and the latent denoiser's sizes), on what data (noisy
backgrounds, dropped modalities), with which loss weight, and how (budget, optimiser, seed).
Everything that acts when the filter runs (ensemble size, window, sampler, the spread handed to
the encoder, pixel guidance) is a field of :class:`SLAMS` instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..sda.config import SDATraining, check_counts

__all__ = ["SLAMSTraining"]


@dataclass
class SLAMSTraining(SDATraining):
    """:class:`~dafilters.filters.sda.SDATraining` with SLAMS's defaults and its own settings.

    The autoencoder trains first, for ``ae_share`` of ``minutes``, then the latent denoiser for
    the rest (in ``lr_stages`` stages); ``epochs`` and ``patience`` apply to each.

    Args:
        latent_dim: latent size of the MLP autoencoder (1-D states).
        latent_channels: latent channels of the convolutional one (2-D fields; the latent size is
            ``latent_channels * n0 * n1 / 16``).
        ae_width: hidden width of the autoencoder (MLP units, or 8 x the first level's channels).
        width, depth: the latent denoiser's MLP (units, layers); ``depth`` is also the number of
            residual blocks of the convolutional one.
        denoiser: ``"mlp"`` (:class:`~dafilters.filters.sda.LocalDenoiser`), ``"conv"``
            (:class:`~dafilters.filters.sda.GridDenoiser` on the latent grid of the convolutional
            autoencoder) or ``"auto"``: conv for 2-D fields, MLP otherwise. On a 64 x 64
            Kolmogorov latent (4 x 16 x 16) the MLP's 256 units cannot carry windows of
            3 x 1024 numbers: its denoising loss stayed at 0.96 (a linear denoiser of Gaussian
            data reaches about 0.5).
        conv_width: channels of the convolutional denoiser.
        schedule: the latent denoiser's noise schedule (SDA's; ``"cos"``, the reference's, or
            ``"sin"``, the former).
        bg_max: largest background error (climatological spreads) drawn for the encoder's inputs.
        p_drop: probability of dropping each modality from the encoder's inputs.
        p_clim: probability that a training input's background is the climatology (mean 0,
            spread ``bg_max``) instead of a noisy state: what the filter hands the encoder for
            the times it encodes from the observations alone (see ``SLAMS.background``).
        nll_weight: the weight :math:`\\lambda` of the latent likelihood term of the loss.
        ae_share: the autoencoder's share of the time budget.
    """

    epochs: int = 200
    minutes: float | None = 10.0
    lr_stages: int = 1
    patience: int = 20
    latent_dim: int = 48
    latent_channels: int = 4
    ae_width: int = 256
    bg_max: float = 1.0
    p_drop: float = 0.3
    p_clim: float = 0.2
    nll_weight: float = 0.01
    ae_share: float = 0.6

    def check(self) -> None:
        super().check()
        check_counts(self, "latent_dim", "latent_channels", "ae_width")
        if not self.bg_max > 0 or self.nll_weight < 0:
            raise ValueError(f"need bg_max > 0 and nll_weight >= 0, got bg_max={self.bg_max}, "
                             f"nll_weight={self.nll_weight}")
        if not 0 <= self.p_drop < 1 or not 0 < self.ae_share < 1 or not 0 <= self.p_clim < 1:
            raise ValueError(f"need 0 <= p_drop < 1, 0 <= p_clim < 1 and 0 < ae_share < 1, got "
                             f"p_drop={self.p_drop}, p_clim={self.p_clim}, ae_share={self.ae_share}")
