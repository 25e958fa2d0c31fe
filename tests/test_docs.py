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


# ---- issue 34: every path, YAML block and command a reader may copy is checked -----------------------------------
ROOT = README.parent
DOCS = [README, *sorted(ROOT.joinpath("docs").glob("*.md")), ROOT / "src/mtst/pretrained/default/README.md",
        *sorted(path for path in ROOT.joinpath("benchmarks").glob("**/README.md") if ".cache" not in path.parts)]
# (.cache holds git-ignored training runs, whose model cards name the machine's data paths)
REPO_PATH = re.compile(r"(?<![\w./-])((?:benchmarks|tests|configs|docs|src|requirements|\.ci)/[\w./-]*\w\.(?:py|md|yaml"
                       r"|json|png|sh|txt|toml|safetensors))")
MACHINE_PATH = re.compile(r"(?<![\w.])(/work/|/tmp/|/home/|/Users/|/root/|[A-Z]:\\\\)")


def _code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_every_repository_path_the_docs_quote_exists():
    missing = [f"{doc.relative_to(ROOT)}: {path}" for doc in DOCS for path in REPO_PATH.findall(doc.read_text("utf-8"))
               if not (ROOT / path).exists() and not (doc.parent / path).exists()]
    assert not missing, missing


def test_no_doc_quotes_a_machine_or_temporary_path():
    found = [f"{doc.relative_to(ROOT)}:{number}: {line.strip()[:80]}" for doc in DOCS
             for number, line in enumerate(doc.read_text("utf-8").splitlines(), 1) if MACHINE_PATH.search(line)]
    assert not found, found


def test_every_yaml_block_validates_against_the_config_schema():
    """Whole configs validate as they are; a fragment (no ``tasks``) validates beside one minimal task."""
    task = {"name": "t", "type": "sentence_classification", "data": {"train": {"path": "t.csv", "format": "csv"}}}
    blocks = [(doc, block) for doc in DOCS for block in _code_blocks(doc.read_text("utf-8"), "yaml")]
    assert blocks
    for doc, block in blocks:
        raw = next(iter(yaml.safe_load_all(block)), None)  # a block may show several documents: the first
        if isinstance(raw, dict) and "tasks" not in raw and set(raw) <= set(TrainConfig.model_fields):
            raw = {**raw, "tasks": [task]}
        if isinstance(raw, dict) and set(raw) <= set(TrainConfig.model_fields):
            TrainConfig.model_validate(raw)  # raises with the key and the problem


def _command_lines(text: str) -> list[tuple[str, bool]]:
    """``(line, in_a_bash_block)`` for each ``mtst ...`` line of a bash block (continuations joined, comments
    dropped) and each inline ``mtst ...`` code span (prose may name a table row "mtst chose": no command check)."""
    lines = []
    for block in _code_blocks(text, "bash"):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            line = re.sub(r"\s#.*$", "", line.split("$ ", 1)[-1]).strip()
            lines += [(part.strip(), True) for part in line.split("&&") if part.strip().startswith("mtst ")]
    lines += [(code, False) for code in re.findall(r"`(mtst [^`]+)`", text) if "..." not in code]
    return lines


def test_every_mtst_command_the_docs_quote_uses_real_options():
    import shlex

    import typer

    from mtst.cli.app import app

    root = typer.main.get_command(app)
    checked, wrong = 0, []
    for doc in DOCS:
        for line, in_block in _command_lines(doc.read_text("utf-8")):
            words = shlex.split(line.split("|")[0].split(">")[0], comments=True)[1:]
            command = root.commands.get(words[0]) if words else None
            if command is None:
                if in_block and words and not words[0].startswith("-"):
                    wrong.append(f"{doc.name}: `{line}`: no command '{words[0]}'")
                continue
            options = {opt for param in command.params if param.param_type_name == "option"
                       for opt in (*param.opts, *param.secondary_opts)} | {"--help"}
            unknown = [word.split("=")[0] for word in words[1:] if word.startswith("-") and word != "-"
                       and not re.fullmatch(r"-\d.*", word) and word.split("=")[0] not in options]
            wrong += [f"{doc.name}: `{line}`: {flag}" for flag in unknown]
            checked += 1
    assert checked > 20
    assert not wrong, wrong
