"""The instruments' command lines, made from their registrations (`reslab.analyze.registry`): `reslab gradflow`
and `reslab analyze <name>`. `reslab.cli` owns the groups, the error handling and the exit codes.
"""

from __future__ import annotations

import argparse
from functools import partial
from typing import Any

from reslab.analyze.catalog import get, instruments
from reslab.analyze.registry import Instrument, common_of, run_call


def add_instrument(sub: Any, instrument: Instrument) -> None:
    """One instrument's sub-command, with its flags; sets `handler`."""
    p = sub.add_parser(instrument.name, help=instrument.help, description=instrument.description)
    instrument.add_arguments(p)
    p.set_defaults(handler=partial(_run, instrument))


def add_instruments(group: Any) -> None:
    """Every registered instrument's sub-command in the `reslab analyze` group, in the registry's order."""
    for instrument in instruments():
        add_instrument(group, instrument)


def add_gradflow(sub: Any) -> None:
    """`reslab gradflow`: the same command as `reslab analyze gradflow`."""
    add_instrument(sub, get("gradflow"))


def _run(instrument: Instrument, args: argparse.Namespace) -> int:
    """Run the instrument, print its summary, then its output folder as the last line of stdout."""
    out_dir, text = run_call(instrument, instrument.from_args(args), common_of(args))
    print(text)
    print(out_dir)
    return 0
