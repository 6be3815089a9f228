"""Base class of filters with trained parts: ``fit``, ``save``, ``Filter.load``.

A learned filter is trained for one HMM (its state and observation sizes, and whatever else its
networks depend on: the *spec*). It keeps that spec, refuses an HMM that does not match it with a
clear error, and round-trips through a single file::

    flt = MNMEF(N=20).fit(hmm)            # simulate training data, train (progress bar)
    flt.save("mnmef.pt")
    flt = Filter.load("mnmef.pt")        # same class, settings, spec and weights

Model files cannot run code: they are read with ``torch.load(weights_only=True)`` (settings, spec
and training summary are stored as JSON text beside the weights), and a file may only name a
learned-filter class that is registered, i.e. whose class statement has run (every subclass of
:class:`LearnedFilter` registers itself); the module a file names is never imported (only
dafilters' own learned filters, a fixed list, are imported on demand). Define or import other
filter classes before loading their files. ``save`` writes a unique temporary file and
renames it, so processes saving to one path do not collide.

Subclasses implement :meth:`LearnedFilter.build` (the networks for a spec) and
:meth:`LearnedFilter.train` (the training on data from the HMM), plus the usual filter hooks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import os
import pickle
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..hmm import HMM
from . import registry
from .base import Filter

__all__ = ["LearnedFilter", "hmm_spec", "load_filter", "dumps_meta", "loads_meta"]

#: The model file format; files of another format are refused with a message to retrain.
FORMAT = "dafilters-learned-filter-2"


def hmm_spec(hmm: HMM) -> dict[str, Any]:
    """What a trained filter is keyed to: the HMM's name, state and observation sizes, its
    identity (``fingerprint``, a content hash, see :meth:`~dafilters.hmm.HMM.fingerprint`) and
    the content hashes of its parts (``parts``: dynamics, observations, prior, chronology)."""
    return {"name": hmm.name, "Nx": hmm.Nx, "Ny": hmm.obs.Ny(0), "fingerprint": hmm.fingerprint(),
            "parts": hmm.parts()}


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
        """Write class, settings, spec, training summary and weights to one file, atomically.

        The file is written to a unique temporary file in the same folder (created if missing)
        and renamed over ``path``, so concurrent saves to one path all succeed. Settings, spec
        and training summary are stored as JSON text, the weights as tensors: the file loads
        with ``torch.load(weights_only=True)``.
        """
        import torch

        if not self.trained:
            raise RuntimeError(f"{type(self).__name__} is not trained: nothing to save")
        meta = {"settings": {f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
                "spec": self.spec, "training": getattr(self, "training", {})}
        blob = {"format": FORMAT, "class": registry.class_key(type(self)),
                "meta": dumps_meta(meta, type(self).__name__),
                "state": {name: net.state_dict() for name, net in self.nets.items()}}
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(blob, f)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


# -- the metadata as JSON text --------------------------------------------------------------------
_TUPLE, _ARRAY, _PAIRS = "__tuple__", "__ndarray__", "__dict__"
_ARRAY_KINDS = "biuf"  # bool, integer and float arrays


def _jsonable(value: Any, where: str) -> Any:
    """``value`` as JSON data; tuples, numpy arrays and dicts with non-string keys are tagged so
    that :func:`_untag` restores them. Raises ``TypeError`` naming ``where`` for other types."""
    import numpy as np

    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic) and value.dtype.kind in _ARRAY_KINDS:
        return value.item()
    if isinstance(value, np.ndarray) and value.dtype.kind in _ARRAY_KINDS:
        return {_ARRAY: value.tolist(), "dtype": value.dtype.str, "shape": list(value.shape)}
    if isinstance(value, (list, tuple)):
        items = [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return {_TUPLE: items} if isinstance(value, tuple) else items
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and not {_TUPLE, _ARRAY, _PAIRS} & set(value):
            return {k: _jsonable(v, f"{where}[{k!r}]") for k, v in value.items()}
        return {_PAIRS: [[_jsonable(k, f"{where} key"), _jsonable(v, f"{where}[{k!r}]")]
                         for k, v in value.items()]}
    raise TypeError(f"cannot save {where}: a {type(value).__name__} (model files hold numbers, "
                    "strings, None, lists, tuples, dicts and numeric numpy arrays)")


def _untag(obj: dict[str, Any]) -> Any:
    """The inverse of :func:`_jsonable` for one JSON object (a ``json.loads`` object hook)."""
    import numpy as np

    keys = set(obj)
    if keys == {_TUPLE}:
        if not isinstance(obj[_TUPLE], list):
            raise ValueError("a tagged tuple does not hold a list")
        return tuple(obj[_TUPLE])
    if keys == {_PAIRS}:
        pairs = obj[_PAIRS]
        if not (isinstance(pairs, list) and all(isinstance(p, list) and len(p) == 2 for p in pairs)):
            raise ValueError("a tagged dict does not hold [key, value] pairs")
        return {k: v for k, v in pairs}
    if keys == {_ARRAY, "dtype", "shape"}:
        dtype = np.dtype(obj["dtype"])
        if dtype.kind not in _ARRAY_KINDS:
            raise ValueError(f"array dtype {dtype} is not numeric")
        return np.asarray(obj[_ARRAY], dtype=dtype).reshape(obj["shape"])
    return obj


def dumps_meta(meta: dict[str, Any], owner: str = "filter") -> str:
    """``meta`` (settings, spec, training summary) as JSON text that :func:`loads_meta` reverses
    exactly (tuples stay tuples, numpy arrays arrays, numpy scalars become Python numbers)."""
    return json.dumps(_jsonable(meta, owner))


def loads_meta(text: str) -> Any:
    """The value :func:`dumps_meta` wrote; ``ValueError`` if ``text`` is not such JSON."""
    try:
        return json.loads(text, object_hook=_untag)
    except (TypeError, ValueError) as err:
        raise ValueError(f"bad metadata: {err}") from None


# -- loading ----------------------------------------------------------------------------------------
def _read_blob(path: str, device: str | None) -> dict[str, Any]:
    """The dict stored in ``path``, read with ``weights_only=True`` (nothing in it can run)."""
    import torch

    if not os.path.isfile(path):
        raise FileNotFoundError(f"no model file {path}")
    try:
        blob = torch.load(path, map_location=device or "cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError) as err:
        raise ValueError(f"{path} is not a dafilters model file that can be read safely: it is "
                         "not a torch file, or it holds objects other than tensors and plain data "
                         f"(refused, nothing in it was run; {type(err).__name__}). Filters saved "
                         f"before format {FORMAT!r} must be retrained and saved again") from None
    if not isinstance(blob, dict) or "format" not in blob:
        raise ValueError(f"{path} is not a saved dafilters learned filter (no 'format' field)")
    if blob["format"] != FORMAT:
        raise ValueError(f"{path} is a model file of format {blob['format']!r}, but this version "
                         f"reads {FORMAT!r} only: retrain the filter and save it again (older "
                         "formats are not read: loading them could run code)")
    _check_fields(blob, path)
    return blob


def _check_fields(blob: dict[str, Any], path: str) -> None:
    """Raise a ``ValueError`` naming ``path`` if ``blob`` does not have the expected types."""
    import torch

    expected = {"format": str, "class": str, "meta": str, "state": dict}
    if set(blob) != set(expected):
        raise ValueError(f"{path}: model file fields are {sorted(blob)}, expected {sorted(expected)}")
    for key, typ in expected.items():
        if not isinstance(blob[key], typ):
            raise ValueError(f"{path}: field {key!r} is a {type(blob[key]).__name__}, "
                             f"expected {typ.__name__}")
    for name, state in blob["state"].items():
        if not (isinstance(name, str) and isinstance(state, dict)
                and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())):
            raise ValueError(f"{path}: weights {name!r} are not a dict of named tensors")


def _registered_class(key: str, path: str) -> type[LearnedFilter]:
    """The registered class a model file names. Only dafilters' own torch filters (a fixed list,
    :data:`dafilters.filters._LAZY`) are imported on demand; other names must be registered."""
    from . import _LAZY

    classes = registry.registered_classes()
    if key not in classes:
        module, _, name = key.partition(":")
        if name in _LAZY and module == f"{__package__}{_LAZY[name]}":
            importlib.import_module(module)  # a dafilters module, not one named by the file
            classes = registry.registered_classes()
    if key not in classes:
        known = ", ".join(sorted(classes)) or "none"
        raise ValueError(f"unknown learned filter class {key!r} in {path}; known: {known}; import "
                         "the module that defines it before loading")
    return classes[key]


def _meta(blob: dict[str, Any], cls: type, path: str) -> dict[str, Any]:
    """The settings, spec and training summary of a model file, checked against ``cls``."""
    try:
        meta = loads_meta(blob["meta"])
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    if not (isinstance(meta, dict) and set(meta) == {"settings", "spec", "training"}
            and all(isinstance(v, dict) for v in meta.values())):
        raise ValueError(f"{path}: the metadata is not a dict of settings, spec and training dicts")
    fields = {f.name for f in dataclasses.fields(cls)}
    if unknown := sorted(set(meta["settings"]) - fields):
        raise ValueError(f"{path}: {cls.__name__} has no settings {unknown} (fields: {sorted(fields)})")
    return meta


def load_filter(path: str | os.PathLike, device: str | None = None) -> LearnedFilter:
    """Read a filter written by :meth:`LearnedFilter.save` (also ``Filter.load``).

    Safe on untrusted files: the file is read with ``torch.load(weights_only=True)``, it may only
    name a registered learned-filter class, and no module it names is imported. A file that is
    not such a model, names an unknown class or holds unexpected data raises a ``ValueError``.
    ``device`` (e.g. ``"cuda"``) overrides the saved ``device`` setting.
    """
    path = os.fspath(path)
    blob = _read_blob(path, device)
    cls = _registered_class(blob["class"], path)
    meta = _meta(blob, cls, path)
    settings = meta["settings"]
    if device is not None and "device" in settings:
        settings["device"] = device
    try:
        flt = cls(**settings)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: {cls.__name__} refuses the saved settings: {err}") from None
    flt.spec, flt.training = meta["spec"], meta["training"]
    flt.nets = flt.build(flt.spec)
    if set(blob["state"]) != set(flt.nets):
        raise ValueError(f"{path}: weights for networks {sorted(blob['state'])}, but "
                         f"{cls.__name__} builds {sorted(flt.nets)}")
    for name, state in blob["state"].items():
        try:
            flt.nets[name].load_state_dict(state)
        except RuntimeError as err:
            raise ValueError(f"{path}: weights of {name!r} do not fit: {err}") from None
    return flt


registry.set_loader(load_filter)
