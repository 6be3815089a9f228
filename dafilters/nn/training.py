"""A training loop for learned filters: mini-batches, validation, early stopping, checkpoints.

The loop is agnostic of the model: ``loss_fn(batch) -> scalar tensor`` closes over the networks,
and ``params`` are the tensors to optimise. Batches are tuples of tensors sliced from ``data``.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .config import TrainConfig

__all__ = ["TrainConfig", "TrainHistory", "fit_model", "fit_in_stages", "batches"]


@dataclass
class TrainHistory:
    """Losses per epoch, the best epoch, why training stopped and how many steps were skipped
    (``skipped``: steps whose loss or gradient was not finite, :func:`fit_model`)."""

    train: list[float] = field(default_factory=list)
    val: list[float] = field(default_factory=list)
    best_epoch: int = -1
    stopped: str = ""
    seconds: float = 0.0
    skipped: int = 0

    def as_log(self, prefix: str = "") -> dict:
        """The entries of a learned filter's ``training_log``: ``train_loss``, ``val_loss``,
        ``best_epoch``, ``stopped``, ``skipped_steps`` (each key after ``prefix``, e.g. ``"ae_"``)."""
        return {f"{prefix}train_loss": self.train, f"{prefix}val_loss": self.val,
                f"{prefix}best_epoch": self.best_epoch, f"{prefix}stopped": self.stopped,
                f"{prefix}skipped_steps": self.skipped}


def batches(data: Sequence[torch.Tensor], batch_size: int,
            generator: torch.Generator | None = None) -> list[tuple[torch.Tensor, ...]]:
    """Mini-batches of the tensors in ``data`` (same first dimension), shuffled if a generator is
    given."""
    n = data[0].shape[0]
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    return [tuple(t[order[i:i + batch_size]] for t in data) for i in range(0, n, batch_size)]


def _mean_loss(loss_fn: Callable, data: Sequence[torch.Tensor], batch_size: int) -> float:
    with torch.no_grad():
        parts = [(float(loss_fn(b)), b[0].shape[0]) for b in batches(data, batch_size)]
    return sum(v * n for v, n in parts) / sum(n for _, n in parts)


def fit_model(modules: Sequence[torch.nn.Module], loss_fn: Callable[[tuple], torch.Tensor],
              train_data: Sequence[torch.Tensor], val_data: Sequence[torch.Tensor] | None = None,
              config: TrainConfig | None = None) -> TrainHistory:
    """Minimise ``loss_fn`` over mini-batches of ``train_data`` with Adam.

    After each epoch the validation loss (``val_data``, or the training loss without it) decides
    early stopping; the best state of ``modules`` is kept (and written to ``config.checkpoint``)
    and restored at the end. The time budget ``config.max_seconds`` (on ``config.clock``) is
    checked after every step: when it runs out mid-epoch, that partial epoch is validated and
    training stops ("time limit in epoch k"), so a budget overruns by one step and one
    validation, not by an epoch. The parameters of ``modules`` that require a gradient are trained
    (freeze others with ``requires_grad_(False)``).

    A step whose loss or gradient norm is not finite (an unrolled filter that blew up on one
    batch of windows) is skipped, the weights left as they were, and counted in
    ``TrainHistory.skipped``; an epoch in which every step was skipped raises
    ``FloatingPointError`` (the weights are then no use).

    Args:
        modules: the networks (their state is checkpointed and restored).
        loss_fn: ``loss_fn(batch) -> scalar`` for a tuple of tensors.
        train_data, val_data: tuples of tensors with a common first (sample) dimension.
    """
    cfg = config or TrainConfig()
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    if not params:
        raise ValueError("nothing to train: no parameter requires a gradient")
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    hist = TrainHistory()
    best, best_state, waited = float("inf"), None, 0
    show = cfg.progress if cfg.progress is not None else os.isatty(2)
    bar = tqdm(range(cfg.epochs), desc="training", disable=not show, leave=False)
    start = cfg.now()
    deadline = start + cfg.max_seconds if cfg.max_seconds is not None else float("inf")
    for epoch in bar:
        loss, skipped, cut = _train_epoch(modules, loss_fn, train_data, cfg, opt, params, gen, epoch,
                                          deadline)
        hist.train.append(loss)
        hist.skipped += skipped
        for m in modules:
            m.eval()
        val = _mean_loss(loss_fn, val_data, cfg.batch_size) if val_data is not None else hist.train[-1]
        hist.val.append(val)
        bar.set_postfix(train=f"{hist.train[-1]:.4g}", val=f"{val:.4g}", refresh=False)
        if val < best:
            best, waited, hist.best_epoch = val, 0, epoch
            best_state = _keep_best(modules, cfg.checkpoint)
        else:
            waited += 1
            if cfg.patience and waited >= cfg.patience:
                hist.stopped = f"early stop at epoch {epoch} (best {hist.best_epoch})"
                break
        if cut or cfg.now() > deadline:
            hist.stopped = f"time limit {'in' if cut else 'after'} epoch {epoch} (best {hist.best_epoch})"
            break
    bar.close()
    hist.stopped = hist.stopped or f"{cfg.epochs} epochs"
    if best_state is not None:
        for m, state in zip(modules, best_state):
            m.load_state_dict(state)
    hist.seconds = cfg.now() - start
    return hist


def _train_epoch(modules: Sequence[torch.nn.Module], loss_fn: Callable[[tuple], torch.Tensor],
                 train_data: Sequence[torch.Tensor], cfg: TrainConfig, opt: torch.optim.Optimizer,
                 params: list[torch.nn.Parameter], gen: torch.Generator, epoch: int,
                 deadline: float = float("inf")) -> tuple[float, int, bool]:
    """One pass over shuffled mini-batches of ``train_data``, cut short once ``cfg.now()`` passes
    ``deadline``: the mean training loss over the steps taken, the number of steps skipped for a
    loss or gradient that was not finite, and whether the pass was cut short."""
    for m in modules:
        m.train()
    total, count, skipped, last, cut = 0.0, 0, 0, "", False
    for i, batch in enumerate(batches(train_data, cfg.batch_size, gen)):
        if i and cfg.now() > deadline:
            cut = True
            break
        opt.zero_grad()
        loss = loss_fn(batch)
        if not torch.isfinite(loss):
            skipped, last = skipped + 1, f"loss {float(loss.detach())}"
            continue
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
        if not torch.isfinite(norm):
            skipped, last = skipped + 1, f"gradient norm {float(norm)}"
            continue
        opt.step()
        total += float(loss.detach()) * batch[0].shape[0]
        count += batch[0].shape[0]
    if count == 0 and cut:
        return float("nan"), skipped, cut
    if count == 0:
        raise FloatingPointError(f"training: every one of the {skipped} steps of epoch {epoch} had a "
                                 f"loss or gradient that was not finite (the last: {last})")
    return total / count, skipped, cut


def _keep_best(modules: Sequence[torch.nn.Module], checkpoint) -> list[dict]:
    """Copies of the modules' states (written to ``checkpoint`` when one is given)."""
    state = [copy.deepcopy(m.state_dict()) for m in modules]
    if checkpoint is not None:
        Path(checkpoint).parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, checkpoint)
    return state


