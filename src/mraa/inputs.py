"""Images and driving frames in the forms users have -> float tensors at the model's size.

A source may be a tensor (C, H, W) / (1, C, H, W) in [0, 1], a numpy uint8 (H, W, 3) array (gray, alpha and
float arrays are converted as :func:`mraa.data.video_io.to_rgb_uint8` does), a PIL image or a path. Driving
frames may be a tensor (T, C, H, W), a numpy (T, H, W, 3) array, a path (video file, folder of frames, png
strip) or an iterable of any of the single-image forms. Inputs at another size are resized (centre-cropped to
the model's aspect ratio first with ``crop``) with one log line per input; shapes that cannot be images raise
:class:`~mraa.errors.MRAAError`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch.nn.functional as F
from torch import Tensor

from mraa.errors import MRAAError
from mraa.image import to_batch as uint8_to_batch  # conversions live in mraa.image; old name kept

log = logging.getLogger(__name__)

ImageInput = Tensor | np.ndarray | str | os.PathLike | Any  # Any: a PIL image
DrivingInput = Tensor | np.ndarray | str | os.PathLike | Iterable[Any]


def _is_pil(image: object) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a core dependency
        return False
    return isinstance(image, Image.Image)


def image_to_uint8(image: np.ndarray | str | os.PathLike | Any, name: str = "image") -> np.ndarray:
    """A numpy array, PIL image or image path as uint8 (H, W, 3)."""
    from mraa.data.video_io import pil_to_rgb_uint8, read_image, to_rgb_uint8

    if isinstance(image, (str, os.PathLike)):
        return read_image(image)
    if _is_pil(image):  # every Pillow mode as read_image converts it (palette, CMYK, 16-bit, float, EXIF)
        return pil_to_rgb_uint8(image, name=name)
    array = np.asarray(image)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 2, 3, 4)):
        raise MRAAError(
            f"{name}: expected an image array of shape (H, W) or (H, W, 3), got {tuple(array.shape)}"
        )
    if min(array.shape[:2]) < 1:
        raise MRAAError(f"{name}: empty image of shape {tuple(array.shape)}")
    return to_rgb_uint8(array, name=name)


class Fitter:
    """Brings images of one input to the model's size, logging the first resize once.

    ``size`` None keeps the first image's size (and brings later images to it).
    """

    def __init__(self, size: tuple[int, int] | None, crop: bool = False, name: str = "input") -> None:
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.crop = crop
        self.name = name
        self._logged = False

    def _note(self, shape: tuple[int, int]) -> None:
        if not self._logged:
            how = "centre-cropped and resized" if self.crop else "resized"
            log.info(
                "%s: %dx%d %s to the model's %dx%d", self.name, shape[1], shape[0], how, *self.size[::-1]
            )
            self._logged = True

    def uint8(self, frame: np.ndarray) -> Tensor:
        """uint8 (H, W, 3) -> (1, 3, h, w) at the model's size."""
        from mraa.data.video_io import fit_frame

        self.size = self.size or frame.shape[:2]
        if frame.shape[:2] != self.size:
            self._note(frame.shape[:2])
        return uint8_to_batch(fit_frame(frame, self.size, self.crop))

    def tensor(self, images: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, h, w) float at the model's size (bilinear, anti-aliased)."""
        if not images.is_floating_point():
            images = images.float().div(255.0)
        self.size = self.size or tuple(images.shape[2:])
        if tuple(images.shape[2:]) == self.size:
            return images
        self._note(tuple(images.shape[2:]))
        if self.crop:
            images = _centre_crop(images, self.size[1] / self.size[0])
        return F.interpolate(images, size=self.size, mode="bilinear", align_corners=False, antialias=True)

    def any(self, image: ImageInput) -> Tensor:
        """One image in any accepted form -> (B, 3, h, w); B is 1 except for tensor batches."""
        if isinstance(image, Tensor):
            return self.tensor(check_image_tensor(image, self.name))
        return self.uint8(image_to_uint8(image, self.name))


