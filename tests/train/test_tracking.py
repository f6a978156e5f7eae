"""Tracking: steps.csv, TensorBoard and offline W&B hold the same numbers as the run's own records.

Each sink's files are read back with the tool's own reader (TensorBoard's EventAccumulator, wandb's
transaction-log reader) and compared with metrics.csv, summary.json and an independent per-step capture.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from reslab import files, tracking, tracking_wandb
from reslab.config import resolve, to_dict
from reslab.errors import ConfigError
from reslab.protocols import Sink
from reslab.tracking import Tracker
from reslab.protocols import Observer
from reslab.runs import RunFolder
from reslab.train import train

LOG_EVERY = 5  # 16 steps per epoch: records at 5, 10, 15, then 20 (epoch 2), ...


class _Capture(Observer):
    """The independent record: every step's loss, synced per step (only a test may do that)."""

    def __init__(self) -> None:
        self.losses: dict[int, float] = {}
        self.lrs: dict[int, float] = {}

    def on_step(self, step: int, loss: torch.Tensor, lr: float) -> None:
        self.losses[step], self.lrs[step] = loss.item(), lr


class _StopAt(Observer):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step(self, step: int, loss: torch.Tensor, lr: float) -> None:
        if step == self.step:
            raise KeyboardInterrupt  # stands in for a second Ctrl-C: stops at once, without a checkpoint


def _cfg(data_dir: Path, runs_dir: Path, *extra: str):
    return resolve("seed-mlp", [f"data.data_dir={data_dir}", f"runs_dir={runs_dir}", "data.val_size=100",
                                "data.batch_size=32", "train.epochs=2", "optim.lr=3e-3", "train.device=cpu",
                                f"train.log_every={LOG_EVERY}", "track.wandb_mode=offline", *extra])


