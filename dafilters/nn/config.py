"""How a learned filter is trained: one :class:`TrainConfig` for data, budget and optimiser.

Torch-free (it is a field of every learned filter, and ``import dafilters`` does not import torch).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

__all__ = ["TrainConfig", "CLOCKS"]

#: the clocks a training budget can count: elapsed time, or the process's CPU time
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


@dataclass
class TrainConfig:
    """Settings of a training: the data, the budget, the optimiser, the seed.

    Args:
        n_traj: training trajectories simulated from the HMM (the data set's size; a learned
            filter's ``learn`` decides how it cuts them into samples).
        epochs: maximum passes over the training data.
        minutes: time budget of the whole training (``None``: no limit), on ``clock``.
        batch_size: samples per optimiser step.
        lr: Adam learning rate; with ``lr_stages = s > 1`` the training runs in ``s`` stages at
            ``lr, lr/10, ...``, each from the best state of the one before.
        lr_stages: number of learning-rate stages.
        weight_decay: Adam weight decay.
        patience: stop after this many epochs without a better validation loss (0: never).
        grad_clip: clip the global gradient norm (0: no clipping).
        seed: seeds the training's randomness (initial weights, shuffling, noise draws); it is
            the *training* seed, unrelated to the experiment seeds of the runs.
        progress: show a progress bar (``None``: on a terminal).
        checkpoint: a file where the best state is saved after every improvement.
        max_seconds: time limit of one call of the training loop, on ``clock`` (set by the stages
            from ``minutes``; ``None``: no limit).
        clock: what the budget counts: ``"wall"`` (elapsed time) or ``"cpu"`` (this process's CPU
            time, all its threads: a budget of "30 CPU minutes" that does not shrink when other
            jobs share the cores).
    """

    n_traj: int = 16
    epochs: int = 50
    minutes: float | None = None
    batch_size: int = 64
    lr: float = 1e-3
    lr_stages: int = 1
    weight_decay: float = 0.0
    patience: int = 10
    grad_clip: float = 1.0
    seed: int = 0
    progress: bool | None = None
    checkpoint: str | os.PathLike | None = None
    max_seconds: float | None = None
    clock: str = "wall"

    def check(self) -> None:
        """Raise a ``ValueError`` naming the first setting out of its range."""
        for name in ("n_traj", "epochs", "batch_size", "lr_stages"):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise ValueError(f"training {name} must be an integer >= 1, got {value!r}")
        for name in ("lr", "minutes", "max_seconds"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"training {name} must be positive, got {value!r}")
        if self.clock not in CLOCKS:
            raise ValueError(f"training clock must be one of {sorted(CLOCKS)}, got {self.clock!r}")
        if self.patience < 0 or self.grad_clip < 0 or self.weight_decay < 0:
            raise ValueError("training patience, grad_clip and weight_decay must be >= 0")

    @property
    def seconds(self) -> float:
        """The budget in seconds (infinite without ``minutes``)."""
        return float("inf") if self.minutes is None else 60.0 * self.minutes

    def now(self) -> float:
        """The current reading of the budget's clock, in seconds (differences are meaningful)."""
        return CLOCKS[self.clock]()
