"""Errors a user can cause. The CLI prints their one-line message and exits 2; tracebacks are for bugs."""


class ReslabError(Exception):
    """Base of every user-caused error (bad flag, value, file, dataset or checkpoint)."""


class ConfigError(ReslabError):
    """An unknown preset, key, or a value of the wrong type or out of range."""


class DataError(ReslabError):
    """A dataset that is missing, corrupt, or unusable with the chosen model."""


class CheckpointError(ReslabError):
    """A checkpoint or run folder that cannot be read or does not belong to reslab."""


class Diverged(Exception):
    """The training loss turned NaN or infinite: a result (the run is recorded as diverged), not a user error."""

    def __init__(self, step: int, loss: float) -> None:
        super().__init__(f"the training loss turned {loss} by step {step}")
        self.step, self.loss = step, loss


class ReportError(ReslabError):
    """A report asked of no runs or of folders that are not runs, or an output folder that cannot be written."""


def first_line(exc: BaseException, default: str = "") -> str:
    """The first line of an exception's message (or `default`, else its type's name, when it has none).

    A first line that only announces what follows ("Error(s) in loading state_dict for SeedMLP:") gets
    the next line too, cut to 200 characters, so the one line still says what was wrong.
    """
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return default or type(exc).__name__
    if lines[0].endswith(":") and len(lines) > 1:
        detail = lines[1] if len(lines[1]) <= 200 else lines[1][:197] + "..."
        return f"{lines[0]} {detail}"
    return lines[0]


def exception_line(exc: BaseException) -> str:
    """'Type: first line of the message', for one-line warnings."""
    return f"{type(exc).__name__}: {first_line(exc, 'no message')}"
