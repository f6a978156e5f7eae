"""The lab's stages in order: the sweeps that train every model, then the analyses that explain them.

A sweep stage builds its study as a SweepSpec and runs it with `reslab.sweep.run_sweep` (which skips finished runs
and resumes interrupted ones), and reads back its typed result. An analysis stage calls one instrument on the
trained pairs the sweeps left, into a folder of its own; those stages are made from the instruments' registrations
(`reslab.lab.instruments`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable

from reslab.errors import ReslabError
from reslab.lab.profiles import Profile, Study
from reslab.status import RunStatus
from reslab.sweep import RESIDUAL, RunRow


class LabStopped(ReslabError):
    """Ctrl-C (or a stopped sweep): the lab can continue where it stopped."""


@dataclass(frozen=True)
class LabContext:
    """What every stage needs: the lab folder, the profile, the two datasets, and how to run."""

    folder: Any  # LabFolder
    profile: Profile
    mnist: str  # dataset spec
    cifar: str
    data_dir: str | None
    jobs: int | None
    backend: str
    device: str
    out: IO[str]  # progress

    def dataset(self, which: str) -> str:
        return self.mnist if which == "mnist" else self.cifar

    def settings(self, which: str) -> dict[str, Any]:
        """--set style settings that point a preset at the lab's dataset."""
        values = {"data.dataset": self.dataset(which)}
        if self.data_dir is not None:
            values["data.data_dir"] = self.data_dir
        return values


@dataclass(frozen=True)
class Stage:
    name: str
    title: str
    study: Study | None = None  # a sweep stage
    measure: Callable[[LabContext, Path], None] | None = None  # an instrument stage: (context, empty output folder)

    @property
    def runs(self) -> int:
        """How many training runs the stage holds (0 for an analysis)."""
        if self.study is None:
            return 0
        import itertools

        grid = self.study.grid
        skips = [c["when"] for c in self.study.cases if c.get("skip")]
        cells = sum(not any(all(dict(zip(grid, combo))[k] == v for k, v in when.items()) for when in skips)
                    for combo in itertools.product(*grid.values()))
        return cells * self.study.seeds * (len(self.study.tune["values"]) if self.study.tune else 1)


def run_study(ctx: LabContext, study: Study) -> int:
    """Run the study's sweep; returns the number of runs that did not finish (LabStopped when a signal stopped it)."""
    from reslab.sweep import run_sweep

    spec = study.resolve(lambda name: study_run(ctx, name, study.name)).spec(ctx.dataset(study.dataset), ctx.data_dir,
                                                                            ctx.folder.sweeps)
    result = run_sweep(spec, jobs=ctx.jobs, backend=ctx.backend, runs_dir=ctx.folder.sweeps, out=ctx.out)
    if not result.completed:
        raise LabStopped(f"stopped in the sweep {study.name}")
    return sum(not run.completed for run in result.runs)


def finished_runs(ctx: LabContext, study: Study, seed: int | str | None = 0) -> list[RunRow]:
    """The finished runs of one seed (of every seed: None), with their run folders, as the study's sweep folder
    lists them."""
    return [r for r in ctx.folder.sweep_folder(study.name).run_rows()
            if (seed is None or r.seed == int(seed)) and r.status is RunStatus.FINISHED and r.run_folder is not None]


def _in_reference(row: RunRow, study: Study) -> bool:
    """Whether a run is of the study's reference cell (the grid values the instruments explain; all runs without)."""
    return all(row.values.get(k) == v for k, v in study.reference.items())


def pair(ctx: LabContext, study: Study, depth_key: str, depth: int | str | None = None, seed: int | str = 0
         ) -> list[str]:
    """The plain and the residual run folder at `depth` (default: the deepest) for one seed, as paths."""
    rows = [r for r in finished_runs(ctx, study, seed) if _in_reference(r, study)]
    if depth is None:
        depths = sorted({d for r in rows if isinstance(d := r.values.get(depth_key), int) and not isinstance(d, bool)})
        depth = depths[-1] if depths else None
    found = {r.values.get(RESIDUAL): r for r in rows if depth is not None and r.values.get(depth_key) == int(depth)}
    if not {False, True} <= set(found):
        raise LabStopped(f"the {study.name} study has no finished plain/residual pair at {depth_key}={depth}, seed "
                         f"{seed}; run the lab again to retrain it")
    return [str(found[side].run_folder) for side in (False, True)]


def depth_runs(ctx: LabContext, study: Study, depth_key: str, seed: int | str = 0) -> list[str]:
    """Every finished run of one seed, plain and residual, shallow to deep."""
    rows = [r for r in finished_runs(ctx, study, seed) if _in_reference(r, study)]
    rows.sort(key=lambda r: (r.values.get(depth_key) or 0, r.values.get(RESIDUAL) is True))
    return [str(r.run_folder) for r in rows]


def mlp_pair(ctx: LabContext, seed: int = 0) -> list[str]:
    """The trained MLP twins the instruments explain (the profile's depth) of one seed."""
    return pair(ctx, ctx.profile.mlp_depth, "model.depth", str(ctx.profile.pair_depth_mlp), seed)


def conv_pair(ctx: LabContext, seed: int = 0) -> list[str]:
    """The deepest trained conv twins of one seed."""
    return pair(ctx, ctx.profile.conv_depth, ctx.profile.depth_key_conv, seed=seed)


def runs_of(ctx: LabContext, name: str, seed: int | None = 0) -> list[str]:
    """The finished run folders of the lab's study `name` (of one seed, or of every seed: None), plain before
    residual, then by seed; [] when the profile has no such study or it has not run."""
    study = ctx.profile.study(name)
    if study is None:
        return []
    rows = finished_runs(ctx, study, seed)
    rows.sort(key=lambda r: (r.values.get(RESIDUAL) is True, r.seed))
    return [str(r.run_folder) for r in rows]


def study_run(ctx: LabContext, name: str, needed_by: str) -> str:
    """The one finished seed-0 run of the study `name`, which the study `needed_by` names ("lab:NAME")."""
    runs = runs_of(ctx, name, seed=0)
    if ctx.profile.study(name) is None:
        raise ReslabError(f"the lab study {needed_by} names the run of {name!r}, which is no study of the profile")
    if len(runs) != 1:
        raise LabStopped(f"the lab study {needed_by} needs the finished seed-0 run of {name} ({len(runs)} found); run "
                         "the lab again to retrain it")
    return runs[0]
