r"""Kolmogorov flow with sparse velocity probes and an unknown Reynolds number, as in LD-EnSF
(Xiao, Si & Chen, "LD-EnSF: Synergizing latent dynamics with ensemble score filters for fast
data assimilation with sparse observations", ICLR 2026).

**State** ``(n * n + 1,)`` (:class:`mods.Kolmogorov.KolmogorovRe`): the vorticity field on the
``n x n`` grid of :math:`[0, 2\pi)^2` (row-major), then :math:`\log Re`. Each state flows with its
own viscosity :math:`\nu = 1/Re`; :math:`\log Re` is constant in time and unknown to the filters,
which estimate it with the flow (forcing wavenumber 4, drag 0.1, as in :mod:`mods.Kolmogorov`).

**Observations** (:class:`~dafilters.observations.VelocityProbesObs`): both velocity components
:math:`u = \partial_y\psi`, :math:`v = -\partial_x\psi` (:math:`\Delta\psi = -\omega`) at a
regular ``10 x 10`` lattice of probes :math:`(2\pi i/10, 2\pi j/10)`, ``Ny = 200`` (all
:math:`u`, then all :math:`v`), with Gaussian noise ``sigma = 0.1`` (the velocity's RMS is about
1). The operator is linear in the vorticity (spectral differentiation of the field's
trigonometric interpolant, exact between grid points too) and says where each observation sits
(``locations``: the probe), so LETKF localizes with radii in the domain's units.

**Prior.** :math:`Re \sim U(500, 1500)` (the LD-EnSF data set's range), and the vorticity is a
spun-up state :math:`x_s` (:func:`mods.Kolmogorov.spun_up_state`, 50 time units at
:math:`Re = 1000`) plus a small smooth zero-mean random field of RMS ``vort_std = 0.1`` (the
vorticity's RMS is about 4.6) with its energy near wavenumber 4 (the forcing scale). As in the
paper's data, where every trajectory starts from one initial condition and only :math:`Re` varies,
the initial flow is nearly known and the Reynolds number is the main unknown; the flow's chaos
then spreads trajectories (and members) apart within a few time units. Truth and ensemble members
are drawn from the prior independently. A larger ``vort_std`` (e.g. 1) makes the states explore
the whole attractor, which a latent model trained on a few dozen trajectories does not cover.

**The reference's regime** (``build(vort_std=0)``): every trajectory (truth, members, training
data) starts from the one spun-up state and only :math:`Re` varies, as the LD-EnSF reference's
data (``kolmogorov_flow/data_generation.py`` of github.com/pengpeng-xiao/ld-ensf: one
``filtered_velocity_field`` from ``PRNGKey(42)``, ``Re ~ U(500, 1500)``, each trajectory spun up
at its own Re) -- a one-parameter family, easier for a latent model than the default
``vort_std = 0.1``. The reference scores the *relative* RMSE ``sqrt(mean(e^2) / mean(x^2))`` of the
field (``kolmogorov_flow/ldensf_assimilation.py``), beside the floor ``decode(encode(truth))`` of
its autoencoder (its ``rmse_state_orig``; here ``LDEnSF.reconstruction_error``).

**Time.** Model step :func:`~mods.Kolmogorov.stable_dt` (0.01 at ``n = 64``), observations every
0.2 time units (``dko = 20`` at ``n = 64``), ``Ko = 39`` (40 cycles, 8 time units: the length of
the paper's trajectories), the first 10 cycles are burn-in (the flow adjusts to its own Reynolds
number within a few time units).

Differences from the paper's experiment: the paper's reference data are velocity fields on a
150 x 150 grid from jax-cfd's finite-volume solver, all trajectories from one initial condition
spun up at their own :math:`Re` for 4 time units, states every 0.04 time units; here the state is
the vorticity of the pseudo-spectral solver on 64 x 64, initial states are drawn close to one
spun-up state (spun up at Re = 1000), and observations come every 0.2. No filter RMSE of the
paper is stated here.
"""

from __future__ import annotations

import numpy as np

from dafilters.hmm import HMM as _HMM
from dafilters.hmm import Chronology, Prior
from dafilters.observations import VelocityProbesObs

from . import WAVENUMBER, KolmogorovRe, spun_up_state, stable_dt

__all__ = ["build", "ReynoldsPrior", "smooth_fields", "HMM", "DT_OBS", "RE_RANGE"]

#: Time between observations.
DT_OBS = 0.2
#: The prior's range of Reynolds numbers.
RE_RANGE = (500.0, 1500.0)


