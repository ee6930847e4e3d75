"""The folders are the layers: a lower layer never imports a higher one, and no modules import in a circle.

Imports are read with ``ast`` (function-level and TYPE_CHECKING imports count too).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "styled"
#: Rank of each part of styled: a module may import only its own rank or lower.
LAYERS = {
    "styled.errors": 0,
    "styled.settings": 1,
    "styled.io": 1,
    "styled.nets": 2,
    "styled.engine": 3,
    "styled.plugins": 4,
    "styled.report": 4,
    "styled.video": 5,
    "styled.daemon": 6,
    "styled.web": 7,
    "styled.cli": 8,
    "styled.__main__": 8,
    "styled": 8,  # the public facade, styled/__init__.py
}


def module_name(path: Path) -> str:
    parts = ["styled", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    best = max((prefix for prefix in LAYERS if module == prefix or module.startswith(prefix + ".")), key=len)
    return LAYERS[best]


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "styled":
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "styled")
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}


def test_no_lower_layer_imports_a_higher_one():
    offences = [f"{module} imports {target}" for module, targets in graph().items() for target in targets
                if layer_of(target) > layer_of(module)]
    assert not offences, "\n".join(offences)


def test_no_import_circles_among_styleds_modules():
    edges = graph()
    # The package facades (__init__) are the doors in, not a place where logic loops.
    edges = {name: {t for t in targets if t not in ("styled", "styled.plugins")} for name, targets in edges.items()}
    circles = []
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                circles.append(" -> ".join([*trail[trail.index(target):], target]))
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = 2

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    assert not circles, "\n".join(circles)


def test_the_checker_sees_an_upward_import(tmp_path):
    """The rule is real: the engine importing the daemon is caught."""
    assert layer_of("styled.daemon.service") > layer_of("styled.engine.gatys")
    assert layer_of("styled.io.files") < layer_of("styled.nets.vgg") < layer_of("styled.engine.render")


def test_every_folder_of_the_package_is_a_regular_package():
    folders = {path.parent for path in PACKAGE.rglob("*.py") if "__pycache__" not in path.parts}
    missing = sorted(str(folder.relative_to(PACKAGE.parent)) for folder in folders if not (folder / "__init__.py").exists())
    assert not missing, f"folders without __init__.py (one convention: regular packages): {missing}"


def private_imports(path: Path) -> list[str]:
    """``from styled... import _name`` in ``path``: reaching past a module's public names."""
    return [f"{path.name}: from {node.module} import {alias.name}"
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "styled"
            for alias in node.names if alias.name.startswith("_")]


def test_benchmarks_tools_and_example_plugins_use_only_public_names():
    """Scripts outside the package and the tests break silently when they reach into private names
    (benchmarks/speed.py once called an engine function whose signature had changed)."""
    outside = [PACKAGE.parent / folder for folder in ("benchmarks", "tools", "plugins")]
    offences = [line for folder in outside for path in sorted(folder.glob("*.py")) for line in private_imports(path)]
    assert not offences, "\n".join(offences)


def test_the_private_import_check_sees_one(tmp_path):
    script = tmp_path / "script.py"
    script.write_text("from styled.engine.gatys import _Run, collect_terms\n", encoding="utf-8")
    assert private_imports(script) == ["script.py: from styled.engine.gatys import _Run"]
