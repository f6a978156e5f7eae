"""A lab folder whose stage folders are links (issue 19, item 3): the lab never deletes, renames or writes through
a link out of its folder; it refuses with one line, and the link's target is left as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.damage import tree
from reslab.cli import main
from reslab.errors import ConfigError
from reslab.lab.folder import LabFolder


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """tmp/lab (a started lab: lab.json) and tmp/victim (a user's folder with files)."""
    (tmp_path / "victim" / "gradflow").mkdir(parents=True)
    (tmp_path / "victim" / "gradflow" / "thesis.tex").write_text("years of work\n")
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "lab.json").write_text(json.dumps(
        {"format": "reslab-lab-1", "profile": "quick", "mnist": "mnist", "cifar": "cifar10",
         "data_dir": str(tmp_path / "nothing"), "stages": {}}))
    return tmp_path


@pytest.mark.parametrize("link", ["analyses", "sweeps", "report", "analyses/gradflow", "analyses/.gradflow.building",
                                  "sweeps/mlp-depth"])
def test_a_stage_folder_that_is_a_link_is_refused(root: Path, capsys: pytest.CaptureFixture, link: str) -> None:
    path = root / "lab" / link
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(root / "victim" / ("gradflow" if "/" in link else ""))
    before = tree(root)
    code = main(["lab", "--profile", "quick", "--data-dir", str(root / "nothing"), "--out", str(root / "lab")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "is a link" in err[0] and "Traceback" not in err[0], err
    assert tree(root) == before


def test_building_a_stage_never_deletes_through_a_link(root: Path) -> None:
    lab = LabFolder(root / "lab")
    (root / "lab" / "analyses").symlink_to(root / "victim")  # made after the lab checked its folder
    before = tree(root)
    with pytest.raises(ConfigError, match="is a link"):
        with lab.building(lab.analysis("gradflow")):
            pass
    assert tree(root) == before
    (root / "lab" / "analyses").unlink()
    (root / "lab" / "analyses").mkdir()
    with lab.building(lab.analysis("gradflow")) as temp:  # the lab's own folders: built and renamed as before
        temp.mkdir()  # the stage makes it (the analysis writer)
        (temp / "analysis.json").write_text("{}")
    assert (root / "lab" / "analyses" / "gradflow" / "analysis.json").is_file()
    assert (root / "victim" / "gradflow" / "thesis.tex").read_text() == "years of work\n"
