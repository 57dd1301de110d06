"""Offline face keypoints and identity embeddings with dlib (the ``dlib-face`` extractors).

Needs the ``metrics`` extra: ``dlib-bin`` (a prebuilt dlib wheel) and ``face_recognition_models`` (which ships
the model files: the 68-point landmark predictor and the 128-d face recognition ResNet). The face detector is
dlib's built-in HOG + linear SVM detector, so nothing is downloaded. The ``face_recognition`` package itself
is not used: it fails to import with setuptools >= 82, so the model files are located without importing it.

Per frame, the most confident face detection is used. Frames without a face give NaN keypoints / embeddings.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from mraa.errors import MRAAError

log = logging.getLogger(__name__)

EXTRA_HINT = (
    "the dlib-face extractors need the 'metrics' extra: pip install 'mraa[metrics]' "
    "(dlib-bin==20.0.1.post1 face_recognition_models==0.3.0)"
)
NUM_LANDMARKS = 68
EMBEDDING_SIZE = 128


def _import_dlib() -> Any:
    try:
        import dlib
    except ImportError:
        raise MRAAError(f"dlib is not installed; {EXTRA_HINT}") from None
    return dlib


def models_dir() -> Path:
    """The folder of model files inside the installed ``face_recognition_models`` package (not imported)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MRAAError(f"face_recognition_models is not installed; {EXTRA_HINT}")
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    if not folder.is_dir():
        raise MRAAError(f"no model files in {folder}; reinstall face_recognition_models==0.3.0")
    return folder


def _model_file(name: str) -> str:
    path = models_dir() / name
    if not path.is_file():
        raise MRAAError(f"dlib model file missing: {path}; reinstall face_recognition_models==0.3.0")
    return str(path)


class DlibFaceAnalyzer:
    """The most confident face per frame (HOG detector), its 68 landmarks and, on demand, its 128-d embedding.

    Args:
        upsample: times the detector upsamples the image; None picks 1 for frames under 512 pixels on
            their short side (faces down to about 40 pixels) and 0 otherwise (faces from about 80 pixels).
    """

    def __init__(self, upsample: int | None = None) -> None:
        dlib = _import_dlib()
        self._dlib = dlib
        self.upsample = upsample
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(_model_file("shape_predictor_68_face_landmarks.dat"))
        self._recognizer = None
        # results of the last few batches, keyed by content: the keypoint and identity extractors
        # look at the same frames one after the other, and detection is the costly part
        self._cache: OrderedDict[bytes, list[Any]] = OrderedDict()
        self._embedding_cache: OrderedDict[bytes, np.ndarray] = OrderedDict()

    def _upsample_for(self, frame: np.ndarray) -> int:
        if self.upsample is not None:
            return self.upsample
        return 1 if min(frame.shape[:2]) < 512 else 0

    def shapes(self, frames: np.ndarray) -> list[Any]:
        """dlib landmark detections (or None) of the most confident face in each frame of uint8 (N, H, W, 3)."""
        frames = _check_frames(frames)
        key = _key(frames)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        result = []
        for frame in frames:
            frame = np.ascontiguousarray(frame)
            faces, scores, _ = self._detector.run(frame, self._upsample_for(frame), 0.0)
            if len(faces) == 0:
                result.append(None)
                continue
            best = int(np.argmax(scores))  # the most confident face (the largest can be a false positive)
            result.append(self._predictor(frame, faces[best]))
        self._cache[key] = result
        while len(self._cache) > 4:
            self._cache.popitem(last=False)
        return result

    def keypoints(self, frames: np.ndarray) -> np.ndarray:
        """(N, 68, 2) landmark (x, y) pixels, NaN for frames without a face."""
        shapes = self.shapes(frames)
        out = np.full((len(shapes), NUM_LANDMARKS, 2), np.nan)
        for i, shape in enumerate(shapes):
            if shape is not None:
                out[i] = [(shape.part(j).x, shape.part(j).y) for j in range(NUM_LANDMARKS)]
        return out

    def embeddings(self, frames: np.ndarray) -> np.ndarray:
        """(N, 128) face embeddings (same person: distance below about 0.6), NaN rows without a face."""
        if self._recognizer is None:
            self._recognizer = self._dlib.face_recognition_model_v1(
                _model_file("dlib_face_recognition_resnet_model_v1.dat")
            )
        frames = _check_frames(frames)
        key = _key(frames)
        if key in self._embedding_cache:  # e.g. one reference video scored against several generated ones
            self._embedding_cache.move_to_end(key)
            return self._embedding_cache[key].copy()
        shapes = self.shapes(frames)
        out = np.full((len(shapes), EMBEDDING_SIZE), np.nan)
        for i, shape in enumerate(shapes):
            if shape is not None:
                out[i] = np.asarray(
                    self._recognizer.compute_face_descriptor(np.ascontiguousarray(frames[i]), shape)
                )
        self._embedding_cache[key] = out.copy()
        while len(self._embedding_cache) > 4:
            self._embedding_cache.popitem(last=False)
        return out


def _key(frames: np.ndarray) -> bytes:
    """A cache key for a batch of frames: a hash of their content and shape."""
    return hashlib.blake2b(frames.tobytes(), digest_size=16).digest() + repr(frames.shape).encode()


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise MRAAError(f"expected uint8 frames (N, H, W, 3), got {frames.dtype} {frames.shape}")
    return frames


@functools.cache
def shared_analyzer(upsample: int | None = None) -> DlibFaceAnalyzer:
    """One analyzer per setting, shared by the keypoint and identity extractors (models load once)."""
    return DlibFaceAnalyzer(upsample)


class DlibFaceKeypoints:
    """``dlib-face`` keypoint extractor: 68 face landmarks of the most confident face, (N, 68, 2) pixels."""

    name = "dlib-face"
    num_keypoints = NUM_LANDMARKS

    def __init__(self, upsample: int | None = None) -> None:
        self.analyzer = shared_analyzer(upsample)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return self.analyzer.keypoints(frames)


class DlibFaceIdentity:
    """``dlib-face`` identity extractor: dlib's 128-d face recognition embedding, (N, 128)."""

    name = "dlib-face"
    embedding_size = EMBEDDING_SIZE

    def __init__(self, upsample: int | None = None) -> None:
        self.analyzer = shared_analyzer(upsample)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return self.analyzer.embeddings(frames)
