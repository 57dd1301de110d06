#!/usr/bin/env python
"""Is there a seam where a pasted-back crop's box edge crosses the subject? On the labelled real photos
(tests/data/photos), animated with the shipped model in relative mode by a nodding copy of the photo, the
crop's bottom edge lies inside the image and runs across the body. Prints JSON.

Measured on the change the paste makes, ``output - source``: the mean row-to-row jump of that change over
the feather band at the box's bottom edge (``band``), against the median jump over the rows above the band
inside the box (``inside``, the animated texture's own). A seam shows as ``band`` well above ``inside``;
``hard`` is a paste with a 1-pixel edge, for reference. Run from the repository root:
``python benchmarks/paste_seam.py``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

from mraa.animate import Animator
from mraa.data.video_io import read_image
from mraa.framing import FEATHER, Compositor, crop_resize, frame_source, heatmap_masks
from mraa.inputs import uint8_to_batch
from mraa.visualize import tensor_to_uint8, uint8_to_tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photo_defaults import PHOTOS, nod  # noqa: E402

CASES = [("astronaut_portrait.jpg", "upper_body"), ("cameraman.jpg", "face"), ("hopper.jpg", "face")]


def band_and_inside(
    output: np.ndarray, source: np.ndarray, edge: int, x0: int, x1: int
) -> tuple[float, float]:
    change = output.astype(np.float32) - source[: output.shape[0], : output.shape[1]].astype(np.float32)
    jumps = np.abs(np.diff(change, axis=0))[:, x0:x1].mean(axis=(1, 2))  # per row
    ramp = int(FEATHER * (x1 - x0)) + 3
    return float(jumps[edge - ramp : edge + 3].mean()), float(
        np.median(jumps[edge - 2 * ramp - 40 : edge - ramp])
    )


def main() -> None:
    animator = Animator.from_checkpoint()
    heads = json.loads((PHOTOS / "heads.json").read_text())
    results = []
    for name, crop in CASES:
        photo = read_image(PHOTOS / name)
        box = frame_source(photo, crop).box
        size = animator.image_size
        source = crop_resize(photo, box, size)
        driving = np.stack([crop_resize(f, box, size) for f in nod(photo, heads[name])])
        predictions = animator.animate(
            uint8_to_tensor(source).unsqueeze(0), uint8_to_tensor(driving), mode="relative"
        )
        frames = tensor_to_uint8(predictions)
        masks = heatmap_masks(
            animator.region_params(uint8_to_batch(source))["heatmap"],
            animator.region_params(predictions)["heatmap"],
        )
        edge, x0, x1 = int(box.y1), int(box.x0), int(box.x1)
        row = {"photo": name, "crop": crop, "source_box": [int(v) for v in box]}
        pastes = {"hard": (Compositor(photo, box, feather=0.002), False), "box": (Compositor(photo, box), False),
                  "regions": (Compositor(photo, box), True)}  # fmt: skip
        for label, (compositor, narrowed) in pastes.items():
            values = [
                band_and_inside(compositor(f, m if narrowed else None), photo, edge, x0, x1)
                for f, m in zip(frames, masks)
            ]
            row[label] = {"band": round(float(np.mean([v[0] for v in values])), 2),
                          "inside": round(float(np.mean([v[1] for v in values])), 2)}  # fmt: skip
        results.append(row)
    print(json.dumps({"load_average": os.getloadavg()[0], "results": results}, indent=1))


if __name__ == "__main__":
    main()
