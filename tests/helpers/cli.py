"""The CLI's promise for bad user input, as one assertion."""

from __future__ import annotations

import pytest


def fails_one_line(capsys: pytest.CaptureFixture, argv: list[str], message: str) -> None:
    """`reslab argv` fails as a user error should: exit code 2 and one line on stderr that says `message`."""
    from reslab.cli import main

    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err
