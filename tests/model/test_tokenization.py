from __future__ import annotations

import logging

import torch

from mtst.model.tokenization import NO_WORD, length_sorted_batches, token_budget_batches


def test_word_ids_and_offsets_follow_the_text(tiny_model):
    text = "John smithed, unbelievable!"
    (item,) = tiny_model.tokenizer([text])
    assert item.word_ids[0] == NO_WORD and item.word_ids[-1] == NO_WORD
    words = {}
    for word, (start, end) in zip(item.word_ids, item.offsets, strict=True):
        if word != NO_WORD:
            words.setdefault(word, []).append(text[start:end])
    # "smithed" is split into sub-words that still belong to word 1; punctuation is its own word.
    assert "".join(words[1]).lower() == "smithed" and len(words[1]) == 2
    assert words[2] == [","]
    assert "".join(words[3]).lower() == "unbelievable"


def test_pre_split_words_keep_their_indices(tiny_model):
    (item,) = tiny_model.tokenizer([["John", "unbelievable", "Paris"]], is_split_into_words=True)
    assert sorted({w for w in item.word_ids if w != NO_WORD}) == [0, 1, 2]


def test_truncation_warns_once(tiny_model, caplog):
    long_text = " ".join(["cat"] * 200)
    with caplog.at_level(logging.WARNING, logger="mtst"):
        first = tiny_model.tokenizer([long_text, "cat"])
        tiny_model.tokenizer([long_text])
    assert first[0].truncated and not first[1].truncated
    assert len(first[0].input_ids) == tiny_model.config.encoder.max_seq_length
    assert sum("truncated" in record.message for record in caplog.records) == 1


def test_collate_pads_to_longest(tiny_model):
    items = tiny_model.tokenizer(["cat", "the cat sat on the mat"])
    batch = tiny_model.tokenizer.collate(items)
    assert batch["input_ids"].shape == (2, len(items[1].input_ids))
    assert batch["attention_mask"][0].sum() == len(items[0].input_ids)
    assert (batch["word_ids"][0, len(items[0].input_ids):] == NO_WORD).all()


def test_ids_only_gives_the_same_ids_and_batch_without_word_ids(tiny_model):
    texts = ["John smithed, unbelievable!", "cat", "", " ".join(["cat"] * 200)]
    full, light = tiny_model.tokenizer(texts), tiny_model.tokenizer(texts, ids_only=True)
    assert [item.input_ids for item in light] == [item.input_ids for item in full]
    assert [item.truncated for item in light] == [item.truncated for item in full] == [False, False, False, True]
    assert all(item.word_ids == [] and item.offsets == [] for item in light)
    full_batch, light_batch = tiny_model.tokenizer.collate(full), tiny_model.tokenizer.collate(light)
    for key in ("input_ids", "attention_mask"):
        assert light_batch[key].dtype == torch.long and torch.equal(light_batch[key], full_batch[key])
    assert (light_batch["word_ids"] == NO_WORD).all()
    expected_mask = [[1] * len(item.input_ids) + [0] * (64 - len(item.input_ids)) for item in full]
    assert full_batch["attention_mask"].tolist() == [row[: full_batch["input_ids"].shape[1]] for row in expected_mask]


def test_length_sorted_batches_cover_every_index_once():
    lengths = [5, 1, 9, 3, 7]
    batches = length_sorted_batches(lengths, 2)
    assert sorted(i for b in batches for i in b) == list(range(5))
    assert batches[0] == [2, 4]


def test_token_budget_batches_respect_the_budget():
    lengths = [10, 2, 2, 2, 2, 9, 3]
    batches = token_budget_batches(lengths, max_tokens=12, max_batch_size=8)
    assert sorted(i for b in batches for i in b) == list(range(7))
    for batch in batches:
        assert len(batch) * max(lengths[i] for i in batch) <= 12 or len(batch) == 1
