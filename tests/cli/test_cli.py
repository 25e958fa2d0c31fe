"""End-to-end tests of the ``mtst`` command line: through typer's CliRunner and as a real subprocess."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.main import get_command
from typer.testing import CliRunner

from mtst import MultiTaskModel
from mtst.cli import app
from mtst.files import write_atomic

runner = CliRunner()
# Plain, fixed-width output whatever the environment running the tests says about terminals.
PLAIN_ENV = {"COLUMNS": "100", "FORCE_COLOR": None, "TTY_COMPATIBLE": None, "NO_COLOR": "1"}
TOPIC = ["world", "sports", "business"]
NER = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]


def invoke(*args: str | Path, stdin: str | bytes | None = None):
    return runner.invoke(app, [str(a) for a in args], input=stdin, env=PLAIN_ENV)


def mtst_executable() -> str:
    candidate = Path(sys.executable).with_name("mtst")
    return str(candidate) if candidate.exists() else (shutil.which("mtst") or "mtst")


@pytest.fixture(scope="module")
def model_dir(tiny_st_dir, tmp_path_factory) -> Path:
    """The conftest's tiny two-task model, saved once for the whole module."""
    torch.manual_seed(0)
    model = MultiTaskModel.from_backbone(tiny_st_dir)
    model.add_head("topic", "sentence_classification", TOPIC, hidden_dim=16)
    model.add_head("ner", "token_classification", NER)
    return model.save(tmp_path_factory.mktemp("cli") / "model")


@pytest.fixture(scope="module")
def loaded(model_dir) -> MultiTaskModel:
    return MultiTaskModel.load(model_dir)


