"""Wording rules of the lab's sentences: no interval of identical values, "n of n" with its sign-test p, and
agreement with the notebook claimed only when the whole interval is within the tolerance."""

from __future__ import annotations

from reslab.lab.conclude import ci, loss, pct, sign_test
from reslab.lab.notebook import exercise_mlp
from reslab.status import RunStatus
from reslab.sweep import RunRow


def test_an_interval_of_identical_values_says_all_seeds_equal() -> None:
    assert ci(0.1135, 0.1135, n=3) == "11.3% (all 3 seeds equal)"
    assert ci(2.301, 2.301, loss) == "2.301 (all seeds equal)"
    assert ci(0.11301, 0.11349) == "11.3% (the interval is narrower than the rounding)"
    assert ci(0.11, 0.12) == "11.0% to 12.0%"
    assert " to " not in ci(0.5, 0.5, pct, n=2)


def test_n_of_n_seeds_carries_its_sign_test_p() -> None:
    assert sign_test(3, 3) == "3 of 3 (sign test p = 0.25)"
    assert sign_test(10, 10) == "10 of 10 (sign test p = 0.002)"
    assert sign_test(2, 3) == "2 of 3 (sign test p = 1)"


def _runs(values: list[tuple[float, float]]) -> list[RunRow]:
    return [RunRow(key=f"seed={i}", values={}, seed=i, status=RunStatus.FINISHED,
                   metrics={"final_val_acc": v, "final_train_loss": lo, "test_acc": v}) for i, (v, lo) in
            enumerate(values)]


def test_agreement_with_the_notebook_only_when_the_interval_is_inside_the_tolerance() -> None:
    tight = " ".join(exercise_mlp(_runs([(0.919, 0.251), (0.921, 0.249), (0.920, 0.250)]), None).sentences)
    assert "the accuracy agrees (its 95% CI lies within 1.0% of it)" in tight
    assert "the loss agrees (its 95% CI lies within 0.050 of it)" in tight
    wide = " ".join(exercise_mlp(_runs([(0.905, 0.25), (0.935, 0.25)]), None).sentences)
    assert "the accuracy is consistent with it, not resolved at n=2" in wide and "accuracy agrees" not in wide
    assert "the loss agrees" in wide  # both seeds at 0.25: a zero-width interval inside the tolerance
    off = " ".join(exercise_mlp(_runs([(0.80, 0.6), (0.81, 0.6)]), None).sentences)
    assert "differs by" in off and "consistent" not in off.split("the accuracy")[1].split(",")[0]


def _lab_conclusions():
    """bench/lab_conclusions.py, the script that writes the README's generated section, as a module."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("lab_conclusions",
                                                  Path(__file__).parents[2] / "bench" / "lab_conclusions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_section_is_generated_from_a_lab_folder(tmp_path) -> None:
    import json

    module = _lab_conclusions()
    lab = tmp_path / "lab"
    (lab / "report").mkdir(parents=True)
    (lab / "lab.json").write_text(json.dumps({"mnist": "mnist", "cifar": "cifar10"}))
    (lab / "report" / "report.json").write_text(json.dumps({
        "profile": "quick", "setups": {"mlp-depth": "Initialisation: he, torch-default."},
        "shortcuts": ["3 epochs."],
        "findings": [{"section": "mlp-depth (across inits)", "sentences": ["Measured 66.6% under he."]},
                     {"section": "lesion-mlp", "sentences": ["not on the front page"]}]}))
    text = module.section(lab)
    assert text.startswith("## What the lab concludes, and under which assumptions")
    assert "Assumptions of `mlp-depth`: Initialisation: he, torch-default." in text and "Shortcut: 3 epochs." in text
    assert "**mlp-depth (across inits)**: Measured 66.6% under he." in text and "front page" not in text
    assert "commit unknown" in text
    assert module.main([str(tmp_path / "nothing")]) == 2


def test_the_readme_section_names_no_machine_path_and_replaces_itself(tmp_path) -> None:
    import json

    module = _lab_conclusions()
    lab = tmp_path / "lab"
    (lab / "report").mkdir(parents=True)
    (lab / "lab.json").write_text(json.dumps({"mnist": "mnist", "cifar": "imagefolder:/srv/data/cifar10-jpeg.zip"}))
    (lab / "report" / "report.json").write_text(json.dumps({"profile": "quick", "findings": [
        {"section": "ex1-mlp", "sentences": ["Measured 91.9%."]}]}))
    text = module.section(lab)
    assert "CIFAR-10: imagefolder:.../cifar10-jpeg.zip)" in text and "/srv/" not in text and "MNIST: mnist;" in text
    readme = tmp_path / "README.md"
    readme.write_text("# reslab\n\nintro\n\n" + module.HEADING + "\n\nold numbers\n\n## Where to read on\n\nlinks\n")
    assert module.main([str(lab), "--write", str(readme)]) == 0
    assert readme.read_text() == "# reslab\n\nintro\n\n" + text + "\n## Where to read on\n\nlinks\n"
    assert module.main([str(lab), "--write", str(readme)]) == 0 and readme.read_text().count(module.HEADING) == 1
    readme.write_text("# no section here\n")
    assert module.main([str(lab), "--write", str(readme)]) == 2 and readme.read_text() == "# no section here\n"
    assert module.main([str(lab), "--write"]) == 2
