r"""Two-dimensional Kolmogorov flow on the periodic square, integrated by jax-cfd.

The vorticity :math:`\omega = \partial_x v - \partial_y u` of an incompressible flow on
:math:`[0, 2\pi)^2` obeys

.. math::
    \partial_t \omega + \mathbf u \cdot \nabla \omega = \nu \Delta \omega - \alpha\, \omega
        - k_f \cos(k_f y), \qquad \mathbf u = (\partial_y \psi, -\partial_x \psi),\quad
        \Delta \psi = -\omega,

driven by the Kolmogorov forcing :math:`\mathbf f = (\sin(k_f y), 0)` (whose curl is the last
term) with wavenumber :math:`k_f = 4`, linear drag :math:`\alpha = 0.1` and viscosity
:math:`\nu = 10^{-3}` (Reynolds number :math:`Re = 1/\nu = 1000`), as in jax-cfd's Kolmogorov
examples (Kochkov et al. 2021) and the SDA paper's experiment.

It is solved by jax-cfd's pseudo-spectral solver (``jax_cfd.spectral``):
``equations.NavierStokes2D`` with ``forcings.kolmogorov_forcing`` (2/3-rule de-aliasing of the
advection) stepped by ``time_stepping.crank_nicolson_rk4`` (a low-storage RK4 for the advection
and forcing, Crank–Nicolson for the viscous and drag terms).

**State layout.** A state is the vorticity on the ``n x n`` grid
:math:`(x_i, y_j) = (2\pi i / n, 2\pi j / n)`, ``i`` along jax-cfd's first axis (:math:`x`),
flattened row-major: component ``i * n + j`` holds :math:`\omega(x_i, y_j)`, ``Nx = n * n``.
Ensembles are numpy float64 arrays ``(N, Nx)`` (any leading shape ``(..., Nx)`` is accepted).
``Dynamics.coords`` ``(Nx, 2)`` are the grid positions :math:`(x_i, y_j)` in the domain's own
units (so localization radii are lengths, the same at any resolution) and ``Dynamics.domain`` is
``(2 pi, 2 pi)`` (periodic).

The mean vorticity of a periodic flow (its circulation over the domain) is zero: each step
removes the mean of its input and keeps the Fourier mode :math:`\hat\omega_{00}` at zero, so any
state, e.g. an analysis, is mapped to a zero-mean one.

The whole ensemble is advanced in one call of a ``jax.jit``-compiled ``jax.vmap`` over members,
compiled once per (resolution, dt, parameters, precision) and ensemble size. jax is imported
when a model is built, not when this module is imported (install with the ``kolmogorov`` extra:
``pip install -c constraints.txt -e '.[kolmogorov]'``). The computation runs in float64 by default
(inside ``jax.experimental.enable_x64``, which leaves jax's global setting alone) or in float32
(``precision="float32"``, about twice as fast on a CPU); the states handed back are float64.
jax does not survive ``fork`` once started: ``Experiments.run(workers=k)`` and ``tune`` therefore
start their workers from a fork server or by spawning when jax is loaded (jax itself warns at a
fork), and a model that ran jax in a process refuses to run in a child forked from it, raising
an error instead of deadlocking.

**Unknown Reynolds number.** :class:`KolmogorovRe` appends the log-Reynolds number
:math:`\log Re` (:math:`\nu = 1/Re`) to the vorticity as one more state component, constant in
time, so that each member of an ensemble flows with its own viscosity (a ``jax.vmap`` over the
members and their viscosities, :func:`advance_visc_fn`) and filters estimate the parameter with
the state.

References: Kochkov, Smith, Alieva, Wang, Brenner, Hoyer, "Machine learning-accelerated
computational fluid dynamics", PNAS 118 (2021); Rozet & Louppe, "Score-based data
assimilation", NeurIPS 2023 (arXiv 2306.10574).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from functools import lru_cache

import numpy as np

from dafilters.extras import import_extra
from dafilters.hmm import Dynamics

__all__ = ["Kolmogorov", "KolmogorovRe", "advance_visc_fn", "VISCOSITY", "DRAG", "WAVENUMBER", "L",
           "grid_coords", "advance_fn", "navier_stokes",
           "precision_context", "random_vorticity", "spun_up_state", "stable_dt", "as_fields"]

#: Viscosity (``Re = 1 / VISCOSITY``), linear drag, forcing wavenumber and domain length.
VISCOSITY, DRAG, WAVENUMBER, L = 1e-3, 0.1, 4, 2 * np.pi

PRECISIONS = ("float64", "float32")


def _jax():
    """Import jax and jax-cfd, with a helpful message when they are missing."""
    jax = import_extra("jax", "kolmogorov", "mods.Kolmogorov")
    import_extra("jax_cfd", "kolmogorov", "mods.Kolmogorov")
    return jax


def precision_context(precision: str) -> contextlib.AbstractContextManager:
    """A context in which jax computes in ``precision`` (``"float64"``: x64 enabled, else
    disabled), without touching jax's global setting."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    _jax()
    from jax.experimental import disable_x64, enable_x64

    return enable_x64() if precision == "float64" else disable_x64()


