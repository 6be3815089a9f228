"""Results of an experiment list: records as data frames, comparison tables and data sets.

Each run is a *record*, a flat dict (see :mod:`dafilters.runs`); :class:`Results` groups them by
HMM and filter setting, averages over seeds, prints tables (:mod:`dafilters.tables`) and gives
the per-cycle series as an ``xarray.Dataset`` (:mod:`dafilters.results_data`).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .runs import AVERAGES
from .store import RUN_KEYS, BadRecord, BadRecordWarning, jsonable, read_record
from .tables import format_setting, format_uq, hmm_table

if TYPE_CHECKING:
    import xarray

__all__ = ["Results", "format_uq", "format_setting"]

#: Per-cycle series of a record: in memory (``{"rmse.a": (Ko+1,), ...}``), the ``.npz`` file
#: they were saved to, or ``None`` (none kept).
Series = dict[str, np.ndarray] | Path | None


class Results:
    """The records of an experiment list: one dict per (HMM, filter, seed) run."""

    def __init__(self, records: list[dict], series: Sequence[Series] | None = None):
        """``series[i]``: the per-cycle series of ``records[i]`` (see :data:`Series`), if kept."""
        self.records = records
        self.series: list[Series] = list(series) if series is not None else [None] * len(records)
        if len(self.series) != len(records):
            raise ValueError(f"{len(self.series)} series for {len(records)} records")

    @classmethod
    def load(cls, folder: str | os.PathLike) -> Results:
        """Read every run saved in ``folder`` (by ``Experiments(..., save_to=folder)``).

        The per-cycle series (``<key>.npz`` beside each ``<key>.json``) are read only when asked
        for (:meth:`to_xarray`). Temporary files (``.tmp-*``), tuned settings (``tuned-*.json``)
        and JSON files that are not run records are ignored; a run record that cannot be read
        (corrupt, truncated, or missing keys of :data:`~dafilters.store.RUN_KEYS`) is skipped with
        a :class:`~dafilters.store.BadRecordWarning` naming the file.
        """
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"no saved runs in {folder}: no such folder")
        paths = [p for p in Path(folder).glob("*.json")
                 if not p.name.startswith((".tmp-", "tuned-")) and p.is_file()]
        records, series = [], []
        for path in sorted(paths, key=lambda p: p.stat().st_mtime):
            try:
                records.append(read_record(path))
                series.append(path.with_suffix(".npz"))
            except BadRecord as err:
                if _looks_like_record(path):
                    warnings.warn(f"{err}; skipped", BadRecordWarning, stacklevel=2)
        if not records:
            raise FileNotFoundError(f"no saved runs in {folder}")
        return cls(records, series)

    def runs(self) -> pd.DataFrame:
        """One row per run (settings expanded into columns; a setting whose name is taken by a
        column of the run, e.g. a learned filter's training ``seed``, becomes ``param.<name>``)."""
        rows = []
        labels = hmm_labels(self.records)
        for r in self.records:
            row = {k: v for k, v in r.items() if k not in ("params", "traceback")
                   and not k.startswith("rank_hist")}
            row["hmm_id"] = _hmm_id(r)
            row["hmm"] = labels[row["hmm_id"]]
            row.update({(f"param.{k}" if k in row else k): v for k, v in r["params"].items()})
            rows.append(row)
        return pd.DataFrame(rows)

    def param_names(self) -> list[str]:
        names: list[str] = []
        for r in self.records:
            names += [k for k in r["params"] if k not in names]
        return names

    def groups(self) -> list[list[int]]:
        """The indices of the records of each row of :meth:`frame`: one list per (HMM, filter
        setting), in the order they first appear. A (HMM, setting, seed) saved twice (stale
        files) counts once: the last one read."""
        keys = [_setting_key(r) for r in self.records]
        last = {(k, r["seed"]): i for i, (k, r) in enumerate(zip(keys, self.records))}
        out: dict[tuple, list[int]] = {}
        for i, (k, r) in enumerate(zip(keys, self.records)):
            out.setdefault(k, [])
            if last[(k, r["seed"])] == i:
                out[k].append(i)
        return list(out.values())

    def frame(self) -> pd.DataFrame:
        """One row per (HMM, filter setting), averaged over the seeds that ran to the end.

        Columns, settings first: ``hmm, hmm_id, filter, tuned, <hyper-parameters>, rmse.a,
        rmse.a.ci, spread.a, ..., rmse.f, ..., s_per_cycle, seeds, ok, lost, diverged, failed,
        status``. The ``.ci`` of a mean over ``n`` seeds is ``sqrt(sum ci_i^2) / n``. ``ok`` counts
        the seeds that ran to the end and are averaged, those that lost track (status ``lost``)
        included: ``lost`` marks them, in the counts and in ``status`` (e.g. ``"1/3 lost"``), but
        never changes the averages. Rows of one (HMM, setting) are grouped as :meth:`groups` says.
        """
        runs = self.runs()
        params = self.param_names()
        rows = []
        for idx in self.groups():
            g = runs.iloc[idx]
            ok = g[g["status"].isin(("ok", "lost"))]  # ran to the end: averaged
            first = self.records[idx[0]]
            row = {"hmm": g["hmm"].iloc[0], "hmm_id": g["hmm_id"].iloc[0], "filter": first["filter"],
                   "tuned": bool(first.get("tuned", False))}
            row.update({p: first["params"].get(p) for p in params})
            for m in AVERAGES:
                row[m] = ok[m].mean() if len(ok) else np.nan
                row[m + ".ci"] = (np.sqrt(np.sum(ok[m + ".ci"] ** 2)) / len(ok)
                                  if len(ok) else np.nan)
            row["s_per_cycle"] = ok["s_per_cycle"].mean() if len(ok) else np.nan
            n_lost = int((g["status"] == "lost").sum())
            n_div = int((g["status"] == "diverged").sum())
            n_err = int((g["status"] == "error").sum())
            row.update(seeds=len(g), ok=len(ok), lost=n_lost, diverged=n_div, failed=n_err)
            row["status"] = _status(len(g), n_div, n_err, n_lost)
            rows.append(row)
        columns = ["hmm", "hmm_id", "filter", "tuned", *params,
                   *(c for m in AVERAGES for c in (m, m + ".ci")), "s_per_cycle",
                   "seeds", "ok", "lost", "diverged", "failed", "status"]
        df = pd.DataFrame(rows, columns=columns)
        for p in params:  # keep ints as ints and absent settings as None
            df[p] = pd.Series([row[p] for row in rows], dtype=object)
        return df

    def best(self, over: str | Sequence[str], metric: str = "rmse.a") -> pd.DataFrame:
        """The best setting over some dimensions (like DAPPER's "optim" view of a grid search).

        For each combination of the *other* settings (HMM, filter class and hyper-parameters not in
        ``over``), keep the row of :meth:`frame` with the lowest ``metric`` among rows that ran.

        >>> results.best(over=["infl", "loc_rad"])  # best inflation and radius for each N
        """
        over = [over] if isinstance(over, str) else list(over)
        df = self.frame()
        missing = [d for d in over if d not in df.columns or df[d].isna().all()]
        if missing:
            used = [p for p in self.param_names() if df[p].notna().any()]
            raise ValueError(f"no such setting(s) {missing} in these runs; settings: {used}")
        keys = ["hmm", "filter"] + [p for p in self.param_names() if p not in over]
        ran = df[df[metric].notna()]
        # str keys (None and NaN settings as text): pandas' string dtype would drop them as missing
        groups = ran.groupby([ran[k].map(str) for k in keys], sort=False)
        return ran.loc[groups[metric].idxmin().to_numpy()].reset_index(drop=True)

    def table(self, metrics: Sequence[str] = ("rmse.a", "spread.a", "crps.a", "rmse.f"),
              print_it: bool = True, tablefmt: str = "simple",
              best_over: str | Sequence[str] | None = None) -> str:
        """A comparison table per HMM: the settings that tell the rows apart, ``metric ± ci``,
        ms per cycle and, unless every run went well, seeds and status (see
        :mod:`dafilters.tables`: settings shared by the rows are on one line above the table).

        With ``best_over``, only the best setting over those dimensions is shown (:meth:`best`).
        """
        df = self.frame() if best_over is None else self.best(best_over, metric=metrics[0])
        have: dict[str, set[str]] = {}
        for r in self.records:
            have.setdefault(r["filter"], set()).update(r["params"])
        text = "\n\n".join(hmm_table(hmm, g, self.param_names(), have, metrics, tablefmt)
                            for hmm, g in df.groupby("hmm", sort=False))
        if print_it:
            print(text)
        return text

    def to_xarray(self) -> xarray.Dataset:
        """The runs as an ``xarray.Dataset``: per-cycle series and time averages over the
        dimensions ``run`` (the rows of :meth:`frame`), ``seed`` and ``ko`` (observation cycles),
        with the settings as coordinates; see :func:`dafilters.results_data.to_dataset`."""
        from .results_data import to_dataset

        return to_dataset(self)

    def __repr__(self) -> str:
        return f"Results({len(self.records)} runs)"


def _setting_key(record: dict) -> tuple[str, str, str]:
    """What makes two records rows of one (HMM, filter setting): the HMM identity, the filter
    class and its settings (not the name, whose format may change)."""
    params = json.dumps(jsonable(record["params"]), sort_keys=True, default=repr)
    return _hmm_id(record), record["filter"], params


def _hmm_id(record: dict) -> str:
    """The HMM identity of a record (records saved before identities existed: their name)."""
    return record.get("hmm_id") or f"name:{record['hmm']}"


def hmm_labels(records: Sequence[dict]) -> dict[str, str]:
    """A table label per HMM identity: its name, followed by ``[<id>]`` where several HMMs of
    one name (e.g. two observation-noise levels) appear in the same records."""
    names: dict[str, str] = {}
    for r in records:
        names.setdefault(_hmm_id(r), r["hmm"])
    shared = {n for n in names.values() if list(names.values()).count(n) > 1}
    return {i: (f"{n} [{i.removeprefix('name:')[:8]}]" if n in shared else n) for i, n in names.items()}


def _looks_like_record(path: Path) -> bool:
    """Whether ``path`` was meant to hold a run record: not JSON at all (corrupt, truncated), or a
    JSON object with some of the keys of a run record (incomplete); other JSON is a stray file."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError, ValueError):
        return True
    return isinstance(data, dict) and any(k in data for k in RUN_KEYS if k != "params")


def _status(n: int, n_div: int, n_err: int, n_lost: int = 0) -> str:
    """The status of a row of ``n`` seeds: ``"ok"``, or the counts of the others, e.g.
    ``"1/3 lost, 1/3 diverged"`` (lost: ran to the end but lost track of the truth)."""
    counts = ((n_lost, "lost"), (n_div, "diverged"), (n_err, "failed"))
    parts = [f"{k}/{n} {what}" for k, what in counts if k]
    return ", ".join(parts) if parts else "ok"
