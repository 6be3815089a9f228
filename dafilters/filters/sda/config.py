"""How SDA is trained: :class:`SDATraining`, its ``training`` field (torch-free).

What is trained (the denoiser's size) and how (data, budget, optimiser, seed). Everything that
acts when the filter runs (ensemble size, windows, sampler) is a field of :class:`SDA` instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...nn.config import TrainConfig

__all__ = ["SDATraining", "check_counts"]


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
            its hidden layers and their number.
    """

    epochs: int = 1000
    minutes: float | None = 3.0
    batch_size: int = 256
    lr_stages: int = 2
    patience: int = 30
    width: int = 256
    depth: int = 3

    def check(self) -> None:
        super().check()
        check_counts(self, "width", "depth")
