"""One run's setup: data, model, optimizer, run folder and observers, checked before any training starts.

`start_session` is where everything a user can get wrong fails (a bad checkpoint, a model that cannot take
the data, a missing tracking package), so the training loop in reslab.train only trains.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from reslab import files
from reslab.config import RunConfig, dump_yaml
from reslab.data import DeviceLoader, ImageData, load_dataset
from reslab.distributed import Ranks
from reslab.errors import ConfigError
from reslab.evaluate import check_model_takes, evaluate
from reslab.loaders import make_loaders
from reslab.models import count_params
from reslab.observers import start_all
from reslab.optim import make_optimizer
from reslab.protocols import Observer
from reslab.runs import RunFolder, capture_env, load_checkpoint
from reslab.runtime import autocast_for, build_for, setup_torch
from reslab.state import Running, TrainState, check_resumable, restore
from reslab.status import RunStatus
from reslab.distill import Teacher, teacher_logits
from reslab.transfer import apply_freeze, load_backbone, read_weights


@dataclass
class Session:
    """What one run trains with: built once by `start_session`, passed to the loop's helpers."""

    cfg: RunConfig
    data: ImageData
    model: nn.Module  # the unwrapped module: what checkpoints hold
    step_model: nn.Module  # the module the training step calls (compiled when asked)
    opt: torch.optim.Optimizer
    amp: contextlib.AbstractContextManager
    device: torch.device
    folder: RunFolder
    loaders: tuple[DeviceLoader, DeviceLoader | None, DeviceLoader]  # train, val (None when val_size=0), test
    ranks: Ranks  # this process's part of the run (one process: all of it)
    observers: Sequence[Observer] = ()
    progress: bool = True
    sources: dict[str, Any] = field(default_factory=dict)  # where init_from / teacher weights came from (summary)
    teacher: Teacher | None = None  # train.teacher's logits for every training image (distillation)

    def write_status(self, status: RunStatus, epoch: int, **extra: Any) -> None:
        if self.ranks.is_rank0:
            self.folder.write_status(status, epoch, **extra)

    def release(self) -> None:
        """Drop the wrapped (DDP or compiled) module, so nothing holds the process group once it is left."""
        self.step_model = self.model

    def evaluate(self, loader: DeviceLoader) -> Any:
        self.ranks.sync_buffers(self.model)  # rank 0's batch-norm statistics: the ones its checkpoint holds
        return evaluate(self.model, loader, self.data.num_classes, self.amp, all_sum=self.ranks.all_sum)


def start_session(cfg: RunConfig, ranks: Ranks, observers: Sequence[Observer], resume: str | Path | None,
                  progress: bool, held: contextlib.ExitStack) -> tuple[Session, TrainState]:
    """Data, model, optimizer and run folder; everything a user can get wrong fails here, before training."""
    device, rank0 = ranks.device, ranks.is_rank0
    setup_torch(cfg.train, device)
    ckpt = folder = None
    if resume is not None:
        folder = RunFolder(Path(resume))
        if rank0:
            held.enter_context(folder.locked())
        status = folder.read_status()
        said = RunStatus.parse(status.get("status"))
        if said == RunStatus.DIVERGED:
            raise ConfigError(f"{resume} diverged at step {status.get('step')}; there is nothing to resume "
                              "(start a new run, e.g. with a smaller optim.lr)")
        ckpt = load_checkpoint(folder.last)
        check_resumable(ckpt, cfg, str(resume), finished=said == RunStatus.FINISHED)  # status.json is written last
    # at the start only (a resumed run has its own weights); read before the data, so a bad path fails at once
    init = read_weights(cfg.train.init_from) if ckpt is None and cfg.train.init_from is not None else None
    with ranks.rank0_first():  # a download or cache fill happens once; rank 0 writes nothing before all have read
        data = load_dataset(cfg.data.dataset, cfg.data.data_dir, download=cfg.data.download,
                            image_size=cfg.data.image_size).select_classes(cfg.data.classes)
    model, channels_last = build_for(cfg, data, device)
    sources: dict[str, Any] = {}
    if init is not None:
        load_backbone(model, init, cfg.train.keep_head)
        sources["init_from"] = init.record(cfg.train.init_from)
    apply_freeze(model, cfg.train.freeze)
    teacher = None
    if cfg.train.teacher is not None:  # computed once (or read from the cache), on resume too: they are not saved
        teacher = teacher_logits(cfg.train.teacher, data, device, cfg.data.eval_batch_size)
        sources["teacher"] = teacher.record
    model = ranks.prepare(model, cfg.train.sync_bn)
    loaders = make_loaders(cfg, data, device, channels_last, ranks.shard)
    check_model_takes(model, data, loaders[0], cfg.model.name)
    opt = make_optimizer(model, cfg.optim, device)
    state = restore(ckpt, model, opt, cfg) if ckpt is not None else TrainState()
    if state.running is not None and not rank0:  # the saved sums of the open epoch are all ranks': rank 0 has them
        state.running = Running.zeros(device)
    folder = ranks.from_rank0(lambda: folder or RunFolder.create(cfg.runs_dir, cfg.name))
    if rank0:  # rank 0 alone writes the run folder
        if ckpt is None:
            held.enter_context(folder.locked())
            files.write_json(folder.env, {**capture_env(device), **ranks.env_fields(), **sources})
        else:  # resumed: where the weights came from is in env.json, written when the run started
            sources = {**{k: v for k, v in folder.read_env().items() if k == "init_from"}, **sources}
        files.remove_stale_temps(folder.path)  # what a killed process left half-written
        files.write_text(folder.config, dump_yaml(cfg))  # on resume: the epochs may have grown
        folder.write_status(RunStatus.RUNNING, state.epoch)
    step_model = ranks.wrap(model)
    s = Session(cfg=cfg, data=data, model=model, step_model=torch.compile(step_model) if cfg.train.compile
                else step_model, opt=opt, amp=autocast_for(device, cfg.train.amp), device=device, folder=folder,
                loaders=loaders, ranks=ranks, observers=observers, progress=progress, sources=sources,
                teacher=teacher)
    if progress:
        n_val = loaders[1].num_samples if loaders[1] is not None else 0
        print(f"{cfg.name}: model {cfg.model.name} ({count_params(model):,} parameters) on {data.name} "
              f"({loaders[0].num_samples} train / {n_val} val / {loaders[2].num_samples} test), device {device}"
              + (f" x {ranks.world} processes" if ranks.distributed else "")
              + (f", resuming at epoch {state.epoch + 1}" if ckpt is not None else ""), file=sys.stderr)
    saved = (ckpt or {}).get("observers") or {}
    for obs in observers:
        if type(obs).__name__ in saved:
            obs.load_state_dict(saved[type(obs).__name__])
    try:
        start_all(observers, folder.path, model, cfg, state.step)
    except BaseException:
        s.write_status(RunStatus.FAILED, state.epoch)
        raise
    model.train()
    return s, state
