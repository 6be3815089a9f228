r"""LD-EnSF: the ensemble score filter run in the latent space of a learned latent dynamics model.

After Xiao, Si & Chen (2026), "LD-EnSF: Synergizing latent dynamics with ensemble score filters
for fast data assimilation with sparse observations", ICLR 2026.

A state is a field on points :math:`x_1..x_P` (``Dynamics.coords``, on a periodic domain of
lengths ``Dynamics.domain``) followed by ``n_params`` parameters :math:`\mu` that are constant in
time (``Dynamics.n_params``, 0 if absent), e.g. ``(vorticity (n*n), log Re)`` in
:mod:`mods.Kolmogorov.xiao2026`. Fields and parameters are standardised with scalars (field) and
per-parameter statistics of the prior (:math:`\tilde\omega`, :math:`p`).

**Latent dynamics network.** A latent state :math:`z \in \mathbb R^{d}` evolves by the latent ODE

.. math:: \frac{dz}{d\tau} = f_\theta(z, p),

integrated by ``substeps`` classical RK4 steps per observation interval (:math:`\tau` counts
observation intervals). The decoder maps a latent state and the periodic Fourier features
:math:`\gamma(x) = (\sin\kappa\cdot x, \cos\kappa\cdot x)_{\kappa}` (integer wave vectors up to
``kmax`` per axis, scaled by :math:`2\pi/L`) of *any* point to the field there,

.. math:: \tilde\omega(x) = b(x) + \sum_{j=1}^{r} a_j(z)\, \varphi_j(x),\qquad
          (b, \varphi)(x) = \mathrm{MLP}_\varphi(\gamma(x)),\quad a(z) = \mathrm{MLP}_a(z),

a nonlinear function of :math:`z` on a learned basis of ``n_basis`` functions of the coordinates
(so a whole ensemble is decoded on a grid by one ``(N, r) x (r, P)`` product once the basis is
evaluated there). An encoder :math:`E_\psi(\tilde\omega)` (an MLP of the field on the grid) gives
the latent state of a field: the initial latent states of training windows and of the initial
ensemble.

**Stage 1** (latent dynamics). On windows of ``rollout + 1`` consecutive observation times of
simulated trajectories, with :math:`z_0 = E(\tilde\omega_0)` and :math:`\hat z_k` the ODE's
rollout, minimise (on a random subset of ``points`` field points per batch)

.. math:: \textstyle\sum_k \lVert D(\hat z_k) - \tilde\omega_k\rVert^2
          + \lVert D(E(\tilde\omega_k)) - \tilde\omega_k\rVert^2
          + \lambda\, \lVert \hat z_k - E(\tilde\omega_k)\rVert^2 .

Afterwards the latent coordinates are standardised (:math:`u = (z - \bar z)/s_z`, statistics of
the encoded training states) and the one-interval forecast error of the ODE, :math:`s_q`, is
measured; the analysis space is :math:`(u, p)`, dimension ``latent_dim + n_params``.

**Stage 2** (observation encoder). An LSTM maps the last ``history`` observations (standardised,
left-padded with zeros and a 0/1 channel marking real observations) to :math:`(u, p)` at the
latest observation time; targets are the standardised encodings of the true fields and the
parameters. The RMS of its validation residual per component, :math:`s_y`, is its noise level.

**Filter.** The latent ensemble :math:`(u_n, p_n)` starts from the encoded prior ensemble. The
forecast integrates the latent ODE (parameters fixed) and adds :math:`\mathrm{model\_noise}\cdot
s_q\, \xi`. The analysis treats the LSTM output :math:`\hat v` as an observation of the latent
state, :math:`\hat v = (u, p) + \epsilon`, :math:`\epsilon \sim N(0, \mathrm{diag}(
(\mathrm{obs\_infl}\cdot s_y)^2))`, whose likelihood score
:math:`(\hat v - v)/(\mathrm{obs\_infl}\, s_y)^2` drives EnSF's reverse-time SDE
(:func:`dafilters.filters.ensf.ensf_sample`) in the latent space. The state-space ensemble handed
to the statistics is the decoded field of each member and its parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..hmm import HMM
from ..nn.data import simulate_at_obs
from ..nn.nets import MLP, small_problem_threads, torch_threads
from ..nn.training import TrainConfig, fit_model
from .base import Context, check_ensemble_size, check_positive
from .ensf import PRIOR_SCORES, ensf_sample, inflate
from .learned import LearnedFilter, hmm_spec

__all__ = ["LDEnSF", "FourierFeatures", "FieldDecoder", "LatentODE", "LatentDynamics", "ObsLSTM",
           "rk4", "latent_score", "history_tensor"]


# ---------------------------------------------------------------------------------------------
# pure functions


def rk4(f, z: torch.Tensor, h: float, steps: int) -> torch.Tensor:
    r"""``steps`` classical Runge–Kutta steps of size ``h`` of :math:`dz/d\tau = f(z)`."""
    for _ in range(steps):
        k1 = f(z)
        k2 = f(z + 0.5 * h * k1)
        k3 = f(z + 0.5 * h * k2)
        k4 = f(z + h * k3)
        z = z + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)
    return z


def latent_score(V: torch.Tensor, v_hat: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    r"""Likelihood score :math:`(\hat v - v)/\sigma^2` of latent samples ``V`` ``(M, d)`` given
    the encoder's estimate ``v_hat`` ``(d,)`` with variances ``var`` ``(d,)``."""
    return (v_hat - V) / var


