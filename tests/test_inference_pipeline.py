"""The one file pipeline's own parts: the shared probe, the options object, the app and CLI sharing it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mraa.data.video_io import write_video
from mraa.inference import pipeline
from mraa.inference.pipeline import AnimateOptions, probe_driving


def test_a_driving_video_is_probed_once_per_version(tmp_path, monkeypatch):
    import mraa.data.video_io as video_io

    frames = np.zeros((3, 16, 16, 3), np.uint8)
    path = tmp_path / "d.mp4"
    write_video(path, frames, fps=10)
    calls = []
    real = video_io.probe_video
    monkeypatch.setattr(video_io, "probe_video", lambda p: calls.append(p) or real(p))
    first = probe_driving(path)
    assert probe_driving(str(path)) is first and len(calls) == 1  # the CLI's check and the pipeline's
    write_video(tmp_path / "e.mp4", frames[:2], fps=5)
    (tmp_path / "e.mp4").replace(path)  # another file under the same name is probed again
    assert probe_driving(path).num_frames == 2 and len(calls) == 2


def test_options_are_one_typed_object_and_keywords_replace_fields():
    options = AnimateOptions(mode="relative", smooth="ema:0.5")
    changed = dataclasses.replace(options, crop="face")
    assert (changed.mode, changed.smooth, changed.crop) == ("relative", "ema:0.5", "face")
    with pytest.raises(TypeError):
        AnimateOptions(smoth="ema:0.5")  # a typo is an error, not a silently ignored keyword


def test_the_pipeline_never_imports_the_animator():
    """The Animator's animate_file calls this module: importing the animator here would be a cycle."""
    import ast
    from pathlib import Path

    from mraa.inference import threads

    for file in (Path(pipeline.__file__), Path(threads.__file__)):
        imported = {
            node.module
            for node in ast.walk(ast.parse(file.read_text()))
            if isinstance(node, ast.ImportFrom) and node.module
        }
        assert not imported & {"mraa.animate", "mraa.inference.animator", "mraa.pipeline"}, file
