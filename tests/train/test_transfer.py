"""Transfer (issue 20 §3): train.init_from, keep_head, freeze, optim.head_lr, data.classes, top-5 accuracy."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from helpers.training import assert_same_run, interrupted_run, strict_json, tiny_cfg
from reslab.config import OptimConfig
from reslab.errors import CheckpointError, ConfigError, ReslabError
from reslab.evaluate import evaluate
from reslab.models import build_model
from reslab.optim import make_optimizer, set_lr
from reslab.protocols import Observer
from reslab.runs import RunFolder
from reslab.train import train
from reslab.transfer import apply_freeze, model_stages

FIRST, SECOND = "data.classes=[0,1,2,3,4]", "data.classes=[5,6,7,8,9]"
CONV = ("data.dataset=mnist", "data.augment=false", "model.depth=8", "model.width=4", "train.epochs=1")


class Snapshot(Observer):
    """The model's weights when training starts and when it ends."""

    def on_start(self, run_dir: Path, model: nn.Module, cfg: object, start_step: int) -> None:
        self.model = model
        self.start = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def on_end(self, summary: dict) -> None:
        self.end = {k: v.detach().clone() for k, v in self.model.state_dict().items()}


@pytest.fixture(scope="module")
def source(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seed-mlp trained on classes 0-4 of the generated MNIST."""
    return train(tiny_cfg(data_dir, tmp_path_factory.mktemp("src"), FIRST, "train.epochs=1"), progress=False).run_dir


def test_init_from_takes_all_but_the_head(data_dir: Path, tmp_path: Path, source: Path) -> None:
    snap = Snapshot()
    run = train(tiny_cfg(data_dir, tmp_path, SECOND, f"train.init_from={source}", "train.epochs=1"),
                observers=[snap], progress=False).run_dir
    best = RunFolder(source).load_checkpoint("best")["model"]
    torch.manual_seed(0)  # what build_for does with train.seed 0: the new head is the one a fresh run gets
    fresh = build_model("seed-mlp", input_shape=(1, 28, 28), num_classes=5, width=16, depth=2)
    for key, value in snap.start.items():
        expected = fresh.state_dict()[key] if key.startswith("head.") else best[key]
        assert torch.equal(value, expected), key
    summary = strict_json(RunFolder(run).summary)
    assert summary["init_from"]["sha256"] == hashlib.sha256(RunFolder(source).best.read_bytes()).hexdigest()
    assert summary["init_from"]["file"] == str(RunFolder(source).best)
    assert len(summary["classes"]) == 5 and summary["classes"][0].startswith("5")
    assert yaml.safe_load(RunFolder(run).config.read_text())["train"]["init_from"] == str(source)


def test_keep_head_keeps_the_head(data_dir: Path, tmp_path: Path, source: Path) -> None:
    snap = Snapshot()
    train(tiny_cfg(data_dir, tmp_path, SECOND, f"train.init_from={source}", "train.keep_head=true", "train.epochs=1"),
          observers=[snap], progress=False)
    best = RunFolder(source).load_checkpoint("best")["model"]
    assert all(torch.equal(snap.start[k], best[k]) for k in best)


@pytest.mark.parametrize(("extra", "message"), [
    (("model.width=8",), r"fc1.weight has shape \(16, 784\) there, \(8, 784\) here"),
    (("model.depth=3",), "it lacks hidden_layers.2.weight"),
    (("train.keep_head=true", "data.classes=[5,6,7]"), "head.weight has shape"),
])
def test_a_mismatch_names_the_first_key(data_dir: Path, tmp_path: Path, source: Path, extra: tuple, message: str
                                        ) -> None:
    with pytest.raises(CheckpointError, match=message) as info:
        train(tiny_cfg(data_dir, tmp_path, SECOND, f"train.init_from={source}", *extra), progress=False)
    assert "\n" not in str(info.value)


def test_missing_and_corrupt_sources_are_one_line(data_dir: Path, tmp_path: Path, source: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(RunFolder(source).best.read_bytes()[:100])
    empty = tmp_path / "empty-run"
    empty.mkdir()
    for given, message in ((tmp_path / "nowhere", "does not exist"), (bad, "corrupt"), (empty, "holds no checkpoint")):
        with pytest.raises(CheckpointError, match=message) as info:
            train(tiny_cfg(data_dir, tmp_path / "runs", f"train.init_from={given}"), progress=False)
        assert "\n" not in str(info.value)


def test_a_plain_state_dict_file_loads(data_dir: Path, tmp_path: Path, source: Path) -> None:
    weights = tmp_path / "weights.pt"
    torch.save(RunFolder(source).load_checkpoint("best")["model"], weights)
    snap = Snapshot()
    train(tiny_cfg(data_dir, tmp_path, SECOND, f"train.init_from={weights}", "train.epochs=1"), observers=[snap],
          progress=False)
    assert torch.equal(snap.start["fc1.weight"], torch.load(weights)["fc1.weight"])


def test_init_from_is_not_read_again_on_resume(data_dir: Path, tmp_path: Path, source: Path) -> None:
    """A run interrupted and resumed equals the straight run, even with the source gone (read at the start only)."""
    copy = tmp_path / "source"
    shutil.copytree(source, copy)
    extra = (SECOND, f"train.init_from={copy}")
    straight = train(tiny_cfg(data_dir, tmp_path / "straight", *extra), progress=False).run_dir
    run = interrupted_run(data_dir, tmp_path / "runs", 21, *extra)
    shutil.rmtree(copy)
    train(tiny_cfg(data_dir, tmp_path / "runs", *extra), resume=run, progress=False)
    assert_same_run(run, straight)
    assert strict_json(RunFolder(run).summary)["init_from"] == strict_json(RunFolder(straight).summary)["init_from"]


def test_freeze_all_but_head_moves_only_the_head(data_dir: Path, tmp_path: Path) -> None:
    snap = Snapshot()
    train(tiny_cfg(data_dir, tmp_path, *CONV, "train.freeze=all-but-head", preset="plain20"), observers=[snap],
          progress=False)
    moved = {k for k in snap.start if not torch.equal(snap.start[k], snap.end[k])}
    assert moved == {"head.weight", "head.bias"}  # batch-norm statistics included: frozen parts run in eval mode


def test_freeze_up_to_a_stage(data_dir: Path, tmp_path: Path) -> None:
    snap = Snapshot()
    train(tiny_cfg(data_dir, tmp_path, *CONV, "train.freeze=1", preset="plain20"), observers=[snap], progress=False)
    moved = {k.split(".")[0] + ("." + k.split(".")[1] if k.startswith("stages") else "")
             for k in snap.start if not torch.equal(snap.start[k], snap.end[k])}
    assert moved == {"stages.1", "stages.2", "head"}
    with pytest.raises(ConfigError, match=r"train.freeze must be a stage in 0..3 for this model"):
        train(tiny_cfg(data_dir, tmp_path, *CONV, "train.freeze=4", preset="plain20"), progress=False)
    with pytest.raises(ConfigError, match="train.freeze must be none, all-but-head or a stage number"):
        tiny_cfg(data_dir, tmp_path, "train.freeze=some")


@pytest.mark.parametrize(("name", "args", "count"), [
    ("mlp", {"depth": 3}, 4), ("convnet", {"stages": 3}, 4), ("cifar-resnet", {"depth": 8}, 4),
    ("seed-mlp", {"depth": 2}, 3), ("seed-cnn", {}, 4), ("seed-resnet", {"depth": 2}, 3)])
def test_every_family_has_stages(name: str, args: dict, count: int) -> None:
    model = build_model(name, input_shape=(3, 32, 32), num_classes=10, **args)
    assert len(model_stages(model)) == count
    apply_freeze(model, count - 1)
    assert all(p.requires_grad == n.startswith(("head", "output", "final_norm")) for n, p in model.named_parameters())
    model.train()
    assert not model_stages(model)[0][0].training  # frozen parts stay in eval mode


def test_head_lr_is_a_second_group_that_follows_the_schedule() -> None:
    model = build_model("mlp", input_shape=(1, 4, 4), num_classes=3)
    opt = make_optimizer(model, OptimConfig(lr=0.1, head_lr=0.5), torch.device("cpu"))
    assert [len(g["params"]) for g in opt.param_groups] == [len(list(model.parameters())) - 2, 2]
    set_lr(opt, 0.01)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.01, 0.05])
    plain = make_optimizer(model, OptimConfig(lr=0.1), torch.device("cpu"))
    assert len(plain.param_groups) == 1  # as in every earlier checkpoint


def test_top5_accuracy_above_ten_classes() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(50, 1, 2, 2), torch.randint(0, 12, (50,))
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 12))
    result = evaluate(model, [(x[:20], y[:20]), (x[20:], y[20:])], 12)
    logits = model(x)
    expected = sum(int(t) in set(row.topk(5).indices.tolist()) for row, t in zip(logits, y)) / 50
    assert result.top5 == pytest.approx(expected)
    assert evaluate(nn.Sequential(nn.Flatten(), nn.Linear(4, 10)), [(x, y % 10)], 10).top5 is None


def test_metrics_csv_has_top5_only_when_recorded(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    folder.write_metrics([{"epoch": 1, "val_acc": 0.5}])
    assert "val_top5" not in folder.metrics.read_text()
    folder.write_metrics([{"epoch": 1, "val_acc": 0.5, "val_top5": 0.9}])
    assert folder.read_metrics()[0]["val_top5"] == 0.9


def test_data_classes_selects_and_relabels(data_dir: Path) -> None:
    from reslab.data import load_dataset

    data = load_dataset("mnist", data_dir, download=False)
    part = data.select_classes([7, 2])
    assert part.classes == (data.classes[7], data.classes[2])
    assert len(part.train_y) == int(((data.train_y == 7) | (data.train_y == 2)).sum())
    assert torch.equal(part.train_x[part.train_y == 0], data.train_x[data.train_y == 7])
    with pytest.raises(ReslabError, match="has classes 0..9, not 10"):
        data.select_classes([10])
