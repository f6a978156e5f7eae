"""One instrument shape: a toy instrument defined here (a measure function, a pure summary, one registration)
appears in `reslab analyze`, writes a complete analysis folder and becomes a lab stage; and every instrument's
output file names are spelled by its own modules only."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import pytest
import torch

import reslab
from reslab import files
from reslab.analyze import catalog
from reslab.analyze.registry import Call, Common, Instrument, LabSource, LabStage, add_common
from reslab.analyze.targets import Target, build, resolve_targets, shared_data
from reslab.analyze.writer import Analysis, Figure, Table
from reslab.cli import main
from reslab.config import resolve
from reslab.lab.profiles import PROFILE_TABLE
from reslab.lab.plan import plan
from reslab.models import build_model

PACKAGE = Path(reslab.__file__).parent


# ----------------------------------------------------------------------------- the toy: mean weight norm per model


@dataclass(frozen=True)
class ToyOptions:
    scale: float = 1.0


def toy_measure(targets: Sequence[Target], options: ToyOptions, common: Common) -> list[tuple[str, float]]:
    data, _, _ = shared_data(targets)
    out = []
    for target in targets:
        model, _ = build(target, data, torch.device("cpu"))
        norms = [p.norm().item() for name, p in model.named_parameters() if name.endswith("weight")]
        out.append((target.label, options.scale * sum(norms) / len(norms)))
    return out


def toy_summarise(measured: list[tuple[str, float]], options: ToyOptions, common: Common) -> Analysis:
    rows = [{"model": label, "weight_norm": norm} for label, norm in measured]

    def draw(path: Path, svg: bool) -> None:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots()
        ax.bar([r["model"] for r in rows], [r["weight_norm"] for r in rows])
        fig.savefig(path)
        plt.close(fig)

    return Analysis(text="\n".join(f"{label}: mean weight norm {norm:.4g}" for label, norm in measured),
                    tables=(Table("toy-norms.csv", rows, ["model", "weight_norm"]),),
                    figures=(Figure("toy-norms.png", draw),), settings={"scale": options.scale},
                    findings={f"{label}.weight_norm": norm for label, norm in measured})


def _toy_arguments(p: Any) -> None:
    p.add_argument("sources", nargs="+", metavar="MODEL", help="presets")
    p.add_argument("--scale", type=float, default=1.0, help="a factor on every norm")
    add_common(p, what="nothing")


def _toy_lab(lab: LabSource) -> Call:
    return Call(tuple(lab.mlp_pair()), ToyOptions(), settings=lab.settings("mnist"))


TOY = Instrument(
    name="toy", title="Toy weight norms", help="mean weight norm per model (a test's toy)",
    description="The mean L2 norm of each model's weight tensors at init.", add_arguments=_toy_arguments,
    from_args=lambda args: Call(tuple(args.sources), ToyOptions(scale=args.scale)),
    prepare=lambda sources, options, common: resolve_targets(sources, overrides=common.overrides,
                                                             settings=common.settings),
    measure=toy_measure, summarise=toy_summarise, lab=(LabStage("toy-mlp", "Toy: weight norms of the MLP twins",
                                                                _toy_lab),))


@pytest.fixture()
def toy() -> Iterator[Instrument]:
    catalog.register(TOY)
    try:
        yield TOY
    finally:
        catalog.unregister(TOY.name)


def _help(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    with pytest.raises(SystemExit):
        main(argv)
    return capsys.readouterr().out


def test_a_registered_instrument_is_a_command(toy: Instrument, capsys: pytest.CaptureFixture) -> None:
    assert "mean weight norm per model (a test's toy)" in _help(["analyze", "--help"], capsys)
    assert "--scale SCALE" in _help(["analyze", "toy", "--help"], capsys)
    catalog.unregister("toy")
    assert "toy" not in _help(["analyze", "--help"], capsys)


def test_the_toy_runs_into_a_complete_analysis_folder(toy: Instrument, data_dir: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "toy"
    assert main(["analyze", "toy", "seed-mlp", "plain-mlp8", "--scale", "2", "--data-dir", str(data_dir), "--device",
                 "cpu", "--quiet", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out)
    record = json.loads((out / "analysis.json").read_text())
    assert (record["kind"], record["title"], record["sources"]) == ("toy", "Toy weight norms", ["seed-mlp", "plain-mlp8"])
    assert (record["tables"], record["figures"], record["summary"]) == (["toy-norms.csv"], ["toy-norms.png"],
                                                                        "toy-summary.txt")
    assert record["settings"] == {"scale": 2.0}
    assert sorted(p.name for p in out.iterdir()) == ["analysis.json", "toy-norms.csv", "toy-norms.png",
                                                    "toy-summary.txt"]
    cfg = resolve("seed-mlp", [f"data.data_dir={data_dir}"])
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model.name, input_shape=(1, 28, 28), num_classes=10, **dict(cfg.model.args))
    norms = [p.norm().item() for name, p in model.named_parameters() if name.endswith("weight")]
    rows = files.read_csv(out / "toy-norms.csv")
    assert [r["model"] for r in rows] == ["seed-mlp", "plain-mlp8"]
    assert float(rows[0]["weight_norm"]) == pytest.approx(2 * sum(norms) / len(norms), rel=1e-5)
    assert "seed-mlp: mean weight norm" in (out / "toy-summary.txt").read_text()


def test_the_toy_is_a_lab_stage(toy: Instrument, data_dir: Path, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Its stage follows the built-in ones in the plan, and runs on what the lab hands it."""
    from reslab.lab import instruments as lab_instruments
    from reslab.lab.stages import LabContext

    stages = plan(PROFILE_TABLE["quick"])
    assert (stages[-1].name, stages[-1].title) == ("toy-mlp", "Toy: weight norms of the MLP twins")
    names = [s.name for s in stages]
    assert {"responses-mlp", "cam-conv", "cam-mnist-canvas", "fcn-mnist", "probe-transfer"} <= set(names[:-1])  # built-in
    assert [s.name for s in stages].count("toy-mlp") == 1
    monkeypatch.setattr(lab_instruments, "mlp_pair", lambda ctx, seed=0: ["plain-mlp8", "res-mlp8"])
    ctx = LabContext(folder=None, profile=PROFILE_TABLE["quick"], mnist="mnist", cifar="cifar10",
                     data_dir=str(data_dir), jobs=1, backend="local", device="cpu", out=None)  # type: ignore[arg-type]
    out = tmp_path / "stage"
    out.mkdir()
    assert stages[-1].measure is not None
    stages[-1].measure(ctx, out)
    record = json.loads((out / "analysis.json").read_text())
    assert record["sources"] == ["plain-mlp8", "res-mlp8"] and record["tables"] == ["toy-norms.csv"]
    assert [r["model"] for r in files.read_csv(out / "toy-norms.csv")] == ["plain-mlp8", "res-mlp8"]


