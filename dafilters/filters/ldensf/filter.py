r"""The :class:`LDEnSF` filter: its settings, networks and filter hooks.

**Filter.** The latent ensemble :math:`v_n = (u_n, p_n)` starts from the encoded prior ensemble.
The forecast integrates the latent ODE (parameters fixed) and adds :math:`\mathrm{model\_noise}
\cdot s_q\, \xi`. The analysis inflates the forecast anomalies by ``infl_f`` and treats the LSTM
output :math:`\hat v` as an observation of the latent state, :math:`\hat v = v + \epsilon`,
:math:`\epsilon \sim N(0, \mathrm{diag}((\mathrm{obs\_infl}\cdot s_y)^2))`, whose likelihood score
:math:`(\hat v - v)/(\mathrm{obs\_infl}\, s_y)^2` drives EnSF's reverse-time SDE
(:func:`dafilters.filters.ensf.ensf_sample`) in the latent space; with ``likelihood_step =
"implicit"`` that linear likelihood term is taken at the end of each Euler step
(:func:`~dafilters.filters.ldensf.latent.implicit_latent_sample`), stable for any noise level (the
explicit step diverges when :math:`\Delta g^2/(\mathrm{obs\_infl}\, s_y)^2 > 2`, e.g. an LSTM
residual below 0.07 at 100 steps). The state-space ensemble handed to the statistics is the
decoded field of each member and its parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ...hmm import HMM
from ...nn.nets import small_problem_threads, torch_threads
from ..base import Context, check_ensemble_size, check_positive
from ..ensemble import initial_ensemble, torch_generators
from ..ensf import PRIOR_SCORES, ensf_sample, inflate
from ..learned import LearnedFilter, hmm_spec
from .config import LDEnSFTraining
from .latent import (
    LatentEnsemble,
    as_tensor,
    decode_states,
    encode_states,
    field_layout,
    history_tensor,
    implicit_latent_sample,
    latent_score,
    latent_step,
)
from .learn import learn_ldensf
from .nets import LatentDynamics, ObsLSTM

__all__ = ["LDEnSF", "LIKELIHOOD_STEPS"]

#: How the analysis takes the latent likelihood term in each reverse Euler step.
LIKELIHOOD_STEPS = ("explicit", "implicit")


@dataclass
class LDEnSF(LearnedFilter):
    """LD-EnSF (see :mod:`dafilters.filters.ldensf` for the networks, the training and the
    analysis).

    Args:
        N: ensemble size.
        eps_a, eps_b, steps, prior_score: EnSF's schedule, reverse steps and prior score in the
            latent space (:class:`~dafilters.filters.ensf.EnSF`).
        infl_f: multiplicative inflation of the latent forecast anomalies before the analysis.
        obs_infl: factor on the LSTM's noise level (its validation RMS residual).
        model_noise: factor on the latent forecast noise (the ODE's one-interval RMS error).
        likelihood_step: ``"explicit"`` (EnSF's Euler step, as the reference code) or
            ``"implicit"`` (the Gaussian likelihood term at the step's end: stable when the LSTM
            is accurate, i.e. its noise level is small against the step).
        device: torch device.
        training: an :class:`LDEnSFTraining` (the networks' sizes, the observation history, the
            two stages' data, losses, budget, optimiser and seed), or a dict of changes to its
            defaults, e.g. ``{"minutes": 5, "latent_dim": 16}``.
    """

    TRAINING: ClassVar[LDEnSFTraining] = LDEnSFTraining()
    skip_empty_analysis: ClassVar[bool] = False  # every observation time enters its history

    N: int = 20
    eps_a: float = field(default=0.5, metadata={"space": ("log", 1e-3, 1.0)})
    eps_b: float = field(default=0.025, metadata={"space": ("log", 1e-3, 0.5)})
    steps: int = field(default=100, metadata={"space": ("int", 20, 500)})
    prior_score: str = "paired"
    infl_f: float = field(default=1.0, metadata={"space": ("log", 1.0, 1.5)})
    obs_infl: float = field(default=1.0, metadata={"space": ("log", 0.3, 3.0)})
    model_noise: float = field(default=1.0, metadata={"space": ("lin", 0.0, 3.0)})
    likelihood_step: str = "explicit"
    device: str = "cpu"

    def __post_init__(self):
        super().__post_init__()
        check_ensemble_size(self.N)
        if not 0 < self.eps_a <= 1 or not 0 < self.eps_b < 1:
            raise ValueError(f"need 0 < eps_a <= 1 and 0 < eps_b < 1, got eps_a={self.eps_a}, "
                             f"eps_b={self.eps_b}")
        if not isinstance(self.steps, (int, np.integer)) or self.steps < 1:
            raise ValueError(f"steps must be a positive integer, got {self.steps!r}")
        if self.prior_score not in PRIOR_SCORES:
            raise ValueError(f"unknown prior_score {self.prior_score!r}; choose one of {PRIOR_SCORES}")
        if not self.model_noise >= 0:
            raise ValueError(f"model_noise must be >= 0, got {self.model_noise!r}")
        check_positive(self, "infl_f", "obs_infl")
        if self.likelihood_step not in LIKELIHOOD_STEPS:
            raise ValueError(f"unknown likelihood_step {self.likelihood_step!r}; choose one of "
                             f"{LIKELIHOOD_STEPS}")
        torch.device(self.device)  # raises for an unknown device string

    # -- spec, networks, training ----------------------------------------------------------------
    def spec_for(self, hmm: HMM) -> dict[str, Any]:
        spec = hmm_spec(hmm)
        n_params = int(hmm.dyn.n_params)
        dko = hmm.tseq.dko
        if dko is None:
            raise ValueError("LD-EnSF needs regularly spaced observations (a Chronology with dko)")
        n_field = hmm.Nx - n_params
        _, periods, channels = field_layout(hmm.dyn, n_field)
        spec.update(n_params=n_params, n_field=n_field, dko=int(dko), domain=list(periods))
        if channels > 1:  # absent: one field (the models saved before several fields were decoded)
            spec["channels"] = channels
        return spec

    def build(self, spec: dict[str, Any]) -> dict[str, nn.Module]:
        cfg = self.training
        d_out = cfg.latent_dim + spec["n_params"]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            nets = {"ldnet": LatentDynamics(spec["n_field"], spec["n_params"], tuple(spec["domain"]),
                                            cfg.latent_dim, cfg.kmax, cfg.n_basis, cfg.width,
                                            cfg.depth, cfg.substeps, cfg.enc_width,
                                            spec.get("channels", 1)),
                    "lstm": ObsLSTM(spec["Ny"], d_out, cfg.lstm_hidden, cfg.lstm_layers)}
        return {k: v.to(self.device) for k, v in nets.items()}

    def learn(self, hmm: HMM, progress: bool | None = None, cache_dir=None) -> dict[str, Any]:
        """Simulate ``training.n_traj`` trajectories, then train the latent dynamics (stage 1) and
        the LSTM (stage 2) (:func:`~dafilters.filters.ldensf.learn.learn_ldensf`)."""
        return learn_ldensf(self, hmm, progress, cache_dir)

    def check_hmm(self, hmm: HMM) -> None:
        super().check_hmm(hmm)
        if hmm.tseq.dko != self.spec["dko"]:
            raise ValueError(f"LDEnSF was trained with {self.spec['dko']} model steps per observation "
                             f"interval, but this HMM ({hmm.name}) has dko={hmm.tseq.dko}")

    # -- conversions -----------------------------------------------------------------------------
    def encode(self, E: np.ndarray | torch.Tensor) -> torch.Tensor:
        """States ``(N, Nx)`` -> latent members ``(N, latent_dim + n_params)`` (standardised)."""
        X = E if isinstance(E, torch.Tensor) else as_tensor(E, self.device)
        return encode_states(self.nets["ldnet"], X, self.spec["n_field"])

    def decode(self, V: torch.Tensor, basis: torch.Tensor) -> np.ndarray:
        """Latent members ``(N, latent_dim + n_params)`` -> states ``(N, Nx)`` (numpy float64);
        ``basis`` from :meth:`FieldDecoder.basis` at the field's points."""
        return decode_states(self.nets["ldnet"], V, basis, self.training.latent_dim)

    def reconstruction_error(self, hmm: HMM, xx: np.ndarray, batch: int = 256) -> dict[str, np.ndarray]:
        r"""The autoencoder's floor: the error of ``decode(encode(x))`` for each state of ``xx``
        ``(K, Nx)`` (e.g. a truth at the observation times), which no analysis in the latent
        space can beat.

        Returns ``{"rmse", "rel_rmse", "param_err"}``, each ``(K,)``: the field's RMSE, its
        relative RMSE :math:`\sqrt{\mathrm{mean}(e^2)/\mathrm{mean}(x^2)}` over the field (the
        LD-EnSF reference code's metric, ``kolmogorov_flow/ldensf_assimilation.py``), and the RMS
        error of the parameters (``nan`` without parameters).
        """
        self.check_hmm(hmm)
        X = np.atleast_2d(np.asarray(xx, dtype=float))
        nf = self.spec["n_field"]
        for net in self.nets.values():
            net.eval()
        with torch.no_grad():
            basis = self.field_basis(hmm)
            R = np.concatenate([self.decode(self.encode(X[i:i + batch]), basis)
                                for i in range(0, len(X), batch)])
        e = R - X
        mse = np.mean(e[:, :nf] ** 2, axis=1)
        param = np.sqrt(np.mean(e[:, nf:] ** 2, axis=1)) if X.shape[1] > nf else np.full(len(X), np.nan)
        return {"rmse": np.sqrt(mse), "rel_rmse": np.sqrt(mse / np.mean(X[:, :nf] ** 2, axis=1)),
                "param_err": param}

    def field_basis(self, hmm: HMM) -> torch.Tensor:
        """The decoder's basis ``(n_field, r + 1)`` at the field components of ``hmm``'s states
        (:func:`~dafilters.filters.ldensf.latent.field_layout`)."""
        points = field_layout(hmm.dyn, self.spec["n_field"])[0]
        return self.nets["ldnet"].decoder.basis(as_tensor(points, self.device))

    def encode_history(self, ys: list[torch.Tensor]) -> torch.Tensor:
        """The LSTM's estimate ``(latent_dim + n_params,)`` from standardised observations."""
        return self.nets["lstm"](history_tensor(ys, self.training.history)[None])[0]

    def _run_cache(self, ctx: Context) -> dict:
        """Per-run data: the decoder basis at the field points, the analysis noise generators
        (two, seeded from the filter's stream when the run starts) and the observation history."""
        cache = ctx.cache.get("ldensf")
        if cache is None:
            gens = torch_generators(ctx, self.device, count=2, key="ldensf_generators")
            with torch.no_grad():
                basis = self.field_basis(ctx.hmm)
            cache = ctx.cache["ldensf"] = {"basis": basis, "gens": gens, "ys": []}
            for net in self.nets.values():
                net.eval()
        return cache

    # -- filter hooks ----------------------------------------------------------------------------
    def initialize(self, ctx: Context) -> LatentEnsemble:
        cache = self._run_cache(ctx)
        E = initial_ensemble(ctx, self.N)
        with torch.no_grad():
            V = self.encode(E)
            return LatentEnsemble(V, self.decode(V, cache["basis"]))

    def forecast(self, state: LatentEnsemble, ctx: Context, k0: int, k1: int) -> LatentEnsemble:
        intervals, rest = divmod(k1 - k0, self.spec["dko"])
        if rest:
            raise ValueError(f"LD-EnSF forecasts whole observation intervals ({self.spec['dko']} steps), "
                             f"not steps {k0}->{k1}")
        cache = self._run_cache(ctx)
        net, d = self.nets["ldnet"], self.training.latent_dim
        V = state.V
        with torch.no_grad(), torch_threads(small_problem_threads(V.numel())):
            for _ in range(intervals):
                u = latent_step(net, V, d)
                if self.model_noise > 0:
                    xi = as_tensor(ctx.rng.standard_normal(u.shape), self.device)
                    u = u + self.model_noise * net.q_std * xi
                V = torch.cat([u, V[:, d:]], 1)
            return LatentEnsemble(V, self.decode(V, cache["basis"]))

    def estimate(self, state: LatentEnsemble) -> np.ndarray:
        return state.E

    def analysis(self, state: LatentEnsemble, y: np.ndarray, ko: int, ctx: Context) -> LatentEnsemble:
        cache = self._run_cache(ctx)
        lstm = self.nets["lstm"]
        ys = cache["ys"]
        ys.append((as_tensor(y, self.device) - lstm.y_mean) / lstm.y_std)
        del ys[:-self.training.history]
        X = inflate(state.V, self.infl_f)
        with torch.no_grad(), torch_threads(1):
            v_hat = self.encode_history(ys)
            var = (self.obs_infl * lstm.resid_std) ** 2
            if self.likelihood_step == "implicit":
                V = implicit_latent_sample(X, v_hat, var, self.steps, self.eps_a, self.eps_b,
                                           self.prior_score, cache["gens"])
            else:
                score = partial(latent_score, v_hat=v_hat, var=var)
                V = ensf_sample(X, score, self.steps, self.eps_a, self.eps_b, self.prior_score, "sde", None,
                                cache["gens"])
            return LatentEnsemble(V, self.decode(V, cache["basis"]))
