"""Experiments: run filters on HMMs over seeds, save each run as it finishes, tabulate.

>>> xps = Experiments(HMM, [EnKF("Sqrt", N=10, infl=1.02), EnKF("PertObs", N=10)],
...                   seeds=range(4), save_to="results/l63").run()
>>> print(xps.table())

Every filter sees the same truth and observations for a given (HMM, seed): the twin experiment is
simulated once per pair. A run that crashes is recorded with its error, one that diverges is
recorded as diverged; the rest of the table still runs. With ``save_to``, each run is written
(atomically) as soon as it finishes, and a re-run loads finished runs instead of repeating them.
Runs are keyed on content (:func:`run_key`): the HMM's identity, the filter's settings and the seed.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .filters.base import Filter
from .filters.learned import LearnedFilter
from .hmm import HMM
from .identity import content_hash
from .parallel import check_backend, run_jobs
from .results import Results, format_setting, format_uq
from .runs import error_record, new_record
from .store import (
    atomic_write,
    check_saveable,
    check_writable,
    jsonable,
    load_model,
    load_record,
    load_tuned,
    save_run,
)
from .tuning import Tuned

__all__ = ["Experiments", "Results", "run_key", "filter_key", "format_uq", "format_setting"]


def filter_key(flt: Filter) -> dict:
    """What identifies a filter setting: its class and every field, hyper-parameters and the
    others (``device``, ``dtype``, ...) alike (``infl=1`` and ``infl=1.0``, ``N=10`` and
    ``N=np.int64(10)`` are one setting; see :mod:`dafilters.identity`). A trained learned filter
    is also identified by its weights and spec: two models with the same settings but other
    weights (fine-tuned from another, loaded from a file, trained by other code) are not one
    setting, and the runs saved for one are not the other's."""
    key = {"class": type(flt), "fields": {f.name: getattr(flt, f.name) for f in dataclasses.fields(flt)}}
    if isinstance(flt, LearnedFilter) and flt.trained:
        key |= {"nets": flt.nets, "spec": flt.spec}
    return key


