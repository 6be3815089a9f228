"""Running jobs in parallel: a pool of processes on this machine, or MPI.

A job is ``(hmm, filter, seed, progress)``; :func:`run_jobs` yields ``(record, series)`` for each
job, in order, as :func:`dafilters.runs.execute` does in a serial run.

Each process keeps what it needs between jobs in its own :class:`_Worker` (the jobs, the twin
experiments it simulated), made by the executor's initializer in each worker (a serial run keeps
its twin cache for the run alone): nothing is shared between processes or kept between runs.

The process pool is a :class:`concurrent.futures.ProcessPoolExecutor`. Its workers are forked
(nothing is pickled; the jobs reach them through the executor's initializer), or started by a fork
server when jax is loaded (jax does not survive a fork), or by the start method chosen with
:func:`multiprocessing.set_start_method` (``spawn``, ``forkserver``: the jobs are then pickled).
A worker that dies (killed, out of memory) does not hang the table: the jobs it may have been
running are run again one at a time, each in a process of its own, and the one that dies again
is recorded as an error (``worker process died: ...``); the other jobs go on in a fresh pool.
"""

from __future__ import annotations

import multiprocessing
import pickle
import signal
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.context import BaseContext
from typing import Any

from .extras import import_extra
from .runs import TwinCache, error_record, execute, execute_in_worker, new_record

__all__ = ["run_jobs", "check_backend", "start_method"]

Job = tuple  # (hmm, filter, seed, progress)
Output = tuple[dict, dict]


class _Worker:
    """What one worker process keeps between its tasks: the jobs of a process pool (sent once,
    through the executor's initializer: inherited by forked workers, pickled to spawned ones),
    the shared flags that tell the parent which jobs were started, and its twin cache."""

    def __init__(self, jobs: list[Job] | None, started: Any):
        self.jobs, self.started, self.twins = jobs, started, TwinCache()


#: This process's state as a worker, made by the executor's initializer (:func:`_init_worker`)
#: when the process starts serving a pool; ``None`` in the parent, which never runs pool tasks.
_worker: _Worker | None = None


def check_backend(backend: str) -> None:
    """Raise if ``backend`` cannot run here: unknown, or ``"mpi"`` without an MPI launch."""
    if backend not in ("processes", "mpi"):
        raise ValueError(f"unknown backend {backend!r}; use 'processes' or 'mpi'")
    if backend == "mpi":
        check_mpi()


def check_mpi() -> None:
    """Raise a ``RuntimeError`` unless MPI workers are available: the script was launched with
    ``mpiexec -n K python -m mpi4py.futures script.py``, or MPI has room to spawn workers (a
    universe larger than this job). Without either, ``MPIPoolExecutor`` fails to spawn and hangs."""
    MPI = import_extra("mpi4py.MPI", "mpi", "backend='mpi'")
    _core = import_extra("mpi4py.futures._core", "mpi", "backend='mpi'")
    if getattr(_core, "SharedPool", None) is not None:  # run by python -m mpi4py.futures
        return
    world = MPI.COMM_WORLD.Get_size()
    universe = MPI.COMM_WORLD.Get_attr(MPI.UNIVERSE_SIZE)
    if universe is not None and universe > world:  # room to spawn workers
        return
    how = ("not launched by an MPI launcher" if world == 1 else
           f"launched as {world} MPI processes without -m mpi4py.futures")
    raise RuntimeError(f"backend='mpi': this script was {how}, so there are no MPI workers to run "
                       "on. Launch it as: mpiexec -n K python -m mpi4py.futures script.py "
                       "(K >= 2: one process runs the script, K-1 run the experiments), or use "
                       "backend='processes'")


def start_method() -> str:
    """The start method of pool workers: the one set with :func:`multiprocessing.set_start_method`
    if any, else ``fork`` where available; ``forkserver`` instead of ``fork`` once jax is loaded."""
    method = multiprocessing.get_start_method(allow_none=True)
    if method is None:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    if method == "fork" and "jax" in sys.modules:
        method = "forkserver"
    return method


