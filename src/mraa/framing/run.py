"""A framed animation run: options, the source and driving crops, output frames, and the best reference
frame."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mraa.errors import MRAAError
from mraa.framing.boxes import CROP_CHOICES, animator_framing, center_box, framing_from_crop
from mraa.framing.composite import Compositor, crop_resize, heatmap_masks, parse_output_size
from mraa.framing.detect import _has_cv2
from mraa.framing.plan import draw_crop_preview, frame_source, framed_frames, plan_for_files

log = logging.getLogger(__name__)


def normalized_shifts(shift: np.ndarray) -> np.ndarray:
    """Region centres (..., K, 2) centred on their mean and scaled by sqrt(area of their convex hull),
    the normalisation FOMM's --find_best_frame applies to face landmarks."""
    import torch

    from mraa.geometry import convex_hull_area

    centred = shift - shift.mean(axis=-2, keepdims=True)
    flat = centred.reshape(-1, *shift.shape[-2:])
    areas = np.array([convex_hull_area(torch.from_numpy(np.asarray(s, np.float64))) for s in flat])
    scale = np.sqrt(np.clip(areas, 1e-12, None)).reshape(*shift.shape[:-2], 1, 1)
    return centred / scale


def best_frame(source_shift: np.ndarray, driving_shifts: np.ndarray) -> int:
    """Index of the driving frame whose normalised region centres (T, K, 2) are closest to the source's
    (K, 2) in squared distance: the relative-mode reference that needs the least motion transfer."""
    source = normalized_shifts(np.asarray(source_shift, np.float64))
    driving = normalized_shifts(np.asarray(driving_shifts, np.float64))
    distances = ((driving - source[None]) ** 2).sum(axis=(1, 2))
    return int(np.argmin(distances))


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


class FramedRun:
    """Source and driving framed for one animation, and the output frames made from the animated crops.

    Args:
        animator: the model (its size and framing, and its region predictor for ``regions`` paste-back).
        source: the full-resolution source image (H, W, 3) uint8.
        driving: the driving video path.
        options: see :class:`FramingOptions`.
        max_frames: only plan for the first frames (None: all).
    """

    def __init__(
        self, animator, source: np.ndarray, driving, options: FramingOptions, max_frames=None
    ) -> None:
        model_framing = animator_framing(animator)
        self.animator = animator
        self.options = options
        self.size = animator.image_size
        self.crop = framing_from_crop(options.crop, model_framing, (source.shape[1], source.shape[0]))
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
        self._source_heatmap = None
        for message in self.plan.messages:
            log.warning("%s", message)
        log.info("crop %s: source box %s, driving shots %s", self.crop, tuple(self.plan.source.box),
                 len(self.plan.driving.shots))  # fmt: skip

    @property
    def messages(self) -> list[str]:
        return self.plan.messages

    def write_preview(self, path: str | os.PathLike | None) -> None:
        """Draw the boxes on the source and a few driving frames into ``path`` (nothing when None)."""
        if path is not None:
            from mraa.data.video_io import write_image

            write_image(path, draw_crop_preview(self.plan, self.source))

    def driving_frames(self) -> Iterator[np.ndarray]:
        """The driving frames cut to their shot's box, at the model's size (uint8)."""
        from mraa.data.video_io import iter_video

        return framed_frames(iter_video(self.driving), self.plan.driving, self.size)

    def output_frames(self, predictions) -> np.ndarray:
        """Animated crops (B, 3, h, w) in [0, 1] -> output frames (B, H, W, 3) uint8."""
        from mraa.inputs import uint8_to_batch
        from mraa.visualize import tensor_to_uint8

        images = tensor_to_uint8(predictions.float().cpu())
        if self.compositor is None:
            return images
        masks = [None] * len(images)
        if self.options.paste_back == "regions":
            if self._source_heatmap is None:
                self._source_heatmap = self.animator.region_params(uint8_to_batch(self.source_crop))[
                    "heatmap"
                ]
            masks = heatmap_masks(self.animator, self._source_heatmap, predictions)
        return np.stack([self.compositor(image, mask) for image, mask in zip(images, masks)])

    def batches(self, state, frames, mode, background=None, progress=False, total=None, smooth=None):
        """Animate the framed driving ``frames`` (batches at the model's size) and yield output batches."""
        import torch

        if self.options.best_frame:
            if mode != "relative":
                log.warning("--best-frame changes only mode relative (the reference frame), not %s", mode)
            driving = torch.cat([batch.reshape(-1, *batch.shape[-3:]) for batch in frames])
            animated = best_frame_batches(self.animator, state, driving, mode, background, smooth, progress)
        else:
            animated = self.animator.animate_iter(state, frames, mode, background, progress, total, smooth)
        return self.wrap(animated)

    def wrap(self, batches):
        """Animated batches with ``prediction`` replaced by the output frames (float, any size)."""
        import dataclasses

        from mraa.visualize import uint8_to_tensor

        for batch in batches:
            if self.compositor is None:
                yield batch
            else:
                yield dataclasses.replace(
                    batch, prediction=uint8_to_tensor(self.output_frames(batch.prediction))
                )


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
        except (OSError, UnidentifiedImageError):
            return None
    return None


