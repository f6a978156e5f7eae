"""How a depth study's runs ended: trained until the loss stopped improving (a plateau) or up to the epoch cap, per
cell; for fixed-epoch studies, how many were still improving at their last epoch (so not converged).

Read from the run folders (summary.json's `stopped`, metrics.csv's training loss) only.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

from reslab.config import TrainConfig
from reslab.lab.profiles import Study
from reslab.report.document import Table
from reslab.runs import RunFolder
from reslab.sweep import RunRow

IMPROVING = 0.02  # "still improving": training loss down by more than this fraction in the last epoch


def _still_improving(run: RunFolder) -> bool:
    losses = [m.get("train_loss") for m in run.read_metrics()]
    losses = [x for x in losses if isinstance(x, (int, float))]
    return len(losses) >= 2 and losses[-1] < (1 - IMPROVING) * losses[-2]


def _stopped(run: RunFolder) -> str:
    """'plateau', 'cap' or '' (a fixed-epoch run, or a summary without the word)."""
    stopped = (run.read_summary() or {}).get("stopped")
    return stopped if stopped in ("plateau", "cap") else ""


def _cell(values: Any, skip: str | None) -> tuple[tuple[str, str], ...]:
    return tuple((k, str(v)) for k, v in values.items() if k != skip)


def training_length(runs: Sequence[RunRow], study: Study) -> tuple[str, Table | None]:
    """The study's training-length sentence, and with `train.until: plateau` a table per cell (every swept value
    but the seed) of runs that reached a plateau against those that hit the cap. With `tune`, only the runs whose
    learning rate was chosen count (those that enter the tables)."""
    tuned = study.tune["key"] if study.tune else None
    finished = [r for r in runs if r.completed and r.run_folder is not None and r.chosen is not False]
    setting = {**study.settings, **{k: v[0] for k, v in study.grid.items() if k.startswith("train.") and len(v) == 1}}
    epochs = setting.get("train.epochs")
    still = sum(_still_improving(RunFolder(r.run_folder)) for r in finished)  # type: ignore[arg-type]
    still_text = (f"{still} of {len(finished)} finished runs were still improving at their last epoch (training loss "
                  f"down by more than {100 * IMPROVING:.0f}% in it)")
    if setting.get("train.until", "epochs") != "plateau":
        return (f"Training: a fixed {epochs} epochs, not until the loss stops improving; {still_text}"
                + (": those are not converged." if still else "."), None)
    default = TrainConfig()
    patience = setting.get("train.patience", default.patience)
    delta = setting.get("train.min_delta", default.min_delta)
    counts: dict[tuple, dict[str, int]] = defaultdict(lambda: {"plateau": 0, "cap": 0, "": 0, "improving": 0})
    for r in finished:
        run = RunFolder(r.run_folder)  # type: ignore[arg-type]
        count = counts[_cell(r.values, tuned)]
        count[_stopped(run)] += 1
        count["improving"] += _still_improving(run)
    plateau, cap = (sum(c[k] for c in counts.values()) for k in ("plateau", "cap"))
    sentence = (f"Training: until the training loss stopped improving (not below its best by more than {delta:g} for "
                f"{patience} epochs in a row), at most {epochs} epochs; {plateau} of {len(finished)} finished runs "
                f"reached such a plateau, {cap} hit the cap of {epochs} epochs"
                + (" (those are not converged by this rule)" if cap else "") + f"; {still_text}.")
    keys = [k for k, _ in next(iter(counts))] if counts else []
    rows = [[v for _, v in cell] + [str(sum(c.values()) - c["improving"]), str(c["plateau"]), str(c["cap"]),
                                    str(c["improving"])] for cell, c in sorted(counts.items())]
    table = Table([k.removeprefix("model.") for k in keys] + ["runs", "plateau", "cap", "still improving"], rows,
                  [False] * len(keys) + [True] * 4)
    return sentence, table
