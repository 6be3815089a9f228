"""Results of an experiment list: records as data frames and comparison tables.

Each run is a *record*, a flat dict (see :mod:`dafilters.runs`); :class:`Results` groups them by
HMM and filter setting, averages over seeds and prints tables.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tabulate import tabulate

from .runs import AVERAGES
from .store import RUN_KEYS, BadRecord, BadRecordWarning, read_record

__all__ = ["Results", "format_uq", "format_setting"]


def format_uq(mu: float, ci: float) -> str:
    """``0.1823, 0.0031 -> '0.182 ± 0.003'``: decimals set by the first significant digit of ci."""
    if not np.isfinite(mu):
        return "nan"
    if not np.isfinite(ci) or ci <= 1e-9 * max(abs(mu), 1e-300):
        return f"{mu:.4g}"
    decimals = int(min(6, max(0, -np.floor(np.log10(ci)))))
    return f"{mu:.{decimals}f} ± {ci:.{decimals}f}"


def format_setting(v: Any) -> str:
    """A hyper-parameter for a table: floats with 4 significant digits (tuned values are long)."""
    if v is None:
        return ""
    if isinstance(v, (float, np.floating)) and not float(v).is_integer():
        return f"{v:.4g}"
    return str(v)


class Results:
    """The records of an experiment list: one dict per (HMM, filter, seed) run."""

    def __init__(self, records: list[dict]):
        self.records = records

    @classmethod
    def load(cls, folder: str | os.PathLike) -> Results:
        """Read every run saved in ``folder`` (by ``Experiments(..., save_to=folder)``).

        Temporary files (``.tmp-*``), tuned settings (``tuned-*.json``) and JSON files that are
        not run records are ignored; a run record that cannot be read (corrupt, truncated, or
        missing keys of :data:`~dafilters.store.RUN_KEYS`) is skipped with a
        :class:`~dafilters.store.BadRecordWarning` naming the file.
        """
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"no saved runs in {folder}: no such folder")
        paths = [p for p in Path(folder).glob("*.json")
                 if not p.name.startswith((".tmp-", "tuned-")) and p.is_file()]
        records = []
        for path in sorted(paths, key=lambda p: p.stat().st_mtime):
            try:
                records.append(read_record(path))
            except BadRecord as err:
                if _looks_like_record(path):
                    warnings.warn(f"{err}; skipped", BadRecordWarning, stacklevel=2)
        if not records:
            raise FileNotFoundError(f"no saved runs in {folder}")
        return cls(records)

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

    def frame(self) -> pd.DataFrame:
        """One row per (HMM, filter setting), averaged over the seeds that ran to the end.

        Columns: ``hmm, filter, <hyper-parameters>, rmse.a, rmse.a.ci, spread.a, ..., rmse.f,
        s_per_cycle, seeds, ok, lost, diverged, failed, status``. The ``.ci`` of a mean over ``n``
        seeds is ``sqrt(sum ci_i^2) / n``. ``ok`` counts the seeds that ran to the end and are
        averaged, those that lost track (status ``lost``) included: ``lost`` marks them, in the
        counts and in ``status`` (e.g. ``"1/3 lost"``), but never changes the averages.
        """
        runs = self.runs()
        # a (HMM, setting, seed) saved twice (stale files) counts once: the last one read
        runs = runs.drop_duplicates(["hmm_id", "name", "seed"], keep="last")
        rows = []
        for (hmm_id, name), g in runs.groupby(["hmm_id", "name"], sort=False):
            ok = g[g["status"].isin(("ok", "lost"))]  # ran to the end: averaged
            first = next(r for r in self.records if _hmm_id(r) == hmm_id and r["name"] == name)
            row = {"hmm": g["hmm"].iloc[0], "hmm_id": hmm_id, "filter": g["filter"].iloc[0],
                   "tuned": bool(first.get("tuned", False))}
            row.update(first["params"])
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
        df = pd.DataFrame(rows)
        for p in self.param_names():  # keep ints as ints and absent settings as None
            df[p] = pd.Series([row.get(p) for row in rows], dtype=object)
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
        """A comparison table per HMM: settings, ``metric ± ci``, ms per cycle and status.

        With ``best_over``, only the best setting over those dimensions is shown (:meth:`best`).
        """
        df = self.frame() if best_over is None else self.best(best_over, metric=metrics[0])
        params = self.param_names()
        out = []
        for hmm, g in df.groupby("hmm", sort=False):
            used = [p for p in params if g[p].notna().any()]
            rows = []
            for _, r in g.iterrows():
                label = r["filter"] + (" (tuned)" if r["tuned"] else "")
                row = [label] + [format_setting(r[p]) for p in used]
                row += [format_uq(r[m], r[m + ".ci"]) for m in metrics]
                row += [f"{1e3 * r['s_per_cycle']:.3g}", f"{r['ok']}/{r['seeds']}", r["status"]]
                rows.append(row)
            head = ["filter"] + used + list(metrics) + ["ms/cycle", "seeds ok", "status"]
            out.append(f"{hmm}\n" + tabulate(rows, head, tablefmt=tablefmt, disable_numparse=True))
        text = "\n\n".join(out)
        if print_it:
            print(text)
        return text

    def __repr__(self) -> str:
        return f"Results({len(self.records)} runs)"


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
