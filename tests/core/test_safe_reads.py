"""Files read back safely (issue 19, item 5): `files.read_capped` reads only regular files up to a cap, never
blocks on a pipe, never reads a device, and (with `within`) never follows a link out of its folder; the tolerant
readers (`reslab.reading`, RunFolder) and config loading go through it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from reslab import files, reading
from reslab.config import load_source
from reslab.errors import ConfigError
from reslab.runs import RunFolder


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def test_read_capped_reads_a_regular_file_and_refuses_the_rest(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_bytes(b"{}")
    assert files.read_capped(tmp_path / "a.json", 10) == b"{}"
    (tmp_path / "big").write_bytes(b"x" * 11)
    with pytest.raises(files.TooLarge) as info:
        files.read_capped(tmp_path / "big", 10)
    assert info.value.size == 11
    started = time.perf_counter()
    with pytest.raises(files.NotAFile):
        files.read_capped(_fifo(tmp_path / "pipe"), 10)  # opened without blocking, then refused
    assert time.perf_counter() - started < 5
    (tmp_path / "zero").symlink_to("/dev/zero")
    with pytest.raises(files.NotAFile):
        files.read_capped(tmp_path / "zero", 10)
    with pytest.raises(files.NotAFile):
        files.read_capped(tmp_path, 10)
    with pytest.raises(FileNotFoundError):
        files.read_capped(tmp_path / "absent", 10)


def test_within_refuses_a_link_out_of_the_folder(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("x")
    run = tmp_path / "run"
    run.mkdir()
    (run / "status.json").symlink_to(tmp_path / "secret")
    (run / "same.json").symlink_to("other.json")
    (run / "other.json").write_text("{}")
    with pytest.raises(files.NotAFile):
        files.read_capped(run / "status.json", 10, within=run)
    assert files.read_capped(run / "same.json", 10, within=run) == b"{}"  # a link inside the folder is read
    assert files.read_capped(run / "status.json", 10) == b"x"  # a file the user names may be a link


def test_inside_resolves_links_and_dots(tmp_path: Path) -> None:
    (tmp_path / "sweep" / "runs").mkdir(parents=True)
    (tmp_path / "sweep" / "runs" / "out").symlink_to(tmp_path)
    assert files.inside(tmp_path / "sweep", tmp_path / "sweep" / "runs")
    assert not files.inside(tmp_path / "sweep", tmp_path / "sweep")
    assert not files.inside(tmp_path / "sweep", tmp_path / "sweep" / "runs" / ".." / "..")
    assert not files.inside(tmp_path / "sweep", tmp_path / "sweep" / "runs" / "out")


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "link-out", "huge"])
def test_run_folder_readers_note_what_they_cannot_read(tmp_path: Path, kind: str) -> None:
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    (tmp_path / "outside.json").write_text('{"status": "finished"}')
    if kind == "fifo":
        _fifo(run.status)
    elif kind == "dev-zero":
        run.status.symlink_to("/dev/zero")
    elif kind == "link-out":
        run.status.symlink_to(tmp_path / "outside.json")
    else:
        with open(run.status, "wb") as fh:
            fh.truncate(reading.MAX_BYTES + 1)
    problems: list[str] = []
    assert run.read_status(problems) == {} and run.read_json(run.status) == {} and run.run_status() is None
    assert len(problems) == 1 and problems[0].startswith("status.json is "), problems


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "huge"])
def test_a_config_file_that_never_ends_is_one_line(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "cfg.yaml"
    if kind == "fifo":
        _fifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    else:
        with open(path, "wb") as fh:
            fh.truncate(64 * 2**20)
    with pytest.raises(ConfigError, match="is not a file|is too large") as info:
        load_source(str(path))
    assert "\n" not in str(info.value)
