"""`reslab analyze probe`'s summary (pure): one table of the probes and fine-tuning runs, findings and sentences."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Sequence

from reslab.analyze.probe import ProbeOptions, ProbeRow, probe_settings
from reslab.analyze.registry import Common
from reslab.analyze.writer import Analysis, Table

REFERENCE = ("Kornblith, Shlens and Le 2019 (Do better ImageNet models transfer better?): logistic regression on "
             "frozen penultimate features, run to convergence, as the linear-transfer baseline; k-NN as in Wu et al. "
             "2018")
PROBE_CSV = "probe.csv"  # the table of probes and fine-tuning runs (the lab's transfer section reads it)
FIELDS = ["model", "method", "test_acc", "test_top5", "seconds", "converged", "n_train", "n_test", "note"]
WORDS = {"logreg": "logistic regression", "linear-svm": "a linear SVM", "knn": "k-NN", "fine-tune": "fine-tuning"}


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def summarise(rows: Sequence[ProbeRow], options: ProbeOptions, common: Common) -> Analysis:
    table = [{k: ("" if v is None else v) for k, v in asdict(r).items()} for r in rows]
    lines = [f"{'model':<40} {'method':<11} {'test acc':>9} {'top-5':>7}  note"]
    lines += [f"{r.model[:40]:<40} {r.method:<11} {_pct(r.test_acc):>9} {_pct(r.test_top5):>7}  "
              + (r.note or ("" if r.converged is not False else "did not converge: raise --max-iter")) for r in rows]
    findings: dict[str, Any] = {}
    scored = [r for r in rows if r.test_acc is not None]
    if scored:
        best = max(scored, key=lambda r: r.test_acc)  # type: ignore[arg-type, return-value]
        findings.update(best_method=best.method, best_model=best.model, best_test_acc=best.test_acc)
        lines.append(f"Best: {WORDS.get(best.method, best.method)} on {best.model} ({_pct(best.test_acc)} test "
                     f"accuracy, n = {best.n_test or '?'} test images).")
    for r in rows:
        findings[f"{r.model}/{r.method}/test_acc"] = r.test_acc
    if any(r.converged is False for r in rows):
        lines.append("Some linear probes stopped at --max-iter before converging; their numbers are lower bounds.")
    dataset = common.settings.get("data.dataset")
    return Analysis(text="\n".join(lines), tables=(Table(PROBE_CSV, table, FIELDS),),
                    settings=probe_settings(options, dataset), findings=findings, reference=REFERENCE)
