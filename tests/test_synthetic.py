"""Tests of the synthetic articulated-video generator and the ``mraa synth`` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.ndimage import binary_dilation

from mraa.cli import main
from mraa.data.synthetic import (
    FIGURE_TYPES,
    TEST_INDEX_OFFSET,
    SynthConfig,
    figure_type,
    iter_videos,
    preview_grid,
    render_video,
    write_dataset,
)
from mraa.data.video_io import read_video
from mraa.errors import MRAAError

SMALL = SynthConfig(size=32, num_frames=6)


class TestRenderVideo:
    def test_shape_dtype_and_parts(self):
        frames, parts = render_video(0, 0, SMALL, return_parts=True)
        assert frames.shape == (6, 32, 32, 3) and frames.dtype == np.uint8
        assert parts.labels.shape == (6, 32, 32)
        assert parts.centers.shape == (6, len(parts.names), 2) and parts.centers.dtype == np.float32
        assert parts.figure == "humanoid" and "head" in parts.names
        assert 0 < parts.labels.max() <= len(parts.names)
        assert (parts.labels == 0).mean() > 0.3  # background is visible
        assert np.array_equal(render_video(0, 0, SMALL), frames)

    def test_deterministic_and_index_dependent(self):
        first = render_video(7, 3, SMALL)
        assert np.array_equal(first, render_video(7, 3, SMALL))
        assert not np.array_equal(first, render_video(7, 3 + len(SMALL.figure_types), SMALL))
        assert not np.array_equal(first, render_video(8, 3, SMALL))

    def test_iter_videos_matches_render_video(self):
        videos = list(iter_videos(3, seed=2, cfg=SMALL, start=5))
        assert len(videos) == 3
        for offset, video in enumerate(videos):
            assert np.array_equal(video, render_video(2, 5 + offset, SMALL))

    def test_figure_types_are_balanced(self):
        cfg = SynthConfig(figure_types=FIGURE_TYPES)
        assert [figure_type(i, cfg) for i in range(8)] == list(FIGURE_TYPES) * 2
        for i, name in enumerate(FIGURE_TYPES):
            _, parts = render_video(1, i, SynthConfig(size=32, num_frames=2, figure_types=FIGURE_TYPES), True)
            assert parts.figure == name

    @pytest.mark.parametrize(
        "figure, limb, reference, minimum_parts",
        [("humanoid", "left_lower_arm", "torso", 10), ("quadruped", "front_near_lower_leg", "body", 12),
         ("snake", "head", "segment_0", 5)],
    )  # fmt: skip
    def test_parts_move_relative_to_the_body(self, figure, limb, reference, minimum_parts):
        cfg = SynthConfig(size=64, num_frames=32, figure_types=(figure,))
        for index in range(2):
            frames, parts = render_video(0, index, cfg, return_parts=True)
            assert len(parts.names) >= minimum_parts
            label = parts.names.index(limb) + 1
            masks = parts.labels == label  # (T, H, W)
            assert masks.any(axis=(1, 2)).mean() > 0.5, "the limb is mostly hidden"
            assert not np.array_equal(parts.labels[0], parts.labels[-1])
            visible = np.flatnonzero(masks.sum(axis=(1, 2)) >= 3)
            ys, xs = np.indices((64, 64))
            area = masks[visible].sum(axis=(1, 2))
            centroids = np.stack(
                [(xs * masks[visible]).sum(axis=(1, 2)), (ys * masks[visible]).sum(axis=(1, 2))], 1
            )
            centroids = centroids / area[:, None]
            assert np.ptp(centroids, axis=0).max() > 3.0  # the limb travels more than 3 pixels
            # articulation, not only global motion: the limb's distance to another part changes
            other = parts.centers[:, parts.names.index(reference)]
            distance = np.linalg.norm(parts.centers[:, label - 1] - other, axis=-1)
            assert np.ptp(distance) > 1.5
            assert np.abs(np.diff(frames.astype(np.float32), axis=0)).mean() > 0.2

    def test_figure_stays_inside_and_fills_the_frame(self):
        cfg = SynthConfig(size=48, num_frames=16, figure_types=FIGURE_TYPES)
        extents = []
        for index in range(12):
            _, parts = render_video(3, index, cfg, return_parts=True)
            figure = parts.labels > 0
            border = np.concatenate([figure[:, 0], figure[:, -1], figure[:, :, 0], figure[:, :, -1]], axis=1)
            assert not border.any(), f"video {index} ({parts.figure}) touches the border"
            rows, cols = figure.any(axis=2), figure.any(axis=1)  # (T, H), (T, W)
            extents.append(max(rows.sum(axis=1).mean(), cols.sum(axis=1).mean()) / cfg.size)
        assert 0.35 < np.mean(extents) < 0.9

    def test_camera_motion_on_and_off(self):
        for probability, moving in ((0.0, False), (1.0, True)):
            cfg = SynthConfig(size=32, num_frames=8, backgrounds=("noise",), camera_motion=probability)
            for index in range(2):
                frames, parts = render_video(5, index, cfg, return_parts=True)
                figure = binary_dilation((parts.labels > 0).any(axis=0), iterations=2)
                background = ~figure  # pixels that never show (an anti-aliased edge of) the figure
                change = np.abs(frames[-1].astype(int) - frames[0].astype(int))[background].max()
                assert (change > 2) == moving, (probability, index, change)

    @pytest.mark.parametrize(
        "kwargs",
        [{"size": 8}, {"num_frames": 1}, {"figure_types": ("dragon",)}, {"figure_types": ()},
         {"camera_motion": 1.5}, {"backgrounds": ("stars",)}, {"fill": (0.9, 0.5)}],
    )  # fmt: skip
    def test_bad_config(self, kwargs):
        with pytest.raises(MRAAError):
            SynthConfig(**kwargs)

    def test_preview_grid(self):
        grid = preview_grid(0, SMALL, num_videos=2, num_columns=3)
        assert grid.shape == (64, 96, 3) and grid.dtype == np.uint8


class TestWriteDataset:
    @pytest.mark.parametrize("fmt", ["mp4", "png"])
    def test_layout_counts_and_readback(self, tmp_path, fmt):
        cfg = SynthConfig(size=32, num_frames=4)
        root = tmp_path / "synth"
        metadata = write_dataset(root, num_train=3, num_test=2, seed=4, cfg=cfg, fmt=fmt, progress=False)
        train, test = sorted((root / "train").iterdir()), sorted((root / "test").iterdir())
        assert len(train) == 3 and len(test) == 2
        assert sorted(p.name for p in root.iterdir()) == ["metadata.json", "test", "train"]
        if fmt == "mp4":
            assert all(p.suffix == ".mp4" for p in train + test)
        else:
            assert all(p.is_dir() and len(list(p.glob("*.png"))) == 4 for p in train + test)
            assert (train[0] / "000000.png").exists()
        on_disk = json.loads((root / "metadata.json").read_text())
        assert on_disk == json.loads(json.dumps(metadata))
        assert on_disk["num_train"] == 3 and on_disk["num_test"] == 2 and on_disk["config"]["size"] == 32
        train_indices = {v["index"] for v in on_disk["videos"] if v["split"] == "train"}
        test_indices = {v["index"] for v in on_disk["videos"] if v["split"] == "test"}
        assert train_indices == {0, 1, 2} and test_indices == {TEST_INDEX_OFFSET, TEST_INDEX_OFFSET + 1}
        video = read_video(train[1])
        assert video.shape == (4, 32, 32, 3)
        error = np.abs(video.astype(np.float32) - render_video(4, 1, cfg).astype(np.float32)).mean()
        assert error < (8.0 if fmt == "mp4" else 1e-6)
        first_test = read_video(test[0]).astype(np.float32)
        assert np.abs(first_test - render_video(4, 0, cfg).astype(np.float32)).mean() > 5.0

    def test_refuses_non_empty_folder_unless_overwrite(self, tmp_path):
        cfg = SynthConfig(size=16, num_frames=2)
        root = tmp_path / "data"
        write_dataset(root, 1, 1, cfg=cfg, fmt="png", progress=False)
        with pytest.raises(MRAAError, match="not empty"):
            write_dataset(root, 2, 0, cfg=cfg, fmt="png", progress=False)
        write_dataset(root, 2, 0, cfg=cfg, fmt="png", progress=False, overwrite=True)
        assert len(list((root / "train").iterdir())) == 2 and not any((root / "test").iterdir())
        assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no staging folder left

    def test_bad_arguments(self, tmp_path):
        with pytest.raises(MRAAError):
            write_dataset(tmp_path / "a", 0, 0, progress=False)
        with pytest.raises(MRAAError):
            write_dataset(tmp_path / "b", 1, 1, fmt="gif", progress=False)
        with pytest.raises(MRAAError):
            write_dataset(tmp_path / "missing" / "c", 1, 1, progress=False)


class TestCLI:
    def test_synth_png(self, tmp_path, capsys):
        out = tmp_path / "ds"
        preview = tmp_path / "preview.png"
        argv = ["synth", "--out", str(out), "--num-train", "2", "--num-test", "1", "--size", "24",
                "--frames", "3", "--format", "png", "--figures", "snake,starfish", "--camera-motion", "1",
                "--seed", "3", "--preview", str(preview)]  # fmt: skip
        assert main(argv) == 0
        assert "wrote 2 train and 1 test videos" in capsys.readouterr().out
        names = sorted(p.name for p in (out / "train").iterdir())
        assert names == ["000000_snake", "000001_starfish"]
        (test_video,) = (out / "test").iterdir()
        assert read_video(test_video).shape == (3, 24, 24, 3)
        assert preview.exists()
        metadata = json.loads((out / "metadata.json").read_text())
        assert metadata["seed"] == 3 and metadata["config"]["figure_types"] == ["snake", "starfish"]
        # a second run into the same folder is refused, unless --overwrite
        assert main(argv[:-2] + ["--quiet"]) == 2
        assert "not empty" in capsys.readouterr().err
        assert main(argv[:-2] + ["--quiet", "--overwrite"]) == 0
        assert capsys.readouterr().out == ""

    def test_synth_mp4(self, tmp_path):
        out = tmp_path / "ds"
        argv = ["synth", "--out", str(out), "--num-train", "1", "--num-test", "1", "--size", "32",
                "--frames", "4", "--quiet"]  # fmt: skip
        assert main(argv) == 0
        assert read_video(out / "train" / "000000_humanoid.mp4").shape == (4, 32, 32, 3)

    def test_synth_motion_options(self, tmp_path):
        out = tmp_path / "ds"
        argv = ["synth", "--out", str(out), "--num-train", "1", "--num-test", "0", "--size", "32",
                "--frames", "6", "--format", "png", "--global-motion", "0", "--motion-speed", "2",
                "--fill", "0.4", "0.6", "--quiet"]  # fmt: skip
        assert main(argv) == 0
        config = json.loads((out / "metadata.json").read_text())["config"]
        assert config["global_motion"] == 0 and config["motion_speed"] == 2 and config["fill"] == [0.4, 0.6]
        cfg = SynthConfig(size=32, num_frames=6, global_motion=0, motion_speed=2, fill=(0.4, 0.6))
        _, parts = render_video(0, 0, cfg, return_parts=True)  # video 0 is a humanoid, part 0 its torso
        assert np.allclose(parts.centers[:, 0], parts.centers[0, 0], atol=1e-4)  # no global motion
        assert np.abs(parts.centers[:, 1:] - parts.centers[:1, 1:]).max() > 0.5  # the limbs move
        _, moving = render_video(0, 0, SynthConfig(size=32, num_frames=6), return_parts=True)
        assert np.abs(moving.centers[:, 0] - moving.centers[0, 0]).max() > 0.05

    @pytest.mark.parametrize(
        "extra, message",
        [(["--size", "8"], "size"), (["--frames", "1"], "frames"),
         (["--figures", "humanoid,dragon"], "dragon"), (["--camera-motion", "2"], "camera"),
         (["--num-train", "0", "--num-test", "0"], "videos"), (["--global-motion", "-1"], "global_motion"),
         (["--motion-speed", "-0.5"], "motion_speed"), (["--fill", "0.9", "0.5"], "fill")],
    )  # fmt: skip
    def test_synth_errors(self, tmp_path, capsys, extra, message):
        assert main(["synth", "--out", str(tmp_path / "ds"), "--quiet", *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and message in err and "\n" not in err
        assert not (tmp_path / "ds").exists()
