"""Bulk encoding in worker processes: the same array as one process, resumable after a kill, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from helpers import Killed, write_random_lines
from mtst import MtstError
from mtst.cli import app
from mtst.inference.backends import ModelSpec
from mtst.inference.bulk import encode_file, manifest_path, partial_path
from mtst.inference.bulk_workers import Workers


@pytest.fixture
def model(bare_model):
    return bare_model


@pytest.fixture
def big_file(tmp_path):
    path = tmp_path / "big.txt"
    return path, write_random_lines(path, count=157, max_words=30, empty_line=3, seed=1)


def test_killed_two_process_run_resumes_to_the_same_array(model, tiny_st_dir, big_file, tmp_path):
    path, _ = big_file
    single = np.load(encode_file(model, path, tmp_path / "one.npy", chunk_size=10))
    out, workers = tmp_path / "two.npy", Workers(processes=2, spec=ModelSpec(backbone=str(tiny_st_dir)))
    committed: list[int] = []

    def kill_after_three(done: int) -> None:
        committed.append(done)
        if len(committed) == 3:
            raise Killed

    with pytest.raises(Killed):
        encode_file(model, path, out, chunk_size=10, on_chunk=kill_after_three, workers=workers)
    assert not out.exists() and partial_path(out).exists()
    assert json.loads(manifest_path(out).read_text())["done"] == 30, "only the committed prefix counts as done"

    resumed_from: list[int] = []
    encode_file(model, path, out, chunk_size=10, on_chunk=resumed_from.append, workers=workers)
    assert resumed_from == list(range(40, 157, 10)) + [157], "chunks are committed in row order, each once"
    assert np.allclose(np.load(out), single, atol=1e-5, rtol=0)


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_exported_models_encode_in_workers_too(model, big_file, tmp_path, fmt):
    from mtst.inference.backends import load_predictor
    from mtst.inference.export import export_model

    exported = export_model(model.save(tmp_path / "model"), tmp_path / fmt, format=fmt)
    predictor = load_predictor(exported)
    path, lines = big_file
    array = np.load(encode_file(predictor, path, tmp_path / "emb.npy", chunk_size=40,
                                workers=Workers(processes=2, spec=ModelSpec(str(exported)))))
    assert np.abs(array - predictor.encode(lines)).max() <= 1e-5
    assert np.abs(array - model.encode(lines)).max() <= 1e-3  # bf16 OpenVINO on CPUs that have it


def test_worker_problems_are_one_line_errors(model, tiny_st_dir, big_file, tmp_path):
    path, _ = big_file
    other = Workers(processes=2, spec=ModelSpec(backbone=str(tiny_st_dir), pooling="cls"))  # not the one given
    with pytest.raises(MtstError, match="loaded a different model"):
        encode_file(model, path, tmp_path / "emb.npy", chunk_size=50, workers=other)
    missing = Workers(processes=2, spec=ModelSpec(str(tmp_path / "no-such-model")))
    with pytest.raises(MtstError, match="model directory not found") as info:
        encode_file(model, path, tmp_path / "emb.npy", workers=missing)
    assert "\n" not in str(info.value)


def test_bad_process_count(model, big_file, tmp_path):
    path, _ = big_file
    with pytest.raises(MtstError, match="--num-processes must be at least 1, got 0"):
        encode_file(model, path, tmp_path / "emb.npy", workers=Workers(processes=0))
    assert Workers(processes=3, spec=ModelSpec(threads=2)).threads_each() == 1
    assert Workers(processes=2, spec=ModelSpec(threads=8)).threads_each() == 4


def test_cli_two_processes_give_the_one_process_array(tiny_st_dir, big_file, tmp_path):
    path, lines = big_file
    base = ["encode", "--backbone", str(tiny_st_dir), "--input", str(path)]
    result = CliRunner().invoke(app, [*base, "--output", str(tmp_path / "emb.npy"), "--num-processes", "2"])
    assert result.exit_code == 0, result.output
    single = CliRunner().invoke(app, [*base, "--output", str(tmp_path / "one.npy")])
    assert single.exit_code == 0, single.output
    assert np.allclose(np.load(tmp_path / "emb.npy"), np.load(tmp_path / "one.npy"), atol=1e-5, rtol=0)
    for extra, message in ((["--output", str(tmp_path / "x.npy"), "--num-processes", "0"],
                            "--num-processes must be at least 1, got 0"),
                           (["--output", str(tmp_path / "x.jsonl"), "--num-processes", "2"],
                            "--num-processes is for bulk encoding")):
        bad = CliRunner().invoke(app, [*base, *extra])
        assert bad.exit_code == 1 and message in bad.output and len(bad.output.strip().splitlines()) == 1
