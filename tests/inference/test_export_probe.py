"""The OpenVINO export probe: gate, choice and cache key; ``precision`` for exports; the cached choice on load."""

from __future__ import annotations

import json
import logging
import shutil

import pytest

from mtst import MtstError
from mtst.inference import export_probe
from mtst.inference.backends import load_predictor
from mtst.inference.export import export_model
from mtst.inference.export_probe import (
    cached_export_path,
    choose_export_path,
    export_key,
    inference_precision,
)
from mtst.inference.runtimes import DEFAULT_MAX_TOKENS
from mtst.model import cpu_paths
from mtst.model.cpu_paths import CpuPath, cpu_facts, native_bf16, remember

pytest.importorskip("openvino")

SENTENCES = ["John Smith visited Paris.", "The cat sat on the mat in new york today.", "a", "Stock fell!"] * 4
BF16_CPU = {"model": "a CPU with native bf16", "flags": ["avx512f", "avx512_bf16"]}
BAD_REPORT = {"mean_cosine": 0.99, "min_cosine": 0.95, "row_agreement": 1.0, "word_agreement": 1.0}


@pytest.fixture(scope="module")
def ov_dir(model_dir, tmp_path_factory):
    return export_model(model_dir, tmp_path_factory.mktemp("exported") / "ov", format="openvino")


@pytest.fixture(scope="module")
def onnx_dir(model_dir, tmp_path_factory):
    return export_model(model_dir, tmp_path_factory.mktemp("exported") / "onnx")


def fake_rounds(calls: dict, rounds: int, summary=None) -> dict:
    """bf16 twice as fast as fp32; encode fastest at 256 rows / 2,048 tokens, predict at batch 32."""
    best = {"encode": (256, 2048), "predict": (32, None)}
    return {key: (0.5 if key[1] == "bf16" else 1.0) * (1.0 if key[3] == best[key[2]] else 2.0) for key in calls}


@pytest.fixture
def bf16_cpu(monkeypatch):
    """A CPU that lists native bf16 (bf16 is a candidate) and timings that make bf16 the fastest."""
    if not native_bf16(cpu_facts()["flags"]):
        pytest.skip("OpenVINO runs bf16 only where the CPU has it natively")
    monkeypatch.setattr(export_probe, "cpu_facts", lambda: BF16_CPU)
    monkeypatch.setattr(export_probe, "alternating_rounds", fake_rounds)


def test_the_fastest_path_that_passes_is_chosen_and_cached(ov_dir, bf16_cpu, monkeypatch):
    monkeypatch.setattr(export_probe, "passes", lambda report: True)
    entry = choose_export_path(ov_dir, threads=1, sentences=SENTENCES)
    assert entry["path"] == {"kernels": "openvino", "precision": "bf16", "encode_batch_size": 256,
                             "predict_batch_size": 32, "encode_max_tokens": 2048, "predict_max_tokens": None}
    assert entry["runs"] == {"fp32": "f32", "bf16": "bf16"}
    assert set(entry["parity"]) == {"openvino-fp32", "openvino-bf16"}
    assert cached_export_path(ov_dir) == entry
    assert inference_precision(ov_dir, "auto") == "bf16"
    predictor = load_predictor(ov_dir, threads=1)  # auto: the measured batching when no batch size is given
    assert predictor.batching("encode") == (256, 2048)
    assert predictor.batching("predict") == (32, DEFAULT_MAX_TOKENS)
    assert load_predictor(ov_dir, threads=1, precision="fp32").batching("encode") == (32, DEFAULT_MAX_TOKENS)


def test_a_faster_path_that_fails_the_gate_is_refused(ov_dir, bf16_cpu, monkeypatch):
    real = export_probe.parity
    monkeypatch.setattr(export_probe, "parity", lambda ref, cand: real(ref, cand) if cand is ref else BAD_REPORT)
    entry = choose_export_path(ov_dir, threads=1, sentences=SENTENCES)
    assert entry["path"]["precision"] == "fp32"
    assert entry["parity"]["openvino-bf16"]["passed"] is False and entry["parity"]["openvino-fp32"]["passed"]
    assert not any("bf16" in name for name in entry["timings"])  # a path that failed is not even timed
    assert load_predictor(ov_dir, threads=1).runtime.runtime_precision == "f32"  # auto: the cached choice