def _centre_crop(images: Tensor, aspect: float) -> Tensor:
    from mraa.data.video_io import centre_crop_box

    y0, y1, x0, x1 = centre_crop_box(images.shape[2], images.shape[3], aspect)
    return images[..., y0:y1, x0:x1]


def check_image_tensor(image: Tensor, name: str = "image", channels: int = 3) -> Tensor:
    """Validate an image tensor (C, H, W) or (B, C, H, W) and return it as (B, C, H, W)."""
    shape = tuple(image.shape)
    if image.ndim == 3:
        image = image.unsqueeze(0)
    if image.ndim != 4:
        raise MRAAError(f"{name}: expected a tensor (C, H, W) or (B, C, H, W), got shape {shape}")
    if image.shape[1] != channels:
        hint = " (channels last? use tensor.permute(2, 0, 1))" if shape[-1] == channels else ""
        raise MRAAError(f"{name}: expected {channels} channels in dimension 1, got shape {shape}{hint}")
    if min(image.shape[2:]) < 1:
        raise MRAAError(f"{name}: empty image tensor of shape {shape}")
    return image


def source_tensor(image: ImageInput, size: tuple[int, int] | None, crop: bool = False) -> Tensor:
    """A source image in any accepted form -> (1, 3, H, W) in [0, 1] at ``size``."""
    batch = Fitter(size, crop, "source").any(image)
    if batch.shape[0] != 1:
        raise MRAAError(f"source: expected one image, got a batch of {batch.shape[0]}")
    return batch


def driving_tensors(driving: DrivingInput, size: tuple[int, int], crop: bool = False) -> Iterator[Tensor]:
    """Driving frames in any accepted form -> a lazy stream of (B, 3, H, W) batches at ``size``."""
    from mraa.data.video_io import iter_video

    fitter = Fitter(size, crop, "driving")
    if isinstance(driving, Tensor):
        frames = check_image_tensor(driving, "driving")
        for start in range(0, frames.shape[0], 16):
            yield fitter.tensor(frames[start : start + 16])
        return
    if isinstance(driving, (str, os.PathLike)):
        fitter.name = f"driving {Path(driving).name}"
        for frame in iter_video(driving):
            yield fitter.uint8(frame)
        return
    if isinstance(driving, np.ndarray) and driving.ndim == 4:
        driving = iter(driving)
    elif isinstance(driving, np.ndarray) or _is_pil(driving):
        raise MRAAError(
            f"driving: expected frames (T, H, W, 3), a video path or an iterable of frames, "
            f"got {type(driving).__name__} of shape {getattr(driving, 'shape', getattr(driving, 'size', '?'))}"
        )
    if not isinstance(driving, Iterable):
        raise MRAAError(
            f"driving: expected frames, a video path or an iterable of frames, got {type(driving)}"
        )
    for item in driving:
        yield fitter.any(item)


def count_frames(driving: DrivingInput) -> int | None:
    """The number of driving frames when cheap to know (tensors, arrays, probed videos), else None."""
    if isinstance(driving, (Tensor, np.ndarray)):
        return int(driving.shape[0]) if driving.ndim == 4 else 1
    if isinstance(driving, (str, os.PathLike)):
        from mraa.data.video_io import probe_video

        try:
            count = probe_video(driving).num_frames
        except MRAAError:
            return None
        return count or gif_frames(Path(driving))
    try:
        return len(driving)  # type: ignore[arg-type]
    except TypeError:
        return None


def gif_frames(path: Path) -> int | None:
    """The frame count of a gif (Pillow reads it from the file without decoding), else None."""
    if path.suffix.lower() != ".gif":
        return None
    from PIL import Image

    try:
        with Image.open(path) as image:
            return int(getattr(image, "n_frames", 1))
    except Exception:  # an unreadable gif fails clearly when it is decoded
        return None
