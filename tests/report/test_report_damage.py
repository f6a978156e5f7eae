"""`reslab report` over damaged, odd, diverged and stale run folders, made by hand (no training: fast).

Each damage is one a real run folder can have (a disk error, a killed writer, a run from another version,
a name with bytes that are not UTF-8); the report must still be written, show what is readable and say
what is not, in one line per problem.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from reslab import files, plots
from reslab.cli import main
from reslab import reading
from reslab.report.records import process_alive
from reslab.runs import METRICS_FIELDS, STEPS_FIELDS

CLASSES = ["zero", "one", "two"]


def make_run(root: Path, name: str, *, epochs: int = 3, done: int = 3, status: str = "finished",
             summary: bool = True, **status_extra: Any) -> Path:
    """A run folder as the trainer writes it: config, status, metrics, steps and (finished) summary."""
    run = root / name
    run.mkdir(parents=True)
    config = {"name": "hand", "model": {"name": "mlp"}, "data": {"dataset": "mnist", "batch_size": 32},
              "train": {"epochs": epochs, "seed": 0}, "optim": {"name": "adamw", "lr": 0.003}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    rows = [{"epoch": e, "step": 10 * e, "lr": 0.003, "train_loss": 1 / e, "train_acc": 0.5 + 0.1 * e,
             "val_loss": 1.1 / e, "val_acc": 0.45 + 0.1 * e, "seconds": 1.0, "samples_per_s": 300.0}
            for e in range(1, done + 1)]
    files.write_csv(run / "metrics.csv", rows, METRICS_FIELDS)
    files.write_csv(run / "steps.csv", [{"step": s, "lr": 0.003, "train_loss": 2 / (s + 1)}
                                        for s in range(0, 10 * done, 5)], STEPS_FIELDS)
    files.write_json(run / "status.json", {"status": status, "epoch": done, **status_extra})
    if summary:
        files.write_json(run / "summary.json", {
            "model": "mlp", "dataset": "mnist", "params": 1234, "epochs": done, "steps": 10 * done,
            "best_val_acc": 0.75, "best_epoch": done, "test_acc": 0.74, "test_loss": 0.5,
            "train_seconds": 3.0, "samples_per_s": 300.0, "classes": CLASSES,
            "confusion_matrix": [[5, 1, 0], [0, 6, 1], [1, 0, 7]]})
        (run / "classification_report.txt").write_text("              precision    recall\n  zero   0.83   0.83\n")
    return run


def _edit_json(path: Path, **changes: Any) -> None:
    files.write_json(path, {**json.loads(path.read_text()), **changes})


def _raw_summary(run: Path, key: str, raw: str) -> None:
    """Put a raw JSON value (1e400, NaN, a 5000-digit number) into summary.json: json.dumps cannot write these."""
    path = run / "summary.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), key: "@RAW@"}).replace('"@RAW@"', raw))


def _long_field(path: Path) -> None:
    rows = path.read_text().splitlines()
    path.write_text("\n".join([rows[0], rows[1] + "x" * 200_000, *rows[2:]]) + "\n")


def _rename(run: Path, name: bytes) -> Path:
    target = os.path.join(os.fsencode(run.parent), name)
    os.rename(run, target)
    return Path(os.fsdecode(target))


def _fifo(path: Path) -> None:
    path.unlink(missing_ok=True)
    os.mkfifo(path)


Damage = Callable[[Path, pytest.MonkeyPatch], "Path | None"]

# (id, damage, a text the report must then contain; None: only that the report is written and valid)
DAMAGES: list[tuple[str, Damage, str | None]] = [
    ("summary-deeply-nested", lambda r, m: (r / "summary.json").write_text("[" * 100_000 + "]" * 100_000),
     "summary.json could not be read (RecursionError"),
    ("status-deeply-nested", lambda r, m: (r / "status.json").write_text('{"a":' * 100_000 + "1" + "}" * 100_000),
     "status.json could not be read (RecursionError"),
    ("config-deeply-nested", lambda r, m: (r / "config.yaml").write_text("[" * 20_000 + "]" * 20_000),
     "config.yaml could not be read (YAMLError: values nested too deeply"),
    ("summary-over-size-limit", lambda r, m: (m.setattr(reading, "MAX_BYTES", 1000),
                                              (r / "summary.json").write_text(json.dumps({"x": [0] * 5000}))),
     "summary.json is too large to read"),
    ("summary-integer-too-long", lambda r, m: _raw_summary(r, "params", "9" * 5000), "summary.json could not be read"),
    ("metrics-field-over-csv-limit", lambda r, m: _long_field(r / "metrics.csv"),
     "metrics.csv: 1 damaged row left out (row 1)"),
    ("steps-field-over-csv-limit", lambda r, m: _long_field(r / "steps.csv"), "steps.csv: 1 damaged row left out"),
    ("confusion-infinite", lambda r, m: _raw_summary(r, "confusion_matrix", "[[1e400, 1, 0], [0, 1, 0], [0, 0, 1]]"),
     "The confusion matrix is not drawn"),
    ("confusion-overflowing", lambda r, m: _raw_summary(r, "confusion_matrix",
                                                        "[[1" + "0" * 30 + ", 1, 0], [0, 1, 0], [0, 0, 1]]"),
     "The confusion matrix is not drawn"),
    ("confusion-nan-strings", lambda r, m: _edit_json(r / "summary.json", confusion_matrix=[["nan"] * 3] * 3),
     "The confusion matrix is not drawn"),
    ("confusion-ragged", lambda r, m: _edit_json(r / "summary.json", confusion_matrix=[[1, 2], [3]]),
     "The confusion matrix is not drawn"),
    ("confusion-too-many-classes", lambda r, m: _edit_json(r / "summary.json", classes=list(range(1000)),
                                                           confusion_matrix=[[1] * 1000] * 1000),
     "The confusion matrix is not drawn"),
    ("class-names-are-mathtext", lambda r, m: _edit_json(r / "summary.json", classes=["$\\frac$", "$x", "a$b$c"]),
     None),
    ("summary-infinite-and-nan", lambda r, m: (_raw_summary(r, "test_acc", "1e400"),
                                               _raw_summary(r, "best_val_acc", "NaN")), None),
    ("summary-nulls", lambda r, m: _edit_json(r / "summary.json", **{k: None for k in (
        "params", "epochs", "steps", "best_val_acc", "best_epoch", "test_acc", "test_loss", "train_seconds",
        "samples_per_s", "model", "dataset", "classes", "confusion_matrix")}), None),
    ("summary-strings-for-numbers", lambda r, m: _edit_json(r / "summary.json", params="many", test_acc="high"),
     "params is 'many', not a number"),
    ("summary-is-a-list", lambda r, m: (r / "summary.json").write_text("[1, 2]"), "summary.json holds a list"),
    ("status-is-a-list", lambda r, m: (r / "status.json").write_text("[1, 2]"), "status.json holds a list"),
    ("wandb-json-is-a-list", lambda r, m: (r / "wandb.json").write_text("[1]"), "wandb.json holds a list"),
    ("status-odd-values", lambda r, m: files.write_json(r / "status.json", {"status": {"x": 1}, "epoch": "two",
                                                                            "pid": "me", "host": 7}), None),
    ("metrics-infinite-nan-huge", lambda r, m: (r / "metrics.csv").write_text(
        ",".join(METRICS_FIELDS) + "\n1,10,0.1,inf,nan,1e400,-inf,0.5,1\n2,20,0.1,1e308,0.6,0.5,1e308,0.6,1\n"
        "3,30,0.1,-1e308,x,,0.2,NaN,1\n99999999999999999999999,40,0.1,1,1,1,1,1,1\nx,50,0.1,1,1,1,1,1,1\n"), None),
    ("metrics-non-numeric", lambda r, m: (r / "metrics.csv").write_text(
        ",".join(METRICS_FIELDS) + "\n1,ten,lr,loss,acc,vl,va,s,sps\n"), None),
    ("metrics-not-utf8", lambda r, m: (r / "metrics.csv").write_bytes(b"epoch,step\n1,\xff\xfe\n"),
     "metrics.csv: 1 damaged row left out"),
    ("config-not-utf8", lambda r, m: (r / "config.yaml").write_bytes(b"model: \xff\xfe\n"),
     "config.yaml could not be read"),
    ("report-not-utf8", lambda r, m: (r / "classification_report.txt").write_bytes(b"precision \xff\xfe\x00\n"), None),
    ("lone-surrogates-in-json", lambda r, m: (r / "summary.json").write_text(
        '{"model": "\\ud800mlp", "dataset": "\\udcff", "classes": ["\\ud800", "b", "c"], '
        '"confusion_matrix": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}'), None),
    ("run-name-not-utf8", lambda r, m: _rename(r, b"run-\xff\xfe name"), None),
    ("gradflow-png-name-not-utf8", lambda r, m: (r / os.fsdecode(b"gradflow-\xff.png")).write_bytes(
        (Path(plots.__file__).parent / "__init__.py").read_bytes()), "is not a PNG image"),
    ("summary-is-a-folder", lambda r, m: ((r / "summary.json").unlink(), (r / "summary.json").mkdir()),
     "summary.json is not a file"),
    ("summary-and-steps-are-pipes", lambda r, m: (_fifo(r / "summary.json"), _fifo(r / "steps.csv")),
     "summary.json is not a file"),
    ("config-alias-bomb", lambda r, m: (r / "config.yaml").write_text(
        "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
            f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
        + "data: {batch_size: *i, dataset: *i}\nmodel: {name: *i}\ntrain: {epochs: *i, seed: *i}\n"
          "optim: {name: *i, lr: *i}\n"), None),
    ("env-odd-values", lambda r, m: files.write_json(r / "env.json", {"device": ["x"] * 3, "torch": None,
                                                                      "git_commit": 5, "started": "x" * 10_000}),
     None),
]


class _Page(HTMLParser):
    """Headings, table rows and image sources of rendered Markdown."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[str] = []
        self.rows: list[list[str]] = []
        self.images: list[str] = []
        self._text: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("h2", "td", "th"):
            self._text = []
        elif tag == "img":
            self.images.append(dict(attrs)["src"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h2", "td", "th") and self._text is not None:
            text, self._text = "".join(self._text), None
            (self.headings if tag == "h2" else self.rows[-1]).append(text)

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)


def _strict_json(text: str) -> Any:
    def refuse(token: str) -> None:
        raise ValueError(f"not strict JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def _report(runs: list[Path], out: Path, *extra: str) -> dict[str, Any]:
    assert main(["report", *map(str, runs), "--out", str(out), *extra]) == 0
    return {"md": (out / "report.md").read_text(encoding="utf-8"),
            "html": (out / "report.html").read_text(encoding="utf-8"),
            "json": _strict_json((out / "report.json").read_text(encoding="utf-8"))}


@pytest.mark.parametrize("damage, expect", [(d, e) for _, d, e in DAMAGES], ids=[i for i, _, _ in DAMAGES])
def test_a_damaged_run_is_reported(damage: Damage, expect: str | None, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    run = make_run(tmp_path / "runs", "damaged")
    renamed = damage(run, monkeypatch)
    report = _report([renamed if isinstance(renamed, Path) else run], tmp_path / "out")
    md = report["md"]
    assert "\n## " in md, "the run has its section"
    if expect:
        assert expect in md, md
    if expect != "params is 'many', not a number":  # a summary.json of the wrong types costs the run's section
        assert "Could not report this run" not in md, md
    assert "could not be drawn" not in md, "odd values are left out of a figure, not the figure"
    (row,) = report["json"]["runs"]
    assert row["status"] in ("finished", "incomplete", "unreadable"), row
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert all((tmp_path / "out" / f).is_file() for f in figures)
    assert report["html"].count("<img ") == len(figures)


def _unreadable(root: Path, name: str) -> Path:
    """A run folder none of whose files can be read."""
    run = make_run(root, name, summary=False)
    (run / "config.yaml").write_text("[" * 20_000 + "]" * 20_000)
    (run / "status.json").write_text("[" * 100_000 + "]" * 100_000)
    for log in ("metrics.csv", "steps.csv"):  # every row damaged
        header = (run / log).read_text().splitlines()[0]
        (run / log).write_text(header + "\n" + "x" * 200_000 + "\n")
    return run


def test_unreadable_runs_are_listed_with_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    good, bad = make_run(tmp_path, "good"), _unreadable(tmp_path, "bad")
    report = _report([good, bad], tmp_path / "out")
    line = next(ln for ln in report["md"].splitlines() if "Could not read this run" in ln)
    assert "config.yaml could not be read (YAMLError: values nested too deeply" in line and "metrics.csv: 1 damaged row left out" in line
    assert "| bad | — |" in report["md"] and "| unreadable |" in report["md"]
    rows = {r["run"]: r for r in report["json"]["runs"]}
    assert rows["good"]["status"] == "finished" and rows["bad"]["status"] == "unreadable"
    assert "config.yaml could not be read" in rows["bad"]["error"]
    capsys.readouterr()
    assert main(["report", str(bad), "--out", str(tmp_path / "none")]) == 2, "no run could be read"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no run could be read: bad:" in err[0]
    assert not (tmp_path / "none").exists()


def test_a_run_that_fails_to_load_is_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good, odd = make_run(tmp_path, "good"), make_run(tmp_path, "odd")
    read_text = reading.read_text

    def failing(path: Path, problems: list[str]) -> str | None:
        if path.parent == odd:
            raise RuntimeError("the disk is on fire")
        return read_text(path, problems)

    monkeypatch.setattr(reading, "read_text", failing)
    md = _report([good, odd], tmp_path / "out")["md"]
    assert "> **Could not read this run: RuntimeError: the disk is on fire.**" in md


def test_report_json_is_strict_json(tmp_path: Path) -> None:
    finished = make_run(tmp_path, "finished")
    _raw_summary(finished, "test_acc", "1e400")
    _raw_summary(finished, "best_val_acc", "NaN")
    running = make_run(tmp_path, "running", done=2, status="running", summary=False)
    (running / "metrics.csv").write_text(",".join(METRICS_FIELDS) + "\n1,10,0.1,inf,0.5,1,nan,1,2\n"
                                                                    "2,20,0.1,1,0.5,1,inf,1,2\n")
    report = _report([finished, running], tmp_path / "out")  # _report parses report.json strictly
    rows = {r["run"]: r for r in report["json"]["runs"]}
    assert rows["finished"]["test_acc"] is None and rows["finished"]["best_val_acc"] == 0.45 + 0.1 * 3
    assert rows["running"]["best_val_acc"] is None


def test_a_diverged_run_is_a_result(tmp_path: Path) -> None:
    good = make_run(tmp_path, "good")
    run = make_run(tmp_path, "diverged", epochs=5, done=2, status="diverged", step=17)
    _edit_json(run / "status.json", epoch=2)
    _edit_json(run / "summary.json", test_acc=None, test_loss=None, best_val_acc=None, best_epoch=None,
               train_seconds=None, samples_per_s=None, confusion_matrix=None)
    (run / "metrics.csv").write_text(",".join(METRICS_FIELDS) + "\n1,10,0.1,0.9,0.6,0.8,0.55,1,2\n"
                                                                "2,17,0.1,nan,0.1,nan,0.1,1,2\n")
    report = _report([good, run], tmp_path / "out")
    md = report["md"]
    assert "> **Diverged at step 17 (epoch 2)" in md
    assert "unreadable" not in md and "Could not report" not in md and "Incomplete" not in md
    line = next(ln for ln in md.splitlines() if ln.startswith("| diverged |"))
    assert "| 55.00% | 1 |" in line and line.endswith("| diverged |"), line
    rows = {r["run"]: r for r in report["json"]["runs"]}
    assert rows["diverged"]["status"] == "diverged" and rows["diverged"]["best_val_acc"] == 0.55
    assert "did not finish" not in md, "a diverged run is a result, not an unfinished run"


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: no process has this pid now
    return child.pid


def test_process_alive() -> None:
    assert process_alive(os.getpid()) is True
    assert process_alive(_dead_pid()) is False
    assert process_alive(1) is True, "pid 1 exists (PermissionError when not root: alive)"
    assert process_alive(0) is None and process_alive(-1) is None, "never signal a process group"


def test_a_running_run_whose_process_is_gone_is_stopped(tmp_path: Path) -> None:
    host = socket.gethostname()
    gone = make_run(tmp_path, "gone", done=1, status="running", summary=False, pid=_dead_pid(), host=host)
    alive = make_run(tmp_path, "alive", done=1, status="running", summary=False, pid=os.getpid(), host=host)
    away = make_run(tmp_path, "away", done=1, status="running", summary=False, pid=_dead_pid(), host="elsewhere-9")
    report = _report([gone, alive, away], tmp_path / "out")
    md, rows = report["md"], {r["run"]: r for r in report["json"]["runs"]}
    assert "> **Stopped (the process is gone): 1 of 3 epochs done" in md
    assert "> **In progress: 1 of 3 epochs done when this report was built" in md
    assert "> **In progress on elsewhere-9" in md and "| running (on elsewhere-9) |" in md
    assert [rows[k]["status"] for k in ("gone", "alive", "away")] == ["stopped", "running", "running"]
    assert rows["away"]["host"] == "elsewhere-9"


def test_an_interrupted_report_does_not_block_its_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture) -> None:
    run, out = make_run(tmp_path, "run"), tmp_path / "reports" / "mine"

    def interrupt(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(plots, "plot_curves", interrupt)
        assert main(["report", str(run), "--out", str(out)]) == 130
    assert not out.exists() and list(out.parent.iterdir()) == [], "nothing is left half-written"
    assert main(["report", str(run), "--out", str(out)]) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with monkeypatch.context() as m:  # an earlier report stays whole until the new one is complete
        m.setattr(plots, "plot_confusion", interrupt)
        assert main(["report", str(run), "--out", str(out)]) == 130
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert [p.name for p in out.parent.iterdir()] == ["mine"]
    (out / "notes.txt").write_text("mine")  # a user's file in an earlier report is kept
    assert main(["report", str(run), "--out", str(out)]) == 0
    assert (out / "notes.txt").read_text() == "mine" and _strict_json((out / "report.json").read_text())
    assert [p.name for p in out.parent.iterdir()] == ["mine"]
    capsys.readouterr()


NAMES = ["a|b *c* [d](e) <f> & _g_ `h` #1", "two  spaces | and \\ backslash", "x $\\frac$ y"]


def test_run_names_are_escaped_in_markdown(tmp_path: Path) -> None:
    markdown = pytest.importorskip("markdown")
    runs = [make_run(tmp_path, name) for name in NAMES]
    report = _report(runs, tmp_path / "out")
    page = _Page()
    page.feed(markdown.markdown(report["md"], extensions=["tables"]))
    assert page.headings[1:] == NAMES[:2] + [page.headings[-1]], page.headings  # Python-Markdown keeps "\$"
    header, *rows = page.rows[: 1 + len(NAMES)]  # the comparison table
    assert header[0] == "run" and [r[0] for r in rows[:2]] == NAMES[:2]
    assert all(len(r) == len(header) for r in rows), rows
    assert len(page.images) == 1 + 2 * len(NAMES)
    assert all((tmp_path / "out" / src).is_file() for src in page.images), page.images
    assert "could not be drawn" not in report["md"]
