"""The lab's honest clock: how long the stages left take on this machine, from this machine's own pace.

Seconds measured on another machine say little here (the quick lab's old estimate was off 25x on a busy CPU), so
a profile gives each stage its predicted work in reference units: how many runs of the fixed reference workload
(`reference_workload`: a small MLP and a small conv net, forward + backward + Adam step, on one thread) the stage
costs. That ratio is what bench/lab_pace.py measures, and it holds across machines far better than seconds do.
The pace (seconds per unit) is this machine's: before any stage has run in this invocation, the reference timed
at lab start; after each stage, the measured seconds of the stages run so far over their units. The time left is
pace x the units of the stages left; without units for them there is no estimate.
"""

from __future__ import annotations

import statistics
import time
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

REFERENCE_STEPS = 40  # of each net: ~0.2 s in all on the idle 2-core development CPU, 0.5-1 s when it is busy


def _nets(gen: torch.Generator) -> list[tuple[nn.Module, torch.Tensor, torch.Tensor]]:
    """The reference's two nets with their one fixed batch each."""
    hidden = [m for _ in range(15) for m in (nn.ReLU(), nn.Linear(64, 64))]
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), *hidden, nn.ReLU(), nn.Linear(64, 10))
    conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
    return [(mlp, torch.randn(128, 1, 28, 28, generator=gen), torch.randint(0, 10, (128,), generator=gen)),
            (conv, torch.randn(16, 3, 32, 32, generator=gen), torch.randint(0, 10, (16,), generator=gen))]


def reference_workload(steps: int = REFERENCE_STEPS) -> float:
    """Seconds of one fixed workload on one thread: `steps` training steps (forward, backward, Adam) of a 16-layer
    width-64 MLP on a batch of 128 (dispatch-bound, like the MLP depth study) and of a 2-layer conv net on a batch of
    16 CIFAR-sized images (FLOP-bound, like the CIFAR stages). Fixed seed and inputs; this process's threads and
    RNG state are left as they were."""
    threads, rng = torch.get_num_threads(), torch.get_rng_state()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)  # the same weights every time
        work = _nets(torch.Generator().manual_seed(0))
        start = time.perf_counter()
        for model, x, y in work:
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            for _ in range(steps):
                loss = F.cross_entropy(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
        torch.set_rng_state(rng)


def reference_seconds(repeats: int = 3) -> float:
    """The median of `repeats` timings of the reference workload (after one untimed warm-up)."""
    reference_workload(steps=2)
    return statistics.median(reference_workload() for _ in range(repeats))


def pace(done: Sequence[tuple[float, float]], reference_s: float | None) -> float | None:
    """Seconds per work unit: the stages run so far, as (seconds, units), else the reference; None without both."""
    units = sum(u for _, u in done)
    if done and units > 0:
        return sum(s for s, _ in done) / units
    return reference_s


def remaining_seconds(left: Sequence[str], work: Mapping[str, float], done: Sequence[tuple[float, float]],
                      reference_s: float | None) -> float | None:
    """Seconds the stages `left` should take at this machine's pace; None when a stage has no units or there is
    no pace yet."""
    if any(name not in work for name in left):
        return None
    seconds_per_unit = pace(done, reference_s)
    return None if seconds_per_unit is None else seconds_per_unit * sum(work[name] for name in left)
