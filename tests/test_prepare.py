"""Dataset preparation: shots, tracking, chunking, crops, the by-video split, the manifest and the CLI.

Synthetic talks are tiny mp4s (160x120) with two hard cuts (different background colours) and a moving
rectangle "person" whose boxes are given as precomputed boxes; the sizes are scaled down accordingly
(--size 64 --min-person-height 48 --min-frames 16). The default detector is checked on a real photo:
tests/data/prepare/astronaut.jpg is scikit-image's ``astronaut`` (NASA, public domain) at 256x256.
"""

from __future__ import annotations

import gc
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from mraa.cli import main
from mraa.data.prepare import (
    Box,
    CropBox,
    PrecomputedBoxes,
    PrepareOptions,
    ShotDetector,
    box_iou,
    load_boxes_csv,
    load_boxes_json,
    plan_chunks,
    plan_video,
    read_manifest,
    smooth_track,
    split_into_chunks,
    split_videos,
    square_crop_box,
    track_main_person,
)
from mraa.data.prepare.detectors import require_cv2
from mraa.data.video_io import read_image, read_video, write_video
from mraa.errors import MRAAError

DATA = Path(__file__).parent / "data" / "prepare"
SMALL = ["--size", "64", "--min-person-height", "48", "--min-frames", "16", "--no-progress"]


def _has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return module != "cv2" or hasattr(sys.modules["cv2"], "CascadeClassifier")


needs_detect = pytest.mark.skipif(
    not (_has("cv2") and _has("scenedetect")), reason="needs the detect extra (opencv 4.x + scenedetect)"
)

# (background colour, frames, first x, pixels per frame, person height): three shots
TALK = (((200, 60, 60), 40, 20, 0.25, 64), ((40, 160, 80), 30, 70, 0.0, 60), ((60, 60, 200), 50, 20, 0.5, 70))
CUTS = [(0, 40), (40, 70), (70, 120)]
ONE_SHOT = (((180, 120, 40), 40, 40, 0.25, 60),)