def run_key(hmm: HMM, flt: Filter, seed: int) -> str:
    """A stable file name for one (HMM, filter setting, seed) run: a content hash of the HMM's
    identity (:meth:`~dafilters.hmm.HMM.fingerprint`), the filter's class and settings, and the seed."""
    return content_hash({"hmm": hmm.fingerprint(), "filter": filter_key(flt), "seed": int(seed)},
                        length=24)


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
            workers: parallel runs. ``backend="processes"`` uses a pool of processes on this
                machine (forked, one BLAS thread each; a worker that dies makes its run an error
                record); ``backend="mpi"`` uses ``mpi4py.futures`` (launch with ``mpiexec -n K
                python -m mpi4py.futures script.py``, else a ``RuntimeError``; ``workers`` is then
                the pool size requested from MPI). Results are identical to a serial run.

        With ``save_to``, settings that cannot be saved as JSON and a folder that cannot be written
        are errors before anything runs; a saved run that cannot be read back is reported (a
        :class:`~dafilters.store.BadRecordWarning`), moved aside to ``<name>.corrupt`` and run again.
        """
        check_backend(backend)
        if self.save_to is not None:
            self._check_save_to([e.filter if isinstance(e, Tuned) else e for e in self.filters])
        show = sys.stderr.isatty() if progress is None else bool(progress)
        plan = [(hmm, flt, extra) for hmm in self.hmms for flt, extra in self._settings(hmm, show)]
        if self.save_to is not None:  # tuned and trained settings too
            self._check_save_to([flt for _, flt, _ in plan])
        tasks = [(hmm, flt, seed, extra) for hmm, flt, extra in plan for seed in self.seeds]
        tasks.sort(key=lambda t: (self.hmms.index(t[0]), t[2]))  # same (hmm, seed) together
        records: list[dict | None] = [self._load(hmm, flt, seed) for hmm, flt, seed, _ in tasks]
        kept: list = [None if r is None else self._path(hmm, flt, seed).with_suffix(".npz")
                      for r, (hmm, flt, seed, _) in zip(records, tasks)]  # series, for to_xarray
        for i, (hmm, flt, seed, extra) in enumerate(tasks):
            if records[i] is None and "tune_error" in extra:  # nothing to run: its tuning failed
                records[i] = error_record(new_record(hmm, flt, seed), extra["tune_error"]) | extra
        todo = [i for i, r in enumerate(records) if r is None]
        bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), desc="experiments",
                   disable=not show, unit="run")
        inner = show and workers == 1 and backend == "processes"
        jobs = [(tasks[i][0], tasks[i][1], tasks[i][2], inner) for i in todo]
        for i, (record, series) in zip(todo, run_jobs(jobs, workers, backend)):
            hmm, flt, seed, extra = tasks[i]
            record.update(extra)
            if series:  # the chronology, so that saved series can be read back with their times
                series = {**series, "tto": hmm.tseq.tto, "masko": hmm.tseq.masko}
            self._save(hmm, flt, seed, record, series)
            kept[i] = series or None
            if record["status"] != "ok":
                tqdm.write(f"[dafilters] {record['name']} seed={seed}: {record['status']} "
                           f"({record['error']})", file=sys.stderr)
            records[i] = record
            bar.set_postfix_str(f"{hmm.name} {flt.name} seed={seed}", refresh=False)
            bar.update()
        bar.close()
        return Results(records, kept)

    def _settings(self, hmm: HMM, progress: bool) -> list[tuple[Filter, dict]]:
        """The filter settings to run on ``hmm``: tuned entries are tuned (or reloaded) first,
        learned filters trained (or reloaded)."""
        out = []
        for entry in self.filters:
            if isinstance(entry, LearnedFilter):
                out.append(self._trained(entry, hmm, progress))
            elif isinstance(entry, Filter):
                out.append((entry, {}))
            else:
                out.append(self._tuned(entry, hmm, progress))
        return out

    def _tuned(self, entry: Tuned, hmm: HMM, progress: bool) -> tuple[Filter, dict]:
        """The best setting of a :class:`Tuned` entry on ``hmm``: reloaded from ``save_to`` (keyed
        on the HMM's identity, the filter, the tuning seeds, trials, space and metric) or tuned now."""
        key = content_hash({"hmm": hmm.fingerprint(), "filter": filter_key(entry.filter),
                            "n_trials": entry.n_trials, "seeds": list(entry.tune_seeds),
                            "space": entry.space, "metric": entry.metric}, length=24)
        path = None if self.save_to is None else self.save_to / f"tuned-{key}.json"
        info = {"tuned": True, "tune_seeds": list(entry.tune_seeds), "n_trials": entry.n_trials}
        saved = None if path is None else load_tuned(path)
        if saved is not None:
            return dataclasses.replace(entry.filter, **saved["params"]), info | {"tune_value": saved["value"]}
        if progress:
            tqdm.write(f"[dafilters] tuning {entry.name} on {hmm.name}", file=sys.stderr)
        try:
            result = entry.tune(hmm)
        except Exception as err:  # e.g. every trial diverged: recorded, the table goes on
            tqdm.write(f"[dafilters] tuning {entry.name} failed: {err}", file=sys.stderr)
            return entry.filter, info | {"tune_error": f"tuning failed: {type(err).__name__}: {err}"}
        if path is not None:
            text = json.dumps(jsonable({"params": result.params, "value": result.value})).encode()
            atomic_write(path, lambda f: f.write(text))
        return result.filter, info | {"tune_value": result.value}

    def _trained(self, flt: LearnedFilter, hmm: HMM, progress: bool) -> tuple[Filter, dict]:
        """A learned filter trained once for ``hmm``: as given, reloaded from ``models_dir``, or
        trained now (and saved there)."""
        if not flt.matches(hmm):
            key = content_hash({"hmm": hmm.fingerprint(), "filter": filter_key(flt)}, length=24)
            path = None if self.models_dir is None else self.models_dir / f"{type(flt).__name__}-{key}.pt"
            old = None if path is None else load_model(path)
            if old is not None:
                flt = old
            else:
                if progress:
                    tqdm.write(f"[dafilters] training {flt.name} on {hmm.name}", file=sys.stderr)
                flt = copy.deepcopy(flt).fit(hmm)
                if path is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    flt.save(path)
        training = (dataclasses.asdict(flt.training) if dataclasses.is_dataclass(flt.training)
                    else None)
        return flt, {"train_s": flt.training_log.get("seconds"),
                     "train_device": flt.training_log.get("device"), "training": training}

    def _path(self, hmm: HMM, flt: Filter, seed: int) -> Path | None:
        """Where the run (hmm, flt, seed) is saved (``None`` without ``save_to``)."""
        return None if self.save_to is None else self.save_to / f"{run_key(hmm, flt, seed)}.json"

    def _load(self, hmm: HMM, flt: Filter, seed: int) -> dict | None:
        """The saved run, or ``None`` to run it (none saved, failed, or unreadable: moved aside)."""
        path = self._path(hmm, flt, seed)
        return None if path is None else load_record(path)

    def _save(self, hmm: HMM, flt: Filter, seed: int, record: dict, series: dict) -> None:
        """Save a finished run (its record and per-cycle series), if ``save_to`` is set."""
        path = self._path(hmm, flt, seed)
        if path is not None:
            save_run(path, record, series)

    def _check_save_to(self, filters: list[Filter]) -> None:
        """Raise before anything runs if a setting of ``filters`` cannot be saved as JSON, or if
        ``save_to`` cannot be created or written (the error names the filter or the folder)."""
        for flt in filters:
            check_saveable(flt.name, flt.params())
        check_writable(self.save_to)
