"""The table of docs/evaluation.md: the shipped model vs the no-motion baseline, scored by `mraa evaluate`.

1. Synthetic: the 24 held-out test videos of the shipped model's dataset (`mraa synth --seed 0`, 64x64, 32
   frames), reconstructed from their first frames; keypoints exact from the generator.
2. Real clips: no real video ships with mraa, so the clips are made from the two public-domain photos in
   tests/data (slow pans and zooms of one still photo: camera motion only, no articulated motion). The model
   works at 64x64; its reconstructions and the reference frames are both upscaled to 256x256 (bicubic) so
   that the face and body detectors can see them.

The baseline "generates" each video by holding its first frame. Prints one JSON object.

    python scripts/evaluation_table.py --work /tmp/evaluation-table
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
from PIL import Image

from mraa.animate import Animator, default_checkpoint
from mraa.data.frames_dataset import FramesDataset
from mraa.data.synthetic import SynthConfig, write_dataset
from mraa.data.video_io import read_image, read_video, write_frame_folder
from mraa.evaluation import load_identity_extractor, load_keypoint_extractor, reconstruct_dataset
from mraa.evaluation.compare import Extractors, evaluate_videos

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = {
    "astronaut": ROOT / "tests" / "data" / "prepare" / "astronaut.jpg",
    "hopper": ROOT / "tests" / "data" / "evaluate" / "grace_hopper.jpg",
}
FRAMES = 32


def window_clip(photo: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Crops of ``photo`` at boxes (T, 4) = (x0, y0, x1, y1), each resized to size x size: (T, size, size, 3)."""
    image = Image.fromarray(photo)
    return np.stack([np.asarray(image.resize((size, size), Image.BICUBIC, box=tuple(b))) for b in boxes])


def real_clips(folder: Path, size: int) -> None:
    """Four clips: each photo panned and zoomed (boxes interpolated linearly over FRAMES frames)."""
    folder.mkdir(parents=True)
    t = np.linspace(0, 1, FRAMES)[:, None]
    moves = {
        "pan": (np.array([0, 0, 216, 216]), np.array([40, 24, 256, 240])),
        "zoom": (np.array([0, 0, 256, 256]), np.array([32, 16, 224, 208])),
    }
    for person, path in PHOTOS.items():
        photo = read_image(path)
        for move, (start, end) in moves.items():
            write_frame_folder(
                folder / f"{person}_{move}", window_clip(photo, start + t * (end - start), size)
            )


def predictions(animator: Animator, data: Path, out: Path) -> None:
    """Reconstructions of data/test as png strips (the official layout) in ``out``."""
    dataset = FramesDataset(data, frame_shape=(*animator.image_size, 3), is_train=False)
    reconstruct_dataset(animator, dataset, out_dir=out, format="png", layout="prediction", progress=False)
    (out / "metrics.json").unlink()


def baseline(reference: Path, out: Path) -> None:
    """Each reference video's first frame held for all its frames."""
    out.mkdir()
    for video in sorted(reference.iterdir()):
        frames = read_video(video)
        write_frame_folder(out / video.stem, np.repeat(frames[:1], len(frames), axis=0))


def upscale(folder: Path, out: Path, size: int) -> None:
    out.mkdir()
    for video in sorted(folder.iterdir()):
        frames = read_video(video)
        write_frame_folder(
            out / video.stem,
            [np.asarray(Image.fromarray(f).resize((size, size), Image.BICUBIC)) for f in frames],
        )


def once(output: Path, step, *args, **kwargs) -> None:
    """Run ``step`` unless ``output`` exists (a rerun resumes); a failed step leaves no ``output``."""
    if output.exists():
        return
    try:
        step(*args, **kwargs)
    except BaseException:
        shutil.rmtree(output, ignore_errors=True)
        raise


def score(generated: Path, reference: Path, metrics: set[str], extractors: Extractors) -> dict:
    return evaluate_videos(generated, reference, metrics, extractors).summary()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--work", type=Path, required=True, help="folder for the videos (steps already done there are kept)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    animator = Animator.from_checkpoint(default_checkpoint(), batch_size=8)
    size = animator.image_size[0]

    synth = args.work / "synth64"
    once(synth, write_dataset, synth, num_train=1, num_test=24, seed=0,
         cfg=SynthConfig(size=size, num_frames=FRAMES), fmt="png", progress=False)  # fmt: skip
    once(args.work / "synth_model", predictions, animator, synth, args.work / "synth_model")
    once(args.work / "synth_baseline", baseline, synth / "test", args.work / "synth_baseline")
    exact = Extractors(synthetic=True)
    table = {"synthetic": {}, "real": {}}
    for name in ("model", "baseline"):
        table["synthetic"][name] = score(
            args.work / f"synth_{name}", synth / "test", {"l1", "akd", "mkr"}, exact
        )

    real = args.work / "real"
    once(real, real_clips, real / "test", size)
    once(args.work / "real_model", predictions, animator, real, args.work / "real_model")
    once(args.work / "real_baseline", baseline, real / "test", args.work / "real_baseline")
    once(args.work / "real_reference256", upscale, real / "test", args.work / "real_reference256", 256)
    for name in ("model", "baseline"):
        once(
            args.work / f"real_{name}256",
            upscale,
            args.work / f"real_{name}",
            args.work / f"real_{name}256",
            256,
        )
        generated, reference = args.work / f"real_{name}256", args.work / "real_reference256"
        face = Extractors(load_keypoint_extractor("dlib-face"), load_identity_extractor("dlib-face"))
        body = Extractors(load_keypoint_extractor("body"))
        table["real"][name] = {
            "face": score(generated, reference, {"l1", "akd", "mkr", "aed"}, face),
            "body": score(generated, reference, {"akd", "mkr"}, body),
        }
    table["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
