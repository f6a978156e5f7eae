"""The command line: the only place argv is parsed. User errors print one line and exit 2."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, NoReturn, Sequence

from reslab.cli_studies import add_lab_parser, add_sweep_parser, cmd_lab, cmd_sweep
from reslab.errors import CheckpointError, ConfigError, ReslabError, first_line

if TYPE_CHECKING:
    from reslab.lab.run import LabResult
    from reslab.sweep.result import SweepResult

# the only exit codes of reslab: the layers below return typed results, and these functions map them
EXIT_FAILED = 1  # a sweep or the lab ran to its end, but a run failed (listed)
EXIT_USAGE = 2
EXIT_DIVERGED = 3  # the run was recorded; its loss turned NaN or infinite
EXIT_INTERRUPTED = 130  # a stop signal: run the same command again to continue


def sweep_exit_code(result: SweepResult) -> int:
    """0, EXIT_FAILED when a run of this invocation failed, EXIT_INTERRUPTED when a stop signal ended it."""
    return EXIT_INTERRUPTED if not result.completed else EXIT_FAILED if result.failed else 0


def lab_exit_code(result: LabResult) -> int:
    return EXIT_INTERRUPTED if not result.completed else EXIT_FAILED if result.failed_runs else 0


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and still exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _build_parser() -> argparse.ArgumentParser:
    from reslab import __version__

    parser = _Parser(prog="reslab", description="Train, measure and compare plain and residual networks.")
    parser.add_argument("--version", action="version", version=f"reslab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train a preset or config file into a run folder",
                       description="Train a preset or YAML config into runs/<name>-<id>/. The last line printed "
                                   "on stdout is the run folder.")
    t.add_argument("config", nargs="?", metavar="PRESET_OR_CONFIG_FILE",
                   help="a preset name (see `reslab list`) or a .yaml config file")
    t.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides, as --set takes them (Hydra and W&B Sweeps' style): "
                        "reslab train res-mlp8 train.epochs=1 data.train_size=512")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last.pt")
    t.add_argument("--dataset", metavar="SPEC", help="mnist, fashion-mnist, cifar10, cifar100 or imagefolder:PATH")
    t.add_argument("--epochs", type=int, metavar="N")
    t.add_argument("--seed", type=int, metavar="S")
    t.add_argument("--device", metavar="D", help="auto, cpu, cuda, cuda:N or mps")
    t.add_argument("--data-dir", metavar="D", help="dataset root (default: $RESLAB_DATA, else ./data)")
    t.add_argument("--runs-dir", metavar="D", help="where run folders go (default: runs)")
    t.add_argument("--name", metavar="N", help="run folder prefix (default: the preset's name)")
    t.add_argument("--track", action="append", choices=["tensorboard", "wandb"], default=None,
                   help="also log to TensorBoard and/or Weights & Biases (repeat for both); CSV is always written")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set model.depth=8 --set optim.lr=0.01")
    t.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    t.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")

    sub.add_parser("list", help="list presets and models", description="List presets and registered models.")
    from reslab.cli_analyze import add_gradflow

    add_gradflow(sub)  # built when main runs, so an instrument registered before appears
    _add_analyze_parser(sub)
    _add_report_parser(sub)
    add_sweep_parser(sub)
    add_lab_parser(sub)
    return parser


def _add_analyze_parser(sub: Any) -> None:
    from reslab.cli_analyze import add_instruments

    a = sub.add_parser("analyze", help="instruments that explain residual learning (lesion, shatter, landscape, "
                                       "init, gradflow)",
                       description="Measure trained or fresh models with one instrument; each writes a folder of CSVs, "
                                   "figures, a summary and analysis.json. The last line printed on stdout is that "
                                   "folder.")
    group = a.add_subparsers(dest="instrument", required=True, parser_class=_Parser)
    add_instruments(group)  # every registered instrument; `reslab analyze gradflow` is `reslab gradflow`


def _add_report_parser(sub: Any) -> None:
    r = sub.add_parser("report", help="a report (Markdown + self-contained HTML) of runs, sweeps and analyses",
                       description="Read run, sweep and analysis folders (or folders of them) and write report.md, "
                                   "figures and a self-contained report.html: per run its curves, summary, "
                                   "classification report, confusion matrix and analyses; for several runs a "
                                   "comparison table and overlaid curves; per sweep what was swept, its figures, "
                                   "tables and conclusions; per analysis its summary, figures and tables. "
                                   "The last line printed on stdout is the report folder.")
    r.add_argument("runs", nargs="*", metavar="RUN_OR_FOLDER",
                   help="a run, sweep or analysis folder, or a folder of them")
    r.add_argument("--out", metavar="DIR", help="report folder: new, empty, or an earlier report "
                                                "(default: a new reports/report-<date>-<time>-<id>)")
    r.add_argument("--svg", action="store_true", help="also write every figure as SVG")


# flag -> dotted config key, for the flags that are shorthands for --set
_FLAG_KEYS = {"dataset": "data.dataset", "epochs": "train.epochs", "seed": "train.seed", "device": "train.device",
              "data_dir": "data.data_dir", "runs_dir": "runs_dir", "name": "name"}
_RESUME_FLAGS = {"epochs", "device", "data_dir"}  # what may change when a run continues


RESUMABLE_KEYS = tuple(sorted(_FLAG_KEYS[k] for k in _RESUME_FLAGS)) + ("track.sinks",)  # what a resume may set


def _resolve_train_config(args: argparse.Namespace) -> Any:
    flags = {k: getattr(args, k) for k in _FLAG_KEYS if getattr(args, k) is not None}
    if args.config and "=" in args.config and not Path(args.config).exists():  # `reslab train --resume R k=v`
        args.config, args.overrides = None, [args.config, *args.overrides]
    sets = [*args.set, *args.overrides]  # positional key=value items are --set items, after the --set ones
    if args.resume:
        fixed = ["--" + k.replace("_", "-") for k in sorted(set(flags) - _RESUME_FLAGS)]
        fixed += ["--set"] * bool(sets) + [args.config] * bool(args.config)
        if fixed:
            raise ConfigError(f"--resume continues a run as configured; it cannot take {', '.join(fixed)} "
                              "(allowed: --epochs, --device, --data-dir, --track)")
    settings = {_FLAG_KEYS[key]: value for key, value in flags.items()}
    if args.track:
        settings["track.sinks"] = sorted(set(args.track))
    return run_config(args.config, resume=args.resume, sets=sets, settings=settings)


def run_config(source: str | Mapping[str, Any] | None, *, resume: str | Path | None = None, sets: Sequence[str] = (),
               settings: Mapping[str, Any] | None = None) -> Any:
    """The RunConfig `reslab train` trains (and `reslab.train`): a preset, a YAML file, raw values, or with `resume`
    the run folder's config.yaml; then `sets` ('key=value' strings, as --set), then `settings` (dotted key -> value).
    Unknown keys and bad values are one-line ConfigErrors."""
    from reslab import config

    if resume:
        from reslab.runs import RunFolder

        cfg_path = RunFolder(Path(resume)).config
        if not Path(resume).is_dir():
            raise CheckpointError(f"run folder {resume} does not exist")
        if not cfg_path.is_file():
            raise CheckpointError(f"{resume} is not a reslab run folder (no {cfg_path.name})")
        values = config.load_source(str(cfg_path))
    elif isinstance(source, Mapping):
        values = dict(source)
    elif source:
        values = config.load_source(source)
    else:
        raise ConfigError("give a preset or config file to train (see `reslab list`), or --resume RUN_DIR")
    values = config.apply_overrides(values, list(sets))  # a deep copy
    for key, value in (settings or {}).items():
        config.set_key(values, key.split("."), value)
    return config.from_dict(values)


def _cmd_train(args: argparse.Namespace) -> int:
    from reslab import config
    from reslab.distributed import is_rank0_process
    from reslab.status import RunStatus
    from reslab.train import Interrupted, train

    cfg = _resolve_train_config(args)
    if args.print_config:
        print(config.dump_yaml(cfg), end="")
        return 0
    rank0 = is_rank0_process()  # under torchrun rank 0 alone prints the outcome
    try:
        result = train(cfg, resume=args.resume, progress=not args.quiet)
    except Interrupted as exc:
        if rank0:
            print(f"reslab: {exc}", file=sys.stderr)
            print(exc.run_dir)
        return EXIT_INTERRUPTED
    from reslab.status import RunStatus

    s = result.summary
    diverged = RunStatus.parse(s["status"]) is RunStatus.DIVERGED
    if not rank0:
        return EXIT_DIVERGED if diverged else 0
    if diverged:
        print(f"reslab: {cfg.name} diverged at step {s['diverged_step']} (training loss {s['diverged_loss']}); "
              f"recorded in {result.run_dir}", file=sys.stderr)
        print(result.run_dir)
        return EXIT_DIVERGED
    best = f"best_val_acc {s['best_val_acc']:.4f} (epoch {s['best_epoch']}) " if s["best_val_acc"] is not None else ""
    print(f"{cfg.name}: {s['epochs']} epochs, {best}test_acc {s['test_acc']:.4f} test_loss {s['test_loss']:.4f}, "
          f"{s['train_seconds']:.1f} s training, {s['samples_per_s']:.0f} samples/s", file=sys.stderr)
    print(result.run_dir)
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from reslab.config import load_source, preset_names
    from reslab.models import model_args, model_names

    print("presets:")
    for name in preset_names():
        values = load_source(name)
        model = values.get("model", {})
        print(f"  {name:<12} {model.get('name', '?'):<13} on {values.get('data', {}).get('dataset', '?')}")
    print("models:")
    for name in model_names():
        args_text = ", ".join(f"{k}={v[1]!r}" for k, v in model_args(name).items())
        print(f"  {name:<12} {args_text}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from reslab.report.build import build_report
    from reslab.report.writer import HTML, MARKDOWN

    out_dir = build_report(args.runs, out=args.out, svg=args.svg)
    print(f"reslab: report written: {out_dir / HTML} and {out_dir / MARKDOWN}", file=sys.stderr)
    print(out_dir)
    return 0


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """parse_args, except that `reslab train`'s key=value items may also follow its flags (`--set a=1 b=2`)."""
    args, extra = parser.parse_known_args(argv)
    if extra and args.command == "train" and not any(item.startswith("-") for item in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    try:  # building the parser imports the instruments (torch): a Ctrl-C then is an interrupt too
        args = _parse(_build_parser(), argv)
        return {"train": _cmd_train, "list": _cmd_list, "gradflow": lambda a: a.handler(a),
                "report": _cmd_report, "sweep": lambda a: sweep_exit_code(cmd_sweep(a)),
                "lab": lambda a: lab_exit_code(cmd_lab(a)), "analyze": lambda a: a.handler(a)}[args.command](args)
    except ReslabError as exc:
        print(f"reslab: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("reslab: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:  # a full disk, a read-only folder: the path and the cause, in one line
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"reslab: error: cannot write or read {where}{exc.strerror or first_line(exc)}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
