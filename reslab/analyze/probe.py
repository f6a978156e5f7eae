"""Linear probes and k-NN on frozen features (`reslab analyze probe`): the stable transfer baseline.

A trained model's features, `pool(features(x)).flatten(1)` (what its head reads), are computed once for the probe
dataset's training and test images (no augmentation, eval mode); scikit-learn classifiers are fitted on them:
logistic regression run to convergence (lbfgs; whether it converged is recorded), a linear SVM, and k-NN (cosine
distance). Features are standardised with the training set's mean and std first (k-NN on the raw features).
Fine-tuning runs (`--finetuned RUN`, e.g. `train.init_from` runs with several `train.freeze`) join the same table
from their summary.json, so probe and fine-tuning are compared on the same test set when their configs agree.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from reslab.analyze.registry import Common, bounded
from reslab.analyze.targets import Target, check_seed, resolve_targets, shared_data
from reslab.data import DeviceLoader, ImageData
from reslab.errors import CheckpointError, ConfigError
from reslab.loaders import test_subset
from reslab.runs import RunFolder
from reslab.runtime import build_for, select_device
from reslab.transfer import load_backbone, read_weights

METHODS = ("logreg", "linear-svm", "knn")


@dataclass(frozen=True)
class ProbeOptions:
    finetuned: tuple[str, ...] = ()  # fine-tuning run folders to list beside the probes
    max_train: int | None = None  # fit on at most this many training images (seeded subset)
    k: int = 20  # neighbours of k-NN
    c: float = 1.0  # inverse regularisation of logistic regression and the SVM
    max_iter: int = 5000  # logistic regression's iterations (it stops earlier when it converges)


@dataclass(frozen=True)
class ProbeRow:
    model: str
    method: str
    test_acc: float | None
    test_top5: float | None = None
    seconds: float | None = None
    converged: bool | None = None
    n_train: int | None = None
    n_test: int | None = None
    note: str = ""


@dataclass(frozen=True)
class Prepared:
    targets: list[Target]
    finetuned: list[RunFolder]


def prepare(sources: Sequence[str], options: ProbeOptions, common: Common) -> Prepared:
    """Run folders (their best.pt, else last.pt) to probe, and the fine-tuning runs to list; bad input is one line."""
    bounded("--k", options.k, 1, 10**5)
    bounded("--c", options.c, 1e-12, 1e12)
    bounded("--max-iter", options.max_iter, 1, 10**7)
    bounded("--max-train", options.max_train, 1, 10**8)
    check_seed(common.seed)
    for source in sources:
        if not (Path(source).is_dir() and RunFolder(Path(source)).config.is_file()):
            raise ConfigError(f"probe needs trained run folders; {source} is not one")
    targets = resolve_targets(sources, at=("init",), overrides=common.overrides, settings=common.settings)
    finetuned = []
    for run in options.finetuned:
        folder = RunFolder(Path(run))
        if folder.read_summary() is None:
            raise CheckpointError(f"--finetuned {run} is not a finished run folder (no {folder.summary.name})")
        finetuned.append(folder)
    return Prepared(targets=targets, finetuned=finetuned)


def features_of(model: nn.Module, loader: DeviceLoader) -> tuple[np.ndarray, np.ndarray]:
    """`pool(features(x)).flatten(1)` for every image of `loader`, in eval mode, as float64 arrays."""
    model.eval()
    xs, ys = [], []
    with torch.no_grad():
        for x, y in loader:
            xs.append(model.pool(model.features(x)).flatten(1).double().cpu())  # type: ignore[operator]
            ys.append(y.cpu())
    return torch.cat(xs).numpy(), torch.cat(ys).numpy()


def _loaders(target: Target, data: ImageData, device: torch.device, channels_last: bool, max_train: int | None,
             seed: int) -> tuple[DeviceLoader, DeviceLoader]:
    train_idx = torch.randperm(len(data.train_y), generator=torch.Generator().manual_seed(seed))[:max_train]
    test_idx = test_subset(len(data.test_y), target.cfg.data.test_size)
    common = dict(batch_size=target.cfg.data.eval_batch_size, mean=data.mean, std=data.std, device=device,
                  channels_last=channels_last)
    return (DeviceLoader(data.train_x[train_idx], data.train_y[train_idx], **common),
            DeviceLoader(data.test_x[test_idx], data.test_y[test_idx], **common))


def top5(scores: np.ndarray, classes: np.ndarray, y: np.ndarray) -> float | None:
    """Top-5 accuracy from per-class scores (columns in `classes` order); None with 10 classes or fewer."""
    if scores.ndim != 2 or scores.shape[1] <= 10:
        return None
    best = classes[np.argsort(-scores, axis=1)[:, :5]]
    return float((best == y[:, None]).any(1).mean())


def fit_all(train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], options: ProbeOptions,
            label: str) -> list[ProbeRow]:
    """The three baselines on one model's features."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    (x, y), (xt, yt) = train, test
    scaler = StandardScaler().fit(x)
    xs, xts = scaler.transform(x), scaler.transform(xt)
    rows = []
    for method in METHODS:
        t0 = time.perf_counter()
        converged = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            if method == "logreg":
                clf = LogisticRegression(C=options.c, max_iter=options.max_iter).fit(xs, y)
                converged = bool(np.all(np.asarray(clf.n_iter_) < options.max_iter))
                scores = clf.predict_proba(xts)
            elif method == "linear-svm":
                clf = LinearSVC(C=options.c, max_iter=options.max_iter).fit(xs, y)
                converged = bool(np.all(np.asarray(clf.n_iter_) < options.max_iter))
                scores = clf.decision_function(xts)
            else:
                clf = KNeighborsClassifier(n_neighbors=min(options.k, len(y)), metric="cosine").fit(x, y)
                scores = clf.predict_proba(xt)
        pred = clf.classes_[np.argmax(scores, axis=1)] if scores.ndim == 2 else clf.predict(xts)
        rows.append(ProbeRow(model=label, method=method, test_acc=float((pred == yt).mean()),
                             test_top5=top5(scores, clf.classes_, yt), seconds=time.perf_counter() - t0,
                             converged=converged, n_train=len(y), n_test=len(yt)))
    return rows


