from __future__ import annotations

import numpy as np
import pytest
import torch

from mtst import MtstError, MultiTaskModel

SENTENCES = ["the cat sat on the mat", "john works at google", "", "stock market fell today !", "a good movie"]


def test_encode_shape_norm_and_empty_inputs(tiny_model):
    embeddings = tiny_model.encode(SENTENCES)
    assert embeddings.shape == (5, 32) and embeddings.dtype == np.float32
    assert np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert tiny_model.encode([]).shape == (0, 32)
    assert tiny_model.predict([]) == []


def test_encode_without_normalisation_matches_manual_mean_pooling(tiny_model):
    raw = tiny_model.encode(SENTENCES[:2], normalize=False, convert_to="torch")
    batch = tiny_model.tokenizer.collate(tiny_model.tokenizer(SENTENCES[:2]))
    with torch.no_grad():
        states = tiny_model.encoder.transformer(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    mask = batch["attention_mask"].unsqueeze(-1).float()
    manual = (states.last_hidden_state * mask).sum(1) / mask.sum(1)
    assert torch.allclose(raw, manual, atol=1e-5)
    assert not np.allclose(np.linalg.norm(raw.numpy(), axis=1), 1.0)


def test_results_do_not_depend_on_batch_size_or_input_order(tiny_model):
    reference = tiny_model.encode(SENTENCES, batch_size=64)
    for batch_size in (1, 2, 3):
        assert np.allclose(tiny_model.encode(SENTENCES, batch_size=batch_size), reference, atol=1e-5)
    order = [3, 0, 4, 2, 1]
    shuffled = tiny_model.encode([SENTENCES[i] for i in order])
    assert np.allclose(shuffled, reference[order], atol=1e-5)


def test_predict_answers_every_task_from_one_encoder_pass(tiny_model, monkeypatch):
    calls = []
    original = tiny_model.encoder.forward
    monkeypatch.setattr(tiny_model.encoder, "forward", lambda *a: calls.append(1) or original(*a))
    predictions = tiny_model.predict(SENTENCES[:2], include_embedding=True)
    assert len(calls) == 1  # one batch, one backbone pass for topic + ner + embedding
    first = predictions[0]
    assert set(first) == {"text", "topic", "ner", "embedding"}
    assert first["topic"]["label"] in ["world", "sports", "business"]
    assert sum(first["topic"]["distribution"].values()) == pytest.approx(1.0)
    assert isinstance(first["ner"], list) and len(first["embedding"]) == 32
    for entity in predictions[1]["ner"]:
        assert SENTENCES[1][entity["start"] : entity["end"]] == entity["text"]


def test_predict_rejects_unknown_task(tiny_model):
    with pytest.raises(MtstError, match="unknown task 'sentiment'"):
        tiny_model.predict(["a"], tasks=["sentiment"])


def test_forward_returns_logits_and_losses_for_training(tiny_model):
    batch = tiny_model.tokenizer.collate(tiny_model.tokenizer(SENTENCES[:2]))
    out = tiny_model(batch, labels={"topic": torch.tensor([0, 2])})
    assert set(out["logits"]) == {"topic"} and out["logits"]["topic"].shape == (2, 3)
    assert out["loss"].requires_grad and torch.equal(out["loss"], out["losses"]["topic"])


def test_both_heads_send_gradients_into_the_same_encoder(tiny_model):
    tiny_model.train()
    batch = tiny_model.tokenizer.collate(tiny_model.tokenizer(SENTENCES[:2]))
    word_embeddings = tiny_model.encoder.transformer.embeddings.word_embeddings.weight
    grads = []
    for task, labels in (("topic", torch.tensor([0, 1])), ("ner", torch.zeros_like(batch["input_ids"]))):
        tiny_model.zero_grad()
        tiny_model(batch, labels={task: labels})["loss"].backward()
        grads.append(word_embeddings.grad.clone())
    assert grads[0].abs().sum() > 0 and grads[1].abs().sum() > 0


def test_inference_restores_training_mode_and_does_not_build_graphs(tiny_model):
    tiny_model.train()
    out = tiny_model.encode(["cat"], convert_to="torch")
    assert tiny_model.training and not out.requires_grad


def test_add_head_rejects_duplicates_and_invalid_labels(tiny_model):
    with pytest.raises(MtstError, match="already exists"):
        tiny_model.add_head("topic", "sentence_classification", ["a", "b"])
    with pytest.raises(ValueError, match="unique"):
        tiny_model.add_head("other", "sentence_classification", ["a", "a"])


def test_non_string_sentences_are_a_clear_error(tiny_model):
    with pytest.raises(MtstError, match="must be strings"):
        tiny_model.encode(["ok", 3])


def test_backbone_settings_come_from_sentence_transformers_files(tiny_st_dir, tiny_encoder_dir):
    st_model = MultiTaskModel.from_backbone(tiny_st_dir)
    assert (st_model.config.encoder.pooling, st_model.config.encoder.normalize) == ("mean", True)
    assert st_model.config.encoder.max_seq_length == 48
    plain = MultiTaskModel.from_backbone(tiny_encoder_dir)
    assert (plain.config.encoder.pooling, plain.config.encoder.normalize) == ("mean", False)
    assert plain.config.encoder.max_seq_length == 64  # the tokenizer's limit
    cls = MultiTaskModel.from_backbone(tiny_encoder_dir, pooling="cls", normalize=True, max_seq_length=16)
    assert (cls.config.encoder.pooling, cls.config.encoder.max_seq_length) == ("cls", 16)


@pytest.mark.parametrize("bad, message", [("missing", "not found"), ("empty", "no config.json")])
def test_bad_backbone_directories_fail_in_one_line(tmp_path, bad, message):
    path = tmp_path / bad
    if bad == "empty":
        path.mkdir()
    with pytest.raises(MtstError, match=message) as info:
        MultiTaskModel.from_backbone(path)
    assert "\n" not in str(info.value)


def test_unknown_pooling_fails_before_loading_further(tiny_encoder_dir):
    with pytest.raises(MtstError, match="unknown pooling"):
        MultiTaskModel.from_backbone(tiny_encoder_dir, pooling="avg")
