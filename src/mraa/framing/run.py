"""A framed animation run: options, the source and driving crops and the output frames (pure parts: no
model is called here; :mod:`mraa.framing.reference` drives an animator through a run)."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np

from mraa.errors import MRAAError
from mraa.framing.boxes import CROP_CHOICES, animator_framing, center_box, framing_from_crop
from mraa.framing.composite import Compositor, crop_resize, heatmap_masks, parse_output_size
from mraa.framing.detect import _has_cv2
from mraa.framing.plan import draw_crop_preview, frame_source, framed_frames, plan_for_files
from mraa.image import to_tensor, to_uint8

if TYPE_CHECKING:
    from torch import Tensor

log = logging.getLogger(__name__)

T = TypeVar("T")
# the sample image shipped with the default model (mraa/assets/default, as mraa.animate.DEFAULT_MODEL_DIR)
SHIPPED_SAMPLE = Path(__file__).resolve().parents[1] / "assets" / "default" / "source.png"


SYNTHETIC_MODEL_NOTE = (
    "note: the shipped model was trained only on synthetic figures (mraa synth), so on a photo it "
    "demonstrates the method rather than giving a good result; for real faces, bodies or talks use an "
    "official checkpoint, e.g. --checkpoint vox256.pth --config configs/vox256.yaml (README: official "
    "checkpoints)"
)


# ----------------------------------------------------------------------------- a framed animation run
PASTE_MODES = ("box", "regions")


@dataclass
class FramingOptions:
    """What ``mraa animate`` asks of the framing: ``crop`` (a :data:`CROP_CHOICES` value), ``paste_back``
    (None, ``box`` or ``regions``), ``output_size`` (W, H) and ``best_frame``."""

    crop: str = "none"
    paste_back: str | None = None
    output_size: tuple[int, int] | None = None
    best_frame: bool = False

    def __post_init__(self) -> None:
        self.crop = self.crop.replace("_", "-") if self.crop else "none"
        if self.crop not in CROP_CHOICES:
            raise MRAAError(f"unknown crop {self.crop!r}; choose from {', '.join(CROP_CHOICES)}")
        if self.paste_back not in (None, *PASTE_MODES):
            raise MRAAError(f"paste-back must be box or regions, got {self.paste_back!r}")

    @property
    def active(self) -> bool:
        """Whether anything differs from resizing the whole inputs."""
        return self.crop != "none" or bool(self.paste_back) or self.output_size is not None or self.best_frame


class FramingModel(Protocol):
    """What framing reads from a model (an :class:`~mraa.animate.Animator` fits): facts, never calls
    that animate. ``config`` may be None (no framing)."""

    config: Any
    shipped_model: bool

    @property
    def image_size(self) -> tuple[int, int]: ...

    def default_mode(self) -> str: ...


class FramedRun:
    """Source and driving framed for one animation, and the output frames made from the animated crops.

    Pure parts: boxes, a crop plan and a compositor; it never calls a model. The animation itself, and the
    region heatmaps ``regions`` paste-back needs, come from the caller
    (:func:`~mraa.framing.reference.animate_framed` does both for an animator).

    Args:
        source: the full-resolution source image (H, W, 3) uint8.
        driving: the driving video path.
        options: see :class:`FramingOptions`.
        size: (H, W) the model works at.
        framing: the framing the model was trained with (:data:`~mraa.framing.boxes.FRAMINGS`).
        max_frames: only plan for the first frames (None: all).
    """

    def __init__(
        self,
        source: np.ndarray,
        driving: str | os.PathLike,
        options: FramingOptions,
        *,
        size: tuple[int, int],
        framing: str = "none",
        max_frames: int | None = None,
    ) -> None:
        self.options = options
        self.size = (int(size[0]), int(size[1]))
        self.crop = framing_from_crop(options.crop, framing, (source.shape[1], source.shape[0]))
        self.plan = plan_for_files(source, driving, self.crop, self.size[1] / self.size[0], max_frames)
        self.driving = driving
        self.source = source
        self.source_crop = crop_resize(
            source, self.plan.source.box, self.size
        )  # (h, w, 3) at the model's size
        paste = options.paste_back is not None
        needs = paste or options.output_size is not None
        self.compositor = (
            Compositor(source, self.plan.source.box, paste, options.output_size) if needs else None
        )
        for message in self.plan.messages:
            log.warning("%s", message)
        log.info("crop %s: source box %s, driving shots %s", self.crop, tuple(self.plan.source.box),
                 len(self.plan.driving.shots))  # fmt: skip

    @classmethod
    def for_model(
        cls,
        model: FramingModel,
        source: np.ndarray,
        driving: str | os.PathLike,
        options: FramingOptions,
        *,
        max_frames: int | None = None,
    ) -> FramedRun:
        """A run at ``model``'s size and training framing."""
        return cls(source, driving, options, size=model.image_size, framing=animator_framing(model),
                   max_frames=max_frames)  # fmt: skip

    @property
    def messages(self) -> list[str]:
        return self.plan.messages

    @property
    def needs_heatmaps(self) -> bool:
        """Whether :meth:`output_frames` needs region heatmaps (``regions`` paste-back)."""
        return self.compositor is not None and self.options.paste_back == "regions"

    def write_preview(self, path: str | os.PathLike | None) -> None:
        """Draw the boxes on the source and a few driving frames into ``path`` (nothing when None)."""
        if path is not None:
            from mraa.data.video_io import write_image

            write_image(path, draw_crop_preview(self.plan, self.source))

    def driving_frames(self) -> Iterator[np.ndarray]:
        """The driving frames cut to their shot's box, at the model's size (uint8)."""
        from mraa.data.video_io import iter_video

        return framed_frames(iter_video(self.driving), self.plan.driving, self.size)

    def output_frames(
        self, predictions: Tensor, *, heatmaps: Tensor | None = None, source_heatmap: Tensor | None = None
    ) -> np.ndarray:
        """Animated crops (B, 3, h, w) in [0, 1] -> output frames (B, H, W, 3) uint8.

        ``regions`` paste-back (:attr:`needs_heatmaps`) needs the region heatmaps (B, K, h', w') of the
        animated crops and (1, K, h', w') of :attr:`source_crop`.
        """
        images = to_uint8(predictions.float().cpu())
        if self.compositor is None:
            return images
        masks: Sequence[np.ndarray | None] = [None] * len(images)
        if self.needs_heatmaps:
            if heatmaps is None or source_heatmap is None:
                raise MRAAError(
                    "regions paste-back needs the region heatmaps of the animated and source crops"
                )
            masks = heatmap_masks(source_heatmap, heatmaps)
        return np.stack([self.compositor(image, mask) for image, mask in zip(images, masks)])

    def outputs(self, batch: T, *, heatmaps: Tensor | None = None, source_heatmap: Tensor | None = None) -> T:
        """An animated batch (a dataclass with ``prediction``) with ``prediction`` replaced by the output
        frames (float (B, 3, H, W), any size); the batch itself when nothing is composited."""
        if self.compositor is None:
            return batch
        frames = self.output_frames(batch.prediction, heatmaps=heatmaps, source_heatmap=source_heatmap)
        return dataclasses.replace(batch, prediction=to_tensor(frames))


