"""The training engine: `train(cfg) -> RunResult`, callable from Python; the CLI is a thin layer over it.

The loop keeps every per-step number on the device (no host sync per step); it syncs once per
`log_every` steps for the progress bar and once per epoch for the metrics row. SIGINT/SIGTERM set a
flag that the loop checks between steps, so an interrupted run checkpoints its exact position and
`--resume` continues as if it had never stopped.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from reslab import runs
from reslab.config import OptimConfig, RunConfig, TrainConfig, dump_yaml, to_dict
from reslab.data import Augment, DeviceLoader, ImageData, load_dataset, split_indices
from reslab.errors import CheckpointError, DataError
from reslab.metrics import accuracy, class_scores, classification_report, confusion_update
from reslab.models import build_model, count_params


class Interrupted(Exception):
    """Raised after an interrupted run has saved its checkpoint; carries the run folder."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(f"interrupted; checkpoint saved. Resume with: reslab train --resume {run_dir}")
        self.run_dir = run_dir


class Observer:
    """Extension point: subclass and override what you need. Values passed are device tensors: do not sync per step."""

    def on_start(self, run_dir: Path, model: nn.Module, cfg: RunConfig) -> None: ...
    def on_step(self, step: int, loss: torch.Tensor, lr: float) -> None: ...
    def on_epoch(self, row: dict[str, Any]) -> None: ...
    def on_end(self, summary: dict[str, Any]) -> None: ...


@dataclass
class RunResult:
    run_dir: Path
    summary: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class EvalResult:
    loss: float
    acc: float
    confusion: torch.Tensor  # (K, K) int64, rows: true class


# ----------------------------------------------------------------------------- set-up helpers


def select_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DataError(f"device {name} asked for, but CUDA is not available here (use --device cpu or auto)")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DataError(f"device {name} asked for, but MPS is not available here (use --device cpu or auto)")
    return device


def autocast_for(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (auto) or when asked; a no-op context elsewhere."""
    if amp == "bf16" or (amp == "auto" and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def lr_at(step: int, steps_per_epoch: int, epochs: int, optim: OptimConfig) -> float:
    """The learning rate at a global step: a pure function of the step, so resuming needs no scheduler state."""
    total = max(1, steps_per_epoch * epochs)
    warmup = int(round(optim.warmup_epochs * steps_per_epoch))
    if step < warmup:
        return optim.lr * (step + 1) / warmup
    if optim.schedule == "constant":
        return optim.lr
    if optim.schedule == "step":
        epoch = step / steps_per_epoch
        passed = sum(epoch >= (m * epochs if m < 1 else m) for m in optim.milestones)
        return optim.lr * optim.gamma**passed
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if optim.schedule == "cosine":
        return optim.lr * 0.5 * (1 + math.cos(math.pi * progress))
    # one-cycle (Smith): up from lr/25 to lr over the first 30%, then cosine down to lr/1e4
    if progress < 0.3:
        return optim.lr * (0.04 + 0.96 * 0.5 * (1 - math.cos(math.pi * progress / 0.3)))
    return optim.lr * (1e-4 + (1 - 1e-4) * 0.5 * (1 + math.cos(math.pi * (progress - 0.3) / 0.7)))


def make_optimizer(model: nn.Module, optim: OptimConfig, device: torch.device) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    fast = {"fused": True} if device.type == "cuda" else {"foreach": True}
    if optim.name == "sgd":
        return torch.optim.SGD(params, lr=optim.lr, momentum=optim.momentum, nesterov=optim.nesterov,
                               weight_decay=optim.weight_decay, **fast)
    cls = torch.optim.AdamW if optim.name == "adamw" else torch.optim.Adam
    return cls(params, lr=optim.lr, betas=optim.betas, weight_decay=optim.weight_decay, **fast)


def setup_torch(train_cfg: TrainConfig) -> None:
    """Seeds, threads and determinism; the same seed gives the same init, split, order and augmentation."""
    if train_cfg.threads is not None:
        torch.set_num_threads(train_cfg.threads)
    torch.use_deterministic_algorithms(train_cfg.deterministic, warn_only=True)
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = not train_cfg.deterministic
        torch.backends.cudnn.allow_tf32 = not train_cfg.deterministic
        torch.backends.cudnn.benchmark = not train_cfg.deterministic
    torch.manual_seed(train_cfg.seed)


def make_loaders(cfg: RunConfig, data: ImageData, device: torch.device,
                 channels_last: bool) -> tuple[DeviceLoader, DeviceLoader | None, DeviceLoader]:
    """Seeded train/val split of the training set; the test set stays apart."""
    d = cfg.data
    train_idx, val_idx = split_indices(len(data.train_y), d.val_size, cfg.train.seed)
    augment = Augment(crop_padding=d.crop_padding, hflip=d.hflip) if d.augment else None
    common = dict(mean=data.mean, std=data.std, device=device, channels_last=channels_last)
    train = DeviceLoader(data.train_x[train_idx], data.train_y[train_idx], batch_size=d.batch_size, shuffle=True,
                         augment=augment, seed=cfg.train.seed, **common)
    val = (DeviceLoader(data.train_x[val_idx], data.train_y[val_idx], batch_size=d.eval_batch_size, **common)
           if len(val_idx) else None)
    test = DeviceLoader(data.test_x, data.test_y, batch_size=d.eval_batch_size, **common)
    return train, val, test


def check_model_takes(model: nn.Module, data: ImageData, loader: DeviceLoader, model_name: str) -> None:
    """Fail before training, with one line, when the model cannot take the dataset's images."""
    x, _ = next(iter(loader))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x[:2])
    except RuntimeError as exc:
        c, h, w = data.input_shape
        raise DataError(f"model {model_name} cannot take {data.name} images ({c}x{h}x{w}): "
                        f"{str(exc).strip().splitlines()[0]}") from None
    finally:
        model.train(was_training)
    if tuple(out.shape) != (min(2, len(x)), data.num_classes):
        raise DataError(f"model {model_name} gives outputs of shape {tuple(out.shape)[1:]} for {data.name}, "
                        f"which has {data.num_classes} classes")


