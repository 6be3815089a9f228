"""Base class of filters with trained parts: ``fit``, ``save``, ``Filter.load``.

A learned filter is trained for one HMM (its state and observation sizes, and whatever else its
networks depend on: the *spec*). It keeps that spec, refuses an HMM that does not match it with a
clear error, and round-trips through a single file::

    flt = MNMEF(N=20).fit(hmm)            # simulate training data, train (progress bar)
    flt.save("mnmef.pt")
    flt = Filter.load("mnmef.pt")        # same class, settings, spec and weights

Subclasses implement :meth:`LearnedFilter.build` (the networks for a spec) and
:meth:`LearnedFilter.train` (the training on data from the HMM), plus the usual filter hooks.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..hmm import HMM
from .base import Filter

__all__ = ["LearnedFilter", "hmm_spec", "load_filter"]

FORMAT = "dafilters-learned-filter-1"


def hmm_spec(hmm: HMM) -> dict[str, Any]:
    """What a trained filter is keyed to: the HMM's name, state and observation sizes."""
    return {"name": hmm.name, "Nx": hmm.Nx, "Ny": hmm.obs.Ny(0), "fingerprint": hmm.fingerprint()}


@dataclass
class LearnedFilter(Filter):
    """A filter with networks trained for one HMM.

    Attributes set by :meth:`fit` / :func:`load_filter`: ``spec`` (what it was trained for),
    ``nets`` (a dict of ``torch.nn.Module``), ``training`` (seconds, device, losses).
    """

    non_hyper: ClassVar[tuple[str, ...]] = ("device",)

    # -- to implement -------------------------------------------------------------------------
    def build(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Fresh networks for ``spec`` (``{"Nx", "Ny", ...}``), as a dict of ``nn.Module``."""
        raise NotImplementedError

    def train(self, hmm: HMM, **kwargs) -> dict[str, Any]:
        """Train ``self.nets`` on data simulated from ``hmm``; return a summary (losses...)."""
        raise NotImplementedError

    def spec_for(self, hmm: HMM) -> dict[str, Any]:
        """The spec the networks depend on (default :func:`hmm_spec`; extend to add e.g. grids)."""
        return hmm_spec(hmm)

    # -- training and checks ------------------------------------------------------------------
    @property
    def trained(self) -> bool:
        return getattr(self, "nets", None) is not None

    def fit(self, hmm: HMM, **kwargs) -> LearnedFilter:
        """Build the networks for ``hmm`` and train them (``kwargs`` go to :meth:`train`)."""
        self.spec = self.spec_for(hmm)
        self.nets = self.build(self.spec)
        start = time.perf_counter()
        summary = self.train(hmm, **kwargs)
        self.training = {"seconds": time.perf_counter() - start,
                         "device": str(getattr(self, "device", "cpu")), **(summary or {})}
        return self

    def fit_cached(self, hmm: HMM, path: str | os.PathLike, **kwargs) -> LearnedFilter:
        """This filter trained for ``hmm``: read from ``path`` if the file holds the same filter
        (same settings, hence the same name) trained on exactly this HMM, else trained now
        (``kwargs`` go to :meth:`fit`) and saved at ``path``."""
        path = Path(path)
        if path.exists():
            old = load_filter(path, device=getattr(self, "device", None))
            if old.matches(hmm) and old.name == self.name:
                return old
        self.fit(hmm, **kwargs)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.save(path)
        return self

    def check_hmm(self, hmm: HMM) -> None:
        """Raise a clear error if the filter is untrained or was trained for another HMM size."""
        if not self.trained:
            raise RuntimeError(f"{type(self).__name__} is not trained: call .fit(hmm) or "
                               "Filter.load(path) first")
        now = hmm_spec(hmm)
        for key in ("Nx", "Ny"):
            if self.spec[key] != now[key]:
                raise ValueError(f"{type(self).__name__} was trained for {self.spec['name']} with "
                                 f"{key}={self.spec[key]}, but this HMM ({hmm.name}) has {key}={now[key]}")

    def assimilate(self, hmm: HMM, xx, yy, **kwargs):
        """As :meth:`Filter.assimilate`, after checking that the filter was trained for ``hmm``."""
        self.check_hmm(hmm)
        return super().assimilate(hmm, xx, yy, **kwargs)

    def matches(self, hmm: HMM) -> bool:
        """Whether the filter was trained on exactly this HMM setting."""
        return self.trained and self.spec.get("fingerprint") == hmm.fingerprint()

    # -- persistence --------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write class, settings, spec, training summary and weights to one file (atomically)."""
        import torch

        if not self.trained:
            raise RuntimeError(f"{type(self).__name__} is not trained: nothing to save")
        cls = type(self)
        blob = {
            "format": FORMAT, "class": f"{cls.__module__}:{cls.__qualname__}",
            "settings": {f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
            "spec": self.spec, "training": getattr(self, "training", {}),
            "state": {name: net.state_dict() for name, net in self.nets.items()},
        }
        tmp = f"{os.fspath(path)}.tmp"
        torch.save(blob, tmp)
        os.replace(tmp, path)


def load_filter(path: str | os.PathLike, device: str | None = None) -> LearnedFilter:
    """Read a filter written by :meth:`LearnedFilter.save` (also ``Filter.load``)."""
    import torch

    blob = torch.load(path, map_location=device or "cpu", weights_only=False)
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"{path} is not a saved dafilters learned filter")
    module, qualname = blob["class"].split(":")
    cls = importlib.import_module(module)
    for part in qualname.split("."):
        cls = getattr(cls, part)
    settings = dict(blob["settings"])
    if device is not None and "device" in settings:
        settings["device"] = device
    flt = cls(**settings)
    flt.spec, flt.training = blob["spec"], blob["training"]
    flt.nets = flt.build(flt.spec)
    for name, state in blob["state"].items():
        flt.nets[name].load_state_dict(state)
    return flt
