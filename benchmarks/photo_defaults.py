#!/usr/bin/env python
"""Which crop and mode damage a real photo least when animated with the shipped synthetic-figure model
(tests/data/photos, public domain). Prints JSON.

Two drivings per photo:

- ``nod``: the photo itself turned by up to 6 degrees and shifted by up to 6 px about its head (a nodding
  head), so the right answer is known: ``l1_to_truth`` is the mean absolute error (0..255) of the animated
  frames against the driving frames, cut and resized the same way;
- ``sample``: the shipped synthetic driving clip (a figure's motion, nothing like a person's): there is no
  right answer, so ``l1_to_source`` is how far the frames drift from the source crop and ``holes`` the
  share of pixels that turn near-black (luma under 24 where the source is over 48), the "black holes".

Crops: ``center`` (the head-keeping centred square, what ``--crop auto`` now gives a non-square photo with
this model) and ``none`` (the whole photo squashed to a square, the old default), modes ``avd`` and
``relative``. Run from the repository root: ``python benchmarks/photo_defaults.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from mraa.animate import DEFAULT_MODEL_DIR, Animator
from mraa.data.video_io import read_image, read_video
from mraa.framing import crop_resize, frame_source
from mraa.framing.boxes import Box

PHOTOS = Path(__file__).resolve().parents[1] / "tests" / "data" / "photos"


def nod(photo: np.ndarray, head: list[float], count: int = 12) -> list[np.ndarray]:
    cx, cy = (head[0] + head[2]) / 2, (head[1] + head[3]) / 2
    frames = []
    for i in range(count):
        phase = 2 * np.pi * i / count
        turned = Image.fromarray(photo).rotate(6 * np.sin(phase), resample=Image.BICUBIC, center=(cx, cy))
        frames.append(
            np.roll(np.asarray(turned), (round(4 * np.sin(phase)), round(6 * np.cos(phase))), (0, 1))
        )
    return frames


def luma(images: np.ndarray) -> np.ndarray:
    return images[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def run(animator: Animator, source: np.ndarray, driving: list[np.ndarray], mode: str) -> np.ndarray:
    from mraa.visualize import tensor_to_uint8, uint8_to_tensor

    s = uint8_to_tensor(source).unsqueeze(0)
    d = uint8_to_tensor(np.stack(driving))
    return tensor_to_uint8(animator.animate(s, d, mode=mode))


def main() -> None:
    animator = Animator.from_checkpoint()
    size = animator.image_size
    heads = json.loads((PHOTOS / "heads.json").read_text())
    sample = list(read_video(DEFAULT_MODEL_DIR / "driving.mp4"))
    sample_frames = [np.asarray(Image.fromarray(f).resize(size[::-1], Image.BILINEAR)) for f in sample]
    rows = []
    for name, head in heads.items():
        photo = read_image(PHOTOS / name)
        h, w = photo.shape[:2]
        boxes = {"center": frame_source(photo, "center").box, "none": Box(0.0, 0.0, float(w), float(h))}
        truth_frames = nod(photo, head)
        for crop, box in boxes.items():
            source = crop_resize(photo, box, size)
            truth = [crop_resize(f, box, size) for f in truth_frames]
            for mode in ("avd", "relative"):
                out = run(animator, source, truth, mode)
                l1_truth = float(np.abs(out.astype(np.float32) - np.stack(truth)).mean())
                drift = run(animator, source, sample_frames, mode)
                l1_source = float(np.abs(drift.astype(np.float32) - source[None]).mean())
                holes = float(((luma(drift) < 24) & (luma(source[None]) > 48)).mean())
                rows.append({"photo": name, "size": [w, h], "crop": crop, "mode": mode,
                             "l1_to_truth": round(l1_truth, 2), "l1_to_source": round(l1_source, 2),
                             "holes": round(holes, 4)})  # fmt: skip
    summary = {}
    for crop in ("center", "none"):
        for mode in ("avd", "relative"):
            chosen = [r for r in rows if r["crop"] == crop and r["mode"] == mode]
            summary[f"{crop}/{mode}"] = {
                key: round(float(np.mean([r[key] for r in chosen])), 4)
                for key in ("l1_to_truth", "l1_to_source", "holes")
            }
    print(
        json.dumps(
            {"load_average": os.getloadavg()[0], "model_size": list(size), "mean": summary, "rows": rows},
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