@contextlib.contextmanager
def stop_on_signal() -> Iterator[dict[str, bool]]:
    """SIGINT/SIGTERM set a flag the loop checks between steps (never mid-update); handlers restored on exit."""
    flag = {"stop": False}

    def handler(signum: int, frame: Any) -> None:
        flag["stop"] = True

    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread: signals stay with the caller
        pass
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# ----------------------------------------------------------------------------- evaluation


def evaluate(model: nn.Module, loader: DeviceLoader, num_classes: int, amp: contextlib.AbstractContextManager
             | None = None) -> EvalResult:
    """Mean loss, accuracy and confusion matrix over a loader; one host sync at the end."""
    model.eval()
    device = next(model.parameters()).device
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long, device=device)
    with torch.no_grad():
        for x, y in loader:
            with amp or contextlib.nullcontext():
                logits = model(x)
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
            confusion = confusion_update(confusion, y, logits.argmax(1))
    model.train()
    confusion = confusion.cpu()
    n = int(confusion.sum())
    return EvalResult(loss=float(loss_sum) / max(1, n), acc=accuracy(confusion), confusion=confusion)


# ----------------------------------------------------------------------------- the loop


def train_epoch(model: nn.Module, step_model: nn.Module, loader: DeviceLoader, opt: torch.optim.Optimizer,
                cfg: RunConfig, state: dict[str, Any], amp: contextlib.AbstractContextManager,
                flag: dict[str, bool], observers: Sequence[Observer], bar: Any) -> bool:
    """One epoch from state['batch'] on; returns False if a stop was requested (state then marks the position)."""
    optim, epochs, n_batches = cfg.optim, cfg.train.epochs, len(loader)
    running = state["running"]  # device tensors: loss_sum, correct, seen
    for i, (x, y) in enumerate(loader.batches(state["batch"]), start=state["batch"]):
        lr = lr_at(state["step"], n_batches, epochs, optim)
        for group in opt.param_groups:
            group["lr"] = lr
        with amp:
            logits = step_model(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=optim.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if optim.grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), optim.grad_clip)
        opt.step()
        running["loss_sum"] += loss.detach() * len(y)
        running["correct"] += (logits.detach().argmax(1) == y).sum()
        running["seen"] += len(y)
        state["step"] += 1
        state["batch"] = i + 1
        for obs in observers:
            obs.on_step(state["step"], loss.detach(), lr)
        bar.update(1)
        if state["step"] % cfg.train.log_every == 0:  # one host sync per log_every steps
            bar.set_postfix(loss=f"{float(running['loss_sum']) / max(1, running['seen']):.4f}", refresh=False)
        if flag["stop"]:
            return False
    return True