def read_jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# ---- encode -------------------------------------------------------------------------------------
def test_encode_arguments_to_npy_match_library(tiny_st_dir, tmp_path):
    out = tmp_path / "emb.npy"
    result = invoke("encode", "the cat sat", "a dog", "--backbone", tiny_st_dir, "--output", out)
    assert result.exit_code == 0, result.output
    expected = MultiTaskModel.from_backbone(tiny_st_dir).encode(["the cat sat", "a dog"])
    got = np.load(out)
    assert got.shape == (2, 32) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_encode_file_to_jsonl_keeps_blank_lines(model_dir, loaded, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("john lives in paris\n\nthe market fell today\n", encoding="utf-8")
    out = tmp_path / "emb.jsonl"
    result = invoke("encode", "--input", source, "--model", model_dir, "-o", out)
    assert result.exit_code == 0, result.output
    rows = read_jsonl(out.read_text(encoding="utf-8"))
    texts = ["john lives in paris", "", "the market fell today"]
    assert [row["text"] for row in rows] == texts
    np.testing.assert_allclose(np.array([row["embedding"] for row in rows]), loaded.encode(texts), atol=1e-6)


@pytest.mark.parametrize("extra", [[], ["--input", "-"]])
def test_encode_reads_stdin_and_prints_jsonl_when_piped(model_dir, loaded, extra):
    result = invoke("encode", "--model", model_dir, *extra, stdin="good movie\nbad film\n")
    assert result.exit_code == 0, result.output
    rows = read_jsonl(result.stdout)
    assert [row["text"] for row in rows] == ["good movie", "bad film"]
    np.testing.assert_allclose(np.array([r["embedding"] for r in rows]), loaded.encode(["good movie", "bad film"]),
                               atol=1e-6)


def test_encode_table_shows_dimension_and_values(model_dir, loaded):
    result = invoke("encode", "the dog won", "--model", model_dir, "--format", "table")
    assert result.exit_code == 0, result.output
    assert "dimension 32" in result.stdout and "the dog won" in result.stdout
    first = loaded.encode(["the dog won"])[0, 0]
    assert f"{first:+.4f}" in result.stdout


def test_encode_backbone_options_are_applied(tiny_st_dir, tmp_path):
    out = tmp_path / "cls.npy"
    result = invoke("encode", "the cat", "--backbone", tiny_st_dir, "--pooling", "cls", "--no-normalize",
                    "--max-seq-length", "8", "-o", out)
    assert result.exit_code == 0, result.output
    expected = MultiTaskModel.from_backbone(tiny_st_dir, "cls", False, 8).encode(["the cat"])
    np.testing.assert_allclose(np.load(out), expected, atol=1e-6)
    assert abs(np.linalg.norm(expected) - 1.0) > 1e-3  # really not normalised


def test_encode_empty_input_gives_empty_results(model_dir, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    out = tmp_path / "empty.npy"
    assert invoke("encode", "-i", empty, "--model", model_dir, "-o", out).exit_code == 0
    assert np.load(out).shape == (0, 32)
    result = invoke("encode", "-i", empty, "--model", model_dir, "--format", "jsonl")
    assert result.exit_code == 0 and result.stdout == ""


# ---- similarity, predict, info ------------------------------------------------------------------
def test_similarity_json_is_symmetric_with_unit_diagonal(model_dir):
    sentences = ["the cat sat", "a dog sat", "the stock market fell"]
    result = invoke("similarity", *sentences, "--model", model_dir, "--format", "json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    sims = np.array(payload["similarity"])
    assert payload["sentences"] == sentences and sims.shape == (3, 3)
    np.testing.assert_allclose(sims, sims.T, atol=1e-6)
    np.testing.assert_allclose(np.diag(sims), 1.0, atol=1e-5)


def test_similarity_of_no_sentences_is_an_empty_matrix(model_dir):
    result = invoke("similarity", "--model", model_dir, "--format", "json", stdin="")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"sentences": [], "similarity": []}


def test_similarity_table_labels_rows(model_dir):
    result = invoke("similarity", "the cat sat", "a dog sat", "--model", model_dir)
    assert result.exit_code == 0, result.output
    assert "1 the cat sat" in result.stdout and "1.000" in result.stdout


def test_predict_jsonl_matches_library(model_dir, loaded):
    sentences = ["john smith lives in new york", "the team won the game"]
    result = invoke("predict", *sentences, "--model", model_dir)
    assert result.exit_code == 0, result.output
    rows = read_jsonl(result.stdout)
    assert len(rows) == 2 and all(set(row) == {"text", "topic", "ner"} for row in rows)
    expected = loaded.predict(sentences)
    for row, want in zip(rows, expected, strict=True):
        assert row["topic"]["label"] == want["topic"]["label"] and row["topic"]["label"] in TOPIC
        spans = [(e["text"], e["label"], e["start"], e["end"]) for e in want["ner"]]
        assert [(e["text"], e["label"], e["start"], e["end"]) for e in row["ner"]] == spans
        assert [e["score"] for e in row["ner"]] == pytest.approx([e["score"] for e in want["ner"]])
        for entity in row["ner"]:
            assert set(entity) == {"text", "label", "start", "end", "score"}
            assert row["text"][entity["start"] : entity["end"]] == entity["text"]


def test_predict_selected_tasks_embedding_and_output_file(model_dir, tmp_path):
    out = tmp_path / "pred.jsonl"
    result = invoke("predict", "mary visited london", "--model", model_dir, "--tasks", "ner", "--embedding", "-o", out)
    assert result.exit_code == 0, result.output
    (row,) = read_jsonl(out.read_text(encoding="utf-8"))
    assert set(row) == {"text", "ner", "embedding"} and len(row["embedding"]) == 32


def test_predict_without_model_warns_untrained(monkeypatch, tiny_st_dir):
    import mtst.cli.showcase

    monkeypatch.setattr(mtst.cli.showcase, "trained_default_available", lambda: False)
    monkeypatch.setattr(mtst.cli.showcase, "demo_model", lambda: mtst.cli.showcase.seeded_model(tiny_st_dir))
    result = invoke("predict", "the cat sat")
    assert result.exit_code == 0, result.output
    assert result.stderr.count("\n") == 1 and "UNTRAINED" in result.stderr
    (row,) = read_jsonl(result.stdout)
    assert set(row) == {"text", "topic", "sentiment", "ner"}


def test_info_text_and_json_for_a_model(model_dir):
    result = invoke("info", model_dir)
    assert result.exit_code == 0, result.output
    for fragment in ("sentence_classification", "token_classification", "32 -> 16 -> 3", "world, sports, business",
                     "B-PER", "max_seq_length", "48", "False"):
        assert fragment in result.stdout, fragment
    facts = json.loads(invoke("info", model_dir, "--json").stdout)
    assert facts["kind"] == "mtst model" and facts["trained"] is False and facts["hidden_size"] == 32
    assert facts["tasks"]["topic"]["labels"] == TOPIC and facts["tasks"]["ner"]["type"] == "token_classification"
    # topic: Linear(32, 16) + Linear(16, 3); ner: Linear(32, 7)
    assert facts["tasks"]["topic"]["parameters"] == 32 * 16 + 16 + 16 * 3 + 3
    assert facts["tasks"]["ner"]["parameters"] == 32 * 7 + 7


def test_info_shows_the_branch_and_the_backbone_reference(tiny_st_dir, tmp_path):
    model = MultiTaskModel.from_backbone(tiny_st_dir, branch_at=1)
    model.add_head("topic", "sentence_classification", TOPIC)
    saved = model.save(tmp_path / "branched", include_encoder=False, dtype="bfloat16")
    facts = json.loads(invoke("info", saved, "--json").stdout)
    per_layer = sum(p.numel() for p in model.branch.layers[0].parameters())
    assert facts["branch_at"] == 1 and facts["branch_layers"] == 1 and facts["branch_parameters"] == per_layer
    assert facts["branch_dtype"] == "BF16" and facts["backbone_sha256"] == model.encoder.fingerprint()
    text = invoke("info", saved).stdout
    assert "branch_at" in text and "branch_parameters" in text
    plain = MultiTaskModel.from_backbone(tiny_st_dir).save(tmp_path / "plain")
    assert json.loads(invoke("info", plain, "--json").stdout)["branch_at"] is None


def test_info_on_a_plain_backbone(tiny_encoder_dir):
    facts = json.loads(invoke("info", tiny_encoder_dir, "--json").stdout)
    assert facts["kind"] == "backbone" and facts["tasks"] == {} and facts["layers"] == 2
    assert "tasks: none" in invoke("info", tiny_encoder_dir).stdout


# ---- every error path: exit 1, one line on stderr, no output file ------------------------------
ERROR_CASES = {
    "missing input file": (["encode", "-i", "{tmp}/nope.txt", "--model", "{model}"], "input file not found"),
    "non-UTF-8 file": (["encode", "-i", "{tmp}/latin1.txt", "--model", "{model}"], "latin1.txt is not UTF-8"),
    "missing model dir": (["encode", "x", "--model", "{tmp}/missing"], "model directory not found"),
    "foreign dir": (["encode", "x", "--model", "{tmp}/foreign"], "not an mtst model directory"),
    "backbone as model": (["predict", "x", "--model", "{backbone}"], "use it with --backbone"),
    "unknown task": (["predict", "x", "--model", "{model}", "--tasks", "topic,nope"], "unknown task 'nope'"),
    "unknown pooling": (["encode", "x", "--backbone", "{backbone}", "--pooling", "median"], "unknown pooling"),
    "unknown backend": (["encode", "x", "--model", "{model}", "--backend", "tpu"], "unknown backend"),
    "unknown format": (["encode", "x", "--model", "{model}", "--format", "csv"], "unknown format"),
    "bad suffix": (["encode", "x", "--model", "{model}"], "cannot tell the format"),
    "pooling with model": (["encode", "x", "--model", "{model}", "--pooling", "cls"], "cannot be combined"),
    "args and input": (["encode", "x", "-i", "{tmp}/latin1.txt", "--backbone", "{backbone}"], "not both"),
    "too short max length": (["encode", "x", "--backbone", "{backbone}", "--max-seq-length", "1"], "at least 2"),
    "pydantic validation": (["encode", "x", "--backbone", "{backbone}", "--max-seq-length", "9000"],
                            "max_seq_length"),
    "bad batch size": (["encode", "x", "--model", "{model}", "--batch-size", "0"], "batch_size"),
    "info on missing dir": (["info", "{tmp}/missing"], "model directory not found"),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_errors_are_one_line_and_write_nothing(case, model_dir, tiny_st_dir, tmp_path):
    args, expected = ERROR_CASES[case]
    (tmp_path / "latin1.txt").write_bytes("café\n".encode("latin-1"))
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("hello")
    out = tmp_path / ("out.txt" if case == "bad suffix" else "out.npy" if args[0] == "encode" else "out.jsonl")
    filled = [a.format(tmp=tmp_path, model=model_dir, backbone=tiny_st_dir) for a in args]
    if args[0] != "info":
        filled += ["--output", str(out)]
    result = invoke(*filled)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert expected in result.stderr
    assert not out.exists() and not list(tmp_path.glob(".out*"))  # neither the file nor a temp file


def test_write_atomic_leaves_nothing_when_writing_fails(tmp_path):
    target = tmp_path / "x.npy"

    def explode(handle):
        handle.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(target, explode)
    assert list(tmp_path.iterdir()) == []
    write_atomic(target, lambda handle: handle.write(b"ok"))
    assert target.read_bytes() == b"ok" and [p.name for p in tmp_path.iterdir()] == ["x.npy"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not the temp file's private 0600


def test_core_commands_are_registered():
    commands = get_command(app).commands
    assert {"encode", "similarity", "predict", "info", "demo"} <= set(commands)


# ---- real subprocess ----------------------------------------------------------------------------
def test_console_script_fails_with_exactly_one_line(tiny_st_dir, tmp_path):
    """A real process: no traceback may follow the error line (CliRunner alone would not show one)."""
    missing = tmp_path / "missing.txt"
    bad = subprocess.run([mtst_executable(), "encode", "-i", str(missing), "--backbone", str(tiny_st_dir)],
                         capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.splitlines() == [f"error: input file not found: {missing}"]


# ---- demo ---------------------------------------------------------------------------------------
def test_seeded_model_is_reproducible_and_keeps_global_rng(tiny_st_dir):
    from mtst.cli.showcase import seeded_model

    before = torch.get_rng_state()
    first, second = seeded_model(tiny_st_dir), seeded_model(tiny_st_dir)
    assert torch.equal(torch.get_rng_state(), before)
    for (name, a), (_, b) in zip(first.heads.state_dict().items(), second.heads.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert first.tasks == ["topic", "sentiment", "ner"] and not first.config.trained


def test_demo_on_a_tiny_backbone_renders_every_section(tiny_st_dir):
    result = invoke("demo", "--backbone", tiny_st_dir)
    assert result.exit_code == 0, result.output
    for fragment in ("dimension 32", "Cosine similarity", "similar pair (1, 2)", "UNTRAINED", "topic", "sentiment",
                     "ner", "Angela Merkel met Emmanuel Macron in Paris to discuss Airbus."):
        assert fragment in result.stdout, fragment
    assert invoke("demo", "--backbone", tiny_st_dir).stdout == result.stdout


def test_trained_flag_decides_default_model_and_warning(model_dir, tmp_path):
    import io

    from rich.console import Console

    from mtst.cli.showcase import render_demo, trained_default_available

    trained_dir = tmp_path / "trained"
    shutil.copytree(model_dir, trained_dir)
    config = json.loads((trained_dir / "mtst_config.json").read_text(encoding="utf-8"))
    (trained_dir / "mtst_config.json").write_text(json.dumps({**config, "trained": True}), encoding="utf-8")
    assert not trained_default_available(tmp_path / "absent")
    assert not trained_default_available(model_dir)
    assert trained_default_available(trained_dir)
    for directory, warned in ((model_dir, True), (trained_dir, False)):
        out = io.StringIO()
        render_demo(Console(file=out, width=100), MultiTaskModel.load(directory))
        assert ("UNTRAINED" in out.getvalue()) is warned
        assert "dimension 32" in out.getvalue()


@pytest.fixture(scope="module")
def demo_runs() -> tuple[str, str]:
    """The real demo twice: once in this process, once as a fresh ``mtst demo`` process."""
    in_process = invoke("demo")
    assert in_process.exit_code == 0, in_process.output
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    env.update(COLUMNS="100", NO_COLOR="1")
    fresh = subprocess.run([mtst_executable(), "demo"], capture_output=True, text=True, timeout=300, env=env,
                           stdin=subprocess.DEVNULL)
    assert fresh.returncode == 0, fresh.stderr
    return in_process.stdout, fresh.stdout


@pytest.mark.slow
def test_demo_output_is_identical_across_runs(demo_runs):
    first, second = demo_runs
    assert first == second and len(first.splitlines()) > 20


@pytest.mark.slow
def test_demo_shows_384_dims_and_a_sensible_similarity(demo_runs):
    output = demo_runs[0]
    assert "6 x 384 (dimension 384)" in output
    match = re.search(r"similar pair \(1, 2\): (-?\d\.\d+)\s+unrelated pair \(1, 3\): (-?\d\.\d+)", output)
    assert match, output
    assert float(match.group(1)) > float(match.group(2)) + 0.2


@pytest.mark.slow
def test_demo_warns_exactly_when_no_trained_default(demo_runs):
    from mtst.cli.showcase import trained_default_available

    assert ("UNTRAINED" in demo_runs[0]) is (not trained_default_available())
