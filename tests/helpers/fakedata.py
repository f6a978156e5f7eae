"""The one writer of fake data for the tests: tiny datasets in the official file formats, so no test needs real data.

Learnable sets (`write_mnist`, `write_colour_folder`: a class is a square at a class's place) for training, and
exact random ones (`make_mnist`, `make_cifar`, `image_tree` + `write_folder`/`write_zip`) that return the arrays
written, for the loaders' round trips.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import torch

PALETTE = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 0, 255], [0, 255, 255],
                    [255, 128, 0], [128, 0, 255], [255, 255, 255], [0, 128, 128]], dtype=np.uint8)


def write_idx(path: Path, array: np.ndarray) -> None:
    """IDX: magic 0x0000080N (N = number of dims, 0x08 = uint8), then big-endian int32 dims, then bytes."""
    header = struct.pack(">I", 0x800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


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
    """Learnable: root/<folder>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte, as torchvision expects."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = learnable_images(n, seed)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images[:, 0])
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return root


def write_colour_folder(root: Path, n_train: int = 400, n_test: int = 100, size: int = 32) -> Path:
    """Learnable: root/{train,test}/<class>/*.png, RGB, a square of a class's colour and place on noise.

    The colour matters: a conv net that ends in global average pooling hardly sees where the square is.
    """
    from PIL import Image

    for split, n, seed in (("train", n_train, 2), ("test", n_test, 3)):
        images, labels = learnable_images(n, seed, size=size, channels=3)
        for i, (img, label) in enumerate(zip(images, labels)):
            img[:, img.max(0) == 255] = PALETTE[label][:, None]
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.ascontiguousarray(img.transpose(1, 2, 0))).save(folder / f"{i:05d}.png")
    return root


def make_mnist(root: Path, folder: str = "MNIST", n_train: int = 12, n_test: int = 6) -> dict[str, np.ndarray]:
    """Random: IDX files as write_mnist's, returning {file name: the array written}."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    for name, array in arrays.items():
        write_idx(raw / name, array)
    return arrays


def make_cifar(root: Path, hundred: bool = False, n_per_batch: int = 4) -> dict[str, np.ndarray]:
    """Random: torchvision's pickled CIFAR batches, rows of 3072 bytes (R plane, G plane, B plane)."""
    rng = np.random.default_rng(1)
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    folder.mkdir(parents=True)
    names = ["train"] if hundred else [f"data_batch_{i}" for i in range(1, 6)]
    key, n_classes = ("fine_labels", 100) if hundred else ("labels", 10)
    out: dict[str, list] = {"train_x": [], "train_y": [], "test_x": [], "test_y": []}
    for split, files in (("train", names), ("test", ["test" if hundred else "test_batch"])):
        for name in files:
            x = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
            y = rng.integers(0, n_classes, n_per_batch).tolist()
            with open(folder / name, "wb") as f:
                pickle.dump({"data": x, key: y}, f)
            out[f"{split}_x"].append(x)
            out[f"{split}_y"] += y
    meta_name, meta_key = ("meta", "fine_label_names") if hundred else ("batches.meta", "label_names")
    with open(folder / meta_name, "wb") as f:
        pickle.dump({meta_key: [f"class{i}" for i in range(n_classes)]}, f)
    return {"train_x": np.concatenate(out["train_x"]), "train_y": np.array(out["train_y"]),
            "test_x": np.concatenate(out["test_x"]), "test_y": np.array(out["test_y"])}


def png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def image_file(path: Path, array: np.ndarray, fmt: str) -> None:
    """One image file in a given format (PNG, TIFF, PPM...), for the decoders' bit-depth cases."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)


def image_tree(classes: tuple[str, ...] = ("dog", "cat"), per_class: int = 3, size: int = 6,
               gray: bool = False, seed: int = 2) -> dict[str, np.ndarray]:
    """Random: {relative path: HxW or HxWx3 uint8 array} for train/ and test/."""
    rng = np.random.default_rng(seed)
    shape = (size, size) if gray else (size, size, 3)
    return {f"{split}/{c}/{i:03d}.png": rng.integers(0, 256, shape, dtype=np.uint8)
            for split in ("train", "test") for c in classes for i in range(per_class)}


def write_folder(root: Path, tree: dict[str, np.ndarray]) -> Path:
    for rel, array in tree.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(png_bytes(array))
    return root


def write_zip(path: Path, tree: dict[str, np.ndarray], prefix: str = "", compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for rel, array in tree.items():
            zf.writestr(prefix + rel, png_bytes(array))
    return path


def chw(array: np.ndarray) -> torch.Tensor:
    """The tensor a loader should give for an image_tree array: CxHxW uint8."""
    return torch.from_numpy(array).permute(2, 0, 1) if array.ndim == 3 else torch.from_numpy(array)[None]
