r"""LD-EnSF's training (:func:`learn_ldensf`): simulated trajectories at the observation times,
then stage 1, the latent dynamics (:func:`learn_dynamics`, loss :class:`RolloutLoss`), and stage 2,
the LSTM observation encoder (:func:`learn_lstm`, loss :class:`HistoryLoss`), each through the
shared trainer (:func:`~dafilters.nn.training.fit_in_stages`) with the settings of
:class:`~dafilters.filters.ldensf.LDEnSFTraining`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ...hmm import HMM
from ...nn.data import simulate_at_obs
from ...nn.nets import small_problem_threads, torch_threads
from ...nn.training import TrainHistory, fit_in_stages
from .config import LDEnSFTraining
from .latent import as_tensor, field_layout
from .nets import LatentDynamics, ObsLSTM

if TYPE_CHECKING:
    from .filter import LDEnSF

__all__ = ["TrainingData", "RolloutLoss", "HistoryLoss", "learn_ldensf", "training_data",
           "sample_split", "stage_config", "learn_dynamics", "learn_lstm"]

#: Shares of the budget ``minutes`` of stage 1 (latent dynamics) and stage 2 (LSTM).
STAGE_SHARES = (0.7, 0.3)


@dataclass
class TrainingData:
    """The standardised training set: fields ``Xf`` ``(n_traj, T, n_field)`` at time 0 and the
    observation times, parameters ``Pp`` ``(n_traj, n_params)``, observations ``yy``
    ``(n_traj, T - 1, Ny)`` (numpy, raw), which trajectories validate (``is_val``, all ``False``
    for a single trajectory), the points of one field ``points`` ``(P, 2)`` on the device
    (:func:`~dafilters.filters.ldensf.latent.field_layout`), and the training ``seed``."""

    Xf: torch.Tensor
    Pp: torch.Tensor
    yy: np.ndarray
    is_val: np.ndarray
    points: torch.Tensor
    seed: int


def set_scales(nets: dict, hmm: HMM, xx: np.ndarray, yy: np.ndarray, n_field: int, seed: int) -> None:
    """Fill the standardisation buffers: fields (two scalars per field, from ``xx``), parameters
    (from 2048 prior draws) and observations (from ``yy``)."""
    net, lstm = nets["ldnet"], nets["lstm"]
    dev = net.field_mean.device
    P0 = hmm.prior.sample(2048, np.random.default_rng(seed))[:, n_field:]
    with torch.no_grad():
        F = np.moveaxis(xx[..., :n_field].reshape(-1, net.field_mean.numel(), net.points_per_field), 1, 0)
        F = F.reshape(F.shape[0], -1)  # (C, samples): each field's values
        net.field_mean.copy_(as_tensor(F.mean(1), dev))
        net.field_std.copy_(as_tensor(np.maximum(F.std(1), 1e-6), dev))  # a constant field: no 0/0
        net.p_mean.copy_(as_tensor(P0.mean(0), dev))
        net.p_std.copy_(as_tensor(np.maximum(P0.std(0), 1e-6), dev))
        lstm.y_mean.copy_(as_tensor(yy.mean((0, 1)), dev))
        lstm.y_std.fill_(float(yy.std()))


def training_data(flt: LDEnSF, hmm: HMM, cfg: LDEnSFTraining, cache_dir=None) -> TrainingData:
    """Simulate ``cfg.n_traj`` trajectories (:func:`~dafilters.nn.data.simulate_at_obs`), set the
    standardisation buffers of ``flt.nets`` and hold a tenth of the trajectories out."""
    nf = flt.spec["n_field"]
    xx, yy = simulate_at_obs(hmm, cfg.n_traj, seed=cfg.seed, cache_dir=cache_dir)
    set_scales(flt.nets, hmm, xx, yy, nf, cfg.seed)
    net = flt.nets["ldnet"]
    with torch.no_grad():
        Xf = net.standardise(as_tensor(xx[..., :nf], net.field_mean.device)).cpu()
    Pp = (torch.as_tensor(xx[:, 0, nf:], dtype=torch.float32) - net.p_mean.cpu()) / net.p_std.cpu()
    n_traj = Xf.shape[0]
    val = np.random.default_rng(cfg.seed).permutation(n_traj)[:max(1, n_traj // 10)]
    is_val = np.isin(np.arange(n_traj), val) & (n_traj > 1)  # one trajectory: split its windows
    points = as_tensor(field_layout(hmm.dyn, nf)[0], flt.device)
    return TrainingData(Xf, Pp, yy, is_val, points, cfg.seed)


def sample_split(n_traj: int, starts: int, is_val: np.ndarray, seed: int) -> tuple[tuple, tuple]:
    """Index tensors ``(traj, start)`` of training and validation samples: the samples of the
    validation trajectories, or, of a single trajectory, a random tenth of its samples."""
    j, s = np.meshgrid(np.arange(n_traj), np.arange(starts), indexing="ij")
    j, s = j.ravel(), s.ravel()
    if not is_val.any():
        vs = np.random.default_rng(seed).permutation(len(j))[:max(1, len(j) // 10)]
        mask = np.isin(np.arange(len(j)), vs)
    else:
        mask = is_val[j]
    t = [torch.as_tensor(a) for a in (j, s)]
    return tuple(a[~torch.as_tensor(mask)] for a in t), tuple(a[torch.as_tensor(mask)] for a in t)


def stage_config(cfg: LDEnSFTraining, stage: str, epochs: int, batch_size: int, seed: int) -> LDEnSFTraining:
    """``cfg`` for one stage: its epochs, batch size and seed, and its own checkpoint file
    (``<name>-<stage><suffix>`` next to ``cfg.checkpoint``, if any)."""
    ckpt = cfg.checkpoint
    if ckpt is not None:
        ckpt = Path(ckpt).with_name(f"{Path(ckpt).stem}-{stage}{Path(ckpt).suffix}")
    return dataclasses.replace(cfg, epochs=epochs, batch_size=batch_size, seed=seed, checkpoint=ckpt)


def fit_stage(modules: list, loss, train: tuple, val: tuple, cfg: LDEnSFTraining,
              seconds: float) -> TrainHistory:
    """The shared trainer on ``modules`` with torch's global generator seeded by ``cfg.seed``
    (and restored afterwards)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return fit_in_stages(modules, loss, train, val, cfg, cfg.lr_stages, seconds)


