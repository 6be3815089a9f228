"""How LD-EnSF is trained: :class:`LDEnSFTraining`, its ``training`` field (torch-free).

What is trained (the networks' sizes, the observation history the LSTM reads, the ODE's RK4
substeps) and how (data, loss, budget, optimiser, seed). What acts when the filter runs (ensemble
size, the latent EnSF's schedule, inflation and noise levels) is a field of
:class:`~dafilters.filters.ldensf.LDEnSF` instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...nn.config import TrainConfig

__all__ = ["LDEnSFTraining"]

#: The settings that must be integers >= 1 besides those of :class:`TrainConfig`.
COUNTS = ("latent_dim", "n_basis", "kmax", "width", "depth", "enc_width", "substeps", "history",
          "lstm_hidden", "lstm_layers", "rollout", "lstm_epochs")


@dataclass
class LDEnSFTraining(TrainConfig):
    r""":class:`~dafilters.nn.config.TrainConfig` with LD-EnSF's defaults, its networks' sizes and
    the settings of its two training stages.

    ``minutes`` is shared by the two stages (70% for the latent dynamics, 30% for the LSTM; the
    simulation of the ``n_traj`` trajectories comes on top). Stage 1 runs ``epochs`` epochs of
    ``batch_size`` windows, stage 2 ``lstm_epochs`` epochs of ``4 * batch_size`` histories with the
    seed ``seed + 1``.

    Args:
        latent_dim: :math:`d`, the latent state's size.
        n_basis, kmax: the decoder's basis size and Fourier wave numbers per axis.
        width, depth: hidden layers of the ODE, branch and trunk MLPs.
        enc_width: hidden width of the field encoder.
        substeps: RK4 steps of the latent ODE per observation interval.
        history: observations the LSTM reads. lstm_hidden, lstm_layers: the LSTM.
        rollout: observation intervals per stage-1 window.
        latent_weight: :math:`\lambda`, the weight of the latent consistency term of stage 1.
        points: field points per stage-1 batch (``None``: all).
        lstm_epochs: maximum epochs of stage 2.
    """

    n_traj: int = 32
    epochs: int = 300
    minutes: float | None = 25.0
    batch_size: int = 32
    lr: float = 2e-3
    patience: int = 30
    latent_dim: int = 32
    n_basis: int = 128
    kmax: int = 10
    width: int = 128
    depth: int = 2
    enc_width: int = 256
    substeps: int = 2
    history: int = 10
    lstm_hidden: int = 128
    lstm_layers: int = 1
    rollout: int = 4
    latent_weight: float = 0.1
    points: int | None = 1024
    lstm_epochs: int = 300

    def check(self) -> None:
        super().check()
        for name in COUNTS:
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise ValueError(f"training {name} must be an integer >= 1, got {value!r}")
        if self.points is not None and not (isinstance(self.points, int) and self.points >= 1):
            raise ValueError(f"training points must be an integer >= 1 or None, got {self.points!r}")
        if not self.latent_weight >= 0:
            raise ValueError(f"training latent_weight must be >= 0, got {self.latent_weight!r}")
