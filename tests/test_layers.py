"""The package's layer rule (DESIGN.md): a module imports only from layers below its own.

Imports inside functions count. A unit is a top-level module or package of reslab (reslab.data.loader is
in `data`); imports inside one unit are free. Every unit must be placed in a layer, so a new module
decides where it stands.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import reslab

PACKAGE = Path(reslab.__file__).parent

# lowest first; a unit may import from any earlier row, never from its own row or a later one
LAYERS: list[list[str]] = [
    [""],  # reslab/__init__: the version only
    ["errors", "status"],  # leaf helpers, in their own order
    ["checks", "files"],
    ["plots", "reading"],  # reading: files read tolerantly (runs, sweeps, analyses, reports)
    ["models", "metrics"],
    ["config", "data"],
    ["runs", "runtime", "optim", "evaluate", "state", "protocols", "loaders", "distributed"],
    ["tracking", "tracking_wandb", "gradflow"],  # observers and the sinks and instruments behind them
    ["observers"],  # the one place that assembles the default observers
    ["session"],  # one run's setup, checked before training
    ["train"],
    ["analyze", "sweep"],
    ["report"],
    ["lab"],  # the whole lab: stages of runs, sweeps and analyses, then the report
    ["cli_analyze", "cli_studies"],  # the instruments' flags (cli's `analyze` group); sweep and lab
    ["cli", "presets"],
    ["__main__"],  # python -m reslab
]
LAYER_OF = {unit: i for i, row in enumerate(LAYERS) for unit in row}


def _unit(module: str) -> str:
    """reslab.data.loader -> data; reslab -> ''."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every reslab import in a file, function-level ones included."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names
                      if (PACKAGE.parent / Path(*f"{target}.{alias.name}".split("."))).with_suffix(".py").exists()]
    return [(line, name) for line, name in found if name == "reslab" or name.startswith("reslab.")]


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_unit_has_a_layer() -> None:
    units = {_unit(_module_name(p)) for p in _modules()}
    assert sorted(units - set(LAYER_OF)) == []


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_imports_go_down(path: Path) -> None:
    unit = _unit(_module_name(path))
    upward = []
    for line, target in _imports(path):
        other = _unit(target)
        if other != unit and LAYER_OF.get(other, len(LAYERS)) >= LAYER_OF.get(unit, -1):
            upward.append(f"line {line}: {target} (layer {LAYER_OF.get(other)}, this is layer {LAYER_OF.get(unit)})")
    assert upward == []


def test_the_rule_catches_an_upward_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check itself can fail: a function-level import of the trainer from a leaf helper is caught."""
    fake = PACKAGE / "files.py"
    source = fake.read_text() + "\n\ndef _bad() -> None:\n    from reslab.train import train  # noqa\n"
    probe = tmp_path / "reslab" / "files.py"
    probe.parent.mkdir()
    probe.write_text(source)
    monkeypatch.setattr(__import__(__name__), "PACKAGE", tmp_path / "reslab")
    assert any("reslab.train" in name for _, name in _imports(probe))
    with pytest.raises(AssertionError):
        test_imports_go_down(probe)
