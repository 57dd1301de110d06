"""Issue 32: mraa removes, replaces and serves only what it made; outputs never land on inputs.

Each test reproduces a way mraa lost or exposed a user's file before the fix (see docs/reliability.md):
clean-up of look-alike dotfiles, ``--crop-preview`` over the source, the app pruning and serving its whole
``--work-dir``, ``segment`` and ``export`` replacing existing files, a reused ``--onnx-dir`` of another
model, a full disk, two trainings in one folder, and batches writing into their own input folder.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from mraa.atomic import PROCESS_START
from mraa.cli import main
from mraa.data.video_io import write_image, write_video
from mraa.errors import MRAAError

from .conftest import ROOT, tmpfs

TINY = ROOT / "configs" / "tiny.yaml"
# the exact look-alikes that remove_stale_temps used to delete (folders recursively)
USER_FILES = (".backup-20240101.tar", ".notes-20240101.md")
USER_FOLDERS = (".venv-20240101", ".vscode-insiders")


def _user_dotfiles(folder: Path) -> list[Path]:
    """The issue's reproductions in ``folder``, older than this process (as a killed run's temporaries)."""
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for name in USER_FILES:
        (folder / name).write_text("the user's\n")
        made.append(folder / name)
    for name in USER_FOLDERS:
        (folder / name).mkdir()
        (folder / name / "settings.json").write_text("{}\n")
        made.append(folder / name)
    old = PROCESS_START - 3600
    for path in made:
        os.utime(path, (old, old))
    return made


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_line_error(capsys) -> str:
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("INFO: ")]
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A source image, a driving video, a dataset and a tiny checkpoint with its config."""
    from mraa.checkpoint import save_checkpoint
    from mraa.config import load_config, save_config
    from mraa.models import build_models

    root = tmp_path_factory.mktemp("user-files")
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(3)]
    write_image(root / "src.png", rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    write_video(root / "drv.mp4", frames, fps=10)
    for split in ("train", "test"):
        (root / "data" / split).mkdir(parents=True)
        write_video(root / "data" / split / "a.mp4", frames, fps=10)
    cfg = load_config(TINY)
    torch.manual_seed(0)
    save_checkpoint(root / "ck.pth", build_models(cfg.model_params), cfg)
    torch.manual_seed(1)
    save_checkpoint(root / "other.pth", build_models(cfg.model_params), cfg)
    save_config(cfg, root / "tiny.yaml")
    return {"root": root, "source": root / "src.png", "driving": root / "drv.mp4", "data": root / "data",
            "checkpoint": root / "ck.pth", "other": root / "other.pth", "config": root / "tiny.yaml"}  # fmt: skip


# ----------------------------------------------------------------------------- item 1: marked temporaries
def test_cleanup_removes_only_marked_temporaries(tmp_path):
    from mraa.atomic import OWNER_NAME, remove_stale_temps, temp_dir, temp_file
    from mraa.safety import check_outputs

    user = _user_dotfiles(tmp_path)
    (tmp_path / ".mraa-tmp-fake-abcd1234").mkdir()  # a marked name without mraa's owner file inside
    (tmp_path / ".mraa-tmp-fake-abcd1234" / "thesis.tex").write_text("not mraa's")
    ours = [temp_file(tmp_path, "out", ".mp4"), temp_dir(tmp_path, "labels"), temp_dir(tmp_path, "x")]
    (ours[1] / "000000.png").write_bytes(b"partial")
    assert (ours[1] / OWNER_NAME).is_file() and ours[0].name.startswith(".mraa-tmp-out-")
    old = PROCESS_START - 3600
    for path in ours:
        os.utime(path, (old, old))
    check_outputs(outputs={"--output": tmp_path / "out.mp4"})
    assert not ours[0].exists() and ours[1].exists()  # only the temporaries of --output
    assert sorted(p.name for p in remove_stale_temps(tmp_path)) == sorted(p.name for p in ours[1:])
    assert all(p.exists() for p in user) and (tmp_path / ".mraa-tmp-fake-abcd1234" / "thesis.tex").exists()
    assert all((p / "settings.json").exists() for p in user if p.is_dir())


def test_reconstruct_out_keeps_the_users_dotfiles(files, tmp_path):
    out = tmp_path / "recon"
    user = _user_dotfiles(out)
    argv = ["reconstruct", "--checkpoint", str(files["checkpoint"]), "--config", str(files["config"]),
            "--data", str(files["data"]), "--out", str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert all(p.exists() for p in user) and (out / ".venv-20240101" / "settings.json").is_file()


def test_train_log_dir_keeps_the_users_dotfiles(files, tmp_path):
    log_dir = tmp_path / "run"
    user = _user_dotfiles(log_dir)
    (log_dir / "train-vis").mkdir()
    user += _user_dotfiles(log_dir / "train-vis")
    sets = ["dataset_params.frame_shape=[32,32,3]", "train_params.num_epochs=1", "train_params.num_repeats=1",
            "train_params.batch_size=1"]  # fmt: skip
    argv = ["train", "--config", str(TINY), "--log-dir", str(log_dir), "--data", str(files["data"]),
            "--device", "cpu", "--no-progress", "--seed", "0", "--no-tensorboard"]  # fmt: skip
    argv += [item for value in sets for item in ("--set", value)]
    assert main(argv) == 0
    assert (log_dir / "00000000-cpk-reconstruction.pth").is_file()
    assert all(p.exists() for p in user)
    assert not (log_dir / ".mraa-train.lock").exists()  # the run's lock goes with it


def test_a_killed_folder_writer_and_export_leave_marked_temporaries_only(tmp_path):
    """What a SIGKILL leaves carries mraa's marker, so the next run may remove it (and nothing else)."""
    from mraa.atomic import is_marked_temp, remove_stale_temps

    code = textwrap.dedent(f"""
        import os, signal, numpy as np
        from mraa.data.video_io import FolderWriter
        writer = FolderWriter({str(tmp_path / "labels")!r})
        writer.write("000000.png", np.zeros((8, 8, 3), np.uint8))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    assert subprocess.run([sys.executable, "-c", code]).returncode != 0
    (left,) = tmp_path.iterdir()
    assert left.name.startswith(".mraa-tmp-labels-") and is_marked_temp(left)
    old = PROCESS_START - 3600
    os.utime(left, (old, old))
    assert remove_stale_temps(tmp_path, "labels") == [left] and list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- item 2: one output check
@pytest.mark.parametrize("command", ["animate", "crop"])
def test_crop_preview_over_the_source_is_refused(files, tmp_path, command, capsys):
    import shutil

    source = tmp_path / "src.png"
    shutil.copy(files["source"], source)
    before = _sha(source)
    argv = [command, "--source", str(source), "--driving", str(files["driving"]), "--crop", "center"]
    if command == "animate":
        argv += ["--output", str(tmp_path / "o.mp4"), "--quiet"]
    for preview in (source, tmp_path / "." / "src.png"):
        assert main([*argv, "--crop-preview", str(preview)]) == 2
        assert "is the same file as --source" in _one_line_error(capsys)
    os.link(source, tmp_path / "hard.png")
    assert main([*argv, "--crop-preview", str(tmp_path / "hard.png")]) == 2
    assert "same file" in _one_line_error(capsys)
    assert _sha(source) == before and not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize("command", ["animate", "crop"])
def test_crop_preview_that_is_not_an_image_name_is_refused_first(files, tmp_path, command, capsys):
    """A typo'd preview name (``boxes.txt``, no suffix) stops before any work with one line, not after the
    boxes with imageio's message about a temporary file."""
    argv = [command, "--source", str(files["source"]), "--driving", str(files["driving"]), "--crop", "center"]
    if command == "animate":
        argv += ["--output", str(tmp_path / "o.mp4"), "--quiet"]
    for preview in ("boxes.txt", "boxes"):
        assert main([*argv, "--crop-preview", str(tmp_path / preview)]) == 2
        err = _one_line_error(capsys)
        assert "not an image file name" in err and ".mraa-tmp" not in err
    assert list(tmp_path.iterdir()) == []


def test_crop_refuses_a_source_animate_refuses(files, tmp_path, capsys):
    """A 1x1 source: ``mraa crop`` stops with animate's message instead of printing boxes for it."""
    from PIL import Image

    Image.new("RGB", (1, 1)).save(tmp_path / "one.png")
    assert main(["crop", "--source", str(tmp_path / "one.png"), "--driving", str(files["driving"])]) == 2
    assert "only 1x1 pixels; at least 8x8" in _one_line_error(capsys)


def test_animate_file_refuses_a_crop_preview_over_an_input(files, tmp_path):
    from mraa.animate import Animator

    animator = Animator.from_checkpoint(files["checkpoint"], config=files["config"])
    before = _sha(files["source"])
    with pytest.raises(MRAAError, match="crop preview .* same file as input"):
        animator.animate_file(files["source"], files["driving"], tmp_path / "o.mp4", crop="center",
                              crop_preview=files["source"], progress=False)  # fmt: skip
    assert _sha(files["source"]) == before and not (tmp_path / "o.mp4").exists()


# ----------------------------------------------------------------------------- item 3: the app's own folder
def _service(files, work_dir):
    from mraa.animate import Animator
    from mraa.app import AnimationService, Limits, Samples

    animator = Animator.from_checkpoint(files["checkpoint"], config=files["config"])
    samples = Samples(files["source"], files["driving"])
    return AnimationService(animator, work_dir, Limits(max_upload_mb=1, max_frames=4), samples, "tiny")


def test_app_prunes_only_its_own_runs(files, tmp_path, monkeypatch):
    monkeypatch.setattr("mraa.app.service.KEEP_RESULTS", 2)
    work = tmp_path / "work"
    (work / "run-foo").mkdir(parents=True)
    (work / "run-foo" / "holiday.mp4").write_bytes(b"the user's")
    (work / "run-0123456789ab").mkdir()  # looks like the app's, but is outside its folder
    service = _service(files, work)
    assert service.work_dir == work / ".mraa-app" and (service.work_dir / ".mraa-app-owner").is_file()
    fake = service.work_dir / "run-aaaaaaaaaaaa"  # the app's name pattern, but not marked
    fake.mkdir()
    runs = [service._new_result_dir() for _ in range(4)]
    assert [r.exists() for r in runs] == [False, False, True, True]
    assert (work / "run-foo" / "holiday.mp4").is_file() and (work / "run-0123456789ab").is_dir()
    assert fake.is_dir()
    (tmp_path / "other" / ".mraa-app").mkdir(parents=True)  # a user's folder of that name
    with pytest.raises(MRAAError, match="not made by mraa's app"):
        _service(files, tmp_path / "other")


def test_app_folder_never_holds_its_samples(files, tmp_path):
    import shutil

    from mraa.app import AnimationService, Limits, Samples

    service = _service(files, tmp_path / "work")
    inside = service.work_dir / "src.png"  # a sample kept in the app's own (prunable) folder
    shutil.copy(files["source"], inside)
    with pytest.raises(MRAAError, match="sample .* is inside --work-dir"):
        AnimationService(service.animator, tmp_path / "work", Limits(), Samples(inside, files["driving"]))
    assert inside.is_file()


def test_app_serves_only_its_own_folder(files, tmp_path):
    pytest.importorskip("gradio")
    import socket
    import urllib.error
    import urllib.request

    from mraa.app import launch_app

    work = tmp_path / "work"
    work.mkdir()
    secret = work / "notes.txt"
    secret.write_text("the user's")
    service = _service(files, work)
    result = service._new_result_dir() / "result.txt"
    result.write_text("a result")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    blocks, url = launch_app(service, port=port, block=False)

    def status(path: Path) -> int:
        try:
            with urllib.request.urlopen(f"{url.rstrip('/')}/gradio_api/file={path}", timeout=10) as reply:
                return reply.status
        except urllib.error.HTTPError as exc:
            return exc.code

    try:
        assert status(result) == 200
        assert status(secret) == 403
    finally:
        blocks.close()


# ----------------------------------------------------------------------------- item 4: --overwrite
def test_segment_refuses_existing_outputs_without_overwrite(files, tmp_path, capsys):
    out = tmp_path / "seg"
    out.mkdir()
    (out / "labels.png").write_text("the user's labels")
    argv = ["segment", "--input", str(files["source"]), "--output", str(out), "--quiet",
            "--checkpoint", str(files["checkpoint"]), "--config", str(files["config"])]  # fmt: skip
    assert main(argv) == 2
    assert "labels.png" in (err := _one_line_error(capsys)) and "--overwrite" in err
    assert (out / "labels.png").read_text() == "the user's labels" and sorted(os.listdir(out)) == [
        "labels.png"
    ]
    assert main([*argv, "--overwrite"]) == 0
    assert (out / "labels.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("fmt", ["safetensors", "onnx"])
def test_export_refuses_existing_outputs_without_overwrite(files, tmp_path, fmt, capsys):
    if fmt == "onnx":
        pytest.importorskip("onnx")
    out = tmp_path / "export"
    out.mkdir()
    (out / "config.yaml").write_text("the user's config\n")
    argv = ["export", "--checkpoint", str(files["checkpoint"]), "--config", str(files["config"]),
            "--output", str(out), "--format", fmt]  # fmt: skip
    assert main(argv) == 2
    assert "config.yaml already exists" in _one_line_error(capsys)
    assert (out / "config.yaml").read_text() == "the user's config\n" and len(os.listdir(out)) == 1
    if fmt == "onnx":  # replacing is tested with the safetensors format (an ONNX export takes seconds)
        return
    assert main([*argv, "--overwrite"]) == 0
    assert "model_params" in (out / "config.yaml").read_text()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".mraa-tmp-")]


@pytest.mark.parametrize("fmt", ["safetensors", "onnx"])
def test_export_into_a_missing_parent_folder_is_a_typo(files, tmp_path, fmt, capsys):
    """``--output runz/vox`` (no ``runz``): one line, no folder tree created (as segment and animate)."""
    argv = ["export", "--checkpoint", str(files["checkpoint"]), "--config", str(files["config"]),
            "--output", str(tmp_path / "runz" / "vox"), "--format", fmt]  # fmt: skip
    assert main(argv) == 2
    assert "output directory does not exist" in _one_line_error(capsys)
    assert not (tmp_path / "runz").exists()


# ----------------------------------------------------------------------------- item 7: --onnx-dir of another model
def test_onnx_dir_of_another_checkpoint_is_refused(files, tmp_path, capsys):
    """Also: the marked scratch folder of an export killed outright is removed by the next export."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import json

    from mraa.atomic import temp_dir

    onnx_dir = tmp_path / "onnx"
    onnx_dir.mkdir()
    scratch = temp_dir(onnx_dir, "export")  # what an export killed outright (SIGKILL) leaves
    (scratch / "generator.onnx").write_bytes(b"half a graph")
    os.utime(scratch, (PROCESS_START - 3600, PROCESS_START - 3600))
    export = ["export", "--checkpoint", str(files["checkpoint"]), "--config", str(files["config"]),
              "--output", str(onnx_dir), "--format", "onnx"]  # fmt: skip
    assert main(export) == 0
    assert not scratch.exists() and not [p for p in onnx_dir.iterdir() if p.name.startswith(".")]
    manifest = json.loads((onnx_dir / "onnx-manifest.json").read_text())
    assert manifest["frame_size"] == [64, 64] and len(manifest["weights_sha256"]) == 64
    assert manifest["checkpoint_sha256"] == _sha(files["checkpoint"])
    argv = ["animate", "--source", str(files["source"]), "--driving", str(files["driving"]), "--quiet",
            "--config", str(files["config"]), "--backend", "onnxruntime", "--onnx-dir", str(onnx_dir),
            "--mode", "relative"]  # fmt: skip
    capsys.readouterr()
    assert main([*argv, "--checkpoint", str(files["checkpoint"]), "--output", str(tmp_path / "a.mp4")]) == 0
    assert main([*argv, "--checkpoint", str(files["other"]), "--output", str(tmp_path / "b.mp4")]) == 2
    assert "holds graphs of another model or size" in _one_line_error(capsys)
    assert not (tmp_path / "b.mp4").exists()
    (onnx_dir / "onnx-manifest.json").unlink()  # graphs of unknown origin are not trusted either
    assert main([*argv, "--checkpoint", str(files["checkpoint"]), "--output", str(tmp_path / "c.mp4")]) == 2
    assert "without mraa's onnx-manifest.json" in _one_line_error(capsys)


# ----------------------------------------------------------------------------- item 10: full disks
@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB tmpfs (needs root and mount; skipped otherwise)."""
    with tmpfs(tmp_path / "disk", "64k") as mount:
        yield mount


def test_checkpoint_and_export_on_a_full_disk(files, full_disk, capsys):
    from mraa.checkpoint import read_checkpoint, save_checkpoint

    models = read_checkpoint(files["checkpoint"])  # a dict of state dicts: larger than the disk
    with pytest.raises(MRAAError, match="cannot write .*ck.pth: No space left on device"):
        save_checkpoint(full_disk / "ck.pth", _Holder(models))
    assert list(full_disk.iterdir()) == []
    formats = ["safetensors"] + (["onnx"] if _has("onnx") else [])
    for fmt in formats:
        argv = ["export", "--checkpoint", str(files["checkpoint"]), "--config", str(files["config"]),
                "--output", str(full_disk / "exp"), "--format", fmt]  # fmt: skip
        assert main(argv) == 2
        assert "no space left on device" in _one_line_error(capsys).lower()
        assert [p for p in full_disk.rglob("*") if p.is_file()] == []


class _Holder:
    """Networks' state dicts where save_checkpoint expects modules."""

    def __init__(self, data: dict) -> None:
        self.data = data

    def __getattr__(self, name: str):
        state = self.data[name]
        return type("M", (), {"state_dict": lambda self: state})()


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_prepare_on_a_full_disk_fails(tmp_path, full_disk, capsys):
    """Before: the second video's chunks did not fit, it was listed as unreadable and prepare exited 0."""
    pytest.importorskip("cv2")
    import json

    rng = np.random.default_rng(0)
    (tmp_path / "videos").mkdir()
    (tmp_path / "boxes").mkdir()
    for name, count in (("a", 6), ("b", 60)):
        write_video(
            tmp_path / "videos" / f"{name}.mp4", rng.integers(0, 255, (count, 64, 64, 3), np.uint8), 10
        )
        boxes = {"frames": {str(i): [8, 8, 56, 56] for i in range(count)}}
        (tmp_path / "boxes" / f"{name}.json").write_text(json.dumps(boxes))
    argv = ["prepare", "-i", str(tmp_path / "videos"), "-o", str(full_disk / "ds"), "--boxes", str(tmp_path / "boxes"),
            "--size", "32", "--min-frames", "4", "--min-person-height", "10", "--shot-threshold", "0",
            "--format", "png", "--test-fraction", "0", "--no-progress"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: disk full (no space left on device)") and "b.mp4" in err[-1]
    assert not (full_disk / "ds" / "manifest.csv").exists()


# ----------------------------------------------------------------------------- item 10: training folders
def _train_argv(files, log_dir: Path, *extra: str) -> list[str]:
    sets = ["dataset_params.frame_shape=[32,32,3]", "train_params.num_epochs=1", "train_params.num_repeats=1",
            "train_params.batch_size=1", *extra]  # fmt: skip
    argv = ["train", "--config", str(TINY), "--log-dir", str(log_dir), "--data", str(files["data"]),
            "--device", "cpu", "--no-progress", "--seed", "0", "--no-tensorboard"]  # fmt: skip
    return argv + [item for value in sets for item in ("--set", value)]


def test_a_second_training_in_a_busy_folder_is_refused(files, tmp_path, capsys):
    from mraa.training.rundir import lock_run_dir, unlock_run_dir

    log_dir = tmp_path / "run"
    log_dir.mkdir()
    holder = lock_run_dir(log_dir)  # a training run at work in the folder
    try:
        assert main(_train_argv(files, log_dir)) == 2
        assert "is in use by another training run" in _one_line_error(capsys)
        assert sorted(os.listdir(log_dir)) == [".mraa-train.lock"]  # no config.yaml, nothing cleared
        assert main([*_train_argv(files, log_dir), "--resume"]) == 2
    finally:
        unlock_run_dir(log_dir, holder)


def test_a_failed_new_run_does_not_block_the_next(files, tmp_path, capsys):
    from mraa.training.rundir import check_run_dir

    log_dir = tmp_path / "run"
    # 36 / 2 = 18 is not divisible by 2**3: the networks fail at the first step, after config.yaml was written
    assert main(_train_argv(files, log_dir, "dataset_params.frame_shape=[36,36,3]")) != 0
    capsys.readouterr()
    assert not log_dir.exists()  # made by the failed run, and left empty: removed
    log_dir.mkdir()
    (log_dir / "notes.txt").write_text("the user's")
    assert main(_train_argv(files, log_dir, "dataset_params.frame_shape=[36,36,3]")) != 0
    assert sorted(os.listdir(log_dir)) == ["notes.txt"]  # no config.yaml, metrics.jsonl or lock left
    assert check_run_dir(log_dir, ("reconstruction",), resume=False, overwrite=False) == []


# ----------------------------------------------------------------------------- item 10: batch in its input folder
def test_a_batch_writing_into_its_input_folder_resumes(files, tmp_path, capsys):
    import shutil

    folder = tmp_path / "clips"
    folder.mkdir()
    shutil.copy(files["driving"], folder / "drv.mp4")
    argv = ["animate", "--source", str(files["source"]), "--driving", str(folder), "--output", str(folder),
            "--checkpoint", str(files["checkpoint"]), "--config", str(files["config"]), "--quiet"]  # fmt: skip
    assert main([*argv, "--mode", "standard"]) == 0
    assert sorted(os.listdir(folder)) == ["drv.mp4", "src__drv.mp4"]
    capsys.readouterr()
    assert main([*argv, "--mode", "standard"]) == 0  # the result is not taken for a new driving video
    assert "1 skipped, 0 failed" in capsys.readouterr().out
    assert sorted(os.listdir(folder)) == ["drv.mp4", "src__drv.mp4"]
