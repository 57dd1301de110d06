"""Path-friendly API, animate_file and batch `mraa animate`, on the shipped 64x64 model with short clips."""

import logging
import subprocess

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from PIL import Image

from mraa.animate import DEFAULT_MODEL_DIR, Animator
from mraa.cli import main
from mraa.data.video_io import probe_video, read_image, read_video, write_image, write_video
from mraa.errors import MRAAError

SHIPPED_SOURCE = DEFAULT_MODEL_DIR / "source.png"
SHIPPED_DRIVING = DEFAULT_MODEL_DIR / "driving.mp4"


@pytest.fixture(scope="module")
def animator():
    return Animator.from_checkpoint(batch_size=4)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """Sources (3 images, one of another size) and 2 short driving videos (one with audio, 12 fps)."""
    root = tmp_path_factory.mktemp("pipeline")
    frames = read_video(SHIPPED_DRIVING)
    source = read_image(SHIPPED_SOURCE)
    images = root / "images"
    images.mkdir()
    write_image(images / "a.png", source)
    write_image(images / "b.png", np.ascontiguousarray(source[:, ::-1]))
    write_image(images / "c.jpg", np.asarray(Image.fromarray(source).resize((96, 80))))
    videos = root / "videos"
    videos.mkdir()
    write_video(root / "silent.mp4", frames[:5], fps=12)
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(root / "silent.mp4"), "-f",
         "lavfi", "-i", "sine=frequency=440:duration=1", "-c:v", "copy", "-c:a", "aac", "-shortest",
         str(videos / "x.mp4")],
        check=True,
    )  # fmt: skip
    write_video(videos / "y.mp4", frames[10:14], fps=25)
    (root / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    return root


# ----------------------------------------------------------------------------- Python API inputs
def test_paths_arrays_pil_and_tensors_give_the_same_frames(animator, media):
    from mraa.inputs import driving_tensors

    driving = media / "videos" / "y.mp4"
    by_path = animator.animate(
        str(media / "images" / "a.png"), driving, mode="relative"
    )  # was an AttributeError
    assert by_path.shape == (4, 3, 64, 64)
    array = read_image(media / "images" / "a.png")
    tensor = torch.from_numpy(array).permute(2, 0, 1).float() / 255
    expected = animator.encode_source(media / "images" / "a.png").image
    for source in (
        array,
        Image.fromarray(array),
        tensor,
        tensor[None],
        torch.from_numpy(array).permute(2, 0, 1),
    ):
        assert torch.allclose(animator.encode_source(source).image, expected, atol=1e-6)
    frames = read_video(driving)
    stream = torch.cat(list(driving_tensors(driving, (64, 64))))
    as_tensor = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    for form in (frames, list(frames), [Image.fromarray(f) for f in frames], as_tensor, list(as_tensor)):
        assert torch.allclose(torch.cat(list(driving_tensors(form, (64, 64)))), stream, atol=1e-6)
    assert torch.allclose(animator.animate(array, frames, mode="relative"), by_path, atol=1e-6)


def test_wrong_size_inputs_are_resized_with_one_log_line(animator, media, caplog):
    big_source = torch.rand(3, 256, 256)
    big_driving = torch.rand(5, 3, 128, 128)
    with caplog.at_level(logging.INFO, logger="mraa.inputs"):
        out = animator.animate(big_source, big_driving, mode="standard")
    assert out.shape == (5, 3, 64, 64)
    messages = [r.getMessage() for r in caplog.records if r.name == "mraa.inputs"]
    assert len(messages) == 2, messages  # one for the source, one for the whole driving stream
    assert "256x256 resized to the model's 64x64" in messages[0]
    assert messages[1].startswith("driving: 128x128")
    with caplog.at_level(logging.INFO, logger="mraa.inputs"):
        caplog.clear()
        animator.animate(media / "images" / "c.jpg", media / "videos" / "y.mp4", mode="standard")
    assert [r.getMessage() for r in caplog.records if r.name == "mraa.inputs"] == [
        "source: 96x80 resized to the model's 64x64"
    ]


@pytest.mark.parametrize(
    "source, driving, message",
    [
        (torch.rand(64, 64, 3), torch.rand(2, 3, 64, 64), "channels last"),
        (torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64), "one image"),
        (torch.rand(1, 1, 3, 64, 64), torch.rand(2, 3, 64, 64), "(C, H, W)"),
        (np.zeros((3, 64, 64), np.uint8), torch.rand(2, 3, 64, 64), "(H, W, 3)"),
        (torch.rand(3, 64, 64), np.zeros((64, 64, 3), np.uint8), "driving: expected frames"),
        (torch.rand(3, 64, 64), torch.rand(2, 4, 64, 64), "3 channels"),
        ("missing.png", torch.rand(2, 3, 64, 64), "image not found"),
        (torch.rand(3, 64, 64), "missing.mp4", "video not found"),
    ],
)
def test_bad_inputs_raise_clear_errors(animator, source, driving, message):
    with pytest.raises(MRAAError, match=message.replace("(", r"\(").replace(")", r"\)")):
        animator.animate(source, driving, mode="standard")


