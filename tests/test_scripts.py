"""scripts/train_default.sh: every command parses, and each stage reads the checkpoint the one before writes."""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

from mraa.cli import build_parser
from mraa.config import apply_overrides, load_config

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "train_default.sh"


def _commands() -> list[list[str]]:
    """The script's command lines (continuations joined, variables replaced by their defaults)."""
    text = SCRIPT.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    commands = []
    for line in lines:
        if line.startswith("$MRAA ") or line.startswith("python "):
            line = line.replace("$DATA", "data/synth64").replace("$RUNS", "runs")
            commands.append(shlex.split(line))
    return commands


def _assets_parser():
    path = ROOT / "scripts" / "make_default_assets.py"
    spec = importlib.util.spec_from_file_location("make_default_assets", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_parser()


def _config(args):
    """The config a ``mraa train`` command trains with: its --config plus its --set overrides."""
    return apply_overrides(load_config(ROOT / args.config), list(args.set))


def _last(log_dir: str, epochs: int, mode: str) -> str:
    """The checkpoint a run of ``epochs`` epochs writes last."""
    return f"{log_dir}/{epochs - 1:08d}-cpk-{mode}.pth"


def test_train_default_script_is_consistent():
    commands = _commands()
    names = [c[1] for c in commands]
    assert names[0] == "synth" and names[-2:] == ["train-avd", "scripts/make_default_assets.py"]
    assert set(names[1:-2]) == {"train"}
    parser = build_parser()
    synth, *stages, avd = [parser.parse_args(c[1:]) for c in commands[:-1]]
    assets = _assets_parser().parse_args(commands[-1][2:])
    assert {s.data for s in stages} == {avd.data, str(synth.out), assets.data}
    configs = [_config(stage) for stage in stages]
    assert stages[0].checkpoint is None
    for previous, stage, cfg in zip(stages, stages[1:], configs):  # each stage starts where the last ended
        assert stage.checkpoint == _last(previous.log_dir, cfg.train_params.num_epochs, "reconstruction")
    for cfg in configs:
        assert all(m < cfg.train_params.num_epochs for m in cfg.train_params.epoch_milestones)
    assert len({stage.log_dir for stage in stages}) == len(stages)
    assert len({stage.seed for stage in stages}) == len(stages)  # a new data order in each stage
    assert avd.checkpoint == _last(stages[-1].log_dir, configs[-1].train_params.num_epochs, "reconstruction")
    assert assets.checkpoint == _last(avd.log_dir, configs[-1].train_avd_params.num_epochs, "avd")
    assert assets.earlier_epochs == [cfg.train_params.num_epochs for cfg in configs[:-1]]


def test_readme_shows_the_script():
    """The README's copy of the recipe is the script's."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"Reproduce it with `bash scripts/train_default.sh`.*?```bash\n(.*?)```", readme, re.S)
    assert block is not None
    shown = [shlex.split(line) for line in block.group(1).replace("\\\n", " ").splitlines() if line.strip()]
    expected = [[("mraa" if w == "$MRAA" else w) for w in c] for c in _commands()]
    assert shown == expected