def grid_coords(n: int) -> np.ndarray:
    """Positions ``(n * n, 2)`` of the grid points, row-major: row ``i * n + j`` is
    :math:`(2\\pi i / n, 2\\pi j / n)`."""
    x = L * np.arange(n) / n
    X, Y = np.meshgrid(x, x, indexing="ij")
    return np.stack([X.ravel(), Y.ravel()], axis=1)


def as_fields(E: np.ndarray, n: int | None = None) -> np.ndarray:
    """States ``(..., n * n)`` as fields ``(..., n, n)`` (a view; ``[..., i, j]`` is
    :math:`\\omega(x_i, y_j)`)."""
    E = np.asarray(E)
    n = int(round(np.sqrt(E.shape[-1]))) if n is None else int(n)
    if n * n != E.shape[-1]:
        raise ValueError(f"states of size {E.shape[-1]} are not n x n fields with n={n}")
    return E.reshape(*E.shape[:-1], n, n)


def navier_stokes(n: int, viscosity: float = VISCOSITY, drag: float = DRAG,
                  wavenumber: int = WAVENUMBER):
    """jax-cfd's ``spectral.equations.NavierStokes2D`` for Kolmogorov flow on an ``n x n`` grid of
    :math:`[0, 2\\pi)^2`: forcing :math:`(\\sin(k_f y), 0)` at the grid points (offsets 0, as
    in jax-cfd's ``ForcedNavierStokes2D``), 2/3-rule de-aliasing. Build it inside the
    :func:`precision_context` it will run in (its wavenumber arrays take that precision)."""
    _jax()
    from jax_cfd.base import forcings, grids
    from jax_cfd.spectral import equations

    grid = grids.Grid((n, n), domain=((0, L), (0, L)))

    def forcing_fn(g):
        return forcings.kolmogorov_forcing(g, k=wavenumber, offsets=((0, 0), (0, 0)))

    return equations.NavierStokes2D(viscosity, grid, drag=drag, smooth=True, forcing_fn=forcing_fn)


@lru_cache(maxsize=32)
def advance_fn(n: int, dt: float, viscosity: float = VISCOSITY, drag: float = DRAG,
               wavenumber: int = WAVENUMBER, precision: str = "float64") -> Callable:
    """The compiled ensemble integrator ``advance(W, m) -> W`` (cached per arguments).

    ``W`` ``(B, n, n)``: vorticity fields (a jax array of the precision's dtype); ``m``: number
    of ``crank_nicolson_rk4`` steps of size ``dt`` (traced, so any ``m`` reuses the compiled
    code). Per member: :math:`\\hat\\omega = \\mathrm{rfft2}(\\omega)` with
    :math:`\\hat\\omega_{00} = 0`, ``m`` steps each followed by :math:`\\hat\\omega_{00} = 0`,
    then ``irfft2``. ``jax.vmap`` over the members, ``jax.jit`` over the whole; call it inside
    ``precision_context(precision)``.
    """
    jax = _jax()
    import jax.numpy as jnp
    from jax_cfd.spectral import time_stepping

    with precision_context(precision):
        step = time_stepping.crank_nicolson_rk4(navier_stokes(n, viscosity, drag, wavenumber), dt)

    def zero_mean(w_hat):
        return w_hat.at[0, 0].set(0.0)

    def member(w, m):
        w_hat = zero_mean(jnp.fft.rfft2(w))
        w_hat = jax.lax.fori_loop(0, m, lambda _, s: zero_mean(step(s)), w_hat)
        return jnp.fft.irfft2(w_hat, s=(n, n))

    return jax.jit(jax.vmap(member, in_axes=(0, None)))


