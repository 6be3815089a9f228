r"""MNMEF: a perturbed-observation EnKF whose inflation, localization and increments are learned.

After Bach, Colonius, Hoffmann, ... (2025), "Learning enhanced ensemble filters", arXiv 2504.17836.
Each analysis reads the forecast ensemble :math:`x_1..x_N` ``(N, Nx)`` with its predicted
observations :math:`h(x_n)` and the observation :math:`y`:

1. **Set summary.** Tokens :math:`t_n = [(x_n - \bar x)/c,\ (y - h(x_n))/\sigma_y]` are embedded,
   mixed by one self-attention block over the members and pooled by attention to a learned query
   (a set transformer): a summary :math:`s` that does not depend on the order of the members, and
   per-member features :math:`H_n`.
2. **Inflation.** :math:`A \leftarrow \lambda(s) A + \alpha(s)\, c\, \Xi` (multiplicative
   :math:`\lambda \in [1, 1.5]` and additive, with centred standard normal :math:`\Xi`).
3. **Localized gain.** With :math:`P_{xy} = A^T Y/(N-1)`, :math:`P_{yy} = Y^T Y/(N-1)` and
   localization weights :math:`\rho(s) \in (0, 1)` per distance bin (bins of ``bin_width``),

   .. math:: K = (\rho_{xy} \circ P_{xy})\,(\rho_{yy} \circ P_{yy} + R)^{-1}.

4. **Update with learned corrections.** Perturbed observations :math:`D_n \sim N(0, R)` (centred,
   rescaled by :math:`\sqrt{N/(N-1)}`) and a permutation-equivariant correction of each increment:

   .. math:: x^a_n = x_n + K (y - D_n - h(x_n)) + g\, \mathrm{MLP}([H_n, s]),

   where the MLP's last layer starts at zero (and the gate :math:`g` at 1), so an untrained
   MNMEF is a localized PertObs EnKF whose correction still receives gradients (a gate starting
   at 0 in front of a random MLP blocks them: trained that way, the gate stayed near 0).

Training (:meth:`MNMEF.train`) unrolls the filter through the model in torch
(``Dynamics.step_torch``) over windows of a simulated trajectory and minimises the mean analysis
RMSE over the window after a few warm-up cycles (normalised by the climatological spread
:math:`c`). Windows start from the ensembles of a filter that has already run for a while on the
same trajectory (the MNMEF as it is at the start of a training round, run without gradients
through the whole trajectory from truth plus noise), so the loss sees the errors of a filter in
its statistically steady state: ensembles drawn around the truth (``spinup=False``) have errors
far below the steady state over a short window, and a filter trained on them learns too little
inflation and too wide a localization. Training runs in rounds (``spinup_rounds``), each
spinning the windows' ensembles up again with the filter as trained so far; gradients are
truncated every ``detach_every`` cycles; validation windows are the last tenth of each training
trajectory. A filter trained at one ``N`` can be fine-tuned for another with the set summary
frozen (``fit(hmm, pretrained=...)``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..hmm import HMM
from ..localization import gaspari_cohn, pairwise_distances
from ..nn.data import simulate_trajectories, time_split, windows
from ..nn.training import TrainConfig, fit_in_stages
from .base import Context, check_ensemble_size, check_positive
from .learned import LearnedFilter, hmm_spec

__all__ = ["MNMEF", "SetSummary", "MNMEFHeads", "mnmef_update", "distance_bins", "spun_up_ensembles"]


class SetSummary(nn.Module):
    """A set transformer over ensemble members: tokens ``(B, N, d_in)`` -> per-member features
    ``(B, N, d)`` (self-attention block) and a pooled summary ``(B, d)`` (attention to a learned
    query). Permutation-equivariant features, permutation-invariant summary."""

    def __init__(self, d_in: int, d: int = 64, heads: int = 4):
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(d_in, d), nn.SiLU(), nn.Linear(d, d))
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, 2 * d), nn.SiLU(), nn.Linear(2 * d, d))
        self.query = nn.Parameter(0.1 * torch.randn(1, 1, d))
        self.pool = nn.MultiheadAttention(d, heads, batch_first=True)

    def forward(self, T: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        H = self.embed(T)
        H = self.norm1(H + self.attn(H, H, H, need_weights=False)[0])
        H = self.norm2(H + self.ff(H))
        s = self.pool(self.query.expand(H.shape[0], -1, -1), H, H, need_weights=False)[0][:, 0]
        return H, self.norm3(s)


class MNMEFHeads(nn.Module):
    """From the summary ``s`` ``(B, d)`` and member features ``H`` ``(B, N, d)``: localization
    weights ``(B, n_bins)``, multiplicative and additive inflation ``(B,)``, and increment
    corrections ``(B, N, Nx)``. Initialised to a Gaspari–Cohn localization of radius
    ``loc_init`` (in bins), inflation 1.05, no additive inflation and no correction (the
    correction's last layer is zero, the gate 1)."""

    def __init__(self, d: int, n_bins: int, Nx: int, loc_init: float, bin_width: float):
        super().__init__()
        self.loc = nn.Linear(d, n_bins)
        self.infl = nn.Linear(d, 2)
        self.corr = nn.Sequential(nn.Linear(2 * d, d), nn.SiLU(), nn.Linear(d, Nx))
        self.gate = nn.Parameter(torch.ones(()))
        with torch.no_grad():
            self.corr[-1].weight.zero_()
            self.corr[-1].bias.zero_()
            centres = np.arange(n_bins) * bin_width
            rho0 = np.clip(gaspari_cohn(centres / (1.82 * loc_init)), 1e-3, 1 - 1e-3)
            rho0[0] = 1 - 1e-3
            self.loc.weight.zero_()
            self.loc.bias.copy_(torch.as_tensor(np.log(rho0 / (1 - rho0))))
            self.infl.weight.zero_()
            self.infl.bias.copy_(torch.tensor([math.log(0.1 / 0.9), -6.0]))

    def forward(self, H: torch.Tensor, s: torch.Tensor):
        rho = torch.sigmoid(self.loc(s))
        a, b = self.infl(s).unbind(-1)
        lam = 1.0 + 0.5 * torch.sigmoid(a)
        alpha = nn.functional.softplus(b)
        corr = self.gate * self.corr(torch.cat([H, s[:, None].expand_as(H)], -1))
        return rho, lam, alpha, corr


def distance_bins(coords: np.ndarray, obs_xy: np.ndarray, domain, bin_width: float,
                  n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Bin indices ``floor(d / bin_width)`` (capped at ``n_bins - 1``) of the state–observation
    ``(Nx, Ny)`` and observation–observation ``(Ny, Ny)`` distances."""
    dom = None if domain is None else np.asarray(domain, dtype=float)

    def b(d):
        return np.minimum((d / bin_width).astype(int), n_bins - 1)

    return b(pairwise_distances(coords, obs_xy, dom)), b(pairwise_distances(obs_xy, obs_xy, dom))


def mnmef_update(nets: dict[str, nn.Module], E: torch.Tensor, y: torch.Tensor, h, r_std: torch.Tensor,
                 bins_xy: torch.Tensor, bins_yy: torch.Tensor, scale: float,
                 xi_obs: torch.Tensor, xi_add: torch.Tensor) -> torch.Tensor:
    r"""One MNMEF analysis of a batch of ensembles (see the module docstring).

    Args:
        nets: ``{"summary": SetSummary, "heads": MNMEFHeads}``.
        E: forecast ensembles ``(B, N, Nx)``. y: observations ``(B, Ny)``.
        h: the observation operator on tensors ``(..., Nx) -> (..., Ny)``.
        r_std: observation-error standard deviations ``(Ny,)`` (diagonal R).
        bins_xy, bins_yy: distance bins ``(Nx, Ny)``, ``(Ny, Ny)`` (long).
        scale: climatological standard deviation :math:`c` of the state.
        xi_obs ``(B, N, Ny)``, xi_add ``(B, N, Nx)``: standard normal draws (perturbations).

    Returns:
        The analysis ensembles ``(B, N, Nx)``.
    """
    N = E.shape[-2]
    Eo = h(E)
    T = torch.cat([(E - E.mean(-2, keepdim=True)) / scale, (y[:, None] - Eo) / r_std], -1)
    H, s = nets["summary"](T)
    rho, lam, alpha, corr = nets["heads"](H, s)
    xm = E.mean(-2, keepdim=True)
    add = xi_add - xi_add.mean(-2, keepdim=True)
    E = xm + lam[:, None, None] * (E - xm) + (alpha * scale)[:, None, None] * add
    A = E - E.mean(-2, keepdim=True)
    Eo = h(E)
    Y = Eo - Eo.mean(-2, keepdim=True)
    Pxy = A.transpose(-1, -2) @ Y / (N - 1)
    Pyy = Y.transpose(-1, -2) @ Y / (N - 1)
    C = rho[:, bins_yy] * Pyy + torch.diag_embed(r_std**2).expand_as(Pyy)
    D = xi_obs * r_std
    D = (D - D.mean(-2, keepdim=True)) * math.sqrt(N / (N - 1))
    innov = y[:, None] - D - Eo  # (B, N, Ny)
    incr = (rho[:, bins_xy] * Pxy) @ torch.linalg.solve(C, innov.transpose(-1, -2))  # (B, Nx, N)
    return E + incr.transpose(-1, -2) + corr


def spun_up_ensembles(nets: dict[str, nn.Module], truth: torch.Tensor, yy: torch.Tensor, N: int,
                      forecast, h, r_std: torch.Tensor, bins_xy: torch.Tensor, bins_yy: torch.Tensor,
                      scale: float, init_spread: float, gen: torch.Generator) -> torch.Tensor:
    """Run the MNMEF (no gradients) along whole trajectories and return every analysis ensemble.

    Args:
        truth: ``(B, K+1, Nx)`` at the observation times (only ``truth[:, 0]`` is used: the
            initial ensembles are ``truth[:, 0] + init_spread * noise``). yy: ``(B, K+1, Ny)``.
        forecast: ``E (B, N, Nx) -> E`` over one observation interval.

    Returns:
        ``(B, K+1, N, Nx)``: the initial ensembles, then the analysis ensemble at each time.
    """
    B, K1, Nx = truth.shape
    E = truth[:, 0, None] + init_spread * torch.randn(B, N, Nx, generator=gen)
    out = [E]
    with torch.no_grad():
        for k in range(1, K1):
            E = forecast(E)
            E = mnmef_update(nets, E, yy[:, k], h, r_std, bins_xy, bins_yy, scale,
                             torch.randn(B, N, yy.shape[-1], generator=gen),
                             torch.randn(B, N, Nx, generator=gen))
            out.append(E)
    return torch.stack(out, 1)


@dataclass
class MNMEF(LearnedFilter):
    """MNMEF filter (see the module docstring for the maths).

    Args:
        N: ensemble size. d_model, heads: width and attention heads of the set summary.
        bin_width: width of the localization distance bins (units of ``Dynamics.coords``).
        loc_init: radius of the Gaspari–Cohn shape the localization weights start from.
        n_traj, window, warmup, stride: training data: trajectories of the HMM (each as long as
            its chronology), cut into windows of ``window`` cycles every ``stride`` cycles; the
            loss skips the first ``warmup`` analyses of a window.
        init_spread: standard deviation of the ensembles drawn around the truth (at the start of
            each training trajectory, or of each window with ``spinup=False``).
        spinup: start windows from spun-up filter ensembles (see the module docstring), skipping
            windows that start in the first ``skip`` cycles.
        spinup_rounds: training rounds; each spins the training ensembles up again with the
            filter as trained so far (its windows then start where the trained filter's own runs
            are, not where the untrained filter's were), and gets an equal share of the time left.
        detach_every: gradients flow back through at most this many cycles (the ensemble is
            detached every ``detach_every`` cycles of a window; 0: through the whole window).
            Through 20 cycles (3 time units, about 5 Lyapunov times of L96) the gradients are
            dominated by the growth of perturbations, and the loss barely moved in training.
        epochs, batch_size, lr, minutes: training budget (``minutes`` stops it early).
        lr_stages: training stages, the learning rate divided by 10 from one to the next
            (:func:`~dafilters.nn.training.fit_in_stages`; 2 stages did worse on L96-40 than 1).
        device: torch device.
    """

    N: int = 20
    d_model: int = 64
    heads: int = 4
    bin_width: float = 1.0
    loc_init: float = 3.0
    n_traj: int = 8
    window: int = 20
    warmup: int = 5
    stride: int = 5
    init_spread: float = 1.0
    spinup: bool = True
    skip: int = 50
    detach_every: int = 5
    spinup_rounds: int = 2
    epochs: int = 100
    batch_size: int = 16
    lr: float = 1e-3
    lr_stages: int = 1
    minutes: float = 25.0
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self):
        check_ensemble_size(self.N)
        if self.N < 3:
            raise ValueError(f"MNMEF needs N >= 3 members, got N={self.N}")
        if not 0 <= self.warmup < self.window:
            raise ValueError(f"need 0 <= warmup < window, got warmup={self.warmup}, window={self.window}")
        check_positive(self, "bin_width", "loc_init", "init_spread", "lr", "lr_stages", "minutes")
        if self.spinup_rounds < 1:
            raise ValueError(f"spinup_rounds must be >= 1, got {self.spinup_rounds}")
        if self.detach_every < 0:
            raise ValueError(f"detach_every must be >= 0 (0: no truncation), got {self.detach_every}")

    # -- networks ---------------------------------------------------------------------------
    def spec_for(self, hmm: HMM) -> dict[str, Any]:
        spec = hmm_spec(hmm)
        locs = hmm.obs.locations(0, hmm.dyn.coords)
        dom = None if hmm.dyn.domain is None else np.asarray(hmm.dyn.domain, float)
        dmax = float(pairwise_distances(hmm.dyn.coords, locs, dom).max())
        spec["n_bins"] = int(dmax // self.bin_width) + 1
        xx, _ = simulate_trajectories(hmm, 1, seed=self.seed + 1)
        spec["scale"] = float(xx[0].std())
        return spec

    def build(self, spec: dict[str, Any]) -> dict[str, nn.Module]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            nets = {"summary": SetSummary(spec["Nx"] + spec["Ny"], self.d_model, self.heads),
                    "heads": MNMEFHeads(self.d_model, spec["n_bins"], spec["Nx"], self.loc_init,
                                        self.bin_width)}
        return {k: v.to(self.device) for k, v in nets.items()}

    def _setup(self, hmm: HMM, ko: int, cache: dict) -> tuple:
        """Distance bins and observation-error std as tensors (cached per observation layout)."""
        obs = hmm.obs
        locs = obs.locations(ko, hmm.dyn.coords)
        R = obs.noise(ko)
        if not R.is_diag:
            raise ValueError("MNMEF needs a diagonal observation-error covariance")
        key = (locs.tobytes(), R.diag.tobytes())
        if cache.get("key") != key:
            bxy, byy = distance_bins(hmm.dyn.coords, locs, hmm.dyn.domain, self.bin_width,
                                     self.spec["n_bins"])
            dev = self.device
            cache.update(key=key, bxy=torch.as_tensor(bxy, device=dev), byy=torch.as_tensor(byy, device=dev),
                         r_std=torch.as_tensor(np.sqrt(R.diag), dtype=torch.float32, device=dev))
        return cache["bxy"], cache["byy"], cache["r_std"]

    # -- filter hooks -----------------------------------------------------------------------
    def initialize(self, ctx: Context) -> np.ndarray:
        return ctx.hmm.prior.sample(self.N, ctx.rng)

    def analysis(self, E: np.ndarray, y: np.ndarray, ko: int, ctx: Context) -> np.ndarray:
        hmm = ctx.hmm
        bxy, byy, r_std = self._setup(hmm, ko, ctx.cache.setdefault("mnmef", {}))
        xi_obs = ctx.rng.standard_normal((1, self.N, len(y)))
        xi_add = ctx.rng.standard_normal((1, self.N, hmm.Nx))

        def t(a):
            return torch.as_tensor(np.asarray(a), dtype=torch.float32, device=self.device)

        for net in self.nets.values():
            net.eval()
        with torch.no_grad():
            Ea = mnmef_update(self.nets, t(E)[None], t(y)[None], lambda X: hmm.obs.h_torch(X, ko), r_std,
                              bxy, byy, self.spec["scale"], t(xi_obs), t(xi_add))
        return Ea[0].double().cpu().numpy()

    # -- training ---------------------------------------------------------------------------
    def fit(self, hmm: HMM, pretrained: MNMEF | None = None, freeze_summary: bool = True,
            **kwargs) -> MNMEF:
        """Train for ``hmm``; with ``pretrained`` (an MNMEF trained on the same HMM, e.g. at
        another ``N``), start from its weights and fine-tune, with the set summary frozen
        (``freeze_summary=True``, the paper's recipe) or all weights trained."""
        self._pretrained, self._freeze = pretrained, freeze_summary
        try:
            return super().fit(hmm, **kwargs)
        finally:
            del self._pretrained, self._freeze

    def train(self, hmm: HMM, progress: bool | None = None, cache_dir=None) -> dict[str, Any]:
        """Unrolled training on windows of simulated trajectories (see the module docstring)."""
        tseq, dyn, obs = hmm.tseq, hmm.dyn, hmm.obs
        dko = np.diff(np.concatenate([[0], tseq.kko]))
        if not np.all(dko == dko[0]):
            raise ValueError("MNMEF training needs regularly spaced observations")
        dyn.step_torch(torch.zeros(1, hmm.Nx), 0.0, tseq.dt)  # a clear error if the model has none
        pre = getattr(self, "_pretrained", None)
        frozen = []
        if pre is not None:
            same = pre.spec["fingerprint"] == self.spec["fingerprint"]
            if not same or pre.spec["n_bins"] != self.spec["n_bins"]:
                raise ValueError(f"the pretrained MNMEF was trained for {pre.spec['name']}, not {hmm.name}")
            for name, net in self.nets.items():
                net.load_state_dict(pre.nets[name].state_dict())
            frozen = list(self.nets["summary"].parameters()) if getattr(self, "_freeze", True) else []
            for p in frozen:
                p.requires_grad_(False)
        xx, yy = simulate_trajectories(hmm, self.n_traj, seed=self.seed, cache_dir=cache_dir)
        xo = xx[:, tseq.kko]  # truth at the observation times (n_traj, Ko+1, Nx)
        W = self.window
        bxy, byy, r_std = self._setup(hmm, 0, {})
        steps, dt, scale = int(dko[0]), tseq.dt, self.spec["scale"]
        gen = torch.Generator().manual_seed(self.seed)

        def forecast(E):
            for _ in range(steps):
                E = dyn.step_torch(E, 0.0, dt)
            return E

        def h(Z):
            return obs.h_torch(Z, 0)

        X = torch.as_tensor(windows(xo, W + 1, self.stride), dtype=torch.float32)  # truth, ko0..ko0+W
        Yw = torch.as_tensor(windows(yy, W + 1, self.stride), dtype=torch.float32)
        Ny = Yw.shape[-1]
        starts = np.tile(np.arange(0, xo.shape[1] - W, self.stride), len(xo))
        keep = starts >= self.skip if self.spinup else np.ones(len(X), bool)
        if not keep.any():
            raise ValueError(f"no training window starts after skip={self.skip} cycles: the "
                             f"trajectories have {xo.shape[1] - 1} cycles")
        # validation: the last tenth of each trajectory (windows overlap, so a random split would
        # validate on the training data)
        itr, ival = time_split(starts, W + 1, xo.shape[1], 0.1)
        itr, ival = itr[keep[itr]], ival[keep[ival]]

        def training_data() -> tuple[list[torch.Tensor], list[torch.Tensor]]:
            """(train, validation) windows ``[truth, obs, E0]`` (validation: + fixed draws)."""
            E0 = X[:, 0, None] + self.init_spread * torch.randn(len(X), self.N, hmm.Nx, generator=gen)
            if self.spinup:
                for net in self.nets.values():
                    net.eval()
                ens = spun_up_ensembles(self.nets, torch.as_tensor(xo, dtype=torch.float32),
                                        torch.as_tensor(yy, dtype=torch.float32), self.N, forecast, h,
                                        r_std, bxy, byy, scale, self.init_spread, gen)
                E0 = torch.as_tensor(windows(ens.numpy(), W + 1, self.stride)[:, 0])  # (n_windows, N, Nx)
            data = [X, Yw, E0]
            # validation draws its perturbations once: its loss (early stopping, best state) is
            # then a function of the weights only, not of fresh noise at every epoch
            n_val = len(ival)
            val = [d[ival] for d in data] + [torch.randn(n_val, W, self.N, Ny, generator=gen),
                                             torch.randn(n_val, W, self.N, hmm.Nx, generator=gen)]
            return [d[itr] for d in data], val

        def loss_fn(batch):
            truth, ys, E, *noise = (b.to(self.device) for b in batch)
            B = truth.shape[0]
            errs = []
            for k in range(1, W + 1):
                if noise:
                    xi_o, xi_a = noise[0][:, k - 1], noise[1][:, k - 1]
                else:
                    xi_o = torch.randn(B, self.N, Ny, generator=gen)
                    xi_a = torch.randn(B, self.N, hmm.Nx, generator=gen)
                E = mnmef_update(self.nets, forecast(E), ys[:, k], h, r_std, bxy, byy, scale, xi_o, xi_a)
                if self.detach_every and k % self.detach_every == 0:
                    E = E.detach()  # truncated backpropagation through the chaotic forecasts
                if k > self.warmup:
                    errs.append(((E.mean(1) - truth[:, k]) ** 2).mean(-1).sqrt())
            return torch.stack(errs).mean() / scale

        cfg = TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, patience=15,
                          grad_clip=1.0, seed=self.seed, progress=progress)
        modules = list(self.nets.values())
        rounds = self.spinup_rounds if self.spinup else 1
        hists, t0 = [], time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            for r in range(rounds):  # each round spins up with the filter as trained so far
                train, val = training_data()
                budget = (60 * self.minutes - (time.perf_counter() - t0)) / (rounds - r)
                hists.append(fit_in_stages(modules, loss_fn, train, val, cfg, self.lr_stages,
                                           max(1.0, budget)))
        for p in frozen:
            p.requires_grad_(True)
        last = hists[-1]
        return {"train_loss": [v for hi in hists for v in hi.train], "val_loss": last.val,
                "round_val_loss": [min(hi.val) for hi in hists], "best_epoch": last.best_epoch,
                "stopped": "; ".join(hi.stopped for hi in hists), "windows": len(train[0]) + len(val[0]),
                "fine_tuned": pre is not None, "summary_frozen": bool(frozen)}
