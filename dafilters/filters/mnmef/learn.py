"""MNMEF's training: its settings (:class:`MNMEFTraining`) and the training unrolled over windows.

Training unrolls the filter through the model in torch (``Dynamics.step_torch``) over windows of
a simulated trajectory and minimises the mean analysis RMSE over the window after a few warm-up
cycles (normalised by the climatological spread :math:`c`): :class:`WindowLoss`. Windows start
from the ensembles of a filter that has already run for a while on the same trajectory (the MNMEF
as it is at the start of a training round, run without gradients through the whole trajectory
from truth plus noise: :func:`spun_up_ensembles`), so the loss sees the errors of a filter in its
statistically steady state: ensembles drawn around the truth (``spinup=False``) have errors far
below the steady state over a short window, and a filter trained on them learns too little
inflation and too wide a localization. Training runs in rounds (``spinup_rounds``), each spinning
the windows' ensembles up again with the filter as trained so far; gradients are truncated every
``detach_every`` cycles; validation windows are the last tenth of each training trajectory. A
filter trained at one ``N`` can be fine-tuned for another with the set summary frozen
(``fit(hmm, pretrained=...)``). The optimisation is the shared
:func:`~dafilters.nn.training.fit_in_stages`.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ...hmm import HMM, Dynamics
from ...nn.data import simulate_trajectories, time_split, window_starts, windows
from ...nn.training import TrainHistory, fit_in_stages
from .config import MNMEFTraining
from .update import TorchObs, mnmef_update

if TYPE_CHECKING:
    from .filter import MNMEF

__all__ = ["ModelForecast", "Cycle", "TrainingWindows", "WindowLoss",
           "model_forecast", "spun_up_ensembles", "training_windows", "diverged", "round_data",
           "learn_mnmef"]


class ModelForecast:
    """The model's torch step over one observation interval (``steps`` steps of ``dt``), on
    ensembles ``(B, N, Nx)``.

    With ``compile=True`` the interval is run through ``torch.compile`` (dynamic shapes: one
    compilation serves every batch size; a second one is made the first time the forecast
    carries a graph). On Lorenz-96 (40 variables, 5 steps) the compiled forecast takes about a
    third of the eager one's CPU time, after about 20 s of compilation. If compiling or running
    the compiled forecast fails, a warning says so and the eager forecast is used from then on.
    """

    def __init__(self, dyn: Dynamics, steps: int, dt: float, compile: bool = False):
        self.dyn, self.steps, self.dt = dyn, steps, dt
        self.compiled = torch.compile(self.eager, dynamic=True) if compile else None

    def eager(self, E: torch.Tensor) -> torch.Tensor:
        """The forecast, one ``step_torch`` after the other."""
        for _ in range(self.steps):
            E = self.dyn.step_torch(E, 0.0, self.dt)
        return E

    def __call__(self, E: torch.Tensor) -> torch.Tensor:
        if self.compiled is not None:
            try:
                return self.compiled(E)
            except Exception as err:  # noqa: BLE001 - any failure of the compiler: run eagerly
                warnings.warn(f"the compiled forecast failed ({type(err).__name__}: {err}); "
                              "running it eagerly", RuntimeWarning, stacklevel=2)
                self.compiled = None
        return self.eager(E)


def model_forecast(hmm: HMM, compile: bool = False) -> ModelForecast:
    """The forecast over one observation interval of ``hmm`` in torch (compiled if asked:
    :class:`ModelForecast`); a clear error if the observations are not regularly spaced or the
    model has no torch step."""
    tseq = hmm.tseq
    dko = np.diff(np.concatenate([[0], tseq.kko]))
    if not np.all(dko == dko[0]):
        raise ValueError("MNMEF training needs regularly spaced observations")
    hmm.dyn.step_torch(torch.zeros(1, hmm.Nx), 0.0, tseq.dt)  # a clear error if the model has none
    return ModelForecast(hmm.dyn, int(dko[0]), tseq.dt, compile)


@dataclass
class Cycle:
    """One forecast and MNMEF analysis of a batch of ensembles in torch: ``cycle(E, y, xi_obs,
    xi_add)`` with the networks, model and observation layout fixed (see :func:`mnmef_update`)."""

    nets: dict[str, nn.Module]
    forecast: ModelForecast
    h: TorchObs
    r_std: torch.Tensor
    bins_xy: torch.Tensor
    bins_yy: torch.Tensor
    scale: float
    form: str = "increment"

    def __call__(self, E: torch.Tensor, y: torch.Tensor, xi_obs: torch.Tensor,
                 xi_add: torch.Tensor | None) -> torch.Tensor:
        return mnmef_update(self.nets, self.forecast(E), y, self.h, self.r_std, self.bins_xy,
                            self.bins_yy, self.scale, xi_obs, xi_add, self.form)


def spun_up_ensembles(cycle: Cycle, truth: torch.Tensor, yy: torch.Tensor, N: int,
                      init_spread: float, gen: torch.Generator,
                      times: np.ndarray | None = None) -> torch.Tensor:
    """Run the MNMEF (in inference mode: no graph) along whole trajectories and return the
    analysis ensembles at ``times`` (an ordinary tensor, usable in training).

    Args:
        truth: ``(B, K+1, Nx)`` at the observation times (only ``truth[:, 0]`` is used: the
            initial ensembles are ``truth[:, 0] + init_spread * noise``). yy: ``(B, K+1, Ny)``.
        times: the observation indices to keep (default: all ``K+1``); only these are stored,
            so keeping the windows' starts needs ``stride`` times less memory (at N = 100 on 128
            trajectories of 1500 cycles every time is 3 GB).

    Returns:
        ``(B, len(times), N, Nx)``: the ensemble at each kept time (time 0: the initial one).
    """
    B, K1, Nx = truth.shape
    keep = np.zeros(K1, bool)
    keep[np.arange(K1) if times is None else times] = True
    E = truth[:, 0, None] + init_spread * torch.randn(B, N, Nx, generator=gen)
    out = [E] if keep[0] else []
    with torch.inference_mode():
        for k in range(1, K1):
            E = cycle(E, yy[:, k], torch.randn(B, N, yy.shape[-1], generator=gen),
                      torch.randn(B, N, Nx, generator=gen))
            if keep[k]:
                out.append(E)
        ens = torch.stack(out, 1)
    return ens.clone()  # outside inference mode: an ordinary tensor


@dataclass
class TrainingWindows:
    """The training trajectories (``truth`` at the observation times, ``yy``) and their windows
    of ``window + 1`` times (truth ``X``, observations ``Y``; trajectory by trajectory, each
    starting at the times ``starts``): which train, which validate."""

    truth: np.ndarray
    yy: np.ndarray
    X: torch.Tensor
    Y: torch.Tensor
    train: np.ndarray
    val: np.ndarray
    starts: np.ndarray


def training_windows(truth: np.ndarray, yy: np.ndarray, cfg: MNMEFTraining) -> TrainingWindows:
    """Cut the trajectories into windows; with ``cfg.spinup`` drop those starting before
    ``cfg.skip``. Validation: the windows in the last tenth of each trajectory (windows overlap,
    so a random split would validate on the training data)."""
    W = cfg.window
    X = torch.as_tensor(windows(truth, W + 1, cfg.stride), dtype=torch.float32)
    Y = torch.as_tensor(windows(yy, W + 1, cfg.stride), dtype=torch.float32)
    per_traj = window_starts(truth.shape[1], W + 1, cfg.stride)
    starts = np.tile(per_traj, len(truth))
    keep = starts >= cfg.skip if cfg.spinup else np.ones(len(X), bool)
    if not keep.any():
        raise ValueError(f"no training window starts after skip={cfg.skip} cycles: the "
                         f"trajectories have {truth.shape[1] - 1} cycles")
    itr, ival = time_split(starts, W + 1, truth.shape[1], 0.1)
    return TrainingWindows(truth, yy, X, Y, itr[keep[itr]], ival[keep[ival]], per_traj)


#: a spun-up ensemble with a member this many climatological standard deviations from the truth
#: (or a value not finite) comes from a run that blew up: no window starts from it
DIVERGED = 12.0


def diverged(E: torch.Tensor, truth: torch.Tensor, scale: float) -> torch.Tensor:
    """Which ensembles ``E`` ``(..., N, Nx)`` have blown up: a value not finite, or a member
    farther than ``DIVERGED * scale`` from ``truth`` ``(..., Nx)`` in some variable (a filter that
    merely lost track stays within a few climatological standard deviations). Shape
    ``E.shape[:-2]``."""
    ok = torch.isfinite(E) & ((E - truth[..., None, :]).abs() <= DIVERGED * scale)
    return ~ok.all(-1).all(-1)


def round_data(cycle: Cycle, data: TrainingWindows, cfg: MNMEFTraining, N: int,
               gen: torch.Generator) -> tuple[list[torch.Tensor], list[torch.Tensor], int]:
    """The (train, validation) windows ``[truth, obs, E0]`` of one training round, ``E0`` spun up
    by the filter as it is now; validation windows also carry their perturbations, drawn once, so
    that their loss (early stopping, best state) is a function of the weights only. Windows
    whose spun-up ensemble has blown up (:func:`diverged`: the filter as it is lost that
    trajectory) are left out, with a warning; their number is the third value. (One such window
    in a batch made the batch's loss NaN, and one among the validation windows the validation
    loss, every epoch.)"""
    X, W, Nx, Ny = data.X, cfg.window, data.X.shape[-1], data.Y.shape[-1]
    E0 = X[:, 0, None] + cfg.init_spread * torch.randn(len(X), N, Nx, generator=gen)
    if cfg.spinup:
        for net in cycle.nets.values():
            net.eval()
        ens = spun_up_ensembles(cycle, torch.as_tensor(data.truth, dtype=torch.float32),
                                torch.as_tensor(data.yy, dtype=torch.float32), N, cfg.init_spread, gen,
                                data.starts)  # (n_traj, n_starts, N, Nx): the windows' first times only
        E0 = ens.reshape(-1, N, Nx)  # (n_windows, N, Nx), in the order of ``windows``
    bad = diverged(E0, X[:, 0], cycle.scale).numpy()
    itr, ival = data.train[~bad[data.train]], data.val[~bad[data.val]]
    dropped = len(data.train) + len(data.val) - len(itr) - len(ival)
    if dropped:
        warnings.warn(f"MNMEF training: {dropped} of {len(data.train) + len(data.val)} windows start "
                      "from a spun-up ensemble that blew up (the filter diverged on those "
                      "trajectories); left out of this round", RuntimeWarning, stacklevel=2)
    if not len(itr) or not len(ival):
        raise FloatingPointError("MNMEF training: the filter diverged on every training or every "
                                 "validation window's spin-up")
    tensors, n_val = [X, data.Y, E0], len(ival)
    val = [d[ival] for d in tensors] + [torch.randn(n_val, W, N, Ny, generator=gen),
                                         torch.randn(n_val, W, N, Nx, generator=gen)]
    return [d[itr] for d in tensors], val, dropped


class WindowLoss:
    """The loss of a batch of windows ``(truth, obs, E0[, xi_obs, xi_add])``: the mean analysis
    RMSE after ``cfg.warmup`` cycles of the unrolled filter, divided by the scale. Windows without
    their own perturbations (the training ones) draw fresh ones from ``gen``."""

    def __init__(self, cycle: Cycle, cfg: MNMEFTraining, gen: torch.Generator, device: str = "cpu"):
        self.cycle, self.gen, self.device = cycle, gen, device
        self.window, self.warmup, self.detach_every = cfg.window, cfg.warmup, cfg.detach_every
        self.draw_add = cycle.form == "increment"  # the reference form has no random inflation
        # the error of a cycle whose ensemble is then detached keeps its gradient (as in the
        # reference, which detaches after storing the analysis); the increment form keeps the
        # order its recorded figures were trained with (the error after the cut, no gradient)
        self.error_first = cycle.form == "reference" or self.detach_every == 1
        # cycles whose graph is cut before the first loss term need no graph (same values and
        # gradients, less work): with detach_every = 1 the whole warm-up
        d = self.detach_every
        self.no_graph_until = (self.warmup // d) * d if d else 0

    def __call__(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        truth, ys, E, *noise = (b.to(self.device) for b in batch)
        errs = []
        for k in range(1, self.window + 1):
            xi_obs, xi_add = self.perturbations(noise, k, E.shape, ys.shape[-1])
            with torch.set_grad_enabled(torch.is_grad_enabled() and k > self.no_graph_until):
                E = self.cycle(E, ys[:, k], xi_obs, xi_add)
            if self.error_first and k > self.warmup:
                errs.append(((E.mean(1) - truth[:, k]) ** 2).mean(-1).sqrt())
            if self.detach_every and k % self.detach_every == 0:
                E = E.detach()  # truncated backpropagation through the chaotic forecasts
            if not self.error_first and k > self.warmup:
                errs.append(((E.mean(1) - truth[:, k]) ** 2).mean(-1).sqrt())
        return torch.stack(errs).mean() / self.cycle.scale

    def perturbations(self, noise: list[torch.Tensor], k: int, shape: torch.Size,
                      Ny: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The standard normal draws of cycle ``k``: the window's own, or fresh ones."""
        if noise:
            return noise[0][:, k - 1], noise[1][:, k - 1]
        B, N, Nx = shape
        xi_obs = torch.randn(B, N, Ny, generator=self.gen)
        return xi_obs, torch.randn(B, N, Nx, generator=self.gen) if self.draw_add else None


