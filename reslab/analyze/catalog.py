"""Which instruments there are: the built-in registrations (`reslab.analyze.instruments`, then
`instruments_explain` (cam), `instruments_detect` (fcn), `instruments_transfer` (probe)) and those registered at run
time (tests, plug-ins). The CLI and the lab ask here; `registry` holds the shapes and the driver, so the instruments
import it and it imports none of them.
"""

from __future__ import annotations

from reslab.analyze.instruments import BUILTIN
from reslab.analyze.instruments_detect import DETECT
from reslab.analyze.instruments_explain import EXPLAIN
from reslab.analyze.instruments_transfer import TRANSFER
from reslab.analyze.registry import Instrument

_REGISTERED: dict[str, Instrument] = {}  # registered at run time (tests, plug-ins), after the built-in ones


def instruments() -> tuple[Instrument, ...]:
    """Every instrument, in the order the CLI lists them and the lab runs their stages."""
    return (*BUILTIN, *EXPLAIN, *DETECT, *TRANSFER, *_REGISTERED.values())


def get(name: str) -> Instrument:
    found = {i.name: i for i in instruments()}
    if name not in found:
        raise KeyError(f"no instrument {name!r}; registered: {', '.join(found)}")
    return found[name]


def register(instrument: Instrument) -> Instrument:
    """Add an instrument: it appears in `reslab analyze` and its lab stages in the lab's plan."""
    if instrument.name in {i.name for i in instruments()}:
        raise ValueError(f"an instrument named {instrument.name!r} is registered already")
    _REGISTERED[instrument.name] = instrument
    return instrument


def unregister(name: str) -> None:
    _REGISTERED.pop(name, None)
