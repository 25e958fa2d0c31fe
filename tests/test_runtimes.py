"""Exported-graph predictors: ONNX Runtime's embeddings-only session for encode."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from mtst import MultiTaskModel
from mtst.backends import load_predictor
from mtst.export import export_model
from mtst.runtimes import _embedding_subgraph

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


def test_embedding_subgraph_has_no_head(onnx_export):
    whole = onnx.load(str(onnx_export / "model.onnx"))
    sub = onnx.ModelProto.FromString(_embedding_subgraph(onnx_export / "model.onnx"))
    assert [o.name for o in sub.graph.output] == ["sentence_embedding"]
    head_nodes = [n.name for n in sub.graph.node if "/topic/" in n.name or "/ner/" in n.name]
    assert head_nodes == []
    assert any("/ner/" in n.name for n in whole.graph.node)  # the whole graph does have them
    assert len(sub.graph.node) < len(whole.graph.node)


def test_encode_equals_the_whole_graphs_embedding(onnx_export):
    predictor = load_predictor(onnx_export)
    assert [o.name for o in predictor.embed_session.get_outputs()] == ["sentence_embedding"]
    feeds = {name: batch.numpy() for name, batch in
             predictor.tokenizer.collate(predictor.tokenizer(SENTENCES)).items() if name in predictor.info["inputs"]}
    whole = predictor.run_graph(feeds)["sentence_embedding"]
    np.testing.assert_array_equal(predictor.run_embeddings(feeds), whole)
    rows = predictor.predict(SENTENCES, include_embedding=True, batch_size=len(SENTENCES))
    np.testing.assert_allclose(predictor.encode(SENTENCES, batch_size=len(SENTENCES)),
                               np.array([row["embedding"] for row in rows]), atol=1e-6)
