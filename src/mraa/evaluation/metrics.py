"""Reconstruction metrics and the pluggable keypoint / identity extractor interface.

The L1 metric needs nothing but the frames. AKD, MKR and AED compare what an external model sees in the
driving frames and in their reconstructions, so they take *extractors*: callables from a batch of frames to
keypoints or identity embeddings.

Extractor contract (see ``docs/evaluation.md``):

- :class:`KeypointExtractor`: ``extractor(frames)`` with ``frames`` uint8 ``(N, H, W, 3)`` RGB returns a float
  array ``(N, P, 2)`` of ``(x, y)`` pixel coordinates in the given frames; a keypoint that was not detected
  is NaN (a frame without a detection is all NaN). ``P`` is fixed for one extractor.
- :class:`IdentityExtractor`: ``extractor(frames)`` returns ``(N, D)`` embeddings, a NaN row when no identity
  was found in a frame.

Extractors are looked up by name (:func:`load_keypoint_extractor`): a name registered with
:func:`register_keypoint_extractor`, a name published by an installed package under the entry-point group
``mraa.keypoint_extractors`` (``mraa.identity_extractors``), or, only when allowed explicitly
(``allow_custom=True``, ``--allow-custom-extractor``), ``package.module:factory``. In every case the
object found is a *factory*, called with no arguments to build the extractor (so heavy models load once).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
import re
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Protocol, runtime_checkable

import numpy as np

from mraa.errors import MRAAError

log = logging.getLogger(__name__)

KEYPOINT_GROUP = "mraa.keypoint_extractors"
IDENTITY_GROUP = "mraa.identity_extractors"


@runtime_checkable
class KeypointExtractor(Protocol):
    """Frames uint8 (N, H, W, 3) -> keypoints (N, P, 2) as (x, y) pixels, NaN where not detected."""

    def __call__(self, frames: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class IdentityExtractor(Protocol):
    """Frames uint8 (N, H, W, 3) -> identity embeddings (N, D), NaN rows where nothing was found."""

    def __call__(self, frames: np.ndarray) -> np.ndarray: ...


# ----------------------------------------------------------------------------- metric terms
def keypoint_detected(keypoints: np.ndarray) -> np.ndarray:
    """(N, P, 2) -> bool (N, P): both coordinates finite."""
    return np.isfinite(keypoints).all(axis=-1)


def akd_terms(driving: np.ndarray, reconstruction: np.ndarray) -> tuple[float, int]:
    """Sum of Euclidean distances between keypoints detected in both (N, P, 2) arrays, and their count."""
    both = keypoint_detected(driving) & keypoint_detected(reconstruction)  # (N, P)
    distances = np.linalg.norm(driving[both].astype(np.float64) - reconstruction[both], axis=-1)
    return float(distances.sum()), int(both.sum())


def mkr_terms(driving: np.ndarray, reconstruction: np.ndarray) -> tuple[int, int]:
    """Keypoints detected in the driving frames but missing in the reconstruction, and those detected."""
    detected = keypoint_detected(driving)
    missing = detected & ~keypoint_detected(reconstruction)
    return int(missing.sum()), int(detected.sum())


def aed_terms(driving: np.ndarray, reconstruction: np.ndarray) -> tuple[float, int]:
    """Sum of L2 distances between identity embeddings (N, D) found in both, and the number of such frames."""
    both = np.isfinite(driving).all(axis=-1) & np.isfinite(reconstruction).all(axis=-1)  # (N,)
    distances = np.linalg.norm(driving[both].astype(np.float64) - reconstruction[both], axis=-1)
    return float(distances.sum()), int(both.sum())


# The benchmark's forms (pose-evaluation's cmp_kp.py / cmp_with_missing.py / cmp.py, see docs/evaluation.md):
# per frame, then averaged over frames.
def akd_frame_terms(reference: np.ndarray, generated: np.ndarray) -> tuple[float, int]:
    """Benchmark AKD: per frame, the mean absolute coordinate difference (|dx| and |dy| averaged) over the
    keypoints detected in both (N, P, 2) arrays; the sum of these means and the number of such frames."""
    both = keypoint_detected(reference) & keypoint_detected(generated)  # (N, P)
    difference = np.abs(reference.astype(np.float64) - generated)  # (N, P, 2)
    difference = np.where(both[..., None], difference, 0.0)
    counted = both.sum(axis=1)  # (N,)
    means = difference.sum(axis=(1, 2)) / np.maximum(2 * counted, 1)
    return float(means[counted > 0].sum()), int((counted > 0).sum())


def mkr_frame_terms(reference: np.ndarray, generated: np.ndarray) -> tuple[float, int]:
    """Benchmark MKR: per frame, the share of the reference's detected keypoints missing in the generated
    frame; the sum of these shares and the number of frames whose reference has any keypoint."""
    detected = keypoint_detected(reference)  # (N, P)
    missing = (detected & ~keypoint_detected(generated)).sum(axis=1)
    counted = detected.sum(axis=1)
    shares = missing / np.maximum(counted, 1)
    return float(shares[counted > 0].sum()), int((counted > 0).sum())


def aed_squared_terms(reference: np.ndarray, generated: np.ndarray) -> tuple[float, int]:
    """Benchmark AED: sum of *squared* L2 distances between embeddings (N, D) found in both, and their
    number of frames (the benchmark takes no square root)."""
    both = np.isfinite(reference).all(axis=-1) & np.isfinite(generated).all(axis=-1)  # (N,)
    squared = ((reference[both].astype(np.float64) - generated[both]) ** 2).sum(axis=-1)
    return float(squared.sum()), int(both.sum())


def _ratio(total: float, count: int) -> float | None:
    return total / count if count else None


def average_keypoint_distance(driving: np.ndarray, reconstruction: np.ndarray) -> float | None:
    """AKD: mean distance (pixels) over keypoints detected in both; None when there are none."""
    return _ratio(*akd_terms(driving, reconstruction))


def missing_keypoint_rate(driving: np.ndarray, reconstruction: np.ndarray) -> float | None:
    """MKR: share of the driving frames' detected keypoints that the reconstruction misses."""
    return _ratio(*mkr_terms(driving, reconstruction))


