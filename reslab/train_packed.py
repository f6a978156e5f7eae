"""Several runs of one architecture trained as one packed model: `train_pack(cfgs) -> [RunResult | exception]`.

Runs that differ only in seed, init or the skip (a depth study's seeds and twins) take one forward, backward and
optimizer step together over stacked weights (reslab.models.packed): Adam, AdamW and SGD are elementwise and the runs
share every hyperparameter, so one optimizer over the stack is each run's own; gradients are clipped by each run's
own norm. Each run keeps its session (split, seeded order, observers, folder, lock), TrainState, metrics and
checkpoints: at each epoch's end (and on a stop) the packed weights and optimizer state are copied into the runs'
own modules and optimizers and reslab.train's one-run code (`end_epoch`, `save_last`, `finish`) writes each folder
(a separate run's files, to float tolerance; resumable alone or packed). At a step where an observer
`needs_module`, each run's own module sees the forward and gets the gradients (reslab.packed_steps). Validation and
test sets are evaluated for the whole pack at once. A run that diverges, fails or reaches its plateau leaves the
pack; the others go on.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from reslab.config import RunConfig, changed_keys
from reslab.data.pack import PackBatches, gathers_together
from reslab.distributed import join
from reslab.errors import ConfigError
from reslab.evaluate import EvalResult
from reslab.models.packed import pack_models, packable
from reslab.observers import default_observers
from reslab.optim import lr_at, make_optimizer, set_lr
from reslab.protocols import Observer
from reslab.runtime import select_device, stop_on_signal, sync
from reslab.session import start_session
from reslab.state import Running, plateau_stop
from reslab.status import RunStatus
from reslab.packed_steps import Member, Pack, evaluate_pack, live_members, settle, step_each, step_packed
from reslab.train import Interrupted, RunResult, end_epoch, finish, save_last

# what runs of a pack may differ in; the rest of their configs must be equal
PACK_FREE = ("name", "train.seed", "model.init", "model.residual")


def pack_problem(cfgs: Sequence[RunConfig]) -> str | None:
    """Why these runs cannot train as one pack, or None when they can."""
    first = cfgs[0]
    if not packable(first.model.name, first.model.args):
        return f"model {first.model.name} with norm {first.model.args.get('norm')} does not pack"
    if first.train.compile:
        return "train.compile does not pack"
    if first.train.init_from or first.train.teacher or first.train.freeze != "none" or first.optim.head_lr:
        return "train.init_from, train.teacher, train.freeze and optim.head_lr do not pack (yet)"
    for cfg in cfgs[1:]:
        changed = changed_keys(first, cfg, PACK_FREE)
        if changed:
            return f"runs differ in {', '.join(changed)}"
    return None


@dataclass
class _Sums:
    """The open epoch's training sums of every run, stacked on the device."""

    loss_sum: torch.Tensor  # (N,) float64
    correct: torch.Tensor  # (N,) int64
    seen: int

    @classmethod
    def of(cls, members: Sequence[Member], device: torch.device) -> _Sums:
        open_ = [m.state.running or Running.zeros(device) for m in members]
        return cls(torch.stack([r.loss_sum.to(device) for r in open_]),
                   torch.stack([r.correct.to(device) for r in open_]), max(r.seen for r in open_))

    def running(self, i: int) -> Running:
        return Running(self.loss_sum[i].clone(), self.correct[i].clone(), self.seen)


def train_pack(cfgs: Sequence[RunConfig], observers: Sequence[Sequence[Observer]] | None = None, *,
               resume: Sequence[str | Path | None] | None = None) -> list[RunResult | BaseException]:
    """Train `cfgs` (fresh, or resumed from the folders in `resume`, all at one position) as one pack.

    Returns each run's RunResult (finished or diverged), or what stopped it: Interrupted (its checkpoint saved),
    KeyboardInterrupt, or the error that failed it. `observers[i]` are added to run i's default observers.
    A run that fails to start (a bad checkpoint) gets its error and the others train.
    """
    problem = pack_problem(cfgs)
    if problem is not None:
        raise ConfigError(f"these runs cannot train as one pack: {problem}")
    results: list[RunResult | BaseException | None] = [None] * len(cfgs)
    with contextlib.ExitStack() as outer:
        members: list[Member] = []
        for i, cfg in enumerate(cfgs):
            held = outer.enter_context(contextlib.ExitStack())
            try:
                members.append(_start(cfg, [*(observers[i] if observers else ())],
                                      resume[i] if resume else None, held))
            except Exception as exc:
                held.close()
                results[i] = exc
        started = [i for i, r in enumerate(results) if r is None]
        if members:
            _train(members)
        for i, m in zip(started, members):
            results[i] = m.result
    return [r if r is not None else RuntimeError("the pack left a run without a result") for r in results]


def _start(cfg: RunConfig, extra: list[Observer], resume: str | Path | None, held: contextlib.ExitStack) -> Member:
    ranks = held.enter_context(join(cfg, select_device))  # a sweep's process: never torchrun's
    s, state = start_session(cfg, ranks, [*default_observers(cfg), *extra], resume, False, held)
    held.callback(s.release)
    held.callback(lambda: [obs.close() for obs in s.observers])  # first: train() closes them inside its stack
    return Member(s, state, held, torch.get_rng_state())


