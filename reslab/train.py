"""The training engine: `train(cfg) -> RunResult`, callable from Python; the CLI is a thin layer over it.

The loop keeps every per-step number on the device (no host sync per step); it syncs once per epoch for
the metrics row, and once per `log_every` steps only for the progress bar. SIGINT/SIGTERM set a flag the
loop checks between steps, so an interrupted run checkpoints its exact position and `--resume` continues
as if it had never stopped. Under torchrun each process trains its shard of every global batch (reslab.distributed
holds the collectives) and rank 0 alone writes the run folder.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from torch import nn

from reslab import files
from reslab.config import RunConfig
from reslab.distill import distill_loss
from reslab.distributed import Flag, join
from reslab.errors import Diverged
from reslab.evaluate import EvalResult
from reslab.metrics import classification_report
from reslab.models import count_params
from reslab.observers import default_observers, other_rank_observers
from reslab.optim import lr_at, set_lr
from reslab.protocols import Observer
from reslab.runtime import select_device, stop_on_signal, sync
from reslab.session import Session, start_session
from reslab.state import Running, TrainState, best_checkpoint, last_checkpoint, plateau_stop, run_summary
from reslab.status import RunStatus


class Interrupted(Exception):
    """Raised after an interrupted run has saved its checkpoint; carries the run folder."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(f"interrupted; checkpoint saved. Resume with: reslab train --resume {run_dir}")
        self.run_dir = run_dir


@dataclass
class RunResult:
    run_dir: Path
    summary: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)


def train(cfg: RunConfig, observers: Sequence[Observer] = (), *, resume: str | Path | None = None,
          progress: bool = True) -> RunResult:
    """Train `cfg` into a new run folder (or continue the one in `resume`) and return its summary.

    `observers` are added to the ones the config asks for (`default_observers`). A run whose loss turns
    NaN or infinite stops and is returned with summary["status"] == "diverged" (a result, not an error).
    The run folder is locked while this runs: a second process resuming it gets a CheckpointError.
    Under torchrun every rank returns the same summary; `observers` run on rank 0 alone.
    """
    with contextlib.ExitStack() as held:
        ranks = held.enter_context(join(cfg, select_device))
        # made on every rank (a missing sink package fails on each); rank 0 alone runs them
        rank0_observers = [*default_observers(cfg), *observers]
        s, state = start_session(cfg, ranks, rank0_observers if ranks.is_rank0 else other_rank_observers(cfg), resume,
                          progress and ranks.is_rank0, held)
        held.callback(s.release)  # before the process group is left (the stack unwinds in reverse)
        try:
            with stop_on_signal() as flag:
                while state.epoch < cfg.train.epochs and not plateau_stop(state, cfg):
                    if not _run_epoch(s, state, ranks.agreed(flag)):  # a stop on any rank stops all at one step
                        flag.saving = True
                        save_last(s, state)
                        s.write_status(RunStatus.INTERRUPTED, state.epoch)
                        raise Interrupted(s.folder.path)
            summary = finish(s, state)
            for obs in s.observers:
                obs.on_end(summary)
        except Diverged as diverged:
            summary = finish(s, state, diverged)
        except Interrupted:
            raise
        except KeyboardInterrupt:  # a second signal: stop at once, the last checkpoint stands
            s.write_status(RunStatus.INTERRUPTED, state.epoch)
            raise
        except BaseException:
            with contextlib.suppress(OSError):  # the disk may be what failed: the error itself matters more
                s.write_status(RunStatus.FAILED, state.epoch)
            raise
        finally:
            for obs in s.observers:
                obs.close()
    return RunResult(run_dir=s.folder.path, summary=summary, history=state.history)


def train_epoch(s: Session, state: TrainState, flag: Flag, bar: Any) -> bool:
    """One epoch from state.batch on; returns False if a stop was requested (state then marks the position)."""
    optim, loader, running = s.cfg.optim, s.loaders[0], state.running
    assert running is not None
    for i, (x, y) in enumerate(loader.batches(state.batch), start=state.batch):
        step = state.step + 1
        lr = lr_at(state.step, len(loader), s.cfg.train.epochs, optim)
        set_lr(s.opt, lr)
        for obs in s.observers:
            obs.on_batch_start(step)
        with s.amp:  # loss_sum: this shard's; mean_loss: the global batch's (over several ranks: all-reduced)
            logits = s.step_model(x)
            if s.teacher is None:
                loss, loss_sum, mean_loss = s.ranks.loss(logits.float(), y, optim.label_smoothing, loader.full_size(i))
            else:  # the teacher's cached logits of these images, by their dataset index
                per_image = distill_loss(logits, s.teacher.logits[loader.served], y, s.cfg.train.distill,
                                         optim.label_smoothing)
                loss, loss_sum, mean_loss = s.ranks.summed_loss(per_image.sum(), len(y), loader.full_size(i))
        s.opt.zero_grad(set_to_none=True)
        loss.backward()
        for obs in s.observers:
            obs.on_after_backward(step, s.model)
        if optim.grad_clip is not None:
            nn.utils.clip_grad_norm_(s.model.parameters(), optim.grad_clip)
        s.opt.step()
        running.loss_sum += loss_sum
        running.correct += (logits.detach().argmax(1) == y).sum()
        running.seen += len(y)
        state.step, state.batch = step, i + 1
        for obs in s.observers:
            obs.on_step(step, mean_loss, lr)
        bar.update(len(y) * s.ranks.world)  # a shape, not a sync
        if s.progress and step % s.cfg.train.log_every == 0:  # the bar's one host sync per log_every steps
            bar.set_postfix(loss=f"{float(running.loss_sum) / max(1, running.seen):.4f}", refresh=False)
        if flag.requested:
            return False
    return True