def average_euclidean_distance(driving: np.ndarray, reconstruction: np.ndarray) -> float | None:
    """AED: mean L2 distance between identity embeddings over frames where both have one."""
    return _ratio(*aed_terms(driving, reconstruction))


def check_keypoints(keypoints: object, num_frames: int, name: str) -> np.ndarray:
    """Validate an extractor's output as float (N, P, 2)."""
    array = np.asarray(keypoints, dtype=np.float64)
    if array.ndim != 3 or array.shape[0] != num_frames or array.shape[2] != 2:
        raise MRAAError(
            f"keypoint extractor {name} returned shape {array.shape} for {num_frames} frames; "
            "expected (N, P, 2)"
        )
    return array


def check_embeddings(embeddings: object, num_frames: int, name: str) -> np.ndarray:
    """Validate an extractor's output as float (N, D)."""
    array = np.asarray(embeddings, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != num_frames:
        raise MRAAError(
            f"identity extractor {name} returned shape {array.shape} for {num_frames} frames; expected (N, D)"
        )
    return array


# ----------------------------------------------------------------------------- registry
Factory = Callable[[], Callable[[np.ndarray], np.ndarray]]
_KEYPOINT_FACTORIES: dict[str, Factory] = {}
_IDENTITY_FACTORIES: dict[str, Factory] = {}


def register_keypoint_extractor(name: str, factory: Factory) -> None:
    """Make ``factory`` (no arguments -> :class:`KeypointExtractor`) available as ``name``."""
    _KEYPOINT_FACTORIES[name] = factory


def register_identity_extractor(name: str, factory: Factory) -> None:
    """Make ``factory`` (no arguments -> :class:`IdentityExtractor`) available as ``name``."""
    _IDENTITY_FACTORIES[name] = factory


def _builtin_factories() -> None:
    # the submodules by name, not through the package (whose __init__ imports this module)
    from mraa.evaluation.body import BodyKeypoints
    from mraa.evaluation.dlib_face import DlibFaceIdentity, DlibFaceKeypoints

    for name in ("dlib-face", "face"):  # "face": the short name `mraa evaluate --keypoints face` uses
        _KEYPOINT_FACTORIES.setdefault(name, DlibFaceKeypoints)
        _IDENTITY_FACTORIES.setdefault(name, DlibFaceIdentity)
    _KEYPOINT_FACTORIES.setdefault("body", BodyKeypoints)


def available_extractors(kind: str) -> list[str]:
    """Names usable for ``kind`` (``keypoints`` or ``identity``): registered and entry-point ones."""
    _builtin_factories()
    registry, group = _registry(kind)
    names = set(registry) | {ep.name for ep in entry_points(group=group)}
    return sorted(names)


def _registry(kind: str) -> tuple[dict[str, Factory], str]:
    if kind == "keypoints":
        return _KEYPOINT_FACTORIES, KEYPOINT_GROUP
    if kind == "identity":
        return _IDENTITY_FACTORIES, IDENTITY_GROUP
    raise ValueError(f"kind must be 'keypoints' or 'identity', got {kind!r}")


def _resolve_factory(spec: str, kind: str, allow_custom: bool = False) -> Factory:
    _builtin_factories()
    registry, group = _registry(kind)
    if spec in registry:
        return registry[spec]
    for ep in entry_points(group=group):
        if ep.name == spec:
            return ep.load()
    names = ", ".join(available_extractors(kind)) or "none"
    if spec == "synthetic" and kind == "keypoints":  # exact keypoints need the dataset: mraa evaluate's
        raise MRAAError(
            "keypoints 'synthetic' (exact, from an mraa synth dataset) work with mraa evaluate: write the "
            "reconstructions with --out DIR --format png --layout prediction, then mraa evaluate --generated DIR --reference "
            "DATASET/test --keypoints synthetic"
        )
    if ":" not in spec:
        raise MRAAError(f"unknown {kind} extractor {spec!r} (available: {names}; or package.module:factory)")
    if not allow_custom:  # importing a module runs its code: only on request
        raise MRAAError(
            f"{kind} extractor {spec!r} is a module path, not a registered name (available: {names}); "
            "loading arbitrary code must be allowed explicitly"
        )
    module_name, _, attr = spec.partition(":")
    if not re.fullmatch(r"[A-Za-z_][\w.]*", module_name) or not re.fullmatch(r"[A-Za-z_][\w.]*", attr):
        raise MRAAError(f"{kind} extractor {spec!r}: expected package.module:factory")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise MRAAError(f"{kind} extractor {spec!r}: cannot import {module_name} ({exc})") from exc
    factory = module
    for part in attr.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise MRAAError(f"{kind} extractor {spec!r}: {module_name} has no attribute {attr!r}")
    return factory


def _accepts(function: object, *args: object) -> bool:
    """True when ``function`` can be called with ``args`` (or its signature cannot be inspected)."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # builtins without a signature
        return True
    try:
        signature.bind(*args)
    except TypeError:
        return False
    return True


def _load(spec: str, kind: str, allow_custom: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    factory = _resolve_factory(spec, kind, allow_custom)
    if not callable(factory):
        raise MRAAError(f"{kind} extractor {spec!r} is not callable")
    if not _accepts(factory):
        raise MRAAError(f"{kind} extractor factory {spec!r} must be callable with no arguments")
    extractor = factory()
    if not callable(extractor):
        raise MRAAError(
            f"{kind} extractor factory {spec!r} returned a non-callable {type(extractor).__name__}"
        )
    if not _accepts(extractor, np.zeros((1, 8, 8, 3), np.uint8)):
        raise MRAAError(f"{kind} extractor {spec!r} must be callable with one argument (a batch of frames)")
    if not getattr(extractor, "name", None):  # reports name the extractor as it was asked for
        with contextlib.suppress(AttributeError, TypeError):
            extractor.name = spec
    log.debug("%s extractor %s: %r", kind, spec, extractor)
    return extractor


def load_keypoint_extractor(spec: str, allow_custom: bool = False) -> KeypointExtractor:
    """Build the keypoint extractor named ``spec``: a registered name, an entry point, or (only with
    ``allow_custom``, since importing runs the module's code) ``package.module:factory``."""
    return _load(spec, "keypoints", allow_custom)


def load_identity_extractor(spec: str, allow_custom: bool = False) -> IdentityExtractor:
    """Build the identity extractor named ``spec`` (as :func:`load_keypoint_extractor`)."""
    return _load(spec, "identity", allow_custom)
