from __future__ import annotations

import pytest
import torch

from mtst.model.config import HeadConfig
from mtst.model.heads import IGNORE_INDEX
from mtst.model.spans import bio_to_entities, first_subtokens, word_spans
from mtst.model.tasks import TASK_TYPES, task_type

NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
PREDICTING = sorted(name for name, kind in TASK_TYPES.items() if kind.predicts)
TOKEN_HEADS = sorted(name for name, kind in TASK_TYPES.items() if kind.token_level)


def build_head(config: HeadConfig):
    return task_type(config.type).build_head(config)


@pytest.mark.parametrize("head_type", PREDICTING)
def test_every_registered_predictive_head_builds_from_config_and_shapes_logits(head_type):
    head = build_head(HeadConfig(type=head_type, labels=["a", "b", "c"], input_dim=8, hidden_dim=4))
    features = torch.randn(2, 5, 8) if head.reads == "token_embeddings" else torch.randn(2, 8)
    logits = head(features)
    assert logits.shape == (*features.shape[:-1], 3)
    multi_hot = task_type(head_type).multi_label  # one 0/1 target per label, else one label id
    target = torch.zeros(logits.shape) if multi_hot else torch.zeros(logits.shape[:-1], dtype=torch.long)
    assert head.loss(logits, target).ndim == 0


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


def test_best_labels_name_the_arg_max_per_sentence_and_per_word(tiny_model):
    sentence = build_head(HeadConfig(type="sentence_classification", labels=["neg", "pos"], input_dim=4))
    assert sentence.best_labels(torch.tensor([[0.0, 2.0], [3.0, 1.0]]), []) == ["pos", "neg"]
    token = build_head(HeadConfig(type="token_classification", labels=NER_LABELS, input_dim=4))
    (item,) = tiny_model.tokenizer([["Angela", "Merkel", "spoke"]], is_split_into_words=True)
    logits = torch.zeros(1, len(item.input_ids), len(NER_LABELS))
    first = first_subtokens(item.word_ids)
    logits[0, first[0], 1] = logits[0, first[1], 2] = 5.0  # B-PER, I-PER; "spoke" stays O (ties -> index 0)
    assert token.best_labels(logits, [item]) == [{0: "B-PER", 1: "I-PER", 2: "O"}]


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


@pytest.mark.parametrize("head_type", TOKEN_HEADS)
@pytest.mark.parametrize("hidden_dim", [None, 4])
def test_token_heads_give_a_sentence_the_same_logits_alone_and_beside_zero_padding(head_type, hidden_dim):
    # The model zeroes padding states before the heads (as the training feature cache does).
    head = build_head(HeadConfig(type=head_type, labels=NER_LABELS, input_dim=8, hidden_dim=hidden_dim)).eval()
    short, long = torch.randn(1, 3, 8), torch.randn(1, 7, 8)
    batch = torch.cat([torch.cat([short, torch.zeros(1, 4, 8)], dim=1), long])  # (2, 7, 8)
    alone, together = head(short), head(batch)
    assert (alone - together[:1, :3]).abs().max() < 1e-5
    assert (head(long) - together[1:]).abs().max() < 1e-5


def test_token_head_hidden_dim_adds_a_hidden_layer_and_keeps_old_parameter_names_without_it():
    plain = build_head(HeadConfig(type="token_classification", labels=NER_LABELS, input_dim=8))
    assert set(plain.state_dict()) == {"classifier.weight", "classifier.bias"}  # models saved before hidden_dim load
    deep = build_head(HeadConfig(type="token_classification", labels=NER_LABELS, input_dim=8, hidden_dim=4))
    assert deep.classifier.in_features == 4
    assert [type(m) for m in deep.hidden] == [torch.nn.Linear, torch.nn.GELU, torch.nn.Dropout]
    assert deep(torch.randn(2, 5, 8)).shape == (2, 5, len(NER_LABELS))


def test_windowed_head_uses_hidden_dim_channels_and_sees_two_neighbours_each_side():
    head = build_head(HeadConfig(type="windowed_token_classification", labels=NER_LABELS, input_dim=8,
                                 hidden_dim=4)).eval()
    assert head.conv.out_channels == 4
    assert head.classifier.in_features == 8 + 4  # conv window + the token's own state
    states = torch.randn(1, 9, 8)
    changed = states.clone()
    changed[0, 4] += 1.0  # token 4 changes: tokens 2..6 see it, 0, 1, 7, 8 do not
    moved = (head(states) - head(changed)).abs().amax(dim=-1)[0]  # (T,)
    assert (moved[2:7] > 1e-6).all()
    assert moved[[0, 1, 7, 8]].max() == 0.0


def test_windowed_head_default_channels_when_hidden_dim_is_unset():
    head = build_head(HeadConfig(type="windowed_token_classification", labels=NER_LABELS, input_dim=8))
    assert head.conv.out_channels == head.DEFAULT_CHANNELS


def test_model_ner_logits_do_not_depend_on_batch_make_up(tiny_model):
    tiny_model.add_head("window", "windowed_token_classification", NER_LABELS, hidden_dim=8)
    tiny_model.eval()
    short = "Angela Merkel met Macron."
    long = "A much longer sentence about Paris, Berlin and Madrid that needs plenty of padding for the other one."
    alone = tiny_model(tiny_model.tokenizer.collate(tiny_model.tokenizer([short])), tasks=["window", "ner"])
    both = tiny_model(tiny_model.tokenizer.collate(tiny_model.tokenizer([short, long])), tasks=["window", "ner"])
    length = alone["logits"]["window"].shape[1]
    assert both["logits"]["window"].shape[1] > length
    for task in ("window", "ner"):
        assert (alone["logits"][task][0] - both["logits"][task][0, :length]).abs().max() < 1e-5
    assert both["token_embeddings"][0, length:].abs().max() == 0.0  # padding states are zeroed