@lru_cache(maxsize=32)
def advance_visc_fn(n: int, dt: float, drag: float = DRAG, wavenumber: int = WAVENUMBER,
                    precision: str = "float64") -> Callable:
    r"""As :func:`advance_fn`, with one viscosity per member: ``advance(W, nu, m) -> W`` for
    fields ``W`` ``(B, n, n)`` and viscosities ``nu`` ``(B,)``. The viscosity enters jax-cfd's
    equation only through its linear term :math:`\nu \Delta - \alpha`, so the equation is built
    inside the traced member function and ``jax.vmap`` maps it over ``(W, nu)``."""
    jax = _jax()
    import jax.numpy as jnp
    from jax_cfd.spectral import time_stepping

    def zero_mean(w_hat):
        return w_hat.at[0, 0].set(0.0)

    def member(w, nu, m):
        step = time_stepping.crank_nicolson_rk4(navier_stokes(n, nu, drag, wavenumber), dt)
        w_hat = zero_mean(jnp.fft.rfft2(w))
        w_hat = jax.lax.fori_loop(0, m, lambda _, s: zero_mean(step(s)), w_hat)
        return jnp.fft.irfft2(w_hat, s=(n, n))

    return jax.jit(jax.vmap(member, in_axes=(0, 0, None)))


def _advance(E: np.ndarray, m: int, n: int, dt: float, viscosity: float, drag: float,
             wavenumber: int, precision: str) -> np.ndarray:
    """``m`` steps of states ``(..., n * n)`` (numpy) by :func:`advance_fn`; float64 out."""
    E = np.asarray(E, dtype=float)
    if E.shape[-1] != n * n:
        raise ValueError(f"Kolmogorov({n}x{n}) states have size {n * n}, got {E.shape[-1]}")
    fn = advance_fn(n, float(dt), float(viscosity), float(drag), int(wavenumber), precision)
    import jax.numpy as jnp

    with precision_context(precision):
        W = jnp.asarray(E.reshape(-1, n, n), dtype=jnp.float64 if precision == "float64" else jnp.float32)
        out = np.array(fn(W, int(m)), dtype=np.float64)  # a writable float64 copy
    return out.reshape(E.shape)


def _advance_visc(E: np.ndarray, nu: np.ndarray, m: int, n: int, dt: float, drag: float,
                  wavenumber: int, precision: str) -> np.ndarray:
    """``m`` steps of fields ``E`` ``(B, n * n)`` with viscosities ``nu`` ``(B,)``; float64 out."""
    fn = advance_visc_fn(n, float(dt), float(drag), int(wavenumber), precision)
    import jax.numpy as jnp

    with precision_context(precision):
        dtype = jnp.float64 if precision == "float64" else jnp.float32
        W = jnp.asarray(E.reshape(-1, n, n), dtype=dtype)
        out = np.array(fn(W, jnp.asarray(nu, dtype=dtype), int(m)), dtype=np.float64)
    return out.reshape(E.shape)


class _JaxModel(Dynamics):
    """A model whose steps run jax. jax's runtime is multithreaded and does not survive ``fork``:
    a model that ran in one process refuses to run in a child forked from it (the call would
    deadlock). The model holds the process it ran in (``_jax_pid``): not part of its identity,
    and not pickled, so a copy sent to a spawned worker or a fork server's child starts afresh."""

    identity_exclude = ("_jax_pid",)
    #: The process in which this model ran jax (``None``: not yet).
    _jax_pid: int | None = None

    def _claim_process(self) -> None:
        """Raise in a process forked after this model ran jax in its parent; else note this one."""
        pid = os.getpid()
        if self._jax_pid is not None and self._jax_pid != pid:
            raise RuntimeError(f"mods.Kolmogorov: this process was forked after {type(self).__name__} "
                               "had run jax in its parent, and jax cannot run here (it would "
                               "deadlock); start workers with multiprocessing's 'spawn' or "
                               "'forkserver' method, or over MPI")
        self._jax_pid = pid

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_jax_pid"}


