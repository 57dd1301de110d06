"""The ground floor: image conversions (mraa.image) and boxes as pure functions (mraa.boxes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mraa.boxes import (
    Box,
    box_feather,
    box_iou,
    center_box,
    contains,
    crop_resize,
    even_size,
    fit_box,
    outside_fraction,
    paste_back,
    scale_box,
    square,
    union,
)
from mraa.errors import MRAAError
from mraa.image import (
    blur_mask,
    centre_crop_box,
    edge_feather,
    fit_frame,
    float_to_uint8,
    mask_to_uint8,
    resize,
    to_batch,
    to_tensor,
    to_uint8,
    uint8_to_float,
)


def _picture(h: int = 12, w: int = 10, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_uint8_tensor_round_trip_shapes_and_values():
    image = _picture()
    tensor = to_tensor(image)
    assert tensor.shape == (3, 12, 10) and tensor.dtype == torch.float32
    assert float(tensor[1, 2, 3]) == pytest.approx(image[2, 3, 1] / 255.0)
    np.testing.assert_array_equal(to_uint8(tensor), image)
    batch = to_batch(image)
    assert batch.shape == (1, 3, 12, 10)
    stack = np.stack([image, _picture(seed=1)])
    assert to_tensor(stack).shape == (2, 3, 12, 10)
    np.testing.assert_array_equal(to_uint8(to_tensor(stack)), stack)


def test_to_uint8_rounds_and_clamps():
    values = torch.tensor([-0.5, 0.0, 0.5 / 255, 0.49 / 255, 1.0, 2.0]).view(1, 1, 6).expand(3, 1, 6)
    out = to_uint8(values)[0, :, 0]
    assert out.tolist() == [0, 0, 1, 0, 255, 255]
    assert mask_to_uint8(torch.tensor([[0.0, 0.5, 1.5]])).tolist() == [[0, 128, 255]]


def test_float_numpy_conversions():
    array = np.array([0, 128, 255], np.uint8)
    floats = uint8_to_float(array)
    assert floats.dtype == np.float32 and floats[-1] == 1.0
    np.testing.assert_array_equal(float_to_uint8(floats), array)
    assert float_to_uint8(np.array([-1.0, 7.0])).tolist() == [0, 255]


def test_resize_and_fit_frame():
    image = _picture(20, 40)
    assert resize(image, (20, 40)) is image
    assert resize(image, (10, 16)).shape == (10, 16, 3)
    assert centre_crop_box(20, 40, 1.0) == (0, 20, 10, 30)
    assert fit_frame(image, (8, 8), crop=True).shape == (8, 8, 3)
    with pytest.raises(MRAAError, match="at least 8x8"):
        fit_frame(_picture(4, 40), (8, 8))


def test_edge_feather_and_blur_mask():
    mask = edge_feather(40, 20, 0.25, (True, False, True, True))
    assert mask.shape == (40, 20) and mask.dtype == np.float32
    assert mask[20, 10] == 1.0 and mask[0, 10] < 0.05 and mask[-1, 10] == 1.0  # bottom edge does not fall
    assert mask[20, 0] < 0.05 and mask[20, -1] < 0.05
    step = torch.zeros(1, 1, 9, 9)
    step[..., 4:] = 1.0
    blurred = blur_mask(step, 1.5)
    assert 0.0 < float(blurred[0, 0, 0, 3]) < float(blurred[0, 0, 0, 4]) < 1.0
    assert blur_mask(step, 0) is step
    with pytest.raises(MRAAError, match="feather"):
        blur_mask(step, -1.0)


def test_box_arithmetic():
    a, b = Box(0, 0, 10, 10), Box(5, 0, 15, 10)
    assert box_iou(a, b) == pytest.approx(50 / 150)
    assert box_iou(a, Box(20, 20, 30, 30)) == 0.0
    assert union(a, b) == Box(0, 0, 15, 10)
    assert scale_box(b, 2.0) == Box(10, 0, 30, 20)
    assert square(Box(0, 0, 10, 4)) == Box(0, -3, 10, 7)
    assert contains(union(a, b), b) and not contains(a, b)
    assert outside_fraction(Box(-5, 0, 5, 10), 20, 20) == pytest.approx(0.5)
    assert Box(-5, 2, 30, 8).clip(20, 20) == Box(0, 2, 20, 8)


def test_fit_and_center_boxes_lie_in_the_image():
    fitted = fit_box(Box(-10, -10, 30, 30), 100, 60)
    assert fitted == Box(0, 0, 40, 40)
    huge = fit_box(Box(0, 0, 500, 500), 100, 60)
    assert huge.width == huge.height == 60 and huge.x0 >= 0 and huge.x1 <= 100
    assert center_box(100, 60) == Box(20, 0, 80, 60)
    assert even_size(101, 57) == (100, 56)


def test_crop_pads_by_reflection_and_paste_back_keeps_the_outside():
    image = _picture(40, 40)
    crop = crop_resize(image, Box(-4, 0, 16, 20), (20, 20))
    np.testing.assert_array_equal(crop[:, 4:], image[:20, :16])
    np.testing.assert_array_equal(crop[:, :4], image[:20, 3::-1])  # mirrored past the left border
    weight = box_feather(Box(10, 0, 30, 20), 40, 40, 0.2)
    assert weight.shape == (20, 20) and weight[0, 10] == 1.0 and weight[-1, 10] < 0.1  # top is the border
    white = np.full((20, 20, 3), 255, np.uint8)
    out = paste_back(image, white, Box(10, 10, 30, 30))
    np.testing.assert_array_equal(out[:10], image[:10])  # outside the box: the source, exactly
    assert (out[20, 20] == 255).all()
    assert (image == _picture(40, 40)).all()  # the source itself is untouched
    with pytest.raises(MRAAError, match="does not overlap"):
        paste_back(image, white, Box(50, 50, 60, 60))
