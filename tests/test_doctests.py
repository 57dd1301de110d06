"""Every docstring example in src/mraa runs, and gives what it shows (``make test`` runs this file)."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

import mraa

PACKAGE = Path(mraa.__file__).resolve().parent


def _modules_with_examples() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if ">>> " in path.read_text(encoding="utf-8"):
            parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_the_coordinate_grid_example_is_collected():
    assert "mraa.geometry" in _modules_with_examples()
    finder = doctest.DocTestFinder()
    tests = {t.name: t for t in finder.find(importlib.import_module("mraa.geometry"))}
    assert tests["mraa.geometry.make_coordinate_grid"].examples


@pytest.mark.parametrize("name", _modules_with_examples())
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0, f"{name} has '>>> ' but no example was collected"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"
