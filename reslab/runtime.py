"""Where and how fast a run computes: device, seeds and threads, autocast, memory format, allocator, signals.

Every speed switch lives here, each with a fallback, so the trainer and the instruments make the same
choices for the same config.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import sys
from typing import Any, Iterator

import torch
from torch import nn

from reslab.checks import require_memory
from reslab.config import RunConfig, TrainConfig
from reslab.data import ImageData
from reslab.errors import ConfigError, first_line
from reslab.models import build_model


def select_device(name: str) -> torch.device:
    """`auto` picks cuda, then mps, then cpu; an unavailable device asked for by name is a ConfigError."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
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


def setup_torch(train_cfg: TrainConfig, device: torch.device) -> None:
    """Seeds, threads and determinism; the same seed gives the same init, split, order and augmentation."""
    if train_cfg.threads is not None:
        torch.set_num_threads(train_cfg.threads)
    if torch.are_deterministic_algorithms_enabled() != train_cfg.deterministic or (
            train_cfg.deterministic and not torch.is_deterministic_algorithms_warn_only_enabled()):
        # only when it changes: the call imports torch._dynamo (~3 s on the 2-core CPU, once a process)
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


def uses_channels_last(model: nn.Module, setting: str, device: torch.device) -> bool:
    """channels_last for conv nets: `on`, or `auto` on CUDA and CPU (faster on both; measured on the CPU)."""
    is_conv = any(isinstance(m, nn.Conv2d) for m in model.modules())
    return is_conv and (setting == "on" or (setting == "auto" and device.type in ("cuda", "cpu")))


def build_for(cfg: RunConfig, data: ImageData, device: torch.device) -> tuple[nn.Module, bool]:
    """The config's model for `data`, seeded by train.seed, on `device` in its memory format.

    Returns the model and whether it (and so its inputs) use channels_last. The trainer and every
    instrument build models here, so the same config gives the same initial weights everywhere.
    """
    _require_room(cfg, data, device)
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model.name, input_shape=data.input_shape, num_classes=data.num_classes,
                        **dict(cfg.model.args)).to(device)
    channels_last = uses_channels_last(model, cfg.train.channels_last, device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, channels_last


def _require_room(cfg: RunConfig, data: ImageData, device: torch.device) -> None:
    """Refuse a model whose weights, gradients and optimizer state cannot fit on the device, before building it.

    The model is first built on the meta device (no memory), so a width of 10^6 is one line, not a crash.
    """
    try:
        with torch.device("meta"):
            shape = build_model(cfg.model.name, input_shape=data.input_shape, num_classes=data.num_classes,
                                **dict(cfg.model.args))
    except (RuntimeError, OverflowError) as exc:  # a tensor whose size overflows 64 bits, even without memory
        if "overflow" not in str(exc).lower():
            raise
        raise ConfigError(f"model {cfg.model.name} is too large for any memory ({first_line(exc)})") from None
    params = sum(p.numel() for p in shape.parameters())
    copies = 2 + {"sgd": 1 if cfg.optim.momentum > 0 else 0}.get(cfg.optim.name, 2)  # weights, grads, optimizer
    available = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else None
    require_memory(params * 4 * copies, f"model {cfg.model.name} ({params:,} parameters, with its gradients "
                                        f"and optimizer state)", available)


def sync(device: torch.device) -> None:
    """Wait for queued device work, so wall-clock times are real (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else []))


class StopFlag:
    """Set by SIGINT/SIGTERM/SIGHUP. The one stop mechanism of the trainer, the sweep and the lab.

    `requested` says a stop was asked for; a loop checks it between steps, so a stop never lands mid-update. An
    exception raised in a signal handler can be swallowed (Python drops one raised while a garbage-collection
    callback runs), so a caller that relies on the raise also checks the flag at its next safe point."""

    def __init__(self, at_once: bool = False) -> None:
        self.requested = False
        self.saving = False  # while the stop's checkpoint is written, further signals wait for it
        self.at_once = at_once  # raise KeyboardInterrupt at the first signal, not the second

    def handle(self, signum: int, frame: Any) -> None:
        first = not self.requested
        self.requested = True
        if not self.saving and (self.at_once or not first):
            raise KeyboardInterrupt


@contextlib.contextmanager
def stop_on_signal(*, at_once: bool = False) -> Iterator[StopFlag]:
    """Route the stop signals to a fresh StopFlag while the block runs; the previous handlers are restored on exit.

    Without `at_once` (the trainer) the first signal only sets the flag and a second one raises KeyboardInterrupt,
    unless the stop's own checkpoint is being written (then it is ignored: that write is the quickest way out).
    With `at_once` (a sweep waiting on its runs, the lab) every signal raises at once, and sets the flag too.
    Outside the main thread nothing is installed: signals stay with the caller.
    """
    flag = StopFlag(at_once)
    previous = {}
    try:
        for sig in STOP_SIGNALS:
            previous[sig] = signal.signal(sig, flag.handle)
    except ValueError:  # not the main thread
        pass
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
