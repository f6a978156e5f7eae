"""Classification metrics from a confusion matrix kept on the device (one host sync per evaluation).

The per-class numbers and the text report match sklearn's `classification_report(..., digits=3,
zero_division=0)`, which the notebook prints, without depending on sklearn at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch


def confusion_update(confusion: torch.Tensor, labels: torch.Tensor, preds: torch.Tensor) -> torch.Tensor:
    """Add a batch to a (K, K) int64 confusion matrix (rows: true class, columns: predicted), on its device."""
    k = confusion.shape[0]
    return confusion + torch.bincount(labels * k + preds, minlength=k * k).view(k, k)


@dataclass(frozen=True)
class ClassScores:
    precision: list[float]
    recall: list[float]
    f1: list[float]
    support: list[int]


def class_scores(confusion: torch.Tensor) -> ClassScores:
    """Per-class precision, recall, F1 and support; 0 where undefined (sklearn's zero_division=0)."""
    cm = confusion.detach().to("cpu", torch.float64)
    tp = cm.diagonal()
    predicted = cm.sum(0)
    actual = cm.sum(1)
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))
    recall = torch.where(actual > 0, tp / actual.clamp(min=1), torch.zeros_like(tp))
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp(min=1e-300), torch.zeros_like(tp))
    return ClassScores(precision.tolist(), recall.tolist(), f1.tolist(), [int(v) for v in actual.tolist()])


def accuracy(confusion: torch.Tensor) -> float:
    total = int(confusion.sum())
    return float(confusion.diagonal().sum()) / total if total else 0.0


def classification_report(confusion: torch.Tensor, class_names: Sequence[str], digits: int = 3) -> str:
    """The text of sklearn's classification_report for the same predictions (classes with support or predictions)."""
    scores = class_scores(confusion)
    cm = confusion.detach().cpu()
    present = [i for i in range(len(class_names)) if int(cm[i].sum()) > 0 or int(cm[:, i].sum()) > 0]
    names = [str(class_names[i]) for i in present]
    headers = ["precision", "recall", "f1-score", "support"]
    width = max([len("weighted avg"), digits] + [len(n) for n in names])
    lines = ["{:>{w}s} ".format("", w=width) + "".join(f" {h:>9}" for h in headers), ""]
    row = "{:>{w}s} " + " {:>9.{d}f}" * 3 + " {:>9}"
    for i, name in zip(present, names):
        lines.append(row.format(name, scores.precision[i], scores.recall[i], scores.f1[i], scores.support[i],
                                w=width, d=digits))
    lines.append("")
    total = sum(scores.support[i] for i in present)
    acc = accuracy(confusion)
    lines.append("{:>{w}s} ".format("accuracy", w=width) + " {:>9}".format("") * 2
                 + " {:>9.{d}f}".format(acc, d=digits) + " {:>9}".format(total))
    for label, weights in (("macro avg", [1.0] * len(present)), ("weighted avg", [scores.support[i] for i in present])):
        wsum = sum(weights) or 1.0
        avg = [sum(w * getattr(scores, m)[i] for w, i in zip(weights, present)) / wsum
               for m in ("precision", "recall", "f1")]
        lines.append(row.format(label, *avg, total, w=width, d=digits))
    return "\n".join(lines) + "\n"