def finetuned_row(folder: RunFolder) -> ProbeRow:
    """A fine-tuning run as a row: its test accuracy, and what it started from and froze."""
    s, cfg = folder.read_summary() or {}, folder.read_config()
    train = cfg.get("train") if isinstance(cfg.get("train"), dict) else {}
    source = (s.get("init_from") or {}).get("from") if isinstance(s.get("init_from"), dict) else None
    note = (f"from {Path(str(source)).name}" if source else "from scratch") + f", freeze {train.get('freeze', 'none')}"
    number = lambda v: float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None  # noqa: E731
    support = s.get("test_support")
    return ProbeRow(model=folder.path.name, method="fine-tune", test_acc=number(s.get("test_acc")),
                    test_top5=number(s.get("test_top5")), seconds=number(s.get("train_seconds")),
                    n_test=sum(support) if isinstance(support, list) and all(isinstance(v, int) for v in support)
                    else None, note=note)


def measure_targets(prepared: Prepared, options: ProbeOptions, common: Common) -> list[ProbeRow]:
    """Features of every target on the shared probe data, the baselines on them, then the fine-tuning rows."""
    device = select_device(common.device)
    data, _, _ = shared_data(prepared.targets)
    rows: list[ProbeRow] = []
    for target in prepared.targets:
        model, channels_last = build_for(target.cfg, data, device)  # the probe data's class count: a head unused
        load_backbone(model, read_weights(target.run_dir, "probe"), keep_head=False, what="probe")  # type: ignore
        train_loader, test_loader = _loaders(target, data, device, channels_last, options.max_train, common.seed)
        train, test = features_of(model, train_loader), features_of(model, test_loader)
        if common.progress:
            print(f"probe: {target.label}: {train[0].shape[1]} features of {len(train[1])} training and "
                  f"{len(test[1])} test images of {data.name}", file=sys.stderr)
        rows += fit_all(train, test, options, target.label)
    return rows + [finetuned_row(f) for f in prepared.finetuned]


def probe_settings(options: ProbeOptions, data_name: str | None = None) -> dict[str, Any]:
    return {"k": options.k, "c": options.c, "max_iter": options.max_iter, "max_train": options.max_train,
            "finetuned": list(options.finetuned), **({"dataset": data_name} if data_name else {})}
