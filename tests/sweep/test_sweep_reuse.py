"""Start once (issue 22): the runs a sweep process trains share one decoded dataset and train exactly as they would
in fresh processes; the memo is bounded; each run's torch threads follow the free-cores rule."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from helpers.training import assert_same_run, tiny_cfg
from reslab.config import to_dict
from reslab.data import ImageData, load_dataset, memo, reusing, sources
from reslab.sweep import local
from reslab.sweep.local import Task
from reslab.sweep.threads import own_load, threads_per_run


def _tasks(data_dir: Path, runs: Path) -> list[Task]:
    return [Task(f"seed={seed}", to_dict(tiny_cfg(data_dir, runs, f"train.seed={seed}", "train.epochs=1",
                                                   "train.threads=1", "gradflow.every=0")))
            for seed in (0, 1)]


def test_two_runs_in_one_process_train_as_in_separate_processes(data_dir: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[str] = []
    decode = sources._decode
    monkeypatch.setattr(sources, "_decode", lambda spec, *a: decoded.append(spec) or decode(spec, *a))
    outcomes: list[dict[str, Any]] = []
    assert local.run_local(_tasks(data_dir, tmp_path / "together"), 1, outcomes.append)
    assert decoded == ["mnist"]  # the second run got the first run's dataset
    assert memo.current() is None  # nothing kept after the sweep
    # the second run alone, in a fresh process (no dataset decoded before it, nothing imported)
    task = _tasks(data_dir, tmp_path / "alone")[1]
    code = ("import json, sys; from reslab.sweep.local import Task, run_task; "
            "print(json.dumps(run_task(Task(**json.loads(sys.argv[1])), progress=False), default=str))")
    out = subprocess.run([sys.executable, "-c", code, json.dumps({"key": task.key, "cfg": task.cfg})],
                         capture_output=True, text=True, check=True).stdout
    alone = json.loads(out.strip().splitlines()[-1])
    assert [o["status"] for o in outcomes] == ["finished", "finished"] and alone["status"] == "finished"
    assert_same_run(Path(outcomes[1]["run_dir"]), Path(alone["run_dir"]), records=("metrics", "steps"))


def test_a_pool_worker_that_trains_several_runs_trains_each_as_alone(data_dir: Path, tmp_path: Path) -> None:
    tasks = [*_tasks(data_dir, tmp_path / "pool"), Task("seed=2", to_dict(tiny_cfg(
        data_dir, tmp_path / "pool", "train.seed=2", "train.epochs=1", "train.threads=1", "gradflow.every=0")))]
    pooled: list[dict[str, Any]] = []
    assert local.run_local(tasks, 2, pooled.append)  # 3 runs on 2 workers: one of them trains two
    alone: list[dict[str, Any]] = []
    for task in tasks:  # each in this process, with no dataset kept from the run before
        alone.append(local.run_task(Task(task.key, {**task.cfg, "runs_dir": str(tmp_path / "alone")})))
    by_key = {o["key"]: o for o in pooled}
    for outcome in alone:
        assert by_key[outcome["key"]]["status"] == outcome["status"] == "finished"
        assert_same_run(Path(by_key[outcome["key"]]["run_dir"]), Path(outcome["run_dir"]), note=outcome["key"])


def _fake(n: int, name: str = "fake") -> ImageData:
    x, y = torch.zeros(n, 1, 2, 2, dtype=torch.uint8), torch.zeros(n, dtype=torch.int64)
    return ImageData(name, x, y, x, y, classes=("a",), mean=(0.5,), std=(0.5,))  # 2 * n * (4 + 8) bytes


def test_the_memo_keeps_the_recent_datasets_within_its_budget() -> None:
    kept = memo.Memo(budget_bytes=memo.nbytes(_fake(10)) * 2)
    a = kept.get("a", lambda: _fake(10, "a"))
    assert kept.get("a", lambda: pytest.fail("decoded again")) is a
    kept.get("b", lambda: _fake(10, "b"))
    kept.get("a", lambda: pytest.fail("decoded again"))  # a is now the most recent: c pushes b out
    kept.get("c", lambda: _fake(10, "c"))
    assert list(kept.entries) == ["a", "c"] and (kept.hits, kept.misses) == (2, 3)
    big = kept.get("big", lambda: _fake(100))  # larger than the whole budget: handed out, not kept
    assert big.name == "fake" and list(kept.entries) == ["a", "c"]
    with pytest.raises(ValueError):
        kept.get("bad", lambda: (_ for _ in ()).throw(ValueError("corrupt")))
    assert "bad" not in kept.entries  # a failure is tried (and reported) again next time


def test_reusing_is_scoped_and_keyed_by_the_source(data_dir: Path) -> None:
    assert load_dataset("mnist", data_dir) is not load_dataset("mnist", data_dir)  # outside a sweep: no reuse
    with reusing() as outer:
        first = load_dataset("mnist", data_dir)
        with reusing() as inner:
            assert inner is outer and load_dataset("mnist", data_dir, download=False) is first
        assert load_dataset("mnist", data_dir, image_size=8) is not first  # another size: another dataset
        assert len(outer.entries) == 2
    assert memo.current() is None and not outer.entries


@pytest.mark.parametrize("jobs, cores, load, own, threads", [
    (1, 2, 0.0, 0.0, 2),  # idle 2-core machine: both cores
    (1, 2, 1.1, 0.1, 1),  # another process holds a core
    (1, 2, 7.0, 0.0, 1),  # far busier than there are cores: still one thread
    (2, 2, 0.0, 0.0, 1),  # two jobs share two cores
    (2, 16, 3.0, 1.0, 7),  # our own load is not someone else's: 14 free, 7 each
    (4, 16, 0.4, 0.0, 4),  # a light load (under half a core) keeps every core
    (3, 2, 0.0, 0.0, 1),  # more jobs than cores: one thread each
])
def test_threads_follow_the_free_cores(jobs: int, cores: int, load: float, own: float, threads: int) -> None:
    assert threads_per_run(jobs, cores, load, own) == threads


def test_own_load_is_our_share_of_the_load_average() -> None:
    assert own_load(0.0, 0.0) == 0.0
    assert own_load(3.0, 3.0) == pytest.approx(1 - 2.718281828 ** -0.05)  # 3 s busy: ~5% of a 1-minute average
    assert own_load(600.0, 600.0) == pytest.approx(1.0, abs=1e-4)  # busy for 10 minutes: one whole core
    assert own_load(60.0, 600.0) == pytest.approx(0.1, abs=1e-4)  # mostly waiting