def history_tensor(ys: list[torch.Tensor], length: int) -> torch.Tensor:
    """The LSTM input ``(length, Ny + 1)`` from the latest standardised observations ``ys``
    (oldest first, at most ``length``): left-padded with zero rows, last column 1 for a real
    observation and 0 for padding."""
    if not ys:
        raise ValueError("the observation history is empty")
    ys = ys[-length:]
    Y = torch.stack(ys)
    ones = torch.ones(len(ys), 1, dtype=Y.dtype, device=Y.device)
    real = torch.cat([Y, ones], 1)
    pad = torch.zeros(length - len(ys), Y.shape[1] + 1, dtype=Y.dtype, device=Y.device)
    return torch.cat([pad, real], 0)


def dev_is_cpu(device: str) -> bool:
    """Whether the torch device string names the CPU."""
    return torch.device(device).type == "cpu"


# ---------------------------------------------------------------------------------------------
# networks


class FourierFeatures(nn.Module):
    r"""Periodic features :math:`(\sin \kappa\cdot x, \cos \kappa\cdot x)` ``(..., 2M)`` of points
    ``(..., 2)``, for the ``M`` integer wave vectors :math:`k` with :math:`|k_i| \le` ``kmax`` in
    a half plane (:math:`k_0 > 0`, or :math:`k_0 = 0 < k_1`), :math:`\kappa = 2\pi k / L`."""

    def __init__(self, domain: tuple[float, float], kmax: int):
        super().__init__()
        r = torch.arange(-kmax, kmax + 1)
        k = torch.cartesian_prod(r, r)
        k = k[(k[:, 0] > 0) | ((k[:, 0] == 0) & (k[:, 1] > 0))].float()
        self.register_buffer("kappa", 2 * math.pi * k / torch.tensor(domain, dtype=torch.float32))

    @property
    def size(self) -> int:
        return 2 * self.kappa.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        phase = x @ self.kappa.T
        return torch.cat([torch.sin(phase), torch.cos(phase)], -1)


