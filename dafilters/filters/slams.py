r"""SLAMS: score-based latent assimilation with several observation modalities.

After Qu, Nathaniel, Li & Gentine (2024), "Deep generative data assimilation in multimodal
setting" (arXiv 2404.06665), which runs SDA (:mod:`dafilters.filters.sda`) in the latent space
of an autoencoder that reads the background state together with every observation modality.

**Inputs on the state grid.** Each modality :math:`m` (an operator of a
:class:`~dafilters.multimodal.MultiObs`) is regridded onto the state grid,
:math:`g_m = y_m G_m` with :math:`G_m = \mathrm{diag}(|H_m|^T 1)^{-1} H_m^T`
(:func:`~dafilters.multimodal.regrid_matrix`), and comes with its mask :math:`c_m \in \{0,1\}^{N_x}`.
With states standardised by the climatological mean and spread, the encoder input is the stack of
``2 + 2M`` channels on the grid

.. math:: u = \big[\bar x_b,\ s_b,\ g_1 \odot c_1,\ c_1,\ \dots,\ g_M \odot c_M,\ c_M\big],

the background mean and spread (the forecast ensemble's) and each modality with its mask; a
modality that is not observed has :math:`g_m = c_m = 0`.

**Autoencoder** (MLPs for 1-D states, convolutional networks with circular padding and two
stride-2 levels for 2-D fields): a state encoder :math:`z^\star = E_x(x)` and a decoder
:math:`D(z)` form the latent space of states; an observation encoder maps the background and the
modalities into the same space, :math:`(\mu, \log v) = E(u)`: a latent observation of the truth's
latent :math:`z^\star(x)` with its (standardised) variance. Trained on states :math:`x` of simulated
trajectories, with backgrounds :math:`\bar x_b = x + s\,\xi` (:math:`s \sim U(0, s_{\max})`, the
spread channel set to :math:`s`) and each modality dropped with probability :math:`p`:

.. math:: \mathcal L = \lVert D(E_x(x)) - x\rVert^2
    + \lambda\,\overline{\Big(\frac{(\mu - [z^\star])^2}{v\,[\varsigma]^2} + \log v\Big)},

with :math:`[\cdot]` stopping gradients and :math:`\varsigma` the batch spread of :math:`z^\star`
per component (the likelihood term is measured in the latent's own scale, so it cannot be made
small by shrinking the latent). :math:`v` knows which modalities were there and how good the
background was. (A single encoder that also had to decode :math:`\mu` to the state was tried
first: the two aims conflict, since an uncertain :math:`\mu` must then decode to a posterior mean
rather than to a state on the attractor.)

**Latent prior.** Latents :math:`z^\star` of trajectories at the observation times are standardised per
component and an SDA denoiser (:class:`~dafilters.filters.sda.LocalDenoiser`) is trained on
windows of :math:`2k+1` consecutive ones by denoising score matching with SDA's cosine schedule.

**Analysis** at observation time ``ko``: encode the forecast mean and spread with the modalities
present, :math:`(z^o_{ko}, v_{ko})`; sample latent trajectories of the last ``window`` observation
times with SDA's guided sampler (:func:`~dafilters.filters.sda.guided_sample`) under

.. math:: \log p(z^o \mid z_t) \approx \sum_j \log N\big(z^o_j \mid \hat z_0[j],\
    v_j + \gamma(\sigma_t/\mu_t)^2\big)

over the encoded observations :math:`j` inside the window (plus, with ``pixel_guidance``, SDA's
likelihood of the raw modalities through the decoder at the last time); the analysis ensemble is
the decoded last latent state of each sample. The forecast is the model's.

Missing modalities (a :class:`~dafilters.multimodal.MultiObs` whose modality is not sampled at
``ko``, or an HMM with a modality dropped by ``obs.without(name)``) enter as zero channels, as in
training; a modality the model was not trained with is refused with a clear error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..hmm import HMM, Observation
from ..multimodal import MultiObs, regrid_matrix
from ..nn.data import simulate_at_obs, split, windows
from ..nn.nets import MLP, small_problem_threads, torch_threads
from ..nn.training import TrainConfig, fit_model
from .base import Context, check_ensemble_size, check_positive
from .learned import LearnedFilter, hmm_spec
from .sda import (
    GridDenoiser,
    LocalDenoiser,
    check_window,
    compose_windows,
    dsm_objective,
    guided_sample,
    standardisation,
)

__all__ = ["SLAMS", "MLPAutoencoder", "ConvAutoencoder", "modalities_of", "encoder_input",
           "latent_loglik"]

#: The name of the single modality of an HMM whose observation is not a MultiObs.
SINGLE = "obs"


def modalities_of(obs: Observation) -> dict[str, Observation]:
    """``{name: operator}``: the modalities of a MultiObs, or ``{"obs": obs}``."""
    if isinstance(obs, MultiObs):
        return {n: m.obs for n, m in obs.modalities.items()}
    return {SINGLE: obs}


def present_parts(obs: Observation, y: np.ndarray, ko: int) -> dict[str, np.ndarray]:
    """``{name: y_m}`` of the modalities observed at ``ko``."""
    if isinstance(obs, MultiObs):
        return obs.split(np.asarray(y), ko)
    return {SINGLE: np.asarray(y)}


def encoder_input(bg: torch.Tensor, spread: torch.Tensor, fields: list[torch.Tensor | None],
                  masks: list[torch.Tensor]) -> torch.Tensor:
    """The channels ``(B, 2 + 2M, Nx)``: background, spread, then ``g_m * c_m, c_m`` per modality.

    Args:
        bg, spread: ``(B, Nx)`` (standardised). fields: per trained modality ``(B, Nx)``
            standardised regridded values, or ``None`` if absent. masks: ``(B, Nx)`` per modality
            (0 where absent or dropped).
    """
    chans = [bg, spread]
    for g, c in zip(fields, masks):
        c = c.expand_as(bg)
        chans += [torch.zeros_like(bg) if g is None else g * c, c]
    return torch.stack(chans, 1)


class MLPAutoencoder(nn.Module):
    """For 1-D states: ``encode`` ``(B, C, Nx) -> (mu, logv)`` each ``(B, d)``; ``decode``
    ``(B, d) -> (B, Nx)``. Buffers ``z_mean``, ``z_std`` ``(d,)`` standardise the latents."""

    def __init__(self, Nx: int, channels: int, latent_dim: int, width: int = 256):
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.enc_x = MLP(Nx, latent_dim, width, 2)
        self.enc = MLP(channels * Nx, 2 * latent_dim, width, 2)
        self.dec = MLP(latent_dim, Nx, width, 2)
        self.register_buffer("z_mean", torch.zeros(latent_dim))
        self.register_buffer("z_std", torch.ones(latent_dim))

    def encode_state(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`z^\\star(x)`: the latent ``(B, d)`` of standardised states ``(B, Nx)``."""
        return self.enc_x(x)

    def encode(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The latent observation ``(mu, log v)`` of encoder inputs ``(B, C, Nx)``."""
        mu, logv = self.enc(u.flatten(1)).chunk(2, -1)
        return mu, logv.clamp(-12, 8)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.dec(z)


def _conv(c_in: int, c_out: int, k: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, stride, padding=(k - 1) // 2 if stride == 1 else 1,
                     padding_mode="circular")


class ConvAutoencoder(nn.Module):
    """For 2-D periodic fields ``(n0, n1)`` (both divisible by 4): two stride-2 convolution
    levels to a latent of ``latent_channels x n0/4 x n1/4``, flattened to ``(B, d)``; the decoder
    mirrors it with nearest upsampling. Same interface as :class:`MLPAutoencoder`."""

    def __init__(self, shape: tuple[int, int], channels: int, latent_channels: int, width: int = 32):
        super().__init__()
        n0, n1 = shape
        if n0 % 4 or n1 % 4:
            raise ValueError(f"the convolutional autoencoder needs grid sizes divisible by 4, got {shape}")
        self.shape, self.lat_shape = (n0, n1), (latent_channels, n0 // 4, n1 // 4)
        self.latent_dim = latent_channels * (n0 // 4) * (n1 // 4)
        w = int(width)
        act = nn.SiLU
        def encoder(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(_conv(c_in, w), act(), _conv(w, 2 * w, 4, 2), act(),
                                 _conv(2 * w, 2 * w, 4, 2), act(), _conv(2 * w, c_out))

        self.enc_x = encoder(1, latent_channels)
        self.enc = encoder(channels, 2 * latent_channels)
        self.dec = nn.Sequential(_conv(latent_channels, 2 * w), act(), nn.Upsample(scale_factor=2),
                                 _conv(2 * w, w), act(), nn.Upsample(scale_factor=2), _conv(w, w), act(),
                                 _conv(w, 1))
        self.register_buffer("z_mean", torch.zeros(self.latent_dim))
        self.register_buffer("z_std", torch.ones(self.latent_dim))

    def encode_state(self, x: torch.Tensor) -> torch.Tensor:
        return self.enc_x(x.unflatten(-1, self.shape)[:, None]).flatten(1)

    def encode(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.enc(u.unflatten(-1, self.shape))
        mu, logv = h.chunk(2, 1)
        return mu.flatten(1), logv.flatten(1).clamp(-12, 8)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.dec(z.unflatten(-1, self.lat_shape)).flatten(1)


def latent_loglik(z0: torch.Tensor, pos: list[int], zo: list[torch.Tensor], vo: list[torch.Tensor],
                  gamma: float, sigma: float, mu: float) -> torch.Tensor:
    r""":math:`\sum_j \log N(z^o_j \mid \hat z_0[:, p_j],\ v_j + \gamma(\sigma/\mu)^2)` summed
    over the batch (constants dropped). ``z0`` ``(B, L, d)``; ``zo[j]``, ``vo[j]`` ``(d,)``."""
    total = z0.new_zeros(())
    for p, z, v in zip(pos, zo, vo):
        total = total - 0.5 * ((z - z0[:, p]) ** 2 / (v + gamma * (sigma / mu) ** 2)).sum()
    return total


@dataclass
class SLAMS(LearnedFilter):
    """Score-based latent assimilation with several modalities (see the module docstring).

    Args:
        N: ensemble size. k: half-width of the latent windows (``2k+1`` observation times).
        window: observation times in the sliding latent window (``>= 2k+1``).
        gamma, steps, corrections, tau: SDA's likelihood inflation and sampler settings.
        latent_dim: latent size of the MLP autoencoder (1-D states).
        latent_channels: latent channels of the convolutional one (2-D fields; the latent size is
            ``latent_channels * n0 * n1 / 16``).
        ae_width: hidden width of the autoencoder (MLP units, or the first level's channels).
        width, depth: the latent denoiser's MLP (units, layers); ``depth`` is also the number of
            residual blocks of the convolutional one.
        denoiser: ``"mlp"`` (:class:`~dafilters.filters.sda.LocalDenoiser`), ``"conv"``
            (:class:`~dafilters.filters.sda.GridDenoiser` on the latent grid of the convolutional
            autoencoder) or ``"auto"``: conv for 2-D fields, MLP otherwise. On a 64 x 64
            Kolmogorov latent (4 x 16 x 16) the MLP's 256 units cannot carry windows of
            3 x 1024 numbers: its denoising loss stayed at 0.96 (a linear denoiser of Gaussian
            data reaches about 0.5).
        conv_width: channels of the convolutional denoiser.
        bg_max: largest background error (climatological spreads) drawn in training.
        p_drop: probability of dropping each modality in training.
        nll_weight: the weight :math:`\\lambda` of the latent likelihood term.
        spread_infl, spread_min: the forecast spread handed to the encoder is inflated by
            ``spread_infl`` and at least ``spread_min`` climatological spreads (an ensemble that
            underestimates its error would otherwise make the encoder ignore the observations).
        pixel_guidance: also guide by the raw modalities through the decoder (slower).
        n_traj, epochs, batch_size, lr, minutes: training (``ae_share`` of the time for the
            autoencoder, the rest for the denoiser). seed, device.
    """

    skip_empty_analysis: ClassVar[bool] = False  # every observation time enters its history

    N: int = 32
    k: int = 1
    window: int = 5
    gamma: float = 0.1
    steps: int = 32
    corrections: int = 1
    tau: float = 0.1
    latent_dim: int = 48
    latent_channels: int = 4
    ae_width: int = 256
    width: int = 256
    depth: int = 3
    denoiser: str = "auto"
    conv_width: int = 48
    bg_max: float = 1.0
    p_drop: float = 0.3
    nll_weight: float = 0.01
    spread_infl: float = 1.5
    spread_min: float = 0.1
    pixel_guidance: bool = True
    n_traj: int = 16
    epochs: int = 200
    batch_size: int = 256
    lr: float = 1e-3
    minutes: float = 10.0
    ae_share: float = 0.6
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self):
        check_ensemble_size(self.N)
        check_window(self.k, self.window)
        check_positive(self, "gamma", "tau", "lr", "minutes", "latent_dim", "latent_channels", "bg_max",
                       "conv_width")
        if self.denoiser not in ("auto", "mlp", "conv"):
            raise ValueError(f"unknown SLAMS denoiser {self.denoiser!r}: use 'auto', 'mlp' or 'conv'")
        if not 0 <= self.p_drop < 1 or not 0 < self.ae_share < 1:
            raise ValueError(f"need 0 <= p_drop < 1 and 0 < ae_share < 1, got p_drop={self.p_drop}, "
                             f"ae_share={self.ae_share}")

    # -- spec, networks, checks -----------------------------------------------------------------
    def spec_for(self, hmm: HMM) -> dict[str, Any]:
        spec = hmm_spec(hmm)
        mods = modalities_of(hmm.obs)
        train_hmm = self._training_hmm(hmm)
        xx, _ = simulate_at_obs(train_hmm, 1, seed=self.seed + 1)
        spec["mean"] = xx[0].mean(0).tolist()
        spec["std"] = np.maximum(xx[0].std(0), 1e-6).tolist()
        spec["modalities"] = {n: int(o.Ny(0)) for n, o in mods.items()}
        spec["grid"] = self._grid(hmm)
        return spec

    @staticmethod
    def _grid(hmm: HMM) -> list[int] | None:
        """``[n0, n1]`` for a 2-D field state on a square grid (a 2-D domain), else ``None``."""
        dom = hmm.dyn.domain
        n = int(round(math.sqrt(hmm.Nx)))
        if dom is not None and len(dom) == 2 and n * n == hmm.Nx and n % 4 == 0:
            return [n, n]
        return None

    @staticmethod
    def _training_hmm(hmm: HMM) -> HMM:
        """The HMM with every modality observed at every time (fixed ``Ny`` for training data)."""
        return hmm.replace(obs=hmm.obs.always()) if isinstance(hmm.obs, MultiObs) else hmm

    def build(self, spec: dict[str, Any]) -> dict[str, nn.Module]:
        channels = 2 + 2 * len(spec["modalities"])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            if spec.get("grid"):
                ae = ConvAutoencoder(tuple(spec["grid"]), channels, self.latent_channels,
                                     max(8, self.ae_width // 8))
            else:
                ae = MLPAutoencoder(spec["Nx"], channels, self.latent_dim, self.ae_width)
            if self.denoiser == "conv" and not spec.get("grid"):
                raise ValueError("SLAMS's 'conv' denoiser needs a 2-D field state (a square grid on a "
                                 "2-D domain, sides divisible by 4)")
            if spec.get("grid") and self.denoiser != "mlp":
                den = GridDenoiser(ae.lat_shape, self.k, self.conv_width, self.depth)
            else:
                den = LocalDenoiser(ae.latent_dim, self.k, self.width, self.depth)
        return {"ae": ae.to(self.device), "denoiser": den.to(self.device)}

    def check_hmm(self, hmm: HMM) -> None:
        """Untrained, another state size, a modality the model was not trained with, or a
        modality of another size: a clear error. Fewer modalities than in training is fine."""
        if not self.trained:
            raise RuntimeError("SLAMS is not trained: call .fit(hmm) or Filter.load(path) first")
        if hmm.Nx != self.spec["Nx"]:
            raise ValueError(f"SLAMS was trained for {self.spec['name']} with Nx={self.spec['Nx']}, "
                             f"but this HMM ({hmm.name}) has Nx={hmm.Nx}")
        trained = self.spec["modalities"]
        for name, o in modalities_of(hmm.obs).items():
            if name not in trained:
                raise ValueError(f"SLAMS was trained with the modalities {sorted(trained)}; this HMM "
                                 f"observes {name!r}, which the model has never seen: retrain it with "
                                 "fit(hmm), or drop that modality (obs.without(name))")
            ny = o.Ny(0)
            if ny != trained[name]:
                raise ValueError(f"modality {name!r} has Ny={ny} here but Ny={trained[name]} in training")

    # -- data helpers ----------------------------------------------------------------------------
    def _regrid(self, hmm: HMM, ko: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """``{name: (G (Ny, Nx), mask (Nx,))}`` per modality of ``hmm``."""
        out = {}
        for name, o in modalities_of(hmm.obs).items():
            G, c = regrid_matrix(o, hmm.Nx, ko)
            out[name] = (torch.as_tensor(G, dtype=torch.float32, device=self.device),
                         torch.as_tensor(c, dtype=torch.float32, device=self.device))
        return out

    def _fields(self, parts: dict[str, torch.Tensor], regrid, keep: torch.Tensor | None = None
                ) -> tuple[list, list]:
        """Standardised regridded fields and masks ``(B, Nx)`` per trained modality (``keep``
        ``(B, M)``: 0 drops a modality for a sample)."""
        mean, std = standardisation(self.spec, self.device)
        fields, masks = [], []
        for i, name in enumerate(self.spec["modalities"]):
            if name not in parts:
                fields.append(None)
                masks.append(torch.zeros(1, self.spec["Nx"], device=self.device))
                continue
            G, c = regrid[name]
            g = (parts[name] @ G - mean) / std
            m = c.expand_as(g) if keep is None else c * keep[:, i:i + 1]
            fields.append(g)
            masks.append(m)
        return fields, masks

    # -- training ----------------------------------------------------------------------------------
    def train(self, hmm: HMM, progress: bool | None = None, cache_dir=None) -> dict[str, Any]:
        """Autoencoder on (background, modalities) -> state, then the latent denoiser."""
        train_hmm = self._training_hmm(hmm)
        xx, yy = simulate_at_obs(train_hmm, self.n_traj, seed=self.seed, cache_dir=cache_dir)
        mean, std = (t.cpu() for t in standardisation(self.spec, self.device))
        X = (torch.as_tensor(xx[:, 1:], dtype=torch.float32) - mean) / std  # (n_traj, T, Nx)
        parts = present_parts(train_hmm.obs, yy, 0)
        Y = [torch.as_tensor(parts[n], dtype=torch.float32) for n in self.spec["modalities"]]
        rng = np.random.default_rng(self.seed)
        if self.n_traj > 1:
            itr, ival = split(self.n_traj, 0.15, rng)
            pick = lambda A, idx: A[idx].flatten(0, 1)  # noqa: E731
            tr = [pick(A, itr) for A in (X, *Y)]
            va = [pick(A, ival) for A in (X, *Y)]
        else:
            flat = [A.flatten(0, 1) for A in (X, *Y)]
            itr, ival = split(len(flat[0]), 0.1, rng)
            tr, va = [A[itr] for A in flat], [A[ival] for A in flat]
        ae, den = self.nets["ae"], self.nets["denoiser"]
        regrid = self._regrid(train_hmm)
        names = list(self.spec["modalities"])
        gen = torch.Generator().manual_seed(self.seed)
        dev = self.device

        def ae_loss(batch):
            g = gen if ae.training else torch.Generator().manual_seed(self.seed + 7)  # fixed val
            x, *ys = (b.to(dev) for b in batch)
            B = x.shape[0]
            s = self.bg_max * torch.rand(B, 1, generator=g).to(dev)
            bg = x + s * torch.randn(x.shape, generator=g).to(dev)
            keep = (torch.rand(B, len(names), generator=g) >= self.p_drop).float().to(dev)
            fields, masks = self._fields(dict(zip(names, ys)), regrid, keep)
            mu, logv = ae.encode(encoder_input(bg, s.expand_as(x), fields, masks))
            z_true = ae.encode_state(x)
            scale = z_true.detach().std(0).clamp(min=1e-3)
            r2 = ((mu - z_true.detach()) / scale) ** 2
            nll = (r2 * torch.exp(-logv) + logv).mean()
            return ((ae.decode(z_true) - x) ** 2).mean() + self.nll_weight * nll

        seconds = 60 * self.minutes
        cfg = TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, patience=20,
                          seed=self.seed, progress=progress, max_seconds=self.ae_share * seconds)
        h_ae = fit_model([ae], ae_loss, tr, va, cfg)
        ae.eval()
        # latents of the true states, standardised
        with torch.no_grad():
            flat = X.flatten(0, 1).to(dev)
            Z = torch.cat([ae.encode_state(flat[i:i + 4096]) for i in range(0, len(flat), 4096)])
            ae.z_mean.copy_(Z.mean(0))
            ae.z_std.copy_(Z.std(0).clamp(min=1e-4))
            Z = ((Z - ae.z_mean) / ae.z_std).cpu().unflatten(0, X.shape[:2]).numpy()
        W = torch.as_tensor(windows(Z, 2 * self.k + 1, 1))
        wtr, wval = split(len(W), 0.1, rng)
        cfg2 = TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, patience=20,
                           seed=self.seed, progress=progress,
                           max_seconds=max(1.0, seconds - h_ae.seconds))
        den_loss, val = dsm_objective(den, W[wval], gen, dev)  # validation noise drawn once
        h_den = fit_model([den], den_loss, (W[wtr],), val, cfg2)
        return {"train_loss": h_den.train, "val_loss": h_den.val, "ae_train_loss": h_ae.train,
                "ae_val_loss": h_ae.val, "stopped": f"ae: {h_ae.stopped}; denoiser: {h_den.stopped}",
                "best_epoch": h_den.best_epoch, "windows": len(W), "latent_dim": ae.latent_dim}

    # -- assimilation --------------------------------------------------------------------------
    def encode_observation(self, hmm: HMM, E: np.ndarray, y: np.ndarray, ko: int, regrid=None
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        """The latent observation ``(z^o, v)`` ``(d,)`` each (standardised latent units) of the
        forecast ensemble ``E`` ``(N, Nx)`` and the modalities present at ``ko`` in ``y``."""
        ae = self.nets["ae"].eval()
        mean, std = standardisation(self.spec, self.device)
        Et = torch.as_tensor(E, dtype=torch.float32, device=self.device)
        bg = ((Et.mean(0) - mean) / std)[None]
        spread = (Et.std(0) / std * self.spread_infl).clamp(min=self.spread_min)[None]
        parts = {n: torch.as_tensor(v, dtype=torch.float32, device=self.device)[None]
                 for n, v in present_parts(hmm.obs, y, ko).items()}
        fields, masks = self._fields(parts, regrid if regrid is not None else self._regrid(hmm, ko))
        with torch.no_grad():
            mu, logv = ae.encode(encoder_input(bg, spread, fields, masks))
        return (mu[0] - ae.z_mean) / ae.z_std, torch.exp(logv[0])

    def decode(self, z: torch.Tensor) -> np.ndarray:
        """States ``(B, Nx)`` (numpy float64, physical units) of standardised latents ``(B, d)``."""
        ae = self.nets["ae"]
        mean, std = standardisation(self.spec, self.device)
        return (ae.decode(z * ae.z_std + ae.z_mean) * std + mean).detach().double().cpu().numpy()

    def initialize(self, ctx: Context) -> np.ndarray:
        return ctx.hmm.prior.sample(self.N, ctx.rng)

    def analysis(self, E: np.ndarray, y: np.ndarray, ko: int, ctx: Context) -> np.ndarray:
        hmm = ctx.hmm
        if "slams" not in ctx.cache:
            gen = torch.Generator().manual_seed(int(ctx.rng.integers(2**63)))
            ctx.cache["slams"] = {"hist": [], "gen": gen, "regrid": {}}
        run = ctx.cache["slams"]
        regrid = self._regrid_cached(run["regrid"], hmm, ko)
        with torch_threads(small_problem_threads(self.N * self.window * self.nets["ae"].latent_dim * 64)):
            zo, vo = self.encode_observation(hmm, E, y, ko, regrid)
            run["hist"] = (run["hist"] + [(ko, zo, vo)])[-self.window:]
            first = ko - self.window + 1
            pos = [j - first for j, _, _ in run["hist"]]
            log_lik = self._log_lik(hmm, y, ko, pos, [h[1] for h in run["hist"]], [h[2] for h in run["hist"]])
            den = self.nets["denoiser"].eval()
            d = self.nets["ae"].latent_dim
            z = guided_sample(lambda x, t: compose_windows(den, x, t, self.k), (self.N, self.window, d),
                              log_lik, self.steps, self.corrections, self.tau, run["gen"])
            return self.decode(z[:, -1])

    def _regrid_cached(self, cache: dict, hmm: HMM, ko: int):
        """Regridding maps, recomputed only when a modality's observed set changes with ``ko``."""
        key = tuple((n, o.Ny(ko), o.indices(ko).tobytes() if hasattr(o, "indices") else None)
                    for n, o in modalities_of(hmm.obs).items())
        if key not in cache:
            if len(cache) > 16:
                cache.clear()
            cache[key] = self._regrid(hmm, ko)
        return cache[key]

    def _log_lik(self, hmm: HMM, y: np.ndarray, ko: int, pos: list[int], zo: list, vo: list):
        """The guidance: latent observations in the window (and the raw modalities at ``ko``)."""
        if not self.pixel_guidance or len(y) == 0:
            return lambda z0, t, mu, sigma: latent_loglik(z0, pos, zo, vo, self.gamma, sigma, mu)
        obs = hmm.obs
        R_var = torch.as_tensor(obs.noise(ko).diag, dtype=torch.float32, device=self.device)
        yt = torch.as_tensor(np.asarray(y), dtype=torch.float32, device=self.device)
        ae = self.nets["ae"]
        mean, std = standardisation(self.spec, self.device)

        def log_lik(z0, t, mu, sigma):
            X = ae.decode(z0[:, -1] * ae.z_std + ae.z_mean) * std + mean
            var = R_var + self.gamma * (sigma / mu) ** 2 * std.mean() ** 2
            pix = -0.5 * ((yt - obs.h_torch(X, ko)) ** 2 / var).sum()
            return latent_loglik(z0, pos, zo, vo, self.gamma, sigma, mu) + pix

        return log_lik
