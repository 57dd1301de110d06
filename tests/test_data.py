"""Training data layer: FramesDataset (mp4 / frame folders / png strips), repeater, pairs, augmentation."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from mraa.config import AugmentationParams, CropParams, FlipParams, JitterParams, ResizeParams
from mraa.data.augmentation import AllAugmentationTransform, ProcessLocalRng, hue_rotation_matrix
from mraa.data.frames_dataset import DatasetRepeater, FramesDataset, PairedDataset
from mraa.data.video_io import write_frame_folder, write_image, write_video
from mraa.errors import MRAAError

SHAPE = (16, 16, 3)


def ramp_frames(num_frames: int, height: int, width: int) -> list[np.ndarray]:
    """Flat gray frames whose level rises with time, so frame order is visible after mp4 coding."""
    return [np.full((height, width, 3), 30 + 25 * t, dtype=np.uint8) for t in range(num_frames)]


def make_split(folder: Path, videos: dict[str, tuple[str, int]]) -> None:
    """Write ``name -> (format, num_frames)`` videos into ``folder``; formats mp4, folder, strip."""
    folder.mkdir(parents=True)
    for name, (fmt, num_frames) in videos.items():
        if fmt == "mp4":
            write_video(folder / name, ramp_frames(num_frames, 24, 32))
        elif fmt == "folder":
            write_frame_folder(folder / name, ramp_frames(num_frames, 24, 32))
        else:  # square frames side by side
            write_image(folder / name, np.concatenate(ramp_frames(num_frames, 24, 24), axis=1))


def tiny_folders(folder: Path, names: list[str], num_frames: int = 2) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        write_frame_folder(folder / name, ramp_frames(num_frames, 8, 8))


@pytest.fixture(scope="module")
def mixed_root(tmp_path_factory) -> Path:
    """train/: one video per format plus a corrupt mp4, a 1-frame mp4 and a stray text file; test/: 3 videos."""
    root = tmp_path_factory.mktemp("mixed")
    make_split(root / "train", {"a#1.mp4": ("mp4", 8), "a#2": ("folder", 6), "b#1.png": ("strip", 5)})
    (root / "train" / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(3000))
    write_video(root / "train" / "single.mp4", ramp_frames(1, 24, 32))
    (root / "train" / "notes.txt").write_text("not a video")
    make_split(root / "test", {"t1.mp4": ("mp4", 6), "t2": ("folder", 4), "t3.png": ("strip", 3)})
    return root


def check_frame(frame: torch.Tensor) -> None:
    assert frame.shape == (3, *SHAPE[:2])
    assert frame.dtype == torch.float32
    assert float(frame.min()) >= 0.0 and float(frame.max()) <= 1.0


# ----------------------------------------------------------------------------------------------- FramesDataset
class TestFramesDataset:
    def test_reads_every_format_and_skips_bad_videos_with_one_warning(self, mixed_root, caplog):
        with caplog.at_level(logging.WARNING, logger="mraa.data.frames_dataset"):
            dataset = FramesDataset(mixed_root, frame_shape=SHAPE)
            for _ in range(3):
                for index in range(len(dataset)):
                    dataset[index]
        assert sorted(dataset.videos) == ["a#1.mp4", "a#2", "b#1.png"]
        assert len(dataset) == 3
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 2, warnings
        assert sum("corrupt.mp4" in w for w in warnings) == 1
        assert sum("single.mp4" in w and "1 frame" in w for w in warnings) == 1

    def test_train_items_are_two_ordered_frames_of_one_video(self, mixed_root):
        dataset = FramesDataset(mixed_root, frame_shape=SHAPE)
        for index in range(len(dataset)):
            for _ in range(4):
                item = dataset[index]
                assert set(item) == {"source", "driving", "name"}
                assert item["name"] == dataset.videos[index]
                check_frame(item["source"])
                check_frame(item["driving"])
                # flat frames survive resizing; distinct frames in time order: the driving frame is brighter
                assert float(item["source"].std()) < 0.02
                assert float(item["source"].mean()) + 0.05 < float(item["driving"].mean())

    def test_uncached_partial_decoding_matches_the_cache(self, mixed_root):
        cached = FramesDataset(mixed_root, frame_shape=SHAPE, random_seed=3)
        uncached = FramesDataset(mixed_root, frame_shape=SHAPE, random_seed=3, cache_mb=0)
        index = cached.videos.index("a#1.mp4")
        for _ in range(5):
            a, b = cached[index], uncached[index]
            assert torch.equal(a["source"], b["source"]) and torch.equal(a["driving"], b["driving"])

    def test_same_seed_same_items(self, mixed_root):
        first = [FramesDataset(mixed_root, frame_shape=SHAPE, random_seed=1)[1]["driving"] for _ in range(2)]
        assert torch.equal(first[0], first[1])

    def test_set_epoch_makes_an_epoch_reproducible(self, mixed_root):
        dataset = FramesDataset(mixed_root, frame_shape=SHAPE)

        def epoch_items(epoch: int) -> torch.Tensor:
            dataset.set_epoch(epoch)
            return torch.stack([dataset[i % 3]["source"] for i in range(9)])

        first = epoch_items(3)
        assert not torch.equal(first, epoch_items(4))
        assert torch.equal(first, epoch_items(3))

    def test_test_items_are_whole_videos(self, mixed_root):
        dataset = FramesDataset(mixed_root, frame_shape=SHAPE, is_train=False)
        lengths = {"t1.mp4": 6, "t2": 4, "t3.png": 3}
        assert len(dataset) == 3
        for index in range(3):
            item = dataset[index]
            assert set(item) == {"video", "name"}
            video = item["video"]
            assert video.shape == (3, lengths[item["name"]], *SHAPE[:2])
            assert video.dtype == torch.float32
            means = video.mean(dim=(0, 2, 3))
            assert torch.all(means[1:] > means[:-1])

    def test_video_unreadable_at_read_time_is_replaced(self, tmp_path, caplog):
        tiny_folders(tmp_path / "train", ["good"], num_frames=3)
        write_frame_folder(tmp_path / "train" / "broken", ramp_frames(2, 8, 8))
        (tmp_path / "train" / "broken" / "000001.png").write_bytes(b"not a png at all")
        dataset = FramesDataset(tmp_path, frame_shape=(8, 8, 3))
        assert dataset.videos == ["broken", "good"]  # the header scan only counts files
        with caplog.at_level(logging.WARNING, logger="mraa.data.frames_dataset"):
            names = [dataset[0]["name"] for _ in range(5)]
        assert names == ["good"] * 5
        assert len([r for r in caplog.records if "broken" in r.getMessage()]) == 1

    def test_container_without_frame_count_is_checked_when_read(self, tmp_path, caplog):
        (tmp_path / "train").mkdir()
        write_video(tmp_path / "train" / "ok.mkv", ramp_frames(5, 24, 32))  # mkv headers carry no count
        write_video(tmp_path / "train" / "one.mkv", ramp_frames(1, 24, 32))
        dataset = FramesDataset(tmp_path, frame_shape=SHAPE)
        assert dataset.videos == ["ok.mkv", "one.mkv"]
        with caplog.at_level(logging.WARNING, logger="mraa.data.frames_dataset"):
            items = [dataset[index % 2] for index in range(6)]
        assert [item["name"] for item in items] == ["ok.mkv"] * 6
        assert all(item["source"].mean() < item["driving"].mean() for item in items)
        assert len([r for r in caplog.records if "one.mkv" in r.getMessage()]) == 1

    def test_only_bad_videos_raise_naming_the_folder(self, tmp_path):
        split = tmp_path / "train"
        split.mkdir()
        write_frame_folder(split / "broken", ramp_frames(2, 8, 8))
        (split / "broken" / "000000.png").write_bytes(b"garbage")
        dataset = FramesDataset(tmp_path, frame_shape=(8, 8, 3))
        with pytest.raises(MRAAError, match="no readable video"):
            dataset[0]
        (split / "broken" / "000001.png").unlink()
        with pytest.raises(MRAAError, match=str(split)):
            FramesDataset(tmp_path, frame_shape=(8, 8, 3))

    def test_missing_folders_raise(self, tmp_path):
        with pytest.raises(MRAAError, match="not found"):
            FramesDataset(tmp_path / "nope")
        tiny_folders(tmp_path / "train", ["v1", "v2"])
        with pytest.raises(MRAAError, match="test/"):
            FramesDataset(tmp_path, is_train=False)
        with pytest.raises(MRAAError, match="frame_shape"):
            FramesDataset(tmp_path, frame_shape=(8, 8, 1))

    def test_root_without_splits_is_split_80_20(self, tmp_path):
        names = [f"{identity}#{k}" for identity in "abcde" for k in range(2)]
        tiny_folders(tmp_path, names)
        train = FramesDataset(tmp_path, frame_shape=(8, 8, 3))
        test = FramesDataset(tmp_path, frame_shape=(8, 8, 3), is_train=False)
        assert (len(train), len(test)) == (8, 2)
        assert sorted(train.videos + test.videos) == sorted(names)
        assert train.videos == FramesDataset(tmp_path, frame_shape=(8, 8, 3)).videos
        by_id = FramesDataset(tmp_path, frame_shape=(8, 8, 3), id_sampling=True)
        by_id_test = FramesDataset(tmp_path, frame_shape=(8, 8, 3), id_sampling=True, is_train=False)
        train_ids = {name.split("#")[0] for name in by_id.videos}
        test_ids = {name.split("#")[0] for name in by_id_test.videos}
        assert len(train_ids) == 4 and len(test_ids) == 1 and not train_ids & test_ids

    def test_id_sampling_visits_identities(self, tmp_path):
        tiny_folders(tmp_path / "train", ["x#1", "x#2", "x#3", "y#1"])
        dataset = FramesDataset(tmp_path, frame_shape=(8, 8, 3), id_sampling=True)
        assert len(dataset) == 2
        x_names = {dataset[0]["name"] for _ in range(30)}
        assert x_names == {"x#1", "x#2", "x#3"}
        assert {dataset[1]["name"] for _ in range(5)} == {"y#1"}

    def test_augmentation_keeps_frame_shape(self, mixed_root):
        params = AugmentationParams(
            flip_param=FlipParams(horizontal_flip=True, time_flip=True),
            jitter_param=JitterParams(brightness=0.1, contrast=0.1, saturation=0.1, hue=0.1),
            resize_param=ResizeParams(ratio=(0.6, 1.4)),
        )
        dataset = FramesDataset(mixed_root, frame_shape=SHAPE, augmentation_params=params)
        for index in range(len(dataset)):
            item = dataset[index]
            check_frame(item["source"])
            check_frame(item["driving"])

    def test_dataloader_batch(self, mixed_root):
        params = AugmentationParams(flip_param=FlipParams(horizontal_flip=True, time_flip=True))
        dataset = FramesDataset(mixed_root, frame_shape=SHAPE, augmentation_params=params)
        loader = DataLoader(DatasetRepeater(dataset, 2), batch_size=4, shuffle=True, num_workers=0)
        batch = next(iter(loader))
        assert batch["source"].shape == (4, 3, *SHAPE[:2]) and batch["driving"].dtype == torch.float32
        assert len(batch["name"]) == 4 and set(batch["name"]) <= set(dataset.videos)


# ----------------------------------------------------------------------------------------------- wrappers
def test_dataset_repeater(mixed_root):
    dataset = FramesDataset(mixed_root, frame_shape=SHAPE, is_train=False)
    repeated = DatasetRepeater(dataset, 3)
    assert len(repeated) == 9
    assert [repeated[i]["name"] for i in range(9)] == [dataset.videos[i % 3] for i in range(9)]
    with pytest.raises(MRAAError):
        DatasetRepeater(dataset, 0)


def test_paired_dataset_random_pairs(mixed_root):
    dataset = FramesDataset(mixed_root, frame_shape=SHAPE, is_train=False)
    paired = PairedDataset(dataset, number_of_pairs=4, seed=0)
    assert len(paired) == 4
    assert len(set(paired.pairs)) == 4 and all(s != d for s, d in paired.pairs)
    assert paired.pairs == PairedDataset(dataset, number_of_pairs=4, seed=0).pairs
    assert len(PairedDataset(dataset, number_of_pairs=100)) == 6  # all ordered pairs of 3 videos
    item = paired[0]
    assert set(item) == {"driving_video", "source_video", "driving_name", "source_name"}
    source, driving = paired.pairs[0]
    assert (item["source_name"], item["driving_name"]) == (dataset.videos[source], dataset.videos[driving])
    assert item["source_video"].shape[0] == 3 and item["driving_video"].shape[2:] == SHAPE[:2]


def test_paired_dataset_pairs_list(mixed_root, tmp_path, caplog):
    pairs_csv = tmp_path / "pairs.csv"
    pairs_csv.write_text("source,driving\nt1.mp4,t2\nt3,t1\nmissing.mp4,t1.mp4\n")
    dataset = FramesDataset(mixed_root, frame_shape=SHAPE, is_train=False, pairs_list=pairs_csv)
    with caplog.at_level(logging.WARNING, logger="mraa.data.frames_dataset"):
        paired = PairedDataset(dataset, number_of_pairs=10)
    assert any("1 of 3 pairs" in r.getMessage() for r in caplog.records)
    names = [(paired[i]["source_name"], paired[i]["driving_name"]) for i in range(len(paired))]
    assert names == [("t1.mp4", "t2"), ("t3.png", "t1.mp4")]
    assert len(PairedDataset(dataset, number_of_pairs=1)) == 1
    pairs_csv.write_text("a,b\nt1.mp4,t2\n")
    with pytest.raises(MRAAError, match="source,driving"):
        PairedDataset(dataset, number_of_pairs=1)


# ----------------------------------------------------------------------------------------------- augmentation
def random_clip(num_frames: int = 3, height: int = 12, width: int = 10, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.random((height, width, 3), dtype=np.float32) for _ in range(num_frames)]


def outcomes(transform, clip, trials: int = 16) -> list[list[np.ndarray]]:
    return [transform(clip, rng=np.random.default_rng(seed)) for seed in range(trials)]


class TestAugmentation:
    def test_horizontal_flip_mirrors_every_frame_or_none(self):
        clip = random_clip()
        flipped = 0
        for out in outcomes(AllAugmentationTransform(flip_param=FlipParams(horizontal_flip=True)), clip):
            mirrored = [np.array_equal(o, c[:, ::-1]) for o, c in zip(out, clip)]
            same = [np.array_equal(o, c) for o, c in zip(out, clip)]
            assert all(mirrored) or all(same)
            flipped += all(mirrored)
        assert 0 < flipped < 16

    def test_time_flip_reverses_the_clip(self):
        clip = random_clip(num_frames=4)
        reversed_count = 0
        for out in outcomes(AllAugmentationTransform(flip_param={"time_flip": True}), clip):
            is_reversed = all(np.array_equal(o, c) for o, c in zip(out, clip[::-1]))
            assert is_reversed or all(np.array_equal(o, c) for o, c in zip(out, clip))
            reversed_count += is_reversed
        assert 0 < reversed_count < 16

    def test_zero_jitter_and_no_params_are_identity(self):
        clip = random_clip()
        for transform in (
            AllAugmentationTransform(jitter_param=JitterParams(0.0, 0.0, 0.0, 0.0)),
            AllAugmentationTransform(jitter_param={"brightness": 0.0, "hue": 0.0}),
            AllAugmentationTransform(),
        ):
            assert transform.is_identity
            for out in outcomes(transform, clip, trials=3):
                assert all(np.array_equal(o, c) for o, c in zip(out, clip))

    def test_jitter_is_the_same_for_every_frame(self):
        frame = random_clip(num_frames=1)[0]
        transform = AllAugmentationTransform(jitter_param=JitterParams(0.4, 0.4, 0.4, 0.3))
        for out in outcomes(transform, [frame, frame.copy(), frame.copy()], trials=6):
            assert np.array_equal(out[0], out[1]) and np.array_equal(out[0], out[2])
            assert not np.allclose(out[0], frame, atol=1e-3)
            assert out[0].dtype == np.float32 and out[0].min() >= 0.0 and out[0].max() <= 1.0

    def test_hue_rotation_properties(self):
        colours = np.random.default_rng(0).random((50, 3)).astype(np.float32)
        np.testing.assert_allclose(colours @ hue_rotation_matrix(0.0), colours, atol=1e-6)
        np.testing.assert_allclose(colours @ hue_rotation_matrix(1.0), colours, atol=1e-5)
        rotated = colours @ hue_rotation_matrix(0.25)
        luma = np.array([0.299, 0.587, 0.114], dtype=np.float32)
        np.testing.assert_allclose(rotated @ luma, colours @ luma, atol=1e-5)  # brightness is kept
        assert np.abs(rotated - colours).max() > 0.1
        gray = np.full((1, 3), 0.4, dtype=np.float32)
        np.testing.assert_allclose(gray @ hue_rotation_matrix(0.3), gray, atol=1e-6)

    def test_crop_size_and_consistency(self):
        ramp = np.arange(16 * 20 * 3, dtype=np.float32).reshape(16, 20, 3) / (16 * 20 * 3)
        transform = AllAugmentationTransform(crop_param=CropParams(size=(10, 12)))
        offsets = set()
        for out in outcomes(transform, [ramp, ramp.copy()]):
            assert out[0].shape == (10, 12, 3) and np.array_equal(out[0], out[1])
            top, left = np.argwhere(ramp[..., 0] == out[0][0, 0, 0])[0]  # ramp values are unique
            np.testing.assert_array_equal(out[0], ramp[top : top + 10, left : left + 12])
            offsets.add((top, left))
        assert len(offsets) > 1
        small = AllAugmentationTransform(crop_param={"size": [10, 12]})([np.ones((8, 8, 3), np.float32)])
        assert small[0].shape == (10, 12, 3) and np.all(small[0] == 1.0)  # edge padding

    def test_resize_output_sizes(self):
        clip = random_clip(height=16, width=20)
        half = AllAugmentationTransform(resize_param=ResizeParams(ratio=(0.5, 0.5)))(clip)
        assert all(frame.shape == (8, 10, 3) for frame in half)
        sizes = set()
        for out in outcomes(AllAugmentationTransform(resize_param={"ratio": [0.5, 1.5]}), clip):
            assert len({frame.shape for frame in out}) == 1
            height, width, _ = out[0].shape
            assert 8 <= height <= 24 and 10 <= width <= 30
            sizes.add(out[0].shape)
        assert len(sizes) > 1
        both = AllAugmentationTransform(resize_param={"ratio": [0.7, 1.3]}, crop_param={"size": [12, 12]})
        assert all(frame.shape == (12, 12, 3) for out in outcomes(both, clip, trials=4) for frame in out)

    def test_seeded_rng_is_reproducible(self):
        clip = random_clip()
        transform = AllAugmentationTransform(
            flip_param={"horizontal_flip": True}, jitter_param={"hue": 0.5}, crop_param={"size": [8, 8]}
        )
        a = transform(clip, rng=np.random.default_rng(7))
        b = transform(clip, rng=np.random.default_rng(7))
        assert all(np.array_equal(x, y) for x, y in zip(a, b))

    def test_bad_params_raise(self):
        with pytest.raises(MRAAError, match="hue"):
            AllAugmentationTransform(jitter_param={"hue": 0.7})
        with pytest.raises(MRAAError, match="unknown"):
            AllAugmentationTransform(flip_param={"vertical_flip": True})
        with pytest.raises(MRAAError, match="ratio"):
            AllAugmentationTransform(resize_param={"ratio": [1.2, 0.8]})


class _RngDraws(Dataset):
    def __init__(self) -> None:
        self.rng = ProcessLocalRng(0)

    def __len__(self) -> int:
        return 4

    def __getitem__(self, idx: int) -> int:
        return int(self.rng.get().integers(1 << 62))


def test_dataloader_workers_draw_different_numbers():
    loader = DataLoader(_RngDraws(), batch_size=1, num_workers=2)
    draws = [int(batch) for batch in loader]
    assert len(set(draws)) == 4
