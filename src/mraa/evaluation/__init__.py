"""Evaluation: video reconstruction (L1) and the keypoint / identity metrics AKD, MKR and AED.

See ``docs/evaluation.md`` for the command, the metric definitions and how to plug in extractors.
"""

from mraa.evaluation.metrics import (
    IdentityExtractor,
    KeypointExtractor,
    available_extractors,
    average_euclidean_distance,
    average_keypoint_distance,
    load_identity_extractor,
    load_keypoint_extractor,
    missing_keypoint_rate,
    register_identity_extractor,
    register_keypoint_extractor,
)
from mraa.evaluation.reconstruction import (
    ReconstructionReport,
    VideoResult,
    evaluate_video,
    iter_reconstruction,
    reconstruct_dataset,
    reconstruct_video,
)

__all__ = [
    "IdentityExtractor",
    "KeypointExtractor",
    "ReconstructionReport",
    "VideoResult",
    "available_extractors",
    "average_euclidean_distance",
    "average_keypoint_distance",
    "evaluate_video",
    "iter_reconstruction",
    "load_identity_extractor",
    "load_keypoint_extractor",
    "missing_keypoint_rate",
    "reconstruct_dataset",
    "reconstruct_video",
    "register_identity_extractor",
    "register_keypoint_extractor",
]
