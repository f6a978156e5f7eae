"""The local backend: a sweep's runs in this process (one job) or in a pool of worker processes (`spawn`);
and `run_task`, the one way every backend trains a run.

Each run is `reslab.train.train`; whatever it raises is turned into an outcome (a plain dict), so one failing
run never stops the others. A stop (Ctrl-C, SIGTERM) reaches every run once: workers sit in their own process
group and the parent forwards the signal, so each running run checkpoints its exact position and the next
invocation resumes it.

Start once (issue 22): one process trains many runs, so a run pays neither interpreter start-up nor imports, and
the data is decoded once per process (`reslab.data.reusing`: the in-process path, and every pool worker for its
life). Each run gets `threads.threads_now(jobs)` torch threads (the cores free when the sweep starts, shared
among the jobs; see reslab/sweep/threads.py), set again before every run so that one run's train.threads does
not stick to the next; a run's own train.threads still wins.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import torch

from reslab.config import from_dict
from reslab.data import reuse_for_this_process, reusing
from reslab.errors import ReslabError, exception_line, first_line
from reslab.protocols import Observer
from reslab.runtime import stop_on_signal
from reslab.status import RunStatus
from reslab.sweep.threads import free_cores, threads_now
from reslab.train import Interrupted, RunResult, train
from reslab.train_packed import train_pack

from reslab.sweep.backends import Task  # noqa: F401  (the backends import it from here too)
from reslab.sweep.packing import units

if TYPE_CHECKING:
    from reslab.sweep.backends import BackendOptions, OnDone
    from reslab.sweep.folder import SweepFolder


class _FolderOf(Observer):
    """Remembers the run folder the trainer started, so a failure can name it."""

    def __init__(self) -> None:
        self.run_dir: Path | None = None

    def on_start(self, run_dir: Path, model: torch.nn.Module, cfg: Any, step: int) -> None:
        self.run_dir = Path(run_dir)


def run_task(task: Task, progress: bool = False) -> dict[str, Any]:
    """Train one run; never raises for the run's own failures. Returns {key, status, run_dir, error, ...}."""
    seen = _FolderOf()
    start = time.perf_counter()
    try:
        done: RunResult | BaseException = train(from_dict(task.cfg), observers=[seen], resume=task.resume,
                                                progress=progress)
    except (Exception, KeyboardInterrupt) as exc:
        done = exc
    return _outcome_of(task, done, seen.run_dir, time.perf_counter() - start)


def run_unit(unit: Sequence[Task], progress: bool = False) -> list[dict[str, Any]]:
    """A unit of `packing.units`: one run (`run_task`), or several trained as one pack (reslab.train_packed);
    each run's outcome as `run_task` gives it (a pack's runs share its wall-clock seconds)."""
    if len(unit) == 1:
        return [run_task(unit[0], progress)]
    seen = [_FolderOf() for _ in unit]
    start = time.perf_counter()
    if progress:
        print(f"training {len(unit)} runs as one pack: {', '.join(t.key for t in unit)}", file=sys.stderr)
    try:
        done = train_pack([from_dict(t.cfg) for t in unit], [[s] for s in seen], resume=[t.resume for t in unit])
    except (Exception, KeyboardInterrupt) as exc:
        done = [exc] * len(unit)
    return [_outcome_of(t, d, s.run_dir, time.perf_counter() - start) for t, d, s in zip(unit, done, seen)]


