"""Model files of learned filters: one file per trained filter that cannot run code.

A file holds the format, the class key (``module:qualname``), the settings, spec and training
log as JSON text, and the networks' weights as tensors; it is read with
``torch.load(weights_only=True)``, and may only name a learned-filter class that is registered
(:mod:`dafilters.filters.registry`; dafilters' own learned filters, a fixed list, are imported on
demand, no module a file names is). ``save_filter`` writes a unique temporary file and renames it,
so processes saving to one path do not collide.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import registry

if TYPE_CHECKING:
    from .learned import LearnedFilter

__all__ = ["FORMAT", "save_filter", "load_filter", "dumps_meta", "loads_meta"]

#: The model file format; files of another format are refused with a message to retrain.
FORMAT = "dafilters-learned-filter-3"


def save_filter(flt: LearnedFilter, path: str | os.PathLike) -> None:
    """Write ``flt`` (class, settings, spec, training log, weights) to ``path``, atomically.

    The file is written to a unique temporary file in the same folder (created if missing) and
    renamed over ``path``, so concurrent saves to one path all succeed. Settings, spec and
    training log are stored as JSON text, the weights as tensors: the file loads with
    ``torch.load(weights_only=True)``.
    """
    import torch

    if not flt.trained:
        raise RuntimeError(f"{type(flt).__name__} is not trained: nothing to save")
    meta = {"settings": flt.settings(), "spec": flt.spec,
            "training_log": getattr(flt, "training_log", {})}
    blob = {"format": FORMAT, "class": registry.class_key(type(flt)),
            "meta": dumps_meta(meta, type(flt).__name__),
            "state": {name: net.state_dict() for name, net in flt.nets.items()}}
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
    """``meta`` (settings, spec, training log) as JSON text that :func:`loads_meta` reverses
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


def _registered_class(key: str, path: str) -> type:
    """The registered class a model file names. Only dafilters' own torch filters (a fixed list,
    :data:`dafilters.filters._LAZY`) are imported on demand; other names must be registered."""
    from . import _LAZY

    classes = registry.registered_classes()
    if key not in classes:
        module, _, name = key.partition(":")
        package = f"{__package__}{_LAZY.get(name, '')}"
        if name in _LAZY and (module == package or module.startswith(package + ".")):
            importlib.import_module(package)  # a dafilters module, not one named by the file
            classes = registry.registered_classes()
    if key not in classes:
        known = ", ".join(sorted(classes)) or "none"
        raise ValueError(f"unknown learned filter class {key!r} in {path}; known: {known}; import "
                         "the module that defines it before loading")
    return classes[key]


def _meta(blob: dict[str, Any], cls: type, path: str) -> dict[str, Any]:
    """The settings, spec and training log of a model file, checked against ``cls``."""
    try:
        meta = loads_meta(blob["meta"])
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    if not (isinstance(meta, dict) and set(meta) == {"settings", "spec", "training_log"}
            and all(isinstance(v, dict) for v in meta.values())):
        raise ValueError(f"{path}: the metadata is not a dict of settings, spec and training-log dicts")
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
    flt.spec, flt.training_log = meta["spec"], meta["training_log"]
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
