"""The Slurm backend (`reslab[slurm]`): a sweep's runs as one Slurm job array, submitted through submitit.

Each array task trains one run with `local.run_task`; this process waits for the array, reporting each run as its
task ends (submitit's job files and each task's stdout/stderr go to the sweep folder's `slurm/`). A stop (Ctrl-C,
SIGTERM) cancels the array: Slurm sends running tasks SIGTERM, which `train` turns into a checkpoint, and the
next invocation resumes them. `--slurm-cluster local` runs the same array as local processes (submitit's local
executor), to try a sweep's Slurm path on a machine without Slurm.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from dataclasses import dataclass
from typing import Any, ContextManager, Sequence

import yaml

from reslab import yamlsafe
from reslab.errors import ConfigError, first_line
from reslab.runtime import stop_on_signal
from reslab.sweep.backends import BackendOptions, OnDone, absolute_paths, require, threads_of
from reslab.sweep.folder import SweepFolder
from reslab.sweep.local import Task, died, run_task_with_threads

CLUSTERS = ("slurm", "local")  # submitit's executors that run an array here or on Slurm
POLL_S = 1.0  # how often finished tasks are looked for (on Slurm, submitit asks sacct at most once a minute)
STOP_WAIT_S = 120.0  # after a stop, how long running tasks get to write their checkpoint and say so


def check(options: BackendOptions) -> None:
    parameters(options)
    if options.slurm_cluster == "slurm" and shutil.which("sbatch") is None:
        raise ConfigError("--backend slurm needs Slurm's sbatch on PATH (none here); run it on a Slurm login node, "
                          "or try the sweep with --slurm-cluster local")


def parameters(options: BackendOptions) -> dict[str, Any]:
    """submitit's update_parameters for the flags, checked against what submitit accepts; reads only."""
    submitit = require("submitit", "slurm")
    if options.slurm_cluster not in CLUSTERS:
        raise ConfigError(f"--slurm-cluster must be one of {', '.join(CLUSTERS)}, got {options.slurm_cluster}")
    if options.slurm_time < 1:
        raise ConfigError(f"--slurm-time must be >= 1 minute, got {options.slurm_time}")
    gpus = options.gpus_per_run
    if gpus is not None and not float(gpus).is_integer():
        raise ConfigError(f"--gpus-per-run on Slurm must be a whole number, got {gpus:g}")
    params: dict[str, Any] = {"timeout_min": options.slurm_time}
    if options.slurm_partition:
        params["slurm_partition"] = options.slurm_partition
    if gpus:
        params["gpus_per_node"] = int(gpus)
    if options.jobs:
        params["slurm_array_parallelism"] = options.jobs
    # submitit's own tables of what it accepts: the shared (typed) parameters, and sbatch's
    generic: dict[str, type] = submitit.AutoExecutor._typed_parameters()
    sbatch = submitit.SlurmExecutor._valid_parameters()
    for arg in options.slurm_args:
        key, sep, text = arg.partition("=")
        key = key.strip().removeprefix("slurm_")
        if not sep or not key:
            raise ConfigError(f"--slurm-arg must be key=value, got {arg!r}")
        if key not in generic and key not in sbatch:
            raise ConfigError(f"--slurm-arg {key}: not a submitit Slurm parameter; valid: "
                              f"{', '.join(sorted(set(generic) | sbatch))}")
        try:  # a YAML scalar or list, as in a sweep file (`account=[` is text that does not parse)
            value = yamlsafe.load(text) if text.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"--slurm-arg {key}: {text!r} is not a value ({first_line(exc)})") from None
        expected = generic.get(key)
        if expected is not None and not (isinstance(value, expected) or (expected is float and type(value) is int)):
            raise ConfigError(f"--slurm-arg {key} must be {expected.__name__}, got {text!r}")
        params[key if key in generic else f"slurm_{key}"] = value
    return params


@dataclass(frozen=True)
class SlurmRunner:
    """A Slurm cluster (or submitit's local executor) that takes the sweep as one job array."""

    options: BackendOptions
    params: dict[str, Any]

    def plan_line(self, runs: Sequence[Task]) -> str:
        tasks = len(runs)
        if self.options.slurm_cluster == "slurm":
            return f"as a Slurm job array of {tasks} task{'s' * (tasks != 1)}"
        return f"as {tasks} local process{'es' * (tasks != 1)} through submitit"

    def run(self, tasks: Sequence[Task], on_done: OnDone, folder: SweepFolder) -> bool:
        submitit = require("submitit", "slurm")
        tasks = [absolute_paths(task) for task in tasks]
        threads = [threads_of(task, self.options.cpus_per_run) for task in tasks]
        executor = submitit.AutoExecutor(folder=folder.slurm_logs, cluster=self.options.slurm_cluster)
        executor.update_parameters(**{"name": f"reslab-{folder.path.name}", "cpus_per_task": max(threads, default=1),
                                      **self.params})
        try:
            jobs = executor.map_array(run_on_slurm, tasks, threads)  # one array, one sbatch
        except Exception as exc:  # sbatch refused it (a partition, an account, a time limit)
            raise ConfigError(f"Slurm refused the job array: {first_line(exc, type(exc).__name__)}") from None
        pending = dict(zip(jobs, tasks))
        try:
            with stop_on_signal(at_once=True):
                while pending:
                    for job in [j for j in pending if j.done()]:
                        on_done(_outcome(job, pending.pop(job)))
                    time.sleep(POLL_S if pending else 0)
        except KeyboardInterrupt:
            for job in pending:
                job.cancel(check=False)  # queued: removed; running: SIGTERM, so the run checkpoints
            deadline = time.monotonic() + STOP_WAIT_S
            while pending and time.monotonic() < deadline:
                for job in [j for j in pending if j.done()]:
                    pending.pop(job)
                    with contextlib.suppress(Exception):  # cancelled before it ran: nothing to say
                        on_done(job.result())
                time.sleep(POLL_S if pending else 0)
            return False
        return True


def run_on_slurm(task: Task, threads: int) -> dict[str, Any]:
    """A run as a Slurm task. Before the time limit Slurm warns with USR2 (submitit's `--signal`), and submitit
    would end the task with an error mid-step; here it is taken as a SIGTERM, which `train` turns into a
    checkpoint, so the run is `interrupted` and the next invocation resumes it."""
    warning = getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"))  # as submitit reads it
    previous = signal.signal(warning, lambda signum, frame: signal.raise_signal(signal.SIGTERM))
    try:
        return run_task_with_threads(task, threads)
    finally:
        signal.signal(warning, previous)


def _outcome(job: Any, task: Task) -> dict[str, Any]:
    """The task's outcome, or a failure when its job ended without one (killed, timed out, node failure)."""
    try:
        return job.result()
    except Exception as exc:
        return died(task, exc)


def connect(options: BackendOptions) -> ContextManager[SlurmRunner]:
    """Nothing to reach before the array is submitted: sbatch was found by `check`."""
    return contextlib.nullcontext(SlurmRunner(options, parameters(options)))
