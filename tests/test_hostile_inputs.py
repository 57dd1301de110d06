"""Issue 32 (second half): phone videos upright, checked backgrounds, linear-time batch checks, bounded memory,
and clear one-line errors for the rest of the hostile-user list.

Inputs are tiny and made here, except ``tests/data/portrait_rotated.mp4`` (``scripts/make_rotated_clip.py``):
a 48x64 portrait picture with four coloured quarters, stored landscape with a -90 degree display matrix as a
phone records it. ``docs/reliability.md`` maps each defect to its test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import torch

from mraa.cli import main
from mraa.data import video_io
from mraa.data.video_io import probe_video, read_image, read_video, write_image, write_video
from mraa.errors import MRAAError

from .conftest import ROOT

CLIP = ROOT / "tests" / "data" / "portrait_rotated.mp4"
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
# the quarters of the picture the clip shows: (row, column) -> colour
QUARTERS = {(0, 0): (255, 0, 0), (0, 1): (0, 255, 0), (1, 0): (0, 0, 255), (1, 1): (255, 255, 255)}


def quarter_colours(image: np.ndarray) -> dict[tuple[int, int], tuple[int, ...]]:
    """The median colour of the central part of each quarter of an (H, W, 3) image, rounded to 0 or 255."""
    h, w = image.shape[:2]
    colours = {}
    for (row, col), _ in QUARTERS.items():
        y0, x0 = row * h // 2, col * w // 2
        patch = image[y0 + h // 8 : y0 + 3 * h // 8, x0 + w // 8 : x0 + 3 * w // 8].reshape(-1, 3)
        colours[row, col] = tuple(int(v > 127) * 255 for v in np.median(patch, axis=0))
    return colours


def png_header(width: int, height: int) -> bytes:
    """The start of a PNG (signature, IHDR, IEND; no pixel data) announcing ``width`` x ``height`` pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def one_line_error(argv: list[str], capsys) -> str:
    """Run the CLI in-process; assert a non-zero exit and one ``error:`` line; return that line."""
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("INFO: ")]
    assert code != 0, f"exit status 0 for {argv}"
    assert "Traceback" not in err and "unexpected" not in err, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """A source image, a driving video, a tiny checkpoint and config, and a small dataset."""
    from mraa.checkpoint import save_checkpoint
    from mraa.config import load_config, save_config
    from mraa.models import build_models

    root = tmp_path_factory.mktemp("hostile")
    rng = np.random.default_rng(0)
    write_image(root / "src.png", rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    write_image(root / "tiny.png", np.zeros((1, 1, 3), np.uint8))
    frames = [np.full((64, 64, 3), 40 * i, np.uint8) for i in range(4)]
    write_video(root / "drv.mp4", frames, fps=10)
    cfg = load_config(ROOT / "configs" / "tiny.yaml")
    torch.manual_seed(0)
    save_checkpoint(root / "ck.pth", build_models(cfg.model_params), cfg)
    save_config(cfg, root / "tiny.yaml")
    test = root / "data" / "test"
    test.mkdir(parents=True)
    write_video(test / "good.mp4", frames, fps=10)
    (test / "text.mp4").write_text("not a video\n")
    (test / "mixed").mkdir()
    write_image(test / "mixed" / "000000.png", frames[0])
    write_image(test / "mixed" / "000001.png", frames[1][:40, :48])
    (root / "data" / "train").mkdir()
    return root


# ----------------------------------------------------------------------------- 5: rotation metadata
def test_committed_phone_clip_reads_upright():
    """Every reader (iter_video, probe_video, the training/evaluation dataset) shows the clip as displayed."""
    from mraa.data.frames_dataset import _count_frames, _decode_file

    assert CLIP.stat().st_size < 10_000
    frames = read_video(CLIP)
    assert frames.shape == (8, 64, 48, 3)  # portrait, as displayed (stored 64 wide, 48 high)
    assert all(quarter_colours(frame) == QUARTERS for frame in frames)
    info = probe_video(CLIP)
    assert (info.size, info.num_frames) == ((64, 48), 8)
    decoded = _decode_file(CLIP, None)
    assert decoded[0].shape == (64, 48, 3) and quarter_colours(decoded[0]) == QUARTERS
    assert _count_frames(CLIP, "file") == 8


@pytest.mark.parametrize("flags", [["-display_rotation", "90"], ["-display_rotation", "180"],
                                   ["-display_rotation", "-90", "-display_hflip"],
                                   ["-display_vflip"]])  # fmt: skip
def test_display_matrix_is_applied_as_ffmpeg_does(tmp_path, flags):
    """Rotations and mirror images come out as ffmpeg's own decoder (autorotate) shows them."""
    stored = np.zeros((16, 32, 3), np.uint8)  # an asymmetric picture: three coloured blocks
    stored[:8, :8] = (255, 0, 0)
    stored[8:, 24:] = (0, 0, 255)
    stored[:8, 16:24] = (0, 255, 0)
    plain, tagged, shown = tmp_path / "plain.mp4", tmp_path / "tagged.mp4", tmp_path / "shown.png"
    write_video(plain, [stored] * 2, fps=10)
    run = [FFMPEG, "-y", "-loglevel", "error"]
    subprocess.run([*run, *flags, "-i", str(plain), "-c", "copy", str(tagged)], check=True)
    subprocess.run([*run, "-i", str(tagged), "-frames:v", "1", str(shown)], check=True)
    expected = read_image(shown)
    frame = read_video(tagged)[0]
    assert frame.shape == expected.shape
    assert np.abs(frame.astype(int) - expected.astype(int)).mean() < 4


def test_orientation_from_the_matrix_or_the_rotate_tag(caplog):
    """The phone's matrix (-90 degrees) and the older ``rotate=90`` tag both mean: turn a quarter clockwise."""
    from types import SimpleNamespace

    from mraa.data.orientation import display_orientation, frame_orientation, orient_frame

    phone = [0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30]
    assert display_orientation(phone) == (3, False)
    picture = np.arange(6).reshape(2, 3)
    assert np.array_equal(orient_frame(picture, (3, False)), [[3, 0], [4, 1], [5, 2]])  # clockwise
    bare = SimpleNamespace(side_data=[])
    assert frame_orientation(bare, stream=SimpleNamespace(metadata={"rotate": "90"})) == (3, False)
    assert frame_orientation(bare, stream=SimpleNamespace(metadata={"rotate": "180"})) == (2, False)
    assert frame_orientation(bare, stream=SimpleNamespace(metadata={})) == (0, False)
    assert frame_orientation(bare, stream=SimpleNamespace(metadata={"rotate": "45"})) == (0, False)
    assert "not a multiple of 90" in caplog.text


def test_video_frames_are_decoded_in_one_place():
    """Only the frame reader (video_io) and the dataset's decoder (which applies the same orientation) decode
    video frames; the app opens a container only to word an error. Everything else calls iter_video."""
    allowed = {
        "av.open(": {"data/video_io.py", "data/frames_dataset.py", "app/uploads.py"},
        "container.decode(": {"data/video_io.py", "data/frames_dataset.py", "app/uploads.py"},
        "imiter(": {"data/video_io.py"},
        "get_reader(": set(),
        "VideoCapture(": set(),
    }
    package = ROOT / "src" / "mraa"
    for path in package.rglob("*.py"):
        text, name = path.read_text(encoding="utf-8"), path.relative_to(package).as_posix()
        for call, files in allowed.items():
            assert call not in text or name in files, f"{name} decodes video itself ({call})"


def test_animate_on_a_phone_clip_is_upright(inputs, tmp_path):
    """The driving frames the model sees (the visualisation's middle panel) are upright."""
    out = tmp_path / "a.mp4"
    argv = ["animate", "--source", str(inputs / "src.png"), "--driving", str(CLIP), "--output", str(out),
            "--checkpoint", str(inputs / "ck.pth"), "--crop", "none", "--visualize", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert probe_video(out).num_frames == 8
    visual = read_video(tmp_path / "a_visualization.mp4")
    width = visual.shape[2] // 3
    assert quarter_colours(visual[0][:, width : 2 * width]) == QUARTERS


def test_a_driving_file_named_like_a_protocol(inputs, tmp_path, monkeypatch):
    """``take:2.mp4`` is a file name, not ffmpeg's ``take:`` protocol."""
    shutil.copy(inputs / "drv.mp4", tmp_path / "take:2.mp4")
    monkeypatch.chdir(tmp_path)
    assert probe_video("take:2.mp4").num_frames == 4 and len(read_video("take:2.mp4")) == 4
    argv = ["animate", "--source", str(inputs / "src.png"), "--driving", "take:2.mp4", "--output", "out:1.mp4",
            "--checkpoint", str(inputs / "ck.pth"), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert probe_video("out:1.mp4").num_frames == 4


# ----------------------------------------------------------------------------- 6: --background values
BAD_BACKGROUNDS = {
    "left:nan": "finite",
    "rotate:inf": "finite",
    "right:-inf": "finite",
    "1,0,0,0,1,nan": "non-finite",
    "1,0,0,0,0,0": "singular",
    "nan.npy": "non-finite",
    "singular.npy": "singular",
    "object.npy": "Python objects",
    "inf.txt": "non-finite",
    "empty.npy": "no matrices",
}


@pytest.fixture(scope="module")
def schedules(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("schedules")
    eye = np.tile(np.eye(3)[:2], (4, 1, 1))  # (4, 2, 3)
    with_nan, singular = eye.copy(), eye.copy()
    with_nan[2, 0, 2] = np.nan
    singular[1, :, :2] = [[1, 2], [2, 4]]
    np.save(folder / "nan.npy", with_nan)
    np.save(folder / "singular.npy", singular)
    np.save(folder / "object.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    np.save(folder / "empty.npy", np.zeros((0, 2, 3)))
    (folder / "inf.txt").write_text("1 0 inf 0 1 0\n")
    return folder


@pytest.mark.parametrize("spec", sorted(BAD_BACKGROUNDS))
def test_bad_backgrounds_are_refused(schedules, spec, monkeypatch):
    from mraa.animate import background_schedule

    monkeypatch.chdir(schedules)
    with pytest.raises(MRAAError, match=BAD_BACKGROUNDS[spec]):
        background_schedule(spec)


def test_bad_backgrounds_in_the_cli_api_and_app(inputs, schedules, tiny_cfg, tiny_models, tmp_path, capsys):
    from mraa.animate import Animator
    from mraa.app import AnimationService

    argv = ["animate", "--source", str(inputs / "src.png"), "--driving", str(inputs / "drv.mp4"),
            "--output", str(tmp_path / "a.mp4"), "--quiet"]  # fmt: skip
    for spec in ("left:nan", str(schedules / "singular.npy")):
        assert "--background" in one_line_error([*argv, "--background", spec], capsys)
    assert not (tmp_path / "a.mp4").exists()
    animator = Animator(tiny_models, tiny_cfg.animate_params, config=tiny_cfg)
    source, driving = torch.rand(1, 3, 64, 64), torch.rand(2, 3, 64, 64)
    with pytest.raises(MRAAError, match="non-finite"):
        animator.animate(source, driving, mode="relative", background=np.full((2, 2, 3), np.nan))
    with pytest.raises(MRAAError, match="finite"):
        AnimationService(animator, tmp_path / "work").check_options("relative", "rotate:inf")


# ----------------------------------------------------------------------------- 8: --pairs planning
def test_pairs_planning_resolves_each_path_a_bounded_number_of_times(inputs, tmp_path, monkeypatch):
    """10,000 rows: output checks cost O(rows) path resolutions (they were O(rows^2)), and no folder
    listing per output. The timing is in benchmarks/pairs_planning.py."""
    from mraa import safety
    from mraa.cli import build_parser
    from mraa.cli.animate import check_jobs, plan_jobs

    rows = 10_000
    lines = ["source,driving,output"] + [
        f"{inputs / 'src.png'},{inputs / 'drv.mp4'},out/r{n:05d}.mp4" for n in range(rows)
    ]
    (tmp_path / "out").mkdir()
    (tmp_path / "pairs.csv").write_text("\n".join(lines) + "\n")
    calls = {"resolve": 0, "clean": 0}
    resolve, clean = safety._resolved, safety.clean_stale_temps

    def counted_resolve(path):
        calls["resolve"] += 1
        if calls["resolve"] > 3 * rows:  # fail fast instead of running the quadratic version for hours
            raise AssertionError("more than 3 path resolutions per row")
        return resolve(path)

    def counted_clean(path):
        calls["clean"] += 1
        return clean(path)

    monkeypatch.setattr(safety, "_resolved", counted_resolve)
    monkeypatch.setattr(safety, "clean_stale_temps", counted_clean)
    args = build_parser().parse_args(["animate", "--pairs", str(tmp_path / "pairs.csv")])
    jobs, batch = plan_jobs(args)
    check_jobs(jobs, batch, None)
    assert len(jobs) == rows and calls["resolve"] <= 2 * rows + 10 and calls["clean"] == 0
    (tmp_path / "pairs.csv").write_text(f"{lines[0]}\n{lines[1]}\n{lines[1]}\n")  # a repeated output
    with pytest.raises(MRAAError, match="same file"):
        check_jobs(*plan_jobs(args), None)


def test_pairs_csv_with_a_bom_or_extra_fields(inputs, tmp_path, capsys):
    src, drv = inputs / "src.png", inputs / "drv.mp4"
    csv_path = tmp_path / "pairs.csv"
    base = ["animate", "--pairs", str(csv_path), "--output", str(tmp_path / "out"), "--dry-run"]
    csv_path.write_text(f"\ufeffsource,driving\n{src},{drv}\n", encoding="utf-8")  # Excel's "CSV UTF-8"
    from mraa.cli import build_parser
    from mraa.cli.animate import plan_jobs

    jobs, _ = plan_jobs(build_parser().parse_args(base))
    assert [(j.source, j.driving) for j in jobs] == [(src, drv)]
    csv_path.write_text(f"source,driving\n{src},{drv},extra\n", encoding="utf-8")
    assert "line 2: 3 fields but the header names 2 columns" in one_line_error(base, capsys)


# ----------------------------------------------------------------------------- 9: bounded memory
def test_gif_output_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(video_io, "MAX_GIF_BYTES", 3 * 32 * 32 * 3)  # three 32x32 frames
    out = tmp_path / "a.gif"
    with pytest.raises(MRAAError, match=r"at most 3 frames .*write \.mp4"):
        write_video(out, [np.zeros((32, 32, 3), np.uint8)] * 4, fps=10)
    assert not out.exists() and not list(tmp_path.iterdir())
    write_video(out, [np.zeros((32, 32, 3), np.uint8)] * 3, fps=10)
    assert out.exists()


def test_animate_refuses_a_gif_too_large_for_memory(inputs, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(video_io, "MAX_GIF_BYTES", 2 * 64 * 64 * 3)  # two frames of the tiny model
    argv = ["animate", "--source", str(inputs / "src.png"), "--driving", str(inputs / "drv.mp4"),
            "--output", str(tmp_path / "a.gif"), "--checkpoint", str(inputs / "ck.pth"), "--quiet"]  # fmt: skip
    assert "write .mp4 or .webm instead" in one_line_error(argv, capsys)
    assert not list(tmp_path.iterdir())


def test_app_paste_back_size_is_capped(inputs, tiny_cfg, tiny_models, tmp_path):
    from mraa.animate import Animator
    from mraa.app import AnimationService, Limits

    write_image(
        tmp_path / "big.png", np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    )
    animator = Animator(tiny_models, tiny_cfg.animate_params, config=tiny_cfg)
    service = AnimationService(animator, tmp_path / "work", Limits(max_output_side=64))
    with pytest.raises(MRAAError, match="larger than the app writes"):
        service.animate(tmp_path / "big.png", inputs / "drv.mp4", "relative", output_size="1000x1000")
    result = service.animate(tmp_path / "big.png", inputs / "drv.mp4", "relative", paste_back=True)
    assert probe_video(result.video).size == (48, 64)  # 160x120 scaled to 64 on the longer side
    assert any("scaled down" in note for note in result.notes)


# ----------------------------------------------------------------------------- 10: the rest of the list
CASES = {
    "swap-feather-huge": (
        ["swap", "--parts", "1", "--feather", "1e9"],
        "--feather must be a number of pixels",
    ),
    "animate-fps-huge": (["animate", "--fps", "1e9"], "--fps must be positive and at most 1000"),
    "reconstruct-fps-huge": (["reconstruct", "--fps", "1e9"], "--fps must be positive and at most 1000"),
    "animate-bomb-source": (["animate", "--source", "{in}/bomb.png"], "is too large"),
    "animate-output-folder-is-a-file": (
        ["animate", "--output", "{in}/src.png/a.mp4"],
        "is a file, not a folder",
    ),
    "segment-output-folder-is-a-file": (
        ["segment", "--output", "{in}/src.png/seg"],
        "is a file, not a folder",
    ),
    "animate-onnx-dir-is-a-file": (
        ["animate", "--backend", "onnxruntime", "--onnx-dir", "{in}/src.png"],
        "ONNX folder",
    ),  # fmt: skip
    "crop-tiny-source": (["crop", "--source", "{in}/tiny.png"], "1x1 pixels"),
    "info-empty-config": (["info", "--config", "{in}/empty.yaml"], "is empty"),
    "prepare-shot-threshold-nan": (["prepare", "--shot-threshold", "nan"], "shot_threshold must be a finite"),
    "train-scales-empty": (["train", "--set", "train_params.scales=[]"], "train_params.scales"),
    "train-frame-shape-huge": (
        ["train", "--set", "dataset_params.frame_shape=[100000,100000,3]"],
        "frame_shape must be",
    ),  # fmt: skip
    "train-milestones-unsorted": (
        ["train", "--set", "train_params.epoch_milestones=[90,60]"],
        "increasing order",
    ),  # fmt: skip
}
BASE = {
    "animate": ["--source", "{in}/src.png", "--driving", "{in}/drv.mp4", "--output", "{out}/a.mp4", "--quiet",
                "--checkpoint", "{in}/ck.pth"],
    "swap": ["--source", "{in}/src.png", "--driving", "{in}/drv.mp4", "--output", "{out}/s.mp4", "--quiet"],
    "segment": ["--input", "{in}/src.png", "--output", "{out}/seg", "--quiet"],
    "reconstruct": ["--data", "{in}/data", "--checkpoint", "{in}/ck.pth", "--quiet"],
    "crop": ["--source", "{in}/src.png", "--driving", "{in}/drv.mp4"],
    "info": ["{in}/ck.pth"],
    "prepare": ["-i", "{in}/drv.mp4", "-o", "{out}/ds", "--no-progress"],
    "train": ["--config", "{in}/tiny.yaml", "--data", "{in}/data", "--log-dir", "{out}/log", "--no-progress"],
}  # fmt: skip


def _argv(command: list[str], inp: Path, out: Path) -> list[str]:
    """``command``'s own options, then the base options it does not override."""
    name, own = command[0], command[1:]
    base = BASE[name]
    argv = [name, *own]
    i = 0
    while i < len(base):  # base options are flag/value pairs, or lone flags
        flag = base[i]
        takes_value = i + 1 < len(base) and not base[i + 1].startswith("-")
        if flag not in own:
            argv += base[i : i + 2] if takes_value else [flag]
        i += 2 if takes_value else 1
    return [a.replace("{in}", str(inp)).replace("{out}", str(out)) for a in argv]


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_values_give_one_line_errors(inputs, tmp_path, case, capsys):
    if not (inputs / "bomb.png").exists():
        (inputs / "bomb.png").write_bytes(png_header(40000, 20000))  # 800 Mpixels announced in 45 bytes
        (inputs / "empty.yaml").write_text("# nothing here\n")
    command, message = CASES[case]
    out = tmp_path / "out"
    out.mkdir()
    line = one_line_error(_argv(command, inputs, out), capsys)
    assert message in line, line
    assert not any(out.iterdir()), f"{case}: wrote {list(out.iterdir())}"


def test_reconstruct_lists_unreadable_and_mixed_size_videos_as_skipped(inputs, tmp_path, capsys):
    import json

    out = tmp_path / "rec"
    argv = ["reconstruct", "--data", str(inputs / "data"), "--checkpoint", str(inputs / "ck.pth"), "--out",
            str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert [video["name"] for video in report["videos"]] == ["good.mp4"]
    skipped = " | ".join(report["skipped"])
    assert len(report["skipped"]) == 2 and "text.mp4" in skipped and "mixed" in skipped, skipped
    assert "different sizes" in skipped


def test_config_checks_in_one_place(tmp_path):
    from mraa.config import apply_overrides, load_config

    cfg = load_config(ROOT / "configs" / "tiny.yaml")
    for override, message in [
        ("dataset_params.frame_shape=[100000,100000,3]", "between 8 and 4096"),
        ("train_params.scales=[]", "at least one scale"),
        ("train_avd_params.epoch_milestones=[25,20]", "increasing order"),
    ]:
        with pytest.raises(MRAAError, match=message):
            apply_overrides(cfg, [override])
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(MRAAError, match="is empty"):
        load_config(tmp_path / "empty.yaml")
    assert os.path.getsize(tmp_path / "empty.yaml") == 0
