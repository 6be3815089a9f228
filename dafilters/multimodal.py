r"""Several observation modalities in one HMM: a named collection of operators.

A :class:`MultiObs` stacks modalities ``m = 1..M``, each an ordinary
:class:`~dafilters.hmm.Observation` with its own operator, noise and time sampling
(:class:`Modality`). At observation time ``ko`` the modalities present, :math:`P_{ko}`, are
observed together:

.. math::  y_{ko} = \begin{pmatrix} h_{m_1}(x) \\ \vdots \\ h_{m_p}(x) \end{pmatrix} + r,\qquad
           r \sim N\big(0,\ \mathrm{blockdiag}(R_{m_1}, \dots, R_{m_p})\big),\qquad
           m_1 < \dots < m_p \in P_{ko},

so the modalities' errors are independent and the likelihood score is the sum of theirs,
:math:`\nabla_x \log p(y|x) = \sum_{m \in P_{ko}} J_{h_m}^T R_m^{-1}(y_m - h_m(x))`.

**Missing modalities.** A modality that is not observed at ``ko`` is simply left out of ``y_ko``:
the observation size ``Ny(ko)`` then changes with ``ko`` and ``HMM.simulate`` returns ``yy`` as a
list of 1-D arrays, the existing convention for irregular and missing observations (no NaN
placeholders). Every filter therefore runs unchanged on the stacked operator; a filter that wants
the modalities one by one (SLAMS) asks :meth:`MultiObs.present` which are there and
:meth:`MultiObs.split` for their parts of ``y``. A time with no modality at all has ``Ny = 0``.

Shapes: states ``(..., Nx)``; ``h`` maps ``(N, Nx) -> (N, Ny(ko))``; locations ``(Ny(ko), d)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from .gaussian import Covariance
from .hmm import Observation, is_torch
from .localization import as_points
from .observations import AvgPoolObs

__all__ = ["Modality", "MultiObs", "BlockMeanObs", "stack_noise", "regrid_matrix"]


@dataclass(frozen=True)
class Modality:
    """One observation modality: an operator and when it is observed.

    Args:
        obs: the operator, noise and locations (any :class:`~dafilters.hmm.Observation`).
        every: observed at the observation times ``ko`` with ``ko % every == offset``.
        offset: see ``every`` (``0 <= offset < every``).
        when: a callable ``ko -> bool`` instead of ``every``/``offset`` (irregular sampling).
    """

    obs: Observation
    every: int = 1
    offset: int = 0
    when: Callable[[int], bool] | None = None

    def __post_init__(self):
        if not isinstance(self.obs, Observation):
            raise TypeError(f"a modality needs an Observation, got {type(self.obs).__name__}")
        if int(self.every) < 1 or not 0 <= int(self.offset) < int(self.every):
            raise ValueError(f"need every >= 1 and 0 <= offset < every, got every={self.every}, "
                             f"offset={self.offset}")

    def at(self, ko: int) -> bool:
        """Whether the modality is observed at observation time ``ko``."""
        if self.when is not None:
            return bool(self.when(ko))
        return ko % self.every == self.offset


def stack_noise(parts: Sequence[Covariance]) -> Covariance:
    """The block-diagonal covariance of independent parts (diagonal if every part is)."""
    if not parts:
        return Covariance(np.zeros(0))
    if all(R.is_diag for R in parts):
        return Covariance(np.concatenate([R.diag for R in parts]))
    M = sum(R.M for R in parts)
    C = np.zeros((M, M))
    i = 0
    for R in parts:
        C[i:i + R.M, i:i + R.M] = R.full
        i += R.M
    return Covariance(C)


class MultiObs(Observation):
    """A named collection of observation modalities, observed together (see the module docstring).

    Args:
        modalities: ``{name: Observation or Modality}`` (an Observation is observed at every
            time), in the order in which their parts are stacked in ``y``.

    Example::

        obs = MultiObs({"sparse": PartialObs(40, range(0, 40, 4), 1.0),
                        "coarse": Modality(BlockMeanObs(40, 4, 0.25), every=2)})
        obs.present(1)             # ('sparse',)
        obs.split(y, 0)            # {'sparse': y[:10], 'coarse': y[10:]}
        obs.without("coarse")      # the same HMM observations, one modality dropped
    """

    identity_exclude = ("_noise_cache",)  # stacked covariances per modality set

    def __init__(self, modalities: Mapping[str, Observation | Modality]):
        if not modalities:
            raise ValueError("MultiObs needs at least one modality")
        self.modalities: dict[str, Modality] = {}
        for name, m in modalities.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"modality names must be non-empty strings, got {name!r}")
            self.modalities[name] = m if isinstance(m, Modality) else Modality(m)
        self._noise_cache: dict[tuple, tuple[list, Covariance]] = {}

    # -- the collection ------------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.modalities)

    def __getitem__(self, name: str) -> Observation:
        """The operator of modality ``name``."""
        self._check_names([name])
        return self.modalities[name].obs

    def _check_names(self, names: Iterable[str]) -> None:
        unknown = [n for n in names if n not in self.modalities]
        if unknown:
            raise KeyError(f"unknown modality {unknown[0]!r}; this MultiObs has {list(self.names)}")

    def present(self, ko: int) -> tuple[str, ...]:
        """Names of the modalities observed at ``ko``, in stacking order."""
        return tuple(n for n, m in self.modalities.items() if m.at(ko))

    def sizes(self, ko: int) -> dict[str, int]:
        """``{name: Ny_m(ko)}`` for the modalities present at ``ko``."""
        return {n: self.modalities[n].obs.Ny(ko) for n in self.present(ko)}

    def split(self, y, ko: int) -> dict[str, np.ndarray]:
        """The parts ``{name: y_m}`` of a stacked observation ``y`` ``(..., Ny(ko))``."""
        sizes = self.sizes(ko)
        total = sum(sizes.values())
        if y.shape[-1] != total:
            raise ValueError(f"observation of size {y.shape[-1]} at ko={ko}, expected {total} "
                             f"(modalities present: {sizes})")
        out, i = {}, 0
        for n, s in sizes.items():
            out[n] = y[..., i:i + s]
            i += s
        return out

    def stack(self, parts: Mapping[str, np.ndarray], ko: int) -> np.ndarray:
        """The inverse of :meth:`split`: the parts of the modalities present at ``ko``, stacked."""
        names = self.present(ko)
        missing = [n for n in names if n not in parts]
        if missing:
            raise ValueError(f"modality {missing[0]!r} is observed at ko={ko} but has no part")
        return np.concatenate([np.asarray(parts[n], dtype=float) for n in names], -1) if names \
            else np.zeros(0)

    def select(self, *names: str) -> MultiObs:
        """A MultiObs with only the modalities ``names`` (same operators, noise and sampling)."""
        self._check_names(names)
        return MultiObs({n: m for n, m in self.modalities.items() if n in names})

    def without(self, *names: str) -> MultiObs:
        """A MultiObs with the modalities ``names`` dropped (missing observations at run time)."""
        self._check_names(names)
        keep = [n for n in self.names if n not in names]
        if not keep:
            raise ValueError("cannot drop every modality")
        return self.select(*keep)

    def always(self) -> MultiObs:
        """The same modalities, each observed at every time (fixed ``Ny``: training data)."""
        return MultiObs({n: replace(m, every=1, offset=0, when=None) for n, m in self.modalities.items()})

    # -- the Observation interface -------------------------------------------------------------
    def Ny(self, ko: int) -> int:
        return sum(self.sizes(ko).values())

    def h(self, E, ko: int):
        if is_torch(E):
            return self.h_torch(E, ko)
        E = np.asarray(E)
        names = self.present(ko)
        if not names:
            return np.zeros((*E.shape[:-1], 0))
        return np.concatenate([self.modalities[n].obs.h(E, ko) for n in names], -1)

    def h_torch(self, X, ko: int):
        import torch

        names = self.present(ko)
        if not names:
            return X.new_zeros((*X.shape[:-1], 0))
        return torch.cat([self.modalities[n].obs.h_torch(X, ko) for n in names], -1)

    def noise(self, ko: int) -> Covariance:
        """``blockdiag(R_m)`` over the modalities present (cached while the parts are the same
        objects, which they are for fixed noise)."""
        parts = [self.modalities[n].obs.noise(ko) for n in self.present(ko)]
        key = tuple(id(R) for R in parts)
        hit = self._noise_cache.get(key)
        if hit is not None:
            return hit[1]
        if len(self._noise_cache) > 64:
            self._noise_cache.clear()
        R = stack_noise(parts)
        self._noise_cache[key] = (parts, R)  # the parts are kept so that their ids stay unique
        return R

    def sample(self, x: np.ndarray, ko: int, rng: np.random.Generator) -> np.ndarray:
        """A noisy observation of one state; each modality's noise is drawn from its own operator,
        in stacking order (the same draws as stacking the modalities' ``sample``)."""
        names = self.present(ko)
        if not names:
            return np.zeros(0)
        return np.concatenate([self.modalities[n].obs.sample(x, ko, rng) for n in names])

    def linear(self, x: np.ndarray, ko: int) -> np.ndarray:
        names = self.present(ko)
        if not names:
            return np.zeros((0, len(x)))
        return np.vstack([self.modalities[n].obs.linear(x, ko) for n in names])

    def locations(self, ko: int, coords: np.ndarray) -> np.ndarray:
        names = self.present(ko)
        if not names:
            return np.zeros((0, as_points(coords).shape[1]))
        return np.vstack([self.modalities[n].obs.locations(ko, coords) for n in names])

    def grad_loglik(self, y, X, ko: int):
        r""":math:`\sum_m J_{h_m}^T R_m^{-1}(y_m - h_m(x))` (independent modalities)."""
        parts = self.split(y, ko)
        if not parts:
            return X * 0
        total = None
        for n, ym in parts.items():
            g = self.modalities[n].obs.grad_loglik(ym, X, ko)
            total = g if total is None else total + g
        return total

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}: {type(m.obs).__name__}" + (f" every {m.every}" if m.every > 1 else "")
                          for n, m in self.modalities.items())
        return f"MultiObs({inner})"