def _outcome_of(task: Task, done: RunResult | BaseException, run_dir: Path | None, seconds: float) -> dict[str, Any]:
    """A run's outcome from its result or what stopped it."""
    out: dict[str, Any] = {"key": task.key, "run_dir": task.resume, "error": None, "traceback": None}
    if isinstance(done, RunResult):
        s = done.summary
        out.update(status=s["status"], run_dir=str(done.run_dir), test_acc=s.get("test_acc"),
                   final_train_loss=s.get("final_train_loss"), train_seconds=s.get("train_seconds"))
    elif isinstance(done, Interrupted):
        out.update(status=RunStatus.INTERRUPTED, run_dir=str(done.run_dir))
    elif isinstance(done, KeyboardInterrupt):
        out.update(status=RunStatus.INTERRUPTED)
    elif isinstance(done, ReslabError):
        out.update(status=RunStatus.FAILED, error=first_line(done, type(done).__name__))
    else:  # a bug or a crash in one run: recorded with its traceback, the sweep goes on
        out.update(status=RunStatus.FAILED, error=exception_line(done),
                   traceback="".join(traceback.format_exception(done)))
    if run_dir is not None:
        out["run_dir"] = str(run_dir)
    out["seconds"] = seconds
    return out


def run_task_with_threads(task: Task, threads: int) -> dict[str, Any]:
    """`run_task` in a Ray or Slurm worker, on `threads` CPU threads (a run's train.threads still wins)."""
    torch.set_num_threads(threads)
    return run_task(task, progress=False)


def died(task: Task, exc: BaseException) -> dict[str, Any]:
    """The outcome of a run whose worker died (killed, out of memory) before it could say: its state is in its
    folder, if it made one."""
    return {"key": task.key, "status": RunStatus.FAILED, "run_dir": task.resume,
            "error": f"worker died: {exception_line(exc)}",
            "traceback": None, "seconds": None}


_stopping: Any = None  # in a worker: the parent's stop event (a run queued before a stop does not start)
_threads = 1  # in a worker: torch threads of each run (unless its train.threads says otherwise)
NOT_STARTED = "not started"


def _pool_task(unit: Sequence[Task]) -> list[dict[str, Any]]:
    """In a worker: a stop signal may end the run while it loads (train() takes over the signals while it
    trains); between runs the worker ignores it, so that the pool survives a stop."""
    if _stopping is not None and _stopping.is_set():
        return [{"key": task.key, "status": NOT_STARTED} for task in unit]
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        torch.set_num_threads(_threads)  # not the last run's train.threads
        return run_unit(unit, progress=False)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _init_worker(threads: int, gpus: Any, stopping: Any) -> None:
    """A worker's own process group (a terminal's Ctrl-C reaches the parent only, which forwards it once),
    its share of the CPU threads and, on CUDA, its own GPU."""
    global _stopping, _threads
    _stopping, _threads = stopping, threads
    reuse_for_this_process()  # decode each dataset once in this worker, for every run it trains
    os.setpgrp()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked by the parent while it started us
    if gpus is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpus.get())  # before CUDA starts in this process
    torch.set_num_threads(threads)


BIG_SWEEP = 1_000_000  # training image-epochs from which a second worker's start-up (a few seconds) is repaid
FULL_SPLIT = 50_000  # the images a run without data.train_size is counted as training on (MNIST's, CIFAR's split)


def default_jobs(tasks: Sequence[Task] = ()) -> int:
    """One job per GPU on CUDA. On a CPU one job, in this process, unless the sweep is big (BIG_SWEEP training
    image-epochs) and trains as several units (packs or runs): then one job per free core (`free_cores`: the cores
    not busy with other processes), each of one thread. Measured on the 2-core development CPU: idle, the MLP depth
    sweep (36 runs in 6 packs) took 43.0 s with 2 jobs against 70.2 s with 1 (commit bae565a); busy, two jobs of
    one thread ran 0.81x the runs/minute of one job (bench/sweep_jobs.py, 12 runs): a busy machine has one free
    core, so one job."""
    if torch.cuda.is_available():
        return max(1, torch.cuda.device_count())
    work = sum(int(t.cfg.get("train", {}).get("epochs") or 1)
               * int(t.cfg.get("data", {}).get("train_size") or FULL_SPLIT) for t in tasks)
    return free_cores() if work >= BIG_SWEEP and len(units(tasks)) > 1 else 1


