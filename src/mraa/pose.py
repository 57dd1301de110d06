"""Offline body landmarks: MediaPipe's BlazePose models (33 landmarks) run with the LiteRT interpreter.

The two model files ship in ``mraa/assets/pose`` (Apache-2.0, taken unchanged from the ``mediapipe==0.10.21``
wheel; provenance in that folder's README.md). The runtime is ``ai-edge-litert`` (the ``pose`` extra, also in
``metrics``), which installs beside numpy 2 and protobuf 7, unlike ``mediapipe`` 0.10.21 itself.

Two stages, as in MediaPipe's single-image mode:

1. ``pose_detection.tflite`` (input 224x224 letterboxed, values in [-1, 1]): an SSD over 2254 fixed anchors
   giving, per candidate, a box and 4 alignment points (hip centre, a point on the body's circle, shoulder
   centre, a point on the upper body's circle). The best candidate (merged with those overlapping it) is kept.
2. ``pose_landmark_full.tflite`` (input 256x256, values in [0, 1]) on a square crop centred on the hip
   centre, of side 2.5 x the hip-to-circle distance, rotated so that the hips-to-shoulders axis points up:
   39 rows of (x, y, z, visibility logit, presence logit) in crop pixels (the first 33 are the landmarks)
   and a person-presence score.

Coordinates use the continuous convention: pixel ``(i, j)`` covers ``[i, i + 1) x [j, j + 1)``, so a
landmark at the centre of the top-left pixel is ``(0.5, 0.5)``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mraa.errors import MRAAError

log = logging.getLogger(__name__)

ASSETS = Path(__file__).parent / "assets" / "pose"
DETECTOR_FILE = "pose_detection.tflite"
LANDMARK_FILE = "pose_landmark_full.tflite"
EXTRA_HINT = (
    "body landmarks need the 'pose' extra (also part of 'metrics'): pip install 'mraa[pose]' "
    "(ai-edge-litert==2.3.0)"
)
NUM_LANDMARKS = 33
# BlazePose's landmark order (index -> name)
LANDMARK_NAMES = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle", "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)  # fmt: skip

DETECTOR_SIZE = 224
LANDMARK_SIZE = 256
DETECTOR_STRIDES = (8, 16, 32, 32, 32)  # SSD layers; layers of one stride share a feature map, 2 anchors each
MIN_DETECTION_SCORE = 0.5
MIN_PRESENCE_SCORE = 0.5
NMS_IOU = 0.3
ROI_SCALE = 1.25  # the crop's side is 1.25 x the detector's body circle diameter


@dataclass(frozen=True)
class BodyLandmarks:
    """33 body landmarks of one person, in BlazePose order (:data:`LANDMARK_NAMES`)."""

    points: np.ndarray  # (33, 2) float32, pixel (x, y) in the input image
    visibility: (
        np.ndarray
    )  # (33,) float32 in [0, 1]: how likely the landmark is visible (not occluded/outside)


def pose_available() -> bool:
    """True when the LiteRT runtime (the ``pose`` extra) is installed."""
    return importlib.util.find_spec("ai_edge_litert") is not None


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, np.float64), -80.0, 80.0)))


def detector_anchors() -> np.ndarray:
    """(2254, 2) anchor centres (x, y) of the pose detector, in [0, 1] of its 224x224 input."""
    centres = []
    strides = list(DETECTOR_STRIDES)
    while strides:
        stride = strides[0]
        layers = sum(1 for s in strides if s == stride)  # consecutive layers sharing this feature map
        strides = strides[layers:]
        side = math.ceil(DETECTOR_SIZE / stride)
        y, x = np.meshgrid((np.arange(side) + 0.5) / side, (np.arange(side) + 0.5) / side, indexing="ij")
        cell = np.stack([x.ravel(), y.ravel()], axis=-1)  # (side*side, 2), row-major
        centres.append(np.repeat(cell, 2 * layers, axis=0))
    return np.concatenate(centres).astype(np.float32)


def _letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit ``image`` (H, W, 3) into a black ``size`` square: (size, size, 3) uint8, the (x, y) scale from
    image to square pixels and the (x, y) padding."""
    height, width = image.shape[:2]
    scale = size / max(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))
    pad = np.array([(size - new_w) // 2, (size - new_h) // 2])
    out = np.zeros((size, size, 3), np.uint8)
    out[pad[1] : pad[1] + new_h, pad[0] : pad[0] + new_w] = resized
    return out, np.array([new_w / width, new_h / height]), pad


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (4,) box (x0, y0, x1, y1) with (K, 4) boxes."""
    lo = np.maximum(box[:2], boxes[:, :2])
    hi = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    area = np.prod(box[2:] - box[:2]) + np.prod(boxes[:, 2:] - boxes[:, :2], axis=-1)
    return inter / np.maximum(area - inter, 1e-12)


def decode_detection(raw: np.ndarray, logits: np.ndarray, anchors: np.ndarray) -> np.ndarray | None:
    """Best person from the detector's outputs (2254, 12) and (2254,): its 4 alignment points (4, 2) in [0, 1]
    of the detector input, averaged with the candidates overlapping it (weighted by score); None if none."""
    scores = _sigmoid(logits)
    keep = scores >= MIN_DETECTION_SCORE
    if not keep.any():
        return None
    raw, scores, anchors = raw[keep] / DETECTOR_SIZE, scores[keep], anchors[keep]
    centre = raw[:, :2] + anchors  # (K, 2); anchors have unit size
    half = raw[:, 2:4] / 2
    boxes = np.concatenate([centre - half, centre + half], axis=-1)  # (K, 4)
    points = raw[:, 4:12].reshape(-1, 4, 2) + anchors[:, None]  # (K, 4, 2)
    best = int(np.argmax(scores))
    group = _iou(boxes[best], boxes) > NMS_IOU
    weights = scores[group] / scores[group].sum()
    return np.einsum("k,kpc->pc", weights, points[group])


@dataclass(frozen=True)
class _Roi:
    centre: np.ndarray  # (2,) pixels
    size: float  # side of the square, pixels
    rotation: float  # radians; the crop's up axis is the image's up axis rotated by this

    def crop_to_image(self, out_size: int) -> np.ndarray:
        """(2, 3) affine from crop pixels (continuous) to image pixels."""
        cos, sin = math.cos(self.rotation), math.sin(self.rotation)
        linear = (self.size / out_size) * np.array([[cos, -sin], [sin, cos]])
        offset = self.centre - linear @ np.array([out_size / 2, out_size / 2])
        return np.concatenate([linear, offset[:, None]], axis=1)


def roi_from_points(centre: np.ndarray, circle: np.ndarray) -> _Roi:
    """The landmark model's crop from the hip centre and a point on the body circle (both (2,) pixels)."""
    delta = circle - centre
    rotation = math.pi / 2 - math.atan2(-delta[1], delta[0])
    rotation = (rotation + math.pi) % (2 * math.pi) - math.pi
    return _Roi(centre=centre, size=float(2 * np.hypot(*delta) * ROI_SCALE), rotation=rotation)


def _crop(image: np.ndarray, roi: _Roi, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Rotated square crop (size, size, 3) uint8 (black outside the image) and its crop->image affine."""
    matrix = roi.crop_to_image(size)
    # Pillow maps each output position to an input position with these coefficients (pixel centres at +0.5)
    crop = Image.fromarray(image).transform(
        (size, size), Image.AFFINE, tuple(matrix.ravel()), resample=Image.BILINEAR, fillcolor=(0, 0, 0)
    )
    return np.asarray(crop), matrix


def _interpreter(path: Path) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    if not path.is_file():
        raise MRAAError(f"pose model file missing: {path}; reinstall mraa")
    with _native_stderr_silenced():  # LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
        interpreter = Interpreter(model_path=str(path), num_threads=1)
        interpreter.allocate_tensors()
    return interpreter


def _flush_c_streams() -> None:
    import ctypes

    with contextlib.suppress(OSError, AttributeError):  # no C library to reach: nothing to flush
        ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """File descriptor 2 pointed at /dev/null for the block (the message comes from C++, not Python)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        _flush_c_streams()  # C stdio may hold the message in its buffer until exit
        os.dup2(saved, 2)
        os.close(saved)


class PoseDetector:
    """33 BlazePose body landmarks of the most prominent person in an RGB image, on CPU, offline (~30 ms).

    Raises :class:`MRAAError` naming the extra to install when the LiteRT runtime is missing.
    """

    def __init__(self) -> None:
        if not pose_available():
            raise MRAAError(f"ai-edge-litert is not installed; {EXTRA_HINT}")
        self._detector = _interpreter(ASSETS / DETECTOR_FILE)
        self._landmarks = _interpreter(ASSETS / LANDMARK_FILE)
        self._anchors = detector_anchors()

    @staticmethod
    def _run(interpreter: Any, tensor: np.ndarray) -> list[np.ndarray]:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tensor[None])
        interpreter.invoke()
        return [interpreter.get_tensor(d["index"])[0] for d in interpreter.get_output_details()]

    def detect(self, image: np.ndarray) -> _Roi | None:
        """The landmark model's crop around the best detected person, or None."""
        boxed, scale, pad = _letterbox(image, DETECTOR_SIZE)
        raw, logits = self._run(self._detector, boxed.astype(np.float32) / 127.5 - 1.0)[:2]
        points = decode_detection(raw, logits[:, 0], self._anchors)
        if points is None:
            return None
        pixels = (points * DETECTOR_SIZE - pad) / scale  # (4, 2) image pixels
        return roi_from_points(pixels[0], pixels[1])

    def landmarks(self, image: np.ndarray, roi: _Roi) -> BodyLandmarks | None:
        """Run the landmark model on ``roi``; None when it finds no person there."""
        crop, matrix = _crop(image, roi, LANDMARK_SIZE)
        outputs = self._run(self._landmarks, crop.astype(np.float32) / 255.0)
        rows, presence = outputs[0].reshape(-1, 5), float(outputs[1].ravel()[0])  # (39, 5), score
        if presence < MIN_PRESENCE_SCORE:
            return None
        xy = rows[:NUM_LANDMARKS, :2].astype(np.float64)  # crop pixels
        points = xy @ matrix[:, :2].T + matrix[:, 2]
        visibility = _sigmoid(rows[:NUM_LANDMARKS, 3])
        return BodyLandmarks(points=points.astype(np.float32), visibility=visibility.astype(np.float32))

    def __call__(self, image: np.ndarray) -> BodyLandmarks | None:
        """uint8 (H, W, 3) RGB -> the landmarks of the most prominent person, or None when there is none."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise MRAAError(f"expected a uint8 RGB image (H, W, 3), got {image.dtype} {image.shape}")
        roi = self.detect(np.ascontiguousarray(image))
        return None if roi is None else self.landmarks(image, roi)
