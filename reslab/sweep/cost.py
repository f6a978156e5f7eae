"""What a sweep will cost before it runs (`reslab sweep --dry-run`): FLOPs counted, throughput measured here.

Per distinct model, `torch.utils.flop_counter.FlopCounterMode` counts one forward+backward (training) and one
forward (evaluation) of a small batch; a run costs epochs x (training images x forward+backward + validation
images x forward) + test images x forward. The device's rate is measured on 5 optimizer steps (after 3 warm-up steps) of
the sweep's base model at its batch size, and the total is FLOPs / rate. Nothing is written.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from reslab.config import RunConfig, to_dict
from reslab.data import ImageData, load_dataset
from reslab.optim import make_optimizer
from reslab.runtime import autocast_for, build_for, select_device, setup_torch, sync

# torchvision datasets by name: (C, H, W), classes, training images, test images (no need to have the files)
KNOWN_SHAPES = {"mnist": ((1, 28, 28), 10, 60000, 10000), "fashion-mnist": ((1, 28, 28), 10, 60000, 10000),
                "cifar10": ((3, 32, 32), 10, 50000, 10000), "cifar100": ((3, 32, 32), 100, 50000, 10000)}
COUNT_BATCH = 8  # images per FLOP count (the models' FLOPs are linear in the batch)
TIMED_STEPS = 5
WARMUP_STEPS = 3  # the first steps are slow (here, each of the first three took ~0.9 s on a 1 ms MLP step)


@dataclass(frozen=True)
class Cost:
    flops: list[float]  # per run
    seconds: list[float]  # per run, at the measured rate
    rate: float  # FLOP/s measured on this device
    base_flops_per_sample: float  # forward+backward of the base model
    device: str

    @property
    def device_hours(self) -> float:
        return sum(self.seconds) / 3600


def _shapes(cfg: RunConfig) -> tuple[ImageData, int, int]:
    """An ImageData with the dataset's shape and classes (images only where they must be read), train and test size."""
    name = cfg.data.dataset.strip().lower().replace("_", "-")
    if name in KNOWN_SHAPES and cfg.data.image_size is None:
        (c, h, w), k, n_train, n_test = KNOWN_SHAPES[name]
        empty = torch.zeros(0, c, h, w, dtype=torch.uint8)
        data = ImageData(name, empty, torch.zeros(0, dtype=torch.long), empty, torch.zeros(0, dtype=torch.long),
                         tuple(str(i) for i in range(k)), (0.5,) * c, (0.5,) * c)
        return data, n_train, n_test
    data = load_dataset(cfg.data.dataset, cfg.data.data_dir, download=False, image_size=cfg.data.image_size
                        ).select_classes(cfg.data.classes)
    return data, len(data.train_y), len(data.test_y)


def _flops_per_sample(cfg: RunConfig, data: ImageData, backward: bool) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    model, _ = build_for(cfg, data, torch.device("cpu"))
    x = torch.randn(COUNT_BATCH, *data.input_shape)
    y = torch.zeros(COUNT_BATCH, dtype=torch.long)
    with FlopCounterMode(display=False) as counter:
        if backward:
            F.cross_entropy(model(x), y).backward()
        else:
            with torch.no_grad():
                model(x)
    return counter.get_total_flops() / COUNT_BATCH


def _measured_rate(cfg: RunConfig, data: ImageData, flops_per_sample: float) -> float:
    """FLOP/s of 5 timed optimizer steps of `cfg`'s model at its batch size on its device (after 3 warm-up steps)."""
    device = select_device(cfg.train.device)
    setup_torch(cfg.train, device)
    model, channels_last = build_for(cfg, data, device)
    opt = make_optimizer(model, cfg.optim, device)
    amp = autocast_for(device, cfg.train.amp)
    x = torch.randn(cfg.data.batch_size, *data.input_shape, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, data.num_classes, (cfg.data.batch_size,), device=device)
    for i in range(WARMUP_STEPS + TIMED_STEPS):
        if i == WARMUP_STEPS:
            sync(device)
            start = time.perf_counter()
        with amp:
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)
    seconds = (time.perf_counter() - start) / TIMED_STEPS
    return flops_per_sample * cfg.data.batch_size / max(seconds, 1e-9)


def estimate(base: RunConfig, runs: Sequence[RunConfig]) -> Cost:
    """The FLOPs and the time of every run on this device (`base`: the sweep's base model, for the rate)."""
    data_of: dict[str, tuple[ImageData, int, int]] = {}
    per_model: dict[str, tuple[float, float]] = {}

    def run_flops(cfg: RunConfig) -> tuple[float, float, ImageData]:
        """(the run's FLOPs, its model's forward+backward FLOPs per image, its dataset's shape)"""
        data_key = json.dumps([cfg.data.dataset, cfg.data.data_dir, cfg.data.image_size])
        if data_key not in data_of:
            data_of[data_key] = _shapes(cfg)
        data, n_train, n_test = data_of[data_key]
        model_key = json.dumps([to_dict(cfg)["model"], data_key], default=str)
        if model_key not in per_model:
            per_model[model_key] = (_flops_per_sample(cfg, data, True), _flops_per_sample(cfg, data, False))
        train_flops, eval_flops = per_model[model_key]
        n_val = cfg.data.val_size
        n_fit = min(cfg.data.train_size or n_train, n_train - n_val)
        n_tested = min(cfg.data.test_size or n_test, n_test)
        total = cfg.train.epochs * (n_fit * train_flops + n_val * eval_flops) + n_tested * eval_flops
        return total, train_flops, data

    _, base_flops, base_data = run_flops(base)
    flops = [run_flops(cfg)[0] for cfg in runs]
    rate = _measured_rate(base, base_data, base_flops)
    return Cost(flops=flops, seconds=[f / rate for f in flops], rate=rate, base_flops_per_sample=base_flops,
                device=str(select_device(base.train.device)))