def train(cfg: RunConfig, observers: Sequence[Observer] = (), *, resume: str | Path | None = None,
          progress: bool = True) -> RunResult:
    """Train `cfg` into a new run folder (or continue the one in `resume`) and return its summary."""
    setup_torch(cfg.train)
    device = select_device(cfg.train.device)
    ckpt = runs.load_checkpoint(Path(resume) / "last.pt") if resume is not None else None
    data = load_dataset(cfg.data.dataset, cfg.data.data_dir, download=cfg.data.download,
                        image_size=cfg.data.image_size)
    model = build_model(cfg.model.name, input_shape=data.input_shape, num_classes=data.num_classes,
                        **dict(cfg.model.args)).to(device)
    is_conv = any(isinstance(m, nn.Conv2d) for m in model.modules())
    channels_last = is_conv and (cfg.train.channels_last == "on" or
                                 (cfg.train.channels_last == "auto" and device.type == "cuda"))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    train_loader, val_loader, test_loader = make_loaders(cfg, data, device, channels_last)
    check_model_takes(model, data, train_loader, cfg.model.name)
    opt = make_optimizer(model, cfg.optim, device)
    state: dict[str, Any] = {"epoch": 0, "batch": 0, "step": 0, "history": [], "best_val_acc": None,
                             "best_epoch": None, "train_seconds": 0.0}
    if ckpt is not None:
        state = _restore(ckpt, model, opt, cfg)
        run_dir = Path(resume)
    else:
        run_dir = runs.new_run_dir(cfg.runs_dir, cfg.name)
        runs.write_text(run_dir / "config.yaml", dump_yaml(cfg))
    if not state.get("env_written"):
        runs.write_json(run_dir / "env.json", runs.capture_env(device))
    state["env_written"] = True
    runs.write_json(run_dir / "status.json", {"status": "running", "epoch": state["epoch"]})
    step_model = torch.compile(model) if cfg.train.compile else model
    amp = autocast_for(device, cfg.train.amp)
    params = count_params(model)
    for obs in observers:
        obs.on_start(run_dir, model, cfg)
    model.train()
    try:
        with stop_on_signal() as flag:
            while state["epoch"] < cfg.train.epochs:
                if not _run_epoch(model, step_model, opt, cfg, state, amp, flag, observers, train_loader,
                                  val_loader, data, run_dir, device, progress):
                    _save_last(run_dir, model, opt, cfg, state)
                    runs.write_json(run_dir / "status.json", {"status": "interrupted", "epoch": state["epoch"]})
                    raise Interrupted(run_dir)
    except (Interrupted, KeyboardInterrupt):
        raise
    except BaseException:
        runs.write_json(run_dir / "status.json", {"status": "failed", "epoch": state["epoch"]})
        raise
    summary = _finish(model, test_loader, data, cfg, state, params, run_dir, amp)
    for obs in observers:
        obs.on_end(summary)
    return RunResult(run_dir=run_dir, summary=summary, history=state["history"])


def _run_epoch(model: nn.Module, step_model: nn.Module, opt: torch.optim.Optimizer, cfg: RunConfig,
               state: dict[str, Any], amp: contextlib.AbstractContextManager, flag: dict[str, bool],
               observers: Sequence[Observer], train_loader: DeviceLoader, val_loader: DeviceLoader | None,
               data: ImageData, run_dir: Path, device: torch.device, progress: bool) -> bool:
    """Train one epoch, validate, record the row and checkpoints; False when a stop was requested."""
    from tqdm.auto import tqdm

    epoch = state["epoch"]
    train_loader.set_epoch(epoch)
    if state["batch"] == 0 or "running" not in state:
        state["running"] = _zero_running(device)
    state.setdefault("epoch_seconds", 0.0)
    bar = tqdm(total=len(train_loader), initial=state["batch"], desc=f"epoch {epoch + 1}/{cfg.train.epochs}",
               unit="batch", disable=not progress, leave=False, file=sys.stderr, dynamic_ncols=True)
    _sync(device)
    t0 = time.perf_counter()
    with bar:
        finished = train_epoch(model, step_model, train_loader, opt, cfg, state, amp, flag, observers, bar)
        _sync(device)
        state["epoch_seconds"] += time.perf_counter() - t0
    if not finished:
        return False
    running = {k: float(v) for k, v in state["running"].items()}  # the epoch's one sync for training metrics
    t1 = time.perf_counter()
    val = evaluate(model, val_loader, data.num_classes, amp) if val_loader is not None else None
    train_time = state.pop("epoch_seconds")
    seconds = train_time + time.perf_counter() - t1
    row = {"epoch": epoch + 1, "step": state["step"], "lr": opt.param_groups[0]["lr"],
           "train_loss": running["loss_sum"] / max(1, running["seen"]),
           "train_acc": running["correct"] / max(1, running["seen"]),
           "val_loss": val.loss if val else "", "val_acc": val.acc if val else "",
           "seconds": seconds, "samples_per_s": running["seen"] / max(train_time, 1e-9)}
    state["history"].append(row)
    state["train_seconds"] += train_time
    state["train_samples"] = state.get("train_samples", 0) + running["seen"]
    state["epoch"], state["batch"] = epoch + 1, 0
    state.pop("running")
    runs.write_csv(run_dir / "metrics.csv", state["history"], runs.METRICS_FIELDS)
    if val is not None and (state["best_val_acc"] is None or val.acc > state["best_val_acc"]):
        state["best_val_acc"], state["best_epoch"] = val.acc, epoch + 1
        runs.save_checkpoint(run_dir / "best.pt", {"model": model.state_dict(), "epoch": epoch + 1,
                                                   "val_acc": val.acc, "config": to_dict(cfg)})
    if state["epoch"] % cfg.train.checkpoint_every == 0 or state["epoch"] == cfg.train.epochs:
        _save_last(run_dir, model, opt, cfg, state)
    if progress:
        val_text = f" val_loss {val.loss:.4f} val_acc {val.acc:.4f}" if val else ""
        print(f"epoch {epoch + 1}/{cfg.train.epochs} train_loss {row['train_loss']:.4f} "
              f"train_acc {row['train_acc']:.4f}{val_text} {row['samples_per_s']:.0f} samples/s", file=sys.stderr)
    for obs in observers:
        obs.on_epoch(row)
    return True


