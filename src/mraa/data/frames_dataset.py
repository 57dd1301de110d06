"""Training and evaluation datasets of videos: what ``mraa train --data ROOT`` reads.

Dataset layout::

    ROOT/
      train/            videos used for training
        <video>         one entry per video, in any of these forms:
                          * a video file: .mp4 .mov .webm .avi .mkv .gif (anything ffmpeg reads);
                          * a folder of frames (.png/.jpg...), read in sorted file-name order
                            (folders may themselves be named ``*.mp4``, as in the official vox/taichi data);
                          * a png strip: one image of T square frames concatenated horizontally.
      test/             videos for reconstruction and animation evaluation, same forms
      pairs.csv         optional (``dataset_params.pairs_list``): columns ``source,driving`` of test video names

If ROOT has neither ``train/`` nor ``test/``, the videos directly in ROOT are split into train and test
(80/20) by a permutation seeded with ``random_seed``; with ``id_sampling`` the split is by identity, so no
identity appears in both. If only one of the two folders exists, the other split is empty and asking for
it raises an :class:`~mraa.errors.MRAAError`. Hidden entries (``.name``) and other files are ignored.

Video names are the entry names on disk (``abc.mp4``, ``abc``); pairs lists may name videos with or without
the suffix. With ``id_sampling`` (VoxCeleb) videos are named ``<identity>#<rest>``; a training epoch then
visits every identity once and picks one of its videos at random.

Frames are resized (bilinear, antialiased when shrinking) to ``frame_shape`` when their size differs.
Videos are checked cheaply when the dataset is built (frame folders are listed, png-strip and video headers
are read): unreadable ones and ones with fewer than 2 frames are skipped with one warning each. A video that
turns out unreadable later, while an item is read, is marked bad (one warning) and another video is returned
instead, so an epoch never stops on a bad file.

Decoding cost: frame folders read only the frames an item needs; video files are decoded sequentially
(single-threaded, up to the last needed frame) and, when small enough, kept resized in a per-process LRU
cache (``cache_mb``), so later epochs of small datasets decode nothing. Use ``persistent_workers=True`` in
the DataLoader to keep worker caches across epochs.
"""

from __future__ import annotations

import csv
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mraa.config import AugmentationParams
from mraa.data.augmentation import AllAugmentationTransform, ProcessLocalRng, resize_clip
from mraa.data.orientation import frame_orientation, orient_frame
from mraa.data.video_io import IMAGE_SUFFIXES, VIDEO_SUFFIXES, ffmpeg_name, iter_video, read_image
from mraa.errors import MRAAError

log = logging.getLogger(__name__)

DEFAULT_FRAME_SHAPE = (256, 256, 3)
TEST_FRACTION = 0.2  # share of the videos (or identities) held out when ROOT has no train/ and test/
_MAX_LISTED_WARNINGS = 10  # bad videos found at build time warned one by one, the rest summarised


@dataclass
class _Video:
    name: str
    path: Path
    kind: str  # "folder", "strip" or "file"
    num_frames: int | None  # None while unknown (containers without a frame count)


