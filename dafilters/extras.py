"""Optional dependencies (pip extras): one clear error when a model or backend needs a missing one.

The core install (``make demo``, ``pip install -e .``) has no extra. A model or backend that needs
one imports it through :func:`import_extra`, which raises :class:`MissingExtra` (an
``ImportError``) naming the extra, the command that installs it and the system packages it needs::

    jax = import_extra("jax", "kolmogorov", "mods.Kolmogorov")
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["EXTRAS", "MissingExtra", "import_extra", "install_hint"]

#: extra -> (what it provides, the modules it brings, the Debian system packages it builds against)
EXTRAS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "dapper": ("DAPPER 1.7", ("dapper",), ()),
    "kolmogorov": ("jax and jax-cfd", ("jax", "jax_cfd"), ()),
    "atmos": ("Dedalus 3 (built from source) and mpi4py", ("dedalus", "mpi4py"),
              ("libopenmpi-dev", "openmpi-bin", "libfftw3-dev", "libfftw3-mpi-dev", "gcc")),
    "mpi": ("mpi4py", ("mpi4py",), ("libopenmpi-dev", "openmpi-bin")),
}


class MissingExtra(ImportError):
    """An optional dependency is missing; the message says which extra installs it."""

    def __init__(self, message: str, extra: str, name: str | None = None):
        super().__init__(message, name=name)
        self.extra = extra


def install_hint(extra: str) -> str:
    """How to install ``extra``: the commands, and the system packages it needs first."""
    hint = (f"install it with `make venv EXTRAS={extra}` "
            f"(or `pip install -c constraints.txt -e '.[{extra}]'`)")
    syspkgs = EXTRAS.get(extra, ("", (), ()))[2]
    if syspkgs:
        hint += (f"; it builds against the system packages {' '.join(syspkgs)} "
                 f"(Debian/Ubuntu: `sudo apt-get install {' '.join(syspkgs)}`, "
                 "or `make sysdeps` as root), see the README's Quickstart")
    return hint


def import_extra(module: str, extra: str, needed_by: str | None = None) -> ModuleType:
    """Import ``module`` (a dotted name) and return it; if it cannot be imported, raise
    :class:`MissingExtra` naming ``extra`` (a key of :data:`EXTRAS`), how to install it and the
    system packages it needs. ``needed_by`` names what needs it (``"mods.ShallowWater"``)."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        what = EXTRAS.get(extra, (extra, (), ()))[0]
        who = needed_by or module
        raise MissingExtra(f"{who} needs the optional extra '{extra}': {what}. It is not installed "
                           f"here ({err}); {install_hint(extra)}.", extra, name=module) from err

