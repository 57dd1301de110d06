"""What the web app does, without the web: animating uploads to a video file (with the crop preview and
paste-back), on top of :mod:`mraa.app.uploads` (checking and reading uploads) and :mod:`mraa.app.parts`
(segmentation and part swap). The Gradio page in :mod:`mraa.app.ui` only calls this, so everything here is
testable without a browser or Gradio installed.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mraa.animate import MODES, Animator, background_schedule
from mraa.app.parts import PartsMixin, PartsView, ProgressCallback
from mraa.app.results import AnimationResult
from mraa.app.uploads import CROP_OPTIONS, DrivingClip, Limits, UploadReader
from mraa.app.workdir import APP_FOLDER, new_run_dir, open_work_dir, remove_work_dir
from mraa.data.video_io import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from mraa.errors import MRAAError
from mraa.safety import check_outputs

log = logging.getLogger(__name__)

BACKGROUND_CHOICES = ("still", "left", "right", "rotate", "driving")
KEEP_RESULTS = 20  # result folders kept in the work folder; older ones are removed
SHIPPED_MODEL_NOTE = (
    "the shipped model was trained only on synthetic figures, so on a photo it shows the method rather than "
    "a good result; for real faces start the app with an official checkpoint (mraa app --checkpoint "
    "vox256.pth --config configs/vox256.yaml, see the README)"
)

__all__ = [
    "CROP_OPTIONS",
    "AnimationResult",
    "AnimationService",
    "DrivingClip",
    "Limits",
    "PartsView",
    "Samples",
]


@dataclass(frozen=True)
class Samples:
    """Sample inputs offered by the page's "use the samples" button (None when not shipped)."""

    source: Path | None = None
    driving: Path | None = None

    @property
    def available(self) -> bool:
        return self.source is not None and self.driving is not None


def find_samples(folder: str | os.PathLike | None) -> Samples:
    """Pick a sample source image and driving video in ``folder``: files whose names contain ``source``
    and ``driving`` first, else the first image and the first video (sorted by name)."""
    if folder is None or not Path(folder).is_dir():
        return Samples()
    files = sorted(p for p in Path(folder).iterdir() if p.is_file())
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    videos = [p for p in files if p.suffix.lower() in VIDEO_SUFFIXES]

    def pick(candidates: list[Path], word: str) -> Path | None:
        named = [p for p in candidates if word in p.stem.lower()]
        return (named or candidates or [None])[0]

    return Samples(pick(images, "source"), pick(videos, "driving"))


