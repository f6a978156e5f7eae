"""`reslab lab`: every stage not done yet, with an overall progress line above each, then the report.

Running it again skips finished stages (lab.json), so a second run only rebuilds the report. Ctrl-C stops
between or inside a stage; the next run continues from there without losing or repeating a run.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Mapping, Sequence

from reslab.data import reusing
from reslab.errors import ConfigError, DataError
from reslab.lab.folder import LabFolder, absolute
from reslab.lab.pace import reference_seconds, remaining_seconds
from reslab.lab.profiles import PROFILE_TABLE, default_profile, get_profile
from reslab.lab.plan import plan
from reslab.lab.stages import LabContext, LabStopped, Stage, run_study
from reslab.runtime import StopFlag, stop_on_signal


@dataclass(frozen=True)
class LabResult:
    """What `run_lab` did: `completed` is False when a stop signal ended it (run it again to continue)."""

    folder: Path
    completed: bool
    report: Path | None = None  # report.html, when the lab ran to its end
    failed_runs: int = 0  # runs that did not finish (listed in the report; their stages run again next time)

    @property
    def path(self) -> Path:
        """What the command prints last: report.html, or the lab folder when it stopped."""
        return self.report or self.folder


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    return f"{seconds:.0f} s" if seconds < 60 else f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


def _dataset_spec(spec: str) -> str:
    """An image-folder path as an absolute path (the sweep files live elsewhere); named datasets as given."""
    if spec.startswith("imagefolder:"):
        path = Path(spec.removeprefix("imagefolder:")).expanduser()
        if path.exists():
            return f"imagefolder:{absolute(path)}"
    return spec


def check_data(mnist: str, cifar: str, data_dir: str | None) -> None:
    """Load both datasets once (decoded into the cache) so that missing data fails before any training."""
    from reslab.data import load_dataset

    for role, spec in (("--mnist", mnist), ("--cifar", cifar)):
        try:
            load_dataset(spec, data_dir)
        except DataError as exc:
            hint = 'reslab lab --data-dir DIR, or make lab ARGS="--data-dir DIR"' if data_dir is None else f"{role} SPEC"
            raise DataError(f"{role} {spec}: {exc} (point the lab at the data: {hint})") from None


class _Overall:
    """The line above each stage: stage i of n, runs done of total, elapsed, estimated remaining (`lab.pace`)."""

    def __init__(self, stages: Sequence[Stage], done: dict, work: Mapping[str, float], out: IO[str],
                 reference: Callable[[], float] = reference_seconds) -> None:
        self.stages, self.done, self.work, self.out, self.reference = stages, done, work, out, reference
        self.start = time.perf_counter()
        self.total_runs = sum(s.runs for s in stages)
        self.took: dict[str, float] = {}  # stage -> seconds, for the stages run this time
        self.reference_s: float | None = None  # the reference workload's seconds here, timed when first needed

    def remaining(self) -> str:
        """The time the stages left take at this machine's pace: of the stages run so far, else of the reference
        workload timed now (never another machine's seconds)."""
        left = [s.name for s in self.stages if s.name not in self.done and s.name not in self.took]
        if not left or any(name not in self.work for name in left):
            return ""
        ran = [(self.took[name], self.work[name]) for name in self.took if name in self.work]
        if not ran and self.reference_s is None:
            self.reference_s = self.reference()
        seconds = remaining_seconds(left, self.work, ran, self.reference_s)
        if seconds is None:
            return ", estimating the time left"
        basis = f"the pace of {len(ran)} stage{'s' * (len(ran) > 1)} here" if ran else "a reference workload timed here"
        return f", about {_duration(seconds)} left (from {basis})"

    def runs_done(self) -> int:
        return sum(s.runs for s in self.stages if s.name in self.done)

    def begin(self, index: int, stage: Stage) -> None:
        what = f", {stage.runs} runs" if stage.runs else ""
        elapsed = time.perf_counter() - self.start
        print(f"lab [{index}/{len(self.stages)}] {stage.name}: {stage.title}{what} | runs {self.runs_done()} of "
              f"{self.total_runs} done | {_duration(elapsed)} elapsed{self.remaining()}", file=self.out, flush=True)

    def end(self, index: int, stage: Stage, seconds: float, failed: int = 0) -> None:
        self.took[stage.name] = seconds
        note = f", {failed} runs failed (listed in the report)" if failed else ""
        print(f"lab [{index}/{len(self.stages)}] {stage.name} done in {_duration(seconds)}{note}", file=self.out,
              flush=True)


@reusing()  # the data check, every stage's runs and the analyses share each decoded dataset
def run_lab(*, profile: str | None = None, mnist: str = "mnist", cifar: str = "cifar10", data_dir: str | None = None,
            out: str | Path = "lab", jobs: int | None = None, backend: str = "local", device: str = "auto",
            stream: IO[str] | None = None) -> LabResult:
    """Run what is left of the lab and write its report."""
    from reslab.lab.report import write_lab_report
    from reslab.runtime import select_device

    stream = stream or sys.stderr
    dev = select_device(device)
    if profile is None:
        profile = default_profile(dev)
        print(f"lab: profile {profile} (picked for device {dev}; --profile quick|full to choose)", file=stream)
    if profile not in PROFILE_TABLE:
        raise ConfigError(f"unknown profile {profile!r}; valid: {', '.join(PROFILE_TABLE)}")
    mnist, cifar = _dataset_spec(mnist), _dataset_spec(cifar)
    data_dir = None if data_dir is None else absolute(data_dir)
    folder = LabFolder(Path(out))
    asked = {"profile": profile, "mnist": mnist, "cifar": cifar, "data_dir": data_dir}
    stages = plan(get_profile(profile))
    record = _checked(folder.check(asked), folder)  # a foreign folder or another lab's fails before anything else
    if record is None or any(s.name not in record["stages"] for s in stages):
        check_data(mnist, cifar, data_dir)
    record = _checked(folder.open(asked), folder)
    ctx = LabContext(folder, get_profile(profile), mnist, cifar, data_dir, jobs, backend, device, stream)
    overall = _Overall(stages, record["stages"], ctx.profile.work, stream)
    failed_runs = 0
    try:
        with stop_on_signal(at_once=True) as stop:  # Ctrl-C or SIGTERM raise, and set the flag
            failed_runs = _run_stages(stages, record, ctx, overall, stop)
    except (KeyboardInterrupt, LabStopped) as exc:
        why = f" ({exc})" if isinstance(exc, LabStopped) else ""
        print(f"lab: stopped{why}; run the same command again to continue where it stopped", file=stream)
        return LabResult(folder.path, completed=False, failed_runs=failed_runs)
    html = write_lab_report(folder, stages, record)
    print(f"lab: report written in {_duration(time.perf_counter() - overall.start)}: {html}", file=stream)
    return LabResult(folder.path, completed=True, report=html, failed_runs=failed_runs)


def _checked(record: dict[str, Any] | None, folder: LabFolder) -> Any:
    """lab.json's record with only the stages it says are done: an entry that is not {"status": "done", ...} is a
    stage to run again; stages that are not a mapping at all are a damaged record, refused in one line."""
    if record is None:
        return None
    if not isinstance(record.get("stages"), dict):
        kind = "null" if record.get("stages") is None else type(record.get("stages")).__name__
        raise ConfigError(f"{folder.record} is damaged: its stages are {kind}, not a mapping of stage -> status; "
                          "delete the \"stages\" entry to check every stage again")
    record["stages"] = {k: v for k, v in record["stages"].items() if isinstance(v, dict) and v.get("status") == "done"}
    return record


def _run_stages(stages: Sequence[Stage], record: dict[str, Any], ctx: LabContext, overall: _Overall,
                stop: StopFlag) -> int:
    """Every stage not done yet, in order; returns how many runs failed."""
    failed_runs = 0
    for i, stage in enumerate(stages, start=1):
        if stage.name in record["stages"]:
            continue
        overall.begin(i, stage)
        started = time.perf_counter()
        failed = 0
        if stage.study is not None:
            failed = run_study(ctx, stage.study)
        else:
            assert stage.measure is not None
            with ctx.folder.building(ctx.folder.analysis(stage.name)) as temp:
                stage.measure(ctx, temp)
        seconds = time.perf_counter() - started
        failed_runs += failed
        if not failed:  # a stage with failed runs is tried again next time (the sweep reruns only those)
            ctx.folder.mark_done(record, stage.name, seconds)
        overall.end(i, stage, seconds, failed)
        if stop.requested:  # a Ctrl-C that Python swallowed: the stage is done, the lab stops here
            raise LabStopped("stopped after the stage " + stage.name)
    return failed_runs
