"""README's "Train on your own data" section, run verbatim on tiny data (the tiny encoder stands in for the default
backbone, and the 200-step floor of the default length is lowered so it finishes in seconds)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from typer.testing import CliRunner

from helpers import NER_SENTENCES, TOPIC_ROWS
from mtst.cli import app

README = Path(__file__).resolve().parents[2] / "README.md"


def _section() -> str:
    text = README.read_text(encoding="utf-8")
    found = re.search(r"## Train on your own data\n(.*?)\n## ", text, flags=re.S)
    assert found, "README lost its 'Train on your own data' section"
    return found.group(1)


def test_section_is_short() -> None:
    assert len(_section().strip().splitlines()) <= 16


def test_readme_own_data_section_runs_verbatim(tmp_path, tiny_st_dir, monkeypatch) -> None:
    monkeypatch.setattr("mtst.model.encoder.default_backbone_path", lambda: tiny_st_dir)
    monkeypatch.setattr("mtst.training.plan.MIN_STEPS", 1)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    intents = [(text, "booking" if label == "sports" else "weather") for text, label in TOPIC_ROWS]
    (tmp_path / "data" / "intents.csv").write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in intents) * 3)
    (tmp_path / "data" / "ner.conll").write_text(
        "\n\n".join("\n".join(f"{w} {tag}" for w, tag in s) for s in NER_SENTENCES * 3) + "\n")
    section = _section()
    commands = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1).splitlines()
    runner = CliRunner()
    for line in commands:
        args = shlex.split(line, comments=True)
        assert args[0] == "mtst"
        result = runner.invoke(app, args[1:])
        assert result.exit_code == 0, f"{line}\n{result.output}"
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2  # the dry run wrote nothing; two runs, two fresh directories
    assert all((run / "best" / "README.md").exists() for run in runs)
    code = re.search(r"<!-- snippet: own-data -->\n```python\n(.*?)```", section, flags=re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md:own-data", "exec"), namespace)
    assert namespace["trained"].model.config.heads["intent"].labels == ["booking", "weather"]
    assert len(list((tmp_path / "runs").iterdir())) == 3
