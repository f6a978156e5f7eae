"""Loss landscapes along several random directions: each direction is its own cut (the first is the one a single
cut uses), the verdict uses all of them and states their spread, and a one-direction verdict says it is one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import tiny_cfg
from reslab.analyze.landscape import LandscapeSettings, Surface, filter_normalised_direction
from reslab.analyze.landscape_summary import sentences, stats_rows
from reslab.analyze.targets import resolve_targets
from reslab.errors import ConfigError


def _surfaces(data_dir, tmp_path, curves: dict[tuple[str, int], np.ndarray]) -> list[Surface]:
    cfgs = {name: tiny_cfg(data_dir, tmp_path, "model.depth=30", f"model.residual={name == 'res'}",
                           preset="res-mlp32") for name in ("plain", "res")}
    out = []
    for (name, d), loss in curves.items():
        target, = resolve_targets([str(_save(cfgs[name], tmp_path / f"{name}.yaml"))], at=("init",))
        assert target.label == name  # a config file is labelled by its stem
        out.append(Surface(target, np.linspace(-1, 1, len(loss)), loss[:, None], np.zeros((len(loss), 1)), 62, 0.1, d))
    return out


def _save(cfg, path):
    from reslab.config import dump_yaml
    path.write_text(dump_yaml(cfg))
    return path


def test_settings_check_directions() -> None:
    assert LandscapeSettings(directions=3).cuts == 3 and LandscapeSettings(dims=2).cuts == 1
    with pytest.raises(ConfigError, match="--directions must be >= 1"):
        LandscapeSettings(directions=0)
    with pytest.raises(ConfigError, match="and 1 with --dims 2"):
        LandscapeSettings(dims=2, directions=2)


def test_direction_axes_are_independent_and_the_first_is_the_single_cuts() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    d0, d1 = (filter_normalised_direction(model, 0, axis) for axis in (0, 1))
    assert not torch.allclose(d0["0.weight"], d1["0.weight"])
    torch.testing.assert_close(d0["0.weight"], filter_normalised_direction(model, 0, 0)["0.weight"])


def test_verdict_states_its_directions(data_dir, tmp_path) -> None:
    bowl = np.linspace(-1, 1, 9) ** 2 + 0.5
    bumpy = bowl + 0.3 * np.cos(np.arange(9) * np.pi)  # alternating: many minima, half the second differences < 0
    one = _surfaces(data_dir, tmp_path, {("plain", 1): bumpy, ("res", 1): bowl})
    text = " ".join(sentences(stats_rows(one, LandscapeSettings(points=9)), LandscapeSettings(points=9)))
    assert "From a single 1-D direction (one random draw" in text
    three = _surfaces(data_dir, tmp_path, {("plain", 1): bumpy, ("plain", 2): bumpy, ("plain", 3): bowl,
                                           ("res", 1): bowl, ("res", 2): bowl, ("res", 3): bowl})
    settings = LandscapeSettings(points=9, directions=3)
    rows = stats_rows(three, settings)
    assert [r["direction"] for r in rows] == [1, 2, 3, 1, 2, 3]
    text = " ".join(sentences(rows, settings))
    assert "Over 3 random directions" in text and "single" not in text
    assert "residual smoother by convexity in 2 of 3" in text


def test_the_learned_pair_is_read_from_the_depth_runs(tmp_path) -> None:
    from dataclasses import replace

    import yaml

    from reslab.analyze.instruments_geometry import has_learned_pair, learned_pair
    from reslab.lab.profiles import QUICK

    runs = []
    for depth in (2, 8, 32):
        for residual in (False, True):
            run = tmp_path / f"d{depth}-{residual}"
            run.mkdir()
            (run / "config.yaml").write_text(yaml.safe_dump({"model": {"depth": depth, "residual": residual}}))
            runs.append(str(run))

    class Lab:
        profile = QUICK

        def depth_runs(self, seed: int = 0) -> list[str]:
            return runs

    assert learned_pair(Lab()) == [str(tmp_path / "d8-False"), str(tmp_path / "d8-True")]
    assert has_learned_pair(QUICK) and not has_learned_pair(replace(QUICK, learned_depth_mlp=32))
    assert not has_learned_pair(replace(QUICK, learned_depth_mlp=5))  # not a depth of the study
    Lab.profile = replace(QUICK, learned_depth_mlp=4)
    with pytest.raises(ConfigError, match="no finished plain/residual pair at depth 4"):
        learned_pair(Lab())
