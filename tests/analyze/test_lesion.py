"""`reslab analyze lesion`: its errors against blocks deleted and swapped by hand, the draws, the folder it
writes, and one-line errors for runs it cannot measure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers.cli import fails_one_line
from helpers.training import tiny_cfg
from helpers.fakedata import learnable_images
from reslab import files
from reslab.analyze.lesion import Lesion, block_infos, lesioned, plan
from reslab.cli import main
from reslab.config import dump_yaml, resolve
from reslab.models import build_model
from reslab.train import train

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
TWIN = ["model.depth=4", "model.width=16", "train.epochs=1", "train.threads=1", "gradflow.every=0"]


@pytest.fixture(scope="module")
def twins(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A trained plain/residual MLP pair of 4 blocks on the tiny generated MNIST (one epoch each)."""
    runs = tmp_path_factory.mktemp("runs")
    plain = train(tiny_cfg(data_dir, runs, *TWIN, "model.residual=false", preset="res-mlp32"), progress=False)
    residual = train(tiny_cfg(data_dir, runs, *TWIN, preset="res-mlp32"), progress=False)
    return plain.run_dir, residual.run_dir


def _trained(run: Path, residual: bool) -> nn.Module:
    model = build_model("mlp", input_shape=(1, 28, 28), num_classes=10, width=16, depth=4, residual=residual)
    model.load_state_dict(torch.load(run / "best.pt", weights_only=False)["model"])
    return model.eval()


def _error_by_hand(model: nn.Module) -> float:
    images, labels = learnable_images(200, seed=1)  # the generated test set, regenerated
    x = (torch.from_numpy(images).float() / 255 - MNIST_MEAN) / MNIST_STD
    with torch.no_grad():
        return int((model(x).argmax(1) != torch.from_numpy(labels)).sum()) / len(labels)


def _cli(out: Path, *argv: str, data_dir: Path) -> list[str]:
    assert main(["analyze", "lesion", *argv, "--data-dir", str(data_dir), "--set", "data.val_size=100",
                 "--out", str(out), "--quiet", "--device", "cpu", "--draws", "3"]) == 0
    return [r for r in files.read_csv(out / "lesion.csv")]


