"""The Ray backend (`reslab[ray]`): a sweep's runs as Ray tasks, so it spreads over a Ray cluster.

Each run is one task asking for its CPUs (its threads) and GPUs (1, or a fraction to pack runs on a GPU); results
arrive as tasks finish. A stop (Ctrl-C, SIGTERM) cancels every task: queued ones never start, and Ray interrupts
running ones the way Ctrl-C would, so `train` checkpoints them and the next invocation resumes from last.pt.
Workers need reslab installed and the data and sweep folder at the same paths (a shared filesystem).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from reslab.errors import ConfigError, first_line
from reslab.runtime import stop_on_signal
from reslab.sweep.backends import BackendOptions, OnDone, absolute_paths, require, threads_of
from reslab.sweep.folder import SweepFolder
from reslab.sweep.local import Task, died, run_task_with_threads

LOCAL_OBJECT_STORE = 128 * 2**20  # bytes: a local Ray holds only configs and outcomes (runs load their own data)
REACH_TIMEOUT_S = 5.0  # an unreachable address fails in this long (ray.init itself waits minutes, then exits)
POLL_S = 1.0  # ray.wait returns at least this often, so a Ctrl-C is seen at once
STOP_WAIT_S = 120.0  # after a stop, how long running runs get to write their checkpoint


def check(options: BackendOptions) -> None:
    require("ray", "ray")
    address = _address(options)
    if address not in (None, "auto", "local"):
        _host_port(address)


def _address(options: BackendOptions) -> str | None:
    return options.ray_address or os.environ.get("RAY_ADDRESS") or None


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--ray-address must be host:port, ray://host:port or auto, got {address!r}")
    return host, int(port)


@contextlib.contextmanager
def connect(options: BackendOptions) -> Iterator[RayRunner]:
    """Connect to the cluster (or start a local Ray), check it can run the runs, and disconnect at the end."""
    ray = require("ray", "ray")
    address = _address(options)
    if address not in (None, "auto", "local"):
        host, port = _host_port(address)
        try:
            socket.create_connection((host, port), timeout=REACH_TIMEOUT_S).close()
        except OSError as exc:
            raise ConfigError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None
    owned = not ray.is_initialized()  # a caller's own ray.init() (a notebook, a test) is used, and left running
    if not owned and options.ray_address:
        raise ConfigError("this process is already connected to Ray; leave out --ray-address")
    if owned:
        start_local = address in (None, "local")
        local_args = dict(object_store_memory=LOCAL_OBJECT_STORE, include_dashboard=False) if start_local else {}
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False, **local_args)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(f"cannot connect to Ray at {address or 'a new local instance'}: "
                              f"{first_line(exc, type(exc).__name__)}") from None
    try:
        where = address or ("a local Ray instance" if owned else "this process's Ray")
        runner = RayRunner(options, where, _largest_node(ray.nodes()))
        runner.check_fits()
        yield runner
    finally:
        if owned:
            ray.shutdown()


def _largest_node(nodes: list[dict[str, Any]]) -> dict[str, float]:
    """The most CPUs and GPUs any one live node offers: a task asking for more would wait forever."""
    alive = [n.get("Resources", {}) for n in nodes if n.get("Alive", n.get("alive"))]
    return {kind: max([float(r.get(kind, 0)) for r in alive] or [0.0]) for kind in ("CPU", "GPU")}


@dataclass(frozen=True)
class RayRunner:
    """A connected Ray: submits runs as tasks (at most `jobs` in flight when set) and gathers their outcomes."""

    options: BackendOptions
    where: str
    largest: dict[str, float]  # CPU and GPU of the largest node

    def check_fits(self) -> None:
        cpus, gpus = self.options.cpus_per_run or 1, self.options.gpus_per_run or 0
        if cpus > self.largest["CPU"]:
            raise ConfigError(f"--cpus-per-run {cpus}: no node of the Ray cluster at {self.where} has that many CPUs "
                              f"(the largest has {self.largest['CPU']:g})")
        if gpus > self.largest["GPU"]:
            raise ConfigError(f"--gpus-per-run {gpus:g}: no node of the Ray cluster at {self.where} has that many "
                              f"GPUs (the largest has {self.largest['GPU']:g})")

    def resources(self, task: Task) -> tuple[int, float]:
        """(num_cpus, num_gpus) of a run: its threads, and a GPU when the cluster has one and the run may use it."""
        cpus = min(threads_of(task, self.options.cpus_per_run), int(self.largest["CPU"]) or 1)
        gpus = self.options.gpus_per_run
        if gpus is None:
            gpus = 1.0 if self.largest["GPU"] and task.cfg["train"]["device"] != "cpu" else 0.0
        return cpus, gpus

    def plan_line(self, tasks: Sequence[Task]) -> str:
        limit = f", at most {self.options.jobs} at a time" if self.options.jobs else ""
        return f"as Ray tasks on {self.where}{limit}"

    def run(self, tasks: Sequence[Task], on_done: OnDone, folder: SweepFolder) -> bool:
        import ray

        # max_calls=1: a fresh worker process per run. A run cancelled by Ctrl-C can stop its worker inside a lazy
        # import (torch._dynamo), and a reused worker then failed the next run with a half-initialised module
        remote = ray.remote(max_calls=1)(run_task_with_threads)
        queue = [absolute_paths(task) for task in tasks]
        queue.reverse()  # pop() from the end keeps the sweep's order
        pending: dict[Any, Task] = {}
        limit = self.options.jobs or len(queue)

        def submit() -> None:
            while queue and len(pending) < limit:
                task = queue.pop()
                cpus, gpus = self.resources(task)
                # no retries: a retried run would start a second folder; the next invocation resumes it instead
                ref = remote.options(num_cpus=cpus, num_gpus=gpus, max_retries=0, name=f"reslab {task.key}"
                                     ).remote(task, cpus)
                pending[ref] = task

        try:
            with stop_on_signal(at_once=True):
                submit()
                while pending:
                    done, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
                    for ref in done:
                        on_done(_outcome(ray, ref, pending.pop(ref)))
                    submit()
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref)  # queued: never starts; running: a KeyboardInterrupt, which train turns into a stop
            done = ray.wait(list(pending), num_returns=len(pending), timeout=STOP_WAIT_S)[0] if pending else []
            for ref in done:
                with contextlib.suppress(ray.exceptions.RayError):  # cancelled before it ran: nothing to say
                    on_done(ray.get(ref))
            return False
        return True


def _outcome(ray: Any, ref: Any, task: Task) -> dict[str, Any]:
    """The task's outcome, or a failure when its worker died (killed, out of memory, node lost)."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as exc:
        return died(task, exc)
