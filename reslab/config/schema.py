"""Typed, frozen run configuration: the sections and their checks (plain values in and out: `convert`).

A run is fully described by one `RunConfig`; the resolved form (every default filled in) is saved with
each run so it can be repeated or resumed. Unknown keys and wrong types are `ConfigError`s that say
what is valid, never silently ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

from reslab.checks import require

OptimizerName = Literal["adam", "adamw", "sgd"]
ScheduleName = Literal["constant", "step", "cosine", "onecycle"]
WarmupMode = Literal["linear", "constant"]
MAX_THREADS = 1024  # more crashed torch here (train.threads=100000 segfaulted)


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "mnist"  # mnist | fashion-mnist | cifar10 | cifar100 | imagefolder:PATH
    data_dir: str | None = None  # else $RESLAB_DATA, else ./data
    val_size: int = 5000  # held out of the training set, seeded by train.seed
    train_size: int | None = None  # train on a subset of this many images (drawn with train.seed after the split)
    test_size: int | None = None  # test on a fixed subset of this many test images (the same for every seed and run)
    batch_size: int = 128
    eval_batch_size: int = 1024
    augment: bool = False  # random crop (zero padding) and horizontal flip, in batch on the device
    crop_padding: int = 4
    hflip: bool = True
    image_size: int | None = None  # resize image-folder images to this square size
    download: bool = True  # let torchvision download a missing dataset (when online)
    # --- transfer (issue 20 §3) ---
    classes: tuple[int, ...] | None = None  # keep only these classes (train and test), relabelled 0..k-1 in this order
    # --- end transfer ---

    def __post_init__(self) -> None:
        require(self.classes is None or (len(self.classes) >= 1 and min(self.classes) >= 0
                                         and len(set(self.classes)) == len(self.classes)),
                f"data.classes must be distinct class indices >= 0, got {self.classes}")
        require(self.val_size >= 0, f"data.val_size must be >= 0, got {self.val_size}")
        require(self.train_size is None or self.train_size >= 1,
                f"data.train_size must be >= 1, got {self.train_size}")
        require(self.test_size is None or self.test_size >= 1, f"data.test_size must be >= 1, got {self.test_size}")
        require(self.batch_size >= 1, f"data.batch_size must be >= 1, got {self.batch_size}")
        require(self.eval_batch_size >= 1, f"data.eval_batch_size must be >= 1, got {self.eval_batch_size}")
        require(self.crop_padding >= 0, f"data.crop_padding must be >= 0, got {self.crop_padding}")
        require(self.image_size is None or self.image_size >= 1, f"data.image_size must be >= 1, got {self.image_size}")
        require(bool(self.dataset.strip()), "data.dataset must not be empty")


@dataclass(frozen=True)
class ModelConfig:
    """A registered model and its keyword arguments (checked against the builder's signature)."""

    name: str = "seed-mlp"
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OptimConfig:
    name: OptimizerName = "adam"
    lr: float = 1e-3
    momentum: float = 0.9  # sgd only
    nesterov: bool = False  # sgd only
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)  # adam / adamw
    schedule: ScheduleName = "constant"
    # step schedule: divide the LR by 1/gamma at these points; a value < 1 is a fraction of training
    # (He et al.: 0.5 and 0.75), a value >= 1 an epoch number.
    milestones: tuple[float, ...] = ()
    gamma: float = 0.1
    warmup_epochs: float = 0.0  # warm-up before any schedule (fractions of an epoch allowed)
    # linear: from lr / warm-up steps up to lr; constant: lr * warmup_factor throughout (He et al.'s ResNet-110)
    warmup_mode: WarmupMode = "linear"
    warmup_factor: float = 0.1  # constant warm-up only
    grad_clip: float | None = None  # max global L2 norm of the gradient
    label_smoothing: float = 0.0
    # --- transfer (issue 20 §3) ---
    head_lr: float | None = None  # the head's LR (None: optim.lr); it follows the same schedule and warm-up
    # --- end transfer ---

    def __post_init__(self) -> None:
        require(self.head_lr is None or self.head_lr > 0, f"optim.head_lr must be > 0, got {self.head_lr}")
        require(self.lr > 0, f"optim.lr must be > 0, got {self.lr}")
        require(0 <= self.momentum < 1, f"optim.momentum must be in [0, 1), got {self.momentum}")
        require(self.weight_decay >= 0, f"optim.weight_decay must be >= 0, got {self.weight_decay}")
        require(all(0 <= b < 1 for b in self.betas), f"optim.betas must be in [0, 1), got {list(self.betas)}")
        require(all(m > 0 for m in self.milestones), f"optim.milestones must be > 0, got {list(self.milestones)}")
        require(0 < self.gamma <= 1, f"optim.gamma must be in (0, 1], got {self.gamma}")
        require(0 <= self.warmup_epochs <= 1e6, f"optim.warmup_epochs must be in [0, 1e6], got {self.warmup_epochs}")
        require(0 < self.warmup_factor <= 1, f"optim.warmup_factor must be in (0, 1], got {self.warmup_factor}")
        require(self.grad_clip is None or self.grad_clip > 0, f"optim.grad_clip must be > 0, got {self.grad_clip}")
        require(0 <= self.label_smoothing < 1, f"optim.label_smoothing must be in [0, 1), got {self.label_smoothing}")
        require(not self.nesterov or (self.name == "sgd" and self.momentum > 0),
               "optim.nesterov needs optim.name=sgd and optim.momentum > 0")


