"""The Ray and Slurm backends of `reslab sweep`: the same runs as the local backend, to the last digit.

Ray is tested against a real local Ray instance, Slurm through submitit's local executor (the same job array,
run as local processes); each test skips, saying why, when its package is not installed.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import re
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from reslab.cli import main
from reslab.sweep import packing
from reslab.sweep.backends import BackendOptions
from reslab.sweep.spec import load_sweep

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="ray is not installed (pip install 'reslab[ray]')")
needs_submitit = pytest.mark.skipif(importlib.util.find_spec("submitit") is None,
                                    reason="submitit is not installed (pip install 'reslab[slurm]')")

SWEEP: dict[str, Any] = {  # 2 seeds x plain/residual, deterministic one-thread CPU runs
    "name": "twins",
    "base": "plain-mlp8",
    "set": {"model.width": 8, "model.depth": 3, "model.layers_per_block": 2, "data.val_size": 100,
            "data.batch_size": 32, "optim.lr": 3e-3, "gradflow.every": 0,
            "train": {"epochs": 2, "deterministic": True, "device": "cpu", "threads": 1}},
    "grid": {"model.residual": [False, True]},
    "seeds": 2,
}
TIMES = ("train_seconds", "samples_per_s", "run_folder")  # results.csv columns that are times or places
STAMP = r"-\d{8}-\d{6}-[0-9a-f]{4}"


def _write(path: Path, **changes: Any) -> Path:
    path.write_text(yaml.safe_dump({**SWEEP, **changes}, sort_keys=False))
    return path


def _sweep(file: Path, runs: Path, data_dir: Path, *extra: str) -> int:
    return main(["sweep", str(file), "--runs-dir", str(runs), "--data-dir", str(data_dir), *extra])


def _numbers(folder: Path) -> dict[str, Any]:
    """Every number a sweep folder holds, without times and places: results by run, aggregate and paired."""
    rows = list(csv.DictReader(open(folder / "results.csv")))
    return {"results": {(r["model.residual"], r["seed"]): {k: v for k, v in r.items() if k not in TIMES} for r in rows},
            "aggregate": (folder / "aggregate.csv").read_text(), "paired": (folder / "paired.csv").read_text()}


@pytest.fixture(scope="module")
def local_sweep(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: the sweep run by the local backend, one run after another (unpacked, as the other backends
    train: a packed run's numbers differ from a separate run's in the last digits)."""
    root = tmp_path_factory.mktemp("local")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(packing, "MAX_PACK", 1)
        assert _sweep(_write(root / "twins.yaml"), root / "runs", data_dir) == 0
    return root / "runs" / "twins"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("argv, message", [
    (["--cpus-per-run", "2"], "--cpus-per-run applies to --backend ray or slurm, not local"),
    (["--backend", "ray", "--slurm-partition", "gpu"], "--slurm-partition applies to --backend slurm, not ray"),
    (["--backend", "slurm", "--slurm-cluster", "local", "--ray-address", "auto"],
     "--ray-address applies to --backend ray, not slurm"),
    (["--backend", "ray", "--gpus-per-run", "1.5"], "--gpus-per-run must be a fraction in (0, 1] or a whole number"),
    (["--backend", "ray", "--jobs", "0"], "--jobs must be >= 1"),
    pytest.param(["--backend", "ray", "--ray-address", "nowhere"], "--ray-address must be host:port", marks=needs_ray),
    pytest.param(["--backend", "ray", "--ray-address", f"127.0.0.1:{_closed_port()}"],
                 "cannot reach the Ray cluster at 127.0.0.1:", marks=needs_ray),
    pytest.param(["--backend", "slurm", "--slurm-cluster", "pbs"], "--slurm-cluster must be one of slurm, local",
                 marks=needs_submitit),
    pytest.param(["--backend", "slurm", "--slurm-cluster", "local", "--slurm-arg", "bogus=1"],
                 "--slurm-arg bogus: not a submitit Slurm parameter", marks=needs_submitit),
    pytest.param(["--backend", "slurm", "--slurm-cluster", "local", "--slurm-arg", "mem_gb=lots"],
                 "--slurm-arg mem_gb must be float", marks=needs_submitit),
    pytest.param(["--backend", "slurm", "--slurm-cluster", "local", "--gpus-per-run", "0.5"],
                 "--gpus-per-run on Slurm must be a whole number", marks=needs_submitit),
    pytest.param(["--backend", "slurm"], "--backend slurm needs Slurm's sbatch on PATH", marks=needs_submitit),
])
def test_bad_backend_flags_fail_before_anything_is_written(tmp_path: Path, data_dir: Path, argv: list[str],
                                                           message: str, capsys: pytest.CaptureFixture,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here, whatever the machine has
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    code = _sweep(_write(tmp_path / "twins.yaml"), tmp_path / "runs", data_dir, *argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("backend, package", [("ray", "ray"), ("slurm", "submitit")])
def test_a_missing_package_names_the_extra(tmp_path: Path, data_dir: Path, backend: str, package: str,
                                           capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, package, None)  # `import ray` now raises ImportError, installed or not
    code = _sweep(_write(tmp_path / "twins.yaml"), tmp_path / "runs", data_dir, "--backend", backend)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"reslab: error: --backend {backend} needs the {package} package: "
                                 f"pip install 'reslab[{backend}]'"]
    assert not (tmp_path / "runs").exists()


@needs_submitit
def test_slurm_flags_reach_the_sbatch_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The flags as submitit's Slurm executor writes them into the job's sbatch file (a fake srun on PATH)."""
    import submitit

    from reslab.sweep.slurm_backend import parameters

    (tmp_path / "srun").write_text("#!/bin/sh\n")
    (tmp_path / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    options = BackendOptions(jobs=3, gpus_per_run=2, slurm_partition="gpu", slurm_time=30,
                             slurm_args=("account=lab", "mem_gb=16", "slurm_constraint=a100"))
    executor = submitit.AutoExecutor(folder=tmp_path / "logs", cluster="slurm")
    executor.update_parameters(**parameters(options))
    sbatch = executor._executor._make_submission_file_text("true", "uid")  # private: the text sbatch would get
    for line in ("--partition=gpu", "--time=30", "--gpus-per-node=2", "--account=lab", "--mem=16GB",
                 "--constraint=a100"):
        assert f"#SBATCH {line}\n" in sbatch, line
    assert executor._executor.parameters["array_parallelism"] == 3


@needs_submitit
def test_slurm_time_limit_warning_checkpoints_the_run(tmp_path: Path, data_dir: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Slurm's USR2 before the time limit (submitit would end the task mid-step) becomes a checkpoint."""
    from helpers.training import tiny_cfg
    from reslab.config import to_dict
    from reslab.protocols import Observer
    from reslab.sweep import local, slurm_backend
    from reslab.sweep.local import Task

    class WarnAt(Observer):
        def on_step(self, step: int, loss: Any, lr: float) -> None:
            if step == 5:
                os.kill(os.getpid(), signal.SIGUSR2)

    def train(cfg, observers=(), **kwargs):  # type: ignore[no-untyped-def]
        return local_train(cfg, [*observers, WarnAt()], **kwargs)

    local_train = local.train
    monkeypatch.setattr(local, "train", train)
    before = signal.getsignal(signal.SIGUSR2)
    outcome = slurm_backend.run_on_slurm(Task("warned", to_dict(tiny_cfg(data_dir, tmp_path))), 1)
    assert outcome["status"] == "interrupted" and (Path(outcome["run_dir"]) / "last.pt").is_file(), outcome
    assert signal.getsignal(signal.SIGUSR2) is before


@pytest.mark.slow
@pytest.mark.parametrize("backend, argv", [
    pytest.param("ray", [], marks=needs_ray),
    pytest.param("slurm", ["--slurm-cluster", "local"], marks=needs_submitit),
])
def test_every_backend_gives_the_same_results(local_sweep: Path, tmp_path: Path, data_dir: Path, backend: str,
                                              argv: list[str], capsys: pytest.CaptureFixture,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)  # ray: a local instance, started and stopped by the sweep
    monkeypatch.chdir(tmp_path)  # relative folders: workers get them made absolute
    assert _sweep(_write(tmp_path / "twins.yaml"), Path("runs"), data_dir, "--backend", backend, *argv) == 0
    folder = tmp_path / "runs" / "twins"
    assert _numbers(folder) == _numbers(local_sweep)
    assert len(_numbers(folder)["results"]) == 4 and "4 of 4 runs done, 0 failed" in capsys.readouterr().err
    if backend == "slurm":  # each task's log in the sweep folder
        assert len(list((folder / "slurm").glob("*_log.out"))) == 4


@pytest.mark.slow
@needs_ray
def test_a_stopped_ray_sweep_resumes_to_the_same_results(tmp_path: Path, data_dir: Path,
                                                         capsys: pytest.CaptureFixture,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C once a run has checkpointed: every task is cancelled, running runs checkpoint; the same command
    again resumes them from last.pt and ends with the numbers of an uninterrupted sweep. The Ray instance is the
    test's own (ray.init here), which the sweep uses and leaves running."""
    import ray

    file = _write(tmp_path / "long.yaml", seeds=[0], set={**SWEEP["set"], "train": {**SWEEP["set"]["train"],
                                                                                    "epochs": 40}})
    monkeypatch.setattr(packing, "MAX_PACK", 1)  # the local reference unpacked, as Ray trains
    assert _sweep(file, tmp_path / "local", data_dir) == 0
    runs = tmp_path / "ray" / "twins" / "runs"

    def stop_after_a_checkpoint() -> None:
        deadline = time.monotonic() + 120
        while not list(runs.glob("*/last.pt")) and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # a terminal's Ctrl-C, whatever pytest set
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 2**20, log_to_driver=False)
    try:
        threading.Thread(target=stop_after_a_checkpoint, daemon=True).start()
        assert _sweep(file, tmp_path / "ray", data_dir, "--backend", "ray") == 130
        assert ray.is_initialized()  # the caller's Ray is left running
        stopped = [p for p in runs.iterdir() if (p / "status.json").is_file()
                   and '"interrupted"' in (p / "status.json").read_text()]
        assert stopped and all((p / "last.pt").is_file() for p in stopped)
        capsys.readouterr()
        assert _sweep(file, tmp_path / "ray", data_dir, "--backend", "ray") == 0
    finally:
        ray.shutdown()
        signal.signal(signal.SIGINT, previous)
    resumed = int(re.search(r"\((\d+) resumed\)", capsys.readouterr().err).group(1))
    assert resumed >= 1
    assert _numbers(tmp_path / "ray" / "twins") == _numbers(tmp_path / "local" / "twins")
    keys = sorted(re.sub(STAMP + "$", "", p.name) for p in runs.iterdir() if re.search(STAMP + "$", p.name))
    assert keys == sorted(run.key for run in _planned(file))  # each run once (a start-up attempt may lie aside)


def _planned(file: Path) -> list[Any]:
    from reslab.sweep import expand

    return expand(load_sweep(file), runs_dir="r")
