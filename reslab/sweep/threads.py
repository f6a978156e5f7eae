"""How many torch threads a local sweep gives each run: the cores free now, shared among the jobs.

The rule (`threads_now`): free cores = usable cores (`os.sched_getaffinity`) minus those other processes keep busy,
watched over SAMPLE_SECONDS of /proc/stat while this process sleeps (`free_cores`), at least 1; each of `jobs` runs
gets free // jobs threads, at least 1. A run's `train.threads` still wins. Why not cpu_count() // jobs: on a busy
2-core machine a run of 2 threads waits for a core another process holds at every parallel op, and stalled 10-70x
against 1 thread (issue 22); a thread fewer than the free cores costs far less than one too many. Why not the load
average: it remembers for a minute the workers of a sweep that has just ended; after the lab's first sweep it gave
the notebook's ResNetCNN 1 thread on an idle 2-core machine. Only where /proc/stat is missing is the load average
used (`choose_threads`): busy elsewhere = load - this process's own share of it (`own_load`).
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


SAMPLE_SECONDS = 0.3  # how long `free_cores` watches the machine


def _busy_ticks() -> tuple[int, int] | None:
    """(busy, total) CPU ticks of the whole machine since boot (Linux /proc/stat; None elsewhere)."""
    try:
        fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def busy_now(cores: int, seconds: float = SAMPLE_SECONDS) -> float | None:
    """Cores busy with other processes over the next `seconds` (this process sleeps meanwhile): unlike the load
    average, which still counts for a minute a process that has just ended. None where /proc/stat is missing."""
    import time

    before = _busy_ticks()
    if before is None:
        return None
    time.sleep(seconds)
    after = _busy_ticks()
    if after is None or after[1] <= before[1]:
        return None
    return cores * (after[0] - before[0]) / (after[1] - before[1])


_WATCHED: dict[str, float] = {}  # the last watch: its time (monotonic) and the free cores it saw
KEEP_SECONDS = 10.0  # a sweep's plan line and its run ask within this: one watch, one answer for both


def free_cores() -> int:
    """The cores free for new worker processes now: usable cores minus those other processes keep busy, watched
    for SAMPLE_SECONDS (the load-average rule of `choose_threads` where the platform cannot say), at least 1; a
    watch is reused for KEEP_SECONDS."""
    import time

    if time.monotonic() - _WATCHED.get("at", -math.inf) < KEEP_SECONDS:
        return int(_WATCHED["free"])
    cores = usable_cores()
    busy = busy_now(cores)
    free = choose_threads(1) if busy is None else max(1, cores - math.floor(busy + 0.5))
    _WATCHED.update(at=time.monotonic(), free=free)
    return free


def threads_now(jobs: int) -> int:
    """Threads for each of `jobs` runs: the cores free now (`free_cores`) shared among them, at least 1."""
    return max(1, free_cores() // max(1, jobs))


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
