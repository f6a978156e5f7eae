"""The Weights & Biases sink: a W&B run whose files live in the run folder; offline unless it can go online.

Online needs an API key (WANDB_API_KEY, or the netrc entry `wandb login` writes) and a server that
answers within WANDB_INIT_TIMEOUT_S; otherwise the run is recorded offline and `wandb sync` uploads it
later. Imported only when `track.sinks` names wandb.
"""

from __future__ import annotations

import contextlib
import netrc
import os
import sys
from pathlib import Path
from typing import Any, Iterator, Mapping
from urllib.parse import urlparse

from reslab import files
from reslab.config import RunConfig, TrackConfig, to_dict
from reslab.errors import exception_line
from reslab.protocols import Sink
from reslab.runs import RunFolder

WANDB_INIT_TIMEOUT_S = 20.0  # wandb's default is 90 s; online init that takes longer falls back to offline
WANDB_FINISH_TIMEOUT_S = 120.0  # bounds the upload wait at the end of an online run (kept offline otherwise)


class Wandb(Sink):
    """A Weights & Biases run whose files live in <run_dir>/wandb; offline without an API key or network.

    The run id is kept in <run_dir>/wandb.json so that `--resume` continues the same W&B run (online:
    the same run; offline: a second offline-run folder with the same id, synced into the same run).
    """

    name = "wandb"

    def __init__(self, track: TrackConfig) -> None:
        self.track = track
        self._run: Any = None
        self._offline = False

    def start(self, run_dir: Path, cfg: RunConfig, start_step: int) -> None:
        import wandb

        folder = RunFolder(run_dir)
        record, run_id = folder.wandb_json, folder.read_wandb().get("id")
        kwargs = dict(project=self.track.project, entity=self.track.entity, group=self.track.group,
                      tags=list(self.track.tags), name=self.track.run_name or run_dir.name, config=to_dict(cfg),
                      dir=str(run_dir), id=run_id, resume="allow" if run_id else None, settings=_wandb_settings(wandb))
        mode = wandb_mode(self.track.wandb_mode)
        with _quiet_wandb():
            if mode == "online":
                try:
                    self._run = wandb.init(mode="online", **kwargs)
                except Exception as exc:  # no network, a bad key, a server error: keep the record offline
                    print(f"reslab: warning: W&B did not start online ({exception_line(exc)}); logging offline",
                          file=sys.stderr)
                    mode = "offline"
            if self._run is None:
                self._run = wandb.init(mode=mode, **kwargs)
        self._offline = mode == "offline"
        files.write_json(record, {"id": self._run.id, "mode": mode, "project": self.track.project,
                                 "dir": str(Path(self._run.dir).parent)})

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        self._run.log(dict(metrics), step=step)

    def end(self, run_dir: Path, summary: Mapping[str, Any]) -> None:
        import wandb

        rows = [[name, p, r, f, n] for name, p, r, f, n in zip(summary["classes"], summary["test_precision"],
                                                                summary["test_recall"], summary["test_f1"],
                                                                summary["test_support"])]
        media: dict[str, Any] = {"test/classification_report": wandb.Table(
            columns=["class", "precision", "recall", "f1", "support"], data=rows)}
        run = RunFolder(run_dir)  # a run with train.figures false (a sweep's) draws its curves.png for W&B here
        curves = run.curves if run.curves.is_file() else run.draw_curves()
        if curves is not None:
            media["curves"] = wandb.Image(str(curves))
        self._run.log(media, step=summary["steps"])
        self._run.summary.update({key: summary[key] for key in ("params", "best_val_acc", "best_epoch",
                                                                "train_seconds", "samples_per_s")
                                  if summary.get(key) is not None})

    def close(self) -> None:
        if self._run is None:
            return
        run, self._run = self._run, None
        with _quiet_wandb():
            run.finish()
        run_dir = Path(run.dir).parent
        if self._offline:
            print(f"reslab: W&B run saved offline; upload it with: wandb sync {run_dir}", file=sys.stderr)


def wandb_mode(asked: str) -> str:
    """offline when asked, or when no API key is configured here (online would prompt or fail)."""
    env_mode = os.environ.get("WANDB_MODE", "")
    if asked == "auto" and env_mode in ("offline", "disabled", "dryrun"):
        return "offline" if env_mode == "dryrun" else env_mode
    if asked == "offline":
        return "offline"
    if has_wandb_key():
        return "online"
    if asked == "online":
        print("reslab: warning: track.wandb_mode=online but no W&B API key is configured "
              "(WANDB_API_KEY or `wandb login`); logging offline", file=sys.stderr)
    return "offline"


def has_wandb_key() -> bool:
    """An API key in the environment, or a netrc entry for the W&B server (what `wandb login` writes)."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    hosts = {"api.wandb.ai", urlparse(os.environ.get("WANDB_BASE_URL", "")).hostname}
    with contextlib.suppress(Exception):  # the installed wandb's default server
        import wandb

        hosts.add(urlparse(wandb.Settings().base_url).hostname)
    try:
        entries = netrc.netrc(os.environ.get("NETRC") or None)
    except (OSError, netrc.NetrcParseError):
        return False
    return any(host and entries.authenticators(host) for host in hosts)


def _wandb_settings(wandb: Any) -> Any:
    """No console capture or banners; bounded waits at init and finish (where this wandb has the setting)."""
    kw: dict[str, Any] = dict(silent=True, console="off", init_timeout=WANDB_INIT_TIMEOUT_S)
    if "finish_timeout" in getattr(wandb.Settings, "model_fields", {}):
        kw["finish_timeout"] = WANDB_FINISH_TIMEOUT_S
    return wandb.Settings(**kw)


@contextlib.contextmanager
def _quiet_wandb() -> Iterator[None]:
    """WANDB_SILENT while wandb starts and stops (its service reads the environment), then restored."""
    before = os.environ.get("WANDB_SILENT")
    os.environ.setdefault("WANDB_SILENT", "true")
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("WANDB_SILENT", None)
