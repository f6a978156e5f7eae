"""mkdocs hook: generate the pages that must not drift from the code.

`mkdocs build` calls `on_files`, which adds pages built from this checkout, never written into docs/:
reference/cli.md (from the argparse parser of reslab/cli.py), reference/config.md (from the dataclasses of
reslab/config/schema.py, their annotations, defaults and source comments, and every model's keyword arguments),
reference/presets.md (from the preset files), reference/lab-profiles.md (from reslab/lab/profiles.py),
reference/api.md (mkdocstrings directives for the modules this checkout has) and conclusions.md (the README's
section that bench/lab_conclusions.py writes). Run directly, `python docs/gen_ref.py NAME` prints one page (NAME:
cli, config, presets, lab-profiles, api or conclusions).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import io
import sys
import tokenize
import types
import typing
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]


def _import_checkout() -> None:
    """Document this checkout's reslab, not an installed copy."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def _text(value: str, cell: bool = False) -> str:
    """Prose from the code, safe in Markdown: no raw HTML, no emphasis (or, in a table cell, pipe) taken as markup."""
    text = " ".join(value.split()).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("*", "\\*")
    return text.replace("|", "\\|") if cell else text


# ---------------------------------------------------------------- CLI

def _usage(parser: argparse.ArgumentParser) -> str:
    formatter = argparse.HelpFormatter(prog=parser.prog, width=100)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return formatter.format_help().strip()


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser, str]]:
    """(name, parser, help) of each sub-command, in the order they were added."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            out += [(name, sub, helps.get(name, "")) for name, sub in action.choices.items()]
    return out


def _argument(action: argparse.Action) -> str:
    if action.option_strings:
        name = ", ".join(action.option_strings)
        if action.nargs != 0:
            metavar = action.metavar or (("{" + ",".join(map(str, action.choices)) + "}") if action.choices
                                         else action.dest.upper())
            name += f" {metavar}"
    else:
        name = action.metavar or action.dest
    parts = [_text(action.help % {**vars(action), "prog": ""}) if action.help else ""]
    if action.choices and action.option_strings and action.metavar:
        parts.append("choices: " + ", ".join(f"`{c}`" for c in action.choices))
    if (action.default not in (None, False, [], argparse.SUPPRESS) and action.nargs != 0
            and "default" not in (action.help or "")):
        parts.append(f"default: `{action.default}`")
    detail = "; ".join(p for p in parts if p)
    return f"- `{name}`" + (f": {detail}" if detail else "")


def _command_section(parser: argparse.ArgumentParser, level: int, help_text: str) -> list[str]:
    lines = [f"{'#' * level} `{parser.prog}`", ""]
    if parser.description or help_text:
        lines += [_text(parser.description or help_text), ""]
    lines += ["```text", _usage(parser), "```", ""]
    arguments = [a for a in parser._actions
                 if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]
    lines += [_argument(a) for a in arguments] + ([""] if arguments else [])
    for _, sub, sub_help in _subcommands(parser):
        lines += _command_section(sub, min(level + 1, 4), sub_help)
    return lines


def cli_page() -> str:
    _import_checkout()
    from reslab.cli import _build_parser

    parser = _build_parser()
    lines = ["# Command-line reference", "",
             "Generated from the argparse parser in `reslab/cli.py` when the documentation is built, so it lists "
             "exactly the commands and flags of this version. Every command prints its own `--help` too. "
             "Exit codes: 0 done, 1 a sweep or lab ran to its end but a run failed, 2 bad input (one line on "
             "stderr), 3 a run diverged, 130 stopped by a signal (run the same command again to continue).", ""]
    lines += ["```text", _usage(parser), "```", ""]
    top = [a for a in parser._actions if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]
    lines += [_argument(a) for a in top] + ([""] if top else [])
    for name, sub, sub_help in _subcommands(parser):
        lines += _command_section(sub, 2, sub_help)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- config keys

def _comments(path: Path) -> dict[tuple[str, str], str]:
    """(class, field) -> the comment on the field's line and the comment-only lines just above it."""
    source = path.read_text()
    by_line: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            by_line[token.start[0]] = token.string.lstrip("#").strip()
    lines = source.splitlines()
    out = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        for item in node.body:
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                above, line = [], item.lineno - 1
                while line >= 1 and lines[line - 1].strip().startswith("#"):
                    above.insert(0, by_line.get(line, ""))
                    line -= 1
                text = " ".join(above + [by_line.get(item.lineno, "")]).strip()
                out[(node.name, item.target.id)] = text
    return out


