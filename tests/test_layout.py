"""The package layout keeps its promises: every module imports on its own, the import directions hold
(import-linter's contracts in pyproject.toml), no two modules import each other in a cycle (counting imports under
TYPE_CHECKING and inside functions), and no module grows past the size we review comfortably."""

from __future__ import annotations

import ast
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import mtst

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(mtst.__file__).parent
MAX_LINES = 300


def module_names() -> list[str]:
    return [_module_name(path) for path in sorted(PACKAGE.rglob("*.py")) if path.stem != "__main__"]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_every_module_imports_on_its_own():
    # One interpreter; before each import every mtst module is forgotten, so each one is imported first, alone:
    # an import cycle or a missing import shows up as an ImportError naming the module.
    script = (
        "import importlib, sys\n"
        "failed = []\n"
        f"for name in {module_names()!r}:\n"
        "    for loaded in [m for m in sys.modules if m == 'mtst' or m.startswith('mtst.')]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        failed.append(f'{name}: {type(exc).__name__}: {exc}')\n"
        "print('\\n'.join(failed))\n"
        "sys.exit(1 if failed else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_directions_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "0 broken" in result.stdout


def import_graph() -> dict[str, dict[str, str]]:
    """module -> {mtst module it imports: "file:line" of the first such import}, from every import statement
    in the file (module level, under TYPE_CHECKING, inside functions)."""
    paths = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, dict[str, str]] = {name: {} for name in paths}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from .x import y, from .. import z
                    parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{parent}.{base}" if base else parent
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in paths else base for alias in node.names]
            else:
                continue
            for target in targets:
                while target and target not in paths:  # mtst.model.x.attr -> mtst.model.x
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].setdefault(target, f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    return graph


def import_cycles(graph: dict[str, dict[str, str]]) -> list[list[str]]:
    """One cycle per back edge of a depth-first walk: every strongly connected group shows up at least once."""
    cycles: list[list[str]] = []
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = "open"
        stack.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return cycles


def test_no_import_cycles_between_modules_counting_type_checking_and_local_imports():
    graph = import_graph()
    cycles = [" -> ".join(f"{a} ({graph[a][b]})" for a, b in pairwise(cycle)) + f" -> {cycle[-1]}"
              for cycle in import_cycles(graph)]
    assert not cycles, "import cycles (module (file:line of its import) -> ...):\n" + "\n".join(cycles)


def test_the_cycle_scan_sees_imports_under_type_checking_and_inside_functions():
    graph = import_graph()
    assert "mtst.model.storage" in graph["mtst.model.multitask"]  # at module level
    assert "mtst.model.multitask" in graph["mtst.inference.agreement"]  # under TYPE_CHECKING
    assert "mtst.model.storage" in graph["mtst.inference.describe"]  # inside a function
    looped = {"a": {"b": "a.py:1"}, "b": {"c": "b.py:1"}, "c": {"a": "c.py:5"}, "d": {"a": "d.py:1"}}
    assert import_cycles(looped) == [["a", "b", "c", "a"]]


def test_no_module_is_too_long():
    lengths = {str(path.relative_to(PACKAGE)): len(path.read_text().splitlines()) for path in PACKAGE.rglob("*.py")}
    long = {name: count for name, count in lengths.items() if count > MAX_LINES}
    assert not long, f"split these along the data flow: {long}"
