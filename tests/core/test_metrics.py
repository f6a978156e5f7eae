"""Metrics against sklearn, an independent implementation."""

import pytest
import torch
from sklearn.metrics import classification_report as sk_report
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from reslab.metrics import accuracy, class_scores, classification_report, confusion_update


def _confusion(y: torch.Tensor, p: torch.Tensor, k: int) -> torch.Tensor:
    cm = torch.zeros(k, k, dtype=torch.long)
    for lo in range(0, len(y), 37):  # in batches, as the evaluator adds them
        cm = confusion_update(cm, y[lo:lo + 37], p[lo:lo + 37])
    return cm


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_match_sklearn(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    k = 6
    y = torch.randint(0, k, (500,), generator=g)
    p = torch.where(torch.rand(500, generator=g) < 0.6, y, torch.randint(0, k, (500,), generator=g))
    p[p == 5] = 0  # class 5 is never predicted: precision undefined, reported as 0
    cm = _confusion(y, p, k)
    assert cm.tolist() == confusion_matrix(y.numpy(), p.numpy(), labels=list(range(k))).tolist()
    ref = precision_recall_fscore_support(y.numpy(), p.numpy(), labels=list(range(k)), zero_division=0)
    ours = class_scores(cm)
    for got, want in zip((ours.precision, ours.recall, ours.f1, ours.support), ref):
        assert got == pytest.approx(list(want), abs=1e-12)
    assert accuracy(cm) == pytest.approx(float((y == p).float().mean()))


@pytest.mark.parametrize("missing_class", [False, True])
def test_report_text_equals_sklearn(missing_class: bool) -> None:
    g = torch.Generator().manual_seed(3)
    names = ["airplane", "cat", "dog", "x"]
    y = torch.randint(0, 4, (300,), generator=g)
    p = torch.randint(0, 4, (300,), generator=g)
    if missing_class:  # a class that is neither true nor predicted is left out, as sklearn does
        y[y == 3] = 0
        p[p == 3] = 1
    cm = _confusion(y, p, 4)
    present = sorted(set(y.tolist()) | set(p.tolist()))
    want = sk_report(y.numpy(), p.numpy(), labels=present, target_names=[names[i] for i in present],
                     zero_division=0, digits=3)
    assert classification_report(cm, names) == want


def test_confusion_on_device_dtype() -> None:
    cm = confusion_update(torch.zeros(3, 3, dtype=torch.long), torch.tensor([0, 1, 2, 2]), torch.tensor([0, 2, 2, 1]))
    assert cm.dtype == torch.long and cm.tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 1]]
