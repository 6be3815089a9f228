"""Saving runs to disk: atomic writes of records (JSON) and per-cycle series (npz)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["atomic_write", "jsonable", "load_record", "save_run"]


def atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same folder, then rename over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def jsonable(v: Any) -> Any:
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    return v




def load_record(path: Path) -> dict | None:
    """The run saved at ``path``, or ``None`` if there is none (runs that failed are retried)."""
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    return None if record.get("status") == "error" else record


def save_run(path: Path, record: dict, series: dict[str, np.ndarray]) -> None:
    """Write a run's per-cycle ``series`` (``path`` with suffix ``.npz``) and its ``record``."""
    if series:
        atomic_write(path.with_suffix(".npz"), lambda f: np.savez_compressed(f, **series))
    text = json.dumps(jsonable(record), indent=1).encode()
    atomic_write(path, lambda f: f.write(text))
