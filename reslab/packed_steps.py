"""What a pack of runs (reslab.train_packed) does at each step: the packed training step, the step whose observers
need each run's own module, the packed evaluation, and how one run of a pack settles what befalls it alone."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from reslab.data.pack import PackBatches, gathers_together
from reslab.errors import Diverged
from reslab.evaluate import EvalResult, evaluate_packed
from reslab.models.packed import PackedMLP
from reslab.models.packed_direct import DirectPackedMLP
from reslab.session import Session
from reslab.state import TrainState
from reslab.status import RunStatus
from reslab.train import RunResult, finish

Pack = PackedMLP | DirectPackedMLP


@dataclass
class Member:
    """One run of the pack: its session and state, and once it left the pack, its result."""

    s: Session
    state: TrainState
    held: contextlib.ExitStack
    rng: torch.Tensor  # the global RNG as its session left it: what its checkpoints hold
    result: RunResult | BaseException | None = None

    @property
    def live(self) -> bool:
        return self.result is None

    def leave(self, result: RunResult | BaseException) -> None:
        self.result = result
        self.held.close()


def live_members(members: Sequence[Member]) -> list[Member]:
    return [m for m in members if m.live]


def settle(m: Member, work: Callable[[], None]) -> None:
    """`work` for one run; a divergence ends that run as diverged, an error fails it alone."""
    try:
        work()
    except Diverged as diverged:
        settle(m, lambda: m.leave(RunResult(m.s.folder.path, finish(m.s, m.state, diverged), m.state.history)))
    except Exception as exc:
        with contextlib.suppress(Exception):
            m.s.write_status(RunStatus.FAILED, m.state.epoch)
        m.leave(exc)


def evaluate_pack(pack: Pack, members: list[Member], which: int) -> list[EvalResult | None]:
    """Each run's evaluation on its loader `which` (1: validation, 2: test), the whole pack's in one pass where the
    loaders gather together; else None (each run is evaluated on its own, by end_epoch or finish)."""
    loaders, data = [m.s.loaders[which] for m in members], members[0].s.data
    if any(loader is None for loader in loaders) or not gathers_together(loaders):  # type: ignore[arg-type]
        return [None] * len(members)
    images, labels = (data.train_x, data.train_y) if which == 1 else (data.test_x, data.test_y)
    return list(evaluate_packed(pack.predict, PackBatches(loaders, images, labels).batches(), len(members),
                                data.num_classes, members[0].s.amp))


def step_packed(pack: Pack, opt: torch.optim.Optimizer, s: Session, x: torch.Tensor, y: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """One training step of every run at once; (N,) batch-mean losses and (N, B, classes) logits, detached.
    (`s`: any run's session; they share the config but the seed.)"""
    optim = s.cfg.optim
    losses, logits = pack.loss_and_grads(x, y, optim.label_smoothing, s.amp)
    if optim.grad_clip is not None:
        pack.clip_grad_norm_(optim.grad_clip)
    opt.step()
    return losses, logits


def step_each(pack: Pack, opt: torch.optim.Optimizer, members: list[Member], x: torch.Tensor,
               y: torch.Tensor, step: int, full_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A step whose observers need each run's own module (gradflow: hooks, gradients), one optimizer step. A direct
    pack steps as always, each module running the forward its hooks see and getting its gradients; else each run
    steps through its own module (as reslab.train.train_epoch takes it)."""
    live = [(i, m) for i, m in enumerate(members) if m.live]
    own = [m.s.model for _, m in live], [i for i, _ in live]
    pack.write_to(*own)
    optim = live[0][1].s.cfg.optim
    if isinstance(pack, DirectPackedMLP):
        with torch.no_grad():
            for i, m in live:
                m.s.step_model(x[i])
        losses, logits = pack.loss_and_grads(x, y, optim.label_smoothing)
        pack.grads_to(*own)
        for i, m in live:
            settle(m, lambda s=m.s: [obs.on_after_backward(step, s.model) for obs in s.observers])
        if optim.grad_clip is not None:
            pack.clip_grad_norm_(optim.grad_clip)
    else:
        losses = torch.zeros(len(members), device=x.device)
        logits = torch.zeros(*y.shape, pack.num_classes, device=x.device)
        for i, m in live:
            s = m.s
            with s.amp:
                out = s.step_model(x[i])
                loss, _, mean_loss = s.ranks.loss(out.float(), y[i], optim.label_smoothing, full_size)
            s.opt.zero_grad(set_to_none=True)
            loss.backward()
            settle(m, lambda s=s: [obs.on_after_backward(step, s.model) for obs in s.observers])
            if optim.grad_clip is not None:
                nn.utils.clip_grad_norm_(s.model.parameters(), optim.grad_clip)
            losses[i], logits[i] = mean_loss, out.detach().float()
        pack.grads_from([m.s.model if m.live else None for m in members])
        pack.buffers_from(*own)  # batch norm's running statistics moved in the runs' own modules
    opt.step()
    pack.write_to(*own)  # what the observers' on_step measure
    return losses, logits