def test_errors_equal_blocks_deleted_and_swapped_by_hand(twins: tuple[Path, Path], data_dir: Path,
                                                         tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    plain_run, res_run = twins
    rows = _cli(tmp_path / "out", str(plain_run), str(res_run), data_dir=data_dir)
    for run, residual in ((plain_run, False), (res_run, True)):
        mine = {(r["experiment"], r["deleted"], r["swapped"]): float(r["error"]) for r in rows
                if r["model"] == f"{run.name}@best"}
        model = _trained(run, residual)
        assert mine[("base", "", "")] == pytest.approx(_error_by_hand(model), abs=1e-9)
        model.blocks[2].forward = F.relu  # block 3 deleted: the identity shortcut, then the post-act ReLU
        assert mine[("single", "3", "")] == pytest.approx(_error_by_hand(model), abs=1e-9)
        model = _trained(run, residual)
        for i in (0, 3):  # blocks 1 and 4 deleted together
            model.blocks[i].forward = F.relu
        assert mine[("delete", "1 4", "")] == pytest.approx(_error_by_hand(model), abs=1e-9)
        model = _trained(run, residual)
        model.blocks[1], model.blocks[3] = model.blocks[3], model.blocks[1]
        swapped = _error_by_hand(model)
        assert mine[("swap", "", "2-4")] == pytest.approx(swapped, abs=1e-9)
        assert mine[("single", "3", "")] != mine[("base", "", "")] or mine[("swap", "", "2-4")] != \
            mine[("base", "", "")], "a lesion that changes nothing cannot test the comparison"
    out = capsys.readouterr().out.strip().splitlines()
    assert Path(out[-1]) == tmp_path / "out"
    assert any("Veit et al. expect a plain net" in line for line in out)
    assert any("Veit et al. expect for a ResNet" in line for line in out)
    record = json.loads((tmp_path / "out" / "analysis.json").read_text())
    assert record["kind"] == "lesion" and record["settings"]["images"] == 200
    key = f"{res_run.name}@best"
    assert record["findings"][f"{key}.base_error"] == pytest.approx(_error_by_hand(_trained(res_run, True)), abs=1e-6)
    assert {f"{key}.delete_k{k}" for k in (1, 2, 3, 4)} <= set(record["findings"])
    for name in ("lesion-k.png", "lesion-blocks.png", "lesion-summary.txt", "lesion-stats.csv"):
        assert (tmp_path / "out" / name).stat().st_size > 0, name


def test_draws_are_seeded_distinct_and_all_subsets_when_few() -> None:
    model = build_model("mlp", input_shape=(1, 4, 4), num_classes=3, width=4, depth=6, residual=True)
    blocks = block_infos(model)
    lesions = plan(blocks, draws=4, seed=0)
    assert lesions == plan(blocks, draws=4, seed=0) and lesions != plan(blocks, draws=4, seed=1)
    deleted = {k: [les.deleted for les in lesions if les.experiment == "delete" and les.k == k] for k in range(1, 7)}
    assert deleted[6] == [(1, 2, 3, 4, 5, 6)] and len(deleted[5]) == 4 and len(set(deleted[3])) == 4
    swaps = [les for les in lesions if les.experiment == "swap"]
    assert max(les.k for les in swaps) == 3
    for les in swaps:  # k disjoint pairs
        flat = [i for pair in les.swapped for i in pair]
        assert len(flat) == len(set(flat)) == 2 * les.k


def test_a_downsampling_block_deleted_is_option_a_and_never_swapped() -> None:
    torch.manual_seed(0)
    model = build_model("cifar-resnet", input_shape=(3, 16, 16), num_classes=10, depth=14, width=4).eval()
    blocks = block_infos(model)
    assert [b.downsamples for b in blocks] == [False, False, True, False, True, False]
    lesions = plan(blocks, draws=3, seed=0)
    swapped = {i for les in lesions for pair in les.swapped for i in pair}
    assert swapped <= {1, 2, 4, 6} and all(set(p) in ({1, 2},) for les in lesions for p in map(set, les.swapped))
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        intact = model(x)
        with lesioned(model, Lesion("single", 1, 1, (3,))):
            mine = model(x)
        block = model.stages[1][0]  # the first downsampling block: 4 -> 8 channels, stride 2, deleted by hand
        block.forward = lambda h: F.relu(torch.cat([h[:, :, ::2, ::2], torch.zeros_like(h[:, :, ::2, ::2])], 1))
        by_hand = model(x)
        del block.forward
    assert torch.equal(mine, by_hand) and not torch.allclose(mine, intact)
    with pytest.raises(RuntimeError, match="boom"), lesioned(model, Lesion("delete", 2, 1, (1, 3))):
        raise RuntimeError("boom")
    assert [type(m).__name__ for m in (model.stages[0][0], model.stages[1][0])] == ["Block", "Block"]


def test_bad_input_is_one_line_and_writes_nothing(data_dir: Path, tmp_path: Path, twins: tuple[Path, Path],
                                                  capsys: pytest.CaptureFixture) -> None:
    bare = tmp_path / "bare-run"
    bare.mkdir()
    (bare / "config.yaml").write_text(dump_yaml(resolve("res-mlp32")))
    seed_mlp = train(tiny_cfg(data_dir, tmp_path / "runs", "train.epochs=1"), progress=False).run_dir
    out = tmp_path / "never"
    common = ["--data-dir", str(data_dir), "--out", str(out), "--device", "cpu", "--quiet"]
    fails_one_line(capsys, ["analyze", "lesion", str(bare), *common], "has no best.pt (checkpoints present: none)")
    fails_one_line(capsys, ["analyze", "lesion", "res-mlp32", *common], "--at best needs a run folder")
    fails_one_line(capsys, ["analyze", "lesion", str(seed_mlp), *common], "has no blocks to delete")
    fails_one_line(capsys, ["analyze", "lesion", str(twins[1]), "--subset", "0", *common], "--subset must be in 1..200")
    fails_one_line(capsys, ["analyze", "lesion", str(twins[1]), "--draws", "0", *common], "--draws must be >= 1")
    assert not out.exists()


def test_the_runs_test_images_by_default_and_the_intact_error_is_the_runs(data_dir: Path, tmp_path: Path) -> None:
    result = train(tiny_cfg(data_dir, tmp_path / "runs", "model.depth=3", "model.width=16", "train.epochs=1",
                            "train.threads=1", "gradflow.every=0", "data.test_size=50", preset="res-mlp32"),
                   progress=False)
    out = tmp_path / "out"
    assert main(["analyze", "lesion", str(result.run_dir), "--at", "last", "--data-dir", str(data_dir), "--set",
                 "data.val_size=100", "--out", str(out), "--quiet", "--device", "cpu", "--draws", "2"]) == 0
    stats, = files.read_csv(out / "lesion-stats.csv")
    assert int(stats["images"]) == 50
    assert float(stats["base_error"]) == pytest.approx(1 - result.summary["test_acc"], abs=1e-9)
    assert "the test images the runs were tested on" in (out / "lesion-summary.txt").read_text()


def _stats(skip: str, base: float, single: float | str, pair: str = "p vs r") -> dict:
    return {"model": skip, "skip": skip, "pair": pair, "base_error": base, "chance": 0.9, "single_mean": single}


@pytest.mark.parametrize("plain_single, res_single, words", [
    (0.85, 0.12, ["the plain net collapses to chance", "the residual net degrades gracefully", "as Veit et al."]),
    (0.30, 0.12, ["does not collapse to chance", "degrades gracefully", "unlike Veit et al.'s contrast"]),
    (0.85, 0.60, ["collapses to chance", "does not degrade gracefully", "unlike Veit et al.'s contrast"])])
def test_the_plain_twins_collapse_is_set_beside_the_residual_twins_degradation(plain_single: float, res_single: float,
                                                                                words: list[str]) -> None:
    from reslab.analyze.lesion_summary import pair_sentences

    # gaps to chance: plain 0.9 - 0.1 = 0.8, residual 0.9 - 0.1 = 0.8; 0.85 is 94% of the way, 0.12 is 2.5%
    (sentence,) = pair_sentences({"stats": [_stats("no", 0.1, plain_single), _stats("yes", 0.1, res_single)]})
    assert sentence.startswith("p vs r, deleting one block: the plain twin's error goes from 10.00% to ")
    assert all(w in sentence for w in words), sentence
    (untestable,) = pair_sentences({"stats": [_stats("no", 0.88, 0.9), _stats("yes", 0.1, 0.12)]})
    assert "near chance before any deletion" in untestable
    assert pair_sentences({"stats": [_stats("no", 0.1, 0.85, pair="")]}) == []


def test_several_pairs_give_intervals_over_seeds() -> None:
    from scipy import stats as scipy_stats

    from reslab.analyze.lesion_summary import spread_sentences

    rows = [_stats("no", 0.1, 0.82, "a"), _stats("yes", 0.1, 0.18, "a"),  # gaps 0.8: plain 90%, residual 10%
            _stats("no", 0.1, 0.74, "b"), _stats("yes", 0.1, 0.14, "b")]  # plain 80%, residual 5%
    plain, residual = spread_sentences({"stats": rows})
    rises = [0.72, 0.64]
    half = scipy_stats.t.ppf(0.975, 1) * scipy_stats.tstd(rises) / 2 ** 0.5
    assert f"95% t interval of the mean {100 * (0.68 - half):.2f}% to {100 * (0.68 + half):.2f}%" in plain
    diffs = [(0.82 - 0.1) / 0.8 - (0.18 - 0.1) / 0.8, (0.74 - 0.1) / 0.8 - (0.14 - 0.1) / 0.8]  # 0.8 and 0.75
    mean, half = sum(diffs) / 2, scipy_stats.t.ppf(0.975, 1) * scipy_stats.tstd(diffs) / 2 ** 0.5
    assert (f"Paired over the 2 plain/residual pairs, deleting one block takes the plain twin {mean:.0%} of the gap "
            f"to chance further than the residual twin (95% t interval {mean - half:.0%} to {mean + half:.0%}; 2 of 2 "
            "pairs further).") in residual
    assert "Paired over" not in plain
