"""mtst.extras and the packaging it describes: a missing optional library is one line naming its extra; the extras
in pyproject.toml are the ones mtst.extras knows; every range in pyproject.toml holds the locked version."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import mtst
from mtst.errors import MtstError
from mtst.extras import EXTRAS, MissingExtraError, check, extra_for, message, missing_module, require

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
LOCK = ROOT / "requirements" / "lock.txt"


def locked_versions() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def test_message_is_one_line_naming_the_extra_and_the_command():
    assert message("serve", "mtst serve") == "mtst serve needs the 'serve' extra: pip install 'mtst[serve]'"
    assert message("train", "mtst train", "accelerate") == (
        "mtst train needs the 'train' extra: pip install 'mtst[train]' (no module named 'accelerate')")


@pytest.mark.parametrize("extra", list(EXTRAS))
def test_check_names_the_extra_when_one_of_its_libraries_is_missing(monkeypatch, extra):
    module = EXTRAS[extra][-1]
    monkeypatch.setitem(sys.modules, module, None)  # what Python does for a module that cannot be imported
    assert missing_module(extra) == module
    with pytest.raises(MissingExtraError) as caught:
        check(extra, "this command")
    assert str(caught.value) == message(extra, "this command", module)
    assert isinstance(caught.value, MtstError) and isinstance(caught.value, ImportError)
    assert caught.value.name == module


def test_require_imports_or_names_the_extra(monkeypatch):
    assert require("train", "json").__name__ == "json"  # an installed module comes back imported
    for name in ("sklearn", "sklearn.metrics"):  # not importable, even when an earlier test imported them
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(MissingExtraError, match=r"^scoring needs the 'train' extra: pip install 'mtst\[train\]'"):
        require("train", "sklearn.metrics", "scoring")
    with pytest.raises(MissingExtraError) as caught:
        require("train", "sklearn.metrics")
    assert str(caught.value).startswith("'sklearn.metrics' needs the 'train' extra: pip install 'mtst[train]' (no ")


def test_require_reports_a_library_missing_under_the_one_asked_for(monkeypatch):
    import importlib

    def broken(name):
        raise ModuleNotFoundError("No module named 'pyarrow'", name="pyarrow")

    monkeypatch.setattr(importlib, "import_module", broken)
    with pytest.raises(MissingExtraError, match=r"'ray' extra.*no module named 'pyarrow'"):
        require("ray", "ray.data", "--engine ray")


def test_extra_for_maps_every_module_back_and_nothing_else():
    for extra, modules in EXTRAS.items():
        for module in modules:
            assert extra_for(module) == extra
            assert extra_for(f"{module}.sub.module") == extra
    assert extra_for("numpy") is None and extra_for("") is None


def test_pyproject_declares_exactly_these_extras_and_all_of_them_in_all():
    declared = PROJECT["optional-dependencies"]
    assert set(declared) - {"all", "dev"} == set(EXTRAS)
    assert declared["all"] == [f"mtst[{','.join(EXTRAS)}]"]
    assert "mtst[all]" in declared["dev"]


def test_dependencies_are_ranges_that_the_locked_versions_satisfy():
    assert PROJECT["requires-python"] == ">=3.11"
    pins = locked_versions()
    requirements = [Requirement(text) for text in PROJECT["dependencies"]]
    for extra, texts in PROJECT["optional-dependencies"].items():
        requirements += [Requirement(text) for text in texts if not text.startswith("mtst[")]
    for requirement in requirements:
        operators = {spec.operator for spec in requirement.specifier}
        assert operators == {">=", "<"}, f"{requirement}: give a tested lower bound and the next major as upper"
        name = requirement.name.lower().replace("_", "-")
        assert name in pins, f"{name} is not in {LOCK.name}; run make lock"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} is outside {requirement.specifier}"


def test_lock_file_pins_every_line_exactly_and_not_mtst_itself():
    pins = locked_versions()
    assert "mtst" not in pins and pins["torch"] == "2.13.0"
    assert all(version and "+" not in version for version in pins.values())


def test_public_names_are_lazy_and_all_resolve():
    assert set(mtst.__all__) == {"MtstError", *mtst._LAZY}
    for name in mtst.__all__:
        assert getattr(mtst, name) is not None
    assert set(mtst.__all__) <= set(dir(mtst))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mtst.nope  # noqa: B018


def test_a_public_name_whose_module_needs_a_missing_extra_names_it(monkeypatch):
    monkeypatch.setitem(mtst._LAZY, "Served", "fastapi")  # a stand-in for a public name living behind an extra
    monkeypatch.setitem(sys.modules, "fastapi", None)
    with pytest.raises(MissingExtraError, match=r"^mtst\.Served needs the 'serve' extra: pip install 'mtst\[serve\]'"):
        mtst.Served  # noqa: B018
