"""How SDA is trained: :class:`SDATraining`, its ``training`` field (torch-free).

What is trained (the denoiser's size) and how (data, budget, optimiser, seed). Everything that
acts when the filter runs (ensemble size, windows, sampler) is a field of :class:`SDA` instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...nn.config import TrainConfig

__all__ = ["SDATraining", "check_counts", "DENOISERS", "SCHEDULES"]

#: The denoiser choices (``SDATraining.denoiser``).
DENOISERS = ("auto", "mlp", "conv")
#: The noise schedules (kept here too: this module is torch-free; see
#: :data:`dafilters.filters.sda.diffusion.SCHEDULES`).
SCHEDULES = ("cos", "sin")


def check_counts(cfg: TrainConfig, *names: str) -> None:
    """Raise a ``ValueError`` naming the first of the settings ``names`` that is not an integer
    >= 1."""
    for name in names:
        value = getattr(cfg, name)
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            raise ValueError(f"training {name} must be an integer >= 1, got {value!r}")


@dataclass
class SDATraining(TrainConfig):
    """:class:`~dafilters.nn.config.TrainConfig` with SDA's defaults, and the denoiser's size.

    The training runs in ``lr_stages`` stages, the learning rate divided by 10 from one to the
    next (each from the best weights of the one before; each stage but the last gets 2/3 of the
    time left of ``minutes``, which usually decides rather than ``epochs``).

    Args:
        width, depth: the MLP denoiser (:class:`~dafilters.filters.sda.LocalDenoiser`): units of
            its hidden layers and their number; ``depth`` is also the number of residual blocks
            of the convolutional one.
        denoiser: ``"mlp"`` (:class:`~dafilters.filters.sda.LocalDenoiser`), ``"conv"``
            (:class:`~dafilters.filters.sda.GridDenoiser`, for a state that is a 2-D field on a
            periodic grid) or ``"auto"``: conv for 2-D fields, MLP otherwise. An MLP of 256
            units cannot carry windows of 2-D fields (9 x 4096 numbers at 64 x 64: its loss
            stayed at 1.00).
        conv_width: channels of the convolutional denoiser.
        schedule: the noise schedule the denoiser is trained (and then sampled) with: ``"cos"``,
            the reference's, or ``"sin"``, the former (see :mod:`dafilters.filters.sda.diffusion`).
    """

    epochs: int = 1000
    minutes: float | None = 3.0
    batch_size: int = 256
    lr_stages: int = 2
    patience: int = 30
    width: int = 256
    depth: int = 3
    denoiser: str = "auto"
    conv_width: int = 48
    schedule: str = "cos"

    def check(self) -> None:
        super().check()
        check_counts(self, "width", "depth", "conv_width")
        if self.denoiser not in DENOISERS:
            raise ValueError(f"unknown denoiser {self.denoiser!r}: use one of {DENOISERS}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}: use one of {SCHEDULES}")
