"""Shared fixtures and helpers for the test suite."""

import importlib
import os
import shutil

import numpy as np
import pytest

from dafilters.extras import EXTRAS


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def _required_extras() -> set[str]:
    """The extras that must be present: ``DAFILTERS_REQUIRE_EXTRAS=1`` (or ``all``, as ``.ci/run``
    sets it) for all of them, or a comma-separated list of names."""
    value = os.environ.get("DAFILTERS_REQUIRE_EXTRAS", "").strip()
    if value.lower() in ("", "0", "false", "no"):
        return set()
    if value.lower() in ("1", "true", "yes", "all"):
        return set(EXTRAS)
    return {name.strip() for name in value.split(",") if name.strip()}


def require_extra(extra: str, *modules: str, commands: tuple[str, ...] = ()):
    """Import ``modules`` of the optional ``extra`` (a key of ``dafilters.extras.EXTRAS``) and check
    that the ``commands`` are on the PATH; return the first module. Where one is missing, skip the
    test (or the test module, at module level) with a reason naming the extra, or fail it if the
    extra is required (``DAFILTERS_REQUIRE_EXTRAS``, set by ``.ci/run``: CI tests every extra)."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; known: {', '.join(EXTRAS)}")
    loaded, problem = [], None
    for name in modules:
        try:
            loaded.append(importlib.import_module(name))
        except ImportError as err:
            problem = f"{err}"
            break
    if problem is None:
        for command in commands:
            if shutil.which(command) is None:
                problem = f"no {command} on the PATH"
                break
    if problem is None:
        return loaded[0] if loaded else None
    syspkgs = EXTRAS[extra][2]
    reason = (f"needs the optional extra '{extra}' ({problem}); install it with "
              f"`make venv EXTRAS={extra}`" + (f" after the system packages {' '.join(syspkgs)}"
                                               if syspkgs else ""))
    if extra in _required_extras():
        pytest.fail(f"{reason} [DAFILTERS_REQUIRE_EXTRAS is set: a missing extra is an error]",
                    pytrace=False)
    pytest.skip(reason, allow_module_level=True)
