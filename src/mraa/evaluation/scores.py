"""Running sums of the frame-comparison metrics, shared by ``mraa evaluate`` and ``mraa reconstruct``.

Every metric is a ratio ``sum / count`` whose terms add up over batches, videos and datasets, so a
dataset's value pools all its frames, as the benchmark scripts do (they average over one flat list of
frames). Keys and their counts:

==================  ==============================================  ===========================================
key                 per-item term                                   count
==================  ==============================================  ===========================================
``l1``              mean absolute pixel difference in [0, 1]        frames
``akd``             mean of ``|dx|, |dy|`` over common keypoints    frames with a keypoint in both
``akd_euclidean``   Euclidean distance of a common keypoint         keypoints detected in both
``mkr``             share of reference keypoints missing            frames with a reference keypoint
``aed``             squared L2 distance of identity embeddings      frames with an identity in both
``aed_euclidean``   L2 distance of identity embeddings              frames with an identity in both
==================  ==============================================  ===========================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mraa.errors import MRAAError
from mraa.evaluation.metrics import (
    IdentityExtractor,
    KeypointExtractor,
    aed_squared_terms,
    aed_terms,
    akd_frame_terms,
    akd_terms,
    check_embeddings,
    check_keypoints,
    mkr_frame_terms,
)

KEYPOINT_METRICS = ("akd", "akd_euclidean", "mkr")
IDENTITY_METRICS = ("aed", "aed_euclidean")
ALL_METRICS = ("l1", *KEYPOINT_METRICS, *IDENTITY_METRICS)


@dataclass
class MetricTotals:
    """Sums and counts per metric key (see the module docstring)."""

    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, key: str, total: float, count: int) -> None:
        self.sums[key] = self.sums.get(key, 0.0) + float(total)
        self.counts[key] = self.counts.get(key, 0) + int(count)

    def merge(self, other: MetricTotals) -> None:
        for key in other.sums:
            self.add(key, other.sums[key], other.counts[key])

    def value(self, key: str) -> float | None:
        """The metric's value; None when it was not computed or had nothing to compare."""
        count = self.counts.get(key, 0)
        return self.sums[key] / count if count else None

    def values(self, keys: tuple[str, ...] | list[str]) -> dict[str, float | None]:
        return {key: self.value(key) for key in keys}

    def add_l1(self, reference: np.ndarray, generated: np.ndarray) -> None:
        """Per-frame mean absolute difference of uint8 frames (N, H, W, 3), in [0, 1] units."""
        difference = np.abs(reference.astype(np.int16) - generated.astype(np.int16))
        self.add("l1", float(difference.mean(axis=(1, 2, 3)).sum()) / 255.0, len(reference))

    def add_keypoints(self, reference: np.ndarray, generated: np.ndarray) -> None:
        """Keypoints (N, P, 2) of reference and generated frames, NaN where not detected."""
        if reference.shape != generated.shape:
            raise MRAAError(
                f"keypoints of different shapes {reference.shape} and {generated.shape}; one extractor "
                "must return the same number of keypoints for every frame"
            )
        self.add("akd", *akd_frame_terms(reference, generated))
        self.add("akd_euclidean", *akd_terms(reference, generated))
        self.add("mkr", *mkr_frame_terms(reference, generated))

    def add_identity(self, reference: np.ndarray, generated: np.ndarray) -> None:
        """Identity embeddings (N, D), NaN rows where none was found."""
        self.add("aed", *aed_squared_terms(reference, generated))
        self.add("aed_euclidean", *aed_terms(reference, generated))


def extractor_name(extractor: object) -> str:
    return str(getattr(extractor, "name", None) or type(extractor).__name__)


def score_batch(
    totals: MetricTotals,
    reference: np.ndarray,
    generated: np.ndarray,
    keypoint_extractor: KeypointExtractor | None = None,
    identity_extractor: IdentityExtractor | None = None,
) -> None:
    """Add the keypoint and identity metrics of uint8 frames (B, H, W, 3) to ``totals`` (L1 is separate:
    reconstruction measures it on unquantised frames)."""
    count = len(reference)
    if keypoint_extractor is not None:
        name = extractor_name(keypoint_extractor)
        totals.add_keypoints(
            check_keypoints(keypoint_extractor(reference), count, name),
            check_keypoints(keypoint_extractor(generated), count, name),
        )
    if identity_extractor is not None:
        name = extractor_name(identity_extractor)
        totals.add_identity(
            check_embeddings(identity_extractor(reference), count, name),
            check_embeddings(identity_extractor(generated), count, name),
        )
