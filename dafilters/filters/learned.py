"""Base class of filters with trained parts: ``fit``, ``save``, ``Filter.load``.

A learned filter is trained for one HMM (its state and observation sizes, its identity, and
whatever else its networks depend on: the *spec*). It keeps that spec, refuses an HMM whose
dynamics or observations differ with a clear error, and round-trips through one file::

    flt = MNMEF(N=20, training={"minutes": 14}).fit(hmm)   # simulate data, train (progress bar)
    flt.save("mnmef.pt")
    flt = Filter.load("mnmef.pt")        # same class, settings, spec and weights

Its ``training`` field, a :class:`~dafilters.nn.training.TrainConfig`, carries everything about
*how* it is trained: the data (``n_traj``), the budget (``epochs``, ``minutes``), the optimiser
(``lr``, ``batch_size``, ``lr_stages``, ...) and the training ``seed``. Each class has its own
defaults (``TRAINING``); ``training={"minutes": 5}`` changes some of them. The training settings
are not hyper-parameters: they are not table columns, but recorded beside each run.
``training_log`` holds what the training did (seconds, device, loss curves).

Subclasses implement :meth:`LearnedFilter.build` (the networks for a spec) and
:meth:`LearnedFilter.learn` (the training on data from the HMM), plus the usual filter hooks.
Model files: :mod:`dafilters.filters.model_files`.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..hmm import HMM
from ..identity import content_hash
from ..nn.config import TrainConfig
from . import registry
from .base import Filter

__all__ = ["LearnedFilter", "hmm_spec", "load_filter", "TrainConfig"]


def load_filter(path: str | os.PathLike, device: str | None = None) -> LearnedFilter:
    """Read a filter written by :meth:`LearnedFilter.save` (see
    :func:`dafilters.filters.model_files.load_filter`)."""
    from .model_files import load_filter as load

    return load(path, device=device)


def hmm_spec(hmm: HMM) -> dict[str, Any]:
    """What a trained filter is keyed to: the HMM's name, state and observation sizes, its
    identity (``fingerprint``, a content hash, see :meth:`~dafilters.hmm.HMM.fingerprint`) and
    the content hashes of its parts (``parts``: dynamics, observations, prior, chronology)."""
    return {"name": hmm.name, "Nx": hmm.Nx, "Ny": hmm.obs.Ny(0), "fingerprint": hmm.fingerprint(),
            "parts": hmm.parts()}


def _comparable(flt: LearnedFilter) -> dict[str, Any]:
    """What two trained filters must share to be the same: class and settings but the device."""
    return {"class": type(flt), **{k: v for k, v in flt.settings().items() if k != "device"}}


@dataclass
class LearnedFilter(Filter):
    """A filter with networks trained for one HMM.

    Attributes set by :meth:`fit` / :func:`load_filter`: ``spec`` (what it was trained for),
    ``nets`` (a dict of ``torch.nn.Module``), ``training_log`` (seconds, device, losses).
    """

    #: How this class trains by default (``training`` fields given as a dict change these).
    TRAINING: ClassVar[TrainConfig] = TrainConfig()
    #: Training data, budget, optimiser and training seed (see :class:`TrainConfig`); a dict of
    #: changes to the class's ``TRAINING`` is accepted. Not a hyper-parameter (no table column).
    training: TrainConfig | dict | None = field(default=None, kw_only=True)

    non_hyper: ClassVar[tuple[str, ...]] = ("device", "training")

    def __post_init__(self):
        if self.training is None:
            self.training = dataclasses.replace(self.TRAINING)
        elif isinstance(self.training, dict):
            names = {f.name for f in dataclasses.fields(self.TRAINING)}  # a subclass's fields too
            if unknown := sorted(set(self.training) - names):
                raise ValueError(f"{type(self).__name__}: unknown training settings {unknown}; "
                                 f"{type(self.TRAINING).__name__} has {sorted(names)}")
            self.training = dataclasses.replace(self.TRAINING, **self.training)
        elif not isinstance(self.training, type(self.TRAINING)):
            raise TypeError(f"{type(self).__name__}: training must be a "
                            f"{type(self.TRAINING).__name__} or a dict, "
                            f"got {type(self.training).__name__}")
        self.training.check()

    def settings(self) -> dict[str, Any]:
        """Every field, ``training`` as a dict (what a model file stores)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if isinstance(self.training, TrainConfig):
            out["training"] = dataclasses.asdict(self.training)
        return out

    # -- to implement -------------------------------------------------------------------------
    def build(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Fresh networks for ``spec`` (``{"Nx", "Ny", ...}``), as a dict of ``nn.Module``."""
        raise NotImplementedError

    def learn(self, hmm: HMM, progress: bool | None = None, cache_dir=None) -> dict[str, Any]:
        """Train ``self.nets`` on data simulated from ``hmm`` as ``self.training`` says; return a
        log (loss curves...). ``cache_dir`` caches the simulated training data."""
        raise NotImplementedError

    def spec_for(self, hmm: HMM) -> dict[str, Any]:
        """The spec the networks depend on (default :func:`hmm_spec`; extend to add e.g. grids)."""
        return hmm_spec(hmm)

    # -- training and checks ------------------------------------------------------------------
    @property
    def trained(self) -> bool:
        return getattr(self, "nets", None) is not None

    def fit(self, hmm: HMM, **kwargs) -> LearnedFilter:
        """Build the networks for ``hmm`` and train them (``kwargs`` go to :meth:`learn`)."""
        self.spec = self.spec_for(hmm)
        self.nets = self.build(self.spec)
        start = time.perf_counter()
        log = self.learn(hmm, **kwargs)
        self.training_log = {"seconds": time.perf_counter() - start,
                             "device": str(getattr(self, "device", "cpu")), **(log or {})}
        return self

    def fit_cached(self, hmm: HMM, path: str | os.PathLike, **kwargs) -> LearnedFilter:
        """This filter trained for ``hmm``: read from ``path`` if the file holds the same filter
        (same class and settings, training settings included) trained on exactly this HMM, else
        trained now (``kwargs`` go to :meth:`fit`) and saved at ``path``."""
        path = Path(path)
        if path.exists():
            old = load_filter(path, device=getattr(self, "device", None))
            if old.matches(hmm) and content_hash(_comparable(old)) == content_hash(_comparable(self)):
                return old
        self.fit(hmm, **kwargs)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.save(path)
        return self

    def check_hmm(self, hmm: HMM) -> None:
        """Raise a clear error if the filter is untrained or was trained for another model.

        "Another model": other sizes, or dynamics or observations whose content differs (e.g.
        Lorenz-96 with F = 10 instead of 8, another R, other observed indices). The prior and the
        chronology's length may differ (a run longer than the training trajectories, another
        initial spread). To run a filter on a model it was not trained for on purpose (a transfer
        or model-error experiment), set ``flt.transfer = True``.
        """
        if not self.trained:
            raise RuntimeError(f"{type(self).__name__} is not trained: call .fit(hmm) or "
                               "Filter.load(path) first")
        now = hmm_spec(hmm)
        for key in ("Nx", "Ny"):
            if self.spec[key] != now[key]:
                raise ValueError(f"{type(self).__name__} was trained for {self.spec['name']} with "
                                 f"{key}={self.spec[key]}, but this HMM ({hmm.name}) has {key}={now[key]}")
        if getattr(self, "transfer", False):
            return
        trained = self.spec.get("parts") or {}
        differ = [p for p in ("dyn", "obs") if trained.get(p) != now["parts"][p]]
        if differ:
            what = " and ".join({"dyn": "dynamics", "obs": "observations"}[p] for p in differ)
            raise ValueError(f"{type(self).__name__} was trained for {self.spec['name']}, whose {what} "
                             f"differ from those of this HMM ({hmm.name}); train it for this HMM "
                             "(.fit(hmm)), or set .transfer = True to evaluate it on another model "
                             "on purpose")

    def assimilate(self, hmm: HMM, xx, yy, **kwargs):
        """As :meth:`Filter.assimilate`, after checking that the filter was trained for ``hmm``."""
        self.check_hmm(hmm)
        return super().assimilate(hmm, xx, yy, **kwargs)

    def matches(self, hmm: HMM) -> bool:
        """Whether the filter was trained on exactly this HMM setting."""
        return self.trained and self.spec.get("fingerprint") == hmm.fingerprint()

    # -- persistence --------------------------------------------------------------------------
    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Register every subclass, so that model files naming it can be loaded."""
        super().__init_subclass__(**kwargs)
        registry.register_class(cls)

    def save(self, path: str | os.PathLike) -> None:
        """Write class, settings, spec, training log and weights to one file, atomically (see
        :func:`dafilters.filters.model_files.save_filter`)."""
        from .model_files import save_filter

        save_filter(self, path)