def _run_epoch(s: Session, state: TrainState, flag: Flag) -> bool:
    """Train one epoch, validate, record the row and checkpoints; False when a stop was requested."""
    from tqdm.auto import tqdm

    epoch, train_loader = state.epoch, s.loaders[0]
    train_loader.set_epoch(epoch)
    if state.running is None:  # absent at an epoch's start; present when resuming mid-epoch
        state.running, state.epoch_seconds = Running.zeros(s.device), 0.0
    tty = sys.stderr.isatty() or _in_notebook()  # a notebook redraws live too; a log file: every 10 s
    bar = tqdm(total=train_loader.num_samples, initial=state.running.seen, unit="img", unit_scale=True,
               desc=f"epoch {epoch + 1}/{s.cfg.train.epochs}", disable=not s.progress, leave=False,
               file=sys.stderr, dynamic_ncols=tty, mininterval=0.1 if tty else 10.0)
    sync(s.device)
    t0 = time.perf_counter()
    with bar:
        finished = train_epoch(s, state, flag, bar)
        sync(s.device)
        state.epoch_seconds += time.perf_counter() - t0
    if not finished:
        return False
    end_epoch(s, state)
    return True


def end_epoch(s: Session, state: TrainState, val: EvalResult | None = None) -> None:
    """Close the epoch whose training sums are in state.running: validate, record the row, write the checkpoints.

    Raises Diverged when the epoch's training loss is NaN or infinite. (The packed trainer closes its runs' epochs
    here too, with `val` evaluated for the whole pack at once.)"""
    epoch, val_loader = state.epoch, s.loaders[1]
    assert state.running is not None
    running, state.running = state.running.summed(s.ranks.all_sum), None  # over all ranks
    loss_sum, correct, seen = float(running.loss_sum), int(running.correct), running.seen  # the epoch's one sync
    if not math.isfinite(loss_sum):
        raise Diverged(state.step, loss_sum)
    t1 = time.perf_counter()
    if val is None and val_loader is not None:
        val = s.evaluate(val_loader)
    row = {"epoch": epoch + 1, "step": state.step, "lr": s.opt.param_groups[0]["lr"],
           "train_loss": loss_sum / max(1, seen), "train_acc": correct / max(1, seen),
           "val_loss": val.loss if val else None, "val_acc": val.acc if val else None,
           "seconds": state.epoch_seconds + time.perf_counter() - t1,
           "samples_per_s": seen / max(state.epoch_seconds, 1e-9)}
    if val is not None and val.top5 is not None:
        row["val_top5"] = val.top5
    state.history.append(row)
    state.train_seconds += state.epoch_seconds
    state.train_samples += seen
    state.epoch, state.batch = epoch + 1, 0
    improved = val is not None and (state.best_val_acc is None or val.acc > state.best_val_acc)
    if improved:
        state.best_val_acc, state.best_epoch = val.acc, epoch + 1
    if s.ranks.is_rank0:  # rank 0 alone writes the run folder
        s.folder.write_metrics(state.history)
        if improved:
            s.folder.save_checkpoint("best", best_checkpoint(s.model, epoch + 1, val.acc, s.cfg))
    for obs in s.observers:
        obs.on_epoch(row)
    if (state.epoch % s.cfg.train.checkpoint_every == 0 or state.epoch == s.cfg.train.epochs
            or plateau_stop(state, s.cfg)):  # the last epoch of the run, whether the cap or a plateau ended it
        save_last(s, state)
    if s.progress:
        val_text = f" val_loss {val.loss:.4f} val_acc {val.acc:.4f}" if val else ""
        print(f"epoch {epoch + 1}/{s.cfg.train.epochs} train_loss {row['train_loss']:.4f} "
              f"train_acc {row['train_acc']:.4f}{val_text} {row['samples_per_s']:.0f} samples/s", file=sys.stderr)


def _in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (whose output area redraws a bar in place, as a terminal does)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def save_last(s: Session, state: TrainState) -> None:
    """Observers first put their records on disk: what the checkpoint claims is done must be there.

    Every rank calls this: mid-epoch, the checkpoint holds the open epoch's sums over all ranks."""
    state = replace(state, running=None if state.running is None else state.running.summed(s.ranks.all_sum))
    if not s.ranks.is_rank0:
        return
    for obs in s.observers:
        obs.flush()
    states = {type(obs).__name__: obs.state_dict() for obs in s.observers}
    s.folder.save_checkpoint("last", last_checkpoint(s.model, s.opt, state, s.cfg,
                                                     {k: v for k, v in states.items() if v is not None}))


def finish(s: Session, state: TrainState, diverged: Diverged | None = None, test: EvalResult | None = None
           ) -> dict[str, Any]:
    """The summary.json of a finished run (test metrics, classification report, curves), or of a diverged one
    (what it reached before the loss turned non-finite; no test evaluation of its broken weights)."""
    from reslab.plots import plot_curves

    test = None if diverged is not None else test or s.evaluate(s.loaders[2])  # `test`: the pack's, evaluated at once
    summary = {**run_summary(state, s.cfg, s.data.name, s.data.classes, count_params(s.model), test, diverged),
               **s.sources}
    if s.ranks.is_rank0:  # rank 0 alone writes the run folder
        if test is not None:
            files.write_text(s.folder.report, classification_report(test.confusion, s.data.classes))
        if state.history and s.cfg.train.figures:  # else drawn later from metrics.csv (RunFolder.draw_curves)
            plot_curves(state.history, s.folder.curves)
        files.write_json(s.folder.summary, summary)
    s.write_status(summary["status"], state.epoch, **({"step": diverged.step} if diverged else {}))
    return summary