@dataclass
class RolloutLoss:
    r"""Stage 1's loss of a batch of windows ``(traj, start)``: the decoded ODE rollout from the
    encoded first field and the decoded encodings against the true fields (on ``points`` random
    field points), plus ``latent_weight`` times the distance of the rollout to the encodings."""

    net: LatentDynamics
    data: TrainingData
    cfg: LDEnSFTraining
    device: str
    gen: torch.Generator = field(init=False)

    def __post_init__(self):
        self.gen = torch.Generator().manual_seed(self.data.seed)  # the batches' field points
        self.offs = torch.arange(self.cfg.rollout + 1)

    def field_points(self, nf: int) -> torch.Tensor:
        """``points`` random field points, or all of them."""
        points = self.cfg.points
        return (torch.randperm(nf, generator=self.gen)[:points] if points and points < nf
                else torch.arange(nf)).to(self.device)

    def __call__(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        j, s = batch
        net, W = self.net, self.cfg.rollout
        X = self.data.Xf[j[:, None], s[:, None] + self.offs].to(self.device)  # (B, W+1, nf)
        p = self.data.Pp[j].to(self.device)
        pts = self.field_points(X.shape[-1])  # components: field pts // P at point pts % P
        P = len(self.data.points)
        basis = net.decoder.basis(self.data.points[pts % P], pts // P)
        ze = net.encoder(X)  # (B, W+1, d)
        zs = net.ode.rollout(ze[:, 0], p, W)
        target = X[..., pts]
        roll = (net.decoder(zs, basis) - target).pow(2).mean()
        auto = (net.decoder(ze, basis) - target).pow(2).mean()
        lat = (zs[:, 1:] - ze[:, 1:]).pow(2).mean() if W else 0.0
        return roll + auto + self.cfg.latent_weight * lat


def latent_statistics(net: LatentDynamics, data: TrainingData, device: str) -> float:
    """Set ``z_mean``, ``z_std`` (of the encoded training states) and ``q_std`` (the ODE's
    one-interval RMS error in standardised units); return the validation reconstruction NMSE."""
    Xf, Pp, is_val = data.Xf, data.Pp, data.is_val
    n_traj, T = Xf.shape[:2]
    with torch.no_grad():
        Z = torch.stack([net.encoder(Xf[i].to(device)) for i in range(n_traj)])  # (n_traj, T, d)
        z_mean, z_std = Z.mean((0, 1)), Z.std((0, 1)).clamp(min=1e-6)
        pred = net.ode(Z[:, :-1].reshape(-1, Z.shape[-1]), Pp.to(device).repeat_interleave(T - 1, 0))
        err = (pred - Z[:, 1:].reshape(-1, Z.shape[-1])) / z_std
        net.z_mean.copy_(z_mean)
        net.z_std.copy_(z_std)
        net.q_std.copy_(err.pow(2).mean(0).sqrt())
        sel = torch.as_tensor(is_val) if is_val.any() else torch.ones(n_traj, dtype=torch.bool)
        basis = net.decoder.basis(data.points)
        rec = (net.decoder(Z[sel.to(device)], basis) - Xf[sel].to(device)).pow(2).mean()
    return float(rec)


def learn_dynamics(net: LatentDynamics, data: TrainingData, cfg: LDEnSFTraining, device: str,
                   seconds: float) -> dict[str, Any]:
    """Stage 1: train the latent dynamics network on windows of ``rollout + 1`` observation
    times, then measure its latent statistics. Returns the stage's log."""
    n_traj, T, _ = data.Xf.shape
    W = cfg.rollout
    if T < W + 1:
        raise ValueError(f"trajectories of {T} states are shorter than rollout + 1 = {W + 1}")
    loss = RolloutLoss(net, data, cfg, device)
    train, val = sample_split(n_traj, T - W, data.is_val, data.seed)
    stage = stage_config(cfg, "dynamics", cfg.epochs, cfg.batch_size, cfg.seed)
    hist = fit_stage([net], loss, train, val, stage, seconds)
    net.eval()
    rec = latent_statistics(net, data, device)
    return {**hist.as_log(), "seconds": hist.seconds, "val_reconstruction_nmse": rec,
            "latent_forecast_std": float(net.q_std.mean())}


@dataclass
class HistoryLoss:
    """Stage 2's loss of a batch of samples ``(traj, time)``: the LSTM's estimate from the padded
    history ``Yp`` ``(n_traj, history - 1 + T - 1, Ny + 1)`` ending at that observation time
    against the ``target`` ``(n_traj, T - 1, d + n_params)``."""

    lstm: ObsLSTM
    Yp: torch.Tensor
    target: torch.Tensor
    history: int
    device: str

    def __post_init__(self):
        self.offs = torch.arange(self.history)

    def predict(self, j: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return self.lstm(self.Yp[j[:, None], s[:, None] + self.offs].to(self.device))

    def __call__(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        j, s = batch
        return (self.predict(j, s) - self.target[j, s].to(self.device)).pow(2).mean()


def history_loss(nets: dict, data: TrainingData, history: int, device: str) -> HistoryLoss:
    """Stage 2's loss on the training set: targets are the standardised encodings of the true
    fields at the observation times and the parameters; inputs are the standardised observations
    with a 0/1 channel of real observations, left-padded with ``history - 1`` zero rows."""
    net, lstm = nets["ldnet"], nets["lstm"]
    n_traj, Ko1, Ny = data.yy.shape
    with torch.no_grad():
        Z = torch.stack([net.encoder(data.Xf[i, 1:].to(device)) for i in range(n_traj)])  # at kko
        U = (Z - net.z_mean) / net.z_std
        target = torch.cat([U, data.Pp.to(device)[:, None].expand(-1, Ko1, -1)], -1).cpu()
        Y = (torch.as_tensor(data.yy, dtype=torch.float32) - lstm.y_mean.cpu()) / lstm.y_std.cpu()
    real = torch.cat([Y, torch.ones(n_traj, Ko1, 1)], -1)
    Yp = torch.cat([torch.zeros(n_traj, history - 1, Ny + 1), real], 1)
    return HistoryLoss(lstm, Yp, target, history, device)


def learn_lstm(nets: dict, data: TrainingData, cfg: LDEnSFTraining, device: str,
               seconds: float) -> dict[str, Any]:
    """Stage 2: train the LSTM on (observation history -> latent state and parameters), then
    keep its validation RMS residual per component as its noise level. Returns the stage's log."""
    lstm = nets["lstm"]
    loss = history_loss(nets, data, cfg.history, device)
    n_traj, Ko1 = data.yy.shape[:2]
    train, val = sample_split(n_traj, Ko1, data.is_val, data.seed)
    stage = stage_config(cfg, "lstm", cfg.lstm_epochs, 4 * cfg.batch_size, cfg.seed + 1)
    hist = fit_stage([lstm], loss, train, val, stage, seconds)
    lstm.eval()
    with torch.no_grad():
        resid = loss.predict(*val) - loss.target[val].to(device)
        lstm.resid_std.copy_(resid.pow(2).mean(0).sqrt().clamp(min=1e-3))
    return {**hist.as_log(), "seconds": hist.seconds, "resid_std": lstm.resid_std.cpu().tolist()}


def learn_ldensf(flt: LDEnSF, hmm: HMM, progress: bool | None = None, cache_dir=None) -> dict[str, Any]:
    """Train ``flt.nets`` as ``flt.training`` says: simulate the trajectories, then stage 1 and
    stage 2 within their shares of ``minutes``. Returns the training log."""
    cfg = flt.training if progress is None else dataclasses.replace(flt.training, progress=progress)
    data = training_data(flt, hmm, cfg, cache_dir)
    n_traj, T, nf = data.Xf.shape
    # small problems train far faster on one thread (intra-op threads cost more than they save)
    size = nf * cfg.batch_size * (cfg.rollout + 1)
    threads = small_problem_threads(size) if torch.device(flt.device).type == "cpu" else None
    share_1, share_2 = STAGE_SHARES
    with torch_threads(threads):
        s1 = learn_dynamics(flt.nets["ldnet"], data, cfg, flt.device, share_1 * cfg.seconds)
        s2 = learn_lstm(flt.nets, data, cfg, flt.device, share_2 * cfg.seconds)
    return {"dynamics": s1, "lstm": s2, "n_traj": n_traj, "states": int(n_traj * T)}