def run_local(tasks: Sequence[Task], jobs: int, on_done: Callable[[dict[str, Any]], None]) -> bool:
    """Run `tasks`, `jobs` at a time, calling `on_done(outcome)` in this process as each ends; runs that can train
    as one pack do (reslab.sweep.packing).

    Returns False when the sweep was stopped (Ctrl-C, SIGTERM): running runs then checkpoint and report
    `interrupted`, and runs not yet started are left for the next invocation.
    """
    todo = units(tasks)
    if jobs <= 1:
        before, threads = torch.get_num_threads(), threads_now(1)  # this process's threads: restored after
        try:
            with reusing(), stop_on_signal(at_once=True):  # train() takes the signals over while a run trains
                for unit in todo:
                    torch.set_num_threads(threads)  # not the last run's train.threads
                    outcomes = run_unit(unit, progress=True)
                    for outcome in outcomes:
                        on_done(outcome)
                    if any(outcome["status"] is RunStatus.INTERRUPTED for outcome in outcomes):
                        return False
        except KeyboardInterrupt:  # between two runs: the next invocation starts the rest
            return False
        finally:
            torch.set_num_threads(before)
        return True
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    cuda = torch.cuda.is_available()
    gpus = ctx.Queue() if cuda else None
    for i in range(jobs if cuda else 0):
        gpus.put(i % torch.cuda.device_count())
    threads = threads_now(jobs)  # unless a run's config sets train.threads
    stopping = ctx.Event()
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker,
                               initargs=(threads, gpus, stopping))
    pending: dict[Future, tuple[Task, ...]] = {}
    stopped = False
    try:
        with stop_on_signal(at_once=True):
            # a worker starts (imports torch) before its initializer ignores SIGINT: a stop forwarded then would
            # kill it, break the pool and print tracebacks; it starts with SIGINT blocked (delivered here after)
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                pending = {pool.submit(_pool_task, unit): unit for unit in todo}
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    for outcome in _outcomes(future, pending.pop(future)):
                        on_done(outcome)
    except KeyboardInterrupt:
        stopped = True
        stopping.set()  # queued runs end at once as NOT_STARTED; none is cancelled here, since the pool's own thread
        # sets an exception on every future it still holds when a worker dies, and a cancelled one would raise
        for pid in list(getattr(pool, "_processes", {}) or {}):  # the workers: forward the stop, once
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGINT)
        for future in list(pending):
            try:
                outcomes = future.result()
            except BaseException:  # a worker that died in the stop: its run is resumed or started next time
                continue
            for outcome in outcomes:
                if outcome["status"] != NOT_STARTED:
                    on_done(outcome)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return not stopped


def _outcomes(future: Future, unit: Sequence[Task]) -> list[dict[str, Any]]:
    """The worker's outcomes, or failures when the worker itself died (killed, out of memory)."""
    try:
        return future.result()
    except BaseException as exc:  # BrokenProcessPool and the like
        return [died(task, exc) for task in unit]


@dataclass(frozen=True)
class LocalRunner:
    """The local backend's Runner: `jobs` processes (default: `default_jobs()`), never more than runs."""

    jobs: int | None

    def plan_line(self, tasks: Sequence[Task]) -> str:
        jobs = self._jobs(tasks)
        return f"with {jobs} job{'s' * (jobs > 1)}"

    def run(self, tasks: Sequence[Task], on_done: OnDone, folder: SweepFolder) -> bool:
        return run_local(tasks, self._jobs(tasks), on_done)

    def _jobs(self, tasks: Sequence[Task]) -> int:
        return min(self.jobs or default_jobs(tasks), max(1, len(units(tasks))))


def check(options: BackendOptions) -> None:
    """Nothing to check beyond what every backend checks."""


@contextlib.contextmanager
def connect(options: BackendOptions) -> Iterator[LocalRunner]:
    yield LocalRunner(options.jobs)
