"""The hidden Markov model (HMM): dynamics, observations, prior and time sequence.

A twin experiment draws a truth trajectory from the prior and the (stochastic) dynamics,

.. math::
    x_0 \\sim p(x_0), \\qquad x_{k} = \\mathcal{M}(x_{k-1}, t_{k-1}, dt) + \\sqrt{dt}\\, q_k,
    \\quad q_k \\sim N(0, Q),

and observes it at the observation steps ``k = kko[ko]``,

.. math::
    y_{ko} = \\mathcal{H}_{ko}(x_{kko[ko]}) + r_{ko}, \\qquad r_{ko} \\sim N(0, R_{ko}).

Shapes: states ``(Nx,)``, ensembles ``(N, Nx)``, truth ``xx`` ``(K+1, Nx)``, observations ``yy``
``(Ko+1, Ny)`` (a list of 1-D arrays if the observation size changes with ``ko``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from .gaussian import Covariance, GaussRV
from .identity import Identified, content_hash

__all__ = ["Chronology", "Dynamics", "LinearDynamics", "Observation", "Prior", "GaussPrior", "HMM", "streams"]


def streams(seed: int) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    """Independent random streams (truth, observations, filter) derived from one seed.

    The filter's stream never depends on how the truth was drawn, so every filter in a table sees
    the same truth and observations and its own reproducible randomness.
    """
    return tuple(np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))


class Chronology(Identified):
    """Model time steps and observation times.

    Regular observations: ``Chronology(dt, dko=..., Ko=...)`` (or ``T=`` or ``K=`` instead of
    ``Ko``) observes at steps ``kko = dko * (1, 2, ..., Ko+1)``, as in DAPPER: no observation at
    ``t = 0``, ``K = dko * (Ko + 1)`` model steps in all. Irregular observations: pass the
    observation steps ``kko`` (strictly increasing integers >= 1) or times ``tto`` (multiples of
    ``dt``) instead of ``dko``.

    Args:
        dt: model step.
        dko: model steps between observations.
        Ko: index of the last observation (there are ``Ko + 1`` of them).
        T: final time (alternative to ``Ko``); ``K``: number of model steps (alternative too).
        BurnIn: time before which statistics are not averaged.
        kko, tto: explicit observation steps or times.
    """

    def __init__(self, dt: float, dko: int | None = None, Ko: int | None = None,
                 T: float | None = None, K: int | None = None, BurnIn: float = 0.0,
                 kko: Sequence[int] | None = None, tto: Sequence[float] | None = None):
        if not dt > 0:
            raise ValueError(f"dt must be positive, got {dt}")
        self._args = dict(dt=dt, dko=dko, Ko=Ko, T=T, K=K, BurnIn=BurnIn, kko=kko, tto=tto)
        self.dt = float(dt)
        self.BurnIn = float(BurnIn)
        if tto is not None:
            if kko is not None:
                raise ValueError("give kko or tto, not both")
            steps = np.asarray(tto, dtype=float) / dt
            kko = np.rint(steps).astype(int)
            if not np.allclose(steps, kko, atol=1e-6):
                raise ValueError("observation times tto must be multiples of dt")
        if kko is not None:
            if dko is not None or Ko is not None:
                raise ValueError("give either explicit kko/tto or dko with Ko/T/K, not both")
            kko = np.asarray(kko, dtype=int)
            if kko.ndim != 1 or len(kko) == 0 or kko[0] < 1 or np.any(np.diff(kko) <= 0):
                raise ValueError("kko must be a non-empty, strictly increasing sequence of steps >= 1")
            self.kko = kko
            self.K = int(K if K is not None else kko[-1])
            if self.K < kko[-1]:
                raise ValueError(f"K={self.K} is before the last observation step {kko[-1]}")
            self.dko = None
        else:
            if dko is None or int(dko) < 1:
                raise ValueError("regular observations need dko >= 1 (or pass kko/tto)")
            self.dko = int(dko)
            given = [a is not None for a in (Ko, T, K)]
            if sum(given) != 1:
                raise ValueError("give exactly one of Ko, T, K")
            if T is not None:
                K = int(round(T / dt))
            if K is not None:
                Ko = K // self.dko - 1
            if Ko < 0:
                raise ValueError("the time sequence holds no observation")
            self.kko = self.dko * (1 + np.arange(int(Ko) + 1))
            self.K = int(self.kko[-1]) if K is None else int(K)
        self.Ko = len(self.kko) - 1
        self.tt = self.dt * np.arange(self.K + 1)
        self.tto = self.tt[self.kko]
        self.T = float(self.tt[-1])
        #: Observation times whose statistics enter the time averages (after burn-in).
        self.masko = self.tto > self.BurnIn
        if not self.masko.any():
            raise ValueError(f"BurnIn={BurnIn} leaves no observation time to average over")

    def copy(self, **changes) -> Chronology:
        """A new chronology with some arguments changed, e.g. ``tseq.copy(Ko=5000)``.

        Changing one of ``Ko``, ``T``, ``K`` drops the other two.
        """
        args = dict(self._args)
        if {"Ko", "T", "K"} & changes.keys():
            args.update(Ko=None, T=None, K=None)
        if {"kko", "tto"} & changes.keys():
            args.update(kko=None, tto=None, dko=None, Ko=None, T=None)
        args.update(changes)
        return Chronology(**args)

    def __repr__(self) -> str:
        if self.dko is not None:
            return (f"Chronology(dt={self.dt:g}, dko={self.dko}, Ko={self.Ko}, "
                    f"BurnIn={self.BurnIn:g})")
        return f"Chronology(dt={self.dt:g}, irregular, Ko={self.Ko}, K={self.K}, BurnIn={self.BurnIn:g})"

    def identity(self) -> dict:
        """What defines the time sequence: ``dt``, the observation steps ``kko``, ``K`` and
        ``BurnIn`` (however it was constructed: ``Ko``, ``T``, ``K``, ``kko`` or ``tto``)."""
        return {"dt": self.dt, "kko": self.kko, "K": self.K, "BurnIn": self.BurnIn}

    def fingerprint(self) -> str:
        """A content hash of the time sequence (stable across processes)."""
        return content_hash(self)


class Dynamics(Identified):
    """Model dynamics ``x_k = M(x_{k-1}, t, dt) + sqrt(dt) q``, ``q ~ N(0, Q)``.

    Subclass and override :meth:`step` (and :meth:`linear` where known), or pass the callables.

    Identity: the class and every instance attribute (the callables by their code and the values
    they capture; caches listed in ``identity_exclude``) enter :meth:`HMM.fingerprint` — see
    :class:`~dafilters.identity.Identified` for how a model declares what defines it.

    Args:
        Nx: state size.
        model: ``model(E, t, dt) -> E``, acting on ensembles ``(N, Nx)`` (and single states).
        noise: model-noise covariance ``Q`` per unit time (scalar, ``(Nx,)`` or ``(Nx, Nx)``);
            ``None`` or ``0`` for deterministic dynamics.
        linear: ``linear(x, t, dt) -> (Nx, Nx)``, the Jacobian of one step (Kalman filter, EKF).
        coords: positions of the state variables ``(Nx, d)`` for localization (default: a
            periodic ring, variable ``i`` at ``i``). domain: lengths of the periodic domain per
            axis (default ``(Nx,)``), or ``None`` for a non-periodic domain.
    """

    def __init__(self, Nx: int, model: Callable | None = None, noise=None,
                 linear: Callable | None = None, coords: np.ndarray | None = None,
                 domain: Sequence[float] | None | str = "ring"):
        self.Nx = int(Nx)
        self.coords = (np.arange(self.Nx, dtype=float)[:, None] if coords is None
                       else np.asarray(coords, dtype=float).reshape(self.Nx, -1))
        self.domain = (float(self.Nx),) if isinstance(domain, str) else domain
        self._model = model
        self._linear = linear
        if noise is None or (np.isscalar(noise) and noise == 0):
            self.noise: Covariance | None = None
        else:
            self.noise = Covariance(noise, self.Nx, name=f"model noise Q of {type(self).__name__}")

    def step(self, E: np.ndarray, t: float, dt: float) -> np.ndarray:
        """The deterministic part of one step, ``(N, Nx) -> (N, Nx)``."""
        if self._model is None:
            raise NotImplementedError(f"{type(self).__name__} defines no step()")
        return self._model(E, t, dt)

    def step_torch(self, X, t: float, dt: float):
        """:meth:`step` on a torch tensor ``(..., Nx)``, differentiable (for filters trained by
        unrolling the model, e.g. MNMEF). Models implement it where they can."""
        raise NotImplementedError(
            f"{type(self).__name__} has no torch step: implement step_torch() to train filters that "
            "unroll the model")

    def linear(self, x: np.ndarray, t: float, dt: float) -> np.ndarray:
        """Jacobian ``dM/dx`` at ``x``, shape ``(Nx, Nx)``."""
        if self._linear is None:
            raise NotImplementedError(f"{type(self).__name__} has no linearisation (linear=...)")
        return self._linear(x, t, dt)

    def forecast(self, E: np.ndarray, t: float, dt: float, rng: np.random.Generator) -> np.ndarray:
        """One stochastic step of an ensemble ``(N, Nx)``: ``step`` plus ``sqrt(dt) N(0, Q)``."""
        E = self.step(E, t, dt)
        if self.noise is not None:
            E = E + np.sqrt(dt) * self.noise.sample(E.shape[0], rng)
        return E


class LinearDynamics(Dynamics):
    """Linear dynamics ``x_k = M x_{k-1} + sqrt(dt) q`` with a fixed matrix ``M`` ``(Nx, Nx)``
    per model step."""

    def __init__(self, M: np.ndarray, noise=None):
        self.M = np.atleast_2d(np.asarray(M, dtype=float))
        super().__init__(self.M.shape[0], noise=noise)

    def step(self, E: np.ndarray, t: float, dt: float) -> np.ndarray:
        return E @ self.M.T

    def linear(self, x: np.ndarray, t: float, dt: float) -> np.ndarray:
        return self.M


class Observation(Identified):
    """Observation operator, noise and (optionally) locations; everything may depend on ``ko``.

    Identity: class and instance attributes (indices, operator, noise covariance), as for
    :class:`Dynamics`.

    Subclasses implement :meth:`h` and :meth:`Ny`, and :meth:`noise`; :meth:`linear` where the
    Jacobian is known (needed by the Kalman filter and OptInterp).
    """

    def Ny(self, ko: int) -> int:
        """Number of observations at observation time ``ko``."""
        raise NotImplementedError

    def h(self, E: np.ndarray, ko: int) -> np.ndarray:
        """Observation operator on an ensemble ``(N, Nx) -> (N, Ny)``."""
        raise NotImplementedError

    def noise(self, ko: int) -> Covariance:
        """Observation-error covariance ``R_ko``."""
        raise NotImplementedError

    def linear(self, x: np.ndarray, ko: int) -> np.ndarray:
        """Jacobian ``dH/dx`` at ``x``, shape ``(Ny, Nx)``."""
        raise NotImplementedError(f"{type(self).__name__} has no linearisation")

    def locations(self, ko: int, coords: np.ndarray) -> np.ndarray:
        """Positions ``(Ny, d)`` of the observations, given the state positions ``coords``
        ``(Nx, d)`` (needed by localized filters)."""
        raise NotImplementedError(f"{type(self).__name__} does not say where its observations sit, "
                                  "so it cannot be localized (implement locations())")

    def __call__(self, E: np.ndarray, ko: int) -> np.ndarray:
        E = np.asarray(E)
        if E.ndim == 1:
            return self.h(E[None], ko)[0]
        return self.h(E, ko)

    def sample(self, x: np.ndarray, ko: int, rng: np.random.Generator) -> np.ndarray:
        """A noisy observation ``y = h(x) + r`` of one state ``x`` ``(Nx,)``.

        Raises:
            ValueError: if ``h`` does not give ``Ny(ko)`` values, or ``noise(ko)`` has another
                size or is singular.
            TypeError: if ``noise(ko)`` is not a :class:`~dafilters.gaussian.Covariance`.
        """
        Ny = self.Ny(ko)
        hx = np.asarray(self(x, ko))
        if hx.shape != (Ny,):
            raise ValueError(f"observation operator {type(self).__name__} at ko={ko}: h(x) of one "
                             f"state has shape {hx.shape}, expected (Ny,) = ({Ny},) since Ny({ko}) = "
                             f"{Ny} (h must map an ensemble (N, Nx) to (N, Ny))")
        R = Covariance.check(self.noise(ko), Ny, f"observation noise R = {type(self).__name__}.noise({ko})")
        return hx + R.sample(1, rng)[0]

    def loglik(self, y: np.ndarray, E: np.ndarray, ko: int) -> np.ndarray:
        """Gaussian log-likelihood ``log p(y | x_n)`` for each member, shape ``(N,)``."""
        R = self.noise(ko)
        d = y - self.h(E, ko)
        return -0.5 * (R.mahalanobis2(d) + R.logdet + len(y) * np.log(2 * np.pi))

    def h_torch(self, X, ko: int):
        """The observation operator on a torch tensor ``(..., Nx) -> (..., Ny)``, written with
        differentiable torch operations (used by :meth:`grad_loglik`'s autograd fallback)."""
        raise NotImplementedError(
            f"{type(self).__name__} has no torch operator: implement h_torch() (or grad_loglik()) "
            "to use it with score-based filters, or wrap a torch function in TorchObs")

    def grad_loglik(self, y, X, ko: int):
        r"""Likelihood score :math:`\nabla_x \log p(y|x) = J_h(x)^T R^{-1} (y - h(x))` of a batch.

        This base version differentiates :meth:`h_torch` with torch autograd (a vector-Jacobian
        product with cotangent :math:`R^{-1}(y - h(x))`); subclasses override it where the
        gradient is known in closed form.

        Args:
            y: observation ``(Ny,)`` (numpy, or a tensor on the device of ``X``).
            X: states ``(..., Nx)``, a numpy array or a torch tensor.
            ko: observation time.

        Returns:
            The score, same shape and kind (numpy / torch, dtype, device) as ``X``.
        """
        return autograd_grad_loglik(self, y, X, ko)


def is_torch(X) -> bool:
    """Whether ``X`` is a torch tensor (checked without importing torch)."""
    return type(X).__module__.startswith("torch")


def as_like(a: np.ndarray, X):
    """The numpy array ``a`` as the array kind of ``X``: numpy, or a torch tensor with the dtype
    and device of ``X``. Conversions of arrays owned by long-lived objects (noise variances)
    are cached on the array's owner by :func:`noise_inverse`."""
    if not is_torch(X):
        return a
    import torch

    return torch.as_tensor(a, dtype=X.dtype, device=X.device)


def noise_inverse(R: Covariance, X):
    """``(kind, Rinv)``: ``("diag", 1/variances (Ny,))`` or ``("full", R^{-1} (Ny, Ny))`` as the
    array kind of ``X`` (numpy or torch, dtype, device), cached on ``R`` per dtype and device."""
    kind = "diag" if R.is_diag else "full"
    if not is_torch(X):
        return kind, (1 / R.diag if R.is_diag else R.inv)
    cache = R.__dict__.setdefault("_torch_inverse", {})
    key = (str(X.dtype), str(X.device))
    if key not in cache:
        cache[key] = as_like(1 / R.diag if R.is_diag else R.inv, X)
    return kind, cache[key]


def solve_noise(R: Covariance, D, X=None, inplace: bool = False):
    """Rows of ``D`` (``(..., Ny)``, numpy or torch) mapped by ``R^{-1}`` (``inplace``: a
    diagonal ``R`` overwrites ``D``, which saves a temporary at large sizes)."""
    kind, Rinv = noise_inverse(R, D if X is None else X)
    if kind == "diag":
        if inplace:
            D *= Rinv
            return D
        return D * Rinv
    return D @ Rinv


def autograd_grad_loglik(obs: Observation, y, X, ko: int):
    r""":math:`J_h(x)^T R^{-1}(y - h(x))` for a batch ``X`` ``(..., Nx)`` by torch autograd
    through ``obs.h_torch``. A numpy ``X`` is computed in float64 and returned as numpy."""
    import torch

    numpy_in = not is_torch(X)
    Xt = torch.as_tensor(X, dtype=torch.float64) if numpy_in else X
    with torch.enable_grad():
        Xg = Xt.detach().requires_grad_(True)
        Hx = obs.h_torch(Xg, ko)
        yt = y if is_torch(y) else torch.as_tensor(np.asarray(y), dtype=Hx.dtype, device=Hx.device)
        v = solve_noise(obs.noise(ko), (yt - Hx).detach(), Hx)
        (G,) = torch.autograd.grad(Hx, Xg, grad_outputs=v)
    return G.numpy() if numpy_in else G


class Prior(Identified):
    """Distribution of the initial state ``x_0``. Subclasses set ``Nx`` (the state size) and
    implement :meth:`sample`; their attributes define their identity, as for :class:`Dynamics`."""

    Nx: int

    def sample(self, N: int, rng: np.random.Generator) -> np.ndarray:
        """``N`` draws, shape ``(N, Nx)``."""
        raise NotImplementedError

    @property
    def mean(self) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} has no closed-form mean")

    @property
    def cov(self) -> Covariance:
        raise NotImplementedError(f"{type(self).__name__} has no closed-form covariance")


