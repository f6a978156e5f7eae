"""reslab.data.checks: ImageData that training cannot use is refused with the reason."""

from __future__ import annotations

import pytest
import torch

from reslab.data import ImageData
from reslab.errors import DataError

pytestmark = pytest.mark.usefixtures("isolated_cache")  # never the user's ~/.cache or $RESLAB_DATA


def good_image_data(**changes: object) -> ImageData:
    import dataclasses

    data = ImageData("tiny", torch.zeros(4, 3, 5, 5, dtype=torch.uint8), torch.tensor([0, 1, 2, 1]),
                     torch.zeros(2, 3, 5, 5, dtype=torch.uint8), torch.tensor([2, 0]), classes=("a", "b", "c"),
                     mean=(0.5,) * 3, std=(0.2,) * 3)
    return dataclasses.replace(data, **changes)


@pytest.mark.parametrize("changes,message", [
    ({"test_y": torch.tensor([2, 3])}, r"tiny: test label 3 \(sample 1\) is outside 0\.\.2 .*in SRC"),
    ({"train_y": torch.tensor([0, -1, 2, 1])}, r"train label -1 \(sample 1\)"),
    ({"train_x": torch.zeros(4, 3, 5, 5)}, r"train images are torch\.float32 \(4, 3, 5, 5\), not uint8"),
    ({"test_x": torch.zeros(2, 5, 5, dtype=torch.uint8)}, r"test images .*\(2, 5, 5\), not uint8 \(N, C, H, W\)"),
    ({"test_x": torch.zeros(2, 1, 5, 5, dtype=torch.uint8)}, r"train images are 3x5x5 but test images are 1x5x5"),
    ({"test_x": torch.zeros(2, 3, 4, 5, dtype=torch.uint8)}, r"train images are 3x5x5 but test images are 3x4x5"),
    ({"train_y": torch.tensor([0, 1, 2])}, r"4 train images but 3 labels"),
    ({"train_y": torch.tensor([0.0, 1, 2, 1])}, r"train labels are torch\.float32"),
    ({"classes": ("a",), "train_y": torch.zeros(4, dtype=torch.int64), "test_y": torch.zeros(2, dtype=torch.int64)},
     r"only 1 class \(a\).*at least 2"),
    ({"mean": (0.5,)}, r"mean and std for 1 and 3 channels"),
])
def test_check_image_data_refuses_what_training_cannot_use(changes: dict, message: str) -> None:
    from reslab.data.checks import check_image_data

    check_image_data(good_image_data(), "SRC")
    with pytest.raises(DataError, match=message) as info:
        check_image_data(good_image_data(**changes), "SRC")
    assert "\n" not in str(info.value)