@dataclass(frozen=True)
class DistillConfig:
    """Hinton et al. 2015: loss = alpha * T^2 * KL(softmax(teacher/T) || softmax(student/T)) + (1 - alpha) * CE."""

    temperature: float = 4.0
    alpha: float = 0.9

    def __post_init__(self) -> None:
        require(self.temperature > 0, f"train.distill.temperature must be > 0, got {self.temperature}")
        require(0 <= self.alpha <= 1, f"train.distill.alpha must be in [0, 1], got {self.alpha}")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10  # with until: plateau, the cap
    # epochs: train exactly `epochs`; plateau: stop early once the per-epoch training loss has not fallen below its
    # best by more than min_delta (absolute) for `patience` epochs in a row (the LR schedule still spans `epochs`)
    until: Literal["epochs", "plateau"] = "epochs"
    patience: int = 3
    min_delta: float = 0.0
    seed: int = 0  # init, split, shuffling and augmentation
    device: str = "auto"  # auto (cuda, then mps, then cpu) | cpu | cuda | cuda:N | mps
    deterministic: bool = False  # bit-for-bit repeatable on the CPU
    amp: Literal["auto", "bf16", "off"] = "auto"  # auto: bf16 autocast on CUDA, off elsewhere
    channels_last: Literal["auto", "on", "off"] = "auto"  # auto: on for conv nets on CUDA and CPU (faster on both)
    compile: bool = False  # torch.compile the model
    threads: int | None = None  # CPU threads for torch (None: torch's default)
    log_every: int = 50  # steps between per-step records: progress bar, steps.csv, sinks (each is one host sync)
    checkpoint_every: int = 1  # epochs between last.pt writes (best.pt is written on every improvement)
    # draw the run's own figures (curves.png, gradflow.png) when it ends; runs of `reslab sweep` and `reslab lab`
    # default to false (their reports draw from metrics.csv / gradflow.csv what they show)
    figures: bool = True
    # under torchrun: batch norm over the global batch (SyncBatchNorm, GPUs only), so the run matches one process
    # with the same batch; auto: on with CUDA, off (each rank's own batch statistics) on the CPU
    sync_bn: Literal["auto", "on", "off"] = "auto"
    # --- transfer and distillation (issue 20 §3, §4; reslab/transfer.py, reslab/distill.py) ---
    # a run folder (its best.pt, else last.pt) or a weights file (.pt: a checkpoint or a state_dict) whose weights,
    # all but the head's, start this run; applied when the run starts, never on resume
    init_from: str | None = None
    keep_head: bool = False  # also take the head's weights (same class count only); default: a new head
    freeze: int | str = "none"  # none | all-but-head | K: the stem (stage 0) and stages 1..K stay fixed
    teacher: str | None = None  # a run folder or weights file whose logits this run learns from (distillation)
    distill: DistillConfig = field(default_factory=lambda: DistillConfig())
    # --- end transfer and distillation ---

    def __post_init__(self) -> None:
        require(self.freeze in ("none", "all-but-head") or (isinstance(self.freeze, int) and self.freeze >= 0),
                f"train.freeze must be none, all-but-head or a stage number K >= 0, got {self.freeze!r}")
        require(not self.keep_head or self.init_from is not None, "train.keep_head needs train.init_from")
        require(self.epochs >= 1, f"train.epochs must be >= 1, got {self.epochs}")
        require(0 <= self.seed < 2**63, f"train.seed must be in 0..2**63-1, got {self.seed}")
        require(self.threads is None or 1 <= self.threads <= MAX_THREADS,
                f"train.threads must be in 1..{MAX_THREADS}, got {self.threads}")
        require(self.log_every >= 1, f"train.log_every must be >= 1, got {self.log_every}")
        require(self.checkpoint_every >= 1, f"train.checkpoint_every must be >= 1, got {self.checkpoint_every}")
        require(self.patience >= 1, f"train.patience must be >= 1, got {self.patience}")
        require(0 <= self.min_delta < float("inf"),
                f"train.min_delta must be a finite number >= 0, got {self.min_delta}")
        require(re.fullmatch(r"auto|cpu|mps|cuda(:\d{1,3})?", self.device) is not None,
                f"train.device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}")


@dataclass(frozen=True)
class TrackConfig:
    """Where metrics go besides the run folder's CSV files (always written, the ground truth)."""

    sinks: tuple[Literal["tensorboard", "wandb"], ...] = ()
    project: str = "reslab"  # wandb project
    entity: str | None = None  # wandb entity (user or team)
    group: str | None = None  # wandb group, e.g. a sweep's name
    tags: tuple[str, ...] = ()
    run_name: str | None = None  # default: the run folder's name
    wandb_mode: Literal["auto", "online", "offline"] = "auto"  # auto: online with an API key and network


@dataclass(frozen=True)
class GradflowConfig:
    """Gradient-flow statistics recorded during training into the run's gradflow.csv (reslab.gradflow).

    On by default: a record every 100 steps cost well under the 5% budget (bench/gradflow_overhead.py).
    """

    every: int = 100  # steps between records (steps 1, 1 + every, ...); 0 = off
    output_std: bool = True  # also each layer's output std (forward hooks on recorded steps; off under compile)

    def __post_init__(self) -> None:
        require(self.every >= 0, f"gradflow.every must be >= 0, got {self.every}")


@dataclass(frozen=True)
class RunConfig:
    name: str = "run"  # run folders are <runs_dir>/<name>-<id>
    runs_dir: str = "runs"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    track: TrackConfig = field(default_factory=TrackConfig)
    gradflow: GradflowConfig = field(default_factory=GradflowConfig)

    def __post_init__(self) -> None:
        require(bool(self.name) and self.name not in (".", "..") and not any(c in self.name for c in "/\\\n\r\x00"),
                f"name must be a non-empty folder name (no slashes or line breaks), got {self.name!r}")
