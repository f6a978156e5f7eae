"""Veit et al. 2016's unravelled view of a residual net: how many paths of each length it has, and how much
gradient each length carries (their Figure 6: the effective paths are the short ones).

A residual net of n blocks is a sum of 2^n paths; a path of length k goes through the branches of k blocks and the
shortcuts of the other n - k, so there are C(n, k) of them: the binomial distribution (n, 1/2) times 2^n.

The gradient of a path length k is measured as Veit et al. did: a full forward pass, then a backward pass that goes
through the branch of k blocks drawn at random and through the shortcut of every other block (`route`: the branch's
or the shortcut's output is detached, which changes no value of the forward pass). The magnitude is the mean over
images of the norm of d loss / d input (the loss summed over the images, so each image's gradient is its own).
The total gradient of length k is C(n, k) times that magnitude; the effective paths are the lengths holding the
middle 90% of the total. Only residual models are unravelled: a plain net has one path, of length n.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import random
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from reslab.models.blocks import Block

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def path_counts(n: int) -> list[int]:
    """The number of paths of length k = 0..n through a residual net of n blocks: C(n, k)."""
    return [math.comb(n, k) for k in range(n + 1)]


class _Routed(nn.Module):
    """A block whose backward pass goes through its branch only (`branch=True`) or its shortcut only."""

    def __init__(self, block: Block, branch: bool) -> None:
        super().__init__()
        self.block, self.branch = block, branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        body, skip = self.block.branch(x), self.block.shortcut(x)
        return self.block.combine(body, skip.detach()) if self.branch else self.block.combine(body.detach(), skip)


def block_slots(model: nn.Module) -> list[tuple[nn.Module, str, Block]]:
    """(parent, attribute, block) of every block, in forward order (the models register them in that order)."""
    slots = []
    for name, module in model.named_modules():
        if isinstance(module, Block):
            parent, _, attr = name.rpartition(".")
            slots.append((model.get_submodule(parent), attr, module))
    return slots


@contextlib.contextmanager
def route(model: nn.Module, through: Sequence[int]) -> Iterator[nn.Module]:
    """The model whose gradient flows through the branches of blocks `through` (1-based) and the shortcuts of the
    others; every block is back in its place on exit."""
    slots = block_slots(model)
    try:
        for i, (parent, attr, block) in enumerate(slots, 1):
            setattr(parent, attr, _Routed(block, i in through))
        yield model
    finally:
        for parent, attr, block in slots:
            setattr(parent, attr, block)


def path_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, through: Sequence[int],
                  loss_fn: LossFn | None = None) -> float:
    """Mean over the images of |d loss / d input| along the paths through exactly the branches `through`."""
    loss_fn = loss_fn or (lambda out, target: F.cross_entropy(out, target, reduction="sum"))
    x = x.detach().clone().requires_grad_(True)
    with route(model, through):
        (grad,) = torch.autograd.grad(loss_fn(model(x), y), x)
    return float(grad.flatten(1).norm(dim=1).mean())


def is_residual(model: nn.Module) -> bool:
    slots = block_slots(model)
    return bool(slots) and all(block.residual for _, _, block in slots)


def gradient_by_length(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, draws: int, seed: int,
                       loss_fn: LossFn | None = None) -> list[list[float]]:
    """For k = 0..n: the path gradients of `draws` seeded random sets of k blocks (all sets when there are fewer)."""
    n = len(block_slots(model))
    out = []
    for k in range(n + 1):
        if math.comb(n, k) <= draws:
            sets = list(itertools.combinations(range(1, n + 1), k))
        else:
            rng = random.Random(f"{seed}/paths/{n}/{k}")
            sets = [tuple(sorted(rng.sample(range(1, n + 1), k))) for _ in range(draws)]
        out.append([path_gradient(model, x, y, s, loss_fn) for s in sets])
    return out


def effective_range(counts: Sequence[int], magnitudes: Sequence[float], share: float = 0.9) -> tuple[int, int]:
    """(first, last) path length of the middle `share` of the total gradient count x magnitude."""
    total = [c * m for c, m in zip(counts, magnitudes)]
    whole = sum(total)
    if not whole > 0:
        return 0, len(total) - 1
    tail = (1 - share) / 2 * whole
    cumulative = [sum(total[: k + 1]) for k in range(len(total))]
    first = next(k for k, c in enumerate(cumulative) if c > tail)
    last = next(k for k, c in enumerate(cumulative) if c >= whole - tail)
    return first, last


def kendall_tau(n: int, swapped: Sequence[tuple[int, int]]) -> float:
    """Kendall's tau between the blocks' order 1..n and their order after the swaps (1: unchanged)."""
    order = list(range(1, n + 1))
    for a, b in swapped:
        order[a - 1], order[b - 1] = order[b - 1], order[a - 1]
    if n < 2:
        return 1.0
    discordant = sum(order[i] > order[j] for i in range(n) for j in range(i + 1, n))
    return 1 - 4 * discordant / (n * (n - 1))
