"""An average precision computed independently of `reslab.analyze.fcn_detect`, for the detector's tests."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def ap_by_hand(scores: Sequence[float], tp: Sequence[bool], truths: int) -> float:
    """Each true box found adds 1/truths times the best precision at its recall or beyond (detections ranked by
    score); true boxes never found add nothing."""
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    hits = np.cumsum(np.asarray(tp, dtype=bool)[order])
    precision = hits / np.arange(1, len(order) + 1)
    found = int(hits[-1]) if len(order) else 0
    return sum(precision[hits >= k].max() for k in range(1, found + 1)) / truths
