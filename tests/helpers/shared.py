"""Where the real datasets are (read-only, next to the repository) and the skip marker for tests that need them."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"  # <repo>/../shared/data


def needs_shared_data(*parts: str) -> pytest.MarkDecorator:
    """Skip (saying which path is missing) unless SHARED_DATA/<parts> exists: `@needs_shared_data("MNIST", "raw")`."""
    path = SHARED_DATA.joinpath(*parts)
    return pytest.mark.skipif(not path.exists(), reason=f"real data not found at {path}")