class _ClipCache:
    """A byte-bounded LRU of decoded, resized uint8 clips (T, H, W, 3), keyed by video name."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()

    def get(self, key: str) -> np.ndarray | None:
        clip = self._items.get(key)
        if clip is not None:
            self._items.move_to_end(key)
        return clip

    def put(self, key: str, clip: np.ndarray) -> None:
        if clip.nbytes > self.max_bytes or key in self._items:
            return
        while self._items and self.bytes + clip.nbytes > self.max_bytes:
            _, old = self._items.popitem(last=False)
            self.bytes -= old.nbytes
        self._items[key] = clip
        self.bytes += clip.nbytes


def _frame_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )


def _video_kind(path: Path) -> str | None:
    if path.name.startswith("."):
        return None
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "strip"
    if suffix in VIDEO_SUFFIXES:
        return "file"
    return None


def _count_frames(path: Path, kind: str) -> int | None:
    """Number of frames from cheap metadata (None when the container does not say); raises if unreadable."""
    if kind == "folder":
        return len(_frame_files(path))
    if kind == "strip":
        from PIL import Image

        with Image.open(path) as image:
            width, height = image.size
        if width % height:
            raise MRAAError(f"a png strip must be T square frames side by side, got {width}x{height}")
        return width // height
    import av

    with av.open(ffmpeg_name(path)) as container:
        if not container.streams.video:
            raise MRAAError("no video stream")
        frames = container.streams.video[0].frames
    return int(frames) if frames > 0 else None


def _decode_file(path: Path, indices: list[int] | None) -> list[np.ndarray | None]:
    """Decode a video file up to its last wanted frame; the wanted frames become uint8 HxWx3 arrays.

    Returns one entry per decoded frame (all frames when ``indices`` is None), None for frames not wanted.
    """
    stop = None if indices is None else max(indices)
    if path.suffix.lower() == ".gif":  # video_io composites transparent gifs on white
        frames = []
        for frame in iter_video(path):
            frames.append(frame)
            if stop is not None and len(frames) > stop:
                break
        return frames
    import av
    from av.video.reformatter import VideoReformatter

    decoded = []
    with av.open(ffmpeg_name(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1  # decoder threads would only compete with DataLoader workers
        for frame in container.decode(stream):
            decoded.append(frame)
            if stop is not None and len(decoded) > stop:
                break
        # upright as displayed (a phone's display matrix)
        orientation = frame_orientation(decoded[0], str(path), stream) if decoded else (0, False)
    if not decoded:
        raise MRAAError("video has no frames")
    # one reformatter for all frames: a fresh colour converter per frame costs more than decoding it
    reformatter = VideoReformatter()
    wanted = range(len(decoded)) if indices is None else set(indices)
    return [
        np.ascontiguousarray(
            orient_frame(reformatter.reformat(frame, format="rgb24").to_ndarray(), orientation)
        )
        if i in wanted
        else None
        for i, frame in enumerate(decoded)
    ]


def _resize_uint8(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a uint8 HxWx3 frame to ``size`` = (h, w) (PIL bilinear, antialiased when shrinking)."""
    if frame.shape[:2] == tuple(size):
        return frame
    from PIL import Image

    return np.asarray(Image.fromarray(frame).resize((size[1], size[0]), Image.BILINEAR))


def _to_chw(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1)))  # (3, H, W)


def _video_identity(name: str) -> str:
    return name.split("#", 1)[0]


def _list_split(root: Path, is_train: bool, id_sampling: bool, seed: int) -> tuple[Path, list[Path]]:
    """The split's folder and its video entries (a root without train/ and test/ is split 80/20 by ``seed``)."""
    if not root.is_dir():
        raise MRAAError(f"dataset folder not found: {root}")
    split = "train" if is_train else "test"
    if (root / "train").is_dir() or (root / "test").is_dir():
        folder = root / split
        if not folder.is_dir():
            raise MRAAError(f"{root} has no {split}/ folder (a dataset needs train/ and test/)")
        return folder, [p for p in sorted(folder.iterdir()) if _video_kind(p)]
    entries = [p for p in sorted(root.iterdir()) if _video_kind(p)]
    keys = sorted({_video_identity(p.name) if id_sampling else p.name for p in entries})
    order = np.random.default_rng(seed).permutation(len(keys))
    num_test = int(round(len(keys) * TEST_FRACTION)) if len(keys) > 1 else 0
    test_keys = {keys[i] for i in order[:num_test]}
    chosen = [
        p for p in entries if ((_video_identity(p.name) if id_sampling else p.name) in test_keys) != is_train
    ]
    log.info("%s has no train/ or test/ folder: using %d of its videos for %s", root, len(chosen), split)
    return root, chosen


def _scan(entries: list[Path], split_dir: Path) -> tuple[list[_Video], list[str]]:
    """The readable videos with at least 2 frames, and ``"name (why)"`` of each video left out."""
    videos, bad = [], []
    for path in entries:
        kind = _video_kind(path)
        try:
            num_frames = _count_frames(path, kind)
        except Exception as exc:  # any decoder or image error means the video cannot be used
            bad.append(f"{path.name} (unreadable: {_describe(exc)})")
            continue
        if num_frames is not None and num_frames < 2:
            bad.append(f"{path.name} (has {num_frames} frame{'s' if num_frames != 1 else ''}, needs 2)")
            continue
        videos.append(_Video(path.name, path, kind, num_frames))
    for line in bad[:_MAX_LISTED_WARNINGS]:
        log.warning("%s: skipping video %s", split_dir, line)
    if len(bad) > _MAX_LISTED_WARNINGS:
        log.warning("%s: skipping %d more unusable videos", split_dir, len(bad) - _MAX_LISTED_WARNINGS)
    if not videos:
        raise MRAAError(f"no readable video with at least 2 frames in {split_dir}")
    return videos, bad


