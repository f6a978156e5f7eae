"""The training engine: `train(cfg) -> RunResult`, callable from Python; the CLI is a thin layer over it.

The loop keeps every per-step number on the device (no host sync per step); it syncs once per
`log_every` steps for the progress bar and once per epoch for the metrics row. SIGINT/SIGTERM set a
flag that the loop checks between steps, so an interrupted run checkpoints its exact position and
`--resume` continues as if it had never stopped.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from reslab import runs
from reslab.config import OptimConfig, RunConfig, TrainConfig, dump_yaml, to_dict
from reslab.data import Augment, DeviceLoader, ImageData, load_dataset, split_indices
from reslab.errors import CheckpointError, ConfigError, DataError
from reslab.metrics import accuracy, class_scores, classification_report, confusion_update
from reslab.models import build_model, count_params


class Interrupted(Exception):
    """Raised after an interrupted run has saved its checkpoint; carries the run folder."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(f"interrupted; checkpoint saved. Resume with: reslab train --resume {run_dir}")
        self.run_dir = run_dir


class Observer:
    """Extension point: `train(cfg, observers=[...])`; subclass and override what you need.

    Every hook of one training step gets the same 1-based step number. Tensors passed are on the device:
    an observer syncs at most once per record it writes, never per step.
    """

    def on_start(self, run_dir: Path, model: nn.Module, cfg: RunConfig, start_step: int) -> None:
        """Before the first step; start_step > 0 when resuming (drop anything recorded after it)."""

    def on_batch_start(self, step: int) -> None:
        """Before the forward pass of `step`."""

    def on_after_backward(self, step: int, model: nn.Module) -> None:
        """Gradients of `step` are in the parameters; the optimizer has not stepped yet."""

    def on_step(self, step: int, loss: torch.Tensor, lr: float) -> None:
        """After the optimizer step; `loss` is the batch's mean training loss (a device scalar)."""

    def on_epoch(self, row: dict[str, Any]) -> None:
        """After validation, with the epoch's metrics.csv row."""

    def on_end(self, summary: dict[str, Any]) -> None:
        """After a finished run's test evaluation, with summary.json's values."""

    def close(self) -> None:
        """Always called last, also when the run is interrupted or fails: flush and release."""


def config_observers(cfg: RunConfig) -> list[Observer]:
    """The observers a config asks for (tracking sinks, gradient-flow recording), imported only when used."""
    from reslab.tracking import tracking_observer  # steps.csv always; TensorBoard / W&B only when asked

    observers: list[Observer] = [tracking_observer(cfg)]
    if cfg.gradflow.every > 0:
        from reslab.gradflow import GradflowRecorder

        observers.append(GradflowRecorder(cfg.gradflow.every, output_std=cfg.gradflow.output_std))
    return observers


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
        raise ConfigError(f"device {name} asked for, but CUDA is not available here (use --device cpu or auto)")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"device {name} asked for, but MPS is not available here (use --device cpu or auto)")
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
    """Fused kernels where this torch has them for the device (CUDA, and CPU since 2.4), else foreach."""
    params = [p for p in model.parameters() if p.requires_grad]
    if optim.name == "sgd":
        cls, kw = torch.optim.SGD, dict(momentum=optim.momentum, nesterov=optim.nesterov)
    else:
        cls, kw = (torch.optim.AdamW if optim.name == "adamw" else torch.optim.Adam), dict(betas=optim.betas)
    kw.update(lr=optim.lr, weight_decay=optim.weight_decay)
    if device.type in ("cuda", "cpu"):
        try:
            return cls(params, fused=True, **kw)
        except (RuntimeError, TypeError, ValueError):  # an older torch without fused kernels for this device
            pass
    return cls(params, foreach=device.type != "mps", **kw)


def setup_torch(train_cfg: TrainConfig, device: torch.device) -> None:
    """Seeds, threads and determinism; the same seed gives the same init, split, order and augmentation."""
    if train_cfg.threads is not None:
        torch.set_num_threads(train_cfg.threads)
    torch.use_deterministic_algorithms(train_cfg.deterministic, warn_only=True)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = not train_cfg.deterministic
        torch.backends.cudnn.allow_tf32 = not train_cfg.deterministic
        torch.backends.cudnn.benchmark = not train_cfg.deterministic
    if device.type == "cpu":
        keep_freed_memory()
    torch.manual_seed(train_cfg.seed)


