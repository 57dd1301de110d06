#!/usr/bin/env python
"""Framing on the labelled real photos (tests/data/photos): is the whole head inside every crop, how much of
the labelled person is inside the full-body crop, and the time per source, with body landmarks
(``mraa.pose``) and without them (face box + body proportions). Prints JSON.

Each photo is measured as it is and placed in the middle of a canvas twice its size filled with blurred
noise (a busy scene: the plain-background silhouette finder does not fire, and the framing's ideal square
fits in the image, so the detectors' boxes decide the crop rather than the image border).

Run from the repository root: ``python benchmarks/framing_photos.py``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from mraa.data.prepare.detectors import Box
from mraa.data.video_io import read_image
from mraa.framing import body, frame_source
from mraa.framing.boxes import contains

PHOTOS = Path(__file__).resolve().parents[1] / "tests" / "data" / "photos"


def busy_canvas(photo: np.ndarray, seed: int = 0) -> tuple[np.ndarray, int, int]:
    """The photo in the middle of a canvas twice its size filled with blurred colour noise."""
    from PIL import Image, ImageFilter

    h, w = photo.shape[:2]
    noise = np.random.default_rng(seed).integers(0, 255, (2 * h // 8, 2 * w // 8, 3), dtype=np.uint8)
    canvas = np.array(Image.fromarray(noise).resize((2 * w, 2 * h)).filter(ImageFilter.GaussianBlur(3)))
    dx, dy = w // 2, h // 2
    canvas[dy : dy + h, dx : dx + w] = photo
    return canvas, dx, dy


def coverage(crop: Box, person: Box) -> float:
    inside = Box(
        max(crop.x0, person.x0), max(crop.y0, person.y0), min(crop.x1, person.x1), min(crop.y1, person.y1)
    )
    if inside.width <= 0 or inside.height <= 0:
        return 0.0
    return inside.width * inside.height / (person.width * person.height)


def measure(use_pose: bool) -> list[dict]:
    labels = json.loads((PHOTOS / "heads.json").read_text())
    persons = json.loads((PHOTOS / "persons.json").read_text())
    rows = []
    for name, head in labels.items():
        photo = read_image(PHOTOS / name)
        canvas, dx, dy = busy_canvas(photo)
        for where, image, (ox, oy) in (("photo", photo, (0, 0)), ("canvas", canvas, (dx, dy))):
            truth = Box(head[0] + ox, head[1] + oy, head[2] + ox, head[3] + oy)
            for crop in ("face", "upper_body", "full_body", "center"):
                start = time.perf_counter()
                framed = frame_source(image, crop)
                seconds = time.perf_counter() - start
                row = {"photo": name, "where": where, "crop": crop, "pose": use_pose, "how": framed.how,
                       "fit": framed.fit, "box": [round(v) for v in framed.box],
                       "head_inside": contains(framed.box, truth), "seconds": round(seconds, 3)}  # fmt: skip
                if crop == "full_body" and name in persons:
                    p = persons[name]
                    person = Box(p[0] + ox, p[1] + oy, p[2] + ox, p[3] + oy)
                    row["person_inside"] = round(coverage(framed.box, person), 3)
                    # TaiChi's crops: the person box + 5% per side, so about 0.91 of the side
                    row["person_height_over_side"] = round(person.height / framed.box.height, 3)
                rows.append(row)
    return rows


def main() -> None:
    with_pose = measure(True)
    body._landmarks = lambda image: None  # the fallback: face box + proportions
    without = measure(False)
    rows = with_pose + without
    summary = {
        str(p): {
            "heads_inside": f"{sum(r['head_inside'] for r in rows if r['pose'] == p)}/{sum(r['pose'] == p for r in rows)}",
            "person_inside_full_body": {
                f"{r['photo']}@{r['where']}": r["person_inside"]
                for r in rows
                if r["pose"] == p and "person_inside" in r
            },
            "person_height_over_side_full_body": {
                f"{r['photo']}@{r['where']}": r["person_height_over_side"]
                for r in rows
                if r["pose"] == p and "person_inside" in r
            },
            "mean_seconds": round(float(np.mean([r["seconds"] for r in rows if r["pose"] == p])), 3),
        }
        for p in (True, False)
    }
    print(
        json.dumps({"load_average": os.getloadavg()[0], "summary_by_pose": summary, "rows": rows}, indent=1)
    )


if __name__ == "__main__":
    main()
