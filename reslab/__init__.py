"""reslab: how depth and residual connections change what a neural network can learn.

From Python (every name resolved on first use, so `import reslab` imports neither torch nor pandas):

- `reslab.train(preset_or_cfg, **overrides)`, `reslab.sweep(file_or_dict)`, `reslab.lab(...)`: what the commands
  run, returning a `Run`, `Sweep` or `Lab` (overrides: `train__epochs=1` sets train.epochs);
- `reslab.load_run(dir)`, `reslab.load_sweep(dir)`, `reslab.load_lab(dir)`: folders as objects whose tables are
  pandas DataFrames (`pip install 'reslab[notebook]'`) and whose plots are matplotlib Figures;
- `reslab.analyze.<instrument>(*sources, **flags)`: every registered instrument (gradflow, lesion, shatter, ...).

`reslab.train`, `reslab.sweep` and `reslab.lab` are also the modules that implement them (`import reslab.train as t`
still gives the module): calling the module calls the API function (`reslab.api.calls`).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__version__ = "0.1.0"

# public name -> the module that defines it (imported when the name is first used); the API is the top layer
_API = "reslab.api"
_LAZY = {"load_run": f"{_API}.run", "Run": f"{_API}.run", "load_sweep": f"{_API}.sweep", "Sweep": f"{_API}.sweep",
         "load_lab": f"{_API}.lab", "Lab": f"{_API}.lab", "Stopped": f"{_API}.calls", "ReslabError": "reslab.errors"}
_CALLABLE = ("train", "sweep", "lab")  # submodules that are also the API's functions of the same name
__all__ = ["__version__", "analyze", *_CALLABLE, *_LAZY]


class _CallableModule(types.ModuleType):
    """A reslab submodule that, called, runs the API function of its name (`reslab.train(...)`)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        function = getattr(importlib.import_module(f"{_API}.calls"), self.__name__.rpartition(".")[2])
        return function(*args, **kwargs)


class _Package(types.ModuleType):
    """The package: a submodule named like an API function becomes callable when it is imported."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _CALLABLE and type(value) is types.ModuleType:  # the import system recording the submodule
            value.__class__ = _CallableModule
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package  # the documented way to customise a module's attributes


def __getattr__(name: str) -> Any:
    """The API's names, imported on first use."""
    if name in (*_CALLABLE, "analyze"):
        return importlib.import_module(f"{__name__}.{name}")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'reslab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
