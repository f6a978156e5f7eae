"""A figure file is a real, decodable image of a plausible size, not just a file that exists."""

from __future__ import annotations

from pathlib import Path


def assert_png(path: Path, min_side: int = 100) -> tuple[int, int]:
    """`path` decodes as a PNG at least min_side pixels each way; returns its (width, height)."""
    from PIL import Image

    with Image.open(path) as img:
        assert img.format == "PNG", (path, img.format)
        img.load()  # decodes every pixel: a truncated file fails here
        assert min(img.size) >= min_side, (path, img.size)
        assert img.getextrema() != tuple((v, v) for v, _ in img.getextrema()), f"{path} is one flat colour"
        return img.size