def test_encoded_source_is_reused(animator, media):
    state = animator.encode_source(media / "images" / "b.png")
    driving = media / "videos" / "y.mp4"
    assert torch.allclose(
        animator.animate(state, driving, mode="avd"),
        animator.animate(media / "images" / "b.png", driving, "avd"),
    )


# ----------------------------------------------------------------------------- animate_file
def test_animate_file_keeps_fps_and_audio(animator, media, tmp_path):
    out = tmp_path / "out.mp4"
    result = animator.animate_file(
        media / "images" / "a.png", media / "videos" / "x.mp4", out, visualize=True, progress=False
    )
    assert result.frames == 5 and result.fps == pytest.approx(12) and result.has_audio
    assert result.mode == "avd" and result.output == out
    info = probe_video(out)
    assert info.fps == pytest.approx(12) and info.has_audio and read_video(out).shape == (5, 64, 64, 3)
    assert result.visualization == tmp_path / "out_visualization.mp4"
    assert read_video(result.visualization).shape[0] == 5
    silent = animator.animate_file(
        media / "images" / "a.png", media / "videos" / "y.mp4", tmp_path / "o.gif", fps=5, progress=False
    )
    assert not silent.has_audio and silent.fps == 5 and read_video(tmp_path / "o.gif").shape[0] == 4


def test_animate_file_errors_leave_nothing(animator, media, tmp_path):
    with pytest.raises(MRAAError, match="cannot read video"):
        animator.animate_file(media / "images" / "a.png", media / "corrupt.mp4", tmp_path / "o.mp4")
    with pytest.raises(MRAAError, match="same file as input"):
        animator.animate_file(
            media / "images" / "a.png", media / "videos" / "y.mp4", media / "videos" / "y.mp4"
        )

    def failing_frames():
        yield torch.rand(3, 64, 64)
        yield torch.rand(3, 64, 64)
        raise MRAAError("decoder broke")

    with pytest.raises(MRAAError, match="decoder broke"):
        animator.animate_file(
            media / "images" / "a.png", failing_frames(), tmp_path / "o.mp4", progress=False
        )
    assert list(tmp_path.iterdir()) == []


def test_writer_thread_errors_propagate(animator, media, tmp_path, monkeypatch):
    from mraa.data import video_io

    def broken_write(self, frame):
        raise OSError("disk full")

    monkeypatch.setattr(video_io.VideoWriter, "write", broken_write)
    with pytest.raises(OSError, match="disk full"):
        animator.animate_file(media / "images" / "a.png", media / "videos" / "y.mp4", tmp_path / "o.mp4")
    assert list(tmp_path.iterdir()) == []


def test_progress_bar_has_the_total(animator, media, tmp_path, capsys):
    animator.animate_file(media / "images" / "a.png", media / "videos" / "y.mp4", tmp_path / "o.mp4")
    err = capsys.readouterr().err
    assert "4/4" in err and "frame" in err