def keep_freed_memory() -> bool:
    """Stop glibc handing large freed blocks back to the OS (Linux CPU training only).

    By default every activation of a few MiB is mmap'd, unmapped when freed, and faulted back in page by
    page at the next step; keeping it in the heap made a CPU epoch of seed-cnn about 1.5x faster here.
    Returns whether the setting took (False off glibc).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # from malloc.h
        return bool(libc.mallopt(m_mmap_threshold, 32 << 20)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):
        return False


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
    """SIGINT/SIGTERM set a flag the loop checks between steps (never mid-update); a second one stops at once.

    Handlers are restored on exit.
    """
    flag = {"stop": False}

    def handler(signum: int, frame: Any) -> None:
        if flag["stop"]:
            raise KeyboardInterrupt
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


def evaluate(model: nn.Module, loader: DeviceLoader, num_classes: int,
             amp: contextlib.AbstractContextManager | None = None) -> EvalResult:
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


@dataclass
class Session:
    """What one run trains with: built once by `train`, passed to the loop's helpers."""

    cfg: RunConfig
    data: ImageData
    model: nn.Module  # the unwrapped module: what checkpoints hold
    step_model: nn.Module  # the module the training step calls (compiled when asked)
    opt: torch.optim.Optimizer
    amp: contextlib.AbstractContextManager
    device: torch.device
    run_dir: Path
    loaders: tuple[DeviceLoader, DeviceLoader | None, DeviceLoader]  # train, val (None when val_size=0), test
    observers: Sequence[Observer] = ()
    progress: bool = True


def train_epoch(s: Session, state: dict[str, Any], flag: dict[str, bool], bar: Any) -> bool:
    """One epoch from state['batch'] on; returns False if a stop was requested (state then marks the position)."""
    optim, loader = s.cfg.optim, s.loaders[0]
    running = state["running"]  # device tensors: loss_sum, correct; seen is a host int
    for i, (x, y) in enumerate(loader.batches(state["batch"]), start=state["batch"]):
        step = state["step"] + 1
        lr = lr_at(state["step"], len(loader), s.cfg.train.epochs, optim)
        for group in s.opt.param_groups:
            group["lr"] = lr
        for obs in s.observers:
            obs.on_batch_start(step)
        with s.amp:
            logits = s.step_model(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=optim.label_smoothing)
        s.opt.zero_grad(set_to_none=True)
        loss.backward()
        for obs in s.observers:
            obs.on_after_backward(step, s.model)
        if optim.grad_clip is not None:
            nn.utils.clip_grad_norm_(s.model.parameters(), optim.grad_clip)
        s.opt.step()
        running["loss_sum"] += loss.detach() * len(y)
        running["correct"] += (logits.detach().argmax(1) == y).sum()
        running["seen"] += len(y)
        state["step"], state["batch"] = step, i + 1
        for obs in s.observers:
            obs.on_step(step, loss.detach(), lr)
        bar.update(len(y))  # a shape, not a sync
        if state["step"] % s.cfg.train.log_every == 0:  # one host sync per log_every steps
            bar.set_postfix(loss=f"{float(running['loss_sum']) / max(1, running['seen']):.4f}", refresh=False)
        if flag["stop"]:
            return False
    return True


def train(cfg: RunConfig, observers: Sequence[Observer] = (), *, resume: str | Path | None = None,
          progress: bool = True) -> RunResult:
    """Train `cfg` into a new run folder (or continue the one in `resume`) and return its summary.

    `observers` are added to the ones the config asks for (`config_observers`).
    """
    s, state = _start(cfg, [*config_observers(cfg), *observers], resume, progress)
    try:
        with stop_on_signal() as flag:
            while state["epoch"] < cfg.train.epochs:
                if not _run_epoch(s, state, flag):
                    _save_last(s, state)
                    runs.write_json(s.run_dir / "status.json", {"status": "interrupted", "epoch": state["epoch"]})
                    raise Interrupted(s.run_dir)
        summary = _finish(s, state)
        for obs in s.observers:
            obs.on_end(summary)
    except (Interrupted, KeyboardInterrupt):
        raise
    except BaseException:
        runs.write_json(s.run_dir / "status.json", {"status": "failed", "epoch": state["epoch"]})
        raise
    finally:
        for obs in s.observers:
            obs.close()
    return RunResult(run_dir=s.run_dir, summary=summary, history=state["history"])


