"""Command-line surface: every sub-command reports its own usage on a bad option; `crop --dry-run`."""

from __future__ import annotations

import argparse
import json

import pytest

from mraa.animate import DEFAULT_MODEL_DIR
from mraa.cli import build_parser, main


def _commands() -> list[str]:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(subparsers.choices)


def test_every_command_is_listed():
    assert {"animate", "crop", "export", "swap", "train", "train-avd", "app"} <= set(_commands())


@pytest.mark.parametrize("command", _commands())
def test_a_bad_option_prints_the_commands_own_usage(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--no-such-flag"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: mraa {command} "), err
    assert "error:" in err and "COMMAND ..." not in err


def test_unknown_option_after_all_required_ones_names_it_with_the_commands_usage(capsys):
    sample = [
        "--source",
        str(DEFAULT_MODEL_DIR / "source.png"),
        "--driving",
        str(DEFAULT_MODEL_DIR / "driving.mp4"),
    ]
    with pytest.raises(SystemExit):
        main(["crop", *sample, "--dryrun"])
    err = capsys.readouterr().err
    assert err.startswith("usage: mraa crop ") and "unrecognized arguments: --dryrun" in err
    with pytest.raises(SystemExit):
        main(["--no-such-flag"])  # no command: the top-level usage
    assert capsys.readouterr().err.startswith("usage: mraa [-h]")


def test_crop_dry_run_prints_the_boxes_and_writes_nothing(tmp_path, capsys):
    preview = tmp_path / "boxes.png"
    argv = ["crop", "--source", str(DEFAULT_MODEL_DIR / "source.png"), "--driving",
            str(DEFAULT_MODEL_DIR / "driving.mp4"), "--crop", "center", "--crop-preview", str(preview)]  # fmt: skip
    assert main([*argv, "--dry-run"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["crop"] == "center" and len(data["source"]["box"]) == 4
    assert list(tmp_path.iterdir()) == []
    assert main(argv) == 0  # without --dry-run the preview is written
    assert preview.is_file()
