"""A detector on a fully-convolutional classifier's class maps, and its evaluation (precision, recall, AP).

The detector is the classifier slid over the canvas, computed convolutionally: the mean of the class map over a
window of the size the training images' feature map had is the classifier's logits for that window (exactly so
when the window's features are those of the crop alone; near the window's edges the surrounding canvas leaks in
through the receptive field), and their softmax is the classifier's confidence that the window holds each class.
Per class, local maxima (3x3) of that confidence are detections; a window's box is the training image's frame at
the window's place (stride = input size / map size); a pyramid of input scales finds digits of other sizes, and
non-maximum suppression per class removes the duplicates across neighbouring places and scales.

Evaluation is the usual one of detection (PASCAL VOC 2010+): detections, highest score first, are matched to the
unmatched true box of their class with the highest IoU >= the IoU threshold; AP is the area under the precision
envelope (all-point interpolation), per class, and the mean over the classes that have true boxes (mAP).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torchvision.ops import batched_nms, box_iou


@dataclass(frozen=True)
class Boxes:
    """Boxes of one canvas: true ones (score 1) or detections."""

    boxes: torch.Tensor  # (n, 4) float: x0, y0, x1, y1 in canvas pixels
    labels: torch.Tensor  # (n,) int64 class indices
    scores: torch.Tensor  # (n,) float, highest = most confident

    @staticmethod
    def empty() -> Boxes:
        return Boxes(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), torch.zeros(0))

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Level:
    """One level of the input pyramid: the canvas resized by 1/scale, and the classifier's window confidences."""

    scale: float  # canvas pixels per resized pixel (a digit of side 28*scale fills the training frame)
    scores: torch.Tensor  # (K, h, w) softmax confidence of the window whose top-left map cell is (i, j)
    stride: tuple[float, float]  # resized-image pixels per map cell (y, x)


def window_scores(class_map: torch.Tensor, window: tuple[int, int]) -> torch.Tensor:
    """(B, K, H, W) per-position logits -> (B, K, H-wh+1, W-ww+1) softmax over classes of each window's mean."""
    return F.avg_pool2d(class_map, window, stride=1).softmax(1)


def peaks(scores: torch.Tensor, floor: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(K, h, w) -> (class, row, column, score) of every 3x3 local maximum of a class's map at >= floor."""
    local_max = scores == F.max_pool2d(scores[None], 3, stride=1, padding=1)[0]
    k, i, j = (local_max & (scores >= floor)).nonzero(as_tuple=True)
    return k, i, j, scores[k, i, j]


def detect(levels: Sequence[Level], frame: tuple[int, int], *, floor: float, nms_iou: float,
           max_detections: int) -> Boxes:
    """One canvas's detections: peaks of every level, boxed by the training frame (h, w) at their place, non-maximum
    suppressed per class, at most `max_detections`, highest score first."""
    boxes, labels, scores = [], [], []
    for level in levels:
        k, i, j, s = peaks(level.scores.float().cpu(), floor)
        y0, x0 = i * level.stride[0], j * level.stride[1]
        box = torch.stack([x0, y0, x0 + frame[1], y0 + frame[0]], 1).float() * level.scale
        boxes.append(box), labels.append(k), scores.append(s)
    if not boxes:
        return Boxes.empty()
    box, label, score = torch.cat(boxes), torch.cat(labels), torch.cat(scores)
    keep = batched_nms(box, score, label, nms_iou)[:max_detections]  # sorted by score, highest first
    return Boxes(box[keep], label[keep], score[keep])


# ----------------------------------------------------------------------------- evaluation


def match(pred: Boxes, truth: Boxes, iou_threshold: float) -> torch.Tensor:
    """(n,) bool: each detection is a true positive, matched greedily, highest score first, to the unmatched true
    box of its class with the highest IoU >= `iou_threshold` (each true box matches once)."""
    tp = torch.zeros(len(pred), dtype=torch.bool)
    if not len(pred) or not len(truth):
        return tp
    overlap = box_iou(pred.boxes.float(), truth.boxes.float())  # (n, m)
    overlap[pred.labels[:, None] != truth.labels[None, :]] = -1.0
    taken = torch.zeros(len(truth), dtype=torch.bool)
    for d in torch.argsort(pred.scores, descending=True, stable=True).tolist():
        row = overlap[d].masked_fill(taken, -1.0)
        best = int(row.argmax())
        if row[best] >= iou_threshold:
            tp[d], taken[best] = True, True
    return tp


def average_precision(scores: Sequence[float], tp: Sequence[bool], truths: int) -> float:
    """Area under the precision envelope over recall (all-point interpolation), from detections' scores and whether
    each is a true positive; NaN when there is no true box (AP is undefined)."""
    if truths == 0:
        return math.nan
    order = sorted(range(len(scores)), key=lambda d: -scores[d])
    hits, recall, precision = 0, [0.0], [1.0]
    for rank, d in enumerate(order, 1):
        hits += bool(tp[d])
        recall.append(hits / truths)
        precision.append(hits / rank)
    for n in range(len(precision) - 2, -1, -1):  # the envelope: the best precision at any higher recall
        precision[n] = max(precision[n], precision[n + 1])
    return sum((recall[n] - recall[n - 1]) * precision[n] for n in range(1, len(recall)))


@dataclass(frozen=True)
class ClassScore:
    """One class over all canvases: AP over every detection, precision and recall of those at >= the threshold."""

    label: int
    truths: int
    detections: int  # at >= threshold
    true_positives: int  # at >= threshold
    ap: float  # NaN: no true box of this class

    @property
    def precision(self) -> float:
        return self.true_positives / self.detections if self.detections else math.nan

    @property
    def recall(self) -> float:
        return self.true_positives / self.truths if self.truths else math.nan


def evaluate(predictions: Sequence[Boxes], truths: Sequence[Boxes], num_classes: int, *, iou_threshold: float,
             threshold: float) -> tuple[list[ClassScore], list[torch.Tensor]]:
    """Per class scores over the canvases, and each canvas's true-positive flags (per detection)."""
    flags = [match(p, t, iou_threshold) for p, t in zip(predictions, truths)]
    scores = torch.cat([p.scores for p in predictions]) if predictions else torch.zeros(0)
    labels = torch.cat([p.labels for p in predictions]) if predictions else torch.zeros(0, dtype=torch.long)
    tp = torch.cat(flags) if flags else torch.zeros(0, dtype=torch.bool)
    true_labels = torch.cat([t.labels for t in truths]) if truths else torch.zeros(0, dtype=torch.long)
    out = []
    for k in range(num_classes):
        mine = labels == k
        above = mine & (scores >= threshold)
        n_true = int((true_labels == k).sum())
        out.append(ClassScore(k, n_true, int(above.sum()), int((above & tp).sum()),
                              average_precision(scores[mine].tolist(), tp[mine].tolist(), n_true)))
    return out, flags


def mean_ap(classes: Sequence[ClassScore]) -> float:
    """The mean of the classes' APs over the classes with a true box (NaN when none has)."""
    aps = [c.ap for c in classes if c.truths]
    return sum(aps) / len(aps) if aps else math.nan
