"""The instruments, registered once: each names its flags, its typed call, how it measures and summarises, and the
lab stages it runs. `reslab gradflow`, `reslab analyze <name>` and the lab's analysis stages are made from here.

An instrument is a measure module, a pure summary module (tables, figures, sentences: an `Analysis`) and an
`Instrument`. `run_instrument` is the one driver: resolve, check --out, measure, make the folder, summarise,
write through `AnalysisWriter`, record analysis.json with the time taken.
"""

from __future__ import annotations

import argparse
import importlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

from reslab.analyze.record import check_output_dir, make_output_dir
from reslab.checks import require, require_memory
from reslab.analyze.writer import Analysis, AnalysisWriter


@dataclass(frozen=True)
class Common:
    """What every instrument takes beside its own options: which data, which device, where to write."""

    overrides: tuple[str, ...] = ()  # --set items, on every model
    settings: Mapping[str, Any] = field(default_factory=dict)  # dotted keys set after them (--dataset, --data-dir)
    device: str = "auto"
    seed: int = 0
    out: str | Path | None = None  # None: a new folder beside the run, or under analysis/ (gradflow: gradflow/)
    svg: bool = False
    progress: bool = True


class LabSource(Protocol):
    """What a lab stage may ask of the lab. `reslab.lab` adapts its context to this (analyze does not import lab)."""

    @property
    def profile(self) -> Any: ...  # the lab's Profile: gradflow_batches, subset, lesion_draws, ...

    @property
    def device(self) -> str: ...

    def settings(self, which: str) -> dict[str, Any]: ...  # dotted keys that point a preset at the lab's mnist|cifar

    def mlp_pair(self, seed: int = 0) -> list[str]: ...  # the trained MLP twins (plain, residual) of one seed

    def conv_pair(self, seed: int = 0) -> list[str]: ...  # the deepest trained conv twins of one seed

    def depth_runs(self, seed: int = 0) -> list[str]: ...  # every MLP depth run of one seed, shallow to deep

    # the finished runs of the lab's study `study` (one seed, or every seed: None), plain before residual, then by seed
    def runs_of(self, study: str, seed: int | None = 0) -> list[str]: ...


@dataclass(frozen=True)
class Call:
    """One call of an instrument: the models or runs, its options, and dotted config keys set on every model."""

    sources: tuple[str, ...]
    options: Any
    settings: Mapping[str, Any] = field(default_factory=dict)


def _always(profile: Any) -> bool:
    return True


@dataclass(frozen=True)
class LabStage:
    """A lab stage made of an instrument: its name (the folder LAB/analyses/<name>), title, and the call it makes
    from the lab's trained runs and profile; `when(profile)` says whether the profile runs it."""

    name: str
    title: str
    call: Callable[[LabSource], Call]
    when: Callable[[Any], bool] = _always


@dataclass(frozen=True)
class Instrument:
    """One instrument. `prepare` resolves and checks the sources (before --out is checked, so bad input costs no
    measuring); `measure` measures; `summarise` is pure (an `Analysis`, nothing written)."""

    name: str  # the sub-command, the analysis kind, the prefix of its folder and summary
    title: str  # analysis.json's title
    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]  # flags; the sources' dest is `sources`
    from_args: Callable[[argparse.Namespace], Call]
    prepare: Callable[[Sequence[str], Any, Common], Any]  # (sources, options, common) -> what to measure
    measure: Callable[[Any, Any, Common], Any]  # (prepared, options, common) -> measurement
    summarise: Callable[[Any, Any, Common], Analysis]  # (measurement, options, common) -> Analysis
    lab: tuple[LabStage, ...] = ()


def deferred(module: str, name: str) -> Callable[..., Any]:
    """`module.name`, imported when first called: registering an instrument imports no torch, so building the
    command line (`reslab --help`) stays fast."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__module__ = module  # where it is defined: the owner of the names it writes
    return call


def steps(module: str) -> dict[str, Callable[..., Any]]:
    """An instrument's prepare, measure and summarise by the convention of every built-in one: `module.prepare`,
    `module.measure_targets` and `module_summary.summarise`, each imported when first called (`deferred`)."""
    return {"prepare": deferred(module, "prepare"), "measure": deferred(module, "measure_targets"),
            "summarise": deferred(module + "_summary", "summarise")}


def run_instrument(instrument: Instrument, sources: Sequence[str], options: Any,
                   common: Common = Common()) -> tuple[Path, str]:
    """The whole instrument: resolve, check --out, measure, make the folder, summarise, write, record; returns
    (output folder, summary text)."""
    started = time.perf_counter()
    prepared = instrument.prepare(sources, options, common)
    check_output_dir(common.out)
    measured = instrument.measure(prepared, options, common)
    out_dir = make_output_dir(common.out, instrument.name, sources)
    analysis = instrument.summarise(measured, options, common)
    writer = AnalysisWriter(out_dir, instrument.name, svg=common.svg)
    writer.write(analysis)
    writer.record(analysis, title=instrument.title, sources=sources, seconds=round(time.perf_counter() - started, 3))
    return out_dir, analysis.text


def run_call(instrument: Instrument, call: Call, common: Common = Common()) -> tuple[Path, str]:
    """`run_instrument` for a `Call`: its settings are set on every model after common's."""
    settings = {**common.settings, **call.settings}
    return run_instrument(instrument, call.sources, call.options, Common(
        overrides=common.overrides, settings=settings, device=common.device, seed=common.seed, out=common.out,
        svg=common.svg, progress=common.progress))


# ----------------------------------------------------------------------------- bounds of the instruments' flags

MAX_WORK = 10**13  # multiply-adds an instrument may be asked for: days on a CPU, hours on a GPU; beyond is a typo


def bounded(flag: str, value: int | float | None, low: float, high: float) -> None:
    """A flag's value within [low, high] and finite (None: the default); a one-line ConfigError otherwise."""
    if value is not None:
        require(not value < low, f"{flag} must be >= {low:g}, got {value}")
        require(value <= high, f"{flag} must be a finite number <= {high:g}, got {value}")  # NaN and inf fail here


def require_work(work: float, what: str, memory: float = 0) -> None:
    """Refuse, before measuring, a flag combination whose work (multiply-adds) or memory (bytes) is out of reach."""
    require(work <= MAX_WORK, f"{what} would take about {work:.2g} multiply-adds (more than {MAX_WORK:.0g}); "
                              "lower the flags that multiply it")
    require_memory(int(memory), what)


# ----------------------------------------------------------------------------- the flags most instruments share


def add_common(p: argparse.ArgumentParser, *, what: str) -> None:
    """The flags every `reslab analyze` instrument shares; `what` says what --seed seeds."""
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


def common_of(args: argparse.Namespace) -> Common:
    """The shared flags as a `Common`: --dataset and --data-dir become dotted keys, set after --set."""
    settings = {key: value for key, value in (("data.dataset", args.dataset), ("data.data_dir", args.data_dir))
                if value is not None}
    return Common(overrides=tuple(args.set), settings=settings, device=args.device, seed=args.seed, out=args.out,
                  svg=args.svg, progress=not args.quiet)
