"""A run's status, as `status.json`, summary.json, a sweep's results.csv and its index spell it.

One enum instead of string literals in every layer. It is a `str` enum, so the files keep the plain words
(`"finished"`) and rows read back compare equal to the members.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """Where a run stands. `completed` runs are results: a diverged run is a result, not a failure."""

    RUNNING = "running"
    FINISHED = "finished"
    DIVERGED = "diverged"
    FAILED = "failed"
    INTERRUPTED = "interrupted"

    @property
    def completed(self) -> bool:
        return self in (RunStatus.FINISHED, RunStatus.DIVERGED)

    @classmethod
    def parse(cls, value: object) -> RunStatus | None:
        """The member a file's value names, or None for anything else (missing, damaged, another word)."""
        try:
            return cls(value) if isinstance(value, str) else None
        except ValueError:
            return None