class FramesDataset(Dataset):
    """Videos of one split of a dataset folder (see the module docstring for the layout).

    Args:
        root_dir: dataset folder holding ``train/`` and ``test/`` (or videos to split 80/20).
        frame_shape: (H, W, 3) of the returned frames; None means (256, 256, 3).
        id_sampling: training items pick an identity (``<id>#...`` names), then one of its videos.
        is_train: training items (two frames of a video, augmented) or test items (whole videos).
        random_seed: seed of the train/test split and of the item randomness (mixed with the epoch given
            to :meth:`set_epoch` and, inside DataLoader workers, with the worker seed).
        pairs_list: CSV of ``source,driving`` test video names, used by :class:`PairedDataset`.
        augmentation_params: augmentation for training items; None or test mode means none.
        cache_mb: size of the per-process cache of decoded video files (0 disables it).

    Items:
        train: ``{"source": (3, H, W), "driving": (3, H, W), "name": str}`` float32 in [0, 1].
        test: ``{"video": (3, T, H, W), "name": str}`` float32 in [0, 1].
    """

    def __init__(
        self,
        root_dir: str | os.PathLike,
        frame_shape: tuple[int, int, int] | None = DEFAULT_FRAME_SHAPE,
        id_sampling: bool = False,
        is_train: bool = True,
        random_seed: int = 0,
        pairs_list: str | os.PathLike | None = None,
        augmentation_params: AugmentationParams | dict | None = None,
        cache_mb: float = 256,
    ) -> None:
        self.root_dir = Path(root_dir)
        self.frame_shape = tuple(frame_shape) if frame_shape else DEFAULT_FRAME_SHAPE
        if len(self.frame_shape) != 3 or self.frame_shape[2] != 3 or min(self.frame_shape[:2]) < 1:
            raise MRAAError(f"frame_shape must be (height, width, 3), got {frame_shape}")
        self.id_sampling = id_sampling
        self.is_train = is_train
        self.random_seed = random_seed
        self.pairs_list = pairs_list
        self.split_dir, entries = _list_split(self.root_dir, is_train, id_sampling, random_seed)
        self._all_videos, self.unusable = _scan(entries, self.split_dir)  # unusable: "name (why)" of each
        self.videos = [video.name for video in self._all_videos]  # names of the readable videos
        self._bad: set[int] = set()
        self._ids: list[str] = []
        self._videos_of_id: dict[str, list[int]] = {}
        if self.is_train and self.id_sampling:
            for index, name in enumerate(self.videos):
                self._videos_of_id.setdefault(_video_identity(name), []).append(index)
            self._ids = sorted(self._videos_of_id)
        self.transform = None
        if self.is_train and augmentation_params is not None:
            transform = AllAugmentationTransform.from_params(augmentation_params, seed=random_seed)
            self.transform = None if transform.is_identity else transform
        self._rng = ProcessLocalRng(random_seed)
        self._cache = _ClipCache(int(cache_mb * 2**20))
        log.info(
            "%s: %d %s videos%s",
            self.split_dir,
            len(self.videos),
            "train" if is_train else "test",
            f" of {len(self._ids)} identities" if self._ids else "",
        )

    # ------------------------------------------------------------------------------------------ reading
    def _read(self, video: _Video, indices: list[int] | None) -> list[np.ndarray]:
        """Resized uint8 frames ``indices`` of a video (all frames when None)."""
        size = self.frame_shape[:2]
        if video.kind == "folder":
            files = _frame_files(video.path)
            video.num_frames = len(files)
            wanted = range(len(files)) if indices is None else indices
            if any(i >= len(files) for i in wanted):
                raise _ShortVideo(len(files))
            frames = [read_image(files[i]) for i in wanted]
            if len({frame.shape for frame in frames}) > 1:  # a mix of clips, not one video: not scored
                shapes = sorted({f"{f.shape[1]}x{f.shape[0]}" for f in frames})
                raise MRAAError(f"its frames have different sizes ({', '.join(shapes)})")
            return [_resize_uint8(frame, size) for frame in frames]
        clip = self._cache.get(video.name)
        if clip is None:
            clip = self._decode(video, indices)
        if indices is None:
            return list(clip)
        if max(indices) >= len(clip):
            raise _ShortVideo(len(clip))
        return [clip[i] for i in indices]

    def _decode(self, video: _Video, indices: list[int] | None) -> np.ndarray | list[np.ndarray]:
        height, width = self.frame_shape[:2]
        if video.kind == "strip":
            strip = read_image(video.path)
            frames = [
                strip[:, t * strip.shape[0] : (t + 1) * strip.shape[0]] for t in range(video.num_frames)
            ]
        else:
            known = video.num_frames
            whole = indices is None or known is None or known * height * width * 3 <= self._cache.max_bytes
            frames = _decode_file(video.path, None if whole else indices)
            if whole:
                video.num_frames = len(frames)
            else:  # only a prefix was decoded and only the frames asked for were converted
                return [None if f is None else _resize_uint8(f, (height, width)) for f in frames]
        clip = np.stack([_resize_uint8(frame, (height, width)) for frame in frames])  # (T, H, W, 3)
        self._cache.put(video.name, clip)
        return clip

    def _mark_bad(self, index: int, exc: BaseException) -> None:
        if index not in self._bad:
            self._bad.add(index)
            log.warning("%s: skipping video %s (%s)", self.split_dir, self.videos[index], _describe(exc))
        if len(self._bad) == len(self.videos):
            raise MRAAError(f"no readable video with at least 2 frames in {self.split_dir}") from exc

    def _read_pair(self, index: int, rng: np.random.Generator) -> list[np.ndarray]:
        video = self._all_videos[index]
        for _ in range(2):  # a second try when the frame count from the header was too high
            if video.num_frames is None:
                frames = self._read(video, None)
                if len(frames) < 2:
                    raise _ShortVideo(len(frames))
                chosen = np.sort(rng.choice(len(frames), size=2, replace=False))
                return [frames[i] for i in chosen]
            if video.num_frames < 2:
                raise _ShortVideo(video.num_frames)
            chosen = np.sort(rng.choice(video.num_frames, size=2, replace=False)).tolist()
            try:
                return self._read(video, chosen)
            except _ShortVideo as short:
                video.num_frames = short.num_frames
        raise _ShortVideo(video.num_frames)

    # ------------------------------------------------------------------------------------------ items
    def __len__(self) -> int:
        return len(self._ids) if self._ids else len(self.videos)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        if not self.is_train:
            return self.get_video(idx % len(self.videos))
        rng = self._rng.get()
        for _ in range(len(self.videos) + 1):
            index = self._pick_video(idx, rng)
            try:
                frames = self._read_pair(index, rng)
            except Exception as exc:  # a bad file must not stop the epoch: use another video
                self._mark_bad(index, exc)
                idx = int(rng.integers(len(self)))
                continue
            frames = [frame.astype(np.float32) / 255.0 for frame in frames]
            if self.transform is not None:
                frames = self.transform(frames, rng=rng)
                if frames[0].shape[:2] != self.frame_shape[:2]:  # e.g. resize_param without crop_param
                    frames = list(resize_clip(np.stack(frames), self.frame_shape[:2]))
            return {"source": _to_chw(frames[0]), "driving": _to_chw(frames[1]), "name": self.videos[index]}
        raise MRAAError(f"no readable video with at least 2 frames in {self.split_dir}")

    def _pick_video(self, idx: int, rng: np.random.Generator) -> int:
        if not self._ids:
            index = idx % len(self.videos)
            if index not in self._bad:
                return index
            good = [i for i in range(len(self.videos)) if i not in self._bad]
            return good[int(rng.integers(len(good)))]
        for offset in range(len(self._ids)):
            identity = self._ids[(idx + offset) % len(self._ids)]
            good = [i for i in self._videos_of_id[identity] if i not in self._bad]
            if good:
                return good[int(rng.integers(len(good)))]
        raise MRAAError(f"no readable video with at least 2 frames in {self.split_dir}")

    def set_epoch(self, epoch: int) -> None:
        """Make the item randomness of this epoch a function of ``(random_seed, epoch)`` (and the worker seed).

        Training loops call this before each epoch, so a resumed run draws the same frames and augmentations
        as an uninterrupted one.
        """
        self._rng.set_epoch(epoch)

    def get_video(self, index: int, substitute: bool = True) -> dict[str, Any]:
        """The whole video ``index`` of :attr:`videos` as ``{"video": (3, T, H, W), "name": str}``.

        An unreadable video is marked bad and, when ``substitute``, the next readable one is returned.
        """
        for offset in range(len(self.videos)):
            current = (index + offset) % len(self.videos)
            if current in self._bad:
                continue
            video = self._all_videos[current]
            try:
                frames = self._read(video, None)
                if len(frames) < 2:
                    raise _ShortVideo(len(frames))
            except Exception as exc:  # a bad file must not stop an evaluation: use another video
                self._mark_bad(current, exc)
                if not substitute:
                    raise MRAAError(f"cannot read video {video.path}: {_describe(exc)}") from exc
                continue
            clip = np.stack(frames).astype(np.float32) / 255.0  # (T, H, W, 3)
            return {"video": torch.from_numpy(clip.transpose(3, 0, 1, 2).copy()), "name": video.name}
        raise MRAAError(f"no readable video with at least 2 frames in {self.split_dir}")

    def __getstate__(self) -> dict[str, Any]:  # spawned DataLoader workers start with an empty cache
        state = self.__dict__.copy()
        state["_cache"] = _ClipCache(self._cache.max_bytes)
        return state


