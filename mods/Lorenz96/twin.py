"""Twin experiments whose truth is not drawn like the filters' ensemble: a fixed initial truth and
jumps ("shocks") of the truth that the filters' model does not know.

:class:`TwinHMM` is an :class:`~dafilters.hmm.HMM` whose :meth:`~TwinHMM.simulate` starts the
truth from ``truth_x0`` (instead of a draw from ``prior``, which still gives the filters' initial
ensemble) and steps it with ``truth_dyn`` (instead of ``dyn``, which the filters still forecast
with). Both enter :meth:`~TwinHMM.fingerprint`, so runs and caches of a twin setting are kept apart
from those of the plain setting. Everything that uses ``hmm.simulate`` (``Experiments``, the CLI,
the benchmarks) gets the twin truth.

:class:`ShockedDynamics` is a dynamics with scheduled relative jumps, as the EnSF reference code's
shock scenario (``fine_tune_EnSF/run_all_EnSF.ipynb`` of github.com/zezhongzhang/EnSF): after model
step ``k`` of a schedule entry ``(k, size)`` the state gets ``x += size * |x| * N(0, I)``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from dafilters.hmm import HMM, Dynamics, Prior
from dafilters.identity import content_hash

__all__ = ["TwinHMM", "ShockedDynamics", "PointPrior"]


class PointPrior(Prior):
    """The point mass at ``x0``: every draw is ``x0``."""

    def __init__(self, x0):
        self.x0 = np.array(x0, dtype=float).ravel()
        super().__init__(Nx=len(self.x0))

    def sample(self, N: int, rng: np.random.Generator) -> np.ndarray:
        return np.tile(self.x0, (N, 1))

    @property
    def mean(self) -> np.ndarray:
        return self.x0.copy()


class ShockedDynamics(Dynamics):
    """``base`` with relative jumps at scheduled model steps.

    Args:
        base: the dynamics between jumps.
        shocks: ``((k, size), ...)``: after model step ``k`` (``k = 1`` is the first step, from
            ``t = 0`` to ``dt``), ``x += size * |x| * xi``, ``xi ~ N(0, I)`` per component, drawn
            from the stream of the step (the truth's, in a twin experiment).
        dt: the model step (to tell the step index from the time ``t`` of :meth:`forecast`).
    """

    def __init__(self, base: Dynamics, shocks, dt: float):
        self.base = base
        self.shocks = tuple((int(k), float(s)) for k, s in shocks)
        if any(k < 1 or s < 0 for k, s in self.shocks):
            raise ValueError("shocks are (k >= 1, size >= 0) pairs")
        self.dt = float(dt)
        self._sizes = dict(self.shocks)
        self.Nx = base.Nx
        self.__dict__["coords"] = base.__dict__.get("coords")
        self.domain = base.domain
        self.noise = base.noise

    identity_exclude = ("_sizes",)

    def step(self, E, t, dt):
        return self.base.step(E, t, dt)

    def forecast(self, E: np.ndarray, t: float, dt: float, rng: np.random.Generator) -> np.ndarray:
        E = self.base.forecast(E, t, dt, rng)
        size = self._sizes.get(int(round(t / self.dt)) + 1, 0.0)
        if size > 0:
            E = E + size * np.abs(E) * rng.standard_normal(E.shape)
        return E


@dataclasses.dataclass(repr=False)
class TwinHMM(HMM):
    """An HMM whose truth starts at ``truth_x0`` (``None``: a draw from ``prior``) and follows
    ``truth_dyn`` (``None``: ``dyn``); the filters see ``prior`` and ``dyn`` only."""

    truth_x0: np.ndarray | None = None
    truth_dyn: Dynamics | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.truth_x0 is not None:
            self.truth_x0 = np.array(self.truth_x0, dtype=float).ravel()
            if self.truth_x0.shape != (self.Nx,):
                raise ValueError(f"truth_x0 has shape {self.truth_x0.shape}, expected ({self.Nx},)")
        if self.truth_dyn is not None and self.truth_dyn.Nx != self.Nx:
            raise ValueError("truth_dyn has another state size than dyn")

    def parts(self) -> dict[str, str]:
        parts = super().parts()
        parts["truth"] = content_hash({"x0": self.truth_x0, "dyn": self.truth_dyn},
                                      path=f"{self.name}.truth")
        return parts

    def simulate(self, seed: int = 0):
        plain = HMM(dyn=self.truth_dyn if self.truth_dyn is not None else self.dyn, obs=self.obs,
                    tseq=self.tseq,
                    prior=PointPrior(self.truth_x0) if self.truth_x0 is not None else self.prior,
                    name=self.name)
        return plain.simulate(seed)
