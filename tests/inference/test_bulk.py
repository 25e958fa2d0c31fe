"""Streaming bulk encoding: one-shot equals encode(), a killed run resumes to the identical array."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import Killed, write_random_lines
from mtst import MtstError, MultiTaskModel
from mtst.inference.bulk import encode_file, manifest_path, partial_path


@pytest.fixture
def model(bare_model):
    return bare_model


@pytest.fixture
def big_file(tmp_path):
    path = tmp_path / "big.txt"
    return path, write_random_lines(path, count=103, max_words=20, empty_line=7, seed=0)


def test_one_shot_equals_encode(model, big_file, tmp_path):
    path, lines = big_file
    out = encode_file(model, path, tmp_path / "emb.npy", batch_size=8, chunk_size=10)
    array = np.load(out)
    assert array.shape == (103, 32) and array.dtype == np.float32
    assert np.abs(array - model.encode(lines)).max() <= 1e-5
    assert not partial_path(out).exists() and not manifest_path(out).exists()


def test_killed_run_resumes_to_the_identical_array(model, big_file, tmp_path):
    path, _ = big_file
    one_shot = np.load(encode_file(model, path, tmp_path / "once.npy", chunk_size=10))
    out = tmp_path / "resumed.npy"
    calls: list[int] = []

    def kill_after_three(done: int) -> None:
        calls.append(done)
        if len(calls) == 3:
            raise Killed

    with pytest.raises(Killed):
        encode_file(model, path, out, chunk_size=10, on_chunk=kill_after_three)
    assert not out.exists(), "an unfinished array must never appear under the final name"
    assert json.loads(manifest_path(out).read_text())["done"] == 30

    resumed_from: list[int] = []
    encode_file(model, path, out, chunk_size=10, on_chunk=resumed_from.append)
    assert resumed_from[0] == 40, "the second run continues after the 3 finished chunks"
    assert np.array_equal(np.load(out), one_shot)


def test_changed_input_starts_over(model, big_file, tmp_path):
    path, _ = big_file
    out = tmp_path / "emb.npy"

    def kill(done: int) -> None:
        raise Killed

    with pytest.raises(Killed):
        encode_file(model, path, out, chunk_size=10, on_chunk=kill)
    new_lines = ["a new file", "with other lines"]
    path.write_text("\n".join(new_lines) + "\n", encoding="utf-8")
    done: list[int] = []
    encode_file(model, path, out, chunk_size=10, on_chunk=done.append)
    assert done == [2]
    assert np.abs(np.load(out) - model.encode(new_lines)).max() <= 1e-5


def test_exported_predictor_streams_too(model, big_file, tmp_path):
    from mtst.inference.backends import load_predictor
    from mtst.inference.export import export_model

    model_dir = model.save(tmp_path / "model")
    predictor = load_predictor(export_model(model_dir, tmp_path / "onnx"))
    path, lines = big_file
    array = np.load(encode_file(predictor, path, tmp_path / "emb.npy", chunk_size=25))
    assert np.abs(array - model.encode(lines)).max() <= 1e-4


def test_empty_input_gives_an_empty_array(model, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert np.load(encode_file(model, empty, tmp_path / "emb.npy")).shape == (0, 32)


def test_bad_arguments(model, big_file, tmp_path):
    path, _ = big_file
    with pytest.raises(MtstError, match="must end in .npy"):
        encode_file(model, path, tmp_path / "emb.csv")
    with pytest.raises(MtstError, match="input file not found"):
        encode_file(model, tmp_path / "missing.txt", tmp_path / "emb.npy")
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"ok\n\xff\xfe bad\n")
    with pytest.raises(MtstError, match="not UTF-8 text .invalid byte on line 2"):
        encode_file(model, binary, tmp_path / "emb.npy")


def test_lines_are_split_like_the_cli_reads_them(model, tmp_path):
    """BOM dropped, \\r\\n and \\n end lines, a lone \\r stays inside its line, blank lines stay."""
    from mtst.cli.io import decode_lines

    data = "\ufeffthe cat\r\n\nsat\ron the mat\nlast line without newline".encode()
    path = tmp_path / "odd.txt"
    path.write_bytes(data)
    expected = decode_lines(data, "odd.txt")
    assert len(expected) == 4
    array = np.load(encode_file(model, path, tmp_path / "emb.npy", chunk_size=3))
    assert np.abs(array - model.encode(expected)).max() <= 1e-5


def test_cli_encode_file_to_npy_streams_and_resumes(tiny_st_dir, big_file, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from mtst.cli import app
    from mtst.inference import bulk

    path, lines = big_file
    out = tmp_path / "emb.npy"
    args = ["encode", "--backbone", str(tiny_st_dir), "--input", str(path), "--output", str(out)]
    original = bulk.encode_file

    def kill_at(done: int) -> None:
        if done == 20:
            raise Killed

    def killed_after_two_chunks(*args, **kwargs):
        return original(*args, **{**kwargs, "chunk_size": 10, "on_chunk": kill_at})

    monkeypatch.setattr(bulk, "encode_file", killed_after_two_chunks)
    first = CliRunner().invoke(app, args)
    assert isinstance(first.exception, Killed) and not out.exists()
    monkeypatch.setattr(bulk, "encode_file", original)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    expected = MultiTaskModel.from_backbone(tiny_st_dir).encode(lines)
    assert np.abs(np.load(out) - expected).max() <= 1e-5
    missing = CliRunner().invoke(app, ["encode", "--backbone", str(tiny_st_dir), "--input", str(path),
                                       "--output", str(tmp_path / "nowhere" / "emb.npy")])
    assert missing.exit_code == 1 and "output folder not found" in missing.output


def test_cut_rows_are_listed_beside_the_array_and_survive_a_resume(model, tmp_path):
    from mtst.inference.truncation import sidecar_path

    long = "the cat sat on the mat " * 20  # ~122 tokens: cut at the tiny backbone's 48
    lines = ["short one", long, "", long, "another short line", long]
    path = tmp_path / "in.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    once = encode_file(model, path, tmp_path / "once.npy", chunk_size=2)
    assert json.loads(sidecar_path(once).read_text()) == {"rows": 6, "max_seq_length": 48, "truncated": [1, 3, 5]}

    out = tmp_path / "resumed.npy"

    def kill(done: int) -> None:
        if done == 4:
            raise Killed

    with pytest.raises(Killed):
        encode_file(model, path, out, chunk_size=2, on_chunk=kill)
    assert not sidecar_path(out).exists() and json.loads(manifest_path(out).read_text())["truncated"] == [1, 3]
    encode_file(model, path, out, chunk_size=2)
    assert json.loads(sidecar_path(out).read_text())["truncated"] == [1, 3, 5]
    short = tmp_path / "short.txt"
    short.write_text("a\nb\n", encoding="utf-8")
    assert json.loads(sidecar_path(encode_file(model, short, tmp_path / "s.npy")).read_text())["truncated"] == []


def test_cli_encode_rows_say_when_the_embedding_read_a_cut_text(tiny_st_dir, tmp_path):
    from typer.testing import CliRunner

    from mtst.cli import app
    from mtst.inference.truncation import sidecar_path

    long = "the cat sat on the mat " * 20
    out = tmp_path / "rows.jsonl"
    result = CliRunner().invoke(app, ["encode", "--backbone", str(tiny_st_dir), "-o", str(out), long, "a cat"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["truncated"] is True and "truncated" not in rows[1]
    npy = tmp_path / "rows.npy"
    assert CliRunner().invoke(app, ["encode", "--backbone", str(tiny_st_dir), "-o", str(npy), "a cat", long]
                              ).exit_code == 0
    assert json.loads(sidecar_path(npy).read_text())["truncated"] == [1]
