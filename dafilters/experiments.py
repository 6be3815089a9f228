"""Experiments: run filters on HMMs over seeds, save each run as it finishes, tabulate.

>>> xps = Experiments(HMM, [EnKF("Sqrt", N=10, infl=1.02), EnKF("PertObs", N=10)],
...                   seeds=range(4), save_to="results/l63").run()
>>> print(xps.table())

Every filter sees the same truth and observations for a given (HMM, seed): the twin experiment is
simulated once per pair. A run that crashes is recorded with its error, one that diverges is
recorded as diverged; the rest of the table still runs. With ``save_to``, each run is written
(atomically) as soon as it finishes, and a re-run loads finished runs instead of repeating them.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
import multiprocessing
import os
import pickle
import sys
import tempfile
import traceback
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tabulate import tabulate
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from .filters.base import Filter
from .filters.learned import LearnedFilter, load_filter
from .hmm import HMM
from .stats import METRICS
from .tuning import Tuned

__all__ = ["Experiments", "Results", "run_key", "format_uq"]

#: Time averages reported for every run (each with its ``.ci``).
AVERAGES = tuple(f"{m}.{fa}" for fa in "af" for m in METRICS)


def run_key(hmm: HMM, flt: Filter, seed: int) -> str:
    """A stable file name for one (HMM, filter setting, seed) run."""
    text = f"{hmm.fingerprint()}|{flt.name}|{seed}"
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _atomic_write(path: Path, write) -> None:
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


def _jsonable(v: Any) -> Any:
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    return v


def new_record(hmm: HMM, flt: Filter, seed: int) -> dict[str, Any]:
    """The record of a run before it runs: HMM, filter, settings, seed, status ``'ok'``."""
    return {"hmm": hmm.name, "filter": type(flt).__name__, "name": flt.name, "params": flt.params(),
            "seed": int(seed), "status": "ok", "error": None, "diverged_at": None,
            "n_cycles": hmm.tseq.Ko + 1}


def error_record(record: dict[str, Any], error: str, tb: str | None = None) -> dict[str, Any]:
    """Mark ``record`` as failed with ``error``: status ``'error'`` and NaN statistics."""
    record.update(status="error", error=error, s_per_cycle=np.nan)
    if tb is not None:
        record["traceback"] = tb
    record.update({name: np.nan for name in AVERAGES})
    record.update({name + ".ci": np.nan for name in AVERAGES})
    return record


def run_one(hmm: HMM, flt: Filter, seed: int, xx: np.ndarray, yy, progress: bool = False,
            ) -> tuple[dict, dict[str, np.ndarray]]:
    """Run one filter on one twin experiment; never raises for a failing filter.

    Returns the record (a flat dict: settings, status, time averages, timing) and the per-cycle
    series (``{"rmse.a": (Ko+1,), ...}``).
    """
    record = new_record(hmm, flt, seed)
    series: dict[str, np.ndarray] = {}
    try:
        stats = flt.assimilate(hmm, xx, yy, seed=seed, progress=progress)
    except Exception as err:  # a crashing filter is recorded, and the table goes on
        return error_record(record, f"{type(err).__name__}: {err}", traceback.format_exc(limit=-4)), series
    if stats.diverged:
        record["status"] = "diverged"
        record["diverged_at"] = stats.diverged_at
        record["error"] = stats.error
    record.update(stats.averages())
    record["s_per_cycle"] = stats.s_per_cycle
    record["wall_s"] = stats.wall_s
    if stats.rank_hist is not None:
        record["rank_hist.a"] = stats.rank_hist["a"].tolist()
        record["rank_hist.f"] = stats.rank_hist["f"].tolist()
    series = dict(stats.series)
    return record, series


_TWINS: dict[tuple[str, int], tuple] = {}


def _twin(hmm: HMM, seed: int) -> tuple:
    """The twin experiment of (hmm, seed), simulated once per process (a small cache)."""
    key = (hmm.fingerprint(), seed)
    if key not in _TWINS:
        if len(_TWINS) >= 4:
            _TWINS.pop(next(iter(_TWINS)))
        _TWINS[key] = hmm.simulate(seed)
    return _TWINS[key]


def _execute(task: tuple[HMM, Filter, int, bool]) -> tuple[dict, dict]:
    """Run one task in this process."""
    hmm, flt, seed, progress = task
    return run_one(hmm, flt, seed, *_twin(hmm, seed), progress=progress)


def _execute_in_worker(task: tuple[HMM, Filter, int, bool]) -> tuple[dict, dict]:
    """Run one task in a pool or MPI worker: one BLAS thread per worker."""
    with threadpool_limits(limits=1):
        return _execute(task)


_FORKED: list[tuple] = []


def _execute_forked(index: int) -> tuple[dict, dict]:
    """Pool worker: the tasks were left in memory before the fork (nothing to pickle but the index)."""
    return _execute_in_worker(_FORKED[index])


class Experiments:
    """A list of (HMM, filter, seed) runs.

    Args:
        hmm: one HMM or a sequence of HMMs.
        filters: filters (see :meth:`grid` for cartesian products), or :class:`~dafilters.Tuned`
            entries, which are tuned on their own seeds before they run on ``seeds``.
        seeds: the experiment seeds; each seeds the truth, the observations and the filter's stream.
        save_to: a folder; each run is saved there as it finishes, and runs already there are
            loaded instead of repeated (tuned settings too).
        models_dir: where learned filters trained by the experiments are saved and reloaded from
            (default: ``save_to/models`` when ``save_to`` is given).
    """

    def __init__(self, hmm: HMM | Sequence[HMM], filters: Filter | Tuned | Sequence[Filter | Tuned],
                 seeds: Iterable[int] = (0,), save_to: str | os.PathLike | None = None,
                 models_dir: str | os.PathLike | None = None):
        self.hmms = [hmm] if isinstance(hmm, HMM) else list(hmm)
        self.filters = [filters] if isinstance(filters, (Filter, Tuned)) else list(filters)
        for f in self.filters:
            if not isinstance(f, (Filter, Tuned)):
                raise TypeError(f"not a Filter: {f!r}")
        for h in self.hmms:
            if not isinstance(h, HMM):
                raise TypeError(f"not an HMM: {h!r}")
        self.seeds = [int(s) for s in seeds]
        if not (self.hmms and self.filters and self.seeds):
            raise ValueError("Experiments needs at least one HMM, one filter and one seed")
        for t in self.filters:
            if isinstance(t, Tuned) and set(t.tune_seeds) & set(self.seeds):
                raise ValueError(f"{t.name}: tuning seeds {sorted(set(t.tune_seeds) & set(self.seeds))} "
                                 "are also evaluation seeds; tables never score on tuning seeds")
        self.save_to = Path(save_to) if save_to is not None else None
        if models_dir is None and self.save_to is not None:
            models_dir = self.save_to / "models"
        self.models_dir = Path(models_dir) if models_dir is not None else None

    @staticmethod
    def grid(cls: type[Filter], **params) -> list[Filter]:
        """The cartesian product of settings: list-like values are dimensions, others fixed.

        >>> Experiments.grid(EnKF, upd_a="Sqrt", N=[10, 20], infl=[1.0, 1.02])  # 4 filters
        """
        dims = {k: list(v) for k, v in params.items()
                if isinstance(v, (list, tuple, range, np.ndarray))}
        fixed = {k: v for k, v in params.items() if k not in dims}
        def plain(v):  # numpy scalars would show as np.float64(...) in names and tables
            return v.item() if isinstance(v, np.generic) else v

        return [cls(**fixed, **{k: plain(v) for k, v in zip(dims, values)})
                for values in itertools.product(*dims.values())]

    def __len__(self) -> int:
        return len(self.hmms) * len(self.filters) * len(self.seeds)

    def run(self, progress: bool | None = None, workers: int = 1, backend: str = "processes") -> Results:
        """Run every (HMM, filter, seed) and return the :class:`Results`.

        Args:
            progress: progress bars (over runs, and over the cycles of each serial run); ``None``
                shows them on a terminal only.
            workers: parallel runs. ``backend="processes"`` uses a pool of forked processes on this
                machine (one BLAS thread each); ``backend="mpi"`` uses ``mpi4py.futures`` (launch
                with ``mpiexec -n K python -m mpi4py.futures script.py``; ``workers`` is then the
                pool size requested from MPI). Results are identical to a serial run.
        """
        if backend not in ("processes", "mpi"):
            raise ValueError(f"unknown backend {backend!r}; use 'processes' or 'mpi'")
        if self.save_to is not None:
            self.save_to.mkdir(parents=True, exist_ok=True)
        show = sys.stderr.isatty() if progress is None else bool(progress)
        plan = [(hmm, flt, extra) for hmm in self.hmms for flt, extra in self._settings(hmm, show)]
        tasks = [(hmm, flt, seed, extra) for hmm, flt, extra in plan for seed in self.seeds]
        tasks.sort(key=lambda t: (self.hmms.index(t[0]), t[2]))  # same (hmm, seed) together
        records: list[dict | None] = [self._load(hmm, flt, seed) for hmm, flt, seed, _ in tasks]
        for i, (hmm, flt, seed, extra) in enumerate(tasks):
            if records[i] is None and "tune_error" in extra:  # nothing to run: its tuning failed
                records[i] = error_record(new_record(hmm, flt, seed), extra["tune_error"]) | extra
        todo = [i for i, r in enumerate(records) if r is None]
        bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), desc="experiments",
                   disable=not show, unit="run")
        inner = show and workers == 1 and backend == "processes"
        jobs = [(tasks[i][0], tasks[i][1], tasks[i][2], inner) for i in todo]
        for i, (record, series) in zip(todo, self._map(jobs, workers, backend)):
            hmm, flt, seed, extra = tasks[i]
            record.update(extra)
            self._save(hmm, flt, seed, record, series)
            if record["status"] != "ok":
                tqdm.write(f"[dafilters] {record['name']} seed={seed}: {record['status']} "
                           f"({record['error']})", file=sys.stderr)
            records[i] = record
            bar.set_postfix_str(f"{hmm.name} {flt.name} seed={seed}", refresh=False)
            bar.update()
        bar.close()
        return Results(records)

    def _map(self, jobs: list[tuple], workers: int, backend: str):
        """Yield ``(record, series)`` for each job, in order."""
        if backend == "mpi":
            from mpi4py.futures import MPIPoolExecutor

            with MPIPoolExecutor(max_workers=workers if workers > 1 else None) as pool:
                yield from pool.map(_execute_in_worker, jobs)
        elif workers > 1 and len(jobs) > 1 and "jax" in sys.modules:
            # jax's runtime does not survive fork: fresh worker processes from a fork server
            # (a fresh interpreter, without jax's threads), with the jobs pickled to them
            try:
                pickle.dumps(jobs[0])
            except Exception as err:
                raise ValueError("with jax loaded, workers cannot be forked and the runs must be "
                                 f"pickled to them, but they cannot ({err}); define the model at "
                                 "module level, or run with workers=1") from err
            ctx = multiprocessing.get_context("forkserver")
            with ctx.Pool(min(workers, len(jobs))) as pool:
                yield from pool.imap(_execute_in_worker, jobs)
        elif workers > 1 and len(jobs) > 1:
            _FORKED[:] = jobs
            try:
                ctx = multiprocessing.get_context("fork")
                with ctx.Pool(min(workers, len(jobs))) as pool:
                    yield from pool.imap(_execute_forked, range(len(jobs)))
            finally:
                _FORKED.clear()
        else:
            yield from map(_execute, jobs)

    def _settings(self, hmm: HMM, progress: bool) -> list[tuple[Filter, dict]]:
        """The filter settings to run on ``hmm``: tuned entries are tuned (or reloaded) first."""
        out = []
        for entry in self.filters:
            if isinstance(entry, LearnedFilter):
                out.append(self._trained(entry, hmm, progress))
                continue
            if isinstance(entry, Filter):
                out.append((entry, {}))
                continue
            key = hashlib.sha1(f"{hmm.fingerprint()}|{entry.name}|{list(entry.tune_seeds)}"
                               f"|{entry.space}|{entry.metric}".encode()).hexdigest()[:16]
            path = None if self.save_to is None else self.save_to / f"tuned-{key}.json"
            if path is not None and path.exists():
                saved = json.loads(path.read_text())
                flt = dataclasses.replace(entry.filter, **saved["params"])
                value = saved["value"]
            else:
                if progress:
                    tqdm.write(f"[dafilters] tuning {entry.name} on {hmm.name}", file=sys.stderr)
                try:
                    result = entry.tune(hmm)
                except Exception as err:  # e.g. every trial diverged: recorded, the table goes on
                    tqdm.write(f"[dafilters] tuning {entry.name} failed: {err}", file=sys.stderr)
                    out.append((entry.filter, {"tuned": True, "tune_seeds": list(entry.tune_seeds),
                                               "n_trials": entry.n_trials,
                                               "tune_error": f"tuning failed: {type(err).__name__}: {err}"}))
                    continue
                flt, value = result.filter, result.value
                if path is not None:
                    text = json.dumps(_jsonable({"params": result.params, "value": value})).encode()
                    _atomic_write(path, lambda f, text=text: f.write(text))
            out.append((flt, {"tuned": True, "tune_seeds": list(entry.tune_seeds),
                              "n_trials": entry.n_trials, "tune_value": value}))
        return out

    def _trained(self, flt: LearnedFilter, hmm: HMM, progress: bool) -> tuple[Filter, dict]:
        """A learned filter trained once for ``hmm``: as given, reloaded from ``models_dir``, or
        trained now (and saved there)."""
        if not flt.matches(hmm):
            key = hashlib.sha1(f"{hmm.fingerprint()}|{flt.name}".encode()).hexdigest()[:16]
            path = None if self.models_dir is None else self.models_dir / f"{type(flt).__name__}-{key}.pt"
            if path is not None and path.exists():
                flt = load_filter(path)
            else:
                if progress:
                    tqdm.write(f"[dafilters] training {flt.name} on {hmm.name}", file=sys.stderr)
                flt = copy.deepcopy(flt).fit(hmm)
                if path is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    flt.save(path)
        return flt, {"train_s": flt.training.get("seconds"), "train_device": flt.training.get("device")}

    def _path(self, hmm: HMM, flt: Filter, seed: int) -> Path | None:
        return None if self.save_to is None else self.save_to / f"{run_key(hmm, flt, seed)}.json"

    def _load(self, hmm: HMM, flt: Filter, seed: int) -> dict | None:
        path = self._path(hmm, flt, seed)
        if path is None or not path.exists():
            return None
        record = json.loads(path.read_text())
        return None if record.get("status") == "error" else record  # errors are retried

    def _save(self, hmm: HMM, flt: Filter, seed: int, record: dict, series: dict) -> None:
        path = self._path(hmm, flt, seed)
        if path is None:
            return
        if series:
            _atomic_write(path.with_suffix(".npz"), lambda f: np.savez_compressed(f, **series))
        text = json.dumps(_jsonable(record), indent=1).encode()
        _atomic_write(path, lambda f: f.write(text))


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
        """Read every run saved in ``folder`` (by ``Experiments(..., save_to=folder)``)."""
        paths = sorted(Path(folder).glob("*.json"), key=lambda p: p.stat().st_mtime)
        if not paths:
            raise FileNotFoundError(f"no saved runs in {folder}")
        return cls([json.loads(p.read_text()) for p in paths])

    def runs(self) -> pd.DataFrame:
        """One row per run (settings expanded into columns; a setting whose name is taken by a
        column of the run, e.g. a learned filter's training ``seed``, becomes ``param.<name>``)."""
        rows = []
        for r in self.records:
            row = {k: v for k, v in r.items() if k not in ("params", "traceback")
                   and not k.startswith("rank_hist")}
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
        s_per_cycle, seeds, ok, diverged, failed, status``. The ``.ci`` of a mean over ``n`` seeds
        is ``sqrt(sum ci_i^2) / n``.
        """
        runs = self.runs()
        rows = []
        for (hmm, name), g in runs.groupby(["hmm", "name"], sort=False):
            ok = g[g["status"] == "ok"]
            first = next(r for r in self.records if r["hmm"] == hmm and r["name"] == name)
            row = {"hmm": hmm, "filter": g["filter"].iloc[0], "tuned": bool(first.get("tuned", False))}
            row.update(first["params"])
            for m in AVERAGES:
                row[m] = ok[m].mean() if len(ok) else np.nan
                row[m + ".ci"] = (np.sqrt(np.sum(ok[m + ".ci"] ** 2)) / len(ok)
                                  if len(ok) else np.nan)
            row["s_per_cycle"] = ok["s_per_cycle"].mean() if len(ok) else np.nan
            n_div = int((g["status"] == "diverged").sum())
            n_err = int((g["status"] == "error").sum())
            row.update(seeds=len(g), ok=len(ok), diverged=n_div, failed=n_err)
            row["status"] = _status(len(g), n_div, n_err)
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


def _status(n: int, n_div: int, n_err: int) -> str:
    if not (n_div or n_err):
        return "ok"
    parts = [f"{n_div}/{n} diverged"] * bool(n_div) + [f"{n_err}/{n} failed"] * bool(n_err)
    return ", ".join(parts)