class GaussPrior(Prior):
    """Gaussian prior ``N(mu, C)``; ``mu`` of shape ``(Nx,)``, ``C`` as for :class:`Covariance`."""

    def __init__(self, mu, C=1.0, Nx: int | None = None):
        """``C`` may be singular (a prior that fixes some components exactly), not indefinite.

        Raises:
            ValueError: naming ``GaussPrior`` if ``mu`` or ``C`` does not have size ``Nx`` (or
                each other's size), or ``C`` is not a covariance (see :class:`Covariance`).
        """
        self.rv = GaussRV(mu, C, Nx, name="GaussPrior", semidefinite=True)
        self.Nx = self.rv.M

    def sample(self, N: int, rng: np.random.Generator) -> np.ndarray:
        return self.rv.sample(N, rng)

    @property
    def mean(self) -> np.ndarray:
        return self.rv.mu

    @property
    def cov(self) -> Covariance:
        return self.rv.C


@dataclasses.dataclass
class HMM:
    """A hidden Markov model for twin experiments.

    Args:
        dyn: the dynamics. obs: the observations. tseq: the time sequence. prior: ``p(x_0)``.
        name: a short name (e.g. ``"Lorenz96.sakov2008"``) shown in tables and used for caching.
    """

    dyn: Dynamics
    obs: Observation
    tseq: Chronology
    prior: Prior
    name: str = "HMM"

    def __post_init__(self):
        Nx = getattr(self.prior, "Nx", None)
        if Nx is None:
            raise TypeError(f"HMM {self.name!r}: the prior {type(self.prior).__name__} has no Nx; a "
                            "Prior subclass must set Nx (the state size), e.g. self.Nx = ... in "
                            "its __init__")
        if Nx != self.dyn.Nx:
            raise ValueError(f"HMM {self.name!r}: prior has size {Nx} but the dynamics have "
                             f"Nx={self.dyn.Nx}")

    @property
    def Nx(self) -> int:
        return self.dyn.Nx

    def replace(self, **changes) -> HMM:
        """A copy with some parts changed. ``tseq`` may be a dict of changes to the chronology,
        e.g. ``hmm.replace(tseq=dict(Ko=5000))``.

        Unless ``name`` is given, the name says what changed (``"Lorenz96.sakov2008 (Ko=5000)"``,
        ``"Lorenz96.sakov2008 (obs)"``), so tables tell the variants apart; caches never rely on
        the name (see :meth:`fingerprint`).
        """
        notes = [k for k in ("dyn", "obs", "prior") if k in changes]
        if isinstance(changes.get("tseq"), dict):
            notes += [f"{k}={v}" for k, v in changes["tseq"].items()]
            changes["tseq"] = self.tseq.copy(**changes["tseq"])
        elif "tseq" in changes:
            notes.append("tseq")
        if "name" not in changes and notes:
            changes["name"] = f"{self.name} ({', '.join(notes)})"
        return dataclasses.replace(self, **changes)

    def parts(self) -> dict[str, str]:
        """Content hashes of the parts: ``{"dyn", "obs", "prior", "tseq"}`` (see :meth:`fingerprint`)."""
        return {part: content_hash(getattr(self, part), path=f"{self.name}.{part}")
                for part in ("dyn", "obs", "prior", "tseq")}

    def fingerprint(self) -> str:
        """The identity of the experiment setting: a SHA-256 content hash (hex) of the dynamics
        (class and parameters), the observations (operator, indices, noise covariance), the prior
        and the chronology (``dt``, ``kko``, ``K``, ``BurnIn``). The name is not part of it.

        Runs, twin experiments, trained models, training data and tuning studies are keyed on it.
        A model part that cannot be identified raises :class:`~dafilters.identity.Unhashable`.
        """
        return content_hash(self.parts())

    def simulate(self, seed: int = 0) -> tuple[np.ndarray, np.ndarray | list[np.ndarray]]:
        """Truth ``xx`` ``(K+1, Nx)`` and observations ``yy`` ``(Ko+1, Ny)`` of a twin experiment.

        ``yy`` is a list of 1-D arrays if the observation size varies with ``ko``.
        """
        rng_x, rng_y, _ = streams(seed)
        tseq = self.tseq
        xx = np.empty((tseq.K + 1, self.Nx))
        x = self.prior.sample(1, rng_x)
        xx[0] = x[0]
        for k in range(1, tseq.K + 1):
            x = self.dyn.forecast(x, tseq.tt[k - 1], tseq.dt, rng_x)
            xx[k] = x[0]
        if not np.all(np.isfinite(xx)):
            k = int(np.argmin(np.isfinite(xx).all(axis=1)))
            raise FloatingPointError(f"{self.name}: the truth trajectory is not finite (first at "
                                     f"step k={k}, t={tseq.tt[k]:g})")
        yy = [np.asarray(self.obs.sample(xx[k], ko, rng_y)) for ko, k in enumerate(tseq.kko)]
        for ko, y in enumerate(yy):  # also for operators that override Observation.sample
            Ny = self.obs.Ny(ko)
            if y.shape != (Ny,):
                raise ValueError(f"{self.name}: {type(self.obs).__name__}.sample gives observation "
                                 f"yy[{ko}] of shape {y.shape}, expected (Ny,) = ({Ny},)")
            if not np.all(np.isfinite(y)):
                raise FloatingPointError(f"{self.name}: observation yy[{ko}] is not finite")
        if len({len(y) for y in yy}) == 1:
            yy = np.array(yy)
        return xx, yy

    def __repr__(self) -> str:
        return f"HMM({self.name!r}, Nx={self.Nx}, {self.tseq!r})"
