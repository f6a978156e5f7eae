"""How many torch threads a local sweep gives each run: the cores free now, shared among the jobs.

The rule (`threads_per_run`): usable cores are the ones this process may run on (`os.sched_getaffinity`); other
processes keep `load - own` of them busy, where `load` is the 1-minute load average and `own` this process's
(and its finished workers') share of it; free cores = usable - that, rounded, at least 1; each of `jobs` runs gets
free // jobs threads, at least 1. A run's `train.threads` still wins. Why not cpu_count() // jobs: on a busy
2-core machine a run of 2 threads waits for a core another process holds at every parallel op, and stalled
10-70x against 1 thread (issue 22); a thread fewer than the free cores costs far less than one too many.
"""

from __future__ import annotations

import math
import os


def threads_per_run(jobs: int, cores: int, load: float, own: float) -> int:
    """Threads for each of `jobs` runs on `cores` usable cores, `load` (1-min average) of which `own` is ours."""
    busy_elsewhere = max(0.0, load - own)
    free = max(1, cores - math.floor(busy_elsewhere + 0.5))
    return max(1, free // max(1, jobs))


def own_load(cpu_seconds: float, alive_seconds: float) -> float:
    """This process's share of the 1-minute load average: its mean CPU use (cores busy) since it started, weighted
    by how much of the average's memory (an exponential decay of one minute) it has been alive for."""
    if alive_seconds <= 0:
        return 0.0
    return cpu_seconds / alive_seconds * (1.0 - math.exp(-alive_seconds / 60.0))


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask; all of them where the platform cannot say)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _alive_seconds() -> float | None:
    """Seconds since this process started (Linux /proc; None elsewhere)."""
    try:
        start_ticks = int(open("/proc/self/stat").read().rpartition(")")[2].split()[19])  # field 22: starttime
        uptime = float(open("/proc/uptime").read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def free_cores() -> int:
    """The cores free for this process now: usable cores minus the load of other processes (at least 1)."""
    return choose_threads(1)


def choose_threads(jobs: int) -> int:
    """`threads_per_run` for this machine now (no load average where the platform has none: all cores free)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = 0.0
    t = os.times()
    alive = _alive_seconds()
    own = own_load(t.user + t.system + t.children_user + t.children_system, alive) if alive is not None else 0.0
    return threads_per_run(jobs, usable_cores(), load, own)
