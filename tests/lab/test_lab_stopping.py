"""The lab report's training-length sentence and per-cell table: plateau against cap (train.until: plateau), or how
many fixed-epoch runs were still improving."""

from __future__ import annotations

from pathlib import Path

from reslab import files
from reslab.lab.profiles import Study
from reslab.lab.stopping import training_length
from reslab.runs import RunFolder
from reslab.status import RunStatus
from reslab.sweep import RunRow


def _run(tmp: Path, name: str, values: dict, losses: list[float], stopped: str | None) -> RunRow:
    folder = RunFolder(tmp / name)
    folder.path.mkdir()
    folder.write_metrics([{"epoch": i + 1, "train_loss": x} for i, x in enumerate(losses)])
    files.write_json(folder.summary, {"status": "finished"} | ({"stopped": stopped} if stopped else {}))
    return RunRow(key=name, values=values, seed=0, status=RunStatus.FINISHED, run_folder=folder.path)


def _study(settings: dict) -> Study:
    return Study("mlp-depth", "plain-mlp8", "mnist", settings, {"model.depth": [2, 8], "model.residual": [False]},
                 seeds=2)


def test_plateau_runs_are_counted_per_cell(tmp_path: Path) -> None:
    shallow, deep = {"model.depth": 2, "model.residual": False}, {"model.depth": 8, "model.residual": False}
    runs = [_run(tmp_path, "a", shallow, [1.0, 0.5, 0.3], "cap"),
            _run(tmp_path, "b", shallow, [1.0, 0.9, 0.9], "plateau"),
            _run(tmp_path, "c", deep, [2.3, 2.3, 2.3], "plateau"),
            _run(tmp_path, "d", deep, [2.3, 2.3, 2.3], "plateau")]
    sentence, table = training_length(runs, _study({"train.until": "plateau", "train.epochs": 3,
                                                    "train.patience": 2, "train.min_delta": 0.001}))
    assert "3 of 4 finished runs reached such a plateau, 1 hit the cap of 3 epochs" in sentence
    assert "by more than 0.001 for 2 epochs in a row), at most 3 epochs" in sentence
    assert "1 of 4 finished runs were still improving" in sentence  # a: 0.3 < 0.98 * 0.5
    assert table is not None and list(table.header) == ["depth", "residual", "runs", "plateau", "cap",
                                                         "still improving"]
    assert [list(r) for r in table.rows] == [["2", "False", "2", "1", "1", "1"], ["8", "False", "2", "2", "0", "0"]]


def test_a_fixed_epoch_study_keeps_its_sentence_and_has_no_table(tmp_path: Path) -> None:
    runs = [_run(tmp_path, "a", {"model.depth": 2}, [1.0, 0.5], None), _run(tmp_path, "b", {"model.depth": 8},
                                                                           [1.0, 0.999], None)]
    sentence, table = training_length(runs, _study({"train.epochs": 2}))
    assert table is None
    assert sentence == ("Training: a fixed 2 epochs, not until the loss stops improving; 1 of 2 finished runs were "
                        "still improving at their last epoch (training loss down by more than 2% in it): those are "
                        "not converged.")
