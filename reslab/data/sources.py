"""Where datasets come from: torchvision's files or an image folder, as one `ImageData` of uint8 tensors.

`load_dataset` is the one entry point; it checks the files itself so that a missing, partial or
corrupt dataset is a one-line `DataError` naming the files, never a torchvision traceback or a
download over files the user put there.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from reslab.data import memo
from reslab.data.checks import check_image_data
from reslab.data.imagefolder import find_source, load_image_folder
from reslab.data.images import ImageData
from reslab.checks import require_memory
from reslab.errors import DataError, first_line

# spec -> (torchvision dataset class, known per-channel mean and std of the train set in [0, 1] units)
_TORCHVISION: dict[str, tuple[str, tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ("MNIST", (0.1307,), (0.3081,)),
    "fashion-mnist": ("FashionMNIST", (0.2860,), (0.3530,)),
    "cifar10": ("CIFAR10", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ("CIFAR100", (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
DATASET_NAMES: tuple[str, ...] = (*_TORCHVISION, "imagefolder:PATH")


def resolve_data_dir(data_dir: str | Path | None) -> Path:
    """The argument, else $RESLAB_DATA, else ./data (torchvision's `root`), with ~ expanded.

    torchvision expands ~ itself; expanding it here too makes reslab's checks (never download over
    partial data) look at the folder torchvision will read, not at a literal ./~ beside it.
    """
    return Path(data_dir or os.environ.get("RESLAB_DATA") or "data").expanduser()


def load_dataset(
    spec: str, data_dir: str | Path | None = None, *, download: bool = True, image_size: int | None = None
) -> ImageData:
    """Load `spec` (mnist, fashion-mnist, cifar10, cifar100 or imagefolder:PATH) as uint8 tensors.

    Inside `memo.reusing()` (a sweep) a dataset decoded before in this process is handed out again."""
    root = resolve_data_dir(data_dir)
    kept = memo.current()
    if kept is None:
        return _decode(spec, root, download, image_size)
    key = (spec, str(Path.cwd()), str(root.absolute()), image_size)  # a relative path depends on the cwd
    return kept.get(key, lambda: _decode(spec, root, download, image_size))


def _decode(spec: str, root: Path, download: bool, image_size: int | None) -> ImageData:
    """Read and decode `spec` from its files (or the checked cache of an image folder)."""
    if spec.startswith("imagefolder:"):
        source = find_source(spec.removeprefix("imagefolder:"), root)
        data = dataclasses.replace(load_image_folder(source, image_size), name=spec)
        check_image_data(data, source)
        return data
    name = spec.strip().lower().replace("_", "-")
    if name not in _TORCHVISION:
        raise DataError(f"unknown dataset {spec!r}; valid: {', '.join(DATASET_NAMES)}")
    data = _load_torchvision(name, root, download)
    if image_size is None or data.input_shape[1:] == (image_size, image_size):
        return data
    if image_size < 1:
        raise DataError(f"data.image_size must be a positive number of pixels, got {image_size}")
    images = len(data.train_x) + len(data.test_x)
    require_memory(images * data.input_shape[0] * image_size**2 * 5,  # uint8 result and the float image resized
                   f"data.image_size={image_size} ({images:,} images of {image_size}x{image_size})")
    return dataclasses.replace(data, train_x=_resize(data.train_x, image_size), test_x=_resize(data.test_x, image_size))


def _resize(x: Tensor, size: int) -> Tensor:
    """uint8 (N, C, H, W) -> (N, C, size, size), antialiased bilinear like PIL's resize."""
    out = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8)


# ---------------------------------------------------------------- torchvision datasets


def _expected_files(cls: type, root: Path) -> tuple[Path, list[tuple[str, str | None]]]:
    """The folder torchvision reads and the (file, md5 or None) it needs there, from its own class."""
    if hasattr(cls, "resources"):  # MNIST family: uncompressed forms of the .gz resources, no md5
        return root / cls.__name__ / "raw", [(os.path.splitext(f)[0], None) for f, _ in cls.resources]
    files = [(f, md5) for f, md5 in cls.train_list + cls.test_list] + [(cls.meta["filename"], cls.meta["md5"])]
    return root / cls.base_folder, files  # CIFAR: md5s that torchvision checks on every load


def _load_torchvision(name: str, root: Path, download: bool) -> ImageData:
    """Check the files first (torchvision would download over a partial set), then read both splits."""
    import torchvision.datasets as tvd
    from torchvision.datasets.utils import check_integrity

    cls_name, mean, std = _TORCHVISION[name]
    cls = getattr(tvd, cls_name)
    folder, files = _expected_files(cls, root)
    missing = [f for f, _ in files if not (folder / f).is_file()]
    how = f"run once with network access and download on, or copy {', '.join(f for f, _ in files)} into {folder}"
    if missing and len(missing) < len(files):  # a download would overwrite the files that are there
        raise DataError(f"{name} is incomplete: {', '.join(missing)} missing in {folder}; copy them there")
    if missing and not download:
        raise DataError(f"{name} not found: expected {', '.join(missing)} in {folder}; {how}")
    if missing:
        try:
            cls(str(root), train=True, download=True)
        except Exception as err:  # offline: URLError, RuntimeError, OSError ...
            raise DataError(f"could not download {name} into {folder} ({_reason(err)}); {how}") from err
    try:
        splits = [cls(str(root), train=train, download=False) for train in (True, False)]
    except Exception as err:
        bad = [f for f, md5 in files
               if not (_readable_idx(folder / f) if md5 is None else check_integrity(str(folder / f), md5))]
        what = f"{', '.join(bad)} in {folder}" if bad else f"the files in {folder} ({first_line(err)})"
        raise DataError(f"{name} is corrupt or truncated: {what}; replace them with the official files") from err
    tensors: list[Tensor] = []
    for split in splits:
        x = torch.as_tensor(split.data)
        x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)  # MNIST (N,H,W); CIFAR (N,H,W,C)
        y = torch.as_tensor(split.targets, dtype=torch.int64)
        if len(x) != len(y):
            raise DataError(f"{name} in {folder} has {len(x)} images but {len(y)} labels; replace the files")
        tensors += [x.contiguous(), y]
    data = ImageData(name, *tensors, classes=tuple(splits[0].classes), mean=mean, std=std)
    check_image_data(data, folder, _tensor_files(cls, folder), fix="replace it with the official file")
    return data


def _tensor_files(cls: type, folder: Path) -> dict[str, Path]:
    """The file behind each tensor, for messages: the MNIST family keeps them apart (CIFAR's batches do not)."""
    if not hasattr(cls, "resources"):
        return {}
    return {f"{split}_{xy}": folder / f"{prefix}-{kind}" for split, prefix in (("train", "train"), ("test", "t10k"))
            for xy, kind in (("x", "images-idx3-ubyte"), ("y", "labels-idx1-ubyte"))}


def _reason(err: BaseException) -> str:
    """The whole message on one line: torchvision's first line is 'Error downloading X:', the reason follows."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return " ".join(lines) if len(lines) > 1 else first_line(err)


def _readable_idx(path: Path) -> bool:
    """Whether an uncompressed IDX file parses in full (MNIST has no md5 for its uncompressed files)."""
    from torchvision.datasets.mnist import read_sn3_pascalvincent_tensor

    try:
        read_sn3_pascalvincent_tensor(str(path), strict=True)
        return True
    except Exception:
        return False
