"""Dataset preparation: raw videos -> square, person-centred training chunks (the TED-talks recipe).

``prepare_dataset(inputs, output, PrepareOptions(...))`` runs the whole pipeline; the pieces are
pure functions usable on their own: :func:`detect_shots`, :func:`track_main_person`,
:func:`split_into_chunks`, :func:`square_crop_box`. Person detectors follow the small
:class:`PersonDetector` protocol and are registered by name (:func:`register_detector`).
OpenCV and PySceneDetect are optional dependencies: ``pip install 'mraa[detect]'``.

Names are imported lazily so that building the ``mraa`` command line stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "PrepareOptions": "options",
    **dict.fromkeys(
        ["CropBox", "PlannedChunk", "Span", "plan_chunks", "smooth_track", "split_into_chunks", "square_crop_box",
         "track_main_person"],
        "chunks",
    ),
    **dict.fromkeys(
        ["DETECTORS", "Box", "HaarUpperBodyDetector", "HogPeopleDetector", "PersonDetector", "PrecomputedBoxes",
         "box_iou", "build_detector", "detector_names", "load_boxes_csv", "load_boxes_json", "register_detector"],
        "detectors",
    ),
    **dict.fromkeys(
        ["PrepareSummary", "VideoReport", "analyse_video", "find_videos", "plan_video", "prepare_dataset",
         "read_manifest", "split_videos", "write_chunks"],
        "pipeline",
    ),
    **dict.fromkeys(["Shot", "ShotDetector", "detect_shots"], "shots"),
}  # fmt: skip

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
