"""The shape of the source tree (docs/architecture.md): no import cycles, no oversized files or classes,
one module that writes result videos.

Read from the source with :mod:`ast` (nothing is imported), so the checks are fast and see imports
inside functions too.

What counts as an import edge ``A -> B`` (A and B modules of ``src/mraa``), precisely:

- ``import a.b.c`` and ``import a.b.c as x``: A -> ``a.b.c``;
- ``from a.b import c``: A -> ``a.b.c`` when that is a module (a submodule named in the import), else
  A -> ``a.b`` (a name defined in, or re-exported by, the module / package ``__init__``);
- relative imports are resolved against A's package; imports anywhere in the file count (module level,
  inside functions, under ``if TYPE_CHECKING:``, in ``try``);
- the implicit import of a parent package when a submodule is imported is *not* an edge: Python runs
  ``a/__init__.py`` before ``a/b.py``, but that is how packages work, not a dependency of the importer.

So a package ``__init__`` that re-exports its submodules is no cycle by itself, whereas a submodule that
takes a name *from its package's* ``__init__`` (``from mraa.pkg import name`` inside ``mraa/pkg/x.py``,
where ``__init__`` imports ``x``) is one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "mraa"

MAX_FILE_LINES = 600
MAX_CLASS_LINES = 250

# The only module of src/mraa that drives a video writer (``VideoWriter`` or ``write_video``) for results
# (animations, swaps, segmentations, visualisations).
RESULT_WRITER = "mraa.inference.pipeline"

# Modules that drive a video writer for something that is not a result of a front-end, and why.
DATASET_WRITERS = {
    "mraa.data.video_io": "defines VideoWriter and write_video (the writer itself; write_video uses VideoWriter)",
    "mraa.data.synthetic": "renders the synthetic training dataset (mraa synth), not a result",
    "mraa.data.prepare": "writes prepared training clips (mraa prepare), not a result",
    "mraa.evaluation.reconstruction": "writes reconstruction videos of a test set for evaluation (mraa reconstruct)",
}


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every .py under src/mraa (``__init__`` named by its package)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _known(name: str) -> str | None:
    """The deepest module of src/mraa that ``name`` names (``a.b.c`` -> ``a.b`` when c is not a module)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return None


def import_edges(module: str, path: Path) -> set[str]:
    """The modules of src/mraa that ``module`` imports (see the module docstring for what counts)."""
    edges: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, path, node)
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names
            ]
        else:
            continue
        for target in targets:
            known = _known(target)
            if known is not None and known != module:
                edges.add(known)
    return edges


def import_graph() -> dict[str, set[str]]:
    return {module: import_edges(module, path) for module, path in MODULES.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def test_the_cycle_finder_sees_cycles_and_ignores_package_reexports():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"p": {"p.x"}, "p.x": {"p.y"}, "p.y": set()}) == []
    edges = import_edges("mraa.framing.plan", MODULES["mraa.framing.plan"])
    assert "mraa.framing.track" in edges and "mraa.framing" not in edges  # a submodule, not its package


def test_no_import_cycles():
    cycles = find_cycles(import_graph())
    assert cycles == [], "import cycles in src/mraa (see docs/architecture.md):\n" + "\n".join(
        " <-> ".join(c) for c in cycles
    )


def test_no_file_over_the_line_limit():
    long = {
        m: n
        for m, p in MODULES.items()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_FILE_LINES
    }
    assert long == {}, f"files over {MAX_FILE_LINES} lines: {long}"


def test_no_class_over_the_line_limit():
    long = {}
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
                long[f"{module}.{node.name}"] = node.end_lineno - node.lineno + 1
    assert long == {}, f"classes over {MAX_CLASS_LINES} lines: {long}"


VIDEO_WRITERS = ("VideoWriter", "write_video")  # the writer class and the one-call helper built on it


def _drives_video_writer(path: Path) -> bool:
    """Whether the file calls ``VideoWriter(...)`` or ``write_video(...)`` (by name or as an attribute)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            func = node.func
            name = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else ""
            )
            if name in VIDEO_WRITERS:
                return True
    return False


def _allowed_writer(module: str) -> bool:
    return any(module == m or module.startswith(m + ".") for m in DATASET_WRITERS)


def test_exactly_one_module_writes_result_videos():
    writers = sorted(m for m, p in MODULES.items() if _drives_video_writer(p) and not _allowed_writer(m))
    assert writers == [RESULT_WRITER], f"modules driving a video writer for results: {writers}"


@pytest.mark.parametrize("module", sorted(DATASET_WRITERS))
def test_allow_listed_dataset_writers_exist(module):
    assert any(m == module or m.startswith(module + ".") for m in MODULES), (
        f"{module} is gone: update the list"
    )


def test_ground_floor_imports_only_the_ground_floor():
    """image.py, boxes.py, errors.py, geometry.py, atomic.py: pure helpers that everything may use."""
    ground = {"mraa.image", "mraa.boxes", "mraa.errors", "mraa.geometry", "mraa.atomic"}
    graph = import_graph()
    leaks = {m: sorted(graph[m] - ground) for m in ground if graph[m] - ground}
    assert leaks == {}, f"ground-floor modules importing higher layers: {leaks}"


def _in(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


# (who, what they must not import, why) -- docs/architecture.md, "What may import what"
LAYER_RULES = [
    (lambda m: not _in(m, "mraa.cli", "mraa.__main__"), ("mraa.cli",), "only the CLI imports the CLI"),
    (lambda m: not _in(m, "mraa.cli", "mraa.app"), ("mraa.app",), "only the app and the CLI import the app"),
    (
        lambda m: _in(m, "mraa.framing"),
        ("mraa.animate", "mraa.pipeline", "mraa.inference", "mraa.models", "mraa.checkpoint", "mraa.modules",
         "mraa.training", "mraa.export"),
        "framing is pure parts: it never imports a model or an animator",
    ),
    (
        lambda m: _in(m, "mraa.data"),
        ("mraa.animate", "mraa.pipeline", "mraa.inference", "mraa.framing", "mraa.training", "mraa.evaluation",
         "mraa.export"),
        "data reads and writes frames; it runs no model and knows no framing",
    ),
]  # fmt: skip


@pytest.mark.parametrize("rule", range(len(LAYER_RULES)), ids=[r[2] for r in LAYER_RULES])
def test_layer_rules(rule):
    applies, forbidden, why = LAYER_RULES[rule]
    graph = import_graph()
    broken = sorted(
        f"{m} -> {e}" for m, edges in graph.items() if applies(m) for e in edges if _in(e, *forbidden)
    )
    assert broken == [], f"{why}: {broken}"


def test_networks_import_only_networks_and_the_ground_floor():
    allowed = ("mraa.modules", "mraa.geometry", "mraa.config", "mraa.errors", "mraa.image", "mraa.boxes",
               "mraa.atomic")  # fmt: skip
    graph = import_graph()
    broken = sorted(
        f"{m} -> {e}"
        for m, edges in graph.items()
        if _in(m, "mraa.modules", "mraa.geometry", "mraa.config")
        for e in edges
        if not _in(e, *allowed)
    )
    assert broken == [], broken
