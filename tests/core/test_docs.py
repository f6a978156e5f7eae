"""The documentation: the mkdocs site builds strict (no broken link or anchor, no warning), its generated reference
pages cover every command, flag and config key, and the README stays a short front page without machine paths."""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
MACHINE_PATHS = re.compile(r"/work/|/tmp/")


def _gen_ref():
    spec = importlib.util.spec_from_file_location("gen_ref", ROOT / "docs" / "gen_ref.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_site_builds_strict(tmp_path: Path) -> None:
    for package in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        if importlib.util.find_spec(package.split(".")[0]) is None or importlib.util.find_spec(package) is None:
            pytest.skip(f"{package} is not installed (pip install -e '.[docs]')")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "NO_MKDOCS_2_WARNING": "1"}
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(site)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    for page in ("reference/cli", "reference/config", "reference/presets", "reference/lab-profiles", "reference/api",
                 "conclusions"):
        assert (site / page / "index.html").is_file(), page
    assert "reslab.config.schema.RunConfig" in (site / "reference" / "api" / "index.html").read_text()
    for figure in sorted((ROOT / "docs").glob("*.png")):  # the figures the tutorials show are in the site
        assert (site / figure.name).is_file(), figure.name


def _options(parser: argparse.ArgumentParser) -> set[str]:
    found = {s for a in parser._actions for s in a.option_strings}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _options(sub)
    return found


def test_the_cli_page_lists_every_command_and_flag() -> None:
    from reslab.cli import _build_parser

    page = _gen_ref().cli_page()
    parser = _build_parser()
    commands = [name for a in parser._actions if isinstance(a, argparse._SubParsersAction) for name in a.choices]
    assert {"train", "lab", "sweep", "analyze", "report"} <= set(commands)
    for name in commands:
        assert f"## `reslab {name}`" in page, name
    for option in _options(parser) - {"-h", "--help"}:
        assert f"`{option}" in page, option


def test_the_config_page_lists_every_key_with_its_default() -> None:
    from reslab.config import RunConfig, flatten, to_dict
    from reslab.models import model_args, model_names

    page = _gen_ref().config_page()
    for key in flatten(to_dict(RunConfig())):
        if not key.startswith("model."):
            assert f"| `{key}` |" in page, key
    assert "| `optim.lr` | float | `0.001` |" in page and "| `train.epochs` | int | `10` |" in page
    assert "`adam` \\| `adamw` \\| `sgd`" in page  # a Literal's choices, escaped for the table
    for name in model_names():
        assert f"### `{name}`" in page
        for key in model_args(name):
            assert f"| `model.{key}` |" in page, (name, key)


def test_the_lab_profiles_page_lists_every_stage_of_every_profile() -> None:
    from reslab.lab.plan import plan
    from reslab.lab.profiles import PROFILE_TABLE

    page = _gen_ref().lab_page()
    for name, profile in PROFILE_TABLE.items():
        section = page.split(f"## `{name}`")[1].split("\n## ")[0]
        for stage in plan(profile):
            row = next(line for line in section.splitlines() if line.startswith(f"| `{stage.name}` |"))
            if stage.study is not None:
                assert f"| {stage.runs} | `{stage.study.base}` | {stage.study.seeds} |" in row, row


def test_the_conclusions_page_is_the_readmes_generated_section() -> None:
    page = _gen_ref().conclusions_page()
    readme = (ROOT / "README.md").read_text()
    body = page.split("\n", 4)[4]  # after the page's own heading and its one-line origin
    assert body.strip() and body.strip() in readme


def test_the_readme_is_a_short_front_page_without_machine_paths() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    assert not MACHINE_PATHS.search(text), MACHINE_PATHS.search(text)
    assert "## What the lab concludes, and under which assumptions" in text  # bench/lab_conclusions.py replaces it
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):  # every relative link leads to a file here
        if not re.match(r"[a-z]+://", target):
            assert (ROOT / target).is_file(), target


def test_the_docs_name_no_machine_paths() -> None:
    for page in sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "mkdocs.yml"]:
        match = MACHINE_PATHS.search(page.read_text())
        assert match is None, f"{page.relative_to(ROOT)}: {match}"
