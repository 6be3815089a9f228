"""The time sequence of a twin experiment (:class:`Chronology`) and its random streams.

Part of the hidden Markov model (:mod:`dafilters.hmm`, which re-exports every name here).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .identity import Identified, content_hash

__all__ = ["Chronology", "streams"]


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