# ----------------------------------------------------------------------------- one owner per output name

NAME = re.compile(r"[\w.-]+\.(?:csv|png|txt|pt)")


def _strings(path: Path) -> list[str]:
    """The string literals code uses (docstrings, prose about a file, left out)."""
    tree = ast.parse(path.read_text())
    docs = {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and node.body
            and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docs]


def _owned() -> dict[str, set[str]]:
    """output file name -> the modules of the instrument that owns it (its measure and summary modules)."""
    owned: dict[str, set[str]] = {}
    for inst in catalog.instruments():  # built-in ones (a test's toy is registered only inside its test)
        owners = {inst.prepare.__module__, inst.summarise.__module__}
        names = {f"{inst.name}-summary.txt"}  # the writer names the summary after the kind
        for module in owners:
            path = PACKAGE.parent / (module.replace(".", "/") + ".py")
            names |= {n for s in _strings(path) for n in NAME.findall(s) if n.startswith(inst.name) or n.endswith(".pt")}
        for name in names:
            owned.setdefault(name, set()).update(owners)
    return owned


def _spelled_outside(owned: dict[str, set[str]], root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        module = ".".join(path.relative_to(root.parent).with_suffix("").parts)
        for s in _strings(path):
            found += [f"{module}: {name}" for name in NAME.findall(s) if name in owned and module not in owned[name]]
    return found


def test_every_output_name_is_spelled_by_its_instrument_only(tmp_path: Path) -> None:
    owned = _owned()
    assert {"lesion-k.csv", "shatter-grid-lag1.png", "landscape.csv", "directions.pt", "init-std.png",
            "gradflow-stats.csv", "shatter-summary.txt", "fcn-classes.csv", "fcn-examples.png",
            "probe.csv", "cam-stats.csv", "cam-grid.png"} <= set(owned)
    assert _spelled_outside(owned, PACKAGE) == []
    stray = tmp_path / "reslab" / "lab" / "stray.py"  # the check itself can fail
    stray.parent.mkdir(parents=True)
    stray.write_text('NAME = "lesion-k.csv"\n')
    assert _spelled_outside(owned, tmp_path / "reslab") == ["reslab.lab.stray: lesion-k.csv"]
