"""The registration of the transfer instrument: linear probes and k-NN on frozen features (`reslab analyze probe`),
compared with fine-tuning runs. `reslab.analyze.catalog` lists it."""

from __future__ import annotations

import argparse
from typing import Any

from reslab.analyze import lab_studies
from reslab.analyze.registry import Call, Instrument, LabSource, LabStage, add_common, steps
from reslab.checks import require

PROBE_STAGE = "probe-transfer"  # the lab stage (LAB/analyses/<name>) the report's transfer section reads


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


# the profile runs the three studies the probe stage reads (the source, its fine-tuning, the same net from scratch)
has_transfer = lab_studies.has_study(lab_studies.SOURCE, lab_studies.TRANSFER, lab_studies.SCRATCH)


def _probe_transfer(lab: LabSource) -> Call:
    """The source run's frozen features on the target classes, probed on as many training images as the fine-tuning
    runs train on (their data.train_size; all when they take all) and tested on their test images (the same classes
    and data.test_size), beside the fine-tuning and from-scratch runs of every seed."""
    from reslab.analyze.probe import ProbeOptions

    target = lab.profile.study(lab_studies.TRANSFER).settings
    settings = lab.settings("cifar") | {key: target[key] for key in ("data.classes", "data.test_size") if key in target}
    finetuned = (*lab.runs_of(lab_studies.TRANSFER, seed=None), *lab.runs_of(lab_studies.SCRATCH, seed=None))
    options = ProbeOptions(finetuned=finetuned, max_train=target.get("data.train_size"))
    source = lab.runs_of(lab_studies.SOURCE, seed=0)
    require(bool(source), f"the lab's probe stage needs the finished run of {lab_studies.SOURCE}; run the lab again")
    return Call(tuple(source), options, settings=settings)


PROBE = Instrument(
    name="probe", title="Frozen features: linear probes and k-NN, beside fine-tuning",
    help="transfer baseline: logistic regression, linear SVM and k-NN on a trained model's frozen features",
    description="Compute a trained model's features (what its head reads) on another dataset (--dataset, e.g. "
                "cifar100; --set data.classes=[5,6,7,8,9] for a split), fit scikit-learn's logistic regression (to "
                "convergence), a linear SVM and k-NN on them, and list fine-tuning runs (--finetuned) in the same "
                "table. The last line printed on stdout is the output folder.",
    add_arguments=_probe_arguments, from_args=_probe_call, **steps("reslab.analyze.probe"),
    lab=(LabStage(PROBE_STAGE, "Frozen source features on the target classes, beside fine-tuning",
                  _probe_transfer, when=has_transfer),))

TRANSFER: tuple[Instrument, ...] = (PROBE,)
