"""Every registered instrument as a Python function: `reslab.analyze.<name>(*sources, **flags)` runs what
`reslab analyze <name> SOURCES --flag value ...` runs (the same registration, flags and driver, `run_call`).

Flags are keyword arguments named like the command's flags (`batches=3` is `--batches 3`, `notebook_kernel=True`
is `--notebook-kernel`, a list repeats the flag: `at=["init", "last"]`; `set={"model.depth": 8}` is --set); a bad
one is a one-line ConfigError. The result names the analysis folder, its summary text and its figures.
"""

from __future__ import annotations

import argparse
import base64
import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, NoReturn

from reslab.analyze.catalog import get, instruments
from reslab.analyze.registry import common_of, run_call
from reslab.errors import ConfigError


@dataclass(frozen=True)
class AnalysisResult:
    """What an instrument wrote: its folder (CSVs, figures, summary, analysis.json) and its summary text."""

    folder: Path
    text: str

    @property
    def figures(self) -> list[Path]:
        """The analysis' PNG figures, by name."""
        return sorted(self.folder.glob("*.png"))

    def _repr_html_(self) -> str:
        images = "".join(f'<img src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}" '
                         f'alt="{html.escape(p.name)}" style="max-width:100%"/>' for p in self.figures)
        return f"<p>{html.escape(str(self.folder))}</p><pre>{html.escape(self.text)}</pre>{images}"


class _Parser(argparse.ArgumentParser):
    """The instrument's flags; a bad one is a ConfigError, not SystemExit."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{self.prog}: {message}")


def argv(sources: tuple[Any, ...], flags: Mapping[str, Any]) -> list[str]:
    """The command line the keyword arguments stand for."""
    out = [str(s) for s in sources]
    for key, value in flags.items():
        flag = "--" + key.replace("_", "-")
        if key == "set" and isinstance(value, Mapping):
            value = [f"{k}={v}" for k, v in value.items()]
        if value is True:
            out.append(flag)
        elif value is None or value is False:
            continue
        elif isinstance(value, (list, tuple)):
            for item in value:
                out += [flag, str(item)]
        else:
            out += [flag, str(value)]
    return out


def run(name: str, *sources: Any, **flags: Any) -> AnalysisResult:
    """Run the instrument `name` on `sources` (presets, config files or run folders) with `flags`."""
    try:
        instrument = get(name)
    except KeyError:
        raise ConfigError(f"no instrument {name!r}; registered: {', '.join(names())}") from None
    parser = _Parser(prog=f"reslab.analyze.{name}", description=instrument.description)
    instrument.add_arguments(parser)
    args = parser.parse_args(argv(sources, flags))
    out_dir, text = run_call(instrument, instrument.from_args(args), common_of(args))
    return AnalysisResult(Path(out_dir), text)


def names() -> list[str]:
    """The registered instruments' names."""
    return [i.name for i in instruments()]


def help_text(name: str) -> str:
    """The instrument's description and flags, as `reslab analyze NAME --help` prints them."""
    parser = _Parser(prog=f"reslab.analyze.{name}", description=get(name).description)
    get(name).add_arguments(parser)
    return parser.format_help()
