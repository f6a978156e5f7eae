"""Run a sweep: check it, list or run what is left of it, aggregate what the run folders hold.

`run_sweep(spec)` takes a checked `SweepSpec` (from a sweep file, or built in memory by the lab) and returns a
typed `SweepResult`. Everything a user can get wrong (the sweep, any run's config, a sweep folder holding another
sweep, a run folder trained with another config) fails before anything is written. A run that fails is recorded
and the others go on; at the end its folder and one-line error are listed (`SweepResult.failed`).
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import IO, Any, Sequence

from reslab.config import load_source, to_dict
from reslab.runs import RunFolder
from reslab.status import RunStatus
from reslab.sweep import backends
from reslab.sweep.aggregate import collect, typed_run, write_all
from reslab.sweep.backends import BackendOptions
from reslab.sweep.expansion import base_config, expand
from reslab.sweep.folder import RunAction, RunState, SweepFolder
from reslab.sweep.result import Failure, SweepResult
from reslab.sweep.spec import PlannedRun, SweepSpec, load_sweep, text
from reslab.sweep.summary import edge_warnings


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], out: IO[str]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    for row in [header, *rows]:
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip(), file=out)


def plan(spec: SweepSpec, runs_dir: str | Path | None, data_dir: str | None
         ) -> tuple[SweepFolder, list[PlannedRun], dict[str, Any]]:
    """The sweep's folder and every run's resolved config; reads only."""
    folder = SweepFolder(Path(runs_dir or "runs") / spec.name)
    settings = {"data.data_dir": data_dir} if data_dir else {}
    planned = expand(spec, runs_dir=folder.runs, settings=settings)
    folder.check(spec)
    return folder, planned, settings


def dry_run(spec: SweepSpec, folder: SweepFolder, planned: Sequence[PlannedRun], settings: dict[str, Any],
            out: IO[str]) -> None:
    """Every run with its state and estimated time, and the total in device-hours; writes nothing."""
    from reslab.sweep.cost import TIMED_STEPS, estimate

    index = folder.read_index()
    states = [folder.state(run, index) for run in planned]
    base = base_config(spec, settings) or planned[0].cfg
    cost = estimate(base, [run.cfg for run in planned])
    print(f"sweep {spec.name}: {len(planned)} runs into {folder.path}", file=out)
    for i, case in enumerate(spec.cases):
        print(f"cases[{i}]: {case.label()}", file=out)
    rows = [[*(text(v) for v in run.values.values()), str(run.seed), state.action, _duration(seconds),
             folder.relative(state.folder) if state.folder else f"runs/{run.key}-<date>-<time>-<id>"]
            for run, state, seconds in zip(planned, states, cost.seconds)]
    _table([*spec.swept, "seed", "state", "est. time", "folder"], rows, out)
    todo = [s for s, st in zip(cost.seconds, states) if st.action is not RunAction.DONE]
    print(f"cost: base model {base.model.name}: {cost.base_flops_per_sample / 1e6:.4g} MFLOP per image forward+"
          f"backward; measured {cost.rate / 1e9:.3g} GFLOP/s on {cost.device} "
          f"({TIMED_STEPS} steps of {base.data.batch_size})", file=out)
    print(f"cost: {sum(cost.flops):.3g} FLOP in all = {cost.device_hours:.3g} device-hours "
          f"({_duration(sum(cost.seconds))}) on this device; left to run: {len(todo)} runs, {_duration(sum(todo))}. "
          "FLOP-based: small, overhead-bound models take longer than this.", file=out)


class _Progress:
    """One line per finished run and an overall line, on stderr."""

    def __init__(self, spec: SweepSpec, total: int, done: int, out: IO[str]) -> None:
        self.spec, self.total, self.done, self.out = spec, total, done, out
        self.start, self.finished_here, self.failed = time.perf_counter(), 0, 0

    def __call__(self, outcome: dict[str, Any], left: int) -> None:
        status = RunStatus.parse(outcome["status"])
        if status is not None and status.completed:
            self.done += 1
            self.finished_here += 1
        elif status is RunStatus.FAILED:
            self.failed += 1
        numbers = ""
        if status is RunStatus.FINISHED:
            numbers = f", test_acc {outcome['test_acc']:.4f}, final train loss {outcome['final_train_loss']:.4f}"
        seconds = f", {outcome['seconds']:.1f} s" if outcome.get("seconds") is not None else ""
        error = f": {outcome['error']}" if outcome.get("error") else ""
        print(f"[{self.done}/{self.total}] {outcome['key']}: {status}{error}{numbers}{seconds}", file=self.out)
        elapsed = time.perf_counter() - self.start
        eta = elapsed / self.finished_here * left if self.finished_here else float("nan")
        eta_text = f", about {_duration(eta)} left" if left and self.finished_here else ""
        print(f"sweep {self.spec.name}: {self.done} of {self.total} runs done, {self.failed} failed, "
              f"{_duration(elapsed)} elapsed{eta_text}", file=self.out)


def _task(folder: SweepFolder, run: PlannedRun, state: RunState) -> Any:
    from reslab.sweep.local import Task

    cfg = to_dict(run.cfg)
    if state.action is RunAction.RESUME:
        assert state.folder is not None
        saved = load_source(str(RunFolder(state.folder).config))
        cfg["runs_dir"] = saved.get("runs_dir", cfg["runs_dir"])  # where it was made: the trainer compares it
        return Task(run.key, cfg, str(state.folder))
    return Task(run.key, cfg, None)


def sweep_file(file: str | Path, *, backend: str = "local", options: BackendOptions | None = None,
               **kwargs: Any) -> SweepResult:
    """`run_sweep` of a sweep file (what `reslab sweep FILE` runs); flags are checked before the file."""
    backends.check(backend, options or BackendOptions())
    return run_sweep(load_sweep(file), backend=backend, options=options, **kwargs)


def run_sweep(spec: SweepSpec, *, jobs: int | None = None, backend: str = "local", runs_dir: str | Path | None = None,
              data_dir: str | None = None, dry: bool = False, out: IO[str] | None = None,
              options: BackendOptions | None = None) -> SweepResult:
    """Run (or with `dry`, list) a sweep into <runs_dir>/<spec.name>; returns its typed result.

    `backend` is local, ray or slurm, with `options` for it (`jobs`, when given, overrides theirs). Progress and
    the failure table go to `out` (default: stderr). A stop signal ends it with `completed=False`."""
    out = out or sys.stderr
    options = replace(options or BackendOptions(), **({"jobs": jobs} if jobs is not None else {}))
    backends.check(backend, options)
    folder, planned, settings = plan(spec, runs_dir, data_dir)
    index = folder.read_index()
    for run in planned:
        folder.state(run, index)  # a run folder trained with another config fails here, before anything is written
    if dry:
        dry_run(spec, folder, planned, settings, out)
        return SweepResult(folder.path, completed=True)
    with backends.connect(backend, options) as runner:  # an unreachable cluster fails here, before anything is written
        folder.create(spec)
        with folder.locked():
            outcomes, completed, (chosen, left_out) = _run(spec, folder, planned, runner, out)
    failed = tuple(Failure(o["key"], RunStatus.parse(o["status"]), Path(o["run_dir"]) if o.get("run_dir") else None,
                           o.get("error")) for o in outcomes if not _completed(o))
    if not completed:
        print(f"reslab: sweep {spec.name} stopped; run the same command again to resume it", file=out)
        runs = tuple(typed_run(row, folder) for row in collect(folder, planned))
        return SweepResult(folder.path, completed=False, runs=runs, failed=failed)
    for warning in [*edge_warnings(spec, chosen), *(f"left out of the aggregate: {n}" for n in left_out)]:
        print(f"reslab: warning: {warning}", file=out)
    print(f"sweep {spec.name}: results in {folder.results.name}, {folder.aggregate.name}, {folder.paired.name}, "
          f"{folder.summary.name}", file=out)
    if failed:
        print(f"reslab: {len(failed)} of {len(planned)} runs did not finish:", file=out)
        _table(["folder", "error"], [[folder.relative(f.run_folder) if f.run_folder else f.key,
                                      f.error or str(f.status)] for f in failed], out)
    return SweepResult(folder.path, completed=True, runs=tuple(folder.run_rows()), aggregate=tuple(folder.cell_rows()),
                       paired=tuple(folder.pair_rows()), failed=failed)


def _completed(outcome: dict[str, Any]) -> bool:
    status = RunStatus.parse(outcome["status"])
    return status is not None and status.completed


def _run(spec: SweepSpec, folder: SweepFolder, planned: Sequence[PlannedRun], runner: backends.Runner, out: IO[str]
         ) -> tuple[list[dict[str, Any]], bool, tuple[dict[str, Any], list[str]]]:
    """Under the sweep folder's lock: move failed attempts aside, run what is left, aggregate when it all ran.
    Returns the outcomes, whether the sweep ran to its end, the tuned values chosen and the runs left out."""
    index = folder.read_index()
    tasks = []
    for run in planned:
        state = folder.state(run, index)
        entry = index.setdefault(run.key, {})
        if state.folder is not None:
            entry["folder"] = folder.relative(state.folder)
        if state.action in (RunAction.RERUN, RunAction.RESTART) and state.folder is not None:
            moved = folder.move_aside(state.folder, "failed" if state.action is RunAction.RERUN else "incomplete")
            entry["moved_aside"] = [*entry.get("moved_aside", []), folder.relative(moved)]
            entry["folder"] = None
        if state.action is not RunAction.DONE:
            tasks.append(_task(folder, run, state))
    folder.write_index(index)
    resumed = sum(t.resume is not None for t in tasks)
    print(f"sweep {spec.name}: {len(planned)} runs, {len(planned) - len(tasks)} done already, {len(tasks)} to run "
          f"({resumed} resumed) {runner.plan_line(tasks)} into {folder.path}", file=out)
    progress = _Progress(spec, len(planned), len(planned) - len(tasks), out)
    outcomes: list[dict[str, Any]] = []

    def on_done(outcome: dict[str, Any]) -> None:
        outcomes.append(outcome)
        entry = index.setdefault(outcome["key"], {})
        if outcome.get("run_dir"):
            entry["folder"] = folder.relative(Path(outcome["run_dir"]))
        entry.update(status=outcome["status"], error=outcome.get("error"), traceback=outcome.get("traceback"))
        folder.write_index(index)
        progress(outcome, len(tasks) - len(outcomes))

    completed = runner.run(tasks, on_done, folder) if tasks else True
    return outcomes, completed, (write_all(folder, spec, planned) if completed else ({}, []))
