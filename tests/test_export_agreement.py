"""Label agreement between torch and an export (mtst.export.predicted_labels / label_agreement)."""

from __future__ import annotations

import pytest
import torch

from mtst import MtstError, MultiTaskModel
from mtst.backends import load_predictor
from mtst.export import export_model, label_agreement, predicted_labels

SENTENCES = ["John Smith visited Paris.", "a", "Stock fell!",
             "Mary works at Acme Corp in London, and John lives in Paris with a cat and a dog."]


@pytest.fixture(scope="module")
def model_dir(tiny_st_dir, tmp_path_factory):
    torch.manual_seed(0)
    model = MultiTaskModel.from_backbone(tiny_st_dir)
    model.add_head("topic", "sentence_classification", ["world", "sports", "business"], hidden_dim=16)
    model.add_head("ner", "token_classification", ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])
    return model.save(tmp_path_factory.mktemp("saved") / "model")


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
