"""Stopping a `--jobs 2` sweep at any moment (workers starting, training, ending) never prints a traceback
(issue 19, item 12: an InvalidStateError of the pool's own thread, or a worker killed while it started)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

SWEEP = {"name": "pool", "base": "plain-mlp8",
         "set": {"model.width": 8, "model.layers_per_block": 1, "data.val_size": 100, "data.train_size": 200,
                 "train": {"epochs": 2, "device": "cpu", "threads": 1}, "gradflow.every": 0},
         "grid": {"model.depth": [1, 2], "model.residual": [False, True]}, "seeds": 1}


@pytest.mark.slow
@pytest.mark.parametrize("after", [0.3, 2.5, 6.0])
def test_a_stopped_pool_prints_no_traceback(tmp_path: Path, data_dir: Path, after: float) -> None:
    file = tmp_path / "pool.yaml"
    file.write_text(yaml.safe_dump(SWEEP))
    proc = subprocess.Popen([sys.executable, "-m", "reslab", "sweep", str(file), "--runs-dir", str(tmp_path / "runs"),
                             "--data-dir", str(data_dir), "--jobs", "2"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    time.sleep(after)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    # 130: reslab's own exit after a stop; -SIGINT: the signal landed after the sweep had ended (a quiet machine ends
    # these 4 runs within 6 s) and the interpreter, shutting down, died of it as its default says (the shell shows 130
    # for both); either way no traceback (below)
    assert proc.returncode in (0, 130, -signal.SIGINT), err
    assert "Traceback" not in err and "InvalidStateError" not in err, err