class BlockMeanObs(AvgPoolObs):
    r"""Means of a 1-D periodic state over non-overlapping blocks of ``k`` consecutive variables,

    .. math:: y_J = \frac1k \sum_{a=0}^{k-1} x_{kJ + a} + r_J,\qquad 0 \le J < N_x / k,

    (a ``k``-times coarsened field; linear, ``y = H x + r``): average pooling
    (:class:`~dafilters.observations.AvgPoolObs`) of the state as a ``1 x Nx`` grid in ``1 x k``
    blocks. An observation sits at the mean position of its block.

    Args:
        Nx: state size (a multiple of ``k``). k: block length. noise: observation-error covariance.
    """

    def __init__(self, Nx: int, k: int, noise):
        if int(k) < 1 or int(Nx) % int(k):
            raise ValueError(f"block length k={k} must divide Nx={Nx}")
        super().__init__((1, int(Nx)), (1, int(k)), noise)


def regrid_matrix(obs: Observation, Nx: int, ko: int = 0) -> tuple[np.ndarray, np.ndarray]:
    r"""The map of an observation onto the state grid, and its mask.

    With ``H`` the operator's Jacobian at 0 (the operator itself when linear) and
    :math:`w = |H|^T 1` the weight each state component receives,

    .. math:: g(y) = \mathrm{diag}(w)^{-1} H^T y \ \text{where}\ w > 0,\quad 0 \text{ elsewhere},

    i.e. each observation is spread back over the components it depends on, normalised: a point
    probe lands on its grid point, a block mean fills its block. Returns ``G`` ``(Ny, Nx)`` with
    ``g(y) = y @ G``, and the mask ``(Nx,)`` (1 where some observation lands, else 0).
    """
    H = np.asarray(obs.linear(np.zeros(Nx), ko), dtype=float)
    if H.shape[1] != Nx:
        raise ValueError(f"operator Jacobian has shape {H.shape}, expected (Ny, {Nx})")
    w = np.abs(H).sum(0)
    mask = (w > 1e-12).astype(float)
    G = np.where(mask > 0, H / np.where(mask > 0, w, 1.0), 0.0)
    return G, mask
