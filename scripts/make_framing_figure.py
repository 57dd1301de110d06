#!/usr/bin/env python
"""docs/images/framing.png: crop and paste-back on a real photo (the public-domain NASA astronaut portrait,
3:4, tests/data/photos/astronaut_portrait.jpg).

The driving video is the photo itself, moved and turned a little about the head; the model is the one shipped
with mraa; the paste-back mask is the feathered box narrowed by the region heatmaps (``--paste-back``).
Run from the repository root: ``python scripts/make_framing_figure.py [--output docs/images/framing.png]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mraa.animate import Animator
from mraa.data.video_io import read_image, write_image
from mraa.framing import Compositor, crop_resize, heatmap_masks, plan_crops
from mraa.inputs import uint8_to_batch
from mraa.visualize import tensor_to_uint8, uint8_to_tensor

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "tests" / "data" / "photos" / "astronaut_portrait.jpg"
HEAD = (112, 12, 262, 190)  # the labelled head with hair (tests/data/photos/heads.json)


def driving_frames(photo: np.ndarray, count: int = 16) -> list[np.ndarray]:
    """The photo turned by up to 6 degrees and shifted by up to 6 px (a nodding head)."""
    frames = []
    for i in range(count):
        phase = 2 * np.pi * i / count
        centre = ((HEAD[0] + HEAD[2]) / 2, (HEAD[1] + HEAD[3]) / 2)
        image = Image.fromarray(photo).rotate(6 * np.sin(phase), resample=Image.BICUBIC, center=centre)
        frames.append(
            np.roll(np.asarray(image), (round(4 * np.sin(phase)), round(6 * np.cos(phase))), (0, 1))
        )
    return frames


def panel(image: np.ndarray, height: int = 256) -> Image.Image:
    scale = height / image.shape[0]
    return Image.fromarray(image).resize((round(image.shape[1] * scale), height), Image.BICUBIC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", default=str(ROOT / "docs" / "images" / "framing.png"))
    parser.add_argument("--frame", type=int, default=4, help="which animated frame to show")
    args = parser.parse_args()
    photo = read_image(PHOTO)
    frames = driving_frames(photo)
    plan = plan_crops(photo, frames, "face")
    animator = Animator.from_checkpoint()
    size = animator.image_size
    source = uint8_to_tensor(crop_resize(photo, plan.source.box, size)).unsqueeze(0)
    driving = uint8_to_tensor(
        np.stack([crop_resize(f, plan.driving.box_at(i), size) for i, f in enumerate(frames)])
    )
    predictions = animator.animate(source, driving, mode="relative")
    animated = tensor_to_uint8(predictions)
    source_heatmap = animator.region_params(uint8_to_batch(crop_resize(photo, plan.source.box, size)))[
        "heatmap"
    ]
    masks = heatmap_masks(source_heatmap, animator.region_params(predictions)["heatmap"])
    pasted = Compositor(photo, plan.source.box)(animated[args.frame], masks[args.frame])
    boxed = panel(photo)
    scale = 256 / photo.shape[0]
    draw = ImageDraw.Draw(boxed)
    draw.rectangle([v * scale for v in HEAD], outline=(255, 255, 255), width=1)
    draw.rectangle([v * scale for v in plan.source.box], outline=(255, 40, 40), width=3)
    panels = [
        boxed,
        panel(crop_resize(photo, plan.source.box, size)),
        panel(animated[args.frame]),
        panel(pasted),
    ]
    width = sum(p.width for p in panels) + 6 * (len(panels) - 1)
    figure = Image.new("RGB", (width, 256), (255, 255, 255))
    x = 0
    for p in panels:
        figure.paste(p, (x, 0))
        x += p.width + 6
    write_image(args.output, np.asarray(figure))
    print(f"wrote {args.output} (source box {tuple(plan.source.box)}, driving shots {plan.driving.shots})")


if __name__ == "__main__":
    main()
