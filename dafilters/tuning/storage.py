"""Optuna storages and the content keys that name studies in them."""

from __future__ import annotations

import dataclasses
import os
import random
import time
import warnings
from collections.abc import Sequence
from typing import Any

from ..filters.base import Filter
from ..hmm import HMM
from ..identity import content_hash

KEY_ATTR, PARTS_ATTR = "dafilters.key", "dafilters.key_parts"


def make_storage(storage: Any):
    """An Optuna storage from a spec: ``None`` (in memory), ``"study.db"`` or ``"sqlite:///x.db"``
    or any RDB URL (with heartbeats, so a killed worker's trial is marked failed), ``"x.log"`` or
    ``"journal:x.log"`` (a journal file, safe for several processes on one file system), or an
    Optuna storage object."""
    import optuna

    if storage is None or not isinstance(storage, (str, os.PathLike)):
        return storage
    spec = os.fspath(storage)
    if spec.startswith("journal:") or spec.endswith((".log", ".journal")):
        path = spec.removeprefix("journal:")
        backend = optuna.storages.journal.JournalFileBackend(path)
        return optuna.storages.JournalStorage(backend)
    if spec.endswith(".db") and "://" not in spec:
        spec = f"sqlite:///{os.path.abspath(spec)}"
    from sqlalchemy.exc import IntegrityError, OperationalError

    for attempt in range(10):  # processes starting together race to create the schema (a locked
        # database, or the other process's schema version row inserted first)
        try:
            with warnings.catch_warnings():  # heartbeats are marked experimental in Optuna
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(spec, heartbeat_interval=30, grace_period=90)
        except (OperationalError, IntegrityError):
            if attempt == 9:
                raise
            time.sleep(0.2 + 0.3 * random.random())
    raise AssertionError("unreachable")


def study_key(flt: Filter, hmm: HMM, space: dict[str, tuple], seeds: Sequence[int],
              metric: str) -> dict[str, str]:
    """What the scores of a study's trials depend on, as content hashes (see
    :func:`dafilters.identity.content_hash`): ``hmm`` (``hmm.fingerprint()``), ``filter`` (the class
    and the settings not tuned), ``seeds``, ``metric`` and ``space`` (the resolved search space).

    Equal settings give equal keys (``infl=1`` and ``infl=1.0``, ``seeds=(0, 1)`` and ``[0, 1]``).
    The number of trials, the sampler seed and the pruner are not part of the key: a call with more
    trials continues the study.
    """
    fixed = {f.name: getattr(flt, f.name) for f in dataclasses.fields(flt) if f.name not in space}
    own = flt.identity() if callable(getattr(flt, "identity", None)) else None
    if isinstance(own, dict):  # a filter that identifies itself (e.g. trained weights) by content
        fixed |= {k: v for k, v in own.items() if k not in space}
    return {"hmm": str(hmm.fingerprint()),
            "filter": content_hash([type(flt), fixed], path=type(flt).__name__),
            "seeds": content_hash([int(s) for s in seeds]),
            "metric": metric,
            "space": content_hash(space)}


def default_study_name(flt: Filter, hmm: HMM, metric: str, key: dict[str, str]) -> str:
    """A readable prefix and 16 hex digits of the content key, e.g.
    ``EnKF|Lorenz96.sakov2008|rmse.a|3f09c2e1d4b5a687``."""
    return f"{type(flt).__name__}|{hmm.name}|{metric}|{content_hash(key, length=16)}"


def _check_key(study: Any, key: dict[str, str]) -> None:
    """Record ``key`` on a new study; refuse a stored study whose recorded key differs."""
    digest = content_hash(key)
    stored = study.user_attrs.get(KEY_ATTR)
    if stored == digest:
        return
    if stored is None and not study.trials:
        study.set_user_attr(KEY_ATTR, digest)
        study.set_user_attr(PARTS_ATTR, key)
        return
    if stored is None:
        raise ValueError(f"study {study.study_name!r} holds trials but no record of the settings they "
                         "were run with (made outside dafilters.tune or by an older version); pass "
                         "another study_name, or none to get the study of these settings")
    old = study.user_attrs.get(PARTS_ATTR) or {}
    differ = [part for part, value in key.items() if old.get(part) != value]
    raise ValueError(f"study {study.study_name!r} in this storage was run with other settings "
                     f"({', '.join(differ) or 'key'} differ), so its trials do not score this call; "
                     "pass another study_name, or none to get the study of these settings")


def _in_memory(study: Any, storage: Any) -> Any:
    """A copy of ``study`` (held in ``storage``) in an in-memory storage, readable once its
    temporary journal is gone."""
    import optuna

    memory = optuna.storages.InMemoryStorage()
    optuna.copy_study(from_study_name=study.study_name, from_storage=storage, to_storage=memory)
    return optuna.load_study(study_name=study.study_name, storage=memory)