class AnimationService(UploadReader, PartsMixin):
    """Animation for the web app: one loaded model, upload checks and limits, result files.

    Args:
        animator: the model to animate with.
        work_dir: results go to its ``.mraa-app`` subfolder, made and marked by the app (the only place it
            prunes and serves; see :mod:`mraa.app.workdir`); a fresh temporary folder when None.
        limits: upload size and driving length limits.
        samples: the sample inputs the page offers.
        model_name: how the page names the model.
        shipped_model: the model is the synthetic-figure one shipped with mraa (results say so).
    """

    def __init__(
        self,
        animator: Animator,
        work_dir: str | os.PathLike | None = None,
        limits: Limits | None = None,
        samples: Samples | None = None,
        model_name: str = "model",
        shipped_model: bool = False,
    ) -> None:
        from mraa.framing import animator_framing

        super().__init__(animator.image_size, limits or Limits(), animator_framing(animator))
        self.animator = animator
        self.samples = samples or Samples()
        self.model_name = model_name
        self.shipped_model = shipped_model
        self._own_work_dir = work_dir is None
        if work_dir is not None:  # never over the sample files
            samples = {"sample": self.samples.source, "sample driving": self.samples.driving}
            outputs = {"--work-dir": Path(work_dir) / APP_FOLDER}
            check_outputs(inputs=samples, outputs=outputs, nested_ok=True, clean_temps=False)
        self.work_dir = open_work_dir(work_dir)  # the app's marked folder (DIR/.mraa-app): pruned and served
        self._lock = threading.Lock()  # one animation at a time: the model is shared

    # --------------------------------------------------------------- description
    @property
    def num_regions(self) -> int:
        return int(self.animator.models.region_predictor.num_regions)

    def describe(self) -> str:
        """One line about the loaded model (Markdown)."""
        h, w = self.image_size
        avd = "trained" if self.animator.has_trained_avd else "not trained (mode avd will look poor)"
        framing = self.model_framing.replace("_", " ")
        return (
            f"Model: **{self.model_name}**, {w}x{h} pixels, {self.num_regions} regions, AVD network {avd}, "
            f"framing {framing}. Limits: {self.limits.max_upload_mb:g} MB per upload, "
            f"{self.limits.max_frames} driving frames."
        )

    def check_options(self, mode: str | None, background: str | None) -> tuple[str, str]:
        """Validated (mode, background); the default mode when none is chosen."""
        mode = mode or self.animator.default_mode()
        if mode not in MODES:
            raise MRAAError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
        background = (background or "still").strip() or "still"
        if Path(background).suffix in (".npy", ".txt", ".csv"):
            raise MRAAError("background schedules from files are not available in the app; use the CLI")
        background_schedule(background)
        return mode, background

    # --------------------------------------------------------------- crop preview
    def crop_preview(
        self, source_path: str | os.PathLike | None, driving_path: str | os.PathLike | None, crop: str | bool
    ) -> tuple[np.ndarray, str]:
        """A picture of the crop boxes on the source and a few driving frames, and a line about them."""
        from mraa.framing import draw_crop_preview, plan_for_files

        image = self.read_source_image(source_path)
        path = self.check_driving(driving_path)
        h, w = self.image_size
        framing = self.framing(crop)
        plan = plan_for_files(image, path, framing, w / h, self.limits.max_frames)
        line = f"Crop: {framing.replace('_', ' ')} (source box from {plan.source.how}; "
        line += f"{len(plan.driving.shots)} driving shot{'s' if len(plan.driving.shots) > 1 else ''})."
        return draw_crop_preview(plan, image), " ".join([line, *(f"Note: {m}." for m in plan.messages)])

    # --------------------------------------------------------------- animation
    def _framed_inputs(self, source_path, driving_path, crop):
        """(full source image, source box, source tensor, driving clip, notes) for a crop option."""
        from mraa.framing import crop_resize, frame_source
        from mraa.image import to_batch

        image = self.read_source_image(source_path)
        self.check_driving(driving_path)
        plan = self.plan(image, driving_path, crop)
        h, w = self.image_size
        source_framing = plan.source if plan is not None else frame_source(image, self.framing(crop), w / h)
        source = to_batch(crop_resize(image, source_framing.box, self.image_size))
        clip = self.load_driving(driving_path, crop, plan.driving if plan is not None else None)
        notes = list(plan.messages if plan is not None else source_framing.messages)
        return image, source_framing.box, source, clip, notes

    def animate(
        self,
        source_path: str | os.PathLike | None,
        driving_path: str | os.PathLike | None,
        mode: str | None = None,
        background: str | None = "still",
        crop: str | bool = "none",
        progress: ProgressCallback | None = None,
        paste_back: bool = False,
        output_size: str | None = None,
    ) -> AnimationResult:
        """Animate an uploaded source with an uploaded driving video and write an mp4 (H.264).

        ``crop`` is one of :data:`CROP_OPTIONS`; ``paste_back`` composites the animated crop into the full
        source (the video then has the source's size, or ``output_size`` "WxH"). The output keeps the
        driving video's frame rate and audio. Inputs are checked first, so a bad upload fails early.
        """
        from mraa.framing import Compositor, default_mode_for, parse_output_size
        from mraa.inference.pipeline import AnimateOptions, DecodedDriving, animate_file

        if not mode or mode == "auto":  # what `mraa animate` picks for this source (mraa.framing)
            mode = default_mode_for(self.animator, source_path)
        mode, background = self.check_options(mode, background)
        size = self._check_output_size(parse_output_size(output_size))
        image, box, source, clip, notes = self._framed_inputs(source_path, driving_path, crop)
        if paste_back:
            image, box = self._fit_source(image, box, notes)
        if clip.truncated:
            notes.append(f"the driving video was cut to its first {self.limits.max_frames} frames")
        if mode == "avd" and not self.animator.has_trained_avd:
            notes.append("this model has no trained AVD network, so mode avd gives poor results")
        if self.shipped_model and not self._is_sample(source_path):
            notes.append(SHIPPED_MODEL_NOTE)
        compose = Compositor(image, box, paste=paste_back, output_size=size) if paste_back or size else None
        output = self._new_result_dir() / f"mraa_{Path(str(source_path)).stem[:40]}_{mode}.mp4"
        audio_from = Path(driving_path) if clip.has_audio else None
        driving = DecodedDriving(clip.frames, clip.fps, audio_from)
        options = AnimateOptions(
            mode=mode, background=background, progress=progress or False, composite=compose
        )
        with self._lock:  # the same file pipeline as `mraa animate`
            result = animate_file(self.animator, source, driving, output, options)
        log.info("animated %d frames (%s) -> %s", result.frames, mode, output)
        return AnimationResult(output, result.frames, clip.fps, mode, notes)

    def _check_output_size(self, size: tuple[int, int] | None) -> tuple[int, int] | None:
        """A requested (W, H) within :attr:`Limits.max_output_side`, else :class:`MRAAError`."""
        cap = self.limits.max_output_side
        if size is not None and max(size) > cap:
            raise MRAAError(
                f"output size {size[0]}x{size[1]} is larger than the app writes ({cap} pixels on the longer "
                "side): choose a smaller size, or use `mraa animate --paste-back` for larger videos"
            )
        return size

    def _fit_source(self, image: np.ndarray, box, notes: list[str]) -> tuple[np.ndarray, object]:
        """The source (and its crop box) to paste into: scaled down to the app's output limit when larger,
        so compositing a huge photo never holds the model for minutes."""
        from mraa.boxes import Box
        from mraa.image import resize

        cap = self.limits.max_output_side
        height, width = image.shape[:2]
        if max(height, width) <= cap:
            return image, box
        scale = cap / max(height, width)
        size = (max(2, round(width * scale)), max(2, round(height * scale)))
        image = resize(image, size[::-1])
        notes.append(
            f"the {width}x{height} source was scaled down to {size[0]}x{size[1]} for paste-back (the app writes "
            f"at most {cap} pixels on the longer side; `mraa animate --paste-back` has no limit)"
        )
        return image, Box(*(v * scale for v in box))

    def _is_sample(self, path: str | os.PathLike | None) -> bool:
        """Whether an upload is the sample source (the page hands over a copy, so compare contents)."""
        import filecmp

        sample = self.samples.source
        return sample is not None and path is not None and filecmp.cmp(path, sample, shallow=False)

    # --------------------------------------------------------------- result files
    def cleanup(self) -> None:
        """Remove the result videos when they live in a temporary folder this service made."""
        if self._own_work_dir:
            remove_work_dir(self.work_dir)

    def _new_result_dir(self) -> Path:
        return new_run_dir(self.work_dir, KEEP_RESULTS)  # prunes only the app's own marked run folders
