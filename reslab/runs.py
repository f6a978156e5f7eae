"""Run folders: every run describes itself (config, environment, metrics, summary, checkpoints).

`RunFolder` is the one owner of a run folder's layout: every file name and the checkpoint format are
spelled here and nowhere else. All writes are atomic (reslab.files), so an interrupted run never leaves
a half-written checkpoint or summary, and nothing a user already has is overwritten.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence


from reslab import files, reading
from reslab.errors import CheckpointError, first_line
from reslab.status import RunStatus

if TYPE_CHECKING:  # torch is imported where a checkpoint is read or written: a CLI that only parses stays light
    import torch

CHECKPOINT_FORMAT = "reslab-checkpoint-1"
METRICS_FIELDS = ["epoch", "step", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds", "samples_per_s"]
OPTIONAL_METRICS = ["val_top5"]  # columns written only when a run records them (top-5 with more than 10 classes)
STEPS_FIELDS = ["step", "lr", "train_loss"]


@dataclass(frozen=True)
class RunFolder:
    """The files of one run folder, by what they hold, and their readers."""

    path: Path

    CONFIG, ENV, METRICS, STEPS = "config.yaml", "env.json", "metrics.csv", "steps.csv"  # every file name, once
    SUMMARY, STATUS, REPORT, CURVES = "summary.json", "status.json", "classification_report.txt", "curves.png"
    GRADFLOW, GRADFLOW_PNG, WANDB_JSON = "gradflow.csv", "gradflow.png", "wandb.json"
    config = property(lambda self: self.path / self.CONFIG)  # the resolved config
    env = property(lambda self: self.path / self.ENV)  # versions, device, argv, git commit
    metrics = property(lambda self: self.path / self.METRICS)  # a row per epoch (METRICS_FIELDS)
    steps = property(lambda self: self.path / self.STEPS)  # the training loss every log_every steps
    summary = property(lambda self: self.path / self.SUMMARY)  # a finished run's results
    status = property(lambda self: self.path / self.STATUS)  # a RunStatus, the writer's pid and host
    report = property(lambda self: self.path / self.REPORT)
    curves = property(lambda self: self.path / self.CURVES)
    gradflow = property(lambda self: self.path / self.GRADFLOW)  # gradient flow during training
    gradflow_png = property(lambda self: self.path / self.GRADFLOW_PNG)
    tensorboard = property(lambda self: self.path / "tensorboard")  # event files (--track tensorboard)
    wandb = property(lambda self: self.path / "wandb")  # the W&B run's files (--track wandb)
    wandb_json = property(lambda self: self.path / self.WANDB_JSON)  # the W&B run id and mode
    last = property(lambda self: self.checkpoint("last"))  # the latest training checkpoint (resumable)
    best = property(lambda self: self.checkpoint("best"))  # the weights of the best validation epoch
    analyses = property(lambda self: self.path / "analysis")  # analysis folders of this run (reslab analyze RUN)
    lock_file = property(lambda self: self.path / files.LOCK_NAME)  # held while a process writes the folder

    def checkpoint(self, which: str) -> Path:
        """`best` or `last`."""
        return self.path / f"{which}.pt"

    @classmethod
    def create(cls, runs_dir: str | Path, name: str) -> RunFolder:
        """A new runs_dir/<name>-<YYYYmmdd-HHMMSS>-<random>; never reuses an existing folder."""
        try:
            return cls(files.new_folder(runs_dir, name))
        except FileExistsError:
            raise CheckpointError(f"cannot find a free run folder name in {runs_dir}") from None
        except OSError as exc:
            raise CheckpointError(f"cannot create a run folder in {runs_dir}: {exc.strerror or exc}") from None

    @staticmethod
    def holds_run(path: Path) -> bool:
        """Whether `path` looks like a run folder (config.yaml and one of status.json, metrics.csv, summary.json)."""
        folder = RunFolder(Path(path))
        return folder.config.is_file() and any(p.is_file() for p in (folder.status, folder.metrics, folder.summary))

    def write_status(self, status: RunStatus, epoch: int, **extra: Any) -> None:
        """status.json, with the writer's pid and host so that readers can tell a live run from a dead one."""
        files.write_json(self.status, {"status": status, "epoch": epoch, **extra, "pid": os.getpid(),
                                       "host": platform.node()})

    def read_json(self, path: Path) -> dict[str, Any]:
        """One of the folder's JSON files; empty when missing or unreadable (a pipe, a huge file or a link out of
        the folder is not read)."""
        return reading.read_mapping(path, []) or {}

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """Hold the folder's lock while writing it: a second process gets a CheckpointError naming the holder."""
        return files.folder_lock(self.path, "run folder", CheckpointError)

    # what a run folder holds, read tolerantly: a missing or damaged file reads as empty (or None), and with
    # `problems` a damaged one adds a line saying why (a missing one does not)

    def read_config(self, problems: list[str] | None = None) -> dict[str, Any]:
        return reading.read_mapping(self.config, _noted(problems)) or {}

    def read_status(self, problems: list[str] | None = None) -> dict[str, Any]:
        """status.json: `status` (a RunStatus word), epoch, step, pid and host."""
        return reading.read_mapping(self.status, _noted(problems)) or {}

    def run_status(self) -> RunStatus | None:
        """The RunStatus status.json names; None when it is missing, damaged or names none."""
        return RunStatus.parse(self.read_status().get("status"))

    def read_summary(self, problems: list[str] | None = None) -> dict[str, Any] | None:
        return reading.read_mapping(self.summary, _noted(problems))

    def read_metrics(self, problems: list[str] | None = None) -> list[dict[str, Any]]:
        """metrics.csv's rows as numbers (None where empty or not finite); damaged rows left out."""
        return reading.read_rows(self.metrics, "epoch", _noted(problems))

    def read_steps(self, problems: list[str] | None = None) -> list[dict[str, Any]]:
        """steps.csv's rows as numbers (step, lr, train_loss); damaged rows left out."""
        return reading.read_rows(self.steps, "step", _noted(problems))

    def read_gradflow(self, problems: list[str] | None = None) -> list[dict[str, str]]:
        """gradflow.csv's rows as strings (none when the run recorded none: gradflow.every 0); damaged rows left out."""
        return (reading.read_table(self.gradflow, _noted(problems)) or []) if self.gradflow.exists() else []

    def read_env(self, problems: list[str] | None = None) -> dict[str, Any]:
        return reading.read_mapping(self.env, _noted(problems)) or {}

    def read_wandb(self, problems: list[str] | None = None) -> dict[str, Any]:
        return reading.read_mapping(self.wandb_json, _noted(problems)) or {}

    def read_report(self, problems: list[str] | None = None) -> str | None:
        """classification_report.txt."""
        return reading.read_text(self.report, _noted(problems))

    def gradflow_figures(self, problems: list[str] | None = None) -> list[Path]:
        """gradflow.png and any other gradflow*.png the run recorded that is a PNG the report can embed."""
        png = self.gradflow_png
        return reading.png_files(sorted(self.path.glob(f"{png.stem}*{png.suffix}")), _noted(problems))

    def draw_curves(self, path: Path | None = None, svg: bool = False,
                    problems: list[str] | None = None) -> Path | None:
        """curves.png as the trainer draws it when a run ends, from metrics.csv, into `path` (default: this folder's
        curves.png): runs with train.figures false (a sweep's, the lab's) are drawn here when first asked for.
        None when no epoch has finished."""
        from reslab.plots import plot_curves

        history = self.read_metrics(problems)
        if not history:
            return None
        plot_curves(history, path or self.curves, svg=svg)
        return path or self.curves

    def draw_gradflow(self, path: Path | None = None, svg: bool = False,
                      problems: list[str] | None = None) -> Path | None:
        """gradflow.png (the layer-by-step heatmap) from gradflow.csv, into `path` (default: this folder's
        gradflow.png), as the gradient-flow recorder draws it when a run ends; None when nothing was recorded."""
        from reslab.plots import plot_training_heatmap

        rows = self.read_gradflow(problems)
        drew = rows and plot_training_heatmap(rows, path or self.gradflow_png, svg=svg) is not None
        return (path or self.gradflow_png) if drew else None

    def write_metrics(self, rows: Sequence[Mapping[str, Any]]) -> None:
        files.write_csv(self.metrics, rows, METRICS_FIELDS + [k for k in OPTIONAL_METRICS if any(k in r for r in rows)])

    def save_checkpoint(self, which: str, state: Mapping[str, Any]) -> None:
        save_checkpoint(self.checkpoint(which), state)

    def load_checkpoint(self, which: str) -> dict[str, Any]:
        return load_checkpoint(self.checkpoint(which))


