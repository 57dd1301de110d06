"""Subject framing for real photos and videos: find the subject, choose crop boxes, paste results back.

Everything here returns boxes (``Box(x0, y0, x1, y1)`` in pixels of the full image), never crops, so
callers decide what to cut. The framings follow how the released models' training data was cropped
(numbers and sources in ``docs/framing.md``):

- ``face`` (vox256): a square around the whole head, the face filling most of it;
- ``upper_body`` (ted384, ted-youtube384): a square from just above the head to mid-torso, the head in the
  upper third;
- ``full_body`` (taichi256): a square around the whole person, 5% margin each side;
- ``none`` (mgif256, the shipped synthetic model): the image as it is (``auto`` centre-crops a photo that is
  not square rather than squashing it).

Every crop keeps the whole head with its hair: a square too large for the image gives up the lower body,
and when even the head does not fit the crop reaches past the border and is padded by reflection
(:func:`~mraa.framing.boxes.place_box`). Detectors are offline (OpenCV's Haar face cascade and HOG people
detector, from the ``detect`` extra; body landmarks from :mod:`mraa.pose` when the ``pose`` extra is
installed) plus a plain-background silhouette finder. Driving videos get one box per shot, from a track
whose centre and size are smoothed over time. :func:`paste_back` composites an animated crop into the
full-resolution source with a mask feathered on the box edges inside the image; pixels where the mask is
zero are the source's, exactly.

Modules: :mod:`~mraa.framing.boxes` (rules, box geometry), :mod:`~mraa.framing.detect` (detectors),
:mod:`~mraa.framing.body` (pose landmarks), :mod:`~mraa.framing.track` (driving tracks),
:mod:`~mraa.framing.composite` (crops, paste-back), :mod:`~mraa.framing.plan` (crop plans),
:mod:`~mraa.framing.run` (a framed animation run: pure parts, no model called),
:mod:`~mraa.framing.reference` (the best reference frame, and :func:`animate_framed`: the one place
where framing meets an animator, through the typed :class:`Animates` protocol with keyword arguments).
Box geometry (:class:`~mraa.boxes.Box`, fit, crop, paste, feather) lives in :mod:`mraa.boxes`; the
OpenCV detectors shared with dataset preparation in :mod:`mraa.detection`.
"""

from mraa.framing.boxes import (
    CROP_CHOICES,
    FACE_RULE,
    FITS,
    FRAMINGS,
    UPPER_RULE,
    FramingRule,
    animator_framing,
    center_box,
    check_framing,
    fit_box,
    framing_from_crop,
    head_from_face,
    outside_fraction,
    place_box,
)
from mraa.framing.composite import (
    FEATHER,
    Compositor,
    crop_resize,
    even_size,
    feather_mask,
    heatmap_masks,
    parse_output_size,
    paste_back,
    region_mask,
)
from mraa.framing.detect import (
    DETECT_SIZE,
    Subject,
    detect_faces,
    detect_foreground,
    detect_people,
    find_subject,
)
from mraa.framing.plan import (
    CropPlan,
    SourceFraming,
    draw_crop_preview,
    frame_driving_file,
    frame_driving_frames,
    frame_source,
    framed_frames,
    plan_crops,
    plan_for_files,
    source_head,
)
from mraa.framing.reference import (
    Animates,
    animate_framed,
    best_frame,
    best_frame_batches,
    normalized_shifts,
)
from mraa.framing.run import (
    PASTE_MODES,
    SYNTHETIC_MODEL_NOTE,
    FramedRun,
    FramingModel,
    FramingOptions,
    crop_option,
    default_mode_for,
    is_shipped_sample,
    needs_framing,
    prepare_framing,
    source_size,
)
from mraa.framing.track import (
    CUT_THRESHOLD,
    DrivingFraming,
    DrivingTrack,
    frame_driving,
    smooth_boxes,
    track_driving,
)

__all__ = [
    "CROP_CHOICES", "CUT_THRESHOLD", "FEATHER", "DETECT_SIZE", "FACE_RULE", "FITS", "FRAMINGS", "PASTE_MODES",
    "SYNTHETIC_MODEL_NOTE", "UPPER_RULE", "Compositor", "CropPlan", "DrivingFraming", "DrivingTrack",
    "Animates", "FramedRun", "FramingModel", "FramingOptions", "FramingRule", "SourceFraming", "Subject", "animator_framing",
    "animate_framed", "best_frame", "best_frame_batches", "center_box", "check_framing", "crop_option", "crop_resize", "default_mode_for", "is_shipped_sample",
    "detect_faces", "detect_foreground", "detect_people", "draw_crop_preview", "even_size", "feather_mask",
    "find_subject", "fit_box", "frame_driving", "frame_driving_file", "frame_driving_frames", "frame_source",
    "framed_frames", "framing_from_crop", "head_from_face", "heatmap_masks", "needs_framing",
    "normalized_shifts", "outside_fraction", "parse_output_size", "paste_back", "place_box", "plan_crops",
    "plan_for_files", "prepare_framing", "region_mask", "smooth_boxes", "source_head", "source_size",
    "track_driving",
]  # fmt: skip