def is_shipped_sample(source) -> bool:
    """Whether ``source`` is the sample image shipped with the default model (a path to it)."""
    from pathlib import Path

    from mraa.animate import DEFAULT_MODEL_DIR

    if not isinstance(source, (str, os.PathLike)):
        return False
    return Path(source).resolve() == (DEFAULT_MODEL_DIR / "source.png").resolve()


def default_mode_for(animator, source=None) -> str:
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


def _center_cuts_head(animator, source) -> bool:
    """Whether the plain centred crop of a source path/array would cut its head (a face is found and the
    head-keeping centre crop differs), so the run needs :class:`FramedRun` for ``center``."""
    if not _has_cv2() or not isinstance(source, (str, os.PathLike, np.ndarray)):
        return False
    from mraa.data.video_io import read_image

    image = source if isinstance(source, np.ndarray) else read_image(source)
    h, w = animator.image_size
    return frame_source(image, "center", w / h).box != center_box(image.shape[1], image.shape[0], w / h)


def needs_framing(
    animator, crop: bool | str = "none", paste_back: str | bool | None = None,
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
    animator, source, driving, crop: bool | str = "none", paste_back: str | bool | None = None,
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
    framed = FramedRun(animator, source, driving, options)
    framed.write_preview(preview)
    return framed, False


def _cat_flip(parts: list, skip_first: bool = True):
    """Concatenate tensors (or dicts of tensors) of several batches along frames and reverse them."""
    import torch

    if isinstance(parts[0], dict):
        return {k: _cat_flip([p[k] for p in parts], skip_first) for k in parts[0]}
    if parts[0] is None:
        return None
    joined = torch.cat(parts).flip(0)
    return joined[:-1] if skip_first else joined  # the reference frame (first animated) comes last


def best_frame_batches(animator, state, driving, mode, background=None, smooth=None, progress=False):
    """Animated batches for ``driving`` (T, C, H, W) in frame order, with the best driving frame as the
    relative-mode reference (:func:`best_frame`): frames after it animated forwards from it, frames before
    it backwards from it. Background schedules count frames from the reference."""
    import dataclasses

    import torch

    step = animator.batch_size
    shifts = torch.cat([animator.region_params(driving[i : i + step])["shift"].float().cpu()
                        for i in range(0, len(driving), step)])  # fmt: skip
    best = best_frame(state.region_params["shift"][0].float().cpu().numpy(), shifts.numpy())
    log.info("best reference frame: driving frame %d", best)
    if best > 0:
        backward = list(
            animator.animate_iter(state, driving[: best + 1].flip(0), mode, background, smooth=smooth)
        )
        first = backward[0]
        yield dataclasses.replace(
            first,
            prediction=_cat_flip([b.prediction for b in backward]),
            driving_region_params=_cat_flip([b.driving_region_params for b in backward]),
            region_params=_cat_flip([b.region_params for b in backward]),
            frame_indices=torch.arange(best),
            driving=_cat_flip([b.driving for b in backward]) if first.driving is not None else None,
        )
    for batch in animator.animate_iter(
        state, driving[best:], mode, background, progress, len(driving) - best, smooth
    ):
        yield dataclasses.replace(batch, frame_indices=batch.frame_indices + best)