class Kolmogorov(_JaxModel):
    r"""Kolmogorov-flow vorticity on an ``n x n`` grid of :math:`[0, 2\pi)^2` (see the module).

    ``step(E, t, dt)`` advances states ``(N, n * n)`` (or ``(..., n * n)``, numpy) by one
    ``crank_nicolson_rk4`` step of size ``dt``; the whole ensemble in one compiled call. The
    time ``t`` is unused (the flow is autonomous). A stable step at ``n = 64`` and
    :math:`\nu = 10^{-3}` is ``dt <= 0.02`` (``0.01`` keeps the relative error over 0.2 time units
    about ``2e-5``); finer grids need proportionally smaller steps (CFL).

    Args:
        n: grid points per direction (``Nx = n * n``).
        viscosity: :math:`\nu` (``Re = 1/\nu``). drag: linear drag :math:`\alpha`.
        wavenumber: forcing wavenumber :math:`k_f`.
        precision: ``"float64"`` or ``"float32"`` for jax's arithmetic (states are float64 either
            way).
        noise: model-noise covariance per unit time (as for :class:`~dafilters.hmm.Dynamics`).
    """

    def __init__(self, n: int = 64, viscosity: float = VISCOSITY, drag: float = DRAG,
                 wavenumber: int = WAVENUMBER, precision: str = "float64", noise=None):
        if int(n) < 4:
            raise ValueError(f"Kolmogorov needs n >= 4, got {n}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        _jax()
        self.n = int(n)
        super().__init__(self.n * self.n, noise=noise, coords=grid_coords(self.n), domain=(L, L))
        self.viscosity, self.drag = float(viscosity), float(drag)
        self.wavenumber, self.precision = int(wavenumber), precision

    def advance(self, E: np.ndarray, dt: float, steps: int, t: float = 0.0) -> np.ndarray:
        """``steps`` deterministic steps of size ``dt`` in one compiled call, ``(..., Nx)`` (the
        flow is autonomous: ``t`` is unused)."""
        self._claim_process()
        return _advance(E, steps, self.n, dt, self.viscosity, self.drag, self.wavenumber, self.precision)

    def step(self, E: np.ndarray, t: float, dt: float) -> np.ndarray:
        return self.advance(E, dt, 1)

    def __repr__(self) -> str:
        return (f"Kolmogorov(n={self.n}, viscosity={self.viscosity:g}, drag={self.drag:g}, "
                f"wavenumber={self.wavenumber}, precision={self.precision!r})")


def stable_dt(n: int) -> float:
    """A safe model step for an ``n x n`` grid: ``0.01`` up to ``n = 64``, then ``0.64 / n``
    (the advective CFL number stays about 0.3 at the flow's speeds, up to about 3)."""
    return 0.01 * min(1.0, 64 / n)


def random_vorticity(n: int, seed: int = 0, peak: float = WAVENUMBER, rms: float = 1.0) -> np.ndarray:
    r"""A random zero-mean vorticity field ``(n * n,)`` with energy near wavenumber ``peak``.

    White noise from ``numpy.random.default_rng(seed)`` filtered in Fourier space by
    :math:`\exp(-(|k| - k_p)^2 / 8)` (wavenumbers :math:`|k|` in cycles per :math:`2\pi`), its
    mean removed, scaled to the root-mean-square ``rms``.
    """
    white = np.random.default_rng(seed).standard_normal((n, n))
    kx = np.fft.fftfreq(n, 1.0 / n)[:, None]
    ky = np.fft.rfftfreq(n, 1.0 / n)[None, :]
    w_hat = np.fft.rfft2(white) * np.exp(-((np.hypot(kx, ky) - peak) ** 2) / 8.0)
    w_hat[0, 0] = 0.0
    w = np.fft.irfft2(w_hat, s=(n, n))
    return (rms * w / w.std()).ravel()


@lru_cache(maxsize=8)
def spun_up_state(n: int = 64, seed: int = 0, T: float = 50.0, dt: float | None = None,
                  viscosity: float = VISCOSITY, drag: float = DRAG, wavenumber: int = WAVENUMBER,
                  precision: str = "float64") -> np.ndarray:
    """A vorticity state ``(n * n,)`` on the attractor, for use as a prior mean: the
    :func:`random_vorticity` of ``seed`` integrated for ``T`` time units with step ``dt``
    (default :func:`stable_dt`) in one compiled loop. Cached per arguments, returned read-only."""
    dt = stable_dt(n) if dt is None else dt
    dyn = Kolmogorov(n, viscosity, drag, wavenumber, precision)
    x = dyn.advance(random_vorticity(n, seed), dt, int(round(T / dt)))
    x.setflags(write=False)
    return x


class KolmogorovRe(_JaxModel):
    r"""Kolmogorov flow whose Reynolds number is part of the state (unknown to the filters).

    **State layout** ``(..., n * n + 1)``: the vorticity field (row-major, as for
    :class:`Kolmogorov`), then :math:`\log Re`. A step advances each state's vorticity with its
    own viscosity :math:`\nu = e^{-\log Re}` (one compiled ``vmap`` over the members and their
    viscosities) and keeps :math:`\log Re` unchanged. ``coords`` are the grid positions, and the
    parameter component sits at the domain's centre :math:`(\pi, \pi)` (a localized filter
    then updates it from the observations within its radius of the centre).

    Args:
        n: grid points per direction (``Nx = n * n + 1``).
        drag, wavenumber, precision, noise: as for :class:`Kolmogorov` (``noise`` may not perturb
            the parameter component unless wanted: give
            ``Covariance(q, semidefinite=True)`` with a zero last entry of ``q``; a plain vector
            with a zero variance is refused as a singular covariance).
        re_bounds: the Reynolds numbers a state may have; values outside are clipped into this
            range before a step (an analysis may push an ensemble member beyond the prior's range).
    """

    n_params = 1

    def __init__(self, n: int = 64, drag: float = DRAG, wavenumber: int = WAVENUMBER,
                 precision: str = "float64", noise=None, re_bounds: tuple[float, float] = (100.0, 1e4)):
        if int(n) < 4:
            raise ValueError(f"KolmogorovRe needs n >= 4, got {n}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        lo, hi = (float(b) for b in re_bounds)
        if not 0 < lo < hi:
            raise ValueError(f"re_bounds must be 0 < low < high, got {re_bounds!r}")
        _jax()
        self.n = int(n)
        coords = np.vstack([grid_coords(self.n), [[L / 2, L / 2]]])
        super().__init__(self.n * self.n + 1, noise=noise, coords=coords, domain=(L, L))
        self.drag, self.wavenumber, self.precision = float(drag), int(wavenumber), precision
        self.log_re_bounds = (float(np.log(lo)), float(np.log(hi)))

    def advance(self, E: np.ndarray, dt: float, steps: int, t: float = 0.0) -> np.ndarray:
        """``steps`` deterministic steps of size ``dt`` in one compiled call, ``(..., n*n + 1)``
        (the flow is autonomous: ``t`` is unused)."""
        self._claim_process()
        E = np.asarray(E, dtype=float)
        if E.shape[-1] != self.Nx:
            raise ValueError(f"KolmogorovRe({self.n}x{self.n}) states have size {self.Nx}, got {E.shape[-1]}")
        flat = E.reshape(-1, self.Nx)
        log_re = np.clip(flat[:, -1], *self.log_re_bounds)
        out = np.empty_like(flat)
        out[:, :-1] = _advance_visc(flat[:, :-1], np.exp(-log_re), steps, self.n, dt, self.drag,
                                    self.wavenumber, self.precision)
        out[:, -1] = flat[:, -1]
        return out.reshape(E.shape)

    def step(self, E: np.ndarray, t: float, dt: float) -> np.ndarray:
        return self.advance(E, dt, 1)

    def __repr__(self) -> str:
        return (f"KolmogorovRe(n={self.n}, drag={self.drag:g}, wavenumber={self.wavenumber}, "
                f"precision={self.precision!r})")