def _noted(problems: list[str] | None) -> list[str]:
    return [] if problems is None else problems


def save_checkpoint(path: Path, state: Mapping[str, Any]) -> None:
    """torch.save to a temp file, then rename: a crash mid-write leaves the previous checkpoint intact."""
    import torch

    files.atomic_write(Path(path), lambda fh: torch.save({"format": CHECKPOINT_FORMAT, **state}, fh), mode="wb")


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a reslab checkpoint on the CPU; unreadable, truncated or foreign files are CheckpointErrors."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's own message advises weights_only=False: never for a foreign file
        raise CheckpointError(f"{path} is not a reslab checkpoint: it holds Python objects that reslab does not "
                              "load (only tensors and plain values are read)") from None
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise CheckpointError(f"cannot read checkpoint {path}: {type(exc).__name__}: "
                              f"{first_line(exc, 'unreadable')}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a reslab checkpoint")
    return state


def load_weights(model: torch.nn.Module, path: Path, what: str) -> dict[str, Any]:
    """Load a checkpoint's model weights into `model`; a mismatch is one line naming `what` was expected."""
    state = load_checkpoint(path)
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{path} does not match {what}: {first_line(exc)}") from None
    return state


@functools.lru_cache(maxsize=1)
def _git_commit() -> dict[str, Any]:
    """The commit of the reslab source tree, if it is a git checkout (empty when installed from a wheel). Asked once
    a process (two git calls, ~20-50 ms): the code a process runs is the code it imported."""
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
    import torch
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