def crop_option(crop: bool | str | None) -> str:
    """A ``crop`` argument as a :data:`CROP_CHOICES` value (True/False, as before: center/none)."""
    if crop is None or crop is False:
        return "none"
    if crop is True:
        return "center"
    value = str(crop).strip().lower().replace("_", "-")
    if value in ("1", "true", "yes", "y"):
        return "center"
    if value in ("0", "false", "no", "n", ""):
        return "none"
    if value not in CROP_CHOICES:
        raise MRAAError(f"unknown crop {crop!r}; choose from {', '.join(CROP_CHOICES)}")
    return value


def source_size(source) -> tuple[int, int] | None:
    """(W, H) of a source image path or array as displayed (None for anything else or an unreadable file,
    which fails later with its own message)."""
    if isinstance(source, np.ndarray) and source.ndim == 3:
        return source.shape[1], source.shape[0]
    if isinstance(source, (str, os.PathLike)):
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(source) as image:
                width, height = image.size
                rotated = image.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # EXIF orientation turns it
                return (height, width) if rotated else (width, height)
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError):
            return None
    return None


def is_shipped_sample(source) -> bool:
    """Whether ``source`` is the sample image shipped with the default model (a path to it)."""
    if not isinstance(source, (str, os.PathLike)):
        return False
    return Path(source).resolve() == SHIPPED_SAMPLE


