"""ONNX Runtime predictor: the graph cut at the embedding (encode runs no head) gives the whole graph's outputs."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from mtst import MultiTaskModel
from mtst.inference.backends import load_predictor
from mtst.inference.export import export_model
from mtst.inference.graph_parts import encoder_graph

SENTENCES = ["John Smith visited Paris.", "a", "The cat sat on the mat and the dog sat on the guitar in new york."]


@pytest.fixture(scope="module")
def model_dir(tiny_st_dir, tmp_path_factory):
    torch.manual_seed(0)
    model = MultiTaskModel.from_backbone(tiny_st_dir)
    model.add_head("topic", "sentence_classification", ["world", "sports", "business"], hidden_dim=16)
    model.add_head("ner", "windowed_token_classification", ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"], hidden_dim=8)
    return model.save(tmp_path_factory.mktemp("saved") / "model")


@pytest.fixture(scope="module", params=[None, "int8"])
def onnx_export(request, model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("exports") / f"onnx-{request.param or 'fp32'}"
    return export_model(model_dir, out, format="onnx", quantize=request.param)


def test_the_encoder_part_holds_no_head(onnx_export):
    whole = onnx.load(str(onnx_export / "model.onnx"))
    outputs = [o.name for o in whole.graph.output]
    encoder = onnx.ModelProto.FromString(encoder_graph(onnx_export / "model.onnx", outputs))
    assert [o.name for o in encoder.graph.output] == ["sentence_embedding"]
    assert not any("/topic/" in n.name or "/ner/" in n.name for n in encoder.graph.node)  # no head in encode
    head_nodes = [n for n in whole.graph.node if n.name.startswith(("/model/topic/", "/model/ner/"))]
    assert head_nodes and len(encoder.graph.node) == len(whole.graph.node) - len(head_nodes)
    head_weights = [init.name for init in whole.graph.initializer if ".heads." in init.name]
    assert head_weights and not {init.name for init in encoder.graph.initializer} & set(head_weights)


def test_encoder_part_and_predict_equal_the_whole_graph(onnx_export):
    predictor = load_predictor(onnx_export)
    runtime = predictor.runtime
    feeds = {name: batch.numpy() for name, batch in
             runtime.tokenizer.collate(runtime.tokenizer(SENTENCES)).items() if name in runtime.info["inputs"]}
    whole = ort.InferenceSession(str(onnx_export / "model.onnx"), providers=["CPUExecutionProvider"])
    expected = dict(zip(runtime.output_names, whole.run(runtime.output_names, feeds), strict=True))
    got = runtime.run_graph(feeds)
    for name in runtime.output_names:
        np.testing.assert_allclose(got[name], expected[name], atol=1e-6)
    np.testing.assert_allclose(runtime.run_embeddings(feeds), got["sentence_embedding"], atol=1e-6)
    rows = predictor.predict(SENTENCES, include_embedding=True, batch_size=len(SENTENCES))
    np.testing.assert_allclose(predictor.encode(SENTENCES, batch_size=len(SENTENCES)),
                               np.array([row["embedding"] for row in rows]), atol=1e-6)


def test_a_model_without_heads_encodes_through_the_encoder_part(tiny_st_dir, tmp_path):
    model = MultiTaskModel.from_backbone(tiny_st_dir)
    predictor = load_predictor(export_model(model.save(tmp_path / "bare"), tmp_path / "onnx", format="onnx"))
    np.testing.assert_allclose(predictor.encode(SENTENCES), model.encode(SENTENCES), atol=1e-5)


def test_predict_without_the_embedding_leaves_the_branchs_twin_layers_out(tiny_st_dir, tmp_path):
    """With a task branch the embedding path runs its own copy of the top layers; label-only predict skips them
    (ONNX Runtime: the graph cut at the heads' outputs; OpenVINO: a model of the heads' outputs) and answers the
    same rows."""
    from helpers import perturb
    from mtst.inference.graph_parts import heads_graph

    model = MultiTaskModel.from_backbone(tiny_st_dir, branch_at=0)
    model.add_head("topic", "sentence_classification", ["world", "sports", "business"], hidden_dim=16)
    model.add_head("ner", "windowed_token_classification", ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"], hidden_dim=8)
    perturb(model.branch)  # a trained branch: not a copy of the layers beside it
    saved = model.save(tmp_path / "branch")
    exported = export_model(saved, tmp_path / "onnx", format="onnx")
    whole = onnx.load(str(exported / "model.onnx"))
    runtime = load_predictor(exported).runtime
    heads = onnx.ModelProto.FromString(heads_graph(exported / "model.onnx", runtime.inputs, runtime.head_outputs))
    assert [o.name for o in heads.graph.output] == ["logits_topic", "logits_ner"]
    layer_matmuls = [sum(n.op_type == "MatMul" and "/layer" in n.name for n in g.graph.node) for g in (whole, heads)]
    assert layer_matmuls[1] > 0 and layer_matmuls[1] == layer_matmuls[0] / 2  # the whole graph: both stacks
    pytest.importorskip("openvino")
    openvino = load_predictor(export_model(saved, tmp_path / "ov", format="openvino"), precision="fp32")
    for predictor in (load_predictor(exported), openvino):
        labels, both = predictor.predict(SENTENCES), predictor.predict(SENTENCES, include_embedding=True)
        for alone, with_vector in zip(labels, both, strict=True):
            assert alone["topic"]["label"] == with_vector["topic"]["label"]
            assert alone["topic"]["score"] == pytest.approx(with_vector["topic"]["score"], abs=1e-6)
            assert [e["label"] for e in alone["ner"]] == [e["label"] for e in with_vector["ner"]]
