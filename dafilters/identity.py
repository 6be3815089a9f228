"""Content identities: stable hashes of what defines an experiment.

Everything that is keyed or cached (saved runs, the in-process twin cache, trained models, training
data, tuning studies) is keyed on a hash of *content*, never on a name alone. :func:`canonical`
turns an object into a JSON-able canonical form and :func:`content_hash` hashes that form with
SHA-256, so keys are equal across processes, machines and sessions (Python's own ``hash`` is
salted per process and is never used).

Canonical forms:

- numbers: ``1``, ``1.0``, ``np.int64(1)`` and ``np.float64(1.0)`` are the same number (settings
  ``infl=1`` and ``infl=1.0`` give one key); floats otherwise by their exact binary value;
- strings, ``None``, booleans as themselves; lists and tuples alike; dicts by sorted items;
- numpy arrays (and torch tensors) by dtype family, shape and a hash of their bytes (numeric
  arrays as float64, so an integer index array equals the same indices as floats);
- torch modules by class, structure (``repr``) and ``state_dict``; torch devices and dtypes by
  name;
- classes by ``module.qualname``; functions by name, byte code, constants, defaults and the
  values their closures capture; ``functools.partial`` by function and arguments; bound methods
  by function and the object they are bound to;
- objects with an ``identity()`` method (every :class:`Identified`: dynamics, observations,
  priors, chronologies, covariances) by class and what ``identity()`` returns; dataclasses by
  class and fields.

Anything else (an open file, a solver handle, a lock) raises :class:`Unhashable` naming where it
sits in the object, so a model that cannot be identified fails loudly instead of colliding with
another: give its class an ``identity()`` method, list the attribute in ``identity_exclude``, or
set an explicit ``identity_key`` string on the object.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import json
import math
import os
import types
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

__all__ = ["Identified", "Unhashable", "canonical", "content_hash"]


class Unhashable(TypeError):
    """An object that has no content identity (see :func:`canonical`)."""


class Identified:
    """Mixin: how an object contributes its parameters to content identities.

    The default :meth:`identity` is every instance attribute (``vars(self)``) except those named in
    ``identity_exclude`` (by the class or any of its bases: each class lists its own) and the
    values of ``functools.cached_property`` (caches never change what an object is). Subclasses
    holding caches or handles (solvers, compiled functions) list them in ``identity_exclude`` or
    override :meth:`identity`. Setting ``identity_key`` (a string) on an
    instance replaces its content by that explicit key, for objects that cannot be hashed.
    """

    #: Attributes that do not define the object (caches, handles) and are left out of its identity.
    identity_exclude: ClassVar[tuple[str, ...]] = ()
    #: An explicit key that replaces the content (for objects that cannot be hashed otherwise).
    identity_key: str | None = None

    def identity(self) -> Any:
        """What defines this object, as a structure :func:`canonical` understands."""
        if self.identity_key is not None:
            return {"identity_key": str(self.identity_key)}
        skip = _excluded_names(type(self)) | {"identity_key"}
        return {k: v for k, v in vars(self).items() if k not in skip}


@functools.cache
def _excluded_names(cls: type) -> frozenset[str]:
    """The ``identity_exclude`` names of ``cls`` and all its bases (each class lists its own), and
    the names of their ``cached_property`` attributes."""
    names: set[str] = set()
    for klass in cls.__mro__:
        names.update(vars(klass).get("identity_exclude", ()))
        names.update(name for name, v in vars(klass).items() if isinstance(v, cached_property))
    return frozenset(names)


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', None)}.{getattr(obj, '__qualname__', repr(obj))}"


def _number(x: float | int) -> str:
    """One text for one real number: integral values as integers, others by their exact bits."""
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return f"n:{int(x)}"
    x = float(x)
    if math.isfinite(x) and x.is_integer() and abs(x) < 2**63:
        return f"n:{int(x)}"
    return f"n:{x.hex()}"


def _array(a: np.ndarray, path: str, stack: list) -> Any:
    if a.dtype.kind == "O":
        return {"object_array": list(a.shape),
                "items": [canonical(v, f"{path}[{i}]", stack) for i, v in enumerate(a.ravel())]}
    if a.dtype.kind in "biuf":
        kind, b = "real", np.ascontiguousarray(a, dtype=np.float64)
    elif a.dtype.kind == "c":
        kind, b = "complex", np.ascontiguousarray(a, dtype=np.complex128)
    elif a.dtype.kind in "US":
        return {"str_array": list(a.shape), "items": [str(v) for v in a.ravel()]}
    else:
        raise Unhashable(f"{path}: cannot hash an array of dtype {a.dtype}")
    b = b + 0.0  # -0.0 and 0.0 are the same value
    return {"array": kind, "shape": list(a.shape), "sha256": hashlib.sha256(b.tobytes()).hexdigest()}


def _code(code: types.CodeType, path: str, stack: list) -> Any:
    consts = [(_code(c, path, stack) if isinstance(c, types.CodeType) else canonical(c, path, stack))
              for c in code.co_consts]
    return {"code": hashlib.sha256(code.co_code).hexdigest(), "consts": consts,
            "names": list(code.co_names)}


def _function(f: types.FunctionType, path: str, stack: list) -> Any:
    closure = [canonical(c.cell_contents, f"{path}.<closure {name}>", stack)
               for name, c in zip(f.__code__.co_freevars, f.__closure__ or ())]
    return {"function": _qualname(f), "body": _code(f.__code__, path, stack),
            "defaults": canonical(f.__defaults__, path, stack),
            "kwdefaults": canonical(f.__kwdefaults__, path, stack), "closure": closure}


def canonical(obj: Any, path: str = "value", _stack: list | None = None) -> Any:
    """The canonical JSON-able form of ``obj`` (see the module docstring); ``path`` names the
    object in error messages."""
    stack = [] if _stack is None else _stack
    if obj is None or isinstance(obj, bool):
        return obj
    if isinstance(obj, (int, float, np.integer, np.floating)):
        return _number(obj)
    if isinstance(obj, (complex, np.complexfloating)):
        return ["complex", _number(obj.real), _number(obj.imag)]
    if isinstance(obj, str):
        return "s:" + obj
    if isinstance(obj, bytes):
        return "b:" + hashlib.sha256(obj).hexdigest()
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, os.PathLike):
        return "s:" + os.fspath(obj)
    if isinstance(obj, enum.Enum):
        return {"enum": _qualname(type(obj)), "name": obj.name}
    if isinstance(obj, type):
        return {"class": _qualname(obj)}
    if isinstance(obj, np.dtype):
        return {"dtype": str(obj)}
    if isinstance(obj, np.ndarray):
        return _array(obj, path, stack)
    if type(obj).__module__.startswith("torch"):
        if hasattr(obj, "detach"):
            return _array(obj.detach().cpu().numpy(), path, stack)
        if type(obj).__name__ in ("device", "dtype"):
            return {"torch": type(obj).__name__, "value": str(obj)}
    if any(s is obj for s in stack):  # a cycle (e.g. a method bound to its owner): a back-reference
        return {"ref": len(stack) - next(i for i, s in enumerate(stack) if s is obj)}
    stack.append(obj)
    try:
        return _composite(obj, path, stack)
    finally:
        stack.pop()


def _composite(obj: Any, path: str, stack: list) -> Any:
    if isinstance(obj, (list, tuple)):
        return [canonical(v, f"{path}[{i}]", stack) for i, v in enumerate(obj)]
    if isinstance(obj, (set, frozenset)):
        items = [canonical(v, path, stack) for v in obj]
        return {"set": sorted(items, key=lambda v: json.dumps(v, sort_keys=True))}
    if isinstance(obj, dict):
        items = [[canonical(k, path, stack), canonical(v, f"{path}[{k!r}]", stack)]
                 for k, v in obj.items()]
        return {"dict": sorted(items, key=lambda kv: json.dumps(kv[0], sort_keys=True))}
    if hasattr(obj, "identity") and callable(obj.identity) and not isinstance(obj, type):
        return {"object": _qualname(type(obj)), "identity": canonical(obj.identity(), path, stack)}
    if dataclasses.is_dataclass(obj):
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        return {"object": _qualname(type(obj)), "fields": canonical(fields, path, stack)}
    if isinstance(obj, types.FunctionType):
        return _function(obj, path, stack)
    if isinstance(obj, types.MethodType):
        return {"method": canonical(obj.__func__, path, stack),
                "self": canonical(obj.__self__, f"{path}.__self__", stack)}
    if isinstance(obj, functools.partial):
        return {"partial": canonical(obj.func, path, stack), "args": canonical(obj.args, path, stack),
                "keywords": canonical(obj.keywords, path, stack)}
    if isinstance(obj, (types.BuiltinFunctionType, np.ufunc)):
        return {"builtin": f"{getattr(obj, '__module__', None) or 'numpy'}.{obj.__name__}"}
    if hasattr(obj, "state_dict") and hasattr(obj, "named_modules"):  # a torch.nn.Module
        return {"module": _qualname(type(obj)), "state": canonical(obj.state_dict(), path, stack),
                "repr": "s:" + repr(obj)}
    if isinstance(obj, np.random.Generator):
        return {"rng": canonical(obj.bit_generator.state, path, stack)}
    raise Unhashable(
        f"{path}: cannot identify an object of type {_qualname(type(obj))} by its content; give "
        "its class an identity() method (dafilters.identity.Identified), list the attribute in "
        "identity_exclude, or set an explicit identity_key string on the object")


def content_hash(obj: Any, length: int = 64, path: str = "value") -> str:
    """SHA-256 (hex, the first ``length`` characters) of the canonical form of ``obj``.

    >>> content_hash({"infl": 1}) == content_hash({"infl": 1.0})
    True
    """
    text = json.dumps(canonical(obj, path), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]
