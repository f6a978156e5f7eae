"""Analyses of models and runs (layer 5): each instrument is a measure module (`gradflow`, `lesion`, `shatter`,
`landscape`, `init`), a pure summary module (`<name>_summary`) and a registration (`registry`, `instruments`);
`run_instrument` resolves, measures, and writes its folder through `writer`.

From Python, every registered instrument is callable here: `reslab.analyze.gradflow("seed-cnn", "seed-resnet",
batches=3)` runs `reslab analyze gradflow seed-cnn seed-resnet --batches 3` (see `tools`). An instrument's measure
module has its name, so that module is what is called (`import reslab.analyze.gradflow` still gives the module).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any


class _InstrumentModule(types.ModuleType):
    """A module of this package that, called, runs the instrument of its name (`tools.run`)."""

    def __call__(self, *sources: Any, **flags: Any) -> Any:
        from reslab.analyze import tools

        name = self.__name__.rpartition(".")[2]
        if name not in tools.names():
            raise TypeError(f"{self.__name__} is a module, not an instrument; instruments: {', '.join(tools.names())}")
        return tools.run(name, *sources, **flags)


class _Package(types.ModuleType):
    """The package: its submodules become callable as they are imported (those named like an instrument run it)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if type(value) is types.ModuleType and value.__name__ == f"{self.__name__}.{name}":
            value.__class__ = _InstrumentModule
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package  # the documented way to customise a module's attributes


def __getattr__(name: str) -> Any:
    """A submodule (imported now), else an instrument registered at run time (one without a module of its name)."""
    if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")
    from reslab.analyze import tools

    if name in tools.names():
        def run(*sources: Any, **flags: Any) -> Any:
            return tools.run(name, *sources, **flags)

        run.__name__, run.__doc__ = name, tools.help_text(name)
        return run
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
