"""The `reslab analyze` instruments' command lines: one `_add_<name>` (its flags) and one `_run_<name>` (the call
into reslab.analyze) per instrument. `reslab.cli` owns the group, the error handling and the exit codes.
"""

from __future__ import annotations

import argparse
from typing import Any, Callable

Handler = Callable[[argparse.Namespace], int]


def add_instruments(group: Any) -> None:
    """Add every instrument's subcommand to the `reslab analyze` group; each sets `handler`."""
    for add in INSTRUMENTS:
        add(group)


def _common(p: argparse.ArgumentParser, *, what: str) -> None:
    """The flags every instrument shares."""
    p.add_argument("--data-dir", metavar="D", help="dataset root (default: $RESLAB_DATA, else ./data)")
    p.add_argument("--dataset", metavar="SPEC", help="one dataset for all models (mnist, cifar10, imagefolder:PATH)")
    p.add_argument("--device", metavar="D", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--seed", type=int, default=0, metavar="S", help=f"seeds {what} (default 0)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key of every model, e.g. model.depth=8")
    p.add_argument("--out", metavar="DIR", help="output folder, new or empty (default: RUN/analysis/<kind>-<id> for "
                                                "one run, else analysis/<kind>-<id>)")
    p.add_argument("--svg", action="store_true", help="also write every figure as SVG (beside its PNG)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def settings_of(args: argparse.Namespace) -> dict[str, Any]:
    """The shorthand flags as dotted config keys, set on every model after --set."""
    return {key: value for key, value in (("data.dataset", args.dataset), ("data.data_dir", args.data_dir))
            if value is not None}


# each instrument appends its `_add_<name>` here (lesion, shatter, landscape, init)
INSTRUMENTS: tuple[Callable[[Any], None], ...] = ()
