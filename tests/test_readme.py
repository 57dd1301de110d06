"""Every ```python block of README.md runs as written (on the shipped model and sample, offline)."""

import re

import pytest

from .conftest import ROOT

BLOCKS = re.findall(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(encoding="utf-8"), re.M | re.S)


def test_readme_has_python_blocks():
    assert BLOCKS


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # files the snippet writes land here
    code = compile(BLOCKS[index], f"README.md python block {index + 1}", "exec")
    exec(code, {"__name__": "__readme__"})
    if "animate_file" in BLOCKS[index]:
        assert "64 25.0 False" in capsys.readouterr().out
        assert (tmp_path / "out.mp4").is_file()