class FieldDecoder(nn.Module):
    r""":math:`\tilde\omega(x) = b(x) + \sum_j a_j(z) \varphi_j(x)`: latent states ``(..., d)`` and
    a basis evaluated at ``P`` points (:meth:`basis`, ``(P, r + 1)``) -> fields ``(..., P)``."""

    def __init__(self, latent_dim: int, domain: tuple[float, float], kmax: int, n_basis: int,
                 width: int, depth: int):
        super().__init__()
        self.features = FourierFeatures(domain, kmax)
        self.trunk = MLP(self.features.size, n_basis + 1, width, depth)
        self.branch = MLP(latent_dim, n_basis, width, depth)

    def basis(self, coords: torch.Tensor) -> torch.Tensor:
        """``(b, phi_1..phi_r)`` at points ``coords`` ``(P, 2)``: ``(P, r + 1)``."""
        return self.trunk(self.features(coords))

    def forward(self, z: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
        return basis[:, 0] + self.branch(z) @ basis[:, 1:].T


class LatentODE(nn.Module):
    r""":math:`dz/d\tau = f_\theta(z, p)`, an MLP, integrated by :func:`rk4` with ``substeps``
    steps per observation interval. The last layer starts at zero (identity flow)."""

    def __init__(self, latent_dim: int, n_params: int, width: int, depth: int, substeps: int):
        super().__init__()
        self.f = MLP(latent_dim + n_params, latent_dim, width, depth)
        self.substeps = int(substeps)
        last = self.f.net[-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, z: torch.Tensor, p: torch.Tensor, intervals: int = 1) -> torch.Tensor:
        """``z`` ``(B, d)``, ``p`` ``(B, n_params)`` -> ``z`` after ``intervals`` intervals."""
        return rk4(lambda s: self.f(torch.cat([s, p], -1)), z, 1.0 / self.substeps,
                   self.substeps * int(intervals))

    def rollout(self, z: torch.Tensor, p: torch.Tensor, length: int) -> torch.Tensor:
        """``(B, length + 1, d)``: ``z`` and its ``length`` successive one-interval forecasts."""
        out = [z]
        for _ in range(length):
            out.append(self(out[-1], p))
        return torch.stack(out, 1)


class LatentDynamics(nn.Module):
    """The latent dynamics network: field encoder, latent ODE and decoder, with the buffers that
    standardise fields (``field_mean``, ``field_std``), parameters (``p_mean``, ``p_std``) and
    latent states (``z_mean``, ``z_std``), and the latent forecast error ``q_std``."""

    def __init__(self, n_field: int, n_params: int, domain: tuple[float, float], latent_dim: int,
                 kmax: int, n_basis: int, width: int, depth: int, substeps: int, enc_width: int):
        super().__init__()
        self.encoder = MLP(n_field, latent_dim, enc_width, 1)
        self.decoder = FieldDecoder(latent_dim, domain, kmax, n_basis, width, depth)
        self.ode = LatentODE(latent_dim, n_params, width, depth, substeps)
        for name, size in (("field_mean", 1), ("field_std", 1), ("p_mean", n_params),
                           ("p_std", n_params), ("z_mean", latent_dim), ("z_std", latent_dim),
                           ("q_std", latent_dim)):
            self.register_buffer(name, torch.zeros(size) if "mean" in name else torch.ones(size))


class ObsLSTM(nn.Module):
    """Observation histories ``(B, L, Ny + 1)`` -> latent states and parameters ``(B, d_out)``
    (an LSTM and a linear head on its last output). Buffers: ``y_mean`` ``(Ny,)`` and ``y_std``
    standardise the observations, ``resid_std`` ``(d_out,)`` is the validation RMS residual."""

    def __init__(self, Ny: int, d_out: int, hidden: int, layers: int):
        super().__init__()
        self.lstm = nn.LSTM(Ny + 1, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, d_out)
        self.register_buffer("y_mean", torch.zeros(Ny))
        self.register_buffer("y_std", torch.ones(1))
        self.register_buffer("resid_std", torch.ones(d_out))

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(seq)
        return self.head(out[:, -1])


# ---------------------------------------------------------------------------------------------
# the filter


@dataclass
class LatentEnsemble:
    """The filter's state: latent members ``V`` ``(N, latent_dim + n_params)`` (standardised
    latent state, then parameters) and their decoding ``E`` ``(N, Nx)`` (numpy float64)."""

    V: torch.Tensor
    E: np.ndarray


@dataclass
class LDEnSF(LearnedFilter):
    """LD-EnSF (see the module docstring for the networks, the training and the analysis).

    Args:
        N: ensemble size.
        eps_a, eps_b, steps, prior_score: EnSF's schedule, reverse steps and prior score in the
            latent space (:class:`~dafilters.filters.ensf.EnSF`).
        infl: multiplicative inflation of the latent forecast anomalies.
        obs_infl: factor on the LSTM's noise level (its validation RMS residual).
        model_noise: factor on the latent forecast noise (the ODE's one-interval RMS error).
        latent_dim: :math:`d`. n_basis, kmax: decoder basis size and Fourier features per axis.
        width, depth: hidden layers of the ODE, branch and trunk MLPs. enc_width: hidden width of
            the field encoder. substeps: RK4 steps per observation interval.
        history: observations the LSTM reads. lstm_hidden, lstm_layers: the LSTM.
        n_traj: simulated training trajectories (each as long as the HMM's chronology).
        rollout: observation intervals per stage-1 window. latent_weight: :math:`\\lambda`.
        points: field points per stage-1 batch (``None``: all).
        epochs, lstm_epochs, batch_size, lr: training; minutes: wall-time budget of the two
            stages together (70% / 30%; the simulation comes on top).
        seed: seeds networks, data and batches. device: torch device.
    """

    skip_empty_analysis: ClassVar[bool] = False  # every observation time enters its history

    N: int = 20
    eps_a: float = field(default=0.5, metadata={"space": ("log", 1e-3, 1.0)})
    eps_b: float = field(default=0.025, metadata={"space": ("log", 1e-3, 0.5)})
    steps: int = field(default=100, metadata={"space": ("int", 20, 500)})
    prior_score: str = "paired"
    infl: float = field(default=1.0, metadata={"space": ("log", 1.0, 1.5)})
    obs_infl: float = field(default=1.0, metadata={"space": ("log", 0.3, 3.0)})
    model_noise: float = field(default=1.0, metadata={"space": ("float", 0.0, 3.0)})
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
    n_traj: int = 32
    rollout: int = 4
    latent_weight: float = 0.1
    points: int | None = 1024
    epochs: int = 300
    lstm_epochs: int = 300
    batch_size: int = 32
    lr: float = 2e-3
    minutes: float = 25.0
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self):
        check_ensemble_size(self.N)
        if not 0 < self.eps_a <= 1 or not 0 < self.eps_b < 1:
            raise ValueError(f"need 0 < eps_a <= 1 and 0 < eps_b < 1, got eps_a={self.eps_a}, "
                             f"eps_b={self.eps_b}")
        if self.prior_score not in PRIOR_SCORES:
            raise ValueError(f"unknown prior_score {self.prior_score!r}; choose one of {PRIOR_SCORES}")
        for name in ("steps", "latent_dim", "n_basis", "kmax", "width", "depth", "enc_width", "substeps",
                     "history", "lstm_hidden", "lstm_layers", "n_traj", "rollout", "epochs",
                     "lstm_epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.points is not None and self.points < 1:
            raise ValueError(f"points must be positive or None, got {self.points!r}")
        if not self.model_noise >= 0 or not self.latent_weight >= 0:
            raise ValueError("model_noise and latent_weight must be >= 0")
        check_positive(self, "infl", "obs_infl", "lr", "minutes")
        torch.device(self.device)  # raises for an unknown device string

    # -- spec and networks -------------------------------------------------------------------
    def spec_for(self, hmm: HMM) -> dict[str, Any]:
        spec = hmm_spec(hmm)
        n_params = int(getattr(hmm.dyn, "n_params", 0))
        dko = hmm.tseq.dko
        if dko is None:
            raise ValueError("LD-EnSF needs regularly spaced observations (a Chronology with dko)")
        coords = np.asarray(hmm.dyn.coords, dtype=float)
        if coords.shape[1] != 2 or hmm.dyn.domain is None or len(hmm.dyn.domain) != 2:
            raise ValueError("LD-EnSF decodes fields on a periodic 2-D domain: the dynamics need "
                             "coords (Nx, 2) and a domain (L0, L1)")
        spec.update(n_params=n_params, n_field=hmm.Nx - n_params, dko=int(dko),
                    domain=[float(v) for v in hmm.dyn.domain])
        return spec

    def build(self, spec: dict[str, Any]) -> dict[str, nn.Module]:
        d_out = self.latent_dim + spec["n_params"]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            nets = {"ldnet": LatentDynamics(spec["n_field"], spec["n_params"], tuple(spec["domain"]),
                                            self.latent_dim, self.kmax, self.n_basis, self.width,
                                            self.depth, self.substeps, self.enc_width),
                    "lstm": ObsLSTM(spec["Ny"], d_out, self.lstm_hidden, self.lstm_layers)}
        return {k: v.to(self.device) for k, v in nets.items()}

    def check_hmm(self, hmm: HMM) -> None:
        super().check_hmm(hmm)
        if hmm.tseq.dko != self.spec["dko"]:
            raise ValueError(f"LDEnSF was trained with {self.spec['dko']} model steps per observation "
                             f"interval, but this HMM ({hmm.name}) has dko={hmm.tseq.dko}")

    # -- conversions -------------------------------------------------------------------------
    def _tensor(self, a) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a), dtype=torch.float32, device=self.device)

    def encode(self, E: np.ndarray | torch.Tensor) -> torch.Tensor:
        """States ``(N, Nx)`` -> latent members ``(N, latent_dim + n_params)`` (standardised)."""
        net, nf = self.nets["ldnet"], self.spec["n_field"]
        X = E if isinstance(E, torch.Tensor) else self._tensor(E)
        z = net.encoder((X[:, :nf] - net.field_mean) / net.field_std)
        return torch.cat([(z - net.z_mean) / net.z_std, (X[:, nf:] - net.p_mean) / net.p_std], 1)

    def decode(self, V: torch.Tensor, basis: torch.Tensor) -> np.ndarray:
        """Latent members ``(N, latent_dim + n_params)`` -> states ``(N, Nx)`` (numpy float64);
        ``basis`` from :meth:`FieldDecoder.basis` at the field's points."""
        net, d = self.nets["ldnet"], self.latent_dim
        fields = net.decoder(V[:, :d] * net.z_std + net.z_mean, basis) * net.field_std + net.field_mean
        params = V[:, d:] * net.p_std + net.p_mean
        return torch.cat([fields, params], 1).to(device="cpu", dtype=torch.float64).numpy()

    def _run_cache(self, ctx: Context) -> dict:
        """Per-run data: the decoder basis at the field points, noise generators, history."""
        cache = ctx.cache.get("ldensf")
        if cache is None:
            coords = self._tensor(ctx.hmm.dyn.coords[:self.spec["n_field"]])
            with torch.no_grad():
                basis = self.nets["ldnet"].decoder.basis(coords)
            seeds = ctx.rng.integers(2**63, size=2)
            gens = [torch.Generator(device=self.device).manual_seed(int(s)) for s in seeds]
            cache = ctx.cache["ldensf"] = {"basis": basis, "gens": gens, "ys": []}
            for net in self.nets.values():
                net.eval()
        return cache

    # -- filter hooks --------------------------------------------------------------------------
    def initialize(self, ctx: Context) -> LatentEnsemble:
        cache = self._run_cache(ctx)
        E = ctx.hmm.prior.sample(self.N, ctx.rng)
        with torch.no_grad():
            V = self.encode(E)
            return LatentEnsemble(V, self.decode(V, cache["basis"]))

    def forecast(self, state: LatentEnsemble, ctx: Context, k0: int, k1: int) -> LatentEnsemble:
        intervals, rest = divmod(k1 - k0, self.spec["dko"])
        if rest:
            raise ValueError(f"LD-EnSF forecasts whole observation intervals ({self.spec['dko']} steps), "
                             f"not steps {k0}->{k1}")
        cache = self._run_cache(ctx)
        net, d = self.nets["ldnet"], self.latent_dim
        V = state.V
        with torch.no_grad(), torch_threads(small_problem_threads(V.numel())):
            for _ in range(intervals):
                z = net.ode(V[:, :d] * net.z_std + net.z_mean, V[:, d:])
                u = (z - net.z_mean) / net.z_std
                if self.model_noise > 0:
                    xi = self._tensor(ctx.rng.standard_normal(u.shape))
                    u = u + self.model_noise * net.q_std * xi
                V = torch.cat([u, V[:, d:]], 1)
            return LatentEnsemble(V, self.decode(V, cache["basis"]))

    def estimate(self, state: LatentEnsemble) -> np.ndarray:
        return state.E

    def encode_history(self, ys: list[torch.Tensor]) -> torch.Tensor:
        """The LSTM's estimate ``(latent_dim + n_params,)`` from standardised observations."""
        lstm = self.nets["lstm"]
        return lstm(history_tensor(ys, self.history)[None])[0]

    def analysis(self, state: LatentEnsemble, y: np.ndarray, ko: int, ctx: Context) -> LatentEnsemble:
        cache = self._run_cache(ctx)
        lstm = self.nets["lstm"]
        ys = cache["ys"]
        ys.append((self._tensor(y) - lstm.y_mean) / lstm.y_std)
        del ys[:-self.history]
        X = inflate(state.V, self.infl)
        with torch.no_grad(), torch_threads(1):
            v_hat = self.encode_history(ys)
            var = (self.obs_infl * lstm.resid_std) ** 2
            V = ensf_sample(X, lambda Z: latent_score(Z, v_hat, var), self.steps, self.eps_a, self.eps_b,
                            self.prior_score, "sde", None, cache["gens"])
            return LatentEnsemble(V, self.decode(V, cache["basis"]))

    # -- training ------------------------------------------------------------------------------
    def train(self, hmm: HMM, progress: bool | None = None, cache_dir=None) -> dict[str, Any]:
        """Simulate ``n_traj`` trajectories, then train the latent dynamics (stage 1) and the
        LSTM (stage 2); see the module docstring."""
        nf = self.spec["n_field"]
        xx, yy = simulate_at_obs(hmm, self.n_traj, seed=self.seed, cache_dir=cache_dir)
        net, lstm = self.nets["ldnet"], self.nets["lstm"]
        # standardisation: fields (scalars), parameters (from prior draws), observations
        P0 = hmm.prior.sample(2048, np.random.default_rng(self.seed))[:, nf:]
        with torch.no_grad():
            net.field_mean.fill_(float(xx[..., :nf].mean()))
            net.field_std.fill_(float(xx[..., :nf].std()))
            net.p_mean.copy_(self._tensor(P0.mean(0)))
            net.p_std.copy_(self._tensor(np.maximum(P0.std(0), 1e-6)))
            lstm.y_mean.copy_(self._tensor(yy.mean((0, 1))))
            lstm.y_std.fill_(float(yy.std()))
        Xf = (torch.as_tensor(xx[..., :nf], dtype=torch.float32) - net.field_mean.cpu()) / net.field_std.cpu()
        Pp = (torch.as_tensor(xx[:, 0, nf:], dtype=torch.float32) - net.p_mean.cpu()) / net.p_std.cpu()
        n_traj, T = Xf.shape[:2]
        val = np.random.default_rng(self.seed).permutation(n_traj)[:max(1, n_traj // 10)]
        is_val = np.isin(np.arange(n_traj), val) & (n_traj > 1)  # one trajectory: split its windows
        budget = 60 * self.minutes
        # small problems train far faster on one thread (intra-op threads cost more than they save)
        size = nf * self.batch_size * (self.rollout + 1)
        threads = small_problem_threads(size) if dev_is_cpu(self.device) else None
        with torch_threads(threads):
            s1 = self._train_dynamics(Xf, Pp, hmm, is_val, progress, 0.7 * budget)
            s2 = self._train_lstm(Xf, Pp, yy, is_val, progress, 0.3 * budget)
        return {"dynamics": s1, "lstm": s2, "n_traj": n_traj, "states": int(n_traj * T)}

    def _split(self, n_traj: int, starts: int, is_val: np.ndarray) -> tuple[tuple, tuple]:
        """Index tensors ``(traj, start)`` of training and validation samples."""
        j, s = np.meshgrid(np.arange(n_traj), np.arange(starts), indexing="ij")
        j, s = j.ravel(), s.ravel()
        if not is_val.any():  # one trajectory: validate on a tenth of its samples
            vs = np.random.default_rng(self.seed).permutation(len(j))[:max(1, len(j) // 10)]
            mask = np.isin(np.arange(len(j)), vs)
        else:
            mask = is_val[j]
        t = [torch.as_tensor(a) for a in (j, s)]
        return tuple(a[~torch.as_tensor(mask)] for a in t), tuple(a[torch.as_tensor(mask)] for a in t)

    def _train_dynamics(self, Xf: torch.Tensor, Pp: torch.Tensor, hmm: HMM, is_val: np.ndarray,
                        progress, seconds: float) -> dict[str, Any]:
        net, dev, W = self.nets["ldnet"], self.device, self.rollout
        n_traj, T, nf = Xf.shape
        if T < W + 1:
            raise ValueError(f"trajectories of {T} states are shorter than rollout + 1 = {W + 1}")
        coords = self._tensor(hmm.dyn.coords[:nf])
        gen = torch.Generator().manual_seed(self.seed)
        offs = torch.arange(W + 1)

        def loss_fn(batch):
            j, s = batch
            X = Xf[j[:, None], s[:, None] + offs].to(dev)  # (B, W+1, nf)
            p = Pp[j].to(dev)
            pts = (torch.randperm(nf, generator=gen)[:self.points] if self.points and self.points < nf
                   else torch.arange(nf)).to(dev)
            basis = net.decoder.basis(coords[pts])
            ze = net.encoder(X)  # (B, W+1, d)
            zs = net.ode.rollout(ze[:, 0], p, W)
            target = X[..., pts]
            roll = (net.decoder(zs, basis) - target).pow(2).mean()
            auto = (net.decoder(ze, basis) - target).pow(2).mean()
            lat = (zs[:, 1:] - ze[:, 1:]).pow(2).mean() if W else 0.0
            return roll + auto + self.latent_weight * lat

        train, val = self._split(n_traj, T - W, is_val)
        cfg = TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, patience=30,
                          seed=self.seed, progress=progress, max_seconds=seconds)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            hist = fit_model([net], loss_fn, train, val, cfg)
        net.eval()
        with torch.no_grad():  # latent statistics and the ODE's one-interval error
            Z = torch.stack([net.encoder(Xf[i].to(dev)) for i in range(n_traj)])  # (n_traj, T, d)
            z_mean, z_std = Z.mean((0, 1)), Z.std((0, 1)).clamp(min=1e-6)
            pred = net.ode(Z[:, :-1].reshape(-1, Z.shape[-1]), Pp.to(dev).repeat_interleave(T - 1, 0))
            err = (pred - Z[:, 1:].reshape(-1, Z.shape[-1])) / z_std
            net.z_mean.copy_(z_mean)
            net.z_std.copy_(z_std)
            net.q_std.copy_(err.pow(2).mean(0).sqrt())
            sel = torch.as_tensor(is_val) if is_val.any() else torch.ones(n_traj, dtype=torch.bool)
            rec = (net.decoder(Z[sel.to(dev)], net.decoder.basis(coords)) - Xf[sel].to(dev)).pow(2).mean()
        return {"train_loss": hist.train, "val_loss": hist.val, "best_epoch": hist.best_epoch,
                "stopped": hist.stopped, "seconds": hist.seconds,
                "val_reconstruction_nmse": float(rec), "latent_forecast_std": float(net.q_std.mean())}

    def _train_lstm(self, Xf: torch.Tensor, Pp: torch.Tensor, yy: np.ndarray, is_val: np.ndarray,
                    progress, seconds: float) -> dict[str, Any]:
        net, lstm, dev, L = self.nets["ldnet"], self.nets["lstm"], self.device, self.history
        n_traj, Ko1, Ny = yy.shape
        with torch.no_grad():
            Z = torch.stack([net.encoder(Xf[i, 1:].to(dev)) for i in range(n_traj)])  # at kko
            U = (Z - net.z_mean) / net.z_std
            target = torch.cat([U, Pp.to(dev)[:, None].expand(-1, Ko1, -1)], -1).cpu()  # (n_traj, Ko+1, d')
            Y = (torch.as_tensor(yy, dtype=torch.float32) - lstm.y_mean.cpu()) / lstm.y_std.cpu()
        real = torch.cat([Y, torch.ones(n_traj, Ko1, 1)], -1)  # observations and the 0/1 channel
        Yp = torch.cat([torch.zeros(n_traj, L - 1, Ny + 1), real], 1)
        offs = torch.arange(L)

        def predict(j, s):
            return lstm(Yp[j[:, None], s[:, None] + offs].to(dev))

        def loss_fn(batch):
            j, s = batch
            return (predict(j, s) - target[j, s].to(dev)).pow(2).mean()

        train, val = self._split(n_traj, Ko1, is_val)
        cfg = TrainConfig(epochs=self.lstm_epochs, batch_size=4 * self.batch_size, lr=self.lr, patience=30,
                          seed=self.seed + 1, progress=progress, max_seconds=seconds)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed + 1)
            hist = fit_model([lstm], loss_fn, train, val, cfg)
        lstm.eval()
        with torch.no_grad():
            resid = predict(*val) - target[val].to(dev)
            lstm.resid_std.copy_(resid.pow(2).mean(0).sqrt().clamp(min=1e-3))
        return {"train_loss": hist.train, "val_loss": hist.val, "best_epoch": hist.best_epoch,
                "stopped": hist.stopped, "seconds": hist.seconds,
                "resid_std": lstm.resid_std.cpu().tolist()}