def _train(members: list[Member]) -> None:
    """The pack's epochs, then each run's end; every member leaves with a result."""
    first = members[0]
    positions = {(m.state.epoch, m.state.batch, m.state.step) for m in members}
    if len(positions) > 1:
        for m in members:
            m.leave(ConfigError(f"the runs of a pack must stand at one position, not {sorted(positions)}"))
        return
    # gradients without autograd for the plain form, unless autocast is on (reslab.models.packed_direct)
    pack = pack_models([m.s.model for m in members], direct=isinstance(first.s.amp, contextlib.nullcontext))
    opt = make_optimizer(pack, first.s.cfg.optim, first.s.device)
    own = [m.s.opt.state_dict() for m in members]
    if own[0]["state"]:  # resumed runs: their optimizers' states, stacked
        opt.load_state_dict(pack.stacked_optimizer_state(own))
    try:
        with stop_on_signal() as flag:
            while live_members(members) and live_members(members)[0].state.epoch < first.s.cfg.train.epochs:
                if not _epoch(pack, opt, members, flag):
                    flag.saving = True
                    for m in live_members(members):
                        settle(m, lambda m=m: _interrupt(m))
                    return
                for m in live_members(members):  # train.until=plateau: a run whose loss stopped improving ends here
                    if plateau_stop(m.state, m.s.cfg):
                        settle(m, lambda m=m: _finish(m))
        tests = evaluate_pack(pack, members, 2) if live_members(members) else []
        for m, test in zip(members, tests):
            if m.live:
                settle(m, lambda m=m, test=test: _finish(m, test))
    except KeyboardInterrupt as exc:  # a second signal: stop at once, the last checkpoints stand
        for m in live_members(members):
            with contextlib.suppress(Exception):
                m.s.write_status(RunStatus.INTERRUPTED, m.state.epoch)
            m.leave(exc)
    except BaseException as exc:
        for m in live_members(members):
            with contextlib.suppress(Exception):
                m.s.write_status(RunStatus.FAILED, m.state.epoch)
            m.leave(exc)
        if not isinstance(exc, Exception):
            raise


def _interrupt(m: Member) -> None:
    torch.set_rng_state(m.rng)
    save_last(m.s, m.state)
    m.s.write_status(RunStatus.INTERRUPTED, m.state.epoch)
    m.leave(Interrupted(m.s.folder.path))


def _finish(m: Member, test: EvalResult | None = None) -> None:
    torch.set_rng_state(m.rng)
    summary = finish(m.s, m.state, test=test)
    for obs in m.s.observers:
        obs.on_end(summary)
    m.leave(RunResult(m.s.folder.path, summary, m.state.history))


def _epoch(pack: Pack, opt: torch.optim.Optimizer, members: list[Member], flag: Any) -> bool:
    """One epoch of every live run from their common position; False when a stop was requested."""
    first = live_members(members)[0]  # the runs stand at one position
    cfg, device, epoch, start = first.s.cfg, first.s.device, first.state.epoch, first.state.batch
    done = first.state.step  # steps done
    loaders = [m.s.loaders[0] for m in members]  # a run that left still feeds its batches: the pack keeps its shape
    for loader in loaders:
        loader.set_epoch(epoch)
    if gathers_together(loaders):  # one gather for all runs' batches of a step
        steps = PackBatches(loaders, first.s.data.train_x, first.s.data.train_y).batches(start)
    else:
        steps = ((torch.stack([b[0] for b in batches]), torch.stack([b[1] for b in batches]))  # (N, B, ...), (N, B)
                 for batches in zip(*(loader.batches(start) for loader in loaders)))
    sums = _Sums.of(members, device)
    for m in live_members(members):
        if m.state.running is None:
            m.state.epoch_seconds = 0.0
    sync(device)
    t0 = time.perf_counter()
    for i, (x, y) in enumerate(steps, start=start):
        live = live_members(members)
        if not live:
            return True
        step, lr = done + 1, lr_at(done, len(loaders[0]), cfg.train.epochs, cfg.optim)
        set_lr(opt, lr)
        for m in live:
            settle(m, lambda m=m: [obs.on_batch_start(step) for obs in m.s.observers])
        if any(obs.needs_module(step) for m in live_members(members) for obs in m.s.observers):
            losses, logits = step_each(pack, opt, members, x, y, step, loaders[0].full_size(i))
        else:
            losses, logits = step_packed(pack, opt, first.s, x, y)
        sums.loss_sum += losses * y.shape[1]
        sums.correct += (logits.argmax(2) == y).sum(1)
        sums.seen, done = sums.seen + y.shape[1], step
        means = losses.unbind()
        for index, m in enumerate(members):
            if m.live:
                m.state.step, m.state.batch = step, i + 1
                settle(m, lambda m=m, index=index: [obs.on_step(step, means[index], lr) for obs in m.s.observers])
        if flag.requested and live_members(members):
            sync(device)
            _close_epoch(pack, opt, members, sums, time.perf_counter() - t0)
            return False
    sync(device)
    _close_epoch(pack, opt, members, sums, time.perf_counter() - t0)
    for m, val in zip(members, evaluate_pack(pack, members, 1)):
        if m.live:
            settle(m, lambda m=m, val=val: (torch.set_rng_state(m.rng), end_epoch(m.s, m.state, val)))
    return True


def _close_epoch(pack: Pack, opt: torch.optim.Optimizer, members: list[Member], sums: _Sums,
                 seconds: float) -> None:
    """Each live run's sums, time, weights and optimizer state into its own state, module and optimizer."""
    live = [(i, m) for i, m in enumerate(members) if m.live]
    pack.write_to([m.s.model for _, m in live], [i for i, _ in live])
    packed = opt.state_dict()
    for i, m in live:
        m.state.running, m.state.epoch_seconds = sums.running(i), m.state.epoch_seconds + seconds
        m.s.opt.load_state_dict(pack.optimizer_state_of(packed, i))


