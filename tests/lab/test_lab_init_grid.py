"""The init x norm x residual grid's conclusions, on synthetic typed rows: an effect under one init only is said to
hold under that init only, one under both is said to hold across inits, a plain net that learns under He init is
reported as learning, degradation is found where the plain net learns, and a study too short to decide says so."""

from __future__ import annotations

from test_lab_conclusions import check_sourced

from reslab.lab.grid import grid_findings
from reslab.sweep import CellRow, PairRow


def cell(init: str, depth: int, residual: bool, acc: float, loss: float, half: float = 0.01,
         train_acc: float | None = None, norm: str = "none") -> CellRow:
    train_acc = 1 - loss / 3 if train_acc is None else train_acc
    return CellRow(values={"model.depth": depth, "model.init": init, "model.norm": norm, "model.residual": residual},
                   n=3, n_diverged=0,
                   stats={"test_acc_mean": acc, "test_acc_ci_low": acc - half, "test_acc_ci_high": acc + half,
                          "final_train_loss_mean": loss, "final_train_loss_ci_low": loss - 0.02,
                          "final_train_loss_ci_high": loss + 0.02, "final_train_acc_mean": train_acc,
                          "final_train_acc_ci_low": train_acc - 0.01, "final_train_acc_ci_high": train_acc + 0.01})


def pair(init: str, depth: int, diff: float, half: float = 0.02, norm: str = "none") -> PairRow:
    return PairRow(values={"model.depth": depth, "model.init": init, "model.norm": norm}, n=3, seeds=(0, 1, 2),
                   stats={"test_acc_diff_mean": diff, "test_acc_diff_ci_low": diff - half,
                          "test_acc_diff_ci_high": diff + half, "test_acc_residual_wins": 1.0 if diff > 0 else 0.0,
                          "final_train_loss_diff_mean": -0.1, "final_train_loss_diff_ci_low": -0.12,
                          "final_train_loss_diff_ci_high": -0.08})


def _grid(he_plain_16: float, he_diff_16: float) -> dict[str, tuple]:
    """torch-default: the plain net is at chance at depth 16 and the residual one wins; He: as given."""
    aggregate = [cell("torch-default", 2, False, 0.92, 0.30), cell("torch-default", 2, True, 0.93, 0.28),
                 cell("torch-default", 8, False, 0.77, 0.83), cell("torch-default", 8, True, 0.93, 0.25),
                 cell("torch-default", 16, False, 0.1135, 2.301), cell("torch-default", 16, True, 0.92, 0.26),
                 cell("he", 2, False, 0.93, 0.25), cell("he", 2, True, 0.94, 0.22),
                 cell("he", 16, False, he_plain_16, 1.0 if he_plain_16 > 0.5 else 2.3),
                 cell("he", 16, True, he_plain_16 + he_diff_16, 0.3)]
    paired = [pair("torch-default", 2, 0.01), pair("torch-default", 8, 0.16), pair("torch-default", 16, 0.8065),
              pair("he", 2, 0.01), pair("he", 16, he_diff_16)]
    return dict(grid_findings(aggregate, paired, depth_key="model.depth", classes=10, what="MLP"))


def test_an_effect_under_one_init_only_is_said_to_hold_under_that_init_only() -> None:
    found = _grid(he_plain_16=0.666, he_diff_16=0.0)
    across = found["across inits"]
    check_sourced(across)
    text = " ".join(across.sentences)
    assert ("At norm none, depth 16 the plain MLP is at chance under torch-default (11.3%) but learns under he "
            "(66.6%): its failure there is one of the init, not of depth alone.") in text
    assert ("At norm none, depth 16 the comparison depends on the init: no difference shown under he; residual "
            "better under torch-default.") in text
    assert "no difference shown at depth 2 under every init measured (he and torch-default)" in text
    assert across.front and "one of the init" in across.front[0]
    he = found["init he, norm none"]
    check_sourced(he)
    assert "The plain MLP (init he, norm none) trains at every depth measured" in " ".join(he.sentences)


def test_an_effect_under_both_inits_is_said_to_hold_across_inits() -> None:
    found = _grid(he_plain_16=0.1135, he_diff_16=0.8)
    text = " ".join(found["across inits"].sentences)
    check_sourced(found["across inits"])
    assert "residual better at depth 16 under every init measured (he and torch-default)" in text
    assert "depends on the init" not in text and "one of the init" not in text


def test_degradation_is_found_where_the_plain_net_still_learns() -> None:
    found = _grid(he_plain_16=0.666, he_diff_16=0.0)
    f = found["degradation"]
    check_sourced(f)
    text = " ".join(f.sentences)
    assert ("Where the plain MLP (init torch-default, norm none) still learns (depth 2 and 8), its training loss "
            "goes 0.300 -> 0.830 and its test accuracy 92.0% -> 77.0%: the deeper plain net has the higher "
            "training loss") in text
    assert "a failure to optimise, not overfitting" in text
    flat = [cell("he", 2, False, 0.93, 0.25), cell("he", 8, False, 0.925, 0.25)]
    g = dict(grid_findings(flat, [], depth_key="model.depth", classes=10, what="MLP"))["degradation"]
    assert "no degradation is shown at these seeds" in " ".join(g.sentences)
    overfit = [cell("he", 2, False, 0.93, 0.25), cell("he", 8, False, 0.80, 0.10)]
    g = dict(grid_findings(overfit, [], depth_key="model.depth", classes=10, what="MLP"))["degradation"]
    assert "a failure to generalise (overfitting)" in " ".join(g.sentences)


def test_a_study_too_short_to_decide_says_so() -> None:
    rows = [cell("he", 1, False, 0.26, 1.95, norm="batch"), cell("he", 1, True, 0.30, 1.90, norm="batch"),
            cell("he", 3, False, 0.27, 1.96, norm="batch"), cell("he", 3, True, 0.33, 1.85, norm="batch")]
    pairs = [pair("he", 1, 0.04, 0.01, norm="batch"), pair("he", 3, 0.06, 0.01, norm="batch")]
    f = dict(grid_findings(rows, pairs, depth_key="model.depth", classes=10, what="conv net"))[
        "init he, norm batch"]
    check_sourced(f)
    text = " ".join(f.sentences)
    assert "Too short to decide: no conv net of this study has halved the training loss" in text
    assert "fails to optimise" not in text and "overfitting)" not in text
