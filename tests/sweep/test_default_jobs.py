"""How many worker processes a local sweep takes by default on a CPU (`reslab.sweep.local.default_jobs`): one,
unless the sweep is big and trains as several units, then one per free core."""

from __future__ import annotations

import pytest

from reslab.config import resolve, to_dict
from reslab.sweep import local
from reslab.sweep.backends import Task


def _tasks(depths: list[int], seeds: int, train_size: int | None, epochs: int) -> list[Task]:
    out = []
    for depth in depths:
        for seed in range(seeds):
            cfg = resolve("plain-mlp8", [f"model.depth={depth}", f"train.seed={seed}", f"train.epochs={epochs}",
                                         "train.device=cpu"] + ([f"data.train_size={train_size}"] if train_size else []))
            out.append(Task(f"d{depth}-s{seed}", to_dict(cfg)))
    return out


@pytest.fixture
def two_free(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(local, "free_cores", lambda: 2)


def test_a_big_sweep_of_several_packs_takes_a_job_per_free_core(two_free: None) -> None:
    tasks = _tasks([2, 8, 32], seeds=3, train_size=None, epochs=3)  # 9 runs x 3 epochs x 50,000: 1.35M
    assert len(local.units(tasks)) == 3  # a pack per depth
    assert local.default_jobs(tasks) == 2
    assert local.LocalRunner(None).plan_line(tasks) == "with 2 jobs"
    assert local.LocalRunner(1).plan_line(tasks) == "with 1 job"  # --jobs wins


def test_a_small_sweep_or_a_single_pack_stays_in_this_process(two_free: None,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    assert local.default_jobs(_tasks([2, 8], seeds=2, train_size=2000, epochs=2)) == 1  # 16,000 image-epochs
    one_pack = _tasks([8], seeds=9, train_size=None, epochs=3)  # big, but one unit: a pack is never cut
    assert len(local.units(one_pack)) == 1 and local.default_jobs(one_pack) == 1
    monkeypatch.setattr(local, "free_cores", lambda: 1)  # a busy machine: one free core
    assert local.default_jobs(_tasks([2, 8, 32], seeds=3, train_size=None, epochs=3)) == 1


def test_free_cores_counts_the_cores_other_processes_keep_busy_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """Known answers from /proc/stat-like tick counts: half of all ticks busy on 2 cores is 1 core busy."""
    from reslab.sweep import threads

    ticks = iter([(100, 1000), (150, 1100)])  # 50 busy of 100 ticks in the interval
    monkeypatch.setattr(threads, "_busy_ticks", lambda: next(ticks))
    monkeypatch.setattr(threads, "SAMPLE_SECONDS", 0.0)
    monkeypatch.setattr(threads, "KEEP_SECONDS", 0.0)  # a fresh watch each time below
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    assert threads.busy_now(2, seconds=0) == pytest.approx(1.0)
    ticks = iter([(100, 1000), (150, 1100)])
    assert threads.free_cores() == 1
    ticks = iter([(100, 1000), (101, 1100)])  # idle
    assert threads.free_cores() == 2
    monkeypatch.setattr(threads, "_busy_ticks", lambda: None)  # no /proc/stat: the load-average rule
    monkeypatch.setattr(threads, "choose_threads", lambda jobs: 7)
    assert threads.free_cores() == 7


def test_a_watch_of_the_free_cores_is_reused_briefly(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sweep's plan line and its run get the same answer from one watch (no second 0.3 s, no disagreement)."""
    from reslab.sweep import threads

    watches = []
    monkeypatch.setattr(threads, "_WATCHED", {})
    monkeypatch.setattr(threads, "busy_now", lambda cores: watches.append(cores) or 0.0)
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    assert threads.free_cores() == threads.free_cores() == 2 and len(watches) == 1
    monkeypatch.setattr(threads, "KEEP_SECONDS", 0.0)
    threads.free_cores()
    assert len(watches) == 2


def test_threads_per_run_are_the_free_cores_shared_among_the_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    from reslab.sweep import threads

    monkeypatch.setattr(threads, "free_cores", lambda: 2)
    assert [threads.threads_now(j) for j in (1, 2, 3)] == [2, 1, 1]
    monkeypatch.setattr(threads, "free_cores", lambda: 1)  # one core busy elsewhere
    assert threads.threads_now(1) == 1


def test_a_sweep_in_this_process_trains_on_the_cores_free_now_not_the_load_average(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The load average still counts a finished sweep's workers for a minute (the lab's ex1-resnet got 1 thread of 2
    on an idle machine): the in-process sweep asks `threads_now`, which watches the cores, and restores the
    process's threads after."""
    import torch

    seen: list[int] = []
    monkeypatch.setattr(local, "threads_now", lambda jobs: 3)
    monkeypatch.setattr(local, "run_unit", lambda unit, progress: seen.append(torch.get_num_threads()) or [
        {"key": t.key, "status": "done"} for t in unit])
    before = torch.get_num_threads()
    assert local.run_local(_tasks([2], seeds=1, train_size=100, epochs=1), 1, lambda outcome: None)
    assert seen == [3] and torch.get_num_threads() == before
