"""Image/video reading and writing: conversions, formats, atomic writers, audio."""

import logging

import numpy as np
import pytest

from mraa.data.video_io import (
    VideoWriter,
    fit_frame,
    iter_video,
    probe_video,
    read_image,
    read_video,
    to_rgb_uint8,
    write_frame_folder,
    write_image,
    write_video,
)
from mraa.errors import MRAAError


def test_conversions_warn_where_information_is_dropped(caplog):
    gray = np.arange(16, dtype=np.uint8).reshape(4, 4)
    assert to_rgb_uint8(gray).shape == (4, 4, 3)
    deep = (np.arange(16, dtype=np.uint16) * 4000).reshape(4, 4)
    rgba = np.dstack([np.full((4, 4, 3), 200, np.uint8), np.full((4, 4), 0, np.uint8)])
    with caplog.at_level(logging.WARNING):
        assert to_rgb_uint8(deep).dtype == np.uint8
        out = to_rgb_uint8(rgba)
    assert "16-bit" in caplog.text and "transparency" in caplog.text
    assert (out == 255).all()  # fully transparent pixels composite on white
    assert to_rgb_uint8(np.ones((2, 2, 3), np.float32)).max() == 255


@pytest.mark.parametrize("suffix", [".mp4", ".gif", ".webm", ".mov", ""])
def test_formats_round_trip(tmp_path, suffix):
    rng = np.random.default_rng(0)
    frames = [np.full((32, 48, 3), rng.integers(0, 255, 3), np.uint8) for _ in range(5)]
    path = write_video(tmp_path / f"v{suffix}", frames, fps=10)
    video = read_video(path)
    assert video.shape == (5, 32, 48, 3)
    assert np.abs(video.astype(int) - np.stack(frames)).mean() < 6
    if suffix:
        assert probe_video(path).fps == pytest.approx(10, rel=0.05)


def test_png_strip_and_folder(tmp_path):
    frames = [np.full((8, 8, 3), i * 40, np.uint8) for i in range(4)]
    write_image(tmp_path / "strip.png", np.concatenate(frames, axis=1))
    assert [f[0, 0, 0] for f in iter_video(tmp_path / "strip.png")] == [0, 40, 80, 120]
    write_frame_folder(tmp_path / "folder", frames)
    assert read_video(tmp_path / "folder").shape == (4, 8, 8, 3)


def test_read_image_returns_a_writable_array(tmp_path):
    write_image(tmp_path / "a.png", np.full((6, 5, 3), 7, np.uint8))
    image = read_image(tmp_path / "a.png")  # torch.from_numpy warns on read-only arrays
    assert image.flags.writeable and image.shape == (6, 5, 3) and (image == 7).all()


def test_errors(tmp_path):
    with pytest.raises(MRAAError, match="not found"):
        read_image(tmp_path / "x.png")
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(MRAAError, match="cannot read"):
        read_video(tmp_path / "bad.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MRAAError, match="no image frames"):
        read_video(tmp_path / "empty")
    with pytest.raises(MRAAError, match="does not exist"):
        VideoWriter(tmp_path / "missing" / "o.mp4", 10)


def test_writer_is_atomic(tmp_path):
    with pytest.raises(RuntimeError), VideoWriter(tmp_path / "o.mp4", 10) as writer:
        writer.write(np.zeros((8, 8, 3), np.uint8))
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_fit_frame_crop_and_resize():
    frame = np.zeros((40, 80, 3), np.uint8)
    frame[:, 20:60] = 255  # the centred square
    out = fit_frame(frame, (16, 16), crop=True)
    assert out.shape == (16, 16, 3) and out.min() == 255
    assert fit_frame(frame, (16, 16)).shape == (16, 16, 3)
