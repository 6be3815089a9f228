"""Tuning worker processes: each loads the shared study and runs trials; they end with their parent."""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .objective import Objective, _optimize
from .sampling import make_sampler
from .storage import make_storage


@dataclass
class _Job:
    """What a tuning worker process needs (passed as its argument, so it works under ``spawn``)."""

    storage: Any
    study_name: str
    objective: Objective
    n_trials: int
    seed: int
    parent: int
    tmpdir: str | None


PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
#: The signal a worker gets when its parent ends (``SIGTERM`` could come from the parent itself).
ORPHAN_SIGNAL = signal.SIGUSR1 if hasattr(signal, "SIGUSR1") else None


def _remove_if_orphaned(parent: int, tmpdir: str | None) -> None:
    """Remove the temporary journal folder if ``parent`` (which would remove it) has ended."""
    if tmpdir is not None and os.getppid() != parent:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _follow_parent(parent: int, tmpdir: str | None) -> None:
    """End this worker when ``parent`` ends: Linux sends :data:`ORPHAN_SIGNAL` then
    (``PR_SET_PDEATHSIG``), and a thread that watches ``os.getppid()`` sends it everywhere.

    Its handler removes the temporary journal folder and ends the worker. It runs in the main
    thread, so no journal write of this worker can recreate a file after the removal; the last
    worker to end leaves nothing behind. (At that signal ``os.getppid()`` may still name the dead
    parent, so the handler does not check it.)"""

    def orphaned(*_: Any) -> None:
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
        os._exit(1)

    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler (see _sigterm_exits)
    if ORPHAN_SIGNAL is not None:
        signal.signal(ORPHAN_SIGNAL, orphaned)
    if sys.platform.startswith("linux") and ORPHAN_SIGNAL is not None:
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(ORPHAN_SIGNAL), 0, 0, 0)
        except (OSError, AttributeError):  # no libc symbol: the watchdog alone
            pass
    if os.getppid() != parent:  # the parent ended before the death signal was armed
        orphaned()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        if ORPHAN_SIGNAL is not None:
            os.kill(os.getpid(), ORPHAN_SIGNAL)
            time.sleep(10.0)  # the main thread is stuck in a long call: end from here
        orphaned()

    threading.Thread(target=watch, name="dafilters-parent-watch", daemon=True).start()


@contextlib.contextmanager
def _sigterm_exits() -> Iterator[None]:
    """While workers run, a ``SIGTERM`` to this process raises ``SystemExit`` (where its action is
    the default one, which would end the process at once), so the workers are stopped and the
    temporary journal is removed."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def exit_(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, exit_)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _worker(job: _Job) -> None:
    """A tuning worker process: load the shared study and run trials until the total is reached."""
    import optuna

    _follow_parent(job.parent, job.tmpdir)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=job.study_name, storage=make_storage(job.storage),
                                  sampler=make_sampler(job.seed, job.n_trials, shared=True))
        _optimize(study, job.objective, job.n_trials)
    finally:  # e.g. a journal error because another orphaned worker removed the folder
        _remove_if_orphaned(job.parent, job.tmpdir)


def default_start_method() -> str:
    """``fork`` on Linux (workers start at once), ``spawn`` elsewhere or once jax is loaded (jax
    does not survive ``fork``)."""
    return "fork" if sys.platform.startswith("linux") and "jax" not in sys.modules else "spawn"


def _run_workers(job: _Job, workers: int, start_method: str | None) -> None:
    """Run ``workers`` processes on the study; stop them all if this process is interrupted."""
    ctx = multiprocessing.get_context(start_method or default_start_method())
    procs = [ctx.Process(target=_worker, args=(job,), daemon=True, name=f"dafilters-tune-{i}")
             for i in range(workers)]
    try:
        with _sigterm_exits():
            for p in procs:
                p.start()
            for p in procs:
                p.join()
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            if p.pid is not None:
                p.join(5)
                if p.is_alive():
                    p.kill()
                    p.join()
    failed = [p.exitcode for p in procs if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"{len(failed)} tuning worker(s) failed (exit codes {failed})")