@pytest.fixture(scope="module")
def tracked(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One tiny run with both sinks; its stderr and an independent capture of every step's loss."""
    capture, err = _Capture(), io.StringIO()
    cfg = _cfg(data_dir, tmp_path_factory.mktemp("runs"), "track.sinks=[tensorboard, wandb]",
               "track.tags=[tiny, test]", "track.group=g1")
    with contextlib.redirect_stderr(err):
        result = train(cfg, observers=[capture], progress=False)
    return {"run": result.run_dir, "cfg": cfg, "capture": capture, "stderr": err.getvalue(),
            "metrics": files.read_csv(result.run_dir / "metrics.csv"), "summary": result.summary}


def _check_windows(rows: list[dict[str, Any]], capture: _Capture, start: int = 0) -> None:
    """Each row is the mean of the batch losses since the previous row, at that row's step."""
    previous = start
    for row in rows:
        window = range(previous + 1, row["step"] + 1)
        assert row["train_loss"] == sum(capture.losses[s] for s in window) / len(window), row
        assert row["lr"] == capture.lrs[row["step"]]
        previous = row["step"]


def test_steps_csv_equals_an_independent_capture(tracked: dict[str, Any]) -> None:
    rows = RunFolder(tracked["run"]).read_steps()
    assert [r["step"] for r in rows] == [5, 10, 15, 20, 25, 30, 32]  # 32 steps: the last window is partial
    _check_windows(rows, tracked["capture"])


def _tb_scalars(log_dir: Path) -> dict[str, dict[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


def test_tensorboard_scalars_equal_the_run_records(tracked: dict[str, Any]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    tb = _tb_scalars(tracked["run"] / "tensorboard")
    for row in tracked["metrics"]:
        step = int(row["step"])
        for col, tag in tracking.EPOCH_KEYS.items():
            assert tb[tag][step] == pytest.approx(float(row[col]), rel=1e-6), (tag, step)  # stored as float32
    for row in RunFolder(tracked["run"]).read_steps():
        assert tb["train/loss"][row["step"]] == pytest.approx(row["train_loss"], rel=1e-6)
        assert tb["lr"][row["step"]] == pytest.approx(row["lr"], rel=1e-6)
    summary = tracked["summary"]
    assert tb["test/acc"] == {summary["steps"]: pytest.approx(summary["test_acc"], rel=1e-6)}
    assert set(tb) >= {"train/loss", "train/acc", "val/loss", "val/acc", "lr", "samples_per_s"}
    acc = EventAccumulator(str(tracked["run"] / "tensorboard"))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    assert start.session_start_info.hparams["optim.lr"].number_value == pytest.approx(3e-3)
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert {m.name.tag for m in experiment.metric_infos} == {"test/acc", "test/loss", "val/best_acc"}


def wandb_records(offline_dir: Path) -> list[dict[str, Any]]:
    """An offline run's transaction log, read by wandb itself (`wandb leet inspect --json`)."""
    cli = Path(sys.executable).parent / "wandb"
    records = []
    for log in offline_dir.glob("run-*.wandb"):
        proc = subprocess.run([str(cli), "leet", "inspect", "--json", str(log)], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=60)
        if proc.returncode != 0:
            pytest.skip(f"this wandb cannot print its transaction log (`wandb leet inspect`): {proc.stderr[:200]}")
        records += [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return records


def _wandb_history(records: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    history: dict[int, dict[str, Any]] = {}
    for rec in records:
        if rec.get("type") == "history":
            item = rec["history"]["item"]
            history.setdefault(int(item["_step"]), {}).update(item)
    return history


def test_offline_wandb_run_equals_the_run_records(tracked: dict[str, Any]) -> None:
    run, summary = tracked["run"], tracked["summary"]
    saved = json.loads((run / "wandb.json").read_text())
    records = wandb_records(Path(saved["dir"]))
    history = _wandb_history(records)
    for row in tracked["metrics"]:
        for col, key in tracking.EPOCH_KEYS.items():
            assert history[int(row["step"])][key] == float(row[col]), (key, row["step"])  # JSON: exact
    for row in RunFolder(run).read_steps():
        assert (history[row["step"]]["train/loss"], history[row["step"]]["lr"]) == (row["train_loss"], row["lr"])
    last = history[summary["steps"]]
    assert (last["test/acc"], last["test/loss"]) == (summary["test_acc"], summary["test_loss"])
    assert last["curves._type"] == "image-file" and last["test/classification_report._type"] == "table-file"
    (run_rec,) = [r["run"] for r in records if r.get("type") == "run"]
    config = {k: v for k, v in run_rec["config"]["update"].items() if k != "_wandb"}
    assert json.loads(json.dumps(to_dict(tracked["cfg"]))) == config  # the resolved config, as JSON
    assert run_rec["project"] == "reslab" and run_rec["run_group"] == "g1" and run_rec["tags"] == ["tiny", "test"]
    assert run_rec["display_name"] == run.name
    files = next((run / "wandb").glob("offline-run-*/files"))
    (table,) = files.glob("media/table/test/classification_report_*.table.json")
    rows = json.loads(table.read_text())["data"]
    assert rows == [[c, p, r, f, n] for c, p, r, f, n in zip(summary["classes"], summary["test_precision"],
                                                             summary["test_recall"], summary["test_f1"],
                                                             summary["test_support"])]
    assert saved["mode"] == "offline" and saved["id"] == run_rec["run_id"]
    assert f"wandb sync {saved['dir']}" in tracked["stderr"]


def test_the_tracker_syncs_once_per_record(monkeypatch: pytest.MonkeyPatch) -> None:
    """No host sync per step: item/float/tolist/cpu run once per log_every steps, not once per step."""

    class Recorder(Sink):
        def __init__(self) -> None:
            self.records: list[tuple[int, dict[str, float]]] = []

        def log(self, step: int, metrics: Any) -> None:
            self.records.append((step, dict(metrics)))

    losses = [torch.tensor(float(i % 7), dtype=torch.float32) for i in range(1, 101)]
    syncs = {"n": 0}
    for name in ("item", "tolist", "__float__", "__int__", "__bool__", "cpu", "numpy"):
        original = getattr(torch.Tensor, name)

        def counted(self: torch.Tensor, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            syncs["n"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    sink = Recorder()
    tracker = Tracker([sink], log_every=10)
    for step, loss in enumerate(losses, start=1):
        tracker.on_step(step, loss, 0.1)
    assert syncs["n"] == 10
    monkeypatch.undo()
    assert [s for s, _ in sink.records] == list(range(10, 101, 10))
    assert sink.records[0][1]["train/loss"] == pytest.approx(sum(float(i % 7) for i in range(1, 11)) / 10)


def test_resume_continues_every_record(data_dir: Path, tmp_path: Path) -> None:
    """Stopped hard after step 23 (last.pt at step 16), resumed: records after 16 are dropped, then continue
    exactly as a run that never stopped would have."""
    cfg = _cfg(data_dir, tmp_path, "track.sinks=[tensorboard, wandb]")
    first, second = _Capture(), _Capture()
    with pytest.raises(KeyboardInterrupt), contextlib.redirect_stderr(io.StringIO()):
        train(cfg, observers=[first, _StopAt(23)], progress=False)
    (run,) = tmp_path.iterdir()
    assert [r["step"] for r in RunFolder(run).read_steps()] == [5, 10, 15, 20, 23]
    with contextlib.redirect_stderr(io.StringIO()):
        train(cfg, observers=[second], resume=run, progress=False)
    rows = RunFolder(run).read_steps()
    assert [r["step"] for r in rows] == [5, 10, 15, 20, 25, 30, 32]
    # the checkpoint at step 16 kept the open window (step 16's loss): row 20 covers 16..20, as in a straight run
    resumed = _Capture()
    for mine, theirs in ((resumed.losses, (first.losses, second.losses)), (resumed.lrs, (first.lrs, second.lrs))):
        mine.update({s: v for s, v in theirs[0].items() if s <= 16})
        mine.update(theirs[1])
    _check_windows(rows, resumed)
    tb = _tb_scalars(run / "tensorboard")
    assert {s: pytest.approx(v, rel=1e-6) for s, v in tb["train/loss"].items()} == {r["step"]: r["train_loss"]
                                                                                   for r in rows}
    saved = json.loads((run / "wandb.json").read_text())
    history = _wandb_history(wandb_records(Path(saved["dir"])))  # the resumed process's offline run
    assert {s: h["train/loss"] for s, h in history.items() if "train/loss" in h} == {
        r["step"]: r["train_loss"] for r in rows if r["step"] > 16}
    logs = list((run / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(logs) == 2 and {p.stem for p in logs} == {f"run-{saved['id']}"}, "the resumed run keeps its W&B id"


def test_a_failing_wandb_never_stops_training(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture) -> None:
    import wandb

    def broken_init(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the W&B service is down\nsecond line")

    monkeypatch.setattr(wandb, "init", broken_init)
    result = train(_cfg(data_dir, tmp_path, "track.sinks=[wandb]"), progress=False)
    err = capsys.readouterr().err
    assert result.summary["status"] == "finished" and RunFolder(result.run_dir).read_steps()
    assert err.count("reslab: warning: wandb tracking failed (RuntimeError: the W&B service is down)") == 1


def test_a_sink_failing_mid_run_is_disabled_once(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture) -> None:
    calls = {"n": 0}

    def flaky_log(self: Any, step: int, metrics: Any) -> None:
        calls["n"] += 1
        raise OSError("disk full")

    monkeypatch.setattr(tracking.TensorBoard, "log", flaky_log)
    result = train(_cfg(data_dir, tmp_path, "track.sinks=[tensorboard]"), progress=False)
    assert result.summary["status"] == "finished" and calls["n"] == 1
    assert capsys.readouterr().err.count("tensorboard tracking failed (OSError: disk full)") == 1


def test_online_without_network_falls_back_to_offline(data_dir: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture) -> None:
    """A key but no server: init gives up after the (shortened) timeout and the run is recorded offline."""
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setattr(tracking_wandb, "WANDB_INIT_TIMEOUT_S", 3.0)
    result = train(_cfg(data_dir, tmp_path, "track.sinks=[wandb]", "track.wandb_mode=auto"), progress=False)
    err = capsys.readouterr().err
    assert "W&B did not start online" in err and "wandb sync" in err
    assert json.loads((result.run_dir / "wandb.json").read_text())["mode"] == "offline"
    assert _wandb_history(wandb_records(Path(json.loads((result.run_dir / "wandb.json").read_text())["dir"])))


def test_wandb_mode_follows_the_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    netrc = tmp_path / "netrc"
    netrc.write_text("machine example.org login a password b\n")
    monkeypatch.setenv("NETRC", str(netrc))
    assert tracking_wandb.wandb_mode("auto") == "offline" and tracking_wandb.wandb_mode("online") == "offline"
    netrc.write_text("machine api.wandb.ai login user password " + "k" * 40 + "\n")
    assert tracking_wandb.wandb_mode("auto") == "online" and tracking_wandb.wandb_mode("offline") == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert tracking_wandb.wandb_mode("auto") == "disabled"


def test_a_missing_tracking_package_fails_before_training(data_dir: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ConfigError, match=r"--track wandb needs the wandb package: pip install 'reslab\[track\]'"):
        train(_cfg(data_dir, tmp_path, "track.sinks=[wandb]"), progress=False)
    assert not any(tmp_path.iterdir()), "no run folder for a config error"


def test_importing_reslab_imports_no_tracking_package() -> None:
    code = ("import sys, reslab.train, reslab.tracking, reslab.tracking_wandb, reslab.report.build, reslab.cli; "
            "print([m for m in ('wandb', 'tensorboard', 'torch.utils.tensorboard') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