def test_the_real_probe_gates_bf16_and_caches_a_choice(ov_dir):
    entry = choose_export_path(ov_dir, threads=1, quick=True, sentences=SENTENCES)
    path = CpuPath(**entry["path"])
    assert path.kernels == "openvino" and path.batching("encode") in cpu_paths.QUICK_BATCHINGS
    assert entry["parity"]["openvino-fp32"]["min_cosine"] > 0.9999
    assert all(rate > 0 for rate in entry["timings"].values())


def test_the_cache_key_follows_the_graph_file_and_the_cpu_flags(model_dir, ov_dir, tmp_path, monkeypatch):
    key = export_key(ov_dir)
    again = export_model(model_dir, tmp_path / "again", format="openvino")  # OpenVINO names its layers anew
    assert export_key(again) == key  # the same graph: the same choice (bench's temporary export counts)
    copy = shutil.copytree(ov_dir, tmp_path / "copy")
    graph = copy / json.loads((copy / "export.json").read_text())["graph"]
    graph.write_bytes(graph.read_bytes() + b"\n")
    assert export_key(copy) != key
    monkeypatch.setattr(export_probe, "cpu_facts", lambda: {**cpu_facts(), "flags": ["avx2"]})
    assert export_key(ov_dir) != key


def test_a_cached_f32_choice_is_applied_on_load(ov_dir):
    assert cached_export_path(ov_dir) is None and inference_precision(ov_dir, "auto") is None  # OpenVINO's own
    remember(export_key(ov_dir), CpuPath("openvino", "fp32", 64, 32), {})
    assert cached_export_path(ov_dir)["path"]["precision"] == "fp32"
    predictor = load_predictor(ov_dir, threads=1, precision="auto")
    assert predictor.runtime.runtime_precision == "f32"


def test_precision_overrides_what_openvino_runs(ov_dir, monkeypatch, caplog):
    assert load_predictor(ov_dir, threads=1, precision="fp32").runtime.runtime_precision == "f32"
    if native_bf16(cpu_facts()["flags"]):
        assert load_predictor(ov_dir, threads=1, precision="bf16").runtime.runtime_precision == "bf16"
    monkeypatch.setattr(cpu_paths, "cpu_facts", lambda: {"model": "old", "flags": ["avx2"]})
    with caplog.at_level(logging.WARNING, logger="mtst"):
        assert inference_precision(ov_dir, "bf16") == "bf16"
    assert "no native bf16" in caplog.text


def test_onnx_exports_refuse_a_precision_and_the_probe(onnx_dir):
    with pytest.raises(MtstError, match="ONNX Runtime has no switch") as info:
        load_predictor(onnx_dir, precision="bf16")
    assert "\n" not in str(info.value)
    with pytest.raises(MtstError, match="nothing to choose"):
        choose_export_path(onnx_dir)
    assert cached_export_path(onnx_dir) is None


def test_info_shows_the_cached_choice_for_an_openvino_export(ov_dir):
    from typer.testing import CliRunner

    from mtst.cli import app

    def shown() -> str:
        result = CliRunner().invoke(app, ["info", str(ov_dir), "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)["cpu_path"]

    assert shown().startswith("OpenVINO's default precision (not measured")
    remember(export_key(ov_dir), CpuPath("openvino", "bf16", 128, 32), {})
    assert shown().startswith("openvino-bf16, batch 128 / 32 (measured")


def test_bench_probes_its_openvino_export_and_shows_the_choice(model_dir, tmp_path, bf16_cpu):
    from mtst.inference.bench import export_paths

    paths = {path.name: path for path in export_paths(model_dir, tmp_path, int8=False, probe_texts=SENTENCES)}
    assert "probe chose bf16, batch 256/2048t / 32" in paths["openvino fp32"].note
    assert "probe" not in paths["onnx fp32"].note  # ONNX Runtime: nothing to choose
