"""Every module under benchmarks/ imports: a renamed or removed package name breaks CI, not the next benchmark run.

Modules are discovered with pkgutil, so a new or renamed harness is covered without editing this test.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

import benchmarks

MODULES = sorted(info.name for info in pkgutil.walk_packages(benchmarks.__path__, "benchmarks."))


def test_every_python_file_is_a_module_that_gets_imported() -> None:
    """A folder without __init__.py would hide its files from the discovery above."""
    root = Path(benchmarks.__file__).parent
    files = {".".join(path.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__")
             for path in root.rglob("*.py")}
    assert files - {"benchmarks"} == set(MODULES)
    assert {"benchmarks.common", "benchmarks.quality.__main__", "benchmarks.speed.__main__",
            "benchmarks.load.__main__"} <= files


@pytest.mark.parametrize("name", MODULES)
def test_module_imports(name: str) -> None:
    importlib.import_module(name)