def train_rounds(cycle: Cycle, data: TrainingWindows, cfg: MNMEFTraining, N: int,
                 device: str = "cpu") -> tuple[list[TrainHistory], int, list[int]]:
    """The training rounds (each spins the windows up again, then trains with an equal share of
    the time left); their histories, the number of windows and, per round, the number left out
    for a spin-up that diverged."""
    gen = torch.Generator().manual_seed(cfg.seed)
    loss, modules = WindowLoss(cycle, cfg, gen, device), list(cycle.nets.values())
    rounds = cfg.spinup_rounds if cfg.spinup else 1
    histories, dropped, start = [], [], cfg.now()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        for r in range(rounds):
            train, val, n_bad = round_data(cycle, data, cfg, N, gen)
            dropped.append(n_bad)
            budget = (cfg.seconds - (cfg.now() - start)) / (rounds - r)
            histories.append(fit_in_stages(modules, loss, train, val, cfg, cfg.lr_stages,
                                           max(1.0, budget)))
    return histories, len(data.train) + len(data.val), dropped


def start_from(pretrained: MNMEF, nets: dict[str, nn.Module], spec: dict[str, Any], hmm: HMM,
               freeze_summary: bool) -> list[nn.Parameter]:
    """Copy the weights of ``pretrained`` (trained on the same HMM) into ``nets``; freeze the set
    summary if asked. Returns the frozen parameters."""
    same = pretrained.spec["fingerprint"] == spec["fingerprint"]
    if not same or pretrained.spec["n_bins"] != spec["n_bins"]:
        raise ValueError(f"the pretrained MNMEF was trained for {pretrained.spec['name']}, not {hmm.name}")
    if type(pretrained.nets["heads"]) is not type(nets["heads"]):
        raise ValueError("the pretrained MNMEF has another form (its heads are "
                         f"{type(pretrained.nets['heads']).__name__}, these {type(nets['heads']).__name__})")
    for name, net in nets.items():
        net.load_state_dict(pretrained.nets[name].state_dict())
    frozen = list(nets["summary"].parameters()) if freeze_summary else []
    for p in frozen:
        p.requires_grad_(False)
    return frozen


