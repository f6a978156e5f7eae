"""The one format of an analysis folder, shared by `reslab gradflow` and every `reslab analyze` instrument.

An instrument writes its CSVs, figures and summary text, then `analysis.json` last: its presence says the
folder is complete, and it is all `reslab report` and `reslab lab` need to show the folder and read its
key numbers (`findings`) without knowing the instrument.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from reslab import __version__, files
from reslab.errors import ConfigError
from reslab.runs import RunFolder

RECORD_NAME = "analysis.json"
RECORD_VERSION = 1


@dataclass(frozen=True)
class AnalysisRecord:
    """What an analysis folder holds. Paths are file names inside the folder."""

    kind: str  # gradflow | lesion | shatter | landscape | init
    title: str  # one line for a report heading
    sources: tuple[str, ...]  # presets, config files or run folders, as given
    summary: str  # the summary text file's name
    figures: tuple[str, ...] = ()  # PNG file names, in the order to show them
    tables: tuple[str, ...] = ()  # CSV file names
    settings: Mapping[str, Any] = field(default_factory=dict)  # what was asked: seed, subset, points, ...
    findings: Mapping[str, Any] = field(default_factory=dict)  # flat key -> number or short text, for reports
    reference: str = ""  # the published result it should reproduce, one line
    seconds: float = 0.0  # wall time of the measurement


def write_record(out_dir: Path, record: AnalysisRecord) -> Path:
    """Write `analysis.json` (atomically, last of the folder's files); returns its path."""
    values = asdict(record) | {"version": RECORD_VERSION, "reslab_version": __version__,
                               "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    path = out_dir / RECORD_NAME
    files.write_json(path, values)
    return path


def check_output_dir(out: str | Path | None) -> None:
    """Fail before measuring when --out already holds something: nothing of the user's is overwritten."""
    path = Path(out) if out is not None else None
    if path is not None and path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ConfigError(f"--out {out} already exists and is not an empty folder; choose a new one")


def make_output_dir(out: str | Path | None, kind: str, sources: Sequence[str] = ()) -> Path:
    """--out (created), else a new uniquely named `<kind>-<date>-<time>-<id>` folder: inside the run's
    `analysis/` folder when the one source is a run folder, else under `analysis/` (gradflow: `gradflow/`)."""
    if out is None:
        runs = [Path(s) for s in sources if RunFolder.holds_run(Path(s))]
        if len(sources) == 1 and len(runs) == 1:
            parent = runs[0] / "analysis"
        else:
            parent = Path("gradflow" if kind == "gradflow" else "analysis")
        try:
            return files.new_folder(parent, kind)
        except OSError as exc:
            raise ConfigError(f"cannot create an analysis folder in {parent}: {exc.strerror or exc}") from None
    check_output_dir(out)
    try:
        Path(out).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create --out {out}: {exc.strerror or exc}") from None
    return Path(out)
