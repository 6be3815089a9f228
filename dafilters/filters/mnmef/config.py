"""How MNMEF is trained: :class:`MNMEFTraining`, its ``training`` field (torch-free).

What is trained (the networks' size and initial localization) and how (data, training windows and
their spin-up, budget, optimiser, seed). What acts when the filter runs (ensemble size, distance
bins) is a field of :class:`~dafilters.filters.mnmef.MNMEF` instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...nn.config import TrainConfig

__all__ = ["MNMEFTraining"]


@dataclass
class MNMEFTraining(TrainConfig):
    """How an MNMEF is trained: :class:`~dafilters.nn.config.TrainConfig` with MNMEF's defaults,
    the networks' size and initial localization, and the training windows. With ``lr_stages``
    the learning rate is divided by 10 from one stage to the next (2 stages did worse on L96-40
    than 1).

    Args:
        d_model, heads: width and attention heads of the set summary.
        loc_init: radius (in units of ``Dynamics.coords``) of the Gaspari–Cohn shape the
            localization weights start from.
        window, warmup, stride: the training trajectories (``n_traj``, each as long as the HMM's
            chronology) are cut into windows of ``window`` cycles every ``stride`` cycles; the
            loss skips the first ``warmup`` analyses of a window.
        init_spread: standard deviation of the ensembles drawn around the truth (at the start of
            each training trajectory, or of each window with ``spinup=False``).
        spinup: start windows from spun-up filter ensembles (see :mod:`.learn`), skipping
            windows that start in the first ``skip`` cycles.
        spinup_rounds: training rounds; each spins the training ensembles up again with the
            filter as trained so far (its windows then start where the trained filter's own runs
            are, not where the untrained filter's were), and gets an equal share of the time left.
        detach_every: gradients flow back through at most this many cycles (the ensemble is
            detached every ``detach_every`` cycles of a window; 0: through the whole window).
            Through 20 cycles (3 time units, about 5 Lyapunov times of L96) the gradients are
            dominated by the growth of perturbations, and the loss barely moved in training. The
            paper's code detaches every cycle (``detach_every=1``; docs/learned_filters.md).
    """

    n_traj: int = 8
    epochs: int = 100
    minutes: float | None = 25.0
    batch_size: int = 16
    patience: int = 15
    d_model: int = 64
    heads: int = 4
    loc_init: float = 3.0
    window: int = 20
    warmup: int = 5
    stride: int = 5
    init_spread: float = 1.0
    spinup: bool = True
    skip: int = 50
    spinup_rounds: int = 2
    detach_every: int = 5

    def check(self) -> None:
        super().check()
        if not self.loc_init > 0:
            raise ValueError(f"training loc_init must be positive, got {self.loc_init!r}")
        if not 0 <= self.warmup < self.window:
            raise ValueError(f"need 0 <= warmup < window, got warmup={self.warmup}, window={self.window}")
        if not self.init_spread > 0:
            raise ValueError(f"training init_spread must be positive, got {self.init_spread!r}")
        if self.stride < 1:
            raise ValueError(f"training stride must be >= 1, got {self.stride}")
        if self.spinup_rounds < 1:
            raise ValueError(f"spinup_rounds must be >= 1, got {self.spinup_rounds}")
        if self.detach_every < 0:
            raise ValueError(f"detach_every must be >= 0 (0: no truncation), got {self.detach_every}")
