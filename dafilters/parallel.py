"""Running jobs in parallel: a pool of forked processes on this machine, or MPI.

A job is ``(hmm, filter, seed, progress)``; each yields ``(record, series)`` as
:func:`dafilters.runs.execute` does, in order.
"""

from __future__ import annotations

import multiprocessing
import pickle
import sys
from collections.abc import Iterator

from .runs import execute, execute_in_worker

__all__ = ["run_jobs"]

_FORKED: list[tuple] = []


def _execute_forked(index: int) -> tuple[dict, dict]:
    """Pool worker: the tasks were left in memory before the fork (nothing to pickle but the index)."""
    return execute_in_worker(_FORKED[index])


def run_jobs(jobs: list[tuple], workers: int, backend: str) -> Iterator[tuple[dict, dict]]:
    """Yield ``(record, series)`` for each job, in order."""
    if backend == "mpi":
        from mpi4py.futures import MPIPoolExecutor

        with MPIPoolExecutor(max_workers=workers if workers > 1 else None) as pool:
            yield from pool.map(execute_in_worker, jobs)
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
            yield from pool.imap(execute_in_worker, jobs)
    elif workers > 1 and len(jobs) > 1:
        _FORKED[:] = jobs
        try:
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(min(workers, len(jobs))) as pool:
                yield from pool.imap(_execute_forked, range(len(jobs)))
        finally:
            _FORKED.clear()
    else:
        yield from map(execute, jobs)

