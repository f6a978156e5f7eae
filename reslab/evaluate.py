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
