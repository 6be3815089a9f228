"""Content identities of DAPPER objects (operators, random variables, functions and their data).

DAPPER models are plain Python: an ``Operator`` holds a ``model`` function (often a closure made
by ``with_rk4`` around a tendency that reads module constants such as ``Force``), a noise
``GaussRV`` with a ``CovMat``, a ``linear`` function and a ``localizer`` closure. None of them has
an ``identity()``, so :func:`dafilters.identity.canonical` cannot hash them directly.
:func:`describe` walks such an object and returns a structure that ``canonical`` can hash:

- numbers, strings, arrays, ``None``: themselves; lists, tuples, dicts: item by item;
- a DAPPER ``CovMat``: its kind and its diagonal or full matrix (never its cached factors);
- a function: module and qualified name, a digest of its byte code and constants, its
  defaults, the values its closure captures, and the values of the module globals it reads that
  are data (numbers, strings, arrays, containers of them) or functions and objects of the same
  module (so ``dapper.mods.Lorenz96.Force = 10`` changes the identity of ``step``);
- a bound method: its function and the object it is bound to; ``functools.partial`` likewise;
- any other object: its class and its attributes (``vars``), except known caches;
- objects without attributes (a random stream, a builtin): their type or name only.

Cycles become back-references and the walk stops at depth :data:`MAX_DEPTH`, so the result is
finite; the same object content always gives the same structure (across processes).
"""

from __future__ import annotations

import functools
import hashlib
import types
from typing import Any

import numpy as np

__all__ = ["describe", "MAX_DEPTH"]

#: How deep :func:`describe` follows nested objects before it records only their type.
MAX_DEPTH = 12

#: Attributes that DAPPER objects fill lazily (caches): not part of what an object is.
CACHE_ATTRIBUTES = frozenset({"icdf_interp", "LP_instance", "__doc__"})


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', None)}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"


def _code_digest(code: types.CodeType) -> str:
    """SHA-256 of a code object's byte code, names and constants (nested code included), without
    its file name or line numbers."""
    h = hashlib.sha256(code.co_code)
    h.update(repr(code.co_names).encode())
    for c in code.co_consts:
        h.update(_const_text(c).encode())
    return h.hexdigest()


def _const_text(c: Any) -> str:
    """A constant of byte code as text: nested code by its digest, frozensets sorted (their
    order follows the per-process string hash)."""
    if isinstance(c, types.CodeType):
        return _code_digest(c)
    if isinstance(c, frozenset):
        return "frozenset" + repr(sorted(_const_text(x) for x in c))
    if isinstance(c, tuple):
        return "(" + ",".join(_const_text(x) for x in c) + ")"
    return repr(c)


def _global_names(code: types.CodeType) -> set[str]:
    """The global names a code object (and the code nested in it) may read."""
    names = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            names |= _global_names(c)
    return names


def _is_data(v: Any) -> bool:
    """Numbers, strings, arrays and containers of them (module constants worth identifying)."""
    if v is None or isinstance(v, (bool, int, float, complex, str, np.generic, np.ndarray)):
        return True
    if isinstance(v, (list, tuple)):
        return all(_is_data(x) for x in v)
    if isinstance(v, dict):
        return all(_is_data(x) for x in v.values())
    return False


def _same_module(v: Any, module: str | None) -> bool:
    """Whether ``v`` is a function or an instance defined in the module ``module``."""
    if module is None or isinstance(v, (type, types.ModuleType)):
        return False
    owner = getattr(v, "__module__", None) if callable(v) else type(v).__module__
    return owner == module


class _Walker:
    def __init__(self) -> None:
        self.stack: list[int] = []

    def __call__(self, obj: Any, depth: int = 0) -> Any:
        if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes, np.generic)):
            return obj
        if isinstance(obj, np.ndarray):
            return obj if obj.dtype.kind != "O" else {"object_array": list(obj.shape),
                                                       "items": [self(v, depth + 1) for v in obj.ravel()]}
        if isinstance(obj, type):
            return {"class": _qualname(obj)}
        if isinstance(obj, types.ModuleType):
            return {"module": obj.__name__}
        if isinstance(obj, (types.BuiltinFunctionType, np.ufunc)):
            return {"builtin": f"{getattr(obj, '__module__', None) or 'numpy'}.{obj.__name__}"}
        if isinstance(obj, (np.random.Generator, np.random.RandomState, np.random.BitGenerator)):
            return {"random_stream": type(obj).__name__}  # its state changes as it is used
        if id(obj) in self.stack:
            return {"ref": _qualname(obj)}
        if depth >= MAX_DEPTH:
            return {"truncated": _qualname(type(obj))}
        self.stack.append(id(obj))
        try:
            return self._composite(obj, depth + 1)
        finally:
            self.stack.pop()

    def _composite(self, obj: Any, depth: int) -> Any:
        if isinstance(obj, (list, tuple)):
            return [self(v, depth) for v in obj]
        if isinstance(obj, dict):
            return {str(k): self(v, depth) for k, v in obj.items() if k not in CACHE_ATTRIBUTES}
        if isinstance(obj, (set, frozenset)):
            return {"set": sorted((self(v, depth) for v in obj), key=repr)}
        if type(obj).__name__ == "CovMat" and type(obj).__module__.startswith("dapper"):
            return {"CovMat": obj.kind, "value": obj.diag if obj.kind == "diag" else obj.full}
        if isinstance(obj, types.FunctionType):
            return self._function(obj, depth)
        if isinstance(obj, types.MethodType):
            return {"method": self(obj.__func__, depth), "self": self(obj.__self__, depth)}
        if isinstance(obj, functools.partial):
            return {"partial": self(obj.func, depth), "args": self(obj.args, depth),
                    "keywords": self(obj.keywords, depth)}
        attrs = getattr(obj, "__dict__", None)
        if isinstance(attrs, dict):
            return {"object": _qualname(type(obj)), "attrs": self(attrs, depth)}
        return {"object": _qualname(type(obj))}  # no readable parameters

    def _function(self, f: types.FunctionType, depth: int) -> Any:
        closure = {name: self(cell.cell_contents, depth)
                   for name, cell in zip(f.__code__.co_freevars, f.__closure__ or ())
                   if _cell_filled(cell)}
        module = f.__globals__.get("__name__")
        reads = {}
        for name in sorted(_global_names(f.__code__)):
            if name in f.__globals__:
                v = f.__globals__[name]
                if _is_data(v) or _same_module(v, module):
                    reads[name] = self(v, depth)
        return {"function": _qualname(f), "code": _code_digest(f.__code__),
                "defaults": self(f.__defaults__, depth), "kwdefaults": self(f.__kwdefaults__, depth),
                "closure": closure, "globals": reads}


def _cell_filled(cell: types.CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018 (an empty cell raises)
    except ValueError:
        return False
    return True


def describe(obj: Any) -> Any:
    """A structure that :func:`dafilters.identity.canonical` hashes, describing the content of a
    DAPPER object (see the module docstring)."""
    return _Walker()(obj)