def make_talk(video: Path, boxes_dir: Path, shots=TALK, frame_size=(120, 160), every: int = 2) -> dict:
    """Write a synthetic talk and its boxes (every ``every``-th frame); returns the true box per frame."""
    height, width = frame_size
    frames, truth, listed = [], {}, {}
    for color, count, x_start, speed, person in shots:
        for t in range(count):
            frame = np.empty((height, width, 3), np.uint8)
            frame[:] = color
            x0, y0 = round(x_start + speed * t), height - person - 4
            frame[y0 : y0 + person, x0 : x0 + person // 2] = (235, 225, 205)  # body
            frame[y0 : y0 + person // 4, x0 + 4 : x0 + person // 2 - 4] = (120, 80, 60)  # head
            index = len(frames)
            truth[index] = (x0, y0, x0 + person // 2, y0 + person)
            if index % every == 0:
                listed[str(index)] = [list(truth[index])]
                if color == (40, 160, 80):  # a small passer-by in the second shot
                    listed[str(index)].append([120, 10, 130, 30])
            frames.append(frame)
    write_video(video, frames, fps=25)
    boxes_dir.mkdir(exist_ok=True)
    (boxes_dir / f"{video.stem}.json").write_text(json.dumps({"frames": listed}))
    return truth


@pytest.fixture(scope="module", autouse=True)
def _cheap_garbage_collection():
    """imageio's pyav plugin runs gc.collect() on every close (~80 ms with torch loaded, twice per video);
    freezing the objects that exist now makes those collections cheap without changing what is tested."""
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.fixture(scope="module")
def talks(tmp_path_factory):
    """Three good talks, one with a too-small person, one too low-res to crop, one corrupt file."""
    root = tmp_path_factory.mktemp("talks")
    videos, boxes = root / "videos", root / "boxes"
    videos.mkdir()
    truth = {"talk0": make_talk(videos / "talk0.mp4", boxes)}
    truth.update({f"talk{i}": make_talk(videos / f"talk{i}.mp4", boxes, shots=ONE_SHOT) for i in (1, 2)})
    make_talk(videos / "tiny_person.mp4", boxes, shots=tuple((c, n, x, s, 30) for c, n, x, s, _ in ONE_SHOT))
    make_talk(videos / "lowres.mp4", boxes, shots=(((90, 90, 90), 40, 10, 0.0, 50),), frame_size=(60, 80))
    (videos / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    (boxes / "broken.json").write_text('{"frames": {}}')
    return {"videos": videos, "boxes": boxes, "truth": truth}


@pytest.fixture(scope="module")
def prepared(talks, tmp_path_factory):
    out = tmp_path_factory.mktemp("dataset") / "ted"
    argv = [
        "prepare",
        "-i",
        str(talks["videos"]),
        "-o",
        str(out),
        "--boxes",
        str(talks["boxes"]),
        "--detect-every",
    ]
    assert main([*argv, "2", *SMALL, "--test-fraction", "0.25", "--seed", "1"]) == 0
    return {"out": out, "argv": [*argv, "2", *SMALL, "--test-fraction", "0.25", "--seed", "1"], **talks}


# ---------------------------------------------------------------------------------------------------------
# pure pieces


class TestTrackMainPerson:
    def test_picks_big_persistent_box_and_interpolates(self):
        main_box = np.array([40.0, 20, 80, 100])
        detections = {}
        for f in range(0, 50, 5):
            detections[f] = [Box(*(main_box + [f, 0, f, 0])), Box(0, 0, 10, 20)]  # walker + small passer-by
        detections[25].append(Box(0, 0, 150, 118))  # one big false positive
        track = track_main_person(detections, 0, 46, max_gap=10)
        assert track.shape == (46, 4)
        np.testing.assert_allclose(track[0], main_box)
        np.testing.assert_allclose(track[7], main_box + [7, 0, 7, 0])  # linear between frames 5 and 10
        assert np.isfinite(track).all()

    def test_long_gaps_stay_unknown_and_shot_edges_hold(self):
        box = [10.0, 10, 30, 50]
        detections = {0: [], 5: [box], 10: [], 15: [], 20: [box], 25: []}
        track = track_main_person(detections, 0, 30, max_gap=10, hold=4)
        known = ~np.isnan(track).any(axis=1)
        assert known.tolist() == [f in (5, 20) for f in range(30)]  # 15 frames apart: not bridged
        # a shot whose first looked-at frame comes 3 frames after its start copies that box back
        held = track_main_person({5: [box], 10: [box]}, 2, 11, max_gap=10, hold=4)
        assert np.isfinite(held).all()
        unheld = track_main_person({5: [box], 10: [box]}, 2, 11, max_gap=10, hold=2)
        assert np.isnan(unheld[:3]).all() and np.isfinite(unheld[3:]).all()

    def test_ignores_frames_outside_the_shot(self):
        detections = {0: [[0, 0, 10, 10]], 10: [[50, 50, 90, 90]], 20: [[0, 0, 10, 10]]}
        track = track_main_person(detections, 5, 15)
        assert np.isnan(track[:5]).all() and np.isnan(track[6:]).all()  # only frame 10 is in [5, 15)
        np.testing.assert_allclose(track[5], [50, 50, 90, 90])

    def test_smoothing_keeps_linear_motion_and_gaps(self):
        track = np.stack([np.array([i, 0, i + 10, 20.0]) for i in range(20)])
        track[8] = np.nan
        smooth = smooth_track(track, 5)
        assert np.isnan(smooth[8]).all()
        np.testing.assert_allclose(smooth[2:6], track[2:6])


class TestSplitIntoChunks:
    def test_splits_when_the_person_moves_too_far(self):
        track = np.stack([[t, 0.0, t + 50, 100] for t in range(100)])  # 1 px per frame, height 100
        chunks = split_into_chunks(track, min_person_height=50, max_shift=0.2, start=1000)
        assert [c.start for c in chunks] == [1000, 1021, 1042, 1063, 1084]
        assert chunks[-1].end == 1100
        for chunk in chunks:  # within a chunk the center stays within 0.2 x height of its start
            assert track[chunk.end - 1001, 0] - track[chunk.start - 1000, 0] <= 20

    def test_scale_change_and_min_height(self):
        heights = np.r_[np.full(10, 40.0), np.full(30, 100.0), np.full(30, 140.0)]
        track = np.stack([[0.0, 200 - h, 50, 200] for h in heights])  # feet fixed, height varies
        chunks = split_into_chunks(track, min_person_height=50, max_shift=10, max_scale_change=0.25)
        assert [tuple(c) for c in chunks] == [(10, 40), (40, 70)]  # too short first, then a zoom

    def test_unknown_frames_break_chunks(self):
        track = np.tile([0.0, 0, 50, 100], (30, 1))
        track[12] = np.nan
        assert [tuple(c) for c in split_into_chunks(track, min_person_height=50)] == [(0, 12), (13, 30)]


class TestSquareCropBox:
    def test_square_holds_all_boxes_at_fixed_scale(self):
        boxes = np.array([[100.0, 50, 150, 150], [110, 52, 160, 152], [120, 48, 170, 148]])
        crop = square_crop_box(boxes, (480, 640), crop_scale=1.2)
        assert isinstance(crop, CropBox)
        assert crop.size == 120
        assert crop.x0 <= 100 and crop.x0 + crop.size >= 170
        assert crop.y0 <= 48 and crop.y0 + crop.size >= 152

    def test_shifted_inside_and_shrunk_to_the_frame(self):
        crop = square_crop_box(np.array([[0.0, 0, 40, 100]]), (480, 640))
        assert (crop.x0, crop.y0, crop.size) == (0, 0, 120)
        crop = square_crop_box(np.array([[600.0, 380, 640, 480]]), (480, 640))
        assert (crop.x0 + crop.size, crop.y0 + crop.size) == (640, 480)
        crop = square_crop_box(np.array([[100.0, 0, 300, 110]]), (120, 640), crop_scale=1.5)
        assert crop.size == 120 and crop.y0 == 0

    def test_plan_drops_short_chunks_and_upscaling(self):
        track = np.tile([0.0, 0, 30, 60], (40, 1))
        kept, dropped = plan_chunks(track, 0, 0, (120, 160), min_frames=16, min_person_height=48, size=64)
        assert len(kept) == 1 and kept[0].crop.size == 72 and not dropped
        kept, dropped = plan_chunks(track, 0, 0, (120, 160), min_frames=41, min_person_height=48, size=64)
        assert not kept and dropped == {"too_short": 1}
        kept, dropped = plan_chunks(track, 0, 0, (120, 160), min_frames=16, min_person_height=48, size=96)
        assert not kept and dropped == {"needs_upscaling": 1}


def test_split_videos_is_by_video_seeded_and_keeps_both_sides():
    ids = [f"v{i}" for i in range(20)]
    split = split_videos(ids, 0.1, seed=0)
    assert sorted(split) == sorted(ids) and sum(s == "test" for s in split.values()) == 2
    assert split == split_videos(list(reversed(ids)), 0.1, seed=0)  # order of the inputs does not matter
    assert split != split_videos(ids, 0.1, seed=1)
    assert list(split_videos(["a", "b", "c"], 0.1, 0).values()).count("test") == 1  # at least one
    assert set(split_videos(["a", "b"], 0.9, 0).values()) == {"train", "test"}  # at least one train
    assert split_videos(["a", "b"], 0.0, 0) == {"a": "train", "b": "train"}


def test_boxes_files_json_and_csv(tmp_path):
    (tmp_path / "a.json").write_text(
        '{"frames": {"0": [1, 2, 11, 22], "5": [[0, 0, 4, 4], [5, 5, 9, 9]], "9": []}}'
    )
    assert load_boxes_json(tmp_path / "a.json") == {
        0: [Box(1, 2, 11, 22)],
        5: [Box(0, 0, 4, 4), Box(5, 5, 9, 9)],
        9: [],
    }
    (tmp_path / "b.csv").write_text("frame,x0,y0,x1,y1\n0,1,2,11,22\n0,3,3,6,6\n7,,,,\n")
    assert load_boxes_csv(tmp_path / "b.csv") == {0: [Box(1, 2, 11, 22), Box(3, 3, 6, 6)], 7: []}
    boxes = PrecomputedBoxes(tmp_path)
    assert boxes.find("/x/b.mp4") == tmp_path / "b.csv" and boxes.find("c.mp4") is None
    assert boxes.find("/y/a.mp4", "a_2") == tmp_path / "a.json"  # the dataset's name first, then the stem
    (tmp_path / "a_2.csv").write_text("0,1,1,5,5\n")
    assert boxes.find("/y/a.mp4", "a_2") == tmp_path / "a_2.csv"
    (tmp_path / "bad.json").write_text('{"frames": {"0": [5, 5, 1, 1]}}')
    with pytest.raises(MRAAError, match="x1 > x0"):
        load_boxes_json(tmp_path / "bad.json")
    with pytest.raises(MRAAError, match="no boxes file"):
        boxes.load("c.mp4")


def test_plan_video_says_why_a_video_is_dropped():
    def analysis(box, frame_size=(120, 160), frames=40):
        listed = (
            {str(f): [box] for f in range(0, frames, 5)} if box else {str(f): [] for f in range(0, frames, 5)}
        )
        return {"frame_size": list(frame_size), "shots": [[0, frames]], "detections": listed}

    options = PrepareOptions(size=64, min_person_height=48, min_frames=16)
    chunks, dropped, reason = plan_video(analysis([40, 40, 70, 100]), options)
    assert len(chunks) == 1 and chunks[0].num_frames == 40 and reason == ""
    assert plan_video(analysis(None), options)[2] == "no person found"
    assert plan_video(analysis([40, 70, 55, 100]), options)[2] == "person shorter than 48 px"
    assert "upscaling" in plan_video(analysis([10, 6, 35, 56], frame_size=(60, 80)), options)[2]
    assert "fewer than 16 frames" in plan_video(analysis([40, 40, 70, 100], frames=12), options)[2]


def test_disabled_shot_detection_gives_one_shot():
    detector = ShotDetector(threshold=0)
    for _ in range(7):
        detector.push(np.zeros((8, 8, 3), np.uint8))
    assert detector.shots() == [(0, 7)]


def test_missing_dependencies_name_the_extra(monkeypatch, tmp_path):
    from mraa.data.prepare import prepare_dataset

    (tmp_path / "a.mp4").write_bytes(b"not read")
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "cv2", None)
        with pytest.raises(MRAAError, match=r"mraa\[detect\]"):
            require_cv2()
        with pytest.raises(MRAAError, match=r"mraa\[detect\]"):  # before any video is read
            prepare_dataset([tmp_path / "a.mp4"], tmp_path / "out", progress=False)
    if _has("cv2"):
        monkeypatch.setitem(sys.modules, "scenedetect", None)
        with pytest.raises(MRAAError, match="scenedetect"):
            ShotDetector(threshold=27)


def test_options_are_validated(tmp_path):
    with pytest.raises(MRAAError, match="boxes folder"):
        PrepareOptions(detector="boxes").validate()
    assert main(["prepare", "-i", str(tmp_path / "none"), "-o", str(tmp_path / "out")]) == 2
    assert main(["prepare", "-i", str(tmp_path), "-o", str(tmp_path / "o"), "--boxes", str(tmp_path),
                 "--detector", "hog"]) == 2  # fmt: skip


# ---------------------------------------------------------------------------------------------------------
# with OpenCV and PySceneDetect


@needs_detect
def test_detect_shots_finds_the_hard_cuts(talks):
    from mraa.data.prepare import detect_shots

    frames = read_video(talks["videos"] / "talk0.mp4")
    assert [tuple(s) for s in detect_shots(frames)] == CUTS


@needs_detect
def test_prepare_writes_chunks_manifest_and_summary(prepared):
    out = prepared["out"]
    rows = list(read_manifest(out / "manifest.csv"))
    assert rows
    videos = {row["video_id"] for row in rows}
    assert videos == {"talk0", "talk1", "talk2"}
    splits = {vid: {r["split"] for r in rows if r["video_id"] == vid} for vid in videos}
    assert all(len(s) == 1 for s in splits.values())  # split by source video
    assert sorted(s.pop() for s in splits.values()) == ["test", "train", "train"]
    for row in rows:
        start, end, shot = int(row["start"]), int(row["end"]), (int(row["shot_start"]), int(row["shot_end"]))
        assert shot in (CUTS if row["video_id"] == "talk0" else [(0, 40)])
        assert shot[0] <= start < end <= shot[1]  # inside one shot
        assert end - start == int(row["num_frames"]) >= 16
        x0, y0, side = int(row["crop_x0"]), int(row["crop_y0"]), int(row["crop_size"])
        assert side >= 64 and 0 <= x0 <= 160 - side and 0 <= y0 <= 120 - side  # no upscaling, in frame
        for frame in range(start, end):  # one square holds the person in every frame of the chunk
            bx0, by0, bx1, by1 = prepared["truth"][row["video_id"]][frame]
            assert x0 <= bx0 and y0 <= by0 and bx1 <= x0 + side and by1 <= y0 + side
        assert (out / row["split"] / row["name"]).is_file()
    # every shot of talk0 gives chunks; the walking third shot is cut in two where the person moved
    talk0 = [r for r in rows if r["video_id"] == "talk0"]
    assert [r["shot"] for r in talk0] == ["0", "1", "2", "2"]
    assert talk0[2]["end"] == talk0[3]["start"]
    summary = json.loads((out / "summary.json").read_text())
    reasons = {v["video_id"]: v["reason"] for v in summary["videos"]}
    assert reasons.pop("tiny_person") == "person shorter than 48 px"
    assert reasons.pop("lowres") == "crop smaller than 64 px (would need upscaling)"
    assert reasons == {"talk0": "", "talk1": "", "talk2": "", "broken": "unreadable"}
    assert summary["videos_kept"] == 3 and summary["chunks"]["train"] + summary["chunks"]["test"] == len(rows)
    assert sorted(p.name for p in (out / "train").iterdir()) == sorted(
        r["name"] for r in rows if r["split"] == "train"
    )


@needs_detect
def test_chunk_frames_are_the_resized_crop(prepared):
    import cv2

    out = prepared["out"]
    row = next(r for r in read_manifest(out / "manifest.csv") if r["shot"] == "1")
    chunk = read_video(out / row["split"] / row["name"])
    assert chunk.shape == (int(row["num_frames"]), 64, 64, 3)
    source = read_video(prepared["videos"] / f"{row['video_id']}.mp4")[int(row["start"])]
    x0, y0, side = int(row["crop_x0"]), int(row["crop_y0"]), int(row["crop_size"])
    expected = cv2.resize(source[y0 : y0 + side, x0 : x0 + side], (64, 64), interpolation=cv2.INTER_AREA)
    assert np.abs(chunk[0].astype(float) - expected).mean() < 6  # mp4 coding noise only
    # the person (light body) stays in the crop: its bright pixels are there in every frame
    assert ((chunk.min(axis=3) > 190).sum(axis=(1, 2)) > 100).all()


@needs_detect
def test_rerun_resumes_without_rewriting(prepared):
    out = prepared["out"]
    before = {p: p.stat().st_mtime_ns for p in (out / "train").iterdir()}
    assert main(prepared["argv"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["chunks_written"] == 0 and summary["analyses_reused"] == 5
    assert {p: p.stat().st_mtime_ns for p in (out / "train").iterdir()} == before


@needs_detect
def test_output_is_a_training_dataset(prepared):
    from mraa.data.frames_dataset import FramesDataset

    train = FramesDataset(
        prepared["out"], frame_shape=(64, 64, 3), id_sampling=True, is_train=True, cache_mb=0
    )
    rows = read_manifest(prepared["out"] / "manifest.csv")
    assert len(train) == len({r["video_id"] for r in rows if r["split"] == "train"}) == 2  # one id per video
    assert train[0]["source"].shape == train[0]["driving"].shape == (3, 64, 64)
    test = FramesDataset(prepared["out"], frame_shape=(64, 64, 3), is_train=False, cache_mb=0)
    assert sorted(test.videos) == sorted(r["name"] for r in rows if r["split"] == "test")
    clip = test.get_video(0)["video"]
    assert clip.shape[0] == 3 and clip.shape[2:] == (64, 64)


@needs_detect
def test_frame_folders_and_workers_give_the_same_chunks(prepared, tmp_path):
    from mraa.data.prepare import prepare_dataset

    options = PrepareOptions(
        size=48, min_person_height=48, min_frames=16, detector="boxes", boxes_dir=str(prepared["boxes"]),
        detect_every=2, format="png", test_fraction=0.5,
    )  # fmt: skip
    videos = [prepared["videos"] / "talk0.mp4", prepared["videos"] / "talk1.mp4"]
    summary = prepare_dataset(videos, tmp_path, options, progress=False, workers=2)
    assert sorted(v.split for v in summary.videos) == ["test", "train"]
    folders = sorted((tmp_path / "train").iterdir()) + sorted((tmp_path / "test").iterdir())
    assert len(folders) == sum(summary.chunks.values()) == 5
    rows = {r["name"]: r for r in read_manifest(tmp_path / "manifest.csv")}
    for folder in folders:
        frames = sorted(folder.iterdir())
        assert len(frames) == int(rows[folder.name]["num_frames"])
        assert read_image(frames[0]).shape == (48, 48, 3)
    # the same chunks and crops as the single-process mp4 run (the output size does not change crops)
    columns = ("video_id", "shot", "start", "end", "crop_x0", "crop_y0", "crop_size")
    serial = {tuple(r[c] for c in columns) for r in read_manifest(prepared["out"] / "manifest.csv")}
    assert {tuple(r[c] for c in columns) for r in rows.values()} == {
        row for row in serial if row[0] in ("talk0", "talk1")
    }


@needs_detect
def test_default_detector_finds_the_person_in_a_photo():
    from mraa.data.prepare import build_detector

    photo = read_image(DATA / "astronaut.jpg")  # 256x256, upper body of a person facing the camera
    boxes = build_detector("haar-upperbody").detect(photo)
    assert len(boxes) == 1
    truth = (10, 7, 183, 256)  # hand-drawn box around head, shoulders and torso
    assert box_iou(boxes[0], truth) > 0.6
    assert (
        boxes[0].x0 < 100 < 125 < boxes[0].x1 and boxes[0].y0 < 30
    )  # holds the face (about 86..140, 30..84)
    assert build_detector("haar-upperbody").detect(np.full((256, 256, 3), 128, np.uint8)) == []
    assert build_detector("hog").detect(np.full((256, 256, 3), 128, np.uint8)) == []


@needs_detect
def test_default_detector_end_to_end_on_a_photo_video(tmp_path):
    """A video panning over the photo, a cut, then the mirrored photo: chunks without any boxes file."""
    photo = read_image(DATA / "astronaut.jpg")
    frames = [np.roll(photo, t, axis=1) for t in range(20)] + [photo[:, ::-1] // 2 + 60 for _ in range(20)]
    write_video(tmp_path / "astronaut_talk.mp4", frames, fps=25)
    out = tmp_path / "out"
    args = ["prepare", "-i", str(tmp_path / "astronaut_talk.mp4"), "-o", str(out), "--size", "128"]
    assert main([*args, "--min-person-height", "150", "--min-frames", "16", "--no-progress"]) == 0
    rows = list(read_manifest(out / "manifest.csv"))
    assert [(r["shot_start"], r["shot_end"]) for r in rows] == [("0", "20"), ("20", "40")]
    assert all(int(r["num_frames"]) == 20 and int(r["crop_size"]) >= 128 for r in rows)
    assert math.isclose(float(rows[0]["fps"]), 25.0)
