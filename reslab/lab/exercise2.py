"""The sweeps of Exercise 2's other options (issue 20): an MNIST conv classifier for the fully-convolutional
detector, a transfer between the two halves of CIFAR-10's classes, and distillation of the notebook's MLP into a
small student. Their analyses are the instruments' lab stages (fcn, probe); their report sections are in
`reslab.lab.exercise2_report` (the detector's: `reslab.lab.fcn_report`; distillation's: `reslab.lab.distill_report`).

Transfer is measured offline between CIFAR-10 classes 0-4 (source) and 5-9 (target), the stand-in the issue names
for the handout's CIFAR-100 (not shipped offline): the target classes are new to the source model, as CIFAR-100's.
"""

from __future__ import annotations

from typing import Any

from reslab.analyze.instruments_detect import FCN_STUDY
from reslab.lab.study import LAB_RUN, Study

SOURCE, TARGET = [0, 1, 2, 3, 4], [5, 6, 7, 8, 9]  # CIFAR-10's classes: the source task, the transfer task
SOURCE_STUDY, TRANSFER_STUDY, SCRATCH_STUDY, DISTILL_STUDY = "ex2-source", "ex2-transfer", "ex2-scratch", "ex2-distill"
TEACHER_STUDY = "ex1-mlp"  # the notebook's MLP (Exercise 1.1) is the teacher
ALPHA = "train.distill.alpha"  # alpha 0 with no teacher is the student alone: the pair differs only in the teacher

_ONE_THREAD = {"train.threads": 1}
# the conv net of the lab's conv depth study (one block per stage, residual): the source and target models
_CONV = {"model.name": "convnet", "model.channels": 16, "model.stages": 3, "model.kernel_size": 3, "model.blocks": 1,
         "model.layers_per_block": 2, "model.norm": "batch", "model.residual": True, "data.batch_size": 128,
         "optim.name": "adam", "optim.lr": 1e-3}
# the student: a small MLP (2 hidden layers of 16) on a subset of MNIST, where a teacher's soft targets help most
_STUDENT = {"model.width": 16, "model.depth": 2, "model.residual": False, "model.norm": "none",
            "data.batch_size": 128, "optim.name": "adam", "optim.lr": 1e-3, "train.teacher": LAB_RUN + TEACHER_STUDY,
            "train.distill.temperature": 4.0}
_ALONE = ({"when": {ALPHA: 0.0}, "set": {"train.teacher": None}},)


def _studies(*, mnist_conv: dict[str, Any], cifar: dict[str, Any], student: dict[str, Any], epochs_conv: int,
             epochs_transfer: int, epochs_student: int, seeds: int) -> tuple[Study, ...]:
    transfer = _CONV | cifar | _ONE_THREAD | {"data.classes": TARGET}
    return (
        Study(FCN_STUDY, "mnist-convnet", "mnist", mnist_conv | _ONE_THREAD | {"train.epochs": epochs_conv},
              {"model.residual": [False, True]}, seeds=seeds,
              title="Exercise 2.2 (2023/24): the MNIST conv twins the digit detector is made of"),
        Study(SOURCE_STUDY, "seed-cnn", "cifar", _CONV | cifar | _ONE_THREAD | {"data.classes": SOURCE},
              {"train.epochs": [epochs_conv]}, seeds=1,
              title="Exercise 2.1 (2025): the source model, CIFAR-10 classes 0-4"),
        Study(TRANSFER_STUDY, "seed-cnn", "cifar", transfer | {"train.init_from": LAB_RUN + SOURCE_STUDY},
              {"train.freeze": ["none", "all-but-head"], "train.epochs": [epochs_transfer]}, seeds=seeds,
              title="Exercise 2.1 (2025): fine-tuning the source model on classes 5-9"),
        Study(SCRATCH_STUDY, "seed-cnn", "cifar", transfer, {"train.epochs": [epochs_transfer]}, seeds=seeds,
              title="Exercise 2.1 (2025): the same model trained from scratch on classes 5-9"),
        Study(DISTILL_STUDY, "plain-mlp8", "mnist", _STUDENT | _ONE_THREAD | student | {"train.epochs": epochs_student},
              {ALPHA: [0.0, 0.9]}, seeds=seeds, cases=_ALONE,
              title="Exercise 2.2 (2025): a small MLP alone and distilled from the notebook's MLP"),
    )


QUICK_EXERCISE2 = _studies(
    mnist_conv={"data.train_size": 10000, "data.val_size": 1000, "model.channels": 16},
    cifar={"data.val_size": 1000, "data.train_size": 3000, "data.test_size": 2000},
    student={"data.train_size": 2000, "data.val_size": 1000},
    epochs_conv=2, epochs_transfer=2, epochs_student=5, seeds=2)
FULL_EXERCISE2 = _studies(
    mnist_conv={"data.val_size": 5000}, cifar={"data.val_size": 5000},
    student={"data.train_size": 5000, "data.val_size": 5000},
    epochs_conv=10, epochs_transfer=10, epochs_student=20, seeds=3)
# the quick profile's stages in reference units (reslab.lab.pace): estimates until a lab has measured them
QUICK_EXERCISE2_WORK = {FCN_STUDY: 120, SOURCE_STUDY: 40, TRANSFER_STUDY: 120, SCRATCH_STUDY: 60, DISTILL_STUDY: 40}
QUICK_EXERCISE2_SHORTCUT = (
    "Exercise 2 (the other options): the MNIST conv twins train on 10,000 images for 2 epochs; the transfer is "
    "measured between CIFAR-10's classes 0-4 and 5-9 (3,000 training images each, 2 epochs; the handout: CIFAR-100); "
    "the distilled student trains on 2,000 MNIST images for 5 epochs; 2 seeds each (the source model: 1).")
