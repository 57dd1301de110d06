"""Image files (uint8 HxWx3 RGB numpy arrays): reading upright in RGB whatever the mode, atomic writing
checked by reading back, folders of frames written atomically, the size rules for inputs, and fitting a
frame to a model's size.

Part of :mod:`mraa.data.video_io`, which re-exports these names (readers of frame folders and strips use them).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from mraa.atomic import atomic_path, lock_temp, release_temp, temp_dir, unmark_dir
from mraa.errors import MRAAError
from mraa.image import MIN_IMAGE_SIDE, centre_crop_box, check_image_size, fit_frame  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def to_rgb_uint8(image: np.ndarray, name: str = "image", warn: bool = True) -> np.ndarray:
    """Convert an image array (gray, gray+alpha, RGB, RGBA, 16-bit, float) to uint8 HxWx3.

    Four channels are read as RGBA: decode CMYK files with :func:`read_image`, which converts by mode.
    """
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise MRAAError(f"{name}: expected a 2D image, got an array of shape {array.shape}")
    channels = array.shape[2]
    if array.dtype == np.uint16:
        if warn:
            log.warning("%s: 16-bit image converted to 8 bits", name)
        array = (array.astype(np.float32) / 65535.0 * 255.0 + 0.5).astype(np.uint8)
    elif array.dtype in (np.float16, np.float32, np.float64):
        array = (np.clip(np.nan_to_num(array), 0, 1) * 255.0 + 0.5).astype(np.uint8)
    elif array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    if channels in (2, 4):
        if warn and np.any(array[:, :, -1] < 255):
            log.warning("%s: transparency dropped (composited on white)", name)
        color = array[:, :, :-1].astype(np.float32)
        alpha = array[:, :, -1:].astype(np.float32) / 255.0
        array = (color * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array[:, :, :3])


def pil_to_rgb_uint8(image, name: str = "image", warn: bool = True) -> np.ndarray:
    """A Pillow image in any mode as uint8 HxWx3, upright (EXIF orientation applied).

    CMYK, YCbCr, LAB and HSV are converted to RGB by Pillow; palette images keep their transparency
    (composited on white); 1-bit, 16-bit (``I;16``), 32-bit integer (``I``) and float (``F``) grey
    images are scaled to 8 bits.
    """
    from PIL import ExifTags, ImageOps

    if image.getexif().get(ExifTags.Base.Orientation, 1) != 1:  # exif_transpose copies even upright images
        image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        image = image.convert("RGB")
    elif mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
    elif mode == "1":
        image = image.convert("L")
    elif mode == "La":
        image = image.convert("LA")
    elif mode == "RGBa":
        image = image.convert("RGBA")
    if image.mode == "I" or image.mode.startswith("I;16"):
        array = np.asarray(image).astype(np.int64)
        if image.mode == "I" and array.max(initial=0) <= 255 and array.min(initial=0) >= 0:
            return to_rgb_uint8(array.astype(np.uint8), name, warn)
        return to_rgb_uint8(np.clip(array, 0, 65535).astype(np.uint16), name, warn)
    if image.mode == "F":
        array = np.nan_to_num(np.asarray(image, dtype=np.float64))
        scale = 1.0 if array.max(initial=0.0) <= 1.0 else 255.0  # [0, 1] floats or 0-255 floats
        return to_rgb_uint8((array / scale).astype(np.float32), name, warn)
    if image.mode not in ("L", "LA", "RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.mode else "RGB")
    return to_rgb_uint8(np.array(image), name, warn)  # a writable copy (np.asarray of an image is read-only)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as uint8 HxWx3, upright, in RGB whatever its mode (CMYK, palette, 16-bit...)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise MRAAError(f"image not found: {path}")
    if path.is_dir():
        raise MRAAError(f"expected an image file, got a directory: {path}")
    try:
        with Image.open(path) as image:
            image.seek(0)  # the first frame of an animated gif/webp/tiff
            image.load()
            return pil_to_rgb_uint8(image, name=str(path))
    except MRAAError:
        raise
    except Image.DecompressionBombError:  # a tiny file that would decode to gigabytes
        raise MRAAError(
            f"image {path} is too large: more than {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} million pixels"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:  # Pillow's decode errors
        raise MRAAError(f"cannot read image {path}: {exc.__class__.__name__}: {exc}") from exc


def check_output_parent(path: str | os.PathLike) -> Path:
    """``path`` if the folder it goes into exists (and is a folder, not a file), else :class:`MRAAError`."""
    path = Path(path)
    if not path.parent.is_dir():
        if path.parent.exists():
            raise MRAAError(f"cannot write {path}: {path.parent} is a file, not a folder")
        raise MRAAError(f"output directory does not exist: {path.parent}")
    return path


def write_image(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write one uint8 image atomically."""
    import imageio.v3 as iio

    path = Path(path)
    check_output_parent(path)
    image = np.ascontiguousarray(image)
    try:
        with atomic_path(path) as tmp:
            iio.imwrite(tmp, image, extension=path.suffix)
            verify_image(tmp, image.shape[:2], name=str(path))
    except OSError as exc:  # a full disk, a read-only folder
        raise MRAAError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path


def verify_image(path: str | os.PathLike, size: tuple[int, int], name: str | None = None) -> None:
    """Check that a written image can be opened and has ``size`` (H, W) (else :class:`MRAAError`)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            width, height = image.size
    except Exception as exc:
        raise MRAAError(
            f"{name or path}: the written image cannot be read back ({exc}); is the disk full?"
        ) from exc
    if (height, width) != tuple(size):
        raise MRAAError(
            f"{name or path}: the written image is {width}x{height}, expected {size[1]}x{size[0]}"
        )


class FolderWriter:
    """Write image files into a temporary sibling folder, moved into place (replacing ``folder``) on success.

    On an exception inside the ``with`` block the temporary folder is removed and ``folder`` is untouched.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self._tmp = temp_dir(self.folder.parent, self.folder.name)  # marked as mraa's
        self._lock = lock_temp(self._tmp)  # in use: not a stale temporary (see mraa.atomic)

    def write(self, name: str, image: np.ndarray) -> None:
        """Write ``image`` as ``name`` (a relative path; its subfolders are made) inside the folder."""
        import imageio.v3 as iio

        path = self._tmp / name
        try:
            if path.parent != self._tmp:
                path.parent.mkdir(parents=True, exist_ok=True)
            iio.imwrite(path, np.ascontiguousarray(image))
        except OSError as exc:  # a full disk
            raise MRAAError(f"cannot write {self.folder}: {exc.strerror or exc}") from exc

    def __enter__(self) -> FolderWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        import shutil

        try:
            if exc_type is None:
                unmark_dir(self._tmp)
                if self.folder.exists():
                    shutil.rmtree(self.folder)
                os.replace(self._tmp, self.folder)
        finally:
            if self._tmp.exists():  # an exception (in the block or above): drop what was written
                shutil.rmtree(self._tmp, ignore_errors=True)
            release_temp(self._lock)


def write_frame_folder(folder: str | os.PathLike, frames: Iterable[np.ndarray]) -> Path:
    """Write frames as ``000000.png``, ``000001.png``... into a new folder (atomically)."""
    folder = Path(folder)
    check_output_parent(folder)
    with FolderWriter(folder) as writer:
        for index, frame in enumerate(frames):
            writer.write(f"{index:06d}.png", frame)
    return folder
