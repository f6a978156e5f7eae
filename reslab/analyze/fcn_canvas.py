"""Canvases for the fully-convolutional detector: test-set digits pasted at random places and scales on a black
canvas, with their true boxes and labels, drawn from one seed.

Only test-set images are pasted, so no canvas shows a digit the classifier was trained on. A digit keeps its
whole square frame (the 28x28 image, scaled), which is its true box: the frame the classifier was trained to
read, whatever the ink inside covers. Digits are composited by their maximum (MNIST's background is 0), and a
place is redrawn when its box overlaps an earlier digit's by more than `max_overlap` IoU (a digit that finds no
place in 100 draws is left out, so a crowded canvas may hold fewer than drawn).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.ops import box_iou

from reslab.analyze.fcn_detect import Boxes

PLACE_TRIES = 100


@dataclass(frozen=True)
class CanvasSpec:
    """What the canvases hold: how many, their side, the digits per canvas and the range of digit scales."""

    count: int = 200
    size: int = 96  # pixels, square
    digits: tuple[int, int] = (2, 5)  # at least, at most (uniform)
    scales: tuple[float, float] = (1.0, 2.0)  # a digit's side is its image's side times a scale in this range
    max_overlap: float = 0.1  # IoU allowed between two digits' boxes
    seed: int = 0


@dataclass(frozen=True, eq=False)
class Canvas:
    image: torch.Tensor  # uint8 (C, size, size)
    truth: Boxes  # the pasted digits' frames and labels
    sources: tuple[int, ...]  # indices of the test images pasted, in truth's order


def _resized(image: torch.Tensor, side: int) -> torch.Tensor:
    """uint8 (C, h, w) -> uint8 (C, side, side), bilinear (antialiased when shrinking)."""
    x = F.interpolate(image[None].float(), size=(side, side), mode="bilinear", align_corners=False,
                      antialias=side < image.shape[-1])
    return x[0].round().clamp(0, 255).to(torch.uint8)


def make_canvases(images: torch.Tensor, labels: torch.Tensor, spec: CanvasSpec) -> list[Canvas]:
    """`spec.count` canvases from test `images` (uint8 (N, C, h, w)) and `labels` (N,), drawn with `spec.seed`."""
    gen = torch.Generator().manual_seed(spec.seed)
    channels, height, width = images.shape[1:]
    low, high = spec.scales

    def uniform() -> float:
        return float(torch.rand((), generator=gen))

    canvases = []
    for _ in range(spec.count):
        canvas = torch.zeros(channels, spec.size, spec.size, dtype=torch.uint8)
        boxes: list[list[float]] = []
        picked: list[int] = []
        for _ in range(int(torch.randint(spec.digits[0], spec.digits[1] + 1, (), generator=gen))):
            index = int(torch.randint(len(labels), (), generator=gen))
            scale = low * math.exp(uniform() * math.log(high / low))  # log-uniform: each octave alike
            side = min(spec.size, max(1, round(scale * max(height, width))))
            for _ in range(PLACE_TRIES):
                y, x = (int(torch.randint(spec.size - side + 1, (), generator=gen)) for _ in range(2))
                box = [float(x), float(y), float(x + side), float(y + side)]
                if not boxes or box_iou(torch.tensor([box]), torch.tensor(boxes)).max() <= spec.max_overlap:
                    break
            else:
                continue
            canvas[:, y:y + side, x:x + side] = torch.maximum(canvas[:, y:y + side, x:x + side],
                                                              _resized(images[index], side))
            boxes.append(box)
            picked.append(index)
        truth = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), labels[picked].long(),
                      torch.ones(len(picked)))
        canvases.append(Canvas(canvas, truth, tuple(picked)))
    return canvases
