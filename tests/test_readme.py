"""README's quickstart and few-shot snippets, run verbatim on the shipped model (no data, no network)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _snippet(name: str) -> str:
    found = re.search(rf"<!-- snippet: {name} -->\n```python\n(.*?)```", README.read_text("utf-8"), flags=re.S)
    assert found, f"README lost its {name} snippet"
    return found.group(1)


def test_readme_is_short():
    assert len(README.read_text("utf-8").splitlines()) <= 160


@pytest.mark.slow
def test_quickstart_runs_verbatim_on_the_shipped_model(capsys):
    namespace: dict = {}
    exec(compile(_snippet("quickstart"), "README.md:quickstart", "exec"), namespace)
    assert namespace["vectors"].shape == (2, 384)
    assert namespace["scores"].shape == (2, 2) and float(namespace["scores"][0, 1]) > 0.5
    row = namespace["row"]
    assert row["topic"]["label"] == "World" and len(row["embedding"]) == 384
    assert [e["label"] for e in row["ner"]] == ["PER", "PER", "LOC"]
    assert "World" in capsys.readouterr().out


@pytest.mark.slow
def test_few_shot_snippet_runs_verbatim_and_keeps_the_other_heads(capsys):
    namespace: dict = {}
    exec(compile(_snippet("few-shot"), "README.md:few-shot", "exec"), namespace)
    model = namespace["model"]
    assert model.tasks[-1] == "intent"
    assert model.predict("I want my money back")["intent"]["label"] == "refund"
    assert capsys.readouterr().out.strip() in {"refund", "delivery", "account"}
