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

The parts are defined in their own modules and importable from here: :class:`Chronology` and
:func:`streams` (:mod:`dafilters.chronology`), :class:`Dynamics` and :class:`LinearDynamics`
(:mod:`dafilters.dynamics`), :class:`Observation` and its array helpers
(:mod:`dafilters.observations.base`), :class:`Prior` and :class:`GaussPrior`
(:mod:`dafilters.prior`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .chronology import Chronology, streams
from .dynamics import Dynamics, LinearDynamics
from .identity import content_hash
from .observations.base import (
    Observation,
    as_like,
    autograd_grad_loglik,
    is_torch,
    noise_inverse,
    solve_noise,
)
from .prior import GaussPrior, Prior
from .public import set_public_module

__all__ = ["Chronology", "Dynamics", "LinearDynamics", "Observation", "Prior", "GaussPrior", "HMM", "streams",
           "is_torch", "as_like", "noise_inverse", "solve_noise", "autograd_grad_loglik"]

# Defined in the modules above, identified as members of this module (as before the split): see
# dafilters.public.
set_public_module(__name__, Chronology, streams, Dynamics, LinearDynamics, Observation, is_torch,
                  as_like, noise_inverse, solve_noise, autograd_grad_loglik, Prior, GaussPrior)


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