def _zero_running(device: torch.device) -> dict[str, torch.Tensor]:
    return {"loss_sum": torch.zeros((), device=device, dtype=torch.float64),
            "correct": torch.zeros((), device=device, dtype=torch.long),
            "seen": 0}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _save_last(run_dir: Path, model: nn.Module, opt: torch.optim.Optimizer, cfg: RunConfig,
               state: dict[str, Any]) -> None:
    saved = {k: v for k, v in state.items() if k != "running"}
    if "running" in state:  # mid-epoch: keep the partial sums so the epoch's row comes out the same
        saved["running"] = {k: (v.cpu() if torch.is_tensor(v) else v) for k, v in state["running"].items()}
    runs.save_checkpoint(run_dir / "last.pt", {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                               "state": saved, "config": to_dict(cfg),
                                               "torch_rng": torch.get_rng_state()})


def _restore(ckpt: dict[str, Any], model: nn.Module, opt: torch.optim.Optimizer, cfg: RunConfig) -> dict[str, Any]:
    try:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        state = dict(ckpt["state"])
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint does not match model {cfg.model.name}: "
                              f"{str(exc).strip().splitlines()[0]}") from None
    device = next(model.parameters()).device
    if "running" in state:
        state["running"] = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in state["running"].items()}
    torch.set_rng_state(ckpt["torch_rng"])
    return state


def _finish(model: nn.Module, test_loader: DeviceLoader, data: ImageData, cfg: RunConfig, state: dict[str, Any],
            params: int, run_dir: Path, amp: contextlib.AbstractContextManager) -> dict[str, Any]:
    """Test metrics of the final model, the classification report, curves and summary.json."""
    from reslab.report.plots import plot_curves

    test = evaluate(model, test_loader, data.num_classes, amp)
    scores = class_scores(test.confusion)
    history = state["history"]
    summary = {
        "status": "finished", "model": cfg.model.name, "dataset": data.name, "params": params,
        "epochs": len(history), "steps": state["step"],
        "final_train_loss": history[-1]["train_loss"], "final_train_acc": history[-1]["train_acc"],
        "final_val_acc": history[-1]["val_acc"] if history[-1]["val_acc"] != "" else None,
        "best_val_acc": state["best_val_acc"], "best_epoch": state["best_epoch"],
        "test_loss": test.loss, "test_acc": test.acc,
        "train_seconds": state["train_seconds"],
        "samples_per_s": state.get("train_samples", 0) / max(state["train_seconds"], 1e-9),
        "classes": list(data.classes),
        "test_precision": scores.precision, "test_recall": scores.recall, "test_f1": scores.f1,
        "test_support": scores.support,
        "confusion_matrix": test.confusion.tolist(),
    }
    runs.write_text(run_dir / "classification_report.txt", classification_report(test.confusion, data.classes))
    plot_curves(history, run_dir / "curves.png")
    runs.write_json(run_dir / "summary.json", summary)
    runs.write_json(run_dir / "status.json", {"status": "finished", "epoch": state["epoch"]})
    return summary