# ----------------------------------------------------------------------------- batch CLI
def _batch(media, out, *extra):
    """The issue's use case: a folder of 3 images x a folder of 2 videos."""
    argv = ["animate", "--source", str(media / "images"), "--driving", str(media / "videos"), "--output", str(out),
            "--quiet", *extra]  # fmt: skip
    return main(argv)


def test_batch_folder_of_images_times_two_videos(media, tmp_path, capsys, monkeypatch):
    encoded = []
    original = Animator.encode_source
    monkeypatch.setattr(
        Animator, "encode_source", lambda self, *a, **k: encoded.append(a[0]) or original(self, *a, **k)
    )
    out = tmp_path / "out"
    assert _batch(media, out) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{s}__{d}.mp4" for s in "abc" for d in "xy")
    assert read_video(out / "c__x.mp4").shape == (5, 64, 64, 3) and probe_video(out / "c__x.mp4").has_audio
    assert len(encoded) == 3  # each source once, for both drivings
    text = capsys.readouterr().out
    assert "[6/6]" in text and "summary: 6 done, 0 skipped, 0 failed" in text
    # existing outputs are skipped, --overwrite redoes them
    before = (out / "a__x.mp4").stat().st_mtime_ns
    (out / "b__y.mp4").unlink()
    assert _batch(media, out) == 0
    assert "summary: 1 done, 5 skipped, 0 failed" in capsys.readouterr().out
    assert (out / "a__x.mp4").stat().st_mtime_ns == before and (out / "b__y.mp4").is_file()
    argv = ["animate", "--source", str(media / "images" / "a.png"), "--driving", str(media / "videos" / "x.mp4"),
            "--output", str(out), "--quiet", "--overwrite", "--smooth", "ema:0.5"]  # fmt: skip
    assert main(argv) == 0
    assert "summary: 1 done, 0 skipped, 0 failed" in capsys.readouterr().out
    assert (out / "a__x.mp4").stat().st_mtime_ns != before