def default_mode_for(animator: FramingModel, source: Any = None) -> str:
    """The mode to use when none is given: the model's (:meth:`~mraa.animate.Animator.default_mode`),
    except that the shipped synthetic-figure model animates a photo in ``relative`` mode: on real photos
    its AVD network punches dark holes from the first frame, while relative mode degrades gradually
    (benchmarks/photo_defaults.py; docs/framing.md). Its own sample, and pictures already at its 64x64
    size (the synthetic figures ``mraa synth`` renders), keep ``avd``."""
    mode = animator.default_mode()
    if mode != "avd" or not getattr(animator, "shipped_model", False) or is_shipped_sample(source):
        return mode
    size = source_size(source)
    if size is None or tuple(size) == tuple(animator.image_size[::-1]):
        return mode  # not a path or array (a tensor, an encoded source), or a render at the model's size
    return "relative"


def _center_cuts_head(animator: FramingModel, source: Any) -> bool:
    """Whether the plain centred crop of a source path/array would cut its head (a face is found and the
    head-keeping centre crop differs), so the run needs :class:`FramedRun` for ``center``."""
    if not _has_cv2() or not isinstance(source, (str, os.PathLike, np.ndarray)):
        return False
    from mraa.data.video_io import read_image

    image = source if isinstance(source, np.ndarray) else read_image(source)
    h, w = animator.image_size
    return frame_source(image, "center", w / h).box != center_box(image.shape[1], image.shape[0], w / h)


def needs_framing(
    animator: FramingModel, crop: bool | str = "none", paste_back: str | bool | None = None,
    output_size: str | tuple[int, int] | None = None, best_frame: bool = False, preview: bool = False,
    source=None,
) -> tuple[FramingOptions | None, bool]:  # fmt: skip
    """The options when they need a :class:`FramedRun` (a subject crop, paste-back, an output size, the best
    frame, a preview, a centre crop that must move to keep the head), else None and whether to centre-crop
    (which plain resizing does by itself). ``source`` (a path or array, optional): with ``auto`` and a
    model without a framing, a source that is not square is centre-cropped rather than squashed."""
    paste = "regions" if paste_back is True else (paste_back or None)
    size = parse_output_size(output_size) if isinstance(output_size, str) else output_size
    options = FramingOptions(crop_option(crop), paste, size, best_frame)
    model_framing = animator_framing(animator)
    resolved = framing_from_crop(options.crop, model_framing, source_size(source))
    if options.crop == "auto" and resolved not in ("none", "center") and not _has_cv2():
        log.warning("OpenCV is not installed, so the %s framing falls back to a centre crop: "
                    "pip install 'mraa[detect]'", resolved.replace("_", " "))  # fmt: skip
        options.crop = resolved = "center"
    if resolved in ("none", "center") and not (paste or size or best_frame or preview):
        if resolved == "center" and _center_cuts_head(animator, source):
            options.crop = "center"
            return options, False
        return None, resolved == "center"
    return options, False


def check_preview_path(path: str | os.PathLike) -> Path:
    """``path`` as a Path when it names an image file mraa can write (else :class:`MRAAError`, before any work)."""
    from mraa.data.video_io import IMAGE_SUFFIXES

    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise MRAAError(
            f"--crop-preview {path} is not an image file name: use one of {', '.join(sorted(IMAGE_SUFFIXES))}"
        )
    return path


def prepare_framing(
    animator: FramingModel, source: Any, driving: Any, crop: bool | str = "none", paste_back: str | bool | None = None,
    output_size: str | tuple[int, int] | None = None, best_frame: bool = False, preview=None,
) -> tuple[FramedRun | None, bool]:  # fmt: skip
    """A :class:`FramedRun` for ``source`` and ``driving`` when :func:`needs_framing`, else (None, centre?).
    ``preview``: a path for a picture of the boxes (written here)."""
    if preview is not None:
        check_preview_path(preview)
    options, center = needs_framing(
        animator, crop, paste_back, output_size, best_frame, preview is not None, source
    )
    if options is None:
        return None, center
    if not isinstance(driving, (str, os.PathLike)):
        raise MRAAError(
            "framing (subject crops, paste-back, output size, best frame) needs a driving video file"
        )
    if isinstance(source, (str, os.PathLike)):
        from mraa.data.video_io import read_image

        source = read_image(source)
    if not (isinstance(source, np.ndarray) and source.ndim == 3 and source.dtype == np.uint8):
        raise MRAAError("framing needs the source image itself: a path or a uint8 (H, W, 3) array")
    framed = FramedRun.for_model(animator, source, driving, options)
    framed.write_preview(preview)
    return framed, False
