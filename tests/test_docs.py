"""What a reader copies from the docs is real: imports resolve, paths exist, YAML validates, commands parse."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from mtst.training.config import TrainConfig

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_mtst_import_in_the_docs_resolves():
    """A module move must not leave README/docs pointing at names that no longer exist."""
    import importlib

    docs = [README, *sorted(README.parent.joinpath("docs").glob("*.md"))]
    found = []
    for doc in docs:
        for module, names in re.findall(r"^\s*from (mtst[\w.]*) import ([\w, ]+)$", doc.read_text(encoding="utf-8"),
                                        flags=re.M):
            found.append(doc.name)
            loaded = importlib.import_module(module)
            missing = [name.strip() for name in names.split(",") if not hasattr(loaded, name.strip())]
            assert not missing, f"{doc.name}: {module} has no {missing}"
    assert "README.md" in found


def test_every_image_a_doc_embeds_exists():
    docs = [README, *sorted(README.parent.joinpath("docs").glob("*.md"))]
    embedded = [(doc, target) for doc in docs
                for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+\.png)\)", doc.read_text(encoding="utf-8"))]
    assert embedded, "no doc embeds a plot"
    missing = [f"{doc.name}: {target}" for doc, target in embedded if not (doc.parent / target).is_file()]
    assert not missing, missing