def fit_in_stages(modules: Sequence[torch.nn.Module], loss_fn: Callable[[tuple], torch.Tensor],
                  train_data: Sequence[torch.Tensor], val_data: Sequence[torch.Tensor] | None,
                  config: TrainConfig, stages: int, seconds: float) -> TrainHistory:
    """:func:`fit_model` in ``stages`` stages, the learning rate ``config.lr / 10**s`` in stage
    ``s``, each stage starting from the best state of the one before. The time ``seconds`` (on
    ``config.clock``) is shared: each stage but the last gets 2/3 of the time left. The modules
    end in the best state over all stages (by validation loss). Returns the merged history (``best_epoch``
    counted over all stages' epochs, the stages' reasons to stop joined by ``"; "``)."""
    if stages < 1:
        raise ValueError(f"need at least one training stage, got {stages}")
    hists, start = [], config.now()
    best, best_state, best_epoch = float("inf"), None, -1
    for stage in range(stages):
        left = seconds - (config.now() - start)
        if left <= 0:
            break
        last = stage == stages - 1
        cfg = dataclasses.replace(config, lr=config.lr / 10**stage, seed=config.seed + stage,
                                  max_seconds=left if last else 2 * left / 3)
        hist = fit_model(modules, loss_fn, train_data, val_data, cfg)
        if hist.val and hist.val[hist.best_epoch] < best:  # a stage that does not improve is undone
            best, best_epoch = hist.val[hist.best_epoch], sum(len(h.val) for h in hists) + hist.best_epoch
            best_state = [copy.deepcopy(m.state_dict()) for m in modules]
        hists.append(hist)
    if best_state is not None:
        for m, state in zip(modules, best_state):
            m.load_state_dict(state)
    return TrainHistory(train=[v for h in hists for v in h.train], val=[v for h in hists for v in h.val],
                        best_epoch=best_epoch, stopped="; ".join(h.stopped for h in hists),
                        seconds=config.now() - start, skipped=sum(h.skipped for h in hists))
