"""torchvision-resnet18 (issue 20 §3): the one interface, a local pretrained weights file, and a fine-tuning run on an
image folder in Imagenette's layout (train/ + val/)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers.fakedata import image_tree, write_folder, write_zip
from helpers.training import strict_json
from reslab.config import from_dict
from reslab.data import load_dataset
from reslab.errors import CheckpointError, ConfigError
from reslab.models import build_model
from reslab.runs import RunFolder
from reslab.train import train


@pytest.fixture(scope="module")
def imagenet_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in for torchvision's resnet18-f37072fd.pth: the same keys and shapes (1000 classes), seeded."""
    from torchvision.models import resnet18

    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(resnet18(num_classes=1000).state_dict(), path)
    return path


def test_pretrained_weights_but_a_new_head(imagenet_weights: Path) -> None:
    saved = torch.load(imagenet_weights)
    model = build_model("torchvision-resnet18", input_shape=(3, 32, 32), num_classes=5, weights=str(imagenet_weights))
    own = model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in saved.items() if not k.startswith("fc."))
    assert own["fc.weight"].shape == (5, 512)
    same = build_model("torchvision-resnet18", input_shape=(3, 32, 32), num_classes=1000,
                       weights=str(imagenet_weights))
    assert torch.equal(same.state_dict()["fc.weight"], saved["fc.weight"])


def test_bad_weights_files_are_one_line(tmp_path: Path, imagenet_weights: Path) -> None:
    bad, short = tmp_path / "bad.pth", tmp_path / "short.pth"
    bad.write_bytes(imagenet_weights.read_bytes()[:1000])
    torch.save({k: v for k, v in torch.load(imagenet_weights).items() if k != "layer2.0.conv1.weight"}, short)
    for path, message in ((tmp_path / "none.pth", "does not exist"), (bad, "not a readable weights file"),
                          (short, r"layer2.0.conv1.weight is missing, expected \(128, 64, 3, 3\)")):
        with pytest.raises(CheckpointError, match=message) as info:
            build_model("torchvision-resnet18", input_shape=(3, 32, 32), num_classes=5, weights=str(path))
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="3-channel images"):
        build_model("torchvision-resnet18", input_shape=(1, 28, 28), num_classes=5, weights=str(imagenet_weights))


@pytest.mark.usefixtures("isolated_cache")
@pytest.mark.parametrize("kind", ["folder", "zip"])
def test_val_is_the_test_split_of_an_imagenette_layout(tmp_path: Path, kind: str) -> None:
    tree = image_tree()
    renamed = {k.replace("test/", "val/", 1): v for k, v in tree.items()}
    source = write_folder(tmp_path / "nette", renamed) if kind == "folder" else write_zip(tmp_path / "n.zip", renamed)
    reference = load_dataset(f"imagefolder:{write_folder(tmp_path / 'ref', tree)}")
    data = load_dataset(f"imagefolder:{source}")
    assert torch.equal(data.test_x, reference.test_x) and data.test_y.tolist() == reference.test_y.tolist()


@pytest.mark.usefixtures("isolated_cache")
def test_fine_tune_on_an_image_folder(tmp_path: Path, imagenet_weights: Path) -> None:
    tree = {k.replace("test/", "val/", 1): v for k, v in image_tree(per_class=4, size=32).items()}
    source = write_folder(tmp_path / "nette", tree)
    cfg = from_dict({"data": {"dataset": f"imagefolder:{source}", "val_size": 0, "batch_size": 4},
                     "model": {"name": "torchvision-resnet18", "weights": str(imagenet_weights)},
                     "train": {"freeze": "all-but-head", "epochs": 1, "device": "cpu"}, "optim": {"head_lr": 0.01},
                     "runs_dir": str(tmp_path / "runs")})
    run = train(cfg, progress=False).run_dir
    summary = strict_json(RunFolder(run).summary)
    assert summary["status"] == "finished" and summary["params"] == 512 * 2 + 2  # the head alone trains
