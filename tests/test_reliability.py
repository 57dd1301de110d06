"""Bad inputs and faults, every command: a non-zero exit, one line on stderr, no traceback, no output, inputs intact.

The inputs are made here (a source image, a driving video with audio, a dataset, a tiny checkpoint, and broken
files); the model is the one shipped with mraa (64x64), and most bad inputs fail before it is loaded.
``docs/reliability.md`` lists what is tested here and which test covers each defect of issue 17.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

from mraa.cli import main
from mraa.data import video_io
from mraa.data.video_io import VideoWriter, iter_video, probe_video, read_image, write_image, write_video
from mraa.errors import MRAAError

from .conftest import tmpfs

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


# ----------------------------------------------------------------------------- inputs
@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """inp/ (inputs, good and broken) and out/ (an empty folder for outputs)."""
    import torch

    from mraa.checkpoint import save_checkpoint
    from mraa.config import load_config, save_config
    from mraa.models import build_models

    from .conftest import ROOT

    root = tmp_path_factory.mktemp("reliability")
    inp, out = root / "inp", root / "out"
    inp.mkdir()
    out.mkdir()
    rng = np.random.default_rng(0)
    frames = [np.full((64, 64, 3), 40 * i, np.uint8) for i in range(4)]
    write_image(inp / "src.png", rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    write_video(inp / "silent.mp4", frames, fps=10)
    subprocess.run(
        [FFMPEG, "-y", "-loglevel", "error", "-i", str(inp / "silent.mp4"), "-f", "lavfi", "-i",
         "sine=frequency=440:duration=0.4", "-c:v", "copy", "-c:a", "aac", "-shortest", str(inp / "drv.mp4")],
        check=True,
    )  # fmt: skip
    write_image(inp / "tiny.png", np.zeros((1, 1, 3), np.uint8))
    write_image(inp / "photo.jpg", rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    write_image(inp / "wide.png", rng.integers(0, 255, (40, 64, 3), dtype=np.uint8))
    (inp / "garbage.png").write_bytes(rng.integers(0, 255, 500, dtype=np.uint8).tobytes())
    (inp / "empty.mp4").write_bytes(b"")
    (inp / "text.mp4").write_text("not a video\n")
    data = (inp / "drv.mp4").read_bytes()
    (inp / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (inp / "mixed").mkdir()
    write_image(inp / "mixed" / "000000.png", frames[0])
    write_image(inp / "mixed" / "000001.png", frames[1][:40, :48])
    (inp / "emptydir").mkdir()
    video_io.write_frame_folder(inp / "frames", frames)
    for split in ("train", "test"):
        (inp / "data" / split).mkdir(parents=True)
        write_video(inp / "data" / split / "a.mp4", frames, fps=10)
    os.link(inp / "drv.mp4", out / "hardlink.mp4")  # a hard link to an input, in the output folder
    (out / "symlink.mp4").symlink_to(inp / "drv.mp4")
    cfg = load_config(ROOT / "configs" / "tiny.yaml")
    torch.manual_seed(0)
    save_checkpoint(inp / "ck.pth", build_models(cfg.model_params), cfg)
    save_config(cfg, inp / "tiny.yaml")
    (out / "export").mkdir()
    save_config(cfg, out / "export" / "config.yaml")  # an input that sits where export writes
    return root


def _snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` (hidden ones too) with its content hash ("dir" for folders)."""
    listing = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            listing[os.path.relpath(os.path.join(dirpath, name), root)] = "dir"
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_symlink():
                listing[str(path.relative_to(root))] = f"-> {os.readlink(path)}"
            else:
                listing[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return listing


# ----------------------------------------------------------------------------- the suite
IN, OUT = "{inp}", "{out}"
ANIMATE = [
    "animate",
    "--source",
    f"{IN}/src.png",
    "--driving",
    f"{IN}/drv.mp4",
    "--output",
    f"{OUT}/a.mp4",
    "--quiet",
]
SWAP = ["swap", "--source", f"{IN}/src.png", "--driving", f"{IN}/drv.mp4", "--parts", "1", "--output",
        f"{OUT}/s.mp4", "--quiet"]  # fmt: skip
SEGMENT = ["segment", "--input", f"{IN}/src.png", "--output", f"{OUT}/seg", "--quiet"]
RECONSTRUCT = ["reconstruct", "--data", f"{IN}/data", "--checkpoint", f"{IN}/ck.pth", "--quiet"]
PREPARE = ["prepare", "-i", f"{IN}/drv.mp4", "-o", f"{OUT}/ds", "--no-progress", "--shot-threshold", "0"]
SYNTH = ["synth", "--out", f"{OUT}/syn", "--num-train", "1", "--num-test", "1", "--size", "16", "--frames", "2",
         "--quiet"]  # fmt: skip
EXPORT = ["export", "--checkpoint", f"{IN}/ck.pth", "--config", f"{IN}/tiny.yaml", "--output", f"{OUT}/exp"]


def _with(argv: list[str], **changes: str | None) -> list[str]:
    """``argv`` with options replaced (``driving="x"``), removed (None) or appended (not present)."""
    argv = list(argv)
    for key, value in changes.items():
        flag = "--" + key.rstrip("_").replace("_", "-")
        flag = {"--i": "-i", "--o": "-o"}.get(flag, flag)
        if flag in argv:
            index = argv.index(flag)
            if value is None:
                del argv[index : index + 2]
            else:
                argv[index + 1] = value
        elif value is not None:
            argv += [flag] + ([] if value == "" else [value])
    return argv


CASES = {
    # animate: unreadable, wrong or tiny inputs; outputs that would destroy inputs or each other; bad values
    "animate-missing-source": (_with(ANIMATE, source=f"{IN}/nope.png"), "source not found"),
    "animate-missing-driving": (_with(ANIMATE, driving=f"{IN}/nope.mp4"), "driving not found"),
    "animate-garbage-source": (_with(ANIMATE, source=f"{IN}/garbage.png"), "cannot read image"),
    # a folder of sources (batch mode) that holds none
    "animate-dir-source": (_with(ANIMATE, source=f"{IN}/emptydir"), "no source images"),
    "animate-tiny-source": (_with(ANIMATE, source=f"{IN}/tiny.png"), "1x1 pixels"),
    "animate-empty-driving": (_with(ANIMATE, driving=f"{IN}/empty.mp4"), "cannot read video"),
    "animate-text-driving": (_with(ANIMATE, driving=f"{IN}/text.mp4"), "cannot read video"),
    "animate-truncated-driving": (_with(ANIMATE, driving=f"{IN}/truncated.mp4"), "cannot read video"),
    "animate-jpeg-driving": (_with(ANIMATE, driving=f"{IN}/photo.jpg"), "still image, not a video"),
    "animate-wide-png-driving": (_with(ANIMATE, driving=f"{IN}/wide.png"), "single 64x40 image, not a video"),
    "animate-mixed-folder": (_with(ANIMATE, driving=f"{IN}/mixed"), "must have the same size"),
    "animate-empty-folder": (_with(ANIMATE, driving=f"{IN}/emptydir"), "no image frames"),
    "animate-output-is-driving": (_with(ANIMATE, output=f"{IN}/drv.mp4"), "same file as --driving"),
    "animate-output-hardlink": (_with(ANIMATE, output=f"{OUT}/hardlink.mp4"), "same file as --driving"),
    "animate-output-symlink": (_with(ANIMATE, output=f"{OUT}/symlink.mp4"), "same file as --driving"),
    "animate-output-is-source": (_with(ANIMATE, output=f"{IN}/src.png"), None),
    "animate-visualize-is-output": (_with(ANIMATE, visualize=f"{OUT}/a.mp4"), "are the same file"),
    "animate-output-in-input-folder": (
        _with(ANIMATE, driving=f"{IN}/frames", output=f"{IN}/frames/x.mp4"),
        "inside --driving",
    ),  # fmt: skip
    "animate-output-missing-dir": (_with(ANIMATE, output=f"{OUT}/no/a.mp4"), "does not exist"),
    "animate-output-bad-suffix": (_with(ANIMATE, output=f"{OUT}/a.txt"), "unsupported output format"),
    "animate-batch-0": (_with(ANIMATE, batch_size="0"), "--batch-size"),
    "animate-fps-0": (_with(ANIMATE, fps="0"), "--fps"),
    "animate-fps-nan": (_with(ANIMATE, fps="nan"), "frame rate"),
    "animate-bad-background": (_with(ANIMATE, background="sideways"), "background"),
    # swap
    "swap-parts-empty-item": (_with(SWAP, parts="1,,2"), "empty item"),
    "swap-parts-trailing-comma": (_with(SWAP, parts="1,"), "empty item"),
    "swap-parts-zero": (_with(SWAP, parts="0"), "background"),
    "swap-parts-word": (_with(SWAP, parts="arm"), "expected indices"),
    "swap-parts-too-big": (_with(SWAP, parts="99"), "does not exist"),
    "swap-pick-is-source": (
        _with(SWAP, pick=f"{IN}/src.png", output=None, parts=None),
        "same file as --source",
    ),
    "swap-output-is-driving": (_with(SWAP, output=f"{IN}/drv.mp4"), "same file as --driving"),
    "swap-tiny-source": (_with(SWAP, source=f"{IN}/tiny.png"), "1x1 pixels"),
    "swap-jpeg-driving": (_with(SWAP, driving=f"{IN}/photo.jpg"), "still image"),
    "swap-feather-negative": (_with(SWAP, feather="-1"), "--feather"),
    "swap-fps-nan": (_with(SWAP, fps="nan"), "--fps"),
    "swap-missing-labels": (_with(SWAP, labels=f"{IN}/nope"), "labels not found"),
    # segment
    "segment-missing-input": (_with(SEGMENT, input=f"{IN}/nope.png"), "not found"),
    "segment-garbage-input": (_with(SEGMENT, input=f"{IN}/garbage.png"), "cannot read image"),
    "segment-tiny-input": (_with(SEGMENT, input=f"{IN}/tiny.png"), "1x1 pixels"),
    "segment-output-is-input-folder": (_with(SEGMENT, input=f"{IN}/frames", output=f"{IN}/frames"), "inside"),
    "segment-output-is-a-file": (_with(SEGMENT, output=f"{IN}/photo.jpg"), None),
    "segment-alpha-2": (_with(SEGMENT, alpha="2"), "--alpha"),
    "segment-mixed-folder": (_with(SEGMENT, input=f"{IN}/mixed"), "same size"),
    # reconstruct
    "reconstruct-missing-data": (_with(RECONSTRUCT, data=f"{IN}/nope"), "not found"),
    "reconstruct-out-in-test": (_with(RECONSTRUCT, out=f"{IN}/data/test"), "inside --data"),
    "reconstruct-out-is-data": (_with(RECONSTRUCT, out=f"{IN}/data"), "same file as --data"),
    "reconstruct-akd-no-extractor": (_with(RECONSTRUCT, metrics="akd"), "--metrics akd needs --keypoints"),
    "reconstruct-keypoints-module": (
        _with(RECONSTRUCT, metrics="akd", keypoints="os:system"),
        "--allow-custom-extractor",
    ),  # fmt: skip
    "reconstruct-keypoints-signature": (
        _with(RECONSTRUCT, metrics="akd", keypoints="os:system", allow_custom_extractor=""),
        "no arguments",
    ),  # fmt: skip
    "reconstruct-unknown-metric": (_with(RECONSTRUCT, metrics="fid"), "unknown metric"),
    "reconstruct-videos-0": (_with(RECONSTRUCT, num_videos="0"), "--num-videos"),
    "reconstruct-fps-nan": (_with(RECONSTRUCT, fps="nan"), "--fps"),
    "reconstruct-no-test": (_with(RECONSTRUCT, data=f"{IN}/emptydir"), None),
    # prepare
    "prepare-missing-input": (_with(PREPARE, i=f"{IN}/nope.mp4"), "input not found"),
    "prepare-missing-boxes": (_with(PREPARE, boxes="/missing/boxes"), "boxes folder not found"),
    "prepare-mixed-folder": (_with(PREPARE, i=f"{IN}/mixed"), "must have the same size"),
    "prepare-unreadable": (_with(PREPARE, i=f"{IN}/text.mp4"), "no input gave a chunk"),
    "prepare-nothing-kept": (_with(PREPARE, min_frames="1000"), "no input gave a chunk"),
    "prepare-size-huge": (_with(PREPARE, size="100000"), "size must be between"),
    "prepare-workers-0": (_with(PREPARE, workers="0"), "--workers"),
    "prepare-output-is-file": (_with(PREPARE, o=f"{IN}/photo.jpg"), "is a file"),
    # synth
    "synth-num-train-0": (_with(SYNTH, num_train="0"), "--num-train"),
    "synth-size-huge": (_with(SYNTH, size="100000"), "--size"),
    "synth-frames-huge": (_with(SYNTH, size="2048", frames="1000"), "GiB"),
    "synth-frames-1": (_with(SYNTH, frames="1"), "--frames"),
    "synth-fps-0": (_with(SYNTH, fps="0"), "--fps"),
    "synth-preview-not-png": (_with(SYNTH, preview=f"{OUT}/p.jpg"), "--preview"),
    "synth-out-is-file": (_with(SYNTH, out=f"{IN}/photo.jpg"), "is a file"),
    "synth-motion-nan": (_with(SYNTH, motion_speed="nan"), "--motion-speed"),
    "synth-bad-figure": (_with(SYNTH, figures="dragon"), "figure"),
    # export
    "export-missing-checkpoint": (_with(EXPORT, checkpoint=f"{IN}/nope.pth"), None),
    "export-garbage-checkpoint": (_with(EXPORT, checkpoint=f"{IN}/garbage.png"), None),
    "export-config-in-output": (
        _with(EXPORT, config=f"{OUT}/export/config.yaml", output=f"{OUT}/export"),
        "same file as --config",
    ),  # fmt: skip
    "export-output-is-file": (_with(EXPORT, output=f"{IN}/photo.jpg"), "is a file"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_fails_cleanly(base, case, capsys):
    argv, message = CASES[case]
    argv = [a.replace(IN, str(base / "inp")).replace(OUT, str(base / "out")) for a in argv]
    before = _snapshot(base)
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("INFO: ")]
    assert code != 0, f"{case}: exit status 0"
    assert "Traceback" not in err and "unexpected" not in err, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    if message:
        assert message in lines[0], lines[0]
    assert _snapshot(base) == before, f"{case}: files changed"


def test_suite_size():
    """The count quoted in docs/reliability.md."""
    commands = {argv[0] for argv, _ in CASES.values()}
    assert len(CASES) == 74 and commands == {"animate", "swap", "segment", "reconstruct", "prepare", "synth",
                                              "export"}  # fmt: skip


# ----------------------------------------------------------------------------- defect 1: full disk, failed encoder
def _fake_ffmpeg(tmp_path: Path, body: str) -> str:
    script = tmp_path / "ffmpeg.sh"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


@pytest.mark.parametrize(
    "body, message",
    [
        ("cat > /dev/null; exit 1", r"encoder failed \(exit status 1"),  # fails at the end
        ("head -c 100 > /dev/null; exit 1", "encoder"),  # dies early: the pipe breaks
        # "succeeds" but leaves a truncated file (a full disk that ffmpeg did not notice)
        (f'{FFMPEG} "$@" && for last; do :; done; head -c 300 "$last" > "$last.t" && mv "$last.t" "$last"',
         "cannot be read back"),
    ],
)  # fmt: skip
def test_writer_checks_the_encoder_and_the_file(tmp_path, monkeypatch, body, message):
    monkeypatch.setattr(video_io, "_ffmpeg_exe", lambda: _fake_ffmpeg(tmp_path, body))
    out = tmp_path / "out"
    out.mkdir()
    rng = np.random.default_rng(0)
    with pytest.raises(MRAAError, match=message), VideoWriter(out / "o.mp4", 10) as writer:
        for _ in range(20):
            writer.write(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    assert list(out.iterdir()) == []


def test_writer_fails_when_the_audio_mux_fails(base, tmp_path, monkeypatch):
    body = f'case "$*" in *aac*) echo "Disk quota exceeded" >&2; exit 1;; esac; exec {FFMPEG} "$@"'
    monkeypatch.setattr(video_io, "_ffmpeg_exe", lambda: _fake_ffmpeg(tmp_path, body))
    with pytest.raises(MRAAError, match="copying the audio.*Disk quota exceeded"):
        write_video(
            tmp_path / "o.mp4", [np.zeros((16, 16, 3), np.uint8)] * 3, 10, audio_from=base / "inp/drv.mp4"
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ffmpeg.sh"]


def test_writer_reports_a_frame_count_mismatch(tmp_path, monkeypatch):
    monkeypatch.setattr(video_io, "count_video_frames", lambda path: 2)
    with pytest.raises(MRAAError, match="has 2 frames, 3 were sent"):
        write_video(tmp_path / "o.mp4", [np.zeros((16, 16, 3), np.uint8)] * 3, 10)
    assert list(tmp_path.iterdir()) == []


def test_enospc_while_writing_an_image(tmp_path, monkeypatch):
    import errno

    import imageio.v3 as iio

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(iio, "imwrite", full)
    with pytest.raises(MRAAError, match="No space left on device"):
        write_image(tmp_path / "o.png", np.zeros((8, 8, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def small_disk(tmp_path):
    """An 8 KiB tmpfs (needs root and mount; skipped otherwise)."""
    with tmpfs(tmp_path / "disk", "8k") as mount:
        yield mount


def test_animate_on_a_full_disk_writes_nothing(base, small_disk, capsys):
    """Defect 1: a full disk during `mraa animate` used to print 'wrote ...' and exit 0 with a broken file."""
    frames = [np.random.default_rng(i).integers(0, 255, (64, 64, 3), dtype=np.uint8) for i in range(12)]
    write_video(small_disk.parent / "noise.mp4", frames, fps=10)  # the result is well over 8 KiB
    argv = ["animate", "--source", str(base / "inp/src.png"), "--driving", str(small_disk.parent / "noise.mp4"),
            "--output", str(small_disk / "a.mp4"), "--quiet"]  # fmt: skip
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "wrote" not in captured.out
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: ")
    assert list(small_disk.iterdir()) == []


# ----------------------------------------------------------------------------- defect 2: the output guard
def test_guard_same_file_links_and_nesting(tmp_path):
    from mraa.safety import check_outputs, same_file

    video = tmp_path / "v.mp4"
    video.write_bytes(b"x")
    os.link(video, tmp_path / "hard.mp4")
    (tmp_path / "soft.mp4").symlink_to(video)
    assert same_file(video, tmp_path / "hard.mp4") and same_file(video, tmp_path / "soft.mp4")
    assert same_file(video, tmp_path / "." / "v.mp4") and not same_file(video, tmp_path / "w.mp4")
    check_outputs(inputs=[video], outputs=[tmp_path / "w.mp4"])
    for bad in (tmp_path / "hard.mp4", tmp_path / "soft.mp4", tmp_path / "sub" / ".." / "v.mp4"):
        with pytest.raises(MRAAError, match="same file as input"):
            check_outputs(inputs=[video], outputs=[bad])
    with pytest.raises(MRAAError, match="inside input"):
        check_outputs(inputs=[tmp_path], outputs=[tmp_path / "test" / "a.mp4"])
    with pytest.raises(MRAAError, match="same file"):
        check_outputs(outputs={"--output": tmp_path / "o.mp4", "--visualize": tmp_path / "o.mp4"})
    with pytest.raises(MRAAError, match="would be replaced"):
        check_outputs(inputs=[tmp_path / "labels" / "0.png"], outputs=[tmp_path / "labels"])


# ----------------------------------------------------------------------------- defects 3, 4: image modes and EXIF
def test_cmyk_jpeg_keeps_its_colours(tmp_path):
    """Defect 3: a CMYK JPEG used to come out pure white (K read as alpha)."""
    from PIL import Image

    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[:, :8] = (200, 30, 30)
    rgb[:, 8:] = (20, 40, 180)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    image = read_image(tmp_path / "cmyk.jpg")
    assert image.shape == (16, 16, 3)
    assert np.abs(image.astype(int) - rgb).mean() < 12


@pytest.mark.parametrize("mode", ["P", "PA", "LA", "I;16", "I", "F", "1", "YCbCr", "RGBA", "L"])
def test_every_pil_mode_reads_as_rgb(tmp_path, mode):
    from PIL import Image

    gray = np.tile(np.linspace(0, 255, 16).astype(np.uint8), (16, 1))
    base = Image.fromarray(np.dstack([gray] * 3))
    if mode == "I;16":
        image = Image.fromarray(gray.astype(np.uint16) * 257)
    elif mode == "I":
        image = Image.fromarray(gray.astype(np.int32) * 257, mode="I")
    elif mode == "F":
        image = Image.fromarray(gray.astype(np.float32) / 255.0, mode="F")
    elif mode in ("P", "PA"):
        image = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=16).convert(mode)
    else:
        image = base.convert(mode)
    suffix = {"F": ".tiff", "I": ".tiff", "PA": ".tiff", "YCbCr": ".jpg"}.get(mode, ".png")
    image.save(tmp_path / f"x{suffix}")
    out = read_image(tmp_path / f"x{suffix}")
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    tolerance = 130 if mode == "1" else 6  # 1-bit keeps only black and white
    assert np.abs(out[..., 0].astype(int) - gray).mean() < tolerance, (mode, out[0, :, 0])


def test_exif_orientation_is_applied(tmp_path):
    """Defect 4: phone photos (EXIF orientation) used to be read sideways."""
    from PIL import Image

    stored = np.zeros((20, 40, 3), np.uint8)  # 40 wide, 20 high as stored, with a white left edge
    stored[:, :4] = 255
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    image.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    upright = read_image(tmp_path / "phone.jpg")
    assert upright.shape == (40, 20, 3)  # portrait
    assert upright[:4].mean() > 200 and upright[-4:].mean() < 50  # the left edge is now the top


# ----------------------------------------------------------------------------- defect 5: variable frame rate
def _vfr_video(path: Path, times: list[float]) -> None:
    """An H.264 mp4 whose frame i (grey level 10 * i) is shown at ``times[i]`` seconds, with audio."""
    from fractions import Fraction

    import av

    silent = path.with_name("vfr-silent.mp4")
    with av.open(str(silent), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.time_base = Fraction(1, 1000)
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 10 * i, np.uint8), format="rgb24")
            frame.pts = round(t * 1000)
            frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    subprocess.run(
        [FFMPEG, "-y", "-loglevel", "error", "-i", str(silent), "-f", "lavfi", "-i", "sine=duration=3",
         "-c:v", "copy", "-c:a", "aac", "-shortest", str(path)], check=True,
    )  # fmt: skip


def test_variable_frame_rate_is_resampled_by_timestamps(tmp_path, caplog):
    """Defect 5: frames of a VFR video were written one per output frame, drifting from the audio."""
    times = [0.0, 0.1, 0.2, 0.3, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8]  # a one-second freeze after frame 3
    _vfr_video(tmp_path / "vfr.mp4", times)
    fps = probe_video(tmp_path / "vfr.mp4").fps
    with caplog.at_level(logging.WARNING):
        frames = list(iter_video(tmp_path / "vfr.mp4"))
    assert caplog.text.count("variable frame rate") == 1
    levels = [int(round(f.mean() / 10)) for f in frames]
    for n, level in enumerate(levels):  # output frame n shows the input frame nearest to n / fps
        expected = int(np.argmin([abs(t - n / fps) for t in times]))
        assert abs(level - expected) <= 1 and levels == sorted(levels), (n, levels)
    assert len(frames) == pytest.approx((times[-1] + 0.1) * fps, abs=1.5)
    # and constant-rate videos pass one to one, without a warning
    caplog.clear()
    write_video(tmp_path / "cfr.mp4", [np.full((16, 16, 3), 10 * i, np.uint8) for i in range(7)], fps=12)
    with caplog.at_level(logging.WARNING):
        assert len(list(iter_video(tmp_path / "cfr.mp4"))) == 7
    assert "variable" not in caplog.text


def test_resample_by_time_rules():
    frames = [(t, np.full((1, 1, 3), i, np.uint8)) for i, t in enumerate([0.0, 0.1, 0.55, 0.6])]
    out = [int(f[0, 0, 0]) for f in video_io.resample_by_time(frames, 10.0)]
    assert out == [0, 1, 1, 1, 2, 2, 3]  # slots 0.0 | 0.1 0.2 0.3 | 0.4 0.5 | 0.6
    fast = [(i / 20, np.full((1, 1, 3), i, np.uint8)) for i in range(6)]  # 20 fps read at 10 fps
    assert [int(f[0, 0, 0]) for f in video_io.resample_by_time(fast, 10.0)] == [0, 2, 4]


# ----------------------------------------------------------------------------- defect 6: prepare makes nothing
def test_prepare_failures_leave_no_folder(base, tmp_path, capsys):
    """Defect 6: prepare exited 0 with an empty dataset, crashed on mixed sizes, left folders behind."""
    for extra in (["-i", str(base / "inp/mixed")], ["-i", str(base / "inp/drv.mp4"), "--boxes", "/missing"],
                  ["-i", str(base / "inp/drv.mp4"), "--min-frames", "1000"]):  # fmt: skip
        assert main(["prepare", "-o", str(tmp_path / "ds"), "--no-progress", *extra]) == 2
        assert not (tmp_path / "ds").exists()
    err = capsys.readouterr().err
    assert "000001.png is 48x40 but the first frame" in err and "AssertionError" not in err
    assert "drv.mp4: " in err  # the per-input reason


# ----------------------------------------------------------------------------- defect 7: values
def test_values_are_checked_before_anything_is_written(tmp_path, capsys):
    """Defect 7 (the parts of it outside training): each of these used to exit 0 or die of MemoryError."""
    out = tmp_path / "syn"
    assert main(["synth", "--out", str(out), "--num-train", "0", "--quiet"]) == 2
    assert main(["synth", "--out", str(out), "--size", "100000", "--quiet"]) == 2
    assert not out.exists()
    err = capsys.readouterr().err
    assert "--num-train must be at least 1" in err and "--size must be between 16 and 2048" in err
    from mraa.evaluation import load_keypoint_extractor

    with pytest.raises(MRAAError, match="allowed explicitly"):
        load_keypoint_extractor("os:system")


# ----------------------------------------------------------------------------- defect 8: stale temporaries
def test_stale_temps_are_removed_at_the_next_start(tmp_path):
    """Defect 8: a SIGKILL during a write left a hidden temporary file that nothing removed."""
    from mraa.atomic import PROCESS_START, lock_temp, release_temp, remove_stale_temps
    from mraa.safety import check_outputs

    old = PROCESS_START - 3600
    stale = [tmp_path / ".mraa-tmp-out-abcd1234.mp4", tmp_path / ".mraa-tmp-out-x_y9z8w7-audio.mp4",
             tmp_path / ".mraa-tmp-out-00000000"]  # fmt: skip
    for path in stale[:2]:
        path.write_bytes(b"partial")
    stale[2].mkdir()
    kept = [tmp_path / ".mraa-tmp-other-abcd1234.mp4", tmp_path / ".gitignore", tmp_path / "out.mp4",
            tmp_path / ".mraa-tmp-out-locked00.mp4", tmp_path / ".mraa-tmp-out-fresh000.mp4"]  # fmt: skip
    for path in kept:
        path.write_bytes(b"x")
    for path in stale + kept[:-1]:
        os.utime(path, (old, old))
    lock = lock_temp(tmp_path / ".mraa-tmp-out-locked00.mp4")  # a writer still at work
    try:
        check_outputs(outputs={"--output": tmp_path / "out.mp4"})
    finally:
        release_temp(lock)
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept)
    assert remove_stale_temps(tmp_path, "other") == [tmp_path / ".mraa-tmp-other-abcd1234.mp4"]


def test_kill_during_a_write_then_rerun(base, tmp_path):
    """A writer killed with SIGKILL leaves its temporary; the next run in that folder removes it."""
    import contextlib
    import signal
    import sys
    import textwrap
    import time

    code = textwrap.dedent(f"""
        import os, signal, numpy as np
        from mraa.data.video_io import VideoWriter
        writer = VideoWriter({str(tmp_path / "a.mp4")!r}, 10)
        writer.write(np.zeros((16, 16, 3), np.uint8))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    child = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    assert child.wait() == -signal.SIGKILL
    with contextlib.suppress(ProcessLookupError):  # and its encoder, as a power loss would
        os.killpg(child.pid, signal.SIGKILL)
    time.sleep(0.2)
    left = [p for p in tmp_path.iterdir() if p.name.startswith(".mraa-tmp-a-")]
    assert len(left) == 1 and not (tmp_path / "a.mp4").exists()
    old = left[0].stat().st_mtime - 3600
    os.utime(left[0], (old, old))  # the killed run started before this one
    argv = ["animate", "--source", str(base / "inp/src.png"), "--driving", str(base / "inp/drv.mp4"),
            "--output", str(tmp_path / "a.mp4"), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4"]
    assert probe_video(tmp_path / "a.mp4").has_audio


# ----------------------------------------------------------------------------- defect 9: tiny source, jpeg driving
def test_tiny_source_and_jpeg_driving_messages(base):
    """Defect 9: a 1x1 source was silently blown up; a --driving JPEG got a message about png strips."""
    from mraa.data.video_io import fit_frame

    with pytest.raises(MRAAError, match="only 1x1 pixels; at least 8x8"):
        fit_frame(read_image(base / "inp/tiny.png"), (64, 64))
    with pytest.raises(MRAAError, match="is a still image, not a video") as info:
        probe_video(base / "inp/photo.jpg")
    assert "png strip" not in str(info.value).split(":")[0]
    with pytest.raises(MRAAError, match="single 64x40 image, not a video"):
        list(iter_video(base / "inp/wide.png"))


def test_segment_writes_all_or_nothing(base, tmp_path, monkeypatch, capsys):
    """A full disk at segment's second file removes the first: no half result."""
    import errno

    real = video_io.write_image

    def full_at_labels(path, image):
        if Path(path).name == "labels.png":
            raise MRAAError(f"cannot write {path}: {os.strerror(errno.ENOSPC)}")
        return real(path, image)

    monkeypatch.setattr(video_io, "write_image", full_at_labels)
    out = tmp_path / "seg"
    argv = ["segment", "--input", str(base / "inp/src.png"), "--output", str(out), "--quiet"]
    assert main(argv) == 2
    assert "No space left" in capsys.readouterr().err
    assert not out.exists()
