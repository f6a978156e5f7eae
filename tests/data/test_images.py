"""Image files decoded to 8-bit ImageData: bit depths and formats that must not be clipped or blacked out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.fakedata import image_file, image_tree, write_folder
from reslab.data import imagefolder
from reslab.data import load_dataset
from reslab.errors import DataError

pytestmark = pytest.mark.usefixtures("isolated_cache")  # never the user's ~/.cache or $RESLAB_DATA


@pytest.mark.parametrize("fmt,suffix", [("PNG", "png"), ("TIFF", "tif"), ("PPM", "pgm")])
def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path: Path, fmt: str, suffix: str) -> None:
    """PIL's convert('L') clips 16-bit values at 255: a 16-bit image would come out almost all white."""
    rng = np.random.default_rng(3)
    tree = {rel: rng.integers(0, 65536, (4, 4), dtype=np.uint16) for rel in
            (f"{split}/{c}/{i}.{suffix}" for split in ("train", "test") for c in ("a", "b") for i in range(2))}
    tree["train/a/0." + suffix][0, :4] = [0, 65535, 32768, 4000]
    for rel, array in tree.items():
        image_file(tmp_path / "imgs" / rel, array, fmt)
    ds = load_dataset(f"imagefolder:{tmp_path / 'imgs'}")
    assert ds.input_shape == (1, 4, 4)
    assert ds.train_x[0, 0, 0].tolist() == [0, 255, 128, 16]
    expected = np.rint(tree[f"test/b/1.{suffix}"] / 257).astype(np.uint8)
    assert torch.equal(ds.test_x[3, 0], torch.from_numpy(expected))


def test_float_tiff_in_unit_range_is_scaled_not_black(tmp_path: Path) -> None:
    levels = (np.arange(16, dtype=np.float32).reshape(4, 4) * 17 / 255)  # k/255 for k = 0, 17, ..., 255
    for split in ("train", "test"):
        for c in ("a", "b"):
            image_file(tmp_path / "imgs" / split / c / "0.tif", levels, "TIFF")
    ds = load_dataset(f"imagefolder:{tmp_path / 'imgs'}")
    assert ds.train_x[0, 0].flatten().tolist() == list(range(0, 256, 17))


@pytest.mark.parametrize("array,message", [
    (np.full((4, 4), 3.5, np.float32), r"float pixels outside \[0, 1\] \(0\.0\.\.3\.5\)"),
    (np.full((4, 4), np.nan, np.float32), r"float pixels outside \[0, 1\] \(nan"),
    (np.full((4, 4), 70000, np.int32), r"32-bit integer pixels outside 0\.\.65535 \(0\.\.70000\)"),
])
def test_images_that_cannot_be_read_as_8_bit_are_refused(tmp_path: Path, array: np.ndarray, message: str) -> None:
    array = array.copy()
    array[0, 0] = 0
    write_folder(tmp_path / "imgs", image_tree(gray=True))
    image_file(tmp_path / "imgs/train/cat/odd.tif", array, "TIFF")
    with pytest.raises(DataError, match=rf"train/cat/odd\.tif has {message}") as info:
        load_dataset(f"imagefolder:{tmp_path / 'imgs'}")
    assert "\n" not in str(info.value)