def test_batch_failing_pair_is_reported_and_the_rest_finish(media, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["animate", "--source", str(media / "images" / "a.png"), str(media / "images" / "b.png"),
            "--driving", str(media / "corrupt.mp4"), str(media / "videos" / "y.mp4"), "--output", str(out),
            "--quiet"]  # fmt: skip
    assert main(argv) == 1
    captured = capsys.readouterr()
    failures = [line for line in captured.err.splitlines() if "failed" in line]
    assert len(failures) == 2 and all("corrupt.mp4: failed: cannot read video" in f for f in failures)
    assert sorted(p.name for p in out.iterdir()) == ["a__y.mp4", "b__y.mp4"]
    assert "summary: 2 done, 0 skipped, 2 failed" in captured.out


def test_pairs_csv(media, tmp_path, capsys):
    (tmp_path / "res").mkdir()
    csv_path = tmp_path / "pairs.csv"
    csv_path.write_text(
        "source,driving,output,mode,crop\n"
        f"{media / 'images' / 'a.png'},{media / 'videos' / 'y.mp4'},res/one.mp4,standard,\n"
        f"{media / 'images' / 'c.jpg'},{media / 'videos' / 'x.mp4'},,,true\n"
    )
    assert main(["animate", "--pairs", str(csv_path), "--output", str(tmp_path / "auto"), "--quiet"]) == 0
    assert read_video(tmp_path / "res" / "one.mp4").shape[0] == 4
    assert read_video(tmp_path / "auto" / "c__x.mp4").shape[0] == 5
    assert "summary: 2 done" in capsys.readouterr().out
    csv_path.write_text("source,driving\nnothing.png,y.mp4\n")
    assert main(["animate", "--pairs", str(csv_path), "--quiet"]) == 2
    assert "no output" in capsys.readouterr().err
    y = media / "videos" / "y.mp4"
    csv_path.write_text(f"source,driving,output\n{media / 'images' / 'a.png'},{y},{y}\n")
    assert main(["animate", "--pairs", str(csv_path), "--quiet"]) == 2
    assert "refusing to overwrite an input" in capsys.readouterr().err
    assert read_video(y).shape[0] == 4


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--output", "{videos}/x.mp4"], "pairs need --output to be a folder"),
        (["--output", "{videos}", "--visualize", "v.mp4"], "--visualize PATH is for a single pair"),
        (["--output", "{out}", "--smooth", "wobble"], "--smooth: invalid smoothing 'wobble'"),
        (["--output", "{out}", "--background", "sideways"], "--background: unknown background"),
    ],
)
def test_batch_option_errors(media, tmp_path, capsys, extra, message):
    extra = [e.format(videos=media / "videos", out=tmp_path / "o") for e in extra]
    argv = [
        "animate",
        "--source",
        str(media / "images"),
        "--driving",
        str(media / "videos"),
        "--quiet",
        *extra,
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_single_output_equal_to_input_is_refused(media, capsys):
    argv = ["animate", "--source", str(media / "images" / "a.png"), "--driving", str(media / "videos" / "y.mp4"),
            "--output", str(media / "videos" / "y.mp4"), "--quiet"]  # fmt: skip
    assert main(argv) == 2
    assert "refusing to overwrite an input" in capsys.readouterr().err
    assert read_video(media / "videos" / "y.mp4").shape[0] == 4


def test_frame_counts_for_the_progress_total(media, tmp_path):
    from mraa.inputs import count_frames

    frames = read_video(media / "videos" / "y.mp4")
    write_video(tmp_path / "d.gif", frames, fps=10)
    write_video(tmp_path / "folder", frames)
    assert count_frames(media / "videos" / "y.mp4") == 4
    assert count_frames(tmp_path / "d.gif") == 4
    assert count_frames(tmp_path / "folder") == 4
    assert count_frames(torch.rand(7, 3, 8, 8)) == 7 and count_frames(list(frames)) == 4
    assert count_frames(iter(frames)) is None  # unknown: the bar shows no total
    assert count_frames(media / "corrupt.mp4") is None


def test_inputs_expand_from_files_folders_and_globs(media, tmp_path):
    from mraa.cli.animate import _expand

    images = media / "images"
    assert [p.name for p in _expand([str(images)], "source")] == ["a.png", "b.png", "c.jpg"]
    assert [p.name for p in _expand([str(images / "*.png")], "source")] == ["a.png", "b.png"]
    assert _expand([str(media / "videos" / "y.mp4"), str(media / "videos")], "driving")[1:] == [
        media / "videos" / "x.mp4",
        media / "videos" / "y.mp4",
    ]
    write_video(tmp_path / "frames", read_video(media / "videos" / "y.mp4"))
    assert _expand([str(tmp_path / "frames")], "driving") == [tmp_path / "frames"]  # one frame-folder video
    with pytest.raises(MRAAError, match="matches no files"):
        _expand([str(images / "*.webp")], "source")
    with pytest.raises(MRAAError, match="no source images"):
        _expand([str(media / "videos")], "source")


def test_tensors_keep_their_size_when_the_config_has_no_frame_shape(tiny_cfg, tiny_models):
    """The official YAMLs leave frame_shape null (ted384's models run at 384): tensors are not resized."""
    import dataclasses

    cfg = dataclasses.replace(
        tiny_cfg, dataset_params=dataclasses.replace(tiny_cfg.dataset_params, frame_shape=None)
    )
    animator = Animator(tiny_models, cfg.animate_params, config=cfg)
    out = animator.animate(torch.rand(1, 3, 128, 128), torch.rand(2, 3, 128, 128), mode="relative")
    assert out.shape == (2, 3, 128, 128)
    assert tuple(animator.encode_source(np.zeros((100, 80, 3), np.uint8)).image.shape[2:]) == (256, 256)
