"""Tiny, learnable datasets written in the official file formats, for tests that must not need real data."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np


def _write_idx(path: Path, array: np.ndarray) -> None:
    magic = 0x0803 if array.ndim == 3 else 0x0801
    with open(path, "wb") as fh:
        fh.write(struct.pack(">I", magic))
        fh.write(struct.pack(">" + "I" * array.ndim, *array.shape))
        fh.write(array.astype(np.uint8).tobytes())


def learnable_images(n: int, seed: int, size: int = 28, channels: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Class k is a bright square at a class-specific place on noise: easy to learn, not trivial."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 60, (n, channels, size, size)).astype(np.uint8)
    for i, k in enumerate(labels):
        r, c = 2 + (k // 5) * (size // 2), 2 + (k % 5) * (size // 6)
        images[i, :, r:r + size // 4, c:c + 3] = 255
    return images, labels


def write_mnist(root: Path, n_train: int = 600, n_test: int = 200, folder: str = "MNIST") -> Path:
    """root/<folder>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte, as torchvision expects."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = learnable_images(n, seed)
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images[:, 0])
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return root


def write_colour_folder(root: Path, n_train: int = 400, n_test: int = 100, size: int = 32) -> Path:
    """root/train/<class>/*.png and root/test/<class>/*.png, RGB: a square of a class's colour and place on noise."""
    from PIL import Image

    palette = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 0, 255], [0, 255, 255],
                        [255, 128, 0], [128, 0, 255], [255, 255, 255], [0, 128, 128]], dtype=np.uint8)
    for split, n, seed in (("train", n_train, 2), ("test", n_test, 3)):
        images, labels = learnable_images(n, seed, size=size, channels=3)
        for i, (img, label) in enumerate(zip(images, labels)):
            img[:, img.max(0) == 255] = palette[label][:, None]
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img.transpose(1, 2, 0)).save(folder / f"{i:05d}.png")
    return root
