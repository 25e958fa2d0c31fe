"""``mtst bench``: it runs on the tiny model and prints its table (no timing asserts)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mtst.cli import app

runner = CliRunner()


@pytest.fixture
def tiny_dir(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("MTST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "200")  # one line per table row
    return tiny_model.save(tmp_path / "tiny")


def test_bench_quick_prints_a_table_of_every_path(tiny_dir):
    result = runner.invoke(app, ["bench", "--quick", "--model", str(tiny_dir)])
    assert result.exit_code == 0, result.output
    for text in ("encode /s", "predict+emb /s", "torch fp32", "mtst chose: torch-fp32", "CPU:", "load average"):
        assert text in result.output


def test_bench_quick_has_the_plain_transformers_baseline_and_a_verdict(tiny_dir):
    from mtst.inference.bench import BASELINE

    result = runner.invoke(app, ["bench", "--quick", "--model", str(tiny_dir)])
    assert result.exit_code == 0, result.output
    assert BASELINE in result.output and "the plain-transformers baseline" in result.output  # row; verdict line
    report = json.loads(runner.invoke(app, ["bench", "--quick", "--json", "--model", str(tiny_dir)]).output)
    baseline = report["rows"][BASELINE]
    assert baseline["encode"] > 0 and "encode_vs_reference" in baseline
    assert baseline["min_cosine"] > 0.9999  # the same weights as torch fp32, pooled the same way


def test_bench_quick_probe_json_keeps_the_choice(tiny_dir, tmp_path):
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("Anna lives in Berlin .\na short one\n")
    result = runner.invoke(app, ["bench", "--quick", "--probe", "--json", "--model", str(tiny_dir),
                                 "--input", str(sentences)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["sentences"] == 2 and report["rounds"] == 1
    assert report["rows"][f"mtst chose: {report['chosen']}"]["encode"] > 0
    assert (tmp_path / "cache" / "cpu_paths.json").exists()


def test_bench_refuses_zero_rounds(tiny_dir):
    result = runner.invoke(app, ["bench", "--rounds", "0", "--model", str(tiny_dir)])
    assert result.exit_code != 0 and "--rounds must be at least 1" in result.output


def test_info_shows_the_cpu_path_this_model_gets_here(tiny_dir, tiny_model):
    from mtst.model.cpu_paths import CpuPath, key_for, remember

    before = json.loads(runner.invoke(app, ["info", str(tiny_dir), "--json"]).output)
    assert before["cpu_path"].startswith("torch-fp32 (default; not measured")
    remember(key_for(tiny_model.config), CpuPath("torch", "bf16", 128, 32), {})
    after = json.loads(runner.invoke(app, ["info", str(tiny_dir), "--json"]).output)
    assert after["cpu_path"].startswith("torch-bf16, batch 128 / 32 (measured")


def test_json_output_survives_libraries_that_print_to_stdout(capfd):
    """NNCF's logger and progress bars write to stdout during `mtst bench --int8 --json`: the JSON must stay alone."""
    import os

    from mtst.cli.io import stdout_kept_clean

    with stdout_kept_clean():
        print("INFO:nncf:progress", flush=True)
        os.write(1, b"a raw write\n")
    print('{"rows": {}}')
    out, err = capfd.readouterr()
    assert out == '{"rows": {}}\n'
    assert "INFO:nncf:progress" in err and "a raw write" in err
