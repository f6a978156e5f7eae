"""Evaluation, and the check that a model can take a dataset's images (before any training)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from reslab.data import ImageData
from reslab.errors import DataError, first_line
from reslab.metrics import accuracy, confusion_update


@dataclass
class EvalResult:
    loss: float
    acc: float
    confusion: torch.Tensor  # (K, K) int64, rows: true class
    top5: float | None = None  # top-5 accuracy, with more than TOP5_ABOVE classes (CIFAR-100)


TOP5_ABOVE = 10  # classes: top-5 accuracy is recorded above this many


def evaluate(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], num_classes: int,
             amp: contextlib.AbstractContextManager | None = None,
             all_sum: Callable[[torch.Tensor], torch.Tensor] | None = None) -> EvalResult:
    """Mean loss, accuracy and confusion matrix over batches, in eval mode; one host sync at the end.

    In a distributed run each rank evaluates its shard and `all_sum` adds the sums up over the ranks, so every
    rank gets the whole set's result. The model is left in the mode it was in.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long, device=device)
    top5 = torch.zeros((), dtype=torch.long, device=device)
    try:
        with torch.no_grad():
            for x, y in batches:
                with amp or contextlib.nullcontext():
                    logits = model(x)
                loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
                confusion = confusion_update(confusion, y, logits.argmax(1))
                if num_classes > TOP5_ABOVE:
                    top5 += (logits.topk(5, dim=1).indices == y[:, None]).any(1).sum()
    finally:
        model.train(was_training)
    if all_sum is not None:
        loss_sum, confusion, top5 = all_sum(loss_sum), all_sum(confusion), all_sum(top5)
    confusion = confusion.cpu()
    n = int(confusion.sum())
    return EvalResult(loss=float(loss_sum) / max(1, n), acc=accuracy(confusion), confusion=confusion,
                      top5=int(top5) / max(1, n) if num_classes > TOP5_ABOVE else None)


@torch.no_grad()
def evaluate_packed(forward: Callable[[torch.Tensor], torch.Tensor],
                    batches: Iterable[tuple[torch.Tensor, torch.Tensor]], runs: int, num_classes: int,
                    amp: contextlib.AbstractContextManager | None = None) -> list[EvalResult]:
    """`evaluate` for the N runs of a pack at once: `forward` maps (N, B, ...) to (N, B, classes), the batches are
    each run's, (N, B, ...) and (N, B). Each run's result is `evaluate`'s for its own model and batches (its loss
    summed in another order: equal to float tolerance). One host sync at the end."""
    device = None
    loss_sum = confusion = top5 = None
    for x, y in batches:
        with amp or contextlib.nullcontext():
            logits = forward(x)
        if loss_sum is None:
            device = logits.device
            loss_sum = torch.zeros(runs, device=device, dtype=torch.float64)
            confusion = torch.zeros(runs * num_classes * num_classes, dtype=torch.long, device=device)
            top5 = torch.zeros(runs, dtype=torch.long, device=device)
        b = y.shape[1]
        loss_sum += F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="none").view(runs, b).sum(1)
        run = torch.arange(runs, device=device).view(-1, 1)
        confusion += torch.bincount(((run * num_classes + y) * num_classes + logits.argmax(2)).flatten(),
                                    minlength=runs * num_classes * num_classes)
        if num_classes > TOP5_ABOVE:
            top5 += (logits.topk(5, dim=2).indices == y[..., None]).any(2).sum(1)
    if loss_sum is None:
        raise ValueError("evaluate_packed needs at least one batch")
    matrices = confusion.view(runs, num_classes, num_classes).cpu()
    losses, top5s = loss_sum.cpu().tolist(), top5.cpu().tolist()
    out = []
    for i in range(runs):
        n = int(matrices[i].sum())
        out.append(EvalResult(loss=losses[i] / max(1, n), acc=accuracy(matrices[i]), confusion=matrices[i].clone(),
                              top5=top5s[i] / max(1, n) if num_classes > TOP5_ABOVE else None))
    return out


def check_model_takes(model: nn.Module, data: ImageData, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                      model_name: str) -> None:
    """Fail before training, with one line, when the model cannot take the dataset's images."""
    x, _ = next(iter(batches))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x[:2])
    except RuntimeError as exc:
        c, h, w = data.input_shape
        raise DataError(f"model {model_name} cannot take {data.name} images ({c}x{h}x{w}): {first_line(exc)}") from None
    finally:
        model.train(was_training)
    if tuple(out.shape) != (min(2, len(x)), data.num_classes):
        raise DataError(f"model {model_name} gives outputs of shape {tuple(out.shape)[1:]} for {data.name}, "
                        f"which has {data.num_classes} classes")
