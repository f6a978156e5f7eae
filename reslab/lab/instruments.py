"""The lab's analysis stages, made from the instruments' registrations: each `LabStage` of each instrument becomes a
`Stage` that runs it on the lab's trained runs, into LAB/analyses/<stage>.

`LabRuns` adapts the lab's context to `reslab.analyze.registry.LabSource`, the little the instruments may ask.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reslab.analyze.catalog import instruments
from reslab.analyze.registry import Common, Instrument, LabStage, run_call
from reslab.lab.profiles import Profile
from reslab.lab.stages import LabContext, Stage, conv_pair, depth_runs, mlp_pair, runs_of


class LabRuns:
    """A lab stage's view of the lab: its profile, device, datasets and trained runs."""

    def __init__(self, ctx: LabContext) -> None:
        self.ctx = ctx

    @property
    def profile(self) -> Any:
        return self.ctx.profile

    @property
    def device(self) -> str:
        return self.ctx.device

    def settings(self, which: str) -> dict[str, Any]:
        return self.ctx.settings(which)

    def mlp_pair(self, seed: int = 0) -> list[str]:
        return mlp_pair(self.ctx, seed)

    def conv_pair(self, seed: int = 0) -> list[str]:
        return conv_pair(self.ctx, seed)

    def depth_runs(self, seed: int = 0) -> list[str]:
        return depth_runs(self.ctx, self.ctx.profile.mlp_depth, "model.depth", seed)

    def runs_of(self, study: str, seed: int | None = 0) -> list[str]:
        return runs_of(self.ctx, study, seed)


def _runner(instrument: Instrument, stage: LabStage) -> Any:
    def measure(ctx: LabContext, out: Path) -> None:
        runs = LabRuns(ctx)
        run_call(instrument, stage.call(runs), Common(device=runs.device, out=out, progress=False))

    measure.__doc__ = stage.call.__doc__
    return measure


def analysis_stages(profile: Profile) -> list[Stage]:
    """Every registered instrument's lab stages the profile runs, in the registry's order."""
    return [Stage(stage.name, stage.title, measure=_runner(instrument, stage))
            for instrument in instruments() for stage in instrument.lab if stage.when(profile)]
