"""The names of the lab's Exercise 2 studies whose runs the instruments' lab stages read (`LabSource.runs_of`).

Spelled here, below both: `reslab.lab.exercise2` defines the studies under these names, and the instruments'
registrations name the runs they explain without importing the lab.
"""

from __future__ import annotations

from typing import Any, Callable

MNIST_CONV = "ex2-mnist-conv"  # MNIST conv twins: the fully-convolutional detector, CAM on canvases
SOURCE = "ex2-source"  # transfer: the source model (CIFAR-10 classes 0-4)
TRANSFER = "ex2-transfer"  # transfer: the source model fine-tuned on classes 5-9
SCRATCH = "ex2-scratch"  # transfer: the same net from scratch on classes 5-9
DISTILL = "ex2-distill"  # distillation: a small student alone and taught


def has_study(*names: str) -> Callable[[Any], bool]:
    """A LabStage's `when`: the profile has every one of these studies (among its Exercise 2 studies)."""

    def when(profile: Any) -> bool:
        have = {s.name for s in getattr(profile, "exercise2", ())}
        return all(name in have for name in names)

    return when
