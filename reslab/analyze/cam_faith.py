"""Faithfulness of a saliency map: the deletion and insertion curves of Petsiuk, Das and Saenko 2018 (RISE).

Deletion: pixels are replaced by a baseline in order of saliency (most salient first), in `steps` equal steps, and
the probability of the explained class is recorded after each; a faithful map makes it fall fast (low AUC).
Insertion: the image is rebuilt from the baseline in the same order; a faithful map makes it rise fast (high AUC).
The AUC is the trapezoid rule over the fraction of pixels moved, in [0, 1]. A seeded random order is the
reference a map must beat. Baselines: `mean` is the dataset's mean colour (0 in normalised units; the paper's
deletion used a constant), `blur` a Gaussian blur of the image (the paper's insertion), `paper` both as the paper.
Everything here works on images of any size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

BASELINES = ("paper", "mean", "blur")
BLUR_FRACTION = 1 / 8  # the blur's sigma, as a fraction of the image's shorter side


def blurred(x: torch.Tensor) -> torch.Tensor:
    """A Gaussian blur of each image (B, C, H, W), sigma = BLUR_FRACTION of the shorter side, reflected borders."""
    h, w = x.shape[-2:]
    sigma = max(min(h, w) * BLUR_FRACTION, 0.5)
    half = min(math.ceil(2 * sigma), h - 1, w - 1)
    if half < 1:
        return x.clone()
    t = torch.arange(-half, half + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-t ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    out = F.pad(x, (half, half, half, half), mode="reflect")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def baselines(x: torch.Tensor, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(what deletion moves towards, what insertion starts from) for normalised images `x`."""
    mean = torch.zeros_like(x)  # the dataset's mean colour in normalised units
    if kind == "mean":
        return mean, mean
    blur = blurred(x)
    return (mean, blur) if kind == "paper" else (blur, blur)


def order(saliency: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(B, H, W) saliency -> (B, H*W) pixel indices, most salient first; ties (Grad-CAM's zeros) in random order."""
    flat = saliency.flatten(1).float().cpu()
    shuffle = torch.stack([torch.randperm(flat.shape[1], generator=generator) for _ in range(len(flat))])
    ranked = torch.argsort(flat.gather(1, shuffle), dim=1, descending=True, stable=True)
    return shuffle.gather(1, ranked).to(saliency.device)


def random_order(shape: tuple[int, int, int], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """(B, H*W): a seeded random order per image, the reference every map must beat."""
    b, h, w = shape
    return torch.stack([torch.randperm(h * w, generator=generator) for _ in range(b)]).to(device)


def curve(model: nn.Module, start: torch.Tensor, end: torch.Tensor, pixels: torch.Tensor, classes: torch.Tensor,
          steps: int) -> torch.Tensor:
    """(B, steps + 1): the probability of `classes` as pixels move from `start` to `end` in the order `pixels`
    (B, H*W), a 1/steps share of them per step (step 0: `start` itself, the last: `end`)."""
    b, _, h, w = start.shape
    rank = torch.empty_like(pixels)
    rank.scatter_(1, pixels, torch.arange(h * w, device=pixels.device).expand(b, -1))
    rank = rank.view(b, 1, h, w)
    probs = []
    with torch.no_grad():
        for k in range(steps + 1):
            moved = rank < round(k * h * w / steps)
            logits = model(torch.where(moved, end, start))
            probs.append(torch.softmax(logits.float(), dim=1).gather(1, classes[:, None])[:, 0])
    return torch.stack(probs, dim=1)


def deletion_insertion(model: nn.Module, x: torch.Tensor, classes: torch.Tensor, pixels: torch.Tensor, steps: int,
                       baseline: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(deletion curve, insertion curve), each (B, steps + 1), of the order `pixels` for the images `x`."""
    removed, empty = baselines(x, baseline)
    return curve(model, x, removed, pixels, classes, steps), curve(model, empty, x, pixels, classes, steps)


def auc(curves: torch.Tensor) -> torch.Tensor:
    """(B, steps + 1) -> (B,): the area under each curve over the fraction of pixels moved (trapezoid rule)."""
    steps = curves.shape[1] - 1
    return (curves[:, :-1] + curves[:, 1:]).sum(dim=1) / (2 * steps)
