"""Backend dispatch (torch / onnx / openvino), threads, the predictor surface, token-budget batching."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
import torch

from mtst import MtstError, MultiTaskModel
from mtst.inference.backends import ModelSpec, detect_backend, load_predictor
from mtst.inference.export import export_model
from mtst.inference.runtimes import OnnxRuntime, OpenVINORuntime, default_threads
from mtst.model.predictor import Predictor

SENTENCES = ["John Smith visited Paris.", "The cat sat on the mat in new york today.", "a", "Stock fell!"]


@pytest.fixture(scope="module")
def onnx_dir(model_dir, tmp_path_factory):
    return export_model(model_dir, tmp_path_factory.mktemp("exported") / "onnx")


def test_auto_picks_what_the_directory_holds(model_dir, onnx_dir):
    assert detect_backend(model_dir) == "torch" and detect_backend(onnx_dir) == "onnx"
    torch_predictor = load_predictor(model_dir)
    assert isinstance(torch_predictor, Predictor) and isinstance(torch_predictor.runtime.model, MultiTaskModel)
    assert torch_predictor.backend == "torch"
    assert isinstance(load_predictor(onnx_dir).runtime, OnnxRuntime)
    assert isinstance(load_predictor(onnx_dir, backend="onnx").runtime, OnnxRuntime)


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_runtime_backend_on_a_torch_dir_says_export_first(model_dir, backend):
    with pytest.raises(MtstError, match=f"export it first: mtst export --model .* --format {backend}"):
        load_predictor(model_dir, backend=backend)


def test_wrong_backend_for_an_export(onnx_dir):
    with pytest.raises(MtstError, match="holds a onnx export"):
        load_predictor(onnx_dir, backend="openvino")
    with pytest.raises(MtstError, match="holds a onnx export"):
        load_predictor(onnx_dir, backend="torch")


def test_unknown_backend_and_bad_threads(model_dir):
    with pytest.raises(MtstError, match="unknown backend 'tensorrt'"):
        load_predictor(model_dir, backend="tensorrt")
    with pytest.raises(MtstError, match="threads must be at least 1"):
        load_predictor(model_dir, threads=0)


def test_precision_reaches_the_torch_model_and_exports_refuse_it(model_dir, onnx_dir):
    predictor = load_predictor(model_dir, precision="fp32")
    assert predictor.runtime.model.cpu_path.precision == "fp32"
    assert predictor.runtime.model.cpu_path_source == "requested"
    with pytest.raises(MtstError, match="unknown precision 'fp8'"):
        load_predictor(model_dir, precision="fp8")
    with pytest.raises(MtstError, match="bf16 is for torch and OpenVINO; an ONNX export runs at the precision") as info:
        load_predictor(onnx_dir, precision="bf16")
    assert "\n" not in str(info.value)
    assert isinstance(load_predictor(onnx_dir, precision="auto").runtime, OnnxRuntime)


def test_model_spec_carries_precision_through_pickle(model_dir, onnx_dir):
    spec = pickle.loads(pickle.dumps(ModelSpec(str(model_dir), precision="fp32")))
    assert spec.precision == "fp32" and spec.load().runtime.model.cpu_path_source == "requested"
    assert ModelSpec(str(model_dir)).precision == "auto"
    with pytest.raises(MtstError, match="unknown precision"):
        ModelSpec(str(model_dir), precision="half")
    with pytest.raises(MtstError, match="precision fp32 is for torch"):
        ModelSpec(str(onnx_dir), "onnx", precision="fp32")
    with pytest.raises(MtstError, match="precision fp32 is for torch"):
        ModelSpec(str(onnx_dir), precision="fp32").load()  # backend auto: found an export at load


def test_threads_default_to_available_cores(onnx_dir):
    assert default_threads() == len(os.sched_getaffinity(0))
    assert load_predictor(onnx_dir).runtime.threads == default_threads()
    runtime = load_predictor(onnx_dir, threads=1).runtime
    assert runtime.threads == 1
    assert runtime.session.get_session_options().intra_op_num_threads == 1


def test_same_surface_as_the_torch_model(model_dir, onnx_dir):
    torch_model, onnx = load_predictor(model_dir), load_predictor(onnx_dir)
    assert onnx.tasks == torch_model.tasks == ["topic", "ner"]
    assert onnx.config == torch_model.config
    as_tensor = onnx.encode(SENTENCES, convert_to="torch")
    assert isinstance(as_tensor, torch.Tensor) and as_tensor.shape == (4, 32)
    assert onnx.encode([]).shape == (0, 32)
    assert onnx.predict([]) == []
    threads = torch.get_num_threads()
    assert set(onnx.predict(SENTENCES[:1], tasks=["ner"])[0]) == {"text", "ner"}
    assert torch.get_num_threads() == threads, "decoding may use one torch thread, but must restore the setting"


def test_runtime_input_errors(onnx_dir):
    onnx = load_predictor(onnx_dir)
    with pytest.raises(MtstError, match="unknown task 'sentiment'"):
        onnx.predict(SENTENCES, tasks=["sentiment"])
    with pytest.raises(MtstError, match="batch_size must be at least 1"):
        onnx.encode(SENTENCES, batch_size=0)
    with pytest.raises(MtstError, match="L2-normalises"):
        onnx.encode(SENTENCES, normalize=False)
    with pytest.raises(MtstError, match="must be strings"):
        onnx.encode([1, 2])


@pytest.mark.parametrize("make", ["torch", "onnx"])
def test_token_budget_batching_keeps_results(model_dir, onnx_dir, make):
    """A small ``max_tokens`` cuts many more batches; outputs stay the same and in input order."""
    predictor = load_predictor(model_dir if make == "torch" else onnx_dir)
    texts = SENTENCES * 5
    unlimited = predictor.encode(texts, batch_size=64)
    predictor.max_tokens = 16
    budgeted = predictor.encode(texts, batch_size=64)
    assert np.abs(unlimited - budgeted).max() <= 1e-5
    assert [row["topic"]["label"] for row in predictor.predict(texts)] == [
        row["topic"]["label"] for row in predictor.predict(texts, batch_size=64)
    ]


def test_openvino_reports_the_precision_that_ran(model_dir, tmp_path):
    pytest.importorskip("openvino")
    exported = export_model(model_dir, tmp_path / "ov", format="openvino")
    predictor = load_predictor(exported, threads=1)
    assert predictor.backend == "openvino" and predictor.runtime.precision == "fp32"
    assert predictor.runtime.runtime_precision in ("f32", "bf16", "f16")
    assert OpenVINORuntime(exported, inference_precision="f32").runtime_precision == "f32"


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_each_call_builds_only_the_graph_it_needs_and_the_server_warms_the_heads(model_dir, tmp_path, backend):
    """Encode-only users pay for the embedding graph alone, label-only users (a server's predict) for the heads'
    graph alone; only predict with the embedding builds the whole graph."""
    pytest.importorskip(backend)
    from fastapi.testclient import TestClient

    from mtst.serving.app import create_app

    precision = "fp32" if backend == "openvino" else "auto"  # bf16 CPUs: each compiled graph rounds its own way
    predictor = load_predictor(export_model(model_dir, tmp_path / backend, format=backend), threads=1,
                               precision=precision)
    whole, heads = ("_whole", "_heads") if backend == "onnx" else ("_request", "_heads_request")
    predictor.encode(SENTENCES)
    assert getattr(predictor.runtime, whole) is None and getattr(predictor.runtime, heads) is None
    with TestClient(create_app(predictor)):
        assert getattr(predictor.runtime, heads) is not None and getattr(predictor.runtime, whole) is None
    labels = predictor.predict(SENTENCES)
    assert getattr(predictor.runtime, whole) is None
    both = predictor.predict(SENTENCES, include_embedding=True)
    assert getattr(predictor.runtime, whole) is not None
    assert [{k: v for k, v in row.items() if k != "embedding"} for row in both] == labels


def test_cli_threads_option(onnx_dir, tiny_st_dir):
    from typer.testing import CliRunner

    from mtst.cli import app

    ok = CliRunner().invoke(app, ["encode", "--model", str(onnx_dir), "--threads", "1", "--format", "jsonl",
                                  "John lives in Paris."])
    assert ok.exit_code == 0, ok.output
    assert len(json.loads(ok.output.splitlines()[-1])["embedding"]) == 32
    bad = CliRunner().invoke(app, ["encode", "--backbone", str(tiny_st_dir), "--threads", "0", "x"])
    assert bad.exit_code == 1 and "--threads must be at least 1" in bad.output