def run_jobs(jobs: list[Job], workers: int, backend: str, method: str | None = None,
             ) -> Iterator[Output]:
    """Yield ``(record, series)`` for each job, in order (identical to a serial run).

    ``method``: the start method of pool workers (default :func:`start_method`).
    """
    check_backend(backend)
    if backend == "mpi":
        MPIPoolExecutor = import_extra("mpi4py.futures", "mpi", "backend='mpi'").MPIPoolExecutor

        with MPIPoolExecutor(max_workers=workers if workers > 1 else None, initializer=_init_worker,
                             initargs=(None, None)) as pool:
            yield from pool.map(_run_job, jobs)
    elif workers > 1 and len(jobs) > 1:
        method = method or start_method()
        if method != "fork":
            check_picklable(jobs, method)
        yield from _pooled(jobs, min(workers, len(jobs)), multiprocessing.get_context(method))
    else:
        twins = TwinCache()
        for job in jobs:
            yield execute(job, twins)


def check_picklable(jobs: list[Job], method: str) -> None:
    """Raise a ``ValueError`` if the jobs cannot be sent to ``method``-started workers."""
    try:
        pickle.dumps(jobs)
    except Exception as err:
        jax = " (jax is loaded: workers cannot be forked)" if "jax" in sys.modules else ""
        raise ValueError(f"workers started by {method!r}{jax} need the runs pickled to them, but "
                         f"they cannot be ({err}); define the model and filters at module level, "
                         "or run with workers=1") from err


def _init_worker(jobs: list[Job] | None, started: Any) -> None:
    """Executor initializer: this process's :class:`_Worker` (the pool's jobs and started flags;
    ``None`` for MPI workers, which receive each job with its task)."""
    global _worker
    _worker = _Worker(jobs, started)


def _run_indexed(index: int) -> Output:
    """Process-pool task: flag job ``index`` as started, then run it."""
    _worker.started[index] = 1
    return execute_in_worker(_worker.jobs[index], _worker.twins)


def _run_job(job: Job) -> Output:
    """MPI task: run ``job`` with this worker's twin cache."""
    return execute_in_worker(job, _worker.twins)


def _pooled(jobs: list[Job], workers: int, ctx: BaseContext) -> Iterator[Output]:
    """The jobs' outputs in order, from a pool of ``workers`` processes; after a worker dies, the
    jobs it may have been running are run alone (:func:`_alone`) and the rest in a fresh pool."""
    done: dict[int, Output] = {}
    position = 0  # the next output to yield
    todo = list(range(len(jobs)))
    while todo:
        started = ctx.RawArray("b", len(jobs))
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                   initargs=(jobs, started))
        try:
            futures = {i: pool.submit(_run_indexed, i) for i in todo}
            for i in todo:
                try:
                    done[i] = futures[i].result()
                except BrokenProcessPool:
                    break
                while position in done:
                    yield done.pop(position)
                    position += 1
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        for i in _collect(todo, futures, started, done):
            done[i] = _alone(jobs[i], ctx)
        todo = [i for i in todo if i not in done and i >= position]
        while position in done:
            yield done.pop(position)
            position += 1


def _collect(todo: list[int], futures: dict[int, Future], started: Any,
             done: dict[int, Output]) -> list[int]:
    """After a pool broke: move the outputs it finished into ``done`` and return the jobs to run
    alone: those started and unfinished (one of them killed its worker), else the first left."""
    left = []
    for i in todo:
        f = futures[i]
        if i in done:
            continue
        if f.done() and not f.cancelled() and f.exception() is None:
            done[i] = f.result()
        else:
            left.append(i)
    return [i for i in left if started[i]] or left[:1]


def _alone(job: Job, ctx: BaseContext) -> Output:
    """Run ``job`` in a process of its own; an error record if that process dies."""
    receive, send = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_run_and_send, args=(job, send), daemon=True)
    process.start()
    send.close()
    try:
        kind, value = receive.recv()
    except EOFError:  # died before sending its output
        kind, value = "died", None
    finally:
        receive.close()
        process.join()
    if kind == "ok":
        return value
    hmm, flt, seed, _ = job
    if kind == "died":
        code = process.exitcode
        how = (f"killed by {signal.Signals(-code).name}" if code is not None and code < 0
               else f"exit code {code}")
        hint = " (out of memory?)" if code == -signal.SIGKILL else ""
        value = f"worker process died: {how}{hint} while running {flt.name} seed={seed}"
    return error_record(new_record(hmm, flt, seed), value), {}


def _run_and_send(job: Job, send: Any) -> None:
    """Target of :func:`_alone`: run the job and send ``("ok", output)`` (or the error)."""
    try:
        output = ("ok", execute_in_worker(job))
    except BaseException as err:  # a bug in the run itself: reported, not lost
        output = ("error", f"{type(err).__name__}: {err}")
    send.send(output)
    send.close()
