"""The one atomic writer and the one tolerant CSV reader."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from reslab import files


def test_read_csv_skips_what_a_killed_or_damaged_writer_left(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_bytes(b"step,loss\n1,0.5\n" + b"9" * 200_000 + b",0.4\n\xff\xfe,0.3\n4,0.2\n5")
    skipped: list[int] = []
    rows = files.read_csv(path, skipped=skipped)
    assert [r["step"] for r in rows] == ["1", "4"]  # the huge field, the undecodable bytes, the torn line: dropped
    assert skipped == [2, 3, 5]
    assert files.read_csv(tmp_path / "missing.csv", missing_ok=True) == []
    with pytest.raises(FileNotFoundError):
        files.read_csv(tmp_path / "missing.csv")


def test_write_json_is_strict_and_atomic(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    files.write_json(path, {"loss": float("nan"), "curve": [1.0, float("inf")], "ok": 2})
    assert json.loads(path.read_text(), parse_constant=lambda t: pytest.fail(t)) == {
        "loss": None, "curve": [1.0, None], "ok": 2}

    def broken(fh: object) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError):
        files.atomic_write(path, broken)
    assert json.loads(path.read_text())["ok"] == 2 and list(tmp_path.iterdir()) == [path]  # no temp left


def test_json_safe_is_what_strict_json_takes() -> None:
    value = {"a": float("nan"), 1: (float("inf"), -float("inf"), 2.5), "nested": [{"x": float("nan")}], "s": "nan"}
    assert files.json_safe(value) == {"a": None, "1": [None, None, 2.5], "nested": [{"x": None}], "s": "nan"}
    assert json.loads(files.json_text(value)) == files.json_safe(value)


def test_new_folder_is_new_and_named_by_time(tmp_path: Path) -> None:
    made = {files.new_folder(tmp_path / "runs", "mlp") for _ in range(5)}
    assert len(made) == 5 and all(p.is_dir() and not any(p.iterdir()) for p in made)
    assert all(re.fullmatch(r"mlp-\d{8}-\d{6}-[0-9a-f]{4}", p.name) for p in made)
    hidden = files.hidden_folder(tmp_path, ".report.building-")
    assert hidden.is_dir() and hidden.name.startswith(".report.building-") and hidden not in made


def test_folder_lock_refuses_a_second_holder_naming_the_first(tmp_path: Path) -> None:
    import os

    from reslab.errors import ConfigError

    with files.folder_lock(tmp_path, "sweep folder", ConfigError):
        holder = json.loads((tmp_path / files.LOCK_NAME).read_text())
        assert holder["pid"] == os.getpid()
        with pytest.raises(ConfigError, match=rf"^sweep folder {re.escape(str(tmp_path))} is in use by process "
                                              rf"{os.getpid()} on .+; wait for it to end or stop it$"):
            with files.folder_lock(tmp_path, "sweep folder", ConfigError):  # a second open file: flock refuses it
                pass
    with files.folder_lock(tmp_path, "sweep folder", ConfigError):  # released with the first
        pass


# ----------------------------------------------------------------------------- run-folder file names, spelled once

# files of other owners that still spell a run-folder file name; each is to read through RunFolder instead


def _run_file_literals(path: Path, names: list[str]) -> list[str]:
    """'line: text' for every string constant in `path` that is one of `names` or a path ending in one (prose that
    names a file, as a help text or a message does, is no file name: it is left alone, and so are docstrings)."""
    import ast

    tree = ast.parse(path.read_text(), str(path))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [f"{node.lineno}: {node.value!r}" for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
            and any(re.fullmatch(rf"(.*/)?{re.escape(name)}", node.value) for name in names)]


def test_run_folder_file_names_are_spelled_in_runs_py_only(tmp_path: Path) -> None:
    """RunFolder owns every run-folder file name; every other module takes them from it (comments aside)."""
    import reslab
    from reslab.runs import RunFolder

    names = [v for k, v in vars(RunFolder).items() if k.isupper() and isinstance(v, str)]
    names += [RunFolder(Path("x")).last.name, RunFolder(Path("x")).best.name]
    assert {"config.yaml", "metrics.csv", "summary.json", "status.json", "steps.csv", "last.pt"} <= set(names)
    package = Path(reslab.__file__).parent
    spelled = {str(p.relative_to(package)): found for p in sorted(package.rglob("*.py"))
               if p.name != "runs.py" or p.parent != package
               if (found := _run_file_literals(p, names))}
    assert spelled == {}
    spelling = tmp_path / "spelling.py"  # the check itself finds a literal, and skips a docstring
    spelling.write_text('"""metrics.csv in a docstring"""\nPATH = "run/metrics.csv"\nOTHER = "my-metrics.csv"\n'
                        'SAY = "see metrics.csv"\n')
    assert _run_file_literals(spelling, names) == ["2: 'run/metrics.csv'"]