def smooth_fields(n: int, N: int, rng: np.random.Generator, peak: float = WAVENUMBER,
                  rms: float = 1.0) -> np.ndarray:
    r"""``N`` random zero-mean fields ``(N, n * n)`` with their energy near wavenumber ``peak``:
    white noise filtered in Fourier space by :math:`\exp(-(|k| - k_p)^2/8)` (:math:`|k|` in cycles
    per :math:`2\pi`), each scaled to the root-mean-square ``rms``."""
    white = rng.standard_normal((N, n, n))
    kx = np.fft.fftfreq(n, 1.0 / n)[:, None]
    ky = np.fft.rfftfreq(n, 1.0 / n)[None, :]
    w_hat = np.fft.rfft2(white) * np.exp(-((np.hypot(kx, ky) - peak) ** 2) / 8.0)
    w_hat[:, 0, 0] = 0.0
    w = np.fft.irfft2(w_hat, s=(n, n)).reshape(N, n * n)
    return rms * w / w.std(axis=1, keepdims=True)


class ReynoldsPrior(Prior):
    r"""Initial states ``(n * n + 1,)``: vorticity :math:`x_s + \xi`, :math:`\xi` from
    :func:`smooth_fields` (RMS ``vort_std``), then :math:`\log Re` with :math:`Re \sim U(a, b)`.

    Args:
        center: the vorticity field :math:`x_s` ``(n * n,)``. re_range: ``(a, b)``.
        vort_std: RMS of the perturbation of the vorticity.
    """

    def __init__(self, center: np.ndarray, re_range: tuple[float, float] = RE_RANGE, vort_std: float = 0.1):
        self.center = np.asarray(center, dtype=float)
        self.n = int(round(np.sqrt(self.center.size)))
        if self.n * self.n != self.center.size:
            raise ValueError(f"center of size {self.center.size} is not an n x n field")
        a, b = (float(r) for r in re_range)
        if not 0 < a < b:
            raise ValueError(f"re_range must be 0 < a < b, got {re_range!r}")
        if not vort_std >= 0:
            raise ValueError(f"vort_std must be >= 0, got {vort_std!r}")
        self.re_range, self.vort_std = (a, b), float(vort_std)
        self.Nx = self.center.size + 1

    def sample(self, N: int, rng: np.random.Generator) -> np.ndarray:
        E = np.empty((N, self.Nx))
        E[:, :-1] = self.center + smooth_fields(self.n, N, rng, rms=self.vort_std)
        E[:, -1] = np.log(rng.uniform(*self.re_range, size=N))
        return E

    @property
    def mean(self) -> np.ndarray:
        """:math:`(x_s, E[\\log Re])` with :math:`E[\\log Re] = (b\\log b - a\\log a)/(b - a) - 1`."""
        a, b = self.re_range
        return np.append(self.center, (b * np.log(b) - a * np.log(a)) / (b - a) - 1.0)


def build(n: int = 64, probes: int = 10, sigma: float = 0.1, Ko: int = 39, dko: int | None = None,
          re_range: tuple[float, float] = RE_RANGE, vort_std: float = 0.1, on_grid: bool = False,
          precision: str = "float64") -> _HMM:
    """The setting on an ``n x n`` grid with a ``probes x probes`` lattice of velocity probes.

    Args:
        n: grid points per direction (``Nx = n * n + 1``). probes: probes per direction
            (``Ny = 2 * probes**2``). sigma: observation noise std of each velocity component.
        Ko: index of the last observation. dko: model steps per observation interval (default:
            ``0.2 / stable_dt(n)``, 20 up to ``n = 64``).
        re_range: the prior's range of Reynolds numbers. vort_std: RMS of the prior's vorticity
            perturbation. on_grid: move the probes to the nearest grid points.
        precision: jax arithmetic, ``"float64"`` or ``"float32"``.
    """
    dko = int(np.ceil(DT_OBS / stable_dt(n) - 1e-9)) if dko is None else int(dko)
    return _HMM(
        dyn=KolmogorovRe(n, precision=precision),
        obs=VelocityProbesObs(n, sigma**2, probes=probes, on_grid=on_grid, n_params=1),
        tseq=Chronology(DT_OBS / dko, dko=dko, Ko=Ko, BurnIn=DT_OBS * min(10, Ko // 2)),
        prior=ReynoldsPrior(spun_up_state(n), re_range, vort_std),
        name=(f"Kolmogorov.xiao2026(n={n}, probes={probes}, sigma={sigma:g}, "
              f"Re={re_range[0]:g}-{re_range[1]:g}"
              + (f", vort_std={vort_std:g}" if vort_std != 0.1 else "")
              + (", on_grid" if on_grid else "") + (", float32" if precision == "float32" else "") + ")"),
    )


HMM = build()
