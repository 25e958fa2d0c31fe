"""The package layout keeps its promises: every module imports on its own, the import directions hold
(import-linter's contracts in pyproject.toml), and no module grows past the size we review comfortably."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mtst

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(mtst.__file__).parent
MAX_LINES = 300


def module_names() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


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


def test_no_module_is_too_long():
    lengths = {str(path.relative_to(PACKAGE)): len(path.read_text().splitlines()) for path in PACKAGE.rglob("*.py")}
    long = {name: count for name, count in lengths.items() if count > MAX_LINES}
    assert not long, f"split these along the data flow: {long}"
