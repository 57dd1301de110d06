"""Dataset preparation: raw videos -> square, person-centred training chunks (the TED-talks recipe).

``prepare_dataset(inputs, output, PrepareOptions(...))`` runs the whole pipeline; the pieces are
pure functions usable on their own: :func:`detect_shots`, :func:`track_main_person`,
:func:`split_into_chunks`, :func:`square_crop_box`. Person detectors follow the small
:class:`PersonDetector` protocol and are registered by name (:func:`register_detector`).
OpenCV and PySceneDetect are optional dependencies: ``pip install 'mraa[detect]'``.
"""

from mraa.data.prepare.chunks import (
    CropBox,
    PlannedChunk,
    Span,
    plan_chunks,
    smooth_track,
    split_into_chunks,
    square_crop_box,
    track_main_person,
)
from mraa.data.prepare.detectors import (
    DETECTORS,
    Box,
    HaarUpperBodyDetector,
    HogPeopleDetector,
    PersonDetector,
    PrecomputedBoxes,
    box_iou,
    build_detector,
    detector_names,
    load_boxes_csv,
    load_boxes_json,
    register_detector,
)
from mraa.data.prepare.pipeline import (
    PrepareOptions,
    PrepareSummary,
    VideoReport,
    analyse_video,
    find_videos,
    plan_video,
    prepare_dataset,
    read_manifest,
    split_videos,
    write_chunks,
)
from mraa.data.prepare.shots import Shot, ShotDetector, detect_shots

__all__ = [
    "DETECTORS",
    "Box",
    "CropBox",
    "HaarUpperBodyDetector",
    "HogPeopleDetector",
    "PersonDetector",
    "PlannedChunk",
    "PrecomputedBoxes",
    "PrepareOptions",
    "PrepareSummary",
    "Shot",
    "ShotDetector",
    "Span",
    "VideoReport",
    "analyse_video",
    "box_iou",
    "build_detector",
    "detect_shots",
    "detector_names",
    "find_videos",
    "load_boxes_csv",
    "load_boxes_json",
    "plan_chunks",
    "plan_video",
    "prepare_dataset",
    "read_manifest",
    "register_detector",
    "smooth_track",
    "split_into_chunks",
    "split_videos",
    "square_crop_box",
    "track_main_person",
    "write_chunks",
]