def _start(cfg: RunConfig, observers: Sequence[Observer], resume: str | Path | None,
           progress: bool) -> tuple[Session, dict[str, Any]]:
    """Data, model, optimizer and run folder; everything a user can get wrong fails here, before training."""
    device = select_device(cfg.train.device)
    setup_torch(cfg.train, device)
    ckpt = runs.load_checkpoint(Path(resume) / "last.pt") if resume is not None else None
    if ckpt is not None:
        done = ckpt.get("state", {}).get("epoch") if isinstance(ckpt.get("state"), dict) else None
        if not isinstance(done, int):
            raise CheckpointError(f"{Path(resume) / 'last.pt'} is not a reslab training checkpoint")
        if done >= cfg.train.epochs:
            raise ConfigError(f"{resume} already finished {done} of {cfg.train.epochs} epochs; "
                              "pass --epochs N with a larger N to train further")
    data = load_dataset(cfg.data.dataset, cfg.data.data_dir, download=cfg.data.download,
                        image_size=cfg.data.image_size)
    model = build_model(cfg.model.name, input_shape=data.input_shape, num_classes=data.num_classes,
                        **dict(cfg.model.args)).to(device)
    is_conv = any(isinstance(m, nn.Conv2d) for m in model.modules())
    channels_last = is_conv and (cfg.train.channels_last == "on" or
                                 (cfg.train.channels_last == "auto" and device.type in ("cuda", "cpu")))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    loaders = make_loaders(cfg, data, device, channels_last)
    check_model_takes(model, data, loaders[0], cfg.model.name)
    opt = make_optimizer(model, cfg.optim, device)
    state: dict[str, Any] = {"epoch": 0, "batch": 0, "step": 0, "history": [], "best_val_acc": None,
                             "best_epoch": None, "train_seconds": 0.0, "train_samples": 0}
    if ckpt is not None:
        state = _restore(ckpt, model, opt, cfg)
        run_dir = Path(resume)  # type: ignore[arg-type]
        runs.write_text(run_dir / "config.yaml", dump_yaml(cfg))  # the epochs may have grown
    else:
        run_dir = runs.new_run_dir(cfg.runs_dir, cfg.name)
        runs.write_text(run_dir / "config.yaml", dump_yaml(cfg))
        runs.write_json(run_dir / "env.json", runs.capture_env(device))
    runs.write_json(run_dir / "status.json", {"status": "running", "epoch": state["epoch"]})
    s = Session(cfg=cfg, data=data, model=model, step_model=torch.compile(model) if cfg.train.compile else model,
                opt=opt, amp=autocast_for(device, cfg.train.amp), device=device, run_dir=run_dir,
                loaders=loaders, observers=observers, progress=progress)
    if progress:
        n_val = len(loaders[1].labels) if loaders[1] is not None else 0
        print(f"{cfg.name}: model {cfg.model.name} ({count_params(model):,} parameters) on {data.name} "
              f"({loaders[0].num_samples} train / {n_val} val / {loaders[2].num_samples} test), device {device}"
              + (f", resuming at epoch {state['epoch'] + 1}" if ckpt is not None else ""), file=sys.stderr)
    for obs in observers:
        obs.on_start(run_dir, model, cfg, state["step"])
    model.train()
    return s, state


