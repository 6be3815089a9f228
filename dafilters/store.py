"""Saving runs to disk: atomic writes of records (JSON) and per-cycle series (npz).

Files are written through a temporary file (``.tmp-*``) renamed into place, with the permissions
the umask gives (as ``open`` would). A saved record that cannot be read back (corrupt, truncated,
or missing the keys of :data:`RUN_KEYS`) is reported with a :class:`BadRecordWarning` naming the
file, never a crash.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = ["RUN_KEYS", "BadRecordWarning", "atomic_write", "check_saveable", "check_writable",
           "jsonable", "load_record", "load_series", "read_record", "save_run"]

#: The keys every saved run record has (a JSON file without them is not a run record).
RUN_KEYS = ("hmm", "filter", "name", "params", "seed", "status")


class BadRecordWarning(UserWarning):
    """A saved file that should hold a run record cannot be read as one (it is skipped)."""


class BadRecord(ValueError):
    """A file is not a readable run record (the message names the file and the problem)."""


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the system allows (``/proc``)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:  # elsewhere: set and restore at once (os.umask has no read-only form)
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Write through a temporary file in the same folder, then rename over ``path``; the file
    gets the permissions the umask gives new files (``0o666 & ~umask``)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def jsonable(v: Any) -> Any:
    """``v`` with numpy scalars and arrays as Python numbers and lists (tuples as lists)."""
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


def check_saveable(owner: str, values: dict[str, Any]) -> None:
    """Raise a ``TypeError`` naming ``owner`` and the field if a value cannot be saved as JSON
    (e.g. a filter setting holding an object)."""
    for field, value in values.items():
        try:
            json.dumps(jsonable(value), allow_nan=True)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{owner}: setting {field}={value!r} cannot be saved as JSON ({err}); "
                            "use numbers, strings, lists or dicts of them, or run without "
                            "save_to") from None


def check_writable(folder: Path) -> None:
    """Create ``folder`` if needed and check that files can be written there (a probe file is
    written and removed); raise a ``PermissionError`` naming the folder if not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".tmp-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise PermissionError(f"cannot save runs in {folder}: {err.strerror or err}") from err


def read_record(path: Path) -> dict:
    """The run record saved at ``path``; a :class:`BadRecord` naming the file if it cannot be
    read, is not JSON (corrupt, truncated) or lacks keys of :data:`RUN_KEYS` (incomplete)."""
    try:
        record = json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise BadRecord(f"{path}: unreadable run record ({type(err).__name__}: {err})") from None
    if not isinstance(record, dict):
        raise BadRecord(f"{path}: not a run record (JSON {type(record).__name__}, not an object)")
    missing = [k for k in RUN_KEYS if k not in record]
    if missing:
        raise BadRecord(f"{path}: incomplete run record (no {', '.join(missing)})")
    return record


def load_record(path: Path) -> dict | None:
    """The run saved at ``path``, or ``None`` if there is none (runs that failed are retried).

    A bad record (see :func:`read_record`) is reported with a :class:`BadRecordWarning`, moved
    aside to ``<name>.corrupt`` and treated as missing, so the run is computed again.
    """
    if not path.exists():
        return None
    try:
        record = read_record(path)
    except BadRecord as err:
        _move_aside(path, str(err), "the run is computed again")
        return None
    return None if record.get("status") == "error" else record


def save_run(path: Path, record: dict, series: dict[str, np.ndarray]) -> None:
    """Write a run's per-cycle ``series`` (``path`` with suffix ``.npz``) and its ``record``."""
    if series:
        atomic_write(path.with_suffix(".npz"), lambda f: np.savez_compressed(f, **series))
    text = json.dumps(jsonable(record), indent=1).encode()
    atomic_write(path, lambda f: f.write(text))


def load_series(path: Path) -> dict[str, np.ndarray] | None:
    """The per-cycle series saved by :func:`save_run` at ``path`` (the ``.npz`` file; a run
    record's path is taken with suffix ``.npz``): ``{"rmse.a": (Ko+1,), ..., "tto": (Ko+1,),
    "masko": (Ko+1,)}`` (the observation times and scored cycles are in files written since they
    were added). ``None`` if there is none (a run that failed); a file that cannot be read is
    reported with a :class:`BadRecordWarning` naming it (and left in place) and gives ``None``.
    """
    path = Path(path).with_suffix(".npz")
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: np.asarray(data[k]) for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:  # corrupt or truncated
        warnings.warn(f"{path}: unreadable series ({type(err).__name__}: {err}); skipped",
                      BadRecordWarning, stacklevel=2)
        return None


def _move_aside(path: Path, problem: str, then: str) -> None:
    """Rename a bad file to ``<name>.corrupt`` and warn, naming it (:class:`BadRecordWarning`)."""
    aside = path.with_name(path.name + ".corrupt")
    try:
        os.replace(path, aside)
        where = f"moved to {aside.name}"
    except OSError as err:
        where = f"could not be moved aside: {err}"
    warnings.warn(f"{problem}; {where}, {then}", BadRecordWarning, stacklevel=3)


def load_tuned(path: Path) -> dict | None:
    """The saved outcome ``{"params": {...}, "value": float}`` of a tuning, or ``None`` if there is
    none; a corrupt or incomplete file is moved aside with a warning (and the tuning repeated)."""
    if not path.exists():
        return None
    try:
        saved = json.loads(path.read_bytes())
        if not (isinstance(saved, dict) and isinstance(saved.get("params"), dict)
                and isinstance(saved.get("value"), (int, float))):
            raise ValueError("no params and value")
    except (OSError, UnicodeDecodeError, ValueError) as err:
        _move_aside(path, f"{path}: unreadable tuning result ({type(err).__name__}: {err})",
                    "the filter is tuned again")
        return None
    return saved


def load_model(path: Path):
    """The learned filter saved at ``path``, or ``None`` if there is none; a file that cannot be
    loaded (corrupt, old format, unknown class) is moved aside with a warning (and retrained)."""
    from .filters.learned import load_filter

    if not path.exists():
        return None
    try:
        return load_filter(path)
    except (ValueError, OSError, RuntimeError) as err:
        _move_aside(path, f"{path}: cannot load the trained model ({err})", "the filter is trained again")
        return None