class _ShortVideo(Exception):
    def __init__(self, num_frames: int | None) -> None:
        super().__init__(f"has {num_frames} frame{'' if num_frames == 1 else 's'}, needs 2")
        self.num_frames = num_frames


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, (MRAAError, _ShortVideo)):
        return text
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


class DatasetRepeater(Dataset):
    """Repeat a dataset ``num_repeats`` times per epoch (item ``i`` is ``dataset[i % len(dataset)]``)."""

    def __init__(self, dataset: Dataset, num_repeats: int = 100) -> None:
        if num_repeats < 1:
            raise MRAAError(f"num_repeats must be >= 1, got {num_repeats}")
        self.dataset = dataset
        self.num_repeats = num_repeats

    def __len__(self) -> int:
        return self.num_repeats * len(self.dataset)

    def __getitem__(self, idx: int) -> Any:
        return self.dataset[idx % len(self.dataset)]


class PairedDataset(Dataset):
    """(source video, driving video) pairs for animation evaluation.

    Pairs come from the initial dataset's ``pairs_list`` CSV (columns ``source,driving``; rows naming
    unknown videos are dropped with a warning) or, without one, are drawn at random without repetition
    (and without pairing a video with itself when there are two or more videos) from ``seed``.

    Args:
        initial_dataset: a :class:`FramesDataset`, normally with ``is_train=False``.
        number_of_pairs: at most this many pairs.
        seed: seed of the random pairs.

    Items:
        ``{"source_video": (3, T, H, W), "driving_video": (3, T', H, W), "source_name", "driving_name"}``.
    """

    def __init__(self, initial_dataset: FramesDataset, number_of_pairs: int, seed: int = 0) -> None:
        if number_of_pairs < 1:
            raise MRAAError(f"number_of_pairs must be >= 1, got {number_of_pairs}")
        self.initial_dataset = initial_dataset
        pairs_list = getattr(initial_dataset, "pairs_list", None)
        if pairs_list:
            self.pairs = self._pairs_from_csv(Path(pairs_list), initial_dataset.videos, number_of_pairs)
        else:
            self.pairs = _random_pairs(len(initial_dataset.videos), number_of_pairs, seed)

    @staticmethod
    def _pairs_from_csv(path: Path, videos: list[str], number_of_pairs: int) -> list[tuple[int, int]]:
        if not path.is_file():
            raise MRAAError(f"pairs list not found: {path}")
        lookup: dict[str, int] = {}
        for index, name in enumerate(videos):
            lookup.setdefault(name, index)
            lookup.setdefault(Path(name).stem, index)
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or not {"source", "driving"} <= set(reader.fieldnames):
                raise MRAAError(f"{path}: a pairs list needs the columns source,driving")
            rows = [(row["source"].strip(), row["driving"].strip()) for row in reader]
        pairs, missing = [], 0
        for source, driving in rows:
            if source in lookup and driving in lookup:
                pairs.append((lookup[source], lookup[driving]))
            else:
                missing += 1
        if missing:
            log.warning(
                "%s: %d of %d pairs name videos not in the dataset (dropped)", path, missing, len(rows)
            )
        if not pairs:
            raise MRAAError(f"{path}: no pair names two videos of the dataset")
        return pairs[:number_of_pairs]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        source_index, driving_index = self.pairs[idx]
        source = self.initial_dataset.get_video(source_index)
        driving = self.initial_dataset.get_video(driving_index)
        return {
            "driving_video": driving["video"],
            "source_video": source["video"],
            "driving_name": driving["name"],
            "source_name": source["name"],
        }


def _random_pairs(num_videos: int, number_of_pairs: int, seed: int) -> list[tuple[int, int]]:
    """Distinct (source, driving) index pairs, source != driving unless there is a single video."""
    if num_videos == 1:
        return [(0, 0)]
    total = num_videos * (num_videos - 1)
    codes = np.random.default_rng(seed).choice(total, size=min(number_of_pairs, total), replace=False)
    pairs = []
    for code in codes.tolist():
        source, rest = divmod(code, num_videos - 1)
        pairs.append((source, rest + (rest >= source)))  # skip the diagonal
    return pairs
