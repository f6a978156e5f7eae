"""Typed configs: presets, YAML round trip, overrides, and one-line errors for bad values."""

from pathlib import Path

import pytest

from reslab.config import (RunConfig, dump_yaml, from_dict, load_source, parse_override, preset_names, resolve,
                           to_dict)
from reslab.errors import ConfigError

SEED_PRESETS = ["seed-mlp", "seed-cnn", "seed-resnet"]
HE_PRESETS = [f"{kind}{d}" for kind in ("resnet", "plain") for d in (20, 32, 44, 56)]


def test_all_presets_exist_and_resolve() -> None:
    assert set(SEED_PRESETS + HE_PRESETS) <= set(preset_names())
    for name in preset_names():
        cfg = resolve(name)
        assert isinstance(cfg, RunConfig) and cfg.name == name


def test_seed_presets_match_the_notebook() -> None:
    mlp = resolve("seed-mlp")
    assert (mlp.data.dataset, mlp.data.batch_size, mlp.data.val_size) == ("mnist", 128, 5000)
    assert dict(mlp.model.args) == {"width": 16, "depth": 2, "init": "torch-default"}
    assert (mlp.optim.name, mlp.optim.lr, mlp.train.epochs) == ("adam", 1e-4, 15)
    cnn = resolve("seed-cnn")
    assert dict(cnn.model.args) == {"num": 3, "channels": 16, "size": 3, "init": "torch-default"}
    assert (cnn.data.dataset, cnn.optim.lr, cnn.train.epochs) == ("cifar10", 1e-3, 10)
    assert resolve("seed-resnet").model.args["depth"] == 3


@pytest.mark.parametrize("name", HE_PRESETS)
def test_he_presets_follow_the_paper(name: str) -> None:
    cfg = resolve(name)
    assert cfg.model.name == "cifar-resnet"
    assert cfg.model.args["depth"] == int(name[-2:])
    assert cfg.model.args["residual"] == name.startswith("resnet")
    o = cfg.optim
    assert (o.name, o.lr, o.momentum, o.weight_decay, o.schedule, o.milestones, o.gamma) == \
        ("sgd", 0.1, 0.9, 1e-4, "step", (0.5, 0.75), 0.1)
    assert cfg.data.augment and cfg.data.batch_size == 128 and cfg.data.crop_padding == 4


def test_yaml_round_trip_is_identity() -> None:
    cfg = resolve("resnet20", ["optim.warmup_epochs=1", "train.seed=7"])
    import yaml

    again = from_dict(yaml.safe_load(dump_yaml(cfg)))
    assert again == cfg
    assert to_dict(again)["model"] == {"name": "cifar-resnet", **dict(cfg.model.args)}


def test_overrides_are_typed() -> None:
    cfg = resolve("seed-mlp", ["model.depth=8", "optim.lr=1e-3", "data.augment=true", "optim.milestones=[3, 6]",
                               "optim.grad_clip=1"])
    assert cfg.model.args["depth"] == 8 and cfg.optim.lr == 1e-3 and cfg.data.augment is True
    assert cfg.optim.milestones == (3.0, 6.0) and cfg.optim.grad_clip == 1.0
    assert parse_override("data.dataset=imagefolder:/a/b.zip") == (["data", "dataset"], "imagefolder:/a/b.zip")


@pytest.mark.parametrize("override, message", [
    ("model.dept=3", "unknown key model.dept for model seed-mlp; valid keys: name, width, depth"),
    ("optim.lrr=1", "unknown key optim.lrr; valid keys: name, lr,"),
    ("bogus=1", "unknown key bogus; valid keys: name, runs_dir, data, model, optim, train, track, gradflow"),
    ("train.epochs=-1", "train.epochs must be >= 1, got -1"),
    ("train.epochs=ten", "train.epochs must be int, got 'ten'"),
    ("train.epochs=2.5", "train.epochs must be int, got 2.5"),
    ("data.batch_size=0", "data.batch_size must be >= 1, got 0"),
    ("optim.lr=0", "optim.lr must be > 0, got 0.0"),
    ("optim.lr=-1e-3", "optim.lr must be > 0"),
    ("optim.name=rmsprop", "optim.name must be one of adam, adamw, sgd; got 'rmsprop'"),
    ("optim.schedule=linear", "optim.schedule must be one of constant, step, cosine, onecycle"),
    ("data.val_size=-5", "data.val_size must be >= 0"),
    ("data.augment=maybe", "data.augment must be bool"),
    ("model.name=resnet9000", "unknown model"),
    ("train.device=tpu", "train.device must be auto, cpu, cuda, cuda:N or mps"),
    ("optim.nesterov=true", "optim.nesterov needs optim.name=sgd"),
    ("model", "--set expects key=value"),
])
def test_bad_values_are_one_line_config_errors(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve("seed-mlp", [override])
    text = str(info.value)
    assert message in text and "\n" not in text


def test_unknown_preset_lists_presets() -> None:
    with pytest.raises(ConfigError, match="unknown preset 'nope'; presets: .*seed-mlp"):
        load_source("nope")


def test_config_files(tmp_path: Path) -> None:
    good = tmp_path / "exp.yaml"
    good.write_text("name: exp\nmodel: {name: mlp, depth: 8, residual: true}\ntrain: {epochs: 2}\n")
    cfg = resolve(str(good))
    assert cfg.name == "exp" and cfg.model.args["residual"] is True and cfg.train.epochs == 2
    with pytest.raises(ConfigError, match="does not exist"):
        resolve(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        resolve(str(bad))
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        resolve(str(scalar))


def test_bare_on_and_off_name_the_choices() -> None:
    """YAML 1.1 reads `--set train.amp=off` as False; where the choices are words, the word is meant."""
    cfg = resolve("seed-mlp", ["train.amp=off", "train.channels_last=on"])
    assert (cfg.train.amp, cfg.train.channels_last) == ("off", "on")
    with pytest.raises(ConfigError, match="train.amp must be one of"):
        resolve("seed-mlp", ["train.amp=on"])