def _run_epoch(s: Session, state: dict[str, Any], flag: dict[str, bool]) -> bool:
    """Train one epoch, validate, record the row and checkpoints; False when a stop was requested."""
    from tqdm.auto import tqdm

    epoch, (train_loader, val_loader, _) = state["epoch"], s.loaders
    train_loader.set_epoch(epoch)
    if "running" not in state:  # absent at an epoch's start; present when resuming mid-epoch
        state["running"] = {"loss_sum": torch.zeros((), device=s.device, dtype=torch.float64),
                            "correct": torch.zeros((), device=s.device, dtype=torch.long), "seen": 0}
    state.setdefault("epoch_seconds", 0.0)
    bar = tqdm(total=train_loader.num_samples, initial=int(state["running"]["seen"]), unit="img", unit_scale=True,
               desc=f"epoch {epoch + 1}/{s.cfg.train.epochs}", disable=not s.progress, leave=False,
               file=sys.stderr, dynamic_ncols=True)
    _sync(s.device)
    t0 = time.perf_counter()
    with bar:
        finished = train_epoch(s, state, flag, bar)
        _sync(s.device)
        state["epoch_seconds"] += time.perf_counter() - t0
    if not finished:
        return False
    running = {k: float(v) for k, v in state.pop("running").items()}  # the epoch's one sync for training metrics
    t1 = time.perf_counter()
    val = evaluate(s.model, val_loader, s.data.num_classes, s.amp) if val_loader is not None else None
    train_time = state.pop("epoch_seconds")
    row = {"epoch": epoch + 1, "step": state["step"], "lr": s.opt.param_groups[0]["lr"],
           "train_loss": running["loss_sum"] / max(1, running["seen"]),
           "train_acc": running["correct"] / max(1, running["seen"]),
           "val_loss": val.loss if val else "", "val_acc": val.acc if val else "",
           "seconds": train_time + time.perf_counter() - t1,
           "samples_per_s": running["seen"] / max(train_time, 1e-9)}
    state["history"].append(row)
    state["train_seconds"] += train_time
    state["train_samples"] += int(running["seen"])
    state["epoch"], state["batch"] = epoch + 1, 0
    runs.write_csv(s.run_dir / "metrics.csv", state["history"], runs.METRICS_FIELDS)
    if val is not None and (state["best_val_acc"] is None or val.acc > state["best_val_acc"]):
        state["best_val_acc"], state["best_epoch"] = val.acc, epoch + 1
        runs.save_checkpoint(s.run_dir / "best.pt", {"model": s.model.state_dict(), "epoch": epoch + 1,
                                                     "val_acc": val.acc, "config": to_dict(s.cfg)})
    if state["epoch"] % s.cfg.train.checkpoint_every == 0 or state["epoch"] == s.cfg.train.epochs:
        _save_last(s, state)
    if s.progress:
        val_text = f" val_loss {val.loss:.4f} val_acc {val.acc:.4f}" if val else ""
        print(f"epoch {epoch + 1}/{s.cfg.train.epochs} train_loss {row['train_loss']:.4f} "
              f"train_acc {row['train_acc']:.4f}{val_text} {row['samples_per_s']:.0f} samples/s", file=sys.stderr)
    for obs in s.observers:
        obs.on_epoch(row)
    return True


def _sync(device: torch.device) -> None:
    """Wait for queued device work, so wall-clock times are real (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _save_last(s: Session, state: dict[str, Any]) -> None:
    saved = dict(state)
    if "running" in state:  # mid-epoch: keep the partial sums so the epoch's row comes out the same
        saved["running"] = {k: (v.cpu() if torch.is_tensor(v) else v) for k, v in state["running"].items()}
    runs.save_checkpoint(s.run_dir / "last.pt", {"model": s.model.state_dict(), "optimizer": s.opt.state_dict(),
                                                 "state": saved, "config": to_dict(s.cfg),
                                                 "torch_rng": torch.get_rng_state()})


def _restore(ckpt: dict[str, Any], model: nn.Module, opt: torch.optim.Optimizer, cfg: RunConfig) -> dict[str, Any]:
    try:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        state = dict(ckpt["state"])
        torch.set_rng_state(ckpt["torch_rng"])
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint does not match model {cfg.model.name}: "
                              f"{str(exc).strip().splitlines()[0]}") from None
    device = next(model.parameters()).device
    if "running" in state:
        state["running"] = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in state["running"].items()}
    return state


def _finish(s: Session, state: dict[str, Any]) -> dict[str, Any]:
    """Test metrics of the final model, the classification report, curves and summary.json."""
    from reslab.plots import plot_curves

    test = evaluate(s.model, s.loaders[2], s.data.num_classes, s.amp)
    scores = class_scores(test.confusion)
    history, last = state["history"], state["history"][-1]
    summary = {
        "status": "finished", "model": s.cfg.model.name, "dataset": s.data.name, "params": count_params(s.model),
        "epochs": len(history), "steps": state["step"],
        "final_train_loss": last["train_loss"], "final_train_acc": last["train_acc"],
        "final_val_acc": last["val_acc"] if last["val_acc"] != "" else None,
        "best_val_acc": state["best_val_acc"], "best_epoch": state["best_epoch"],
        "test_loss": test.loss, "test_acc": test.acc,
        "train_seconds": state["train_seconds"],
        "samples_per_s": state["train_samples"] / max(state["train_seconds"], 1e-9),
        "classes": list(s.data.classes),
        "test_precision": scores.precision, "test_recall": scores.recall, "test_f1": scores.f1,
        "test_support": scores.support,
        "confusion_matrix": test.confusion.tolist(),
    }
    runs.write_text(s.run_dir / "classification_report.txt", classification_report(test.confusion, s.data.classes))
    plot_curves(history, s.run_dir / "curves.png")
    runs.write_json(s.run_dir / "summary.json", summary)
    runs.write_json(s.run_dir / "status.json", {"status": "finished", "epoch": state["epoch"]})
    return summary
