"""Where a sweep's runs go: the backends (local pool, Ray, Slurm), their options, and the one place they are named.

A backend is one module with `check(options)` (reads only: a missing package or a bad flag fails here, before
anything is written) and `connect(options)`, a context manager that reaches the machines (a Ray cluster, sbatch)
and yields a `Runner`. Every backend trains a run with `local.run_task`, so a run is the same run everywhere.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable, ContextManager, Protocol, Sequence

from reslab.errors import ConfigError
from reslab.sweep.folder import SweepFolder

BACKENDS = ("local", "ray", "slurm")
OnDone = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Task:
    """One run to train: its key, its config (plain values, picklable) and the folder to resume, if any."""

    key: str
    cfg: dict[str, Any]
    resume: str | None = None


@dataclass(frozen=True)
class BackendOptions:
    """What a user sets about where runs go; a flag that does not apply to the chosen backend is an error."""

    jobs: int | None = None  # runs at a time (local: worker processes; ray: tasks in flight; slurm: array limit)
    cpus_per_run: int | None = None  # ray: num_cpus of a task; slurm: cpus_per_task (default: train.threads or 1)
    gpus_per_run: float | None = None  # ray: num_gpus, a fraction packs runs on a GPU; slurm: gpus per task
    ray_address: str | None = None  # host:port, ray://host:port or auto (default: $RAY_ADDRESS, else a local Ray)
    slurm_partition: str | None = None
    slurm_time: int = 24 * 60  # minutes; submitit's own default (5) would kill most runs
    slurm_cluster: str = "slurm"  # submitit's cluster: slurm, or local to try the path on this machine
    slurm_args: tuple[str, ...] = ()  # key=value, passed on to submitit's update_parameters


class Runner(Protocol):
    """A connected backend: runs tasks, calling `on_done(outcome)` in this process as each ends."""

    def plan_line(self, tasks: Sequence[Task]) -> str:
        """How the runs go, for the sweep's first line ("with 2 jobs")."""

    def run(self, tasks: Sequence[Task], on_done: OnDone, folder: SweepFolder) -> bool:
        """Run `tasks` for the sweep in `folder`; False when stopped (Ctrl-C, SIGTERM): running runs checkpoint,
        the rest wait for the next invocation."""


# each backend's module, and the options (BackendOptions fields) that apply to it besides `jobs`
_MODULES = {"local": "reslab.sweep.local", "ray": "reslab.sweep.ray_backend", "slurm": "reslab.sweep.slurm_backend"}
_FLAGS = {"local": (), "ray": ("cpus_per_run", "gpus_per_run", "ray_address"),
          "slurm": ("cpus_per_run", "gpus_per_run", "slurm_partition", "slurm_time", "slurm_cluster", "slurm_args")}


def flag(option: str) -> str:
    """The CLI flag of a BackendOptions field (slurm_args -> --slurm-arg, given once per value)."""
    return "--" + option.removesuffix("s" if option == "slurm_args" else "").replace("_", "-")


def check(backend: str, options: BackendOptions) -> None:
    """Refuse an unknown backend, a flag meant for another one, bad values or a missing package; reads only."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend}; choose one of {', '.join(BACKENDS)}")
    if options.jobs is not None and options.jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {options.jobs}")
    default = BackendOptions()
    foreign = [f.name for f in fields(options) if f.name != "jobs" and f.name not in _FLAGS[backend]
               and getattr(options, f.name) != getattr(default, f.name)]
    if foreign:
        users = [name for name, options_of in _FLAGS.items() if foreign[0] in options_of]
        raise ConfigError(f"{flag(foreign[0])} applies to --backend {' or '.join(users)}, not {backend}")
    if options.cpus_per_run is not None and options.cpus_per_run < 1:
        raise ConfigError(f"--cpus-per-run must be >= 1, got {options.cpus_per_run}")
    gpus = options.gpus_per_run
    if gpus is not None and not (gpus > 0 and (gpus <= 1 or float(gpus).is_integer())):
        raise ConfigError(f"--gpus-per-run must be a fraction in (0, 1] or a whole number, got {gpus}")
    _module(backend).check(options)


def connect(backend: str, options: BackendOptions) -> ContextManager[Runner]:
    """Reach the backend's machines (after `check`); fails with a one-line ConfigError before anything is written."""
    return _module(backend).connect(options)


def _module(backend: str) -> Any:
    return importlib.import_module(_MODULES[backend])


def require(package: str, backend: str) -> Any:
    """The optional package a backend needs, imported; missing, a one-line error naming the extra to install."""
    try:
        return importlib.import_module(package)
    except ImportError:
        raise ConfigError(f"--backend {backend} needs the {package} package: pip install 'reslab[{backend}]'") from None


def absolute_paths(task: Task) -> Task:
    """`task` with the places it names made absolute, for workers that may start in another directory."""
    from reslab.data import resolve_data_dir

    cfg = {**task.cfg, "runs_dir": str(Path(task.cfg["runs_dir"]).absolute()),
           "data": {**task.cfg["data"], "data_dir": str(resolve_data_dir(task.cfg["data"]["data_dir"]).absolute())}}
    return replace(task, cfg=cfg, resume=str(Path(task.resume).absolute()) if task.resume else None)


def threads_of(task: Task, cpus: int | None) -> int:
    """CPUs (and torch threads) of a run in a backend's worker: `cpus` if given, else its train.threads, else 1."""
    return cpus or task.cfg["train"].get("threads") or 1
