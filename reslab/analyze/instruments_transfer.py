"""The registration of the transfer instrument: linear probes and k-NN on frozen features (`reslab analyze probe`),
compared with fine-tuning runs. `reslab.analyze.catalog` lists it."""

from __future__ import annotations

import argparse

from reslab.analyze.registry import Call, Instrument, add_common, deferred


def _probe_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sources", nargs="+", metavar="RUN", help="trained run folders (their best.pt, else last.pt)")
    p.add_argument("--finetuned", nargs="+", default=[], metavar="RUN",
                   help="fine-tuning runs (e.g. train.init_from with train.freeze) to list in the same table")
    p.add_argument("--max-train", type=int, metavar="N", help="fit on at most N training images (default: all)")
    p.add_argument("--k", type=int, default=20, metavar="K", help="neighbours of k-NN (default 20)")
    p.add_argument("--c", type=float, default=1.0, metavar="C", help="inverse regularisation of logistic "
                                                                     "regression and the SVM (default 1)")
    p.add_argument("--max-iter", type=int, default=5000, metavar="N", help="iterations of the linear probes "
                                                                           "(default 5000; they stop at convergence)")
    add_common(p, what="the training subset (--max-train)")


def _probe_call(args: argparse.Namespace) -> Call:
    from reslab.analyze.probe import ProbeOptions

    return Call(tuple(args.sources), ProbeOptions(finetuned=tuple(args.finetuned), max_train=args.max_train, k=args.k,
                                                  c=args.c, max_iter=args.max_iter))


PROBE = Instrument(
    name="probe", title="Frozen features: linear probes and k-NN, beside fine-tuning",
    help="transfer baseline: logistic regression, linear SVM and k-NN on a trained model's frozen features",
    description="Compute a trained model's features (what its head reads) on another dataset (--dataset, e.g. "
                "cifar100; --set data.classes=[5,6,7,8,9] for a split), fit scikit-learn's logistic regression (to "
                "convergence), a linear SVM and k-NN on them, and list fine-tuning runs (--finetuned) in the same "
                "table. The last line printed on stdout is the output folder.",
    add_arguments=_probe_arguments, from_args=_probe_call, prepare=deferred("reslab.analyze.probe", "prepare"),
    measure=deferred("reslab.analyze.probe", "measure_targets"),
    summarise=deferred("reslab.analyze.probe_summary", "summarise"))

TRANSFER: tuple[Instrument, ...] = (PROBE,)
