"""Optimizers and the learning-rate schedule (a pure function of the step, so resuming needs no scheduler state)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from reslab.config import OptimConfig


def lr_at(step: int, steps_per_epoch: int, epochs: int, optim: OptimConfig) -> float:
    """The learning rate at a global 0-based step: the warm-up (linear ramp, or a constant fraction of lr),
    then the schedule."""
    total = max(1, steps_per_epoch * epochs)
    warmup = int(round(optim.warmup_epochs * steps_per_epoch))
    if step < warmup:
        return optim.lr * (optim.warmup_factor if optim.warmup_mode == "constant" else (step + 1) / warmup)
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
    """Fused kernels where this torch has them for the device (CUDA, and CPU since 2.4), else foreach.

    With optim.head_lr the head's parameters are a second group whose `lr_scale` (head_lr / lr) `set_lr` keeps
    through the schedule; without it there is one group, as in every earlier checkpoint. Frozen parameters
    (requires_grad false: train.freeze) are left out."""
    params: list[Any] = [p for p in model.parameters() if p.requires_grad]
    if optim.head_lr is not None:
        head = {id(p) for p in model.head.parameters()}  # type: ignore[union-attr]
        groups = [{"params": [p for p in params if id(p) not in head]},
                  {"params": [p for p in params if id(p) in head], "lr_scale": optim.head_lr / optim.lr}]
        params = [g for g in groups if g["params"]]
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


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    """The schedule's LR on every group, times the group's lr_scale (the head's optim.head_lr / optim.lr)."""
    for group in opt.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
