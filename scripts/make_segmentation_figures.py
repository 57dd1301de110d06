"""Make the README's segmentation and part-swap figures with the shipped default model.

    .venv/bin/python scripts/make_segmentation_figures.py            # writes docs/images/{segmentation,swap}.png

By default it uses the model in src/mraa/assets/default/ and the sample source image and driving video
found there; --checkpoint/--config/--source/--driving override them. The swapped parts default to the
parts whose centres lie in the upper half of the figure in the first driving frame ("upper body");
--parts overrides that. Runs on the CPU in seconds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from mraa.animate import DEFAULT_MODEL_DIR, Animator
from mraa.cli._common import driving_frames, load_source
from mraa.data.video_io import IMAGE_SUFFIXES, VIDEO_SUFFIXES, write_image
from mraa.segmentation import parse_parts, segment, swap_parts_iter
from mraa.visualize import add_caption, colorize_labels, make_grid, overlay_segmentation, tensor_to_uint8

ROOT = Path(__file__).resolve().parents[1]


def find_sample(folder: Path, suffixes: set[str], prefix: str) -> Path:
    """The sample in ``folder`` with one of ``suffixes``, preferring names that start with ``prefix``."""
    candidates = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    if not candidates:
        raise SystemExit(f"no sample {prefix} ({', '.join(sorted(suffixes))}) in {folder}: pass --{prefix}")
    return next((p for p in candidates if p.name.startswith(prefix)), candidates[0])


def upper_parts(seg) -> list[int]:
    """Parts whose pixels' mean row is above the foreground's mean row (at least one part)."""
    labels = seg.labels[0]
    rows = torch.arange(labels.shape[0], dtype=torch.float32)[:, None].expand_as(labels)
    middle = rows[labels > 0].mean() if (labels > 0).any() else labels.shape[0] / 2
    centres = {k: rows[labels == k].mean() for k in range(1, seg.num_parts + 1) if (labels == k).any()}
    chosen = [k for k, y in centres.items() if y < middle]
    return chosen or [min(centres, key=centres.get, default=1)]


def upscale(image: np.ndarray, scale: int) -> np.ndarray:
    from PIL import Image

    if scale == 1:
        return image
    h, w = image.shape[:2]
    return np.asarray(Image.fromarray(image).resize((w * scale, h * scale), Image.BICUBIC))


def segmentation_figure(animator: Animator, source: torch.Tensor, source_uint8: np.ndarray, scale: int):
    """input | colour-coded label map | overlay with part indices and legend."""
    seg = segment(animator, source)
    h, w = source_uint8.shape[:2]
    big = seg.resize((h * scale, w * scale))
    labels = big.labels[0].cpu()
    shown = upscale(source_uint8, scale)
    panels = [
        add_caption(shown, "input"),
        add_caption(colorize_labels(labels, seg.num_parts), "label map"),
        add_caption(overlay_segmentation(shown, labels, seg.num_parts), "overlay"),
    ]
    return make_grid([panels], pad=4)


def swap_figure(animator, source, source_uint8, driving: list[torch.Tensor], parts, columns: int, scale: int):
    """Top row: source, then driving frames; bottom row: the chosen parts, then the swapped frames."""
    picks = np.linspace(0, len(driving) - 1, min(columns, len(driving))).round().astype(int)
    results = []
    for batch in swap_parts_iter(animator, source, torch.cat(driving), parts, feather=1.0):
        results.extend(tensor_to_uint8(batch.result))
    first = segment(animator, driving[0])
    h, w = source_uint8.shape[:2]
    chosen = np.isin(first.resize((h * scale, w * scale)).labels[0].cpu().numpy(), parts)
    frame0 = upscale(tensor_to_uint8(driving[0][0]), scale)
    parts_panel = (frame0 * np.where(chosen, 1.0, 0.3)[..., None]).astype(np.uint8)
    top = [add_caption(upscale(source_uint8, scale), "source")]
    top += [add_caption(upscale(tensor_to_uint8(driving[i][0]), scale), f"driving {i}") for i in picks]
    bottom = [add_caption(parts_panel, f"parts {','.join(map(str, parts))}")]
    bottom += [add_caption(upscale(results[i], scale), f"swapped {i}") for i in picks]
    return make_grid([top, bottom], pad=4)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", default=None, help="default: the shipped model")
    parser.add_argument("--config", default=None)
    parser.add_argument("--source", type=Path)
    parser.add_argument("--driving", type=Path)
    parser.add_argument("--parts", help="parts to swap (default: the upper half of the figure)")
    parser.add_argument("--frames", type=int, default=4, help="driving frames shown in the swap figure")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    torch.set_num_threads(2)

    animator = Animator.from_checkpoint(args.checkpoint, args.config)
    size = animator.image_size
    source_path = args.source or find_sample(DEFAULT_MODEL_DIR, IMAGE_SUFFIXES, "source")
    driving_path = args.driving or find_sample(DEFAULT_MODEL_DIR, VIDEO_SUFFIXES, "driving")
    source, source_uint8 = load_source(source_path, size, crop=False)
    driving = list(driving_frames(driving_path, size, crop=False))
    scale = max(1, -(-128 // size[1]))  # panels at least 128 px wide

    parts = parse_parts(args.parts, animator.models.region_predictor.num_regions) if args.parts else None
    parts = parts or upper_parts(segment(animator, driving[0]))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    seg_path = write_image(
        args.out_dir / "segmentation.png", segmentation_figure(animator, source, source_uint8, scale)
    )
    swap_image = swap_figure(animator, source, source_uint8, driving, parts, args.frames, scale)
    swap_path = write_image(args.out_dir / "swap.png", swap_image)
    print(f"source {source_path}, driving {driving_path} ({len(driving)} frames), parts {parts}")
    print(f"wrote {seg_path} and {swap_path}")


if __name__ == "__main__":
    main()
