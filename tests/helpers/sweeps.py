"""The tiny sweep file the sweep tests share: a 2 x 2 grid of plain MLPs over 2 seeds, one epoch each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

SWEEP: dict[str, Any] = {
    "name": "tiny",
    "base": "plain-mlp8",
    "set": {"model.width": 8, "model.layers_per_block": 2, "data.val_size": 100, "data.batch_size": 32,
            "optim.lr": 3e-3, "train": {"epochs": 1, "deterministic": True, "device": "cpu", "threads": 1},
            "gradflow.every": 0},
    "grid": {"model.depth": [1, 3], "model.residual": [False, True]},
    "seeds": 2,
}


def write_sweep(path: Path, **changes: Any) -> Path:
    """SWEEP with `changes` (None drops a key) as a YAML sweep file at `path`."""
    values = {**SWEEP, **changes}
    path.write_text(yaml.safe_dump({k: v for k, v in values.items() if v is not None}, sort_keys=False))
    return path
