"""Label agreement between torch and an export (mtst.inference.agreement.predicted_labels / label_agreement)."""

from __future__ import annotations

import importlib.util
import re

import pytest

from helpers import export_test_model
from mtst import MtstError, MultiTaskModel
from mtst.inference.agreement import label_agreement, predicted_labels
from mtst.inference.backends import load_predictor
from mtst.inference.export import export_model
from mtst.inference.quantize import BRANCH_SCOPE, ENCODER_SCOPE, NNCF_FLOAT_SCOPE

needs_openvino = pytest.mark.skipif(importlib.util.find_spec("nncf") is None
                                    or importlib.util.find_spec("openvino") is None, reason="openvino / nncf missing")
SENTENCES = ["John Smith visited Paris.", "a", "Stock fell!",
             "Mary works at Acme Corp in London, and John lives in Paris with a cat and a dog."]


NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


@pytest.fixture(scope="module", params=[None, 1], ids=["plain", "branch1-shapes-crf"])
def model_dir(tiny_st_dir, tmp_path_factory, request):
    """Every export test runs on a plain model and on a branched one (helpers.export_test_model)."""
    return export_test_model(tiny_st_dir, tmp_path_factory.mktemp("saved"), request.param, NER_LABELS)


def test_predicted_labels_give_one_tag_per_word(model_dir):
    model = MultiTaskModel.load(model_dir)
    rows = predicted_labels(model, SENTENCES, batch_size=2)
    assert [len(row["ner"]) for row in rows] == [len(text.replace(",", " ,").replace(".", " .").replace("!", " !")
                                                     .split()) for text in SENTENCES]
    assert all(row["topic"] in ("world", "sports", "business") for row in rows)
    decoded = model.predict(SENTENCES)
    assert [row["topic"] for row in rows] == [row["topic"]["label"] for row in decoded]


def test_fp32_export_agrees_fully_with_torch(model_dir, tmp_path):
    predictor = load_predictor(export_model(model_dir, tmp_path / "onnx", format="onnx"))
    reference = predicted_labels(MultiTaskModel.load(model_dir), SENTENCES)
    assert label_agreement(reference, predicted_labels(predictor, SENTENCES)) == {
        "topic": 1.0, "ner": 1.0, "ner/sentences": 1.0}


def test_label_agreement_counts_words_and_sentences():
    reference = [{"topic": "a", "ner": ["O", "B-PER", "I-PER"]}, {"topic": "b", "ner": ["O"]}]
    candidate = [{"topic": "a", "ner": ["O", "B-PER", "O"]}, {"topic": "a", "ner": ["O"]}]
    report = label_agreement(reference, candidate)
    assert report["topic"] == 0.5
    assert report["ner"] == pytest.approx(3 / 4)  # one of four words flipped
    assert report["ner/sentences"] == 0.5  # ... which fails its whole sentence


def test_label_agreement_needs_the_same_rows():
    with pytest.raises(MtstError, match="cannot compare 1 reference rows with 0"):
        label_agreement([{"topic": "a"}], [])


# ---- int8 keeps the heads in fp32 -----------------------------------------------------------
def test_onnx_int8_quantizes_only_the_encoder(model_dir, tmp_path):
    import onnx

    out = export_model(model_dir, tmp_path / "onnx8", format="onnx", quantize="int8")
    nodes = onnx.load(str(out / "model.onnx")).graph.node
    quantized = [n.name for n in nodes if n.op_type in ("MatMulInteger", "DynamicQuantizeLinear", "ConvInteger")]
    assert quantized and all(name.startswith((ENCODER_SCOPE, BRANCH_SCOPE)) for name in quantized)
    has_branch = MultiTaskModel.load(model_dir).branch is not None
    assert any(name.startswith(BRANCH_SCOPE) for name in quantized) is has_branch  # the branch is int8 too
    heads = [n for n in nodes if n.name.startswith(("/model/topic/", "/model/ner/"))]
    assert "MatMul" in {n.op_type for n in heads}  # float ops (the quantiser rewrites Gemm as MatMul + Add)
    assert not any(n.op_type == "DequantizeLinear" for n in nodes)  # the embedding table is not int8 either


@needs_openvino
def test_openvino_int8_keeps_heads_fp32(model_dir, tmp_path):
    import openvino as ov

    out = export_model(model_dir, tmp_path / "ov8", format="openvino", quantize="int8")
    ops = ov.Core().read_model(str(out / "openvino_model.xml")).get_ordered_ops()
    weighted = [op for op in ops if op.get_type_name() in ("MatMul", "Convolution")
                and op.input_value(1).get_node().get_type_name() != "Parameter"]

    def weight_is_plain_fp32(op) -> bool:
        source = op.input_value(1).get_node()
        return source.get_type_name() == "Constant" and source.get_element_type() == ov.Type.f32

    heads = [op for op in weighted if op.get_friendly_name().startswith(("/model/topic/", "/model/ner/"))]
    encoder = [op for op in weighted if op.get_friendly_name().startswith((ENCODER_SCOPE, BRANCH_SCOPE))]
    kept = [op for op in encoder if re.match(NNCF_FLOAT_SCOPE[1], op.get_friendly_name())]
    assert heads and all(weight_is_plain_fp32(op) for op in heads)
    assert len(kept) == 2 and all(weight_is_plain_fp32(op) for op in kept)  # FFN output of layers 0 and 1
    assert len(encoder) > len(kept) and not any(weight_is_plain_fp32(op) for op in encoder if op not in kept)