def learn_mnmef(flt: MNMEF, hmm: HMM, progress: bool | None = None, cache_dir=None,
                pretrained: MNMEF | None = None, freeze_summary: bool = True,
                compile: bool = False) -> dict[str, Any]:
    """Train ``flt.nets`` as ``flt.training`` says (see the module docstring); the training log.
    ``compile``: compile the model's forecast (:class:`ModelForecast`; how the training runs,
    not what it trains, so not a training setting)."""
    cfg = flt.training if progress is None else dataclasses.replace(flt.training, progress=progress)
    forecast = model_forecast(hmm, compile)
    frozen = [] if pretrained is None else start_from(pretrained, flt.nets, flt.spec, hmm, freeze_summary)
    try:
        xx, yy = simulate_trajectories(hmm, cfg.n_traj, seed=cfg.seed, cache_dir=cache_dir)
        data = training_windows(xx[:, hmm.tseq.kko], yy, cfg)
        bxy, byy, r_std = flt.observation_layout(hmm, 0)
        cycle = Cycle(flt.nets, forecast, TorchObs(hmm.obs, 0), r_std, bxy, byy, flt.spec["scale"],
                      flt.form)
        histories, n_windows, dropped = train_rounds(cycle, data, cfg, flt.N, flt.device)
    finally:
        for p in frozen:
            p.requires_grad_(True)
    last = histories[-1]
    return {"train_loss": [v for h in histories for v in h.train], "val_loss": last.val,
            "round_val_loss": [min(h.val) for h in histories], "best_epoch": last.best_epoch,
            "stopped": "; ".join(h.stopped for h in histories), "windows": n_windows,
            "skipped_steps": sum(h.skipped for h in histories), "diverged_windows": dropped,
            "fine_tuned": pretrained is not None,
            "summary_frozen": bool(frozen)}
