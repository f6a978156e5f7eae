"""The `reslab analyze` instruments' command lines: one `_add_<name>` (its flags) and one `_run_<name>` (the call
into reslab.analyze) per instrument. `reslab.cli` owns the group, the error handling and the exit codes.
"""

from __future__ import annotations

import argparse
from pathlib import Path
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


def common_args(args: argparse.Namespace) -> dict[str, Any]:
    """The `_common` flags as the keyword arguments every `run_<instrument>` takes."""
    return {"overrides": args.set, "settings": settings_of(args), "device": args.device, "seed": args.seed,
            "out": args.out, "svg": args.svg, "progress": not args.quiet}


def _show(out_dir: Path, text: str) -> int:
    """Print an instrument's summary, then its output folder as the last line of stdout."""
    print(text)
    print(out_dir)
    return 0


def _add_lesion(group: Any) -> None:
    p = group.add_parser("lesion", help="test error of trained nets after deleting or swapping blocks (Veit et al. "
                                        "2016)",
                         description="Delete each block alone (a block becomes its shortcut), k random blocks "
                                     "(k = 1..n) and swap k pairs of same-shape blocks of trained nets; write the test "
                                     "errors, figures and a summary beside Veit et al. 2016's expectation. The last "
                                     "line printed on stdout is the output folder.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="a run folder with checkpoints (a plain/residual pair "
                                                          "side by side)")
    p.add_argument("--at", choices=["best", "last"], default="best", help="which checkpoint (default best)")
    p.add_argument("--subset", type=int, metavar="N", help="evaluate on N test images drawn with --seed (default: "
                                                           "the whole test set)")
    p.add_argument("--draws", type=int, default=10, metavar="N", help="random draws per k (default 10; fewer are "
                                                                      "faster and noisier)")
    _common(p, what="the test subset and the blocks deleted or swapped")
    p.set_defaults(handler=_run_lesion)


def _run_lesion(args: argparse.Namespace) -> int:
    from reslab.analyze.lesion_output import run_lesion

    return _show(*run_lesion(args.runs, at=args.at, subset=args.subset, draws=args.draws, **common_args(args)))


def _add_init(group: Any) -> None:
    p = group.add_parser("init", help="activation std block by block at initialisation, per block form (plain, "
                                      "batch norm, plain sum, ReZero, Fixup)",
                         description="At initialisation, measure the std of each block's output and the ratio of its "
                                     "branch to its skip. Given one model, compare the block forms at its depth; "
                                     "given several, measure them as given. The last line printed on stdout is the "
                                     "output folder.")
    p.add_argument("models", nargs="+", metavar="MODEL", help="a preset, a .yaml config file or a run folder (at init)")
    p.add_argument("--forms", metavar="LIST", help="comma-separated block forms to build each model in: plain, "
                                                   "plain-bn, residual-bn, residual, rezero, fixup, or 'given' "
                                                   "(default: plain,residual-bn,residual,rezero,fixup for one model, "
                                                   "given for several)")
    p.add_argument("--batches", type=int, default=4, metavar="N", help="training batches to average over (default 4)")
    _common(p, what="the batches drawn (the weights are seeded by each config's train.seed)")
    p.set_defaults(handler=_run_init)


def _run_init(args: argparse.Namespace) -> int:
    from reslab.analyze.init_output import run_init

    return _show(*run_init(args.models, forms=args.forms, batches=args.batches, **common_args(args)))


# each instrument appends its `_add_<name>` here (lesion, shatter, landscape, init)
INSTRUMENTS: tuple[Callable[[Any], None], ...] = (_add_lesion, _add_init)
