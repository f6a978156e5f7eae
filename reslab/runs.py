"""Run folders: every run describes itself (config, environment, metrics, summary, checkpoints).

All writes are atomic (temp file in the same folder, then `os.replace`), so an interrupted run never
leaves a half-written checkpoint or summary, and nothing a user already has is overwritten.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from reslab.errors import CheckpointError

CHECKPOINT_FORMAT = "reslab-checkpoint-1"
METRICS_FIELDS = ["epoch", "step", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds", "samples_per_s"]


def new_run_dir(runs_dir: str | Path, name: str) -> Path:
    """Create runs_dir/<name>-<YYYYmmdd-HHMMSS>-<random>; never reuses an existing folder."""
    root = Path(runs_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            path = root / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
            try:
                path.mkdir()
                return path
            except FileExistsError:
                continue
    except OSError as exc:
        raise CheckpointError(f"cannot create a run folder in {root}: {exc.strerror or exc}") from None
    raise CheckpointError(f"cannot find a free run folder name in {root}")


def _atomic_write(path: Path, write: Callable[[Any], None], mode: str = "w") -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    _atomic_write(Path(path), lambda fh: fh.write(text))


def write_json(path: Path, values: Mapping[str, Any]) -> None:
    write_text(path, json.dumps(values, indent=2, sort_keys=False) + "\n")


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]], fields: Sequence[str]) -> None:
    """Rewrite the whole CSV atomically (a few hundred rows at most: cheap, and never half-written)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def save_checkpoint(path: Path, state: Mapping[str, Any]) -> None:
    """torch.save to a temp file, then rename: a crash mid-write leaves the previous checkpoint intact."""
    _atomic_write(Path(path), lambda fh: torch.save({"format": CHECKPOINT_FORMAT, **state}, fh), mode="wb")


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a reslab checkpoint on the CPU; unreadable, truncated or foreign files are CheckpointErrors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise CheckpointError(f"cannot read checkpoint {path}: {type(exc).__name__}: "
                              f"{str(exc).strip().splitlines()[0] if str(exc).strip() else 'unreadable'}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a reslab checkpoint")
    return state


def _git_commit() -> dict[str, Any]:
    """The commit of the reslab source tree, if it is a git checkout (empty when installed from a wheel)."""
    src = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"git_commit": commit, "git_dirty": bool(dirty)} if commit else {}


def capture_env(device: torch.device, argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Versions, device and code version: what it takes to say where a number came from."""
    import numpy
    import torchvision

    import reslab

    env: dict[str, Any] = {
        "reslab": reslab.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "hostname": platform.node(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "argv": list(sys.argv if argv is None else argv),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if device.type == "cuda":
        env["device_name"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    env.update(_git_commit())
    return env
