"""`reslab sweep`: check a sweep file, list or run what is left of it, aggregate what the run folders hold.

Everything a user can get wrong (the file, any run's config, a sweep folder holding another sweep, a run folder
trained with another config) fails before anything is written. A run that fails is recorded and the others go
on; at the end its folder and one-line error are listed and the exit code is 1.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import IO, Any, Sequence

from reslab.config import load_source, to_dict
from reslab.runs import RunFolder
from reslab.sweep import backends
from reslab.sweep.aggregate import write_all
from reslab.sweep.backends import BackendOptions
from reslab.sweep.folder import RunState, SweepFolder
from reslab.sweep.spec import PlannedRun, SweepSpec, base_config, expand, load_sweep, text
from reslab.sweep.summary import edge_warnings

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


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


def plan(file: str | Path, runs_dir: str | Path | None, data_dir: str | None
         ) -> tuple[SweepSpec, SweepFolder, list[PlannedRun], dict[str, Any]]:
    """The checked sweep, its folder and every run's resolved config; reads only."""
    spec = load_sweep(file)
    folder = SweepFolder(Path(runs_dir or "runs") / spec.name)
    settings = {"data.data_dir": data_dir} if data_dir else {}
    planned = expand(spec, runs_dir=folder.runs, settings=settings)
    folder.check(spec)
    return spec, folder, planned, settings


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
        print(f"cases[{i}]: {case.describe()}", file=out)
    rows = [[*(text(v) for v in run.values.values()), str(run.seed), state.action, _duration(seconds),
             folder.relative(state.folder) if state.folder else f"runs/{run.key}-<date>-<time>-<id>"]
            for run, state, seconds in zip(planned, states, cost.seconds)]
    _table([*spec.swept, "seed", "state", "est. time", "folder"], rows, out)
    todo = [s for s, st in zip(cost.seconds, states) if st.action != "done"]
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
        status = outcome["status"]
        if status in ("finished", "diverged"):
            self.done += 1
            self.finished_here += 1
        elif status == "failed":
            self.failed += 1
        numbers = ""
        if status == "finished":
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
    if state.action == "resume":
        assert state.folder is not None
        saved = load_source(str(RunFolder(state.folder).config))
        cfg["runs_dir"] = saved.get("runs_dir", cfg["runs_dir"])  # where it was made: the trainer compares it
        return Task(run.key, cfg, str(state.folder))
    return Task(run.key, cfg, None)


def run_sweep(file: str | Path, *, jobs: int | None = None, backend: str = "local", runs_dir: str | Path | None = None,
              data_dir: str | None = None, dry: bool = False, out: IO[str] | None = None,
              options: BackendOptions | None = None) -> tuple[Path, int]:
    """Run (or with `dry`, list) a sweep; returns its folder and the exit code (0, 1 if a run failed, 130 stopped).

    `backend` is local, ray or slurm, with `options` for it (`jobs`, when given, overrides theirs). Progress and
    the failure table go to `out` (default: stderr)."""
    out = out or sys.stderr
    options = replace(options or BackendOptions(), **({"jobs": jobs} if jobs is not None else {}))
    backends.check(backend, options)
    spec, folder, planned, settings = plan(file, runs_dir, data_dir)
    index = folder.read_index()
    for run in planned:
        folder.state(run, index)  # a run folder trained with another config fails here, before anything is written
    if dry:
        dry_run(spec, folder, planned, settings, out)
        return folder.path, 0
    with backends.connect(backend, options) as runner:  # an unreachable cluster fails here, before anything is written
        folder.create(spec)
        with folder.locked():
            outcomes, completed, chosen = _run(spec, folder, planned, runner, out)
    if not completed:
        print(f"reslab: sweep {spec.name} stopped; run the same command again to resume it", file=out)
        return folder.path, EXIT_INTERRUPTED
    for warning in edge_warnings(spec, chosen):
        print(f"reslab: warning: {warning}", file=out)
    failed = [o for o in outcomes if o["status"] not in ("finished", "diverged")]
    print(f"sweep {spec.name}: results in {folder.results.name}, {folder.aggregate.name}, {folder.paired.name}, "
          f"{folder.summary.name}", file=out)
    if failed:
        print(f"reslab: {len(failed)} of {len(planned)} runs did not finish:", file=out)
        _table(["folder", "error"], [[folder.relative(Path(o["run_dir"])) if o.get("run_dir") else o["key"],
                                      o.get("error") or o["status"]] for o in failed], out)
        return folder.path, EXIT_FAILED
    return folder.path, 0


def _run(spec: SweepSpec, folder: SweepFolder, planned: Sequence[PlannedRun], runner: backends.Runner, out: IO[str]
         ) -> tuple[list[dict[str, Any]], bool, dict[str, Any]]:
    """Under the sweep folder's lock: move failed attempts aside, run what is left, aggregate when it all ran.
    Returns the outcomes, whether the sweep ran to its end, and the tuned values chosen."""
    index = folder.read_index()
    tasks = []
    for run in planned:
        state = folder.state(run, index)
        entry = index.setdefault(run.key, {})
        if state.folder is not None:
            entry["folder"] = folder.relative(state.folder)
        if state.action in ("rerun", "restart") and state.folder is not None:
            moved = folder.move_aside(state.folder, "failed" if state.action == "rerun" else "incomplete")
            entry["moved_aside"] = [*entry.get("moved_aside", []), folder.relative(moved)]
            entry["folder"] = None
        if state.action != "done":
            tasks.append(_task(folder, run, state))
    folder.write_index(index)
    resumed = sum(t.resume is not None for t in tasks)
    print(f"sweep {spec.name}: {len(planned)} runs, {len(planned) - len(tasks)} done already, {len(tasks)} to run "
          f"({resumed} resumed) {runner.describe(len(tasks))} into {folder.path}", file=out)
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
    return outcomes, completed, (write_all(folder, spec, planned) if completed else {})
