"""The lab's honest clock (issue 22): the time left is this machine's pace times the work left, from the stages run
here or a reference workload timed here; fake paces, no timing."""

from __future__ import annotations

import io

import pytest

from reslab.lab.pace import pace, remaining_seconds
from reslab.lab.plan import plan
from reslab.lab.profiles import PROFILE_TABLE
from reslab.lab.run import _Overall
from reslab.lab.stages import Stage

WORK = {"a": 10.0, "b": 30.0, "c": 60.0}


def test_before_any_stage_the_pace_is_the_reference_timed_here() -> None:
    assert pace([], reference_s=0.5) == 0.5
    assert remaining_seconds(["a", "b", "c"], WORK, [], reference_s=0.5) == pytest.approx(50.0)
    assert remaining_seconds(["a"], WORK, [], reference_s=None) is None  # no pace yet: "estimating"


def test_after_stages_the_pace_is_measured_here_and_the_reference_is_dropped() -> None:
    # stage a took 40 s for 10 units: 4 s a unit on this (slow) machine, whatever the reference said
    assert pace([(40.0, 10.0)], reference_s=0.5) == 4.0
    assert remaining_seconds(["b", "c"], WORK, [(40.0, 10.0)], reference_s=0.5) == pytest.approx(360.0)
    # re-estimated after each stage: a and b together, 100 s for 40 units
    assert remaining_seconds(["c"], WORK, [(40.0, 10.0), (60.0, 30.0)], 0.5) == pytest.approx(150.0)


def test_a_stage_without_units_gives_no_estimate() -> None:
    assert remaining_seconds(["a", "x"], WORK, [(40.0, 10.0)], 0.5) is None
    assert pace([(3.0, 0.0)], reference_s=None) is None  # stages of no work say nothing of the pace


def _line(overall: _Overall, index: int) -> str:
    out = overall.out
    assert isinstance(out, io.StringIO)
    out.seek(0), out.truncate()
    overall.begin(index, overall.stages[index - 1])
    return out.getvalue()


def test_the_progress_line_times_the_reference_once_then_follows_the_stages() -> None:
    stages = [Stage(name, name.upper()) for name in WORK]
    timed: list[float] = []
    overall = _Overall(stages, {}, WORK, io.StringIO(), reference=lambda: timed.append(1.5) or 1.5)
    assert "about 2 min 30 s left (from a reference workload timed here)" in _line(overall, 1)  # 1.5 s x 100 units
    assert "about 2 min 30 s left" in _line(overall, 1) and timed == [1.5]  # timed once
    overall.took["a"] = 40.0  # 4 s a unit here, whatever the reference said
    assert "about 6 min 00 s left (from the pace of 1 stage here)" in _line(overall, 2)
    overall.took["b"] = 60.0
    assert "about 2 min 30 s left (from the pace of 2 stages here)" in _line(overall, 3)  # 100 s / 40 units x 60
    assert timed == [1.5]
    bare = _Overall(stages, {}, {"a": 1.0}, io.StringIO(), reference=lambda: pytest.fail("timed without units"))
    assert "left" not in _line(bare, 1)


def test_every_profile_gives_every_stage_work_units() -> None:
    for profile in PROFILE_TABLE.values():
        if profile.work:
            assert {s.name for s in plan(profile)} <= set(profile.work), profile.name
            assert all(units > 0 for units in profile.work.values())
