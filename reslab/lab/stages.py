"""The lab's stages in order: the sweeps that train every model, then the analyses that explain them.

A sweep stage writes its study as a sweep file and runs it with `reslab.sweep.run_sweep` (which skips
finished runs and resumes interrupted ones). An analysis stage calls one instrument on the trained pairs
the sweeps left, into a folder of its own; those stages are made from the instruments' registrations
(`reslab.lab.instruments`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable

import yaml

from reslab import files
from reslab.errors import ReslabError
from reslab.lab.profiles import Profile, Study


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
    analyse: Callable[[LabContext, Path], None] | None = None  # an analysis stage: (context, empty output folder)

    @property
    def runs(self) -> int:
        """How many training runs the stage holds (0 for an analysis)."""
        if self.study is None:
            return 0
        count = self.study.seeds
        for values in self.study.grid.values():
            count *= len(values)
        return count


def run_study(ctx: LabContext, study: Study) -> int:
    """Write the study's sweep file and run it; returns the number of runs that did not finish."""
    from reslab.sweep import run_sweep
    from reslab.sweep.runner import EXIT_INTERRUPTED

    ctx.folder.sweep_files.mkdir(parents=True, exist_ok=True)
    path = ctx.folder.sweep_files / f"{study.name}.yaml"
    text = yaml.safe_dump(study.sweep_file(ctx.dataset(study.dataset), ctx.data_dir), sort_keys=False)
    if not path.is_file() or path.read_text() != text:
        files.write_text(path, text)
    _, code = run_sweep(path, jobs=ctx.jobs, backend=ctx.backend, runs_dir=ctx.folder.sweeps, out=ctx.out)
    if code == EXIT_INTERRUPTED:
        raise LabStopped(f"stopped in the sweep {study.name}")
    rows = ctx.folder.sweep_csv(study.name, "results.csv")
    return sum(r.get("status") not in ("finished", "diverged") for r in rows)


def finished_runs(ctx: LabContext, study: Study, seed: str) -> list[dict[str, str]]:
    """results.csv rows of one seed's finished runs (their run folders are relative to the sweep folder)."""
    return [r for r in ctx.folder.sweep_csv(study.name, "results.csv")
            if r.get("seed") == seed and r.get("status") == "finished"]


def pair(ctx: LabContext, study: Study, depth_key: str, depth: str | None = None, seed: str = "0") -> list[str]:
    """The plain and the residual run folder at `depth` (default: the deepest) for one seed, as paths."""
    rows = finished_runs(ctx, study, seed)
    if depth is None:
        depths = sorted({int(r[depth_key]) for r in rows if r.get(depth_key, "").isdigit()})
        depth = str(depths[-1]) if depths else None
    found = {r.get("model.residual"): r for r in rows if r.get(depth_key) == depth}
    if set(found) < {"false", "true"}:
        raise LabStopped(f"the {study.name} study has no finished plain/residual pair at {depth_key}={depth}, seed "
                         f"{seed}; run the lab again to retrain it")
    return [str(ctx.folder.sweep(study.name) / found[s]["run_folder"]) for s in ("false", "true")]


def depth_runs(ctx: LabContext, study: Study, depth_key: str, seed: str = "0") -> list[str]:
    """Every finished run of one seed, plain and residual, shallow to deep."""
    rows = finished_runs(ctx, study, seed)
    rows.sort(key=lambda r: (int(r.get(depth_key) or 0), r.get("model.residual") == "true"))
    return [str(ctx.folder.sweep(study.name) / r["run_folder"]) for r in rows]


def mlp_pair(ctx: LabContext) -> list[str]:
    """The trained MLP twins the instruments explain (the profile's depth, seed 0)."""
    return pair(ctx, ctx.profile.mlp_depth, "model.depth", str(ctx.profile.pair_depth_mlp))


def conv_pair(ctx: LabContext) -> list[str]:
    """The deepest trained conv twins (seed 0)."""
    return pair(ctx, ctx.profile.conv_depth, ctx.profile.depth_key_conv)


def plan(profile: Profile) -> list[Stage]:
    """Every stage, in the order it runs: the sweeps, then the instruments' analyses."""
    from reslab.lab.instruments import analysis_stages

    return [
        Stage("ex1-mlp", "Exercise 1.1: the notebook's MLP on MNIST", study=profile.notebook_mlp),
        Stage("ex1-cnn", "Exercise 1.2: the notebook's CNN on CIFAR-10", study=profile.notebook_cnn),
        Stage("ex1-resnet", "Exercise 1.2: the notebook's ResNetCNN on CIFAR-10", study=profile.notebook_resnet),
        Stage("mlp-depth", "Plain vs residual MLPs over depth on MNIST", study=profile.mlp_depth),
        Stage("conv-depth", "Plain vs residual conv nets over depth on CIFAR-10", study=profile.conv_depth),
        *analysis_stages(profile),  # each instrument's, from its registration (reslab.lab.instruments)
    ]
