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
    [""],  # reslab/__init__: the version, and the API's names (reslab.api), imported by name when first used
    ["errors", "status", "yamlsafe"],  # leaf helpers, in their own order (yamlsafe: the one YAML loader)
    ["checks", "files"],
    ["plots", "reading", "intervals"],  # reading: files read tolerantly (runs, sweeps, analyses, reports); intervals:
    # the 95% t and Welch intervals of sweeps, the lab and the instruments
    ["models", "metrics"],
    ["config", "data"],
    ["runs", "runtime", "optim", "evaluate", "state", "protocols", "loaders", "distributed"],
    ["transfer"],  # weights from another run (init_from, teacher), freezing stages
    ["distill"],  # the distillation loss and the teacher's cached logits
    ["tracking", "tracking_wandb", "gradflow"],  # observers and the sinks and instruments behind them
    ["observers"],  # the one place that assembles the default observers
    ["session"],  # one run's setup, checked before training
    ["train"],
    ["packed_steps"],  # what a pack of runs does at each step (its training step, evaluation, a run leaving)
    ["train_packed"],  # several runs of one form trained as one packed model
    ["analyze", "sweep"],
    ["report"],
    ["lab"],  # the whole lab: stages of runs, sweeps and analyses, then the report
    ["cli_analyze", "cli_studies"],  # the instruments' flags (cli's `analyze` group); sweep and lab
    ["cli", "presets"],
    ["api"],  # the Python API: reslab.train / sweep / lab call what the commands call; load_run / sweep / lab
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


# ----------------------------------------------------------------------------- the upper layers pass typed values

# what the lab may take from the sweep package: the typed API (run a spec, read a folder, typed rows), and the
# statistics (pure functions); never the runner's internals, the CSV files or an exit code
LAB_FROM_SWEEP = {"run_sweep", "sweep_spec", "SweepSpec", "SweepResult", "SweepFolder", "RunRow", "CellRow", "PairRow",
                  "RESIDUAL"}
SWEEP_FILES = ("results.csv", "aggregate.csv", "paired.csv", "index.json", "sweep.yaml")
STATUS_WORDS = ("finished", "diverged", "failed", "interrupted", "running")


def _sweep_imports(path: Path) -> list[str]:
    """What a module imports from reslab.sweep: 'name' for the package's API, 'module' for a submodule."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("reslab.sweep"):
            found += [alias.name if node.module == "reslab.sweep" else node.module for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("reslab.sweep")]
    return found


def test_the_lab_talks_to_sweeps_through_typed_results() -> None:
    for path in sorted((PACKAGE / "lab").glob("*.py")):
        bad = [name for name in _sweep_imports(path) if name not in LAB_FROM_SWEEP]
        assert bad == [], f"{path.name} imports {bad} from reslab.sweep"


def test_the_rule_catches_the_lab_reaching_into_the_runner(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("from reslab.sweep.runner import run_sweep\nfrom reslab.sweep import SweepFolder, backends\n")
    assert _sweep_imports(probe) == ["reslab.sweep.runner", "SweepFolder", "backends"]


def _literals(path: Path) -> list[str]:
    return [node.value for node in ast.walk(ast.parse(path.read_text(), str(path)))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def test_only_the_sweep_folder_names_its_files() -> None:
    """results.csv and the rest are spelled (as a string that is the name or ends a path) in sweep/folder.py alone;
    everyone else asks SweepFolder. Docstrings and help may mention them."""
    spelled = {str(p.relative_to(PACKAGE)): sorted({name for s in _literals(p) for name in SWEEP_FILES
                                                    if s.strip() == name or s.strip().endswith("/" + name)})
               for p in _modules()}
    assert {p: names for p, names in spelled.items() if names} == {"sweep/folder.py": sorted(SWEEP_FILES)}


def test_exit_codes_and_status_words_live_in_one_place_each() -> None:
    """Exit codes only in the CLI; a run's status as a RunStatus member, never a string, in sweep/, lab/ and the
    CLI (report/ and analyze/ read files of older reslabs and are held to it by their own tests)."""
    for path in _modules():
        rel = str(path.relative_to(PACKAGE))
        if rel != "cli.py":
            assert "EXIT_" not in path.read_text(), rel
        if rel.startswith(("sweep/", "lab/", "cli")):
            words = [s for s in _literals(path) if s in STATUS_WORDS]
            allowed = {"sweep/runner.py": ["failed"],  # the label of a moved-aside folder (.failed-1)
                       "lab/folder.py": ["finished"]}.get(rel, [])  # lab.json: when a stage finished
            assert words == allowed, (rel, words)
