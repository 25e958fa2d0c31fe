from __future__ import annotations

import pytest
import torch

from mtst.config import HeadConfig
from mtst.heads import HEADS, IGNORE_INDEX, bio_to_entities, build_head, first_subtokens, word_spans

NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]


@pytest.mark.parametrize("head_type", sorted(HEADS))
def test_every_registered_head_builds_from_config_and_shapes_logits(head_type):
    head = build_head(HeadConfig(type=head_type, labels=["a", "b", "c"], input_dim=8, hidden_dim=4))
    features = torch.randn(2, 5, 8) if head.reads == "token_embeddings" else torch.randn(2, 8)
    logits = head(features)
    assert logits.shape == (*features.shape[:-1], 3)
    target = torch.zeros(logits.shape[:-1], dtype=torch.long)
    assert head.loss(logits, target).ndim == 0


def test_unknown_head_type_is_rejected_by_the_config():
    with pytest.raises(ValueError, match="unknown head type 'regression'"):
        HeadConfig(type="regression", labels=["a", "b"], input_dim=8)


def test_token_loss_ignores_masked_positions():
    head = build_head(HeadConfig(type="token_classification", labels=["O", "B-X"], input_dim=4))
    logits = torch.randn(1, 3, 2)
    labels = torch.tensor([[IGNORE_INDEX, 1, IGNORE_INDEX]])
    expected = torch.nn.functional.cross_entropy(logits[0, 1:2], labels[0, 1:2])
    assert torch.allclose(head.loss(logits, labels), expected)


def test_sentence_decode_gives_label_score_and_distribution():
    head = build_head(HeadConfig(type="sentence_classification", labels=["neg", "pos"], input_dim=4))
    (prediction,) = head.decode(torch.tensor([[0.0, 2.0]]), [], ["text"])
    assert prediction["label"] == "pos"
    assert prediction["score"] == pytest.approx(torch.tensor([0.0, 2.0]).softmax(0)[1].item())
    assert sum(prediction["distribution"].values()) == pytest.approx(1.0)


def test_ner_decoding_gives_char_spans_on_subwords_punctuation_and_repeats(tiny_model):
    # Hand-labelled words: John(B-PER) smithed(I-PER) ,(O) Paris(B-LOC) and(O) Paris(B-LOC) !(O)
    text = "John smithed, Paris and Paris!"
    (item,) = tiny_model.tokenizer([text])
    word_labels = ["B-PER", "I-PER", "O", "B-LOC", "O", "B-LOC", "O"]
    head = tiny_model.heads["ner"]
    logits = torch.full((len(item.input_ids), len(NER_LABELS)), -10.0)
    for position, word in enumerate(item.word_ids):
        if word >= 0:
            # Only the first sub-token's label counts; later sub-tokens get a contradicting label.
            is_first = first_subtokens(item.word_ids)[word] == position
            logits[position, NER_LABELS.index(word_labels[word] if is_first else "B-ORG")] = 10.0
    entities = head.decode(logits.unsqueeze(0), [item], [text])[0]
    assert [(e["text"], e["label"], e["start"], e["end"]) for e in entities] == [
        ("John smithed", "PER", 0, 12),
        ("Paris", "LOC", 14, 19),
        ("Paris", "LOC", 24, 29),
    ]
    assert all(0.99 < e["score"] <= 1.0 for e in entities)


def test_word_spans_merge_subtokens(tiny_model):
    (item,) = tiny_model.tokenizer(["unbelievable cat"])
    assert word_spans(item) == {0: (0, 12), 1: (13, 16)}


def test_bio_decoding_starts_a_new_entity_on_type_change_and_stray_inside():
    words = [((0, 1), "I-PER", 1.0), ((2, 3), "I-LOC", 0.5), ((4, 5), "O", 1.0), ((6, 7), "I-LOC", 0.8)]
    entities = bio_to_entities(words, "a b c d")
    assert [(e["label"], e["start"], e["end"]) for e in entities] == [("PER", 0, 1), ("LOC", 2, 3), ("LOC", 6, 7)]