def _type_name(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin is tuple:
        return "list of " + (_type_name(args[0]) if args else "values")
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _default(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


def _field_value(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else None


def _section_rows(prefix: str, cls: type, notes: dict) -> list[str]:
    """One row per key of a config section; a nested section (train.distill) gives its keys, dotted."""
    rows = []
    sub_hints = typing.get_type_hints(cls)
    for g in dataclasses.fields(cls):
        if dataclasses.is_dataclass(sub_hints[g.name]):
            rows += _section_rows(f"{prefix}.{g.name}", sub_hints[g.name], notes)
            continue
        rows.append(f"| `{prefix}.{g.name}` | {_type_name(sub_hints[g.name])} | `{_default(_field_value(g))}` "
                    f"| {_text(notes.get((cls.__name__, g.name), ''), cell=True)} |")
    return rows


def config_page() -> str:
    _import_checkout()
    from reslab.config import schema
    from reslab.models import model_args, model_names

    notes = _comments(Path(schema.__file__))
    lines = ["# Configuration keys", "",
             "Generated from `reslab/config/schema.py` (the frozen dataclasses, their types, defaults and comments) "
             "and from the model builders' signatures when the documentation is built. Set any key with "
             "`--set section.key=value`, in a YAML config file with the same sections, or in a sweep file; "
             "`reslab train PRESET --print-config` prints a resolved config. Unknown keys and wrong types are "
             "one-line errors that list the valid keys.", "",
             "| key | type | default | what |", "| --- | --- | --- | --- |"]
    hints = typing.get_type_hints(schema.RunConfig)
    for f in dataclasses.fields(schema.RunConfig):
        cls = hints[f.name]
        if dataclasses.is_dataclass(cls) and f.name != "model":
            lines += _section_rows(f.name, cls, notes)
        elif f.name != "model":
            lines.append(f"| `{f.name}` | {_type_name(cls)} | `{_default(_field_value(f))}` "
                         f"| {_text(notes.get(('RunConfig', f.name), ''), cell=True)} |")
    lines += ["", "## Model keys", "",
              "`model.name` picks a registered model (default `seed-mlp`); the other `model.*` keys are that model's "
              "keyword arguments, checked against its builder's signature:", ""]
    for name in model_names():
        lines += [f"### `{name}`", "", "| key | type | default |", "| --- | --- | --- |"]
        for key, (tp, default) in model_args(name).items():
            lines.append(f"| `model.{key}` | {_type_name(tp)} | `{_default(default)}` |")
        lines.append("")
    return "\n".join(lines) + "\n"


def presets_page() -> str:
    _import_checkout()
    from reslab.config import from_dict, load_source, preset_names

    lines = ["# Presets", "",
             "Generated from the preset files shipped in `reslab/presets/` when the documentation is built "
             "(`reslab list` prints the same). `reslab train PRESET --print-config` shows every resolved key.", "",
             "| preset | model | dataset | optimizer | lr | epochs | batch |",
             "| --- | --- | --- | --- | ---: | ---: | ---: |"]
    for name in preset_names():
        cfg = from_dict(load_source(name))
        cells = [f"`{cfg.model.name}`", f"`{cfg.data.dataset}`", f"`{cfg.optim.name}`", f"{cfg.optim.lr:g}",
                 str(cfg.train.epochs), str(cfg.data.batch_size)]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _values(mapping: Any) -> str:
    return "; ".join(f"`{k}` = {', '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in mapping.items())


def lab_page() -> str:
    """Each profile of `reslab lab`, stage by stage, from reslab/lab/profiles.py and the lab's plan."""
    _import_checkout()
    from reslab.lab.plan import plan
    from reslab.lab.profiles import PROFILE_TABLE

    lines = ["# Lab profiles", "",
             "Generated from `reslab/lab/profiles.py` and the lab's plan (`reslab/lab/plan.py`) when the "
             "documentation is built: every stage `reslab lab --profile NAME` runs, in order. A sweep stage lists its "
             "runs, base preset, seeds, grid and fixed settings; an analysis stage runs an instrument on the trained "
             "twins.", ""]
    for name, profile in PROFILE_TABLE.items():
        lines += [f"## `{name}`", "", "| stage | what | runs | base | seeds | grid | settings |",
                  "| --- | --- | ---: | --- | ---: | --- | --- |"]
        for stage in plan(profile):
            study = stage.study
            if study is None:
                lines.append(f"| `{stage.name}` | {_text(stage.title, cell=True)} | | | | | |")
                continue
            tune = (f"; tuned: `{study.tune['key']}` in {', '.join(map(str, study.tune['values']))}"
                    if study.tune else "")
            lines.append(f"| `{stage.name}` | {_text(stage.title, cell=True)} | {stage.runs} | `{study.base}` | "
                         f"{study.seeds} | {_text(_values(study.grid), cell=True)}{tune} | "
                         f"{_text(_values(study.settings), cell=True)} |")
        if profile.shortcuts:
            lines += ["", "Shortcuts this profile takes (printed in its report):", ""]
            lines += [f"- {_text(shortcut)}" for shortcut in profile.shortcuts]
        lines.append("")
    return "\n".join(lines)


# (heading, module, members or None for all) of the API page; a module this checkout lacks is left out
API_MODULES: tuple[tuple[str, str, tuple[str, ...] | None], ...] = (
    ("From a notebook", "reslab.api.calls", None),
    ("From a notebook", "reslab.api.run", None),
    ("From a notebook", "reslab.api.sweep", None),
    ("From a notebook", "reslab.api.lab", None),
    ("From a notebook", "reslab.api.tables", None),
    ("From a notebook", "reslab.analyze.tools", None),
    ("Configuration", "reslab.config.schema", ("RunConfig", "DataConfig", "ModelConfig", "OptimConfig",
                                               "TrainConfig", "TrackConfig", "GradflowConfig", "DistillConfig")),
    ("Configuration", "reslab.config.convert", None),
    ("Configuration", "reslab.config.sources", None),
    ("Training and run folders", "reslab.runs", ("RunFolder",)),
    ("Training and run folders", "reslab.status", None),
    ("Training and run folders", "reslab.errors", None),
    ("Models", "reslab.models.registry", None),
    ("Depth studies", "reslab.sweep.runner", None),
    ("Depth studies", "reslab.sweep.spec", ("SweepSpec", "PlannedRun", "load_sweep", "sweep_spec")),
    ("Depth studies", "reslab.sweep.result", None),
    ("Instruments", "reslab.analyze.registry", None),
    ("The lab and reports", "reslab.lab.run", None),
    ("The lab and reports", "reslab.report.writer", None),
)


def api_page() -> str:
    """mkdocstrings directives for the package and its key modules (rendered from their docstrings)."""
    _import_checkout()
    import importlib.util

    lines = ["# Python API", "",
             "Rendered from the docstrings and signatures of the code by "
             "[mkdocstrings](https://mkdocstrings.github.io/) on every build. For working in a Jupyter notebook see "
             "[reslab in a notebook](../notebook.md).", "",
             "::: reslab", ""]
    heading = None
    for section, module, members in API_MODULES:
        try:
            if importlib.util.find_spec(module) is None:
                continue
        except ModuleNotFoundError:  # its package is missing
            continue
        if section != heading:
            lines += [f"## {section}", ""]
            heading = section
        lines.append(f"::: {module}")
        if members:
            lines += ["    options:", f"      members: [{', '.join(members)}]"]
        lines.append("")
    return "\n".join(lines)


def conclusions_page() -> str:
    """The README's generated section (bench/lab_conclusions.py writes it), as a page of the site."""
    lines = (ROOT / "README.md").read_text().splitlines()
    heading = "## What the lab concludes, and under which assumptions"
    start = lines.index(heading)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(["# What the lab concludes, and under which assumptions", "",
                      "This page is the README's section of the same name, which `bench/lab_conclusions.py` writes "
                      "from a finished lab folder (`python bench/lab_conclusions.py LAB --write README.md`).", "",
                      *lines[start + 1:end]]).rstrip() + "\n"


PAGES: dict[str, Callable[[], str]] = {"reference/cli.md": cli_page, "reference/config.md": config_page,
                                       "reference/presets.md": presets_page, "reference/lab-profiles.md": lab_page,
                                       "reference/api.md": api_page,
                                       "conclusions.md": conclusions_page}


def on_files(files: Any, config: Any) -> Any:
    """mkdocs hook: add the generated pages (in memory; nothing is written into docs/)."""
    from mkdocs.structure.files import File

    for uri, make in PAGES.items():
        files.append(File.generated(config, uri, content=make()))
    return files


if __name__ == "__main__":
    print({uri.split("/")[-1][:-3]: make for uri, make in PAGES.items()}[sys.argv[1]](), end="")
