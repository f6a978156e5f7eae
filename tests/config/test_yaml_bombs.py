"""YAML that would expand without bound (issue 19, item 6): aliases are refused in every YAML reslab reads, seeds
and grid sizes are bounded before anything is expanded, and the duplicate-key check is linear."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from reslab import reading, yamlsafe
from reslab.cli import main

BASE = {"base": "plain-mlp8", "set": {"train.epochs": 1}, "grid": {"model.depth": [1]}, "seeds": 1}


def laughs(levels: int = 9) -> str:
    """The billion laughs: each level a list of ten aliases of the one before (10**levels values)."""
    lines = ['a0: &a0 ["lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def _tree(root: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in root.rglob("*")}


def _one_line(capsys: pytest.CaptureFixture, code: int, *words: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and all(w in err[0] for w in words), err


def _sweep(tmp_path: Path, text: str) -> int:
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    return main(["sweep", str(path), "--runs-dir", str(tmp_path / "runs"), "--dry-run"])


@pytest.mark.parametrize("where", ["set", "grid"])
def test_an_alias_bomb_in_a_sweep_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture, where: str) -> None:
    if where == "set":
        text = "base: plain-mlp8\nseeds: 1\ngrid: {model.depth: [1]}\nset:\n" + "".join(
            "  " + line + "\n" for line in laughs().splitlines())
    else:
        text = laughs() + "base: plain-mlp8\nseeds: 1\ngrid:\n  model.depth: *a9\n"
    before = _tree(tmp_path)
    started = time.perf_counter()
    _one_line(capsys, _sweep(tmp_path, text), "bomb.yaml", "aliases")
    assert time.perf_counter() - started < 10
    assert set(_tree(tmp_path)) == set(before) | {str(tmp_path / "bomb.yaml")}  # nothing written


def test_a_huge_seed_count_is_refused_before_it_is_expanded(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    started = time.perf_counter()
    _one_line(capsys, _sweep(tmp_path, yaml.safe_dump({**BASE, "seeds": 10**9})), "seeds", "at most")
    big_grid = {**BASE, "grid": {f"model.k{i}": list(range(20)) for i in range(6)}}  # 64 million cells
    _one_line(capsys, _sweep(tmp_path, yaml.safe_dump(big_grid)), "runs", "at most")
    assert time.perf_counter() - started < 10
    assert not (tmp_path / "runs").exists()


def test_an_alias_bomb_in_a_config_file_and_in_a_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "cfg.yaml").write_text(laughs())
    _one_line(capsys, main(["train", str(tmp_path / "cfg.yaml"), "--print-config"]), "cfg.yaml", "aliases")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(laughs())  # what `reslab report` reads back: noted, not expanded
    problems: list[str] = []
    assert reading.read_mapping(run / "config.yaml", problems) is None
    assert len(problems) == 1 and "aliases" in problems[0]
    with pytest.raises(yaml.YAMLError, match="aliases"):
        yamlsafe.load("a: &x 1\nb: *x\n")
    with pytest.raises(yaml.YAMLError, match="aliases"):
        yamlsafe.load("a: &x {b: 1}\nc:\n  <<: *x\n")  # merge keys are aliases too


def test_nesting_too_deep_is_a_yaml_error() -> None:
    with pytest.raises(yaml.YAMLError):
        yamlsafe.load("[" * 100_000 + "]" * 100_000)


def test_duplicate_keys_are_found_in_linear_time() -> None:
    with pytest.raises(yaml.YAMLError, match="key b given twice"):
        yamlsafe.load("a: 1\nb: 2\nc: 3\nb: 4\n")
    node = yaml.compose("\n".join(f"k{i}: {i}" for i in range(5000)), Loader=yaml.SafeLoader)

    def construct(loader: type) -> float:
        started = time.perf_counter()
        loader("").construct_document(node)
        return time.perf_counter() - started

    plain = min(construct(yaml.SafeLoader) for _ in range(3))
    strict = min(construct(yamlsafe.StrictLoader) for _ in range(3))
    assert strict < 5 * plain + 0.05, (strict, plain)  # a quadratic check took 16 times the plain loader here
