"""The notebook's own experiments, measured again, beside the numbers the notebook printed.

The notebook's values are quoted from its text (seed/000_26072b11497695dd.txt) and kept here, in one
place; every reslab number comes from the lab's run folders and analysis folders.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from reslab.lab.conclude import Finding, Rows, ci, loss, num, pct, pp
from reslab.report.document import Table
from reslab.status import RunStatus
from reslab.sweep import RunRow
from reslab.intervals import t_interval, welch_interval

# what the notebook reports (its text, not its code): Exercise 1.1, 1.2 and 2
NOTEBOOK = {"mlp": {"val_acc": 0.92, "train_loss": 0.25, "epochs": 15},
            "cnn": {"val_acc": 0.56, "train_loss": 1.31, "epochs": 10},
            "resnet": {"val_acc": 0.70, "train_loss": 0.75, "epochs": 10},
            "gradflow": {"cnn": (0.011, 0.022), "resnet": (0.115, 0.095)}}
AGREE = {"acc": 0.01, "loss": 0.05}  # "agrees": within this of the notebook's value


def _finished(rows: Sequence[RunRow], metric: str) -> list[float]:
    return [num(r.metric(metric)) for r in rows if r.status is RunStatus.FINISHED]


def _stats(rows: Sequence[RunRow], key: str) -> tuple[float, float, float, int]:
    xs = _finished(rows, key)
    xs = [x for x in xs if not math.isnan(x)]
    mean, _, lo, hi = t_interval(xs)
    return mean, lo, hi, len(xs)


def _verdict(measured: tuple[float, float, float, int], quoted: float, tolerance: float, fmt) -> str:
    """Agreement is claimed only when the whole 95% interval lies within the tolerance of the notebook's value;
    a mean within it but an interval reaching past it is "consistent with, not resolved" at this n."""
    mean, lo, hi, n = measured
    diff = mean - quoted
    if quoted - tolerance <= lo and hi <= quoted + tolerance:
        return f"agrees (its 95% CI lies within {fmt(tolerance)} of it)"
    if abs(diff) <= tolerance or lo <= quoted <= hi:
        return f"is consistent with it, not resolved at n={n} (the 95% CI reaches past {fmt(tolerance)} of it)"
    return f"differs by {fmt(abs(diff))} ({'higher' if diff > 0 else 'lower'})"


def exercise_mlp(rows: Sequence[RunRow], comparable: str | None) -> Finding:
    """Exercise 1.1: the notebook's MLP, its validation accuracy and training loss beside the notebook's."""
    q = NOTEBOOK["mlp"]
    val, loss_, test = _stats(rows, "final_val_acc"), _stats(rows, "final_train_loss"), _stats(rows, "test_acc")
    table = Table(["measure", "reslab mean", "95% CI", "n", "notebook"],
                  [["final validation accuracy", pct(val[0]), ci(val[1], val[2], n=val[3]), str(val[3]), pct(q["val_acc"])],
                   ["final training loss", loss(loss_[0]), ci(loss_[1], loss_[2], loss, n=loss_[3]), str(loss_[3]),
                    loss(q["train_loss"])],
                   ["test accuracy", pct(test[0]), ci(test[1], test[2], n=test[3]), str(test[3]), ""]],
                  numeric=[False, True, True, True, True])
    sentences = [f"The notebook's MLP reaches a final validation accuracy of {pct(val[0])} (95% CI "
                 f"{ci(val[1], val[2], n=val[3])}, n={val[3]}) and a final training loss of {loss(loss_[0])}; its test accuracy "
                 f"is {pct(test[0])}."]
    if comparable:
        sentences.append(f"These are not comparable with the notebook's numbers: {comparable}.")
    else:
        sentences.append(f"The notebook reported {pct(q['val_acc'])} and {loss(q['train_loss'])}: the accuracy "
                         f"{_verdict(val, q['val_acc'], AGREE['acc'], pct)}, the loss "
                         f"{_verdict(loss_, q['train_loss'], AGREE['loss'], loss)}.")
    return Finding(tuple(sentences), table, "Exercise 1.1 (final epoch; mean over seeds with a 95% t interval)",
                   {"tolerance acc": pct(AGREE["acc"]), "tolerance loss": loss(AGREE["loss"]),
                    "set-up": comparable or ""})


def exercise_cnns(cnn: Sequence[RunRow], resnet: Sequence[RunRow], arch: Sequence[Mapping[str, Any]], comparable: str | None) -> Finding:
    """Exercise 1.2: the CNN against the ResNetCNN, and how much more than the skip tells them apart.

    `arch`: two rows (cnn, resnet) of architecture facts (params, flops, conv layers, channels, resolution)."""
    c_test, r_test = _stats(cnn, "test_acc"), _stats(resnet, "test_acc")
    c_val, r_val = _stats(cnn, "final_val_acc"), _stats(resnet, "final_val_acc")
    c_loss, r_loss = _stats(cnn, "final_train_loss"), _stats(resnet, "final_train_loss")
    diff = welch_interval(_finished(cnn, "test_acc"), _finished(resnet, "test_acc"))
    a_c, a_r = arch
    header = ["model", "parameters", "MFLOP per image (forward)", "conv layers", "channels", "test acc", "95% CI",
              "final val acc", "final train loss", "n", "notebook val acc", "notebook train loss"]
    rows = [["CNN (seed-cnn)", f"{a_c['params']:,}", f"{a_c['mflops']:.1f}", str(a_c["convs"]), a_c["channels"],
             pct(c_test[0]), ci(c_test[1], c_test[2]), pct(c_val[0]), loss(c_loss[0]), str(c_test[3]),
             pct(NOTEBOOK["cnn"]["val_acc"]), loss(NOTEBOOK["cnn"]["train_loss"])],
            ["ResNetCNN (seed-resnet)", f"{a_r['params']:,}", f"{a_r['mflops']:.1f}", str(a_r["convs"]),
             a_r["channels"], pct(r_test[0]), ci(r_test[1], r_test[2]), pct(r_val[0]), loss(r_loss[0]),
             str(r_test[3]), pct(NOTEBOOK["resnet"]["val_acc"]), loss(NOTEBOOK["resnet"]["train_loss"])],
            ["ResNetCNN - CNN", "", "", "", "", pp(diff[0]), ci(diff[1], diff[2], pp), "", "", "", "", ""],
            ["ResNetCNN / CNN", f"{a_r['params'] / a_c['params']:.1f}x", f"{a_r['mflops'] / a_c['mflops']:.1f}x",
             "", "", "", "", "", "", "", "", ""]]
    table = Table(header, rows, numeric=[False] + [True] * (len(header) - 1))
    better = "higher" if diff[0] > 0 else "lower"
    shown = ("the 95% Welch interval excludes 0" if diff[1] > 0 or diff[2] < 0 else
             "the 95% Welch interval includes 0: no difference shown")
    sentences = [f"The ResNetCNN's test accuracy is {pct(r_test[0])} against the CNN's {pct(c_test[0])}: "
                 f"{pp(diff[0])} {better} (95% CI {ci(diff[1], diff[2], pp)}; {shown}).",
                 f"The skip is not the only difference between them: the ResNetCNN has {a_r['params'] / a_c['params']:.1f}x the "
                 f"parameters ({a_r['params']:,} against {a_c['params']:,}), "
                 f"{a_r['mflops'] / a_c['mflops']:.1f}x the computation per image ({a_r['mflops']:.1f} against "
                 f"{a_c['mflops']:.1f} MFLOP), {a_r['channels']} channels against {a_c['channels']}, and "
                 f"{a_r['convs']} conv layers against {a_c['convs']}. This comparison cannot credit the skip; the fair "
                 "twins below differ in the skip alone."]
    if comparable:
        sentences.append(f"The accuracies are not comparable with the notebook's: {comparable}.")
    else:
        sentences.append(f"The notebook reported validation accuracies of {pct(NOTEBOOK['cnn']['val_acc'])} (CNN) and "
                         f"{pct(NOTEBOOK['resnet']['val_acc'])} (ResNetCNN); measured: {pct(c_val[0])} and "
                         f"{pct(r_val[0])}.")
    return Finding(tuple(sentences), table, "Exercise 1.2: the notebook's two CNNs (mean over seeds; the "
                   "difference with Welch's 95% t interval)", {"no difference": "0", "set-up": comparable or ""},
                   headline=(sentences[1],))


def ratio(a: float, b: float) -> str:
    return "n/a" if not b or math.isnan(a) or math.isnan(b) else f"{a / b:.2f}"


def gradient_norms(stats: Rows, batches: int) -> Finding:
    """Exercise 2 as the notebook ran it: mean and std of per-parameter gradient norms at init, CNN and ResNetCNN."""
    by_model = {str(r.get("model")): r for r in stats}
    cnn, res = by_model.get("seed-cnn", {}), by_model.get("seed-resnet", {})
    qc, qr = NOTEBOOK["gradflow"]["cnn"], NOTEBOOK["gradflow"]["resnet"]
    g = lambda x: "n/a" if math.isnan(x) else f"{x:.4f}"  # noqa: E731 - one format for the table and the sentences
    m_c, s_c, m_r, s_r = (num(cnn.get("mean")), num(cnn.get("std")), num(res.get("mean")), num(res.get("std")))
    table = Table(["model", "mean gradient norm", "std", "std / mean", "notebook mean", "notebook std",
                   "notebook std / mean"],
                  [["CNN", g(m_c), g(s_c), ratio(s_c, m_c), g(qc[0]), g(qc[1]), ratio(qc[1], qc[0])],
                   ["ResNetCNN", g(m_r), g(s_r), ratio(s_r, m_r), g(qr[0]), g(qr[1]), ratio(qr[1], qr[0])]],
                  numeric=[False] + [True] * 6)
    sentences = [f"At initialisation the ResNetCNN's mean gradient norm is {g(m_r)} against the CNN's {g(m_c)}, "
                 f"its standard deviation {g(s_r)} against {g(s_c)} (the notebook: {g(qr[0])} and {g(qc[0])}; "
                 f"{g(qr[1])} and {g(qc[1])})."]
    cv_c, cv_r = s_c / m_c if m_c else math.nan, s_r / m_r if m_r else math.nan
    if not (math.isnan(cv_c) or math.isnan(cv_r)):
        if cv_r < cv_c:
            sentences.append(f"Relative to its mean the ResNetCNN's gradients spread less, not more (std / mean "
                             f"{ratio(s_r, m_r)} against {ratio(s_c, m_c)}): its larger standard deviation comes with "
                             "its larger scale, so the notebook's reading that higher variance means \"more diverse\" "
                             f"gradients is not supported by these numbers (nor by the notebook's own: "
                             f"{ratio(qr[1], qr[0])} against {ratio(qc[1], qc[0])}).")
        else:
            sentences.append(f"Relative to its mean the ResNetCNN's gradients also spread more (std / mean "
                             f"{ratio(s_r, m_r)} against {ratio(s_c, m_c)}), as the notebook read it.")
    sentences.append("The two nets differ in width and layout too, so these norms per parameter tensor do not isolate "
                     "the skip; the per-layer measurements over depth below do.")
    return Finding(tuple(sentences), table, f"Exercise 2: gradient norms per parameter tensor, {batches} batches "
                   "at initialisation (the notebook's statistics)", headline=tuple(sentences[1:2]))
